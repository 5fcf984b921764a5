"""The engine on a SimClock, a MemoryBus and a real SQLite store in tmp_path."""

import asyncio
import json
import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flowlord.compiler import compile_paths
from flowlord.runtime.bus import BusError
from flowlord.runtime.bus.memory import MemoryBus
from flowlord.runtime.clock import SimClock, SystemClock, yield_to_loop
from flowlord.runtime.dispatcher import go_print_duration
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.store import SCHEMA_VERSION, Store
from flowlord.runtime.task import Task, parse_meta

UTC = timezone.utc
T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)

CHAIN = """
[[Phase]]
task = "task1"
rule = "cron=0 * * * *&offset=-4h&job=t2"
retry = 2
template = "?date={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "task2"
dependsOn = "task1"
rule = "retry_delay=10s"
retry = 2
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "task3"
dependsOn = "task1:t2"
rule = "job=j3&no_alert=true"
retry = 0
template = "?hour={hh}"
"""


def compile_plan(tmp_path: Path, text: str, name: str = "wf.toml"):
    folder = tmp_path / "workflows"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    compilation = compile_paths([str(folder)])
    assert compilation.plan is not None, [d.message for d in compilation.diagnostics]
    return compilation.plan


class Rig:
    """An engine with its clock, bus, store and the events it reported."""

    def __init__(self, tmp_path: Path, text: str | None = None, *, plan=None, start=T0,
                 db: str = "flowlord.db", bus=None, **settings):
        self.plan = plan if plan is not None else compile_plan(tmp_path, text)
        self.clock = SimClock(start)
        self.bus = bus if bus is not None else MemoryBus()
        self.store = Store.open(tmp_path / db)
        settings.setdefault("rng", random.Random(7))
        self.settings = Settings(**settings)
        self.events = []
        self.engine = Engine(self.plan, self.store, self.bus, self.clock, self.settings,
                             listener=self.events.append)

    async def advance(self, until: datetime) -> None:
        engine, clock = self.engine, self.clock
        while (due := engine.next_due()) is not None and due <= until:
            clock.set(max(due, clock.now()))
            await engine.run_due(due)
        clock.set(until)

    def sent(self, topic: str | None = None) -> list[Task]:
        return [e.task for e in self.events if e.kind == "sent" and (topic is None or e.topic == topic)]

    def kinds(self, kind: str):
        return [e for e in self.events if e.kind == kind]

    async def done(self, task: Task, result: str, **changes) -> bool:
        return await self.engine.process_done(task.replace(result=result, **changes).to_json())

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def rig(tmp_path):
    made = []

    def make(text=CHAIN, **options):
        r = Rig(tmp_path, text, **options)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def meta_of(task: Task) -> dict[str, str]:
    return dict(parse_meta(task.meta)[0].pairs)


def run(coro):
    return asyncio.run(coro)


# --- cron ------------------------------------------------------------------------------------


def test_cron_fires_at_each_fire_time_with_offset(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0 + timedelta(hours=2, minutes=30))
        return r

    r = run(main())
    tasks = r.sent("task1")
    assert [t.info for t in tasks] == ["?date=2024-01-14T20", "?date=2024-01-14T21", "?date=2024-01-14T22"]
    assert [t.created for t in tasks] == ["2024-01-15T00:00:00Z", "2024-01-15T01:00:00Z", "2024-01-15T02:00:00Z"]
    assert tasks[0].meta == "workflow=wf.toml&cron=2024-01-14T20&job=t2"
    assert tasks[0].job == "t2" and len({t.id for t in tasks}) == 3
    assert [e.at for e in r.kinds("sent")] == [T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)]
    rows = r.store.recent_tasks(event="sent")
    assert len(rows) == 3 and {row.phase for row in rows} == {"task1:t2"}
    assert r.store.last_fire("wf.toml", "task1:t2") == T0 + timedelta(hours=2)


def test_batch_phase_expands(rig):
    text = """
[[Phase]]
task = "export"
rule = "cron=0 30 2 * * *&offset=-24h&meta=region:us,eu"
template = "?day={yyyy}-{mm}-{dd}&region={meta:region}"

[[Phase]]
task = "back"
rule = "cron=0 0 3 * * *&for=-48h&by=day"
template = "?day={yyyy}-{mm}-{dd}"
"""

    async def main():
        r = rig(text)
        r.engine.start()
        await r.advance(T0 + timedelta(hours=4))
        return r

    r = run(main())
    export = r.sent("export")
    assert [t.info for t in export] == ["?day=2024-01-14&region=us", "?day=2024-01-14&region=eu"]
    assert export[0].meta == "cron=2024-01-14T02&region=us&workflow=wf.toml"
    assert [t.info for t in r.sent("back")] == ["?day=2024-01-15", "?day=2024-01-14", "?day=2024-01-13"]
    assert all(e.at == T0 + timedelta(hours=3) for e in r.kinds("sent") if e.topic == "back")


