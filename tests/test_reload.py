"""Hot reload: WorkflowWatcher recompiles changed workflow files and keeps the last good plan."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from flowlord.compiler import compile_paths
from flowlord.compiler.plan import Plan
from flowlord.reload import Problem, WorkflowWatcher

A = """
[[Phase]]
task = "extract"
rule = "cron=0 5 * * * *"
template = "?hour={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "load"
dependsOn = "extract"
template = "?hour={yyyy}-{mm}-{dd}T{hh}"
"""

A_CHANGED = A.replace("cron=0 5 * * * *", "cron=0 10 * * * *")
A_BROKEN = A.replace('dependsOn = "extract"', 'dependsOn = "extrakt"')
A_COMMENTED = A + "\n# a comment at the end moves no phase\n"

B = """
[[Phase]]
task = "files_in"
rule = "files=/data/incoming/*/*.csv"
template = "{meta:file}"
"""


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


class Recorder:
    def __init__(self) -> None:
        self.plans: list[Plan] = []
        self.problems: list[list[Problem]] = []

    async def on_plan(self, plan: Plan) -> None:
        self.plans.append(plan)

    def on_diagnostics(self, problems: list[Problem]) -> None:  # a plain function works too
        self.problems.append(problems)


def write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def phases(plan: Plan) -> dict[str, list[str]]:
    return {w.key: [p.id for p in w.phases] for w in plan.workflows}


@pytest.fixture
def folder(tmp_path):
    write(tmp_path / "wf" / "a.toml", A)
    write(tmp_path / "wf" / "sub" / "b.toml", B)
    return tmp_path / "wf"


def test_first_load_then_on_demand_reloads(folder, caplog):
    caplog.set_level(logging.INFO, logger="flowlord.reload")
    rec = Recorder()

    async def main():
        watcher = WorkflowWatcher([str(folder)], on_plan=rec.on_plan,
                                  on_diagnostics=rec.on_diagnostics, interval=60)
        outcome = await watcher.start()
        try:
            assert outcome.status == "applied"
            assert len(rec.plans) == 1
            assert phases(rec.plans[0]) == {"a.toml": ["extract", "load"], "sub/b.toml": ["files_in"]}
            assert rec.plans[0] == compile_paths([str(folder)]).plan
            assert watcher.plan is rec.plans[0]

            # nothing changed; then the same bytes written again (a touch): nothing either
            assert (await watcher.reload()).status == "unchanged"
            write(folder / "a.toml", A)
            os.utime(folder / "a.toml")
            assert (await watcher.reload()).status == "unchanged"
            assert len(rec.plans) == 1

            # a change: on_plan once with the new plan
            write(folder / "a.toml", A_CHANGED)
            outcome = await watcher.reload()
            assert outcome.status == "applied" and outcome.modified == (str(folder / "a.toml"),)
            assert len(rec.plans) == 2
            assert rec.plans[1] == compile_paths([str(folder)]).plan
            assert rec.plans[1] != rec.plans[0]
            assert (await watcher.reload()).status == "unchanged"
            assert len(rec.plans) == 2

            # a broken edit: diagnostics with file:line:col, the plan stays
            write(folder / "a.toml", A_BROKEN)
            outcome = await watcher.reload()
            assert outcome.status == "rejected"
            assert len(rec.plans) == 2 and watcher.plan is rec.plans[1]
            assert len(rec.problems) == 1
            [problem] = [p for p in rec.problems[0] if p.severity == "error"]
            assert problem.code == "FL601"
            assert problem.file == str(folder / "a.toml")
            line = A_BROKEN.splitlines().index('dependsOn = "extrakt"') + 1
            assert (problem.line, problem.column) == (line, A_BROKEN.splitlines()[line - 1].index("extrakt") + 1)
            assert str(problem).startswith(f"{folder / 'a.toml'}:{line}:")
            assert "error[FL601]" in str(problem)
            assert (await watcher.reload()).status == "unchanged"  # reported once, not at every check
            assert len(rec.problems) == 1

            # fixed: on_plan again, even though it is the plan already running
            write(folder / "a.toml", A_CHANGED)
            outcome = await watcher.reload()
            assert outcome.status == "applied"
            assert len(rec.plans) == 3 and rec.plans[2] == rec.plans[1]
            assert watcher.problems == ()

            # a new file is picked up, a deleted one drops out with its workflow
            write(folder / "c.toml", B.replace("files_in", "other_files"))
            (folder / "sub" / "b.toml").unlink()
            outcome = await watcher.reload()
            assert outcome.status == "applied"
            assert outcome.added == (str(folder / "c.toml"),)
            assert outcome.removed == (str(folder / "sub" / "b.toml"),)
            assert phases(rec.plans[-1]) == {"a.toml": ["extract", "load"], "c.toml": ["other_files"]}
            assert len(rec.plans) == 4
        finally:
            await watcher.stop()

    run(main())
    text = caplog.text
    assert "workflow reload rejected" in text and "keeping the last good plan" in text
    assert "plan applied" in text and "gone: sub/b.toml" in text


def test_polling_picks_up_changes(folder):
    rec = Recorder()

    async def until(condition, timeout=3.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not condition() and loop.time() < deadline:
            await asyncio.sleep(0.02)

    async def main():
        async with WorkflowWatcher(str(folder), on_plan=rec.on_plan,
                                   on_diagnostics=rec.on_diagnostics, interval=0.05):
            assert len(rec.plans) == 1
            write(folder / "a.toml", A_CHANGED)
            await until(lambda: len(rec.plans) == 2)
            assert len(rec.plans) == 2
            write(folder / "a.toml", A_BROKEN)
            await until(lambda: rec.problems)
            assert len(rec.problems) == 1
            write(folder / "a.toml", A)
            await until(lambda: len(rec.plans) == 3)
            await asyncio.sleep(0.3)  # several more checks: nothing more
        assert len(rec.plans) == 3 and len(rec.problems) == 1
        assert rec.plans[2] == rec.plans[0]

    run(main())


def test_a_change_that_keeps_the_plan_is_not_passed_on(folder):
    rec = Recorder()

    async def main():
        watcher = WorkflowWatcher(str(folder), on_plan=rec.on_plan, interval=60)
        await watcher.start()
        write(folder / "a.toml", A_COMMENTED)
        outcome = await watcher.reload()
        await watcher.stop()
        return outcome

    outcome = run(main())
    assert outcome.status == "same-plan" and outcome.modified
    assert len(rec.plans) == 1


def test_a_broken_first_load_has_no_plan_and_a_missing_folder_keeps_the_plan(tmp_path):
    rec = Recorder()
    write(tmp_path / "wf" / "a.toml", A_BROKEN)

    async def main():
        watcher = WorkflowWatcher([str(tmp_path / "wf")], on_plan=rec.on_plan,
                                  on_diagnostics=rec.on_diagnostics, interval=60)
        outcome = await watcher.start()
        assert outcome.status == "rejected" and outcome.plan is None and watcher.plan is None
        assert rec.plans == [] and len(rec.problems) == 1
        write(tmp_path / "wf" / "a.toml", A)
        assert (await watcher.reload()).status == "applied"
        good = watcher.plan

        (tmp_path / "wf" / "a.toml").unlink()
        (tmp_path / "wf").rmdir()
        outcome = await watcher.reload()
        assert outcome.status == "error" and watcher.plan is good
        assert rec.problems[-1][0].code == "io-error"
        assert (await watcher.reload()).status == "error"
        assert len(rec.problems) == 2  # reported once
        await watcher.stop()

    run(main())


def test_custom_compile_and_failing_on_plan(folder):
    calls = []
    attempts = []

    def compile():
        calls.append(1)
        return compile_paths([str(folder)], timezone="America/New_York")

    def on_plan(plan):
        attempts.append(plan)
        if len(attempts) == 1:
            raise RuntimeError("engine not ready")

    async def main():
        watcher = WorkflowWatcher([str(folder)], compile, on_plan, interval=60)
        assert (await watcher.start()).status == "error"
        assert watcher.plan is None
        assert (await watcher.reload()).status == "applied"  # tried again
        assert watcher.plan.timezone == "America/New_York"
        await watcher.stop()

    run(main())
    assert len(calls) == 2 and len(attempts) == 2


def test_arguments():
    with pytest.raises(TypeError):
        WorkflowWatcher(["x"])
    with pytest.raises(ValueError):
        WorkflowWatcher(["x"], on_plan=print, interval=0)