def test_the_timezone_setting_moves_crons_without_their_own_zone(rig):
    text = """
[[Phase]]
task = "local"
rule = "cron=0 0 * * *"
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "tokyo"
rule = "cron=TZ=Asia/Tokyo 0 0 * * *"
template = "?day={yyyy}-{mm}-{dd}"
"""

    async def main():
        r = rig(text, timezone="America/New_York")
        r.engine.start()
        await r.advance(T0 + timedelta(days=1))
        return r

    r = run(main())
    assert [(e.topic, e.at.hour, e.task.info) for e in r.kinds("sent")] == [
        ("local", 5, "?day=2024-01-15"), ("tokyo", 15, "?day=2024-01-16")]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="catch_up"):
        Settings(catch_up="sometimes")
    with pytest.raises(ValueError, match="done topic"):
        Settings(done_topic="-")


def test_a_batch_that_cannot_be_built_alerts_and_sends_nothing(rig, tmp_path):
    text = """
[[Phase]]
task = "load"
rule = "cron=0 0 * * *&meta-file=missing.json"
template = "?x={meta:x}"
"""

    async def main():
        r = rig(text, base_dir=str(tmp_path))
        r.engine.start()
        await r.advance(T0 + timedelta(minutes=1))
        return r

    r = run(main())
    assert r.sent() == []
    (alert,) = r.kinds("alert")
    assert alert.phase == "load" and "no files found" in alert.msg and alert.result == "error"
    assert r.store.alerts()[0].msg == alert.msg


def test_the_timer_loop_runs_cron_and_retries_on_the_sim_clock(rig):
    async def main():
        r = rig()
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop()
        assert [t.info for t in r.sent("task1")] == ["?date=2024-01-14T20"]  # due at the start
        await r.clock.advance_to(T0 + timedelta(hours=1, minutes=5))
        assert len(r.sent("task1")) == 2
        r.bus.publish_nowait("done", r.sent("task1")[0].replace(result="error").to_json())
        await yield_to_loop()
        assert len(r.store.pending_retries()) == 1
        await r.clock.advance(2.0)  # the retry is due 1s later (no retry_delay: no jitter)
        assert len(r.sent("task1")) == 3 and r.store.pending_retries() == []
        assert r.bus.pending("done") == 0  # acked
        r.engine.stop()
        await asyncio.wait_for(runner, 1)
        return r

    r = run(main())
    retried = r.sent("task1")[2]
    assert meta_of(retried)["retry"] == "1" and "delayed" not in meta_of(retried)


# --- done: complete ----------------------------------------------------------------------------


def test_complete_starts_children_with_the_parent_id(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        (parent,) = r.sent("task1")
        # custom parent meta is dropped, workflow/cron/job kept
        parent = parent.replace(meta=parent.meta + "&custom=1")
        r.clock.set(T0 + timedelta(minutes=10))
        assert await r.done(parent, "complete")
        return r, parent

    r, parent = run(main())
    task2, task3 = r.sent("task2"), r.sent("task3")
    assert len(task2) == 1 and len(task3) == 1
    assert task2[0].id == parent.id == task3[0].id
    assert task2[0].info == "?day=2024-01-14" and task2[0].meta == "workflow=wf.toml&cron=2024-01-14T20"
    assert task3[0].job == "j3" and task3[0].meta == "workflow=wf.toml&cron=2024-01-14T20&job=j3"
    assert task3[0].info == "?hour=20" and task2[0].created == "2024-01-15T00:10:00Z"
    done = r.store.recent_tasks(event="done")
    assert len(done) == 1 and done[0].phase == "task1:t2"


def test_a_redelivered_done_message_has_no_second_effect(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        message = r.sent("task1")[0].replace(result="complete").to_json()
        assert await r.engine.process_done(message)
        assert await r.engine.process_done(message)
        error = r.sent("task1")[0].replace(result="error", msg="boom").to_json()
        assert await r.engine.process_done(error)
        assert await r.engine.process_done(error)
        return r

    r = run(main())
    assert len(r.sent("task2")) == 1 and len(r.sent("task3")) == 1
    assert len(r.store.pending_retries()) == 1
    assert len(r.store.recent_tasks(event="done")) == 2


def test_redelivery_by_the_bus_is_acked_once(rig):
    async def main():
        r = rig()
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop()
        message = r.sent("task1")[0].replace(result="complete").to_json()
        r.bus.publish_nowait("done", message)
        r.bus.publish_nowait("done", message)
        await yield_to_loop()
        r.engine.stop()
        await asyncio.wait_for(runner, 1)
        return r

    r = run(main())
    assert len(r.sent("task2")) == 1 and r.bus.pending("done") == 0


# --- done: error -------------------------------------------------------------------------------


def test_error_retries_with_delay_and_jitter_then_fails(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        parent = r.sent("task1")[0]
        await r.done(parent, "complete")
        child = r.sent("task2")[0]
        attempts = []
        for attempt in range(3):
            now = r.clock.now()
            assert await r.done(child, "error", msg=f"failed {attempt}")
            pending = r.store.pending_retries()
            if attempt < 2:
                (retry,) = pending
                delay = retry.due_at - now
                assert timedelta(seconds=10) <= delay < timedelta(seconds=14)
                attempts.append((retry, delay))
                await r.advance(retry.due_at)
                child = r.sent("task2")[-1]
            else:
                assert pending == []
        return r, attempts, child

    r, attempts, _ = run(main())
    first = attempts[0][0].task
    m = meta_of(first)
    assert m["retry"] == "1" and m["workflow"] == "wf.toml" and m["cron"] == "2024-01-14T20"
    assert m["delayed"].endswith("s") and 10 <= float(m["delayed"][:-1]) < 14
    assert first.meta.startswith("cron=2024-01-14T20&delayed=") and "%3A" not in first.meta
    assert first.id == r.sent("task1")[0].id and first.result == "" and first.msg == ""
    assert meta_of(attempts[1][0].task)["retry"] == "2"
    assert [t.meta.split("retry=")[1].split("&")[0] for t in r.sent("task2")[1:]] == ["1", "2"]
    (failed,) = r.sent("retry-failed")
    fm = meta_of(failed)
    assert fm["retry"] == "failed" and fm["retried"] == "2"
    assert failed.result == "error" and failed.msg == "failed 2" and failed.id == first.id
    (alert,) = r.kinds("alert")
    assert alert.phase == "task2" and alert.msg == "failed 2"
    assert r.store.alerts()[0].phase == "task2"
    rows = r.store.recent_tasks(event="sent", type="task2")
    assert sorted((row.topic, row.attempt) for row in rows) == [
        ("retry-failed", 2), ("task2", 0), ("task2", 1), ("task2", 2)]


@pytest.mark.parametrize("seed", range(40))
def test_jitter_stays_within_forty_percent(rig, seed):
    async def main():
        r = rig(rng=random.Random(seed))
        r.engine.start()
        await r.advance(T0)
        await r.done(r.sent("task1")[0], "complete")
        await r.done(r.sent("task2")[0], "error")
        return r

    r = run(main())
    (retry,) = r.store.pending_retries()
    assert timedelta(seconds=10) <= retry.due_at - T0 < timedelta(seconds=14)


def test_no_jitter_and_the_default_delay(rig):
    async def main():
        r = rig(no_jitter=True)
        r.engine.start()
        await r.advance(T0)
        await r.done(r.sent("task1")[0], "complete")
        await r.done(r.sent("task2")[0], "error")
        await r.done(r.sent("task1")[0], "error")  # task1 has no retry_delay: 1s
        return r

    r = run(main())
    dues = sorted((p.task.type, p.due_at - T0, meta_of(p.task).get("delayed")) for p in r.store.pending_retries())
    assert dues == [("task1", timedelta(seconds=1), None), ("task2", timedelta(seconds=10), "10s")]


def test_no_alert_and_the_failed_topic_disabled(rig):
    async def main():
        r = rig(failed_topic="-")
        r.engine.start()
        await r.advance(T0)
        await r.done(r.sent("task1")[0], "complete")
        await r.done(r.sent("task3")[0], "error")  # retry=0, no_alert=true
        return r

    r = run(main())
    assert r.sent("retry-failed") == [] and r.kinds("alert") == [] and r.store.alerts() == []


def test_no_alert_still_sends_to_the_failed_topic(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        await r.done(r.sent("task1")[0], "complete")
        await r.done(r.sent("task3")[0], "error")
        return r

    r = run(main())
    assert len(r.sent("retry-failed")) == 1 and r.kinds("alert") == []


def test_a_resubmitted_failed_task_does_not_retry_again(rig):
    async def main():
        r = rig(no_jitter=True)
        r.engine.start()
        await r.advance(T0)
        task = r.sent("task1")[0]
        for _ in range(3):
            await r.done(task, "error")
            if r.store.pending_retries():
                await r.advance(r.store.pending_retries()[0].due_at)
                task = r.sent("task1")[-1]
        failed = r.sent("retry-failed")[0]
        assert meta_of(failed)["retry"] == "failed"
        # resubmitted as is: Go counts `retry=failed` as attempt 0 and retries again
        r.clock.set(r.clock.now() + timedelta(minutes=1))
        await r.done(failed.replace(created="2024-01-15T00:01:00Z"), "error")
        return r

    r = run(main())
    assert r.store.pending_retries() == [] and len(r.sent("retry-failed")) == 2


# --- done: alert, warn, bad input -------------------------------------------------------------


def test_alert_and_warn_results(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        task = r.sent("task1")[0]
        await r.done(task, "alert", msg="disk full")
        await r.done(task, "warn", msg="slow")
        return r

    r = run(main())
    (alert,) = r.kinds("alert")
    assert alert.result == "alert" and alert.msg == "disk full" and alert.phase == "task1:t2"
    assert [a.msg for a in r.store.alerts()] == ["disk full"]
    assert len(r.sent()) == 1  # nothing started
    assert {row.task.result for row in r.store.recent_tasks(event="done")} == {"alert", "warn"}


def test_bad_messages_are_rejected_and_the_loop_goes_on(rig, tmp_path):
    async def main():
        r = rig()
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop()
        parent = r.sent("task1")[0]
        gone = Task(type="task1", job="old", id="x", meta="workflow=wf.toml&job=old", result="error")
        elsewhere = parent.replace(meta="workflow=other.toml&job=t2", result="complete")
        for data in (b"not json", b'{"job":"x"}', b"[1,2]",
                     parent.replace(result="done-ish").to_json(),
                     gone.to_json(), elsewhere.to_json(),
                     b'{"type":"' + b"a" * (2 << 20) + b'"}',
                     parent.replace(result="complete").to_json()):
            r.bus.publish_nowait("done", data)
        await yield_to_loop(60)
        r.engine.stop()
        await asyncio.wait_for(runner, 1)
        return r

    r = run(main())
    reasons = [e.reason for e in r.kinds("rejected")]
    assert reasons == ["not-json", "missing-type", "not-object", "unknown-result",
                       "phase-not-found", "phase-not-found", "too-large"]
    stored = r.store.rejected()
    assert [x.reason for x in reversed(stored)] == reasons and stored[0].size > 2 << 20
    assert len(r.sent("task2")) == 1  # the good message after them all was handled
    alerts = r.kinds("alert")  # only the error result of a phase gone is alerted
    assert len(alerts) == 1 and "phase not found" in alerts[0].msg
    assert r.bus.pending("done") == 0


def test_the_phase_is_looked_up_in_the_task_own_workflow(tmp_path):
    async def main():
        folder = tmp_path / "workflows"
        folder.mkdir()
        (folder / "a.toml").write_text(
            '[[Phase]]\ntask = "load"\nrule = "cron=0 0 * * *"\nretry = 0\ntemplate = "?a"\n')
        (folder / "b.toml").write_text(
            '[[Phase]]\ntask = "load"\nrule = "cron=0 0 * * *&retry_delay=5s"\nretry = 3\ntemplate = "?b"\n')
        plan = compile_paths([str(folder)]).plan
        r = Rig(tmp_path, plan=plan)
        r.engine.start()
        await r.advance(T0)
        a = next(t for t in r.sent("load") if t.info == "?a")
        await r.done(a, "error")
        assert r.store.pending_retries() == []
        r.close()
        return r

    r = run(main())
    (failed,) = r.sent("retry-failed")  # a.toml's retry=0, not b.toml's retry=3
    assert meta_of(failed)["workflow"] == "a.toml" and meta_of(failed)["retried"] == "0"


# --- failures while sending --------------------------------------------------------------------


class FlakyBus(MemoryBus):
    def __init__(self, failing: set[str]):
        super().__init__()
        self.failing = failing

    async def publish(self, topic, data, **options):
        if topic in self.failing:
            raise BusError(f"{topic} is down")
        await super().publish(topic, data)


def test_a_failed_send_does_not_stop_the_other_children(rig):
    async def main():
        r = rig(bus=FlakyBus({"task2"}))
        r.engine.start()
        await r.advance(T0)
        await r.done(r.sent("task1")[0], "complete")
        assert len(r.sent("task3")) == 1 and r.sent("task2") == []
        (pending,) = r.store.pending_retries()
        assert pending.topic == "task2" and pending.due_at == T0 + timedelta(seconds=5)
        assert "task2 is down" in r.kinds("alert")[0].msg
        r.bus.failing.clear()
        await r.advance(T0 + timedelta(seconds=6))
        return r

    r = run(main())
    assert len(r.sent("task2")) == 1 and r.store.pending_retries() == []


# --- catch-up after a gap ----------------------------------------------------------------------


@pytest.mark.parametrize("policy, expected", [
    ("latest", ["2024-01-15T07:00:00Z"]),
    ("all", [f"2024-01-15T0{h}:00:00Z" for h in range(3, 8)]),
    ("none", []),
])
def test_catch_up_policy_after_a_gap(tmp_path, policy, expected):
    text = '[[Phase]]\ntask = "hourly"\nrule = "cron=0 * * * *"\ntemplate = "?t={yyyy}-{mm}-{dd}T{hh}"\n'

    async def main():
        first = Rig(tmp_path, text)
        first.engine.start()
        await first.advance(T0 + timedelta(hours=2, minutes=30))
        assert len(first.sent()) == 3
        first.close()
        later = Rig(tmp_path, text, start=T0 + timedelta(hours=7, minutes=30), catch_up=policy)
        later.engine.start()
        await later.advance(later.clock.now())
        caught = [t.info for t in later.sent()]
        await later.advance(T0 + timedelta(hours=8))
        later.close()
        return caught, later

    caught, later = run(main())
    assert caught == [f"?t={t[:13]}" for t in expected]
    assert later.sent()[-1].info == "?t=2024-01-15T08"  # then on schedule
    assert len(later.sent()) == len(expected) + 1


def test_catch_up_of_an_every_chain(tmp_path):
    text = '[[Phase]]\ntask = "beat"\nrule = "cron=@every 90m"\ntemplate = "?t={hh}:{min}"\n'

    async def main():
        first = Rig(tmp_path, text)
        first.engine.start()
        await first.advance(T0 + timedelta(hours=2))
        assert [t.info for t in first.sent()] == ["?t=01:30"]
        first.close()
        later = Rig(tmp_path, text, start=T0 + timedelta(hours=10))
        later.engine.start()
        await later.advance(T0 + timedelta(hours=11))
        later.close()
        return later

    later = run(main())
    assert [t.info for t in later.sent()] == ["?t=09:00", "?t=10:30"]


def test_catch_up_of_an_every_second_cron_is_bounded(tmp_path):
    text = '[[Phase]]\ntask = "tick"\nrule = "cron=* * * * * *"\ntemplate = "?t={TS}"\n'

    async def main():
        first = Rig(tmp_path, text)
        first.engine.start()
        await first.advance(T0 + timedelta(seconds=2))
        first.close()
        later = Rig(tmp_path, text, start=T0 + timedelta(days=30), catch_up="all", catch_up_limit=5)
        later.engine.start()
        await later.advance(later.clock.now())
        mark = later.store.last_fire("wf.toml", "tick")
        later.close()
        return later, mark

    later, mark = run(main())
    times = [t.info for t in later.sent()]
    assert times[:5] == [f"?t=20240115T00000{s}" for s in range(3, 8)]  # the first five missed
    assert times[5:] == ["?t=20240214T000000"]  # then on schedule, from the start instant
    assert {t.created for t in later.sent()} == {"2024-02-14T00:00:00Z"}  # sent now
    assert mark == T0 + timedelta(days=30)


# --- hot reload ----------------------------------------------------------------------------------


def test_replace_plan_does_not_duplicate(rig, tmp_path):
    text = CHAIN + """
[[Phase]]
task = "ingest"
rule = "files=/data/*/in.csv"
template = "{meta:file}"
"""

    async def main():
        r = rig(text)
        r.engine.start()
        await r.advance(T0)
        for _ in range(3):
            r.engine.replace_plan(compile_plan(tmp_path, text))
        await r.advance(T0 + timedelta(hours=1))
        await r.engine.process_file(b'{"path":"/data/x/in.csv","size":3}')
        # a changed plan: task1 moves to minute 30, task1's last fire is kept
        r.engine.replace_plan(compile_plan(tmp_path, text.replace("cron=0 * * * *", "cron=30 * * * *")))
        await r.advance(T0 + timedelta(hours=2))
        return r

    r = run(main())
    created = [t.created for t in r.sent("task1")]
    assert created == ["2024-01-15T00:00:00Z", "2024-01-15T01:00:00Z", "2024-01-15T01:30:00Z"]
    assert len(r.sent("ingest")) == 1


def test_replace_plan_removing_a_phase_stops_it(rig, tmp_path):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        r.engine.replace_plan(compile_plan(tmp_path, '[[Phase]]\ntask = "other"\nrule = "cron=0 0 * * *"\ntemplate = "?o"\n'))
        await r.advance(T0 + timedelta(hours=3))
        await r.done(r.sent("task1")[0], "complete")  # its phase is gone
        return r

    r = run(main())
    assert len(r.sent("task1")) == 1 and r.sent("task2") == []
    assert [e.reason for e in r.kinds("rejected")] == ["phase-not-found"]


# --- files -----------------------------------------------------------------------------------------


FILES = """
[[Phase]]
task = "ingest"
rule = "files=gs://bucket/*/data_*.json&job=daily"
template = "{meta:file}?day={yyyy}-{mm}-{dd}&name={meta:filename}"

[[Phase]]
task = "audit"
rule = "files=gs://bucket/*/*.json"
template = "{meta:file}"

[[Phase]]
task = "index"
dependsOn = "ingest:daily"
rule = "require={meta:file}"
template = "{meta:file}?i"
"""


def test_a_file_message_starts_every_matching_phase(rig):
    async def main():
        r = rig(FILES)
        r.engine.start()
        stat = {"path": "gs://bucket/2024/data_20240115T100000.json", "size": 12}
        assert await r.engine.process_file(json.dumps(stat).encode())
        await r.engine.process_file(b'{"path":"gs://other/x.csv","size":1}')
        await r.engine.process_file(b"{not json")
        return r

    r = run(main())
    (ingest,) = r.sent("ingest")
    assert ingest.info == "gs://bucket/2024/data_20240115T100000.json?day=2024-01-15&name=data_20240115T100000.json"
    m = meta_of(ingest)
    assert m["file"] == "gs://bucket/2024/data_20240115T100000.json" and m["workflow"] == "wf.toml"
    assert m["filename"] == "data_20240115T100000.json" and ingest.job == "daily"
    assert len(r.sent("audit")) == 1
    records = r.store.file_messages()
    assert [rec.path for rec in records] == ["gs://other/x.csv", "gs://bucket/2024/data_20240115T100000.json"]
    assert records[0].task_ids == () and set(records[1].task_ids) == {ingest.id, r.sent("audit")[0].id}
    assert [e.reason for e in r.kinds("rejected")] == ["not-json"]
    sent_rows = r.store.recent_tasks(event="sent")
    assert {row.task.type for row in sent_rows} == {"ingest", "audit"}  # recorded, unlike Go


# --- durability across engines ---------------------------------------------------------------------


def test_pending_retries_survive_a_restart(tmp_path):
    async def main():
        first = Rig(tmp_path, CHAIN)
        first.engine.start()
        await first.advance(T0)
        await first.done(first.sent("task1")[0], "complete")
        await first.done(first.sent("task2")[0], "error")
        (pending,) = first.store.pending_retries()
        first.close()
        second = Rig(tmp_path, CHAIN, start=pending.due_at + timedelta(hours=1))
        second.engine.start()
        await second.advance(second.clock.now())
        left = second.store.pending_retries()
        second.close()
        return pending, second, left

    pending, second, left = run(main())
    (resent,) = second.sent("task2")
    assert resent == pending.task and left == []


class GatedBus(MemoryBus):
    """Publishes to `gated` wait until the gate opens."""

    def __init__(self, gated: str):
        super().__init__()
        self.gated = gated
        self.gate = asyncio.Event()
        self.waiting = 0

    async def publish(self, topic, data, **options):
        if topic == self.gated:
            self.waiting += 1
            await self.gate.wait()
        await super().publish(topic, data)


def test_stop_lets_the_message_in_hand_finish(rig):
    async def main():
        r = rig(bus=GatedBus("task2"))
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop()
        parent = r.sent("task1")[0]
        r.bus.publish_nowait("done", parent.replace(result="complete").to_json())
        r.bus.publish_nowait("done", parent.replace(result="error").to_json())
        await yield_to_loop()
        assert r.bus.waiting == 1  # handling the first message, blocked in a publish
        r.engine.stop()
        r.bus.gate.set()
        await asyncio.wait_for(runner, 1)
        return r

    r = run(main())
    assert len(r.sent("task2")) == 1 and len(r.sent("task3")) == 1
    assert len(r.store.recent_tasks(event="done")) == 1  # the second was not taken
    assert r.bus.pending("done") == 1 and r.store.pending_retries() == []


def test_stop_finishes_and_run_returns(rig):
    async def main():
        r = rig()
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop()
        r.engine.stop()
        await asyncio.wait_for(runner, 1)
        return r

    run(main())


def test_store_upgrade_from_version_1(tmp_path):
    from importlib import resources

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.executescript(resources.files("flowlord.runtime.store").joinpath("schema.sql").read_text())
    conn.close()
    with Store.open(db) as store:
        assert store.schema_version == SCHEMA_VERSION >= 2
        store.set_last_fire("w", "p", T0)
        assert store.last_fire("w", "p") == T0


def test_system_clock():
    clock = SystemClock()
    before = clock.now()
    asyncio.run(clock.sleep_until(before + timedelta(milliseconds=20)))
    assert clock.now() >= before + timedelta(milliseconds=20) and clock.now().tzinfo is not None


def test_sim_clock_wakes_sleepers_in_time_order():
    async def main():
        clock = SimClock(T0)
        woke = []

        async def sleeper(name, seconds):
            await clock.sleep_until(T0 + timedelta(seconds=seconds))
            woke.append((name, clock.now()))

        tasks = [asyncio.create_task(sleeper(n, s)) for n, s in (("c", 3), ("a", 1), ("b", 2))]
        await yield_to_loop()
        await clock.advance_to(T0 + timedelta(seconds=10))
        await asyncio.gather(*tasks)
        with pytest.raises(ValueError):
            clock.set(T0)
        return woke

    woke = run(main())
    assert woke == [("a", T0 + timedelta(seconds=1)), ("b", T0 + timedelta(seconds=2)),
                    ("c", T0 + timedelta(seconds=3))]


@pytest.mark.parametrize("nanos, text", [
    (0, "0s"), (500, "500ns"), (12_345_678, "12.34ms"), (35_500_000_000, "35.5s"),
    (90_000_000_000, "1m30s"), (90_000_000_000_000, "1d1h"), (10_560_000, "10.56ms"),
    (1_500, "1.5µs"), (3_600_000_000_000, "1h"), (-2_000_000_000, "-2s"),
    (366 * 86_400_000_000_000, "1y1d"),
])
def test_go_print_duration(nanos, text):
    assert go_print_duration(nanos) == text


# --- group commit: done messages already waiting are recorded together -------------------------


def _describe(events):
    """Events as comparable tuples (times and ids aside: each rig makes its own)."""
    return [(e.kind, e.topic, e.task.type if e.task else "", e.task.info if e.task else "",
             e.workflow, e.phase, e.result, e.reason) for e in events]


def _chain_messages(rig_, count: int) -> list[bytes]:
    """`count` done messages of task1 (complete, error, alert, bad input, a duplicate)."""
    parent = rig_.sent("task1")[0]
    out = []
    for n in range(count):
        task = parent.replace(id=f"id-{n}", info=f"?date=2024-01-14T{n % 24:02d}")
        out.append(task.replace(result=("complete", "error", "alert")[n % 3]).to_json())
    out.insert(3, b"not json")
    out.insert(7, out[5])  # the same message twice in one batch
    return out


def test_a_batch_gives_what_one_by_one_gives(rig, tmp_path):
    """Engine.run() takes the waiting messages as one batch; the store rows (in order), the
    tasks sent and the listener's events are those of process_done called for each."""
    async def one_by_one():
        r = rig(db="one.db", no_jitter=True)
        r.engine.start()
        await r.advance(T0)
        start = len(r.events)
        for data in _chain_messages(r, 20):
            assert await r.engine.process_done(data)
        return r, r.events[start:]

    async def batched():
        r = rig(db="batch.db", no_jitter=True)
        r.engine.start()
        await r.advance(T0)
        start = len(r.events)
        batches = []
        real = r.engine.process_done_batch

        async def spy(batch):
            batches.append(len(batch))
            return await real(batch)

        r.engine.process_done_batch = spy
        for data in _chain_messages(r, 20):
            r.bus.publish_nowait("done", data)
        runner = asyncio.create_task(r.engine.run())
        await yield_to_loop(100)
        r.engine.stop()
        await asyncio.wait_for(runner, 1)
        return r, r.events[start:], batches

    a, events_a = run(one_by_one())
    b, events_b, batches = run(batched())
    assert batches == [22] and b.bus.pending("done") == 0
    assert _describe(events_b) == _describe(events_a)
    rows = lambda r: [(t.event, t.task.type, t.task.info, t.task.result, t.phase, t.attempt)
                      for t in reversed(r.store.recent_tasks(limit=1000))]
    assert rows(b) == rows(a)
    assert [x.task.info for x in b.store.pending_retries()] == \
        [x.task.info for x in a.store.pending_retries()]
    assert len(b.store.rejected()) == len(a.store.rejected()) == 1


def test_a_batch_whose_transaction_fails_is_recorded_one_by_one(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        real = r.store.record_tasks
        calls = []

        def once_broken(rows):
            calls.append(len(rows))
            if len(calls) == 1:
                raise sqlite3.OperationalError("disk I/O error")
            return real(rows)

        r.store.record_tasks = once_broken
        parent = r.sent("task1")[0]
        data = [parent.replace(id=f"id-{n}", result="complete").to_json() for n in range(5)]
        results = await r.engine.process_done_batch(data)
        return r, results, calls

    r, results, calls = run(main())
    assert results == [True] * 5
    assert calls[0] > 5 and len(calls) == 6  # the batch, then each message's children alone
    assert len(r.store.recent_tasks(event="done")) == 5
    assert len(r.sent("task2")) == 5 and len(r.sent("task3")) == 5


def test_a_store_that_fails_naks_the_batch(rig):
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)

        def broken(rows):
            raise sqlite3.OperationalError("database is locked")

        r.store.record_tasks = broken
        parent = r.sent("task1")[0]
        data = [parent.replace(id=f"id-{n}", result="complete").to_json() for n in range(3)]
        return r, await r.engine.process_done_batch(data)

    r, results = run(main())
    assert results == [False, False, False]
    assert r.store.recent_tasks(event="done") == []


def test_a_message_recorded_meanwhile_is_skipped_in_a_batch(rig):
    """has_done said no, yet the done row is there when the batch is recorded (another
    writer): the batch is recorded one by one, and that message has no effect."""
    async def main():
        r = rig()
        r.engine.start()
        await r.advance(T0)
        parent = r.sent("task1")[0]
        tasks = [parent.replace(id=f"id-{n}", result="complete") for n in range(3)]
        r.store.record_done(tasks[1], workflow="wf.toml", phase="task1:t2", at=T0)
        r.store.has_done_many = lambda given: [False] * len(list(given))
        results = await r.engine.process_done_batch([t.to_json() for t in tasks])
        return r, results

    r, results = run(main())
    assert results == [True, True, True]
    assert len(r.store.recent_tasks(event="done")) == 3
    assert len(r.store.recent_tasks(event="sent", type="task2")) == 2  # not the one seen


def test_store_batch_calls(tmp_path):
    with Store.open(tmp_path / "s.db") as store:
        a, b = Task(type="t", id="a", result="complete"), Task(type="t", id="b", result="complete")
        assert store.has_done_many([a, b]) == [False, False]
        rows = [("done", a, "w", "t", 0, "", T0), ("sent", Task(type="c", id="a"), "w", "c", 0, "c", T0)]
        assert store.record_tasks(rows) == 2
        assert store.has_done_many([a, b, a]) == [True, False, True]
        assert store.record_tasks(rows[:1]) == 0  # recorded before
        assert store.record_tasks([]) == 0
        (sent,) = store.recent_tasks(event="sent")
        assert (sent.task.type, sent.topic, sent.workflow, sent.recorded_at) == ("c", "c", "w", T0)


def test_the_checkpointer_copies_the_wal_into_the_database(tmp_path):
    """Commits do not checkpoint (the checkpointer thread does, off the event loop), and the
    WAL is still copied into the database file."""
    import time

    path = tmp_path / "c.db"
    with Store.open(path) as store:
        size = path.stat().st_size
        for n in range(40):
            with store.transaction():
                store.record_tasks([("sent", Task(type="t", id=f"{n}-{i}", info="x" * 200), "", "",
                                     0, "t", T0) for i in range(50)])
        deadline = time.monotonic() + 5
        while path.stat().st_size == size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size > size
        thread = store._db._checkpoint_thread
    assert not thread.is_alive()  # closing the store ends it
    assert not (tmp_path / "c.db-wal").exists()


def test_the_engine_on_nats_takes_messages_in_batches(tmp_path):
    """NATS JetStream: a backlog of done messages is taken in batches (take_ready), the
    children of a batch published together (publish_many), every message acked once."""
    from flowlord.runtime.bus.embedded import EmbeddedNats, NatsServerNotFound, find_nats_server
    from flowlord.runtime.bus.nats import NatsBus

    try:
        find_nats_server()
    except NatsServerNotFound:
        pytest.skip("no nats-server binary")
    plan = compile_plan(tmp_path, CHAIN)

    async def main():
        async with EmbeddedNats(tmp_path / "nats") as server:
            bus = NatsBus(server.url, prefix="eng.")
            store = Store.open(tmp_path / "n.db")
            engine = Engine(plan, store, bus, SystemClock(), Settings(files_topic="-"))
            sizes = []
            real = engine.process_done_batch

            async def spy(batch):
                sizes.append(len(batch))
                return await real(batch)

            engine.process_done_batch = spy
            parent = Task(type="task1", job="t2", info="?date=2024-01-14T20", created="2024-01-15T00:00:00Z",
                          meta="workflow=wf.toml&cron=2024-01-14T20&job=t2")
            await bus.connect()
            for n in range(300):
                await bus.publish("done", parent.replace(id=f"id-{n}", result="complete").to_json())
            children = bus.subscribe("task2", group="check")
            runner = asyncio.create_task(engine.run())
            got = []
            async for message in children:
                got.append(Task.from_json(message.data).id)
                await message.ack()
                if len(got) == 300:
                    break
            for _ in range(100):
                if await bus.pending("done") == 0:
                    break
                await asyncio.sleep(0.05)
            pending = await bus.pending("done")
            engine.stop()
            await asyncio.wait_for(runner, 5)
            await bus.close()
            done = len(store.recent_tasks(event="done", limit=1000))
            store.close()
            return sizes, got, pending, done

    sizes, got, pending, done = run(main())
    assert sorted(got) == sorted(f"id-{n}" for n in range(300))
    assert pending == 0 and done == 300 and sum(sizes) <= 300 and max(sizes) > 1
