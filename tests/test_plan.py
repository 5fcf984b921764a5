"""The execution plan: build_plan, compile_paths, workflow keys (FL503) and `flowlord plan`.

The plan JSON goldens are tests/golden/plan/<stem>.json, the stdout of `flowlord plan <example>`
run from the repository root; after an intended change, regenerate them with
`python tests/update_golden.py` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from flowlord import cli
from flowlord.compiler import compile_paths, lint_files
from flowlord.compiler.build_plan import PlanError, build_plan, stored_name
from flowlord.compiler.files import find_workflow_files, workflow_key
from flowlord.compiler.plan import Plan

REPO = Path(__file__).resolve().parents[1]
OK = sorted((REPO / "dsl_examples" / "ok").glob("*.toml"))

_GEN = Path(__file__).with_name("update_golden.py")
if "update_golden" in sys.modules:  # tests/test_golden.py loaded it already
    update_golden = sys.modules["update_golden"]
else:
    _spec = importlib.util.spec_from_file_location("update_golden", _GEN)
    update_golden = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = update_golden  # its dataclass looks itself up there
    _spec.loader.exec_module(update_golden)

REGENERATE = "run `python tests/update_golden.py` and review the diff"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def phase(task: str, *, depends_on: str = "", rule: str = "", template: str = "?x=1") -> str:
    lines = ["[[Phase]]", f'task = "{task}"']
    if depends_on:
        lines.append(f'dependsOn = "{depends_on}"')
    if rule:
        lines.append(f'rule = "{rule}"')
    lines.append(f'template = "{template}"')
    return "\n".join(lines) + "\n\n"


def planned(tmp_path: Path, text: str, name: str = "wf.toml", **options) -> Plan:
    compilation = compile_paths([write(tmp_path, name, text)], **options)
    assert not compilation.has_errors, compilation.diagnostics
    assert compilation.plan is not None
    return compilation.plan


@pytest.fixture
def run(monkeypatch, capsys):
    """(exit status, stdout, stderr) of the real CLI run in the repository root."""
    monkeypatch.chdir(REPO)

    def main(*args: str) -> tuple[int, str, str]:
        status = cli.main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return main


# --- goldens and the JSON contract --------------------------------------------------------------


@pytest.mark.parametrize("path", update_golden.PLAN_EXAMPLES)
def test_plan_json_matches_the_golden_file(path, run):
    golden = update_golden.PLAN_GOLDEN / f"{Path(path).stem}.json"
    assert golden.exists(), f"{golden.name} is missing: {REGENERATE}"
    status, out, err = run("plan", path)
    assert (status, err) == (0, "")
    assert out == golden.read_text(encoding="utf-8"), f"{golden.name} is stale: {REGENERATE}"


@pytest.mark.parametrize("path", update_golden.PLAN_EXAMPLES)
def test_golden_is_a_plan(path):
    text = (update_golden.PLAN_GOLDEN / f"{Path(path).stem}.json").read_text(encoding="utf-8")
    plan = Plan.model_validate_json(text)
    assert [w.key for w in plan.workflows] == [Path(path).name]
    assert json.loads(plan.model_dump_json()) == json.loads(text)


def test_round_trip_of_every_clean_example():
    plan = compile_paths([str(p) for p in OK]).plan
    assert plan is not None and len(plan.workflows) == len(OK)
    assert Plan.model_validate_json(plan.model_dump_json()) == plan
    assert Plan.model_validate(plan.model_dump(mode="json")) == plan


def test_plan_from_outside_is_checked_inside_its_tuples():
    # the AST takes tuples that the parsers built as they are; lists and JSON are validated
    plan = compile_paths([str(REPO / "dsl_examples" / "ok" / "jobs.toml")]).plan
    data = plan.model_dump(mode="json")
    phase = data["workflows"][0]["phases"][0]
    phase["template"]["parts"] = [{"span": phase["template"]["span"], "kind": "time", "name": "century", "written": "{cc}"}]
    with pytest.raises(ValidationError, match="century"):
        Plan.model_validate(data)
    with pytest.raises(ValidationError, match="century"):
        Plan.model_validate_json(json.dumps(data))


def test_plan_is_frozen():
    plan = compile_paths([str(REPO / "dsl_examples" / "ok" / "jobs.toml")]).plan
    with pytest.raises(Exception):
        plan.workflows[0].phases[0].id = "other"  # type: ignore[misc]


def test_hourly_etl_plan(tmp_path):
    plan = compile_paths([str(REPO / "dsl_examples" / "ok" / "hourly_etl.toml")]).plan
    [workflow] = plan.workflows
    assert (plan.version, plan.timezone, workflow.key) == (1, "UTC", "hourly_etl.toml")
    extract, load, transform = workflow.phases  # by stored task name
    assert [p.id for p in workflow.phases] == ["extract_events", "load_events", "transform_events"]
    assert (extract.trigger, extract.cron.text, extract.timezone) == ("cron", "0 5 * * * *", "UTC")
    assert extract.offset.text == "-1h" and extract.offset.nanoseconds == -3_600_000_000_000
    assert (extract.retry.retries, extract.retry.delay.text) == (3, "2m")
    assert extract.rule == (("cron", "0 5 * * * *"), ("offset", "-1h"), ("retry_delay", "2m"))
    assert extract.template.text.startswith("gs://acme-raw/events/{HOUR_SLUG}/")
    assert (transform.trigger, transform.parent.topic, transform.parent.job) == ("child", "extract_events", None)
    assert extract.children == ("transform_events",) and transform.children == ("load_events",)
    assert load.children == ()
    assert workflow.stages == (("extract_events",), ("transform_events",), ("load_events",))


def test_batch_require_and_files_are_kept(tmp_path):
    plan = compile_paths([str(REPO / "dsl_examples" / "ok" / p) for p in ("meta_fanout.toml", "file_triggered.toml")]).plan
    files, fanout = plan.workflows  # sorted by key
    [export] = fanout.phases
    assert export.batch.meta.rows[0].key == "region"
    assert export.batch.meta.rows[0].values == ("us", "eu", "apac")
    index, ingest = files.phases
    assert (ingest.trigger, ingest.files) == ("files", ("gs://acme-logs/web/*/*/*/*/*.log.gz",))
    assert index.require.keys == ("file",)


# --- order: phases, children, stages ------------------------------------------------------------


def test_phases_and_children_follow_the_stored_task_name(tmp_path):
    # Written in another order; `worker` with job=b is stored as `worker:b` (Go §5.3).
    text = (
        phase("root", rule="cron=0 0 * * *")
        + phase("zeta", depends_on="root")
        + phase("worker", depends_on="root", rule="job=b")
        + phase("alpha", depends_on="root")
        + phase("worker:a", depends_on="root")
    )
    plan = planned(tmp_path, text)
    [workflow] = plan.workflows
    assert [p.id for p in workflow.phases] == ["alpha", "root", "worker:a", "worker:b", "zeta"]
    root = workflow.phases[1]
    assert root.children == ("alpha", "worker:a", "worker:b", "zeta")
    assert workflow.stages == (("root",), ("alpha", "worker:a", "worker:b", "zeta"))


def test_topic_parent_starts_every_job_and_job_parent_one(tmp_path):
    text = (
        phase("w:x", rule="cron=0 0 * * *")
        + phase("w:y", rule="cron=0 1 * * *")
        + phase("any", depends_on="w")
        + phase("only", depends_on="w:y")
    )
    [workflow] = planned(tmp_path, text).workflows
    children = {p.id: p.children for p in workflow.phases}
    assert children == {"any": (), "only": (), "w:x": ("any",), "w:y": ("any", "only")}
    assert workflow.stages == (("w:x", "w:y"), ("any", "only"))


def test_stages_are_topological_generations(tmp_path):
    # A diamond with a tail: d waits for b and c, which wait for a; e waits for d.
    text = (
        phase("e", depends_on="d")
        + phase("d", depends_on="c")
        + phase("c", depends_on="a")
        + phase("b", depends_on="a")
        + phase("a", rule="cron=0 0 * * *")
        + phase("solo", rule="files=/in/*/x.csv")
    )
    [workflow] = planned(tmp_path, text).workflows
    assert workflow.stages == (("a", "solo"), ("b", "c"), ("d",), ("e",))
    seen: set[str] = set()
    by_id = {p.id: p for p in workflow.phases}
    for stage in workflow.stages:  # every parent is in an earlier stage
        for id in stage:
            parent = by_id[id].parent
            assert parent is None or parent.topic in seen
        seen.update(stage)


def test_workflows_are_sorted_by_key(tmp_path):
    write(tmp_path, "b.toml", phase("b", rule="cron=0 0 * * *"))
    write(tmp_path, "a/z.toml", phase("z", rule="cron=0 0 * * *"))
    plan = compile_paths([str(tmp_path)]).plan
    assert [w.key for w in plan.workflows] == ["a/z.toml", "b.toml"]


def test_stored_name():
    compilation = lint_files([str(REPO / "dsl_examples" / "ok" / "jobs.toml")])
    names = sorted(stored_name(p) for p in compilation.workflows[0].phases)
    assert names == ["report:warehouse_daily", "warehouse:compact", "warehouse:snapshot", "warehouse:vacuum"]


def test_a_cycle_has_no_plan(tmp_path):
    path = write(tmp_path, "wf.toml", phase("a", depends_on="b") + phase("b", depends_on="a"))
    compilation = lint_files([path])
    with pytest.raises(PlanError, match='"a" -> "b" -> "a"|"b" -> "a" -> "b"'):
        build_plan(compilation.workflows, {path: "wf.toml"})


# --- triggers and zones -------------------------------------------------------------------------


def test_trigger_kinds(tmp_path):
    text = (
        phase("c", rule="cron=0 0 * * *")
        + phase("f", rule="files=/in/*/x.csv")
        + phase("cf", rule="cron=0 0 * * *&files=/in/*/y.csv")
        + phase("child", depends_on="c")
        + phase("both", depends_on="c", rule="cron=0 0 * * *")
    )
    [workflow] = planned(tmp_path, text).workflows
    kinds = {p.id: (p.trigger, p.parent is not None) for p in workflow.phases}
    assert kinds == {
        "c": ("cron", False),
        "f": ("files", False),
        "cf": ("cron+files", False),
        "child": ("child", True),
        "both": ("cron", True),  # started by its cron and by its parent (Go runs both)
    }


def test_cron_zone_is_the_spec_zone_else_the_plan_zone(tmp_path):
    text = (
        phase("local", rule="cron=0 0 * * *")
        + phase("paris", rule="cron=TZ=Europe/Paris 0 0 * * *")
        + phase("child", depends_on="local")
    )
    plan = planned(tmp_path, text, timezone="America/New_York")
    assert plan.timezone == "America/New_York"
    zones = {p.id: p.timezone for p in plan.workflows[0].phases}
    assert zones == {"local": "America/New_York", "paris": "Europe/Paris", "child": "America/New_York"}


def test_unknown_zone_raises_value_error(tmp_path):
    with pytest.raises(ValueError, match="unknown time zone"):
        compile_paths([write(tmp_path, "wf.toml", phase("a", rule="cron=0 0 * * *"))], timezone="Mars/Olympus")


# --- workflow keys ------------------------------------------------------------------------------


def test_keys_are_relative_to_the_folder_argument(tmp_path):
    write(tmp_path, "flows/top.toml", phase("t", rule="cron=0 0 * * *"))
    write(tmp_path, "flows/team/a.toml", phase("a", rule="cron=0 0 * * *"))
    write(tmp_path, "flows/team/deep/b.toml", phase("b", rule="cron=0 0 * * *"))
    write(tmp_path, "flows/.hidden/h.toml", "not toml")
    single = write(tmp_path, "other/dir/c.toml", phase("c", rule="cron=0 0 * * *"))
    found = find_workflow_files([str(tmp_path / "flows"), single])
    assert [key for _, key in found] == ["team/a.toml", "team/deep/b.toml", "top.toml", "c.toml"]
    plan = compile_paths([str(tmp_path / "flows"), single]).plan
    assert {w.key: Path(w.path).name for w in plan.workflows} == {
        "c.toml": "c.toml", "team/a.toml": "a.toml", "team/deep/b.toml": "b.toml", "top.toml": "top.toml"
    }


def test_a_file_found_twice_keeps_its_first_key(tmp_path):
    path = write(tmp_path, "flows/team/a.toml", phase("a", rule="cron=0 0 * * *"))
    found = find_workflow_files([str(tmp_path / "flows"), path, str(tmp_path / "flows" / "team")])
    assert [key for _, key in found] == ["team/a.toml"]


def test_workflow_key():
    assert workflow_key("x/y/z.toml") == "z.toml"
    assert workflow_key("x/y/z.toml", "x") == "y/z.toml"
    assert workflow_key("./x/z.toml", ".") == "x/z.toml"


def test_missing_path_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_workflow_files([str(tmp_path / "nope")])


def test_key_collision_is_fl503_and_gives_no_plan(tmp_path):
    one = write(tmp_path, "one/flow.toml", phase("a", rule="cron=0 0 * * *"))
    two = write(tmp_path, "two/flow.toml", phase("b", rule="cron=0 0 * * *"))
    for paths in ([one, two], [str(tmp_path / "one"), str(tmp_path / "two")]):
        compilation = compile_paths(paths)
        assert compilation.plan is None
        [d] = compilation.diagnostics
        assert (d.code, d.severity, d.span.path) == ("FL503", "error", two)
        assert [label.span.path for label in d.secondary] == [one]
        assert "`flow.toml`" in d.message
    assert compile_paths([str(tmp_path)]).plan is not None  # keys one/flow.toml, two/flow.toml


def test_lint_reports_key_collisions_too(tmp_path, capsys):
    one = write(tmp_path, "one/flow.toml", phase("a", rule="cron=0 0 * * *"))
    two = write(tmp_path, "two/flow.toml", phase("b", rule="cron=0 0 * * *"))
    assert cli.main(["lint", "--no-color", one, two]) == 1
    assert "error[FL503]" in capsys.readouterr().out
    assert cli.main(["lint", "--no-color", str(tmp_path)]) == 0


# --- flowlord plan ------------------------------------------------------------------------------


def test_plan_command_prints_a_loadable_plan(run):
    status, out, err = run("plan", "dsl_examples/ok")
    assert (status, err) == (0, "")
    plan = Plan.model_validate_json(out)
    assert [w.key for w in plan.workflows] == sorted(p.name for p in OK)
    assert out.startswith('{\n  "version": 1,\n  "timezone": "UTC",\n')


def test_plan_command_timezone(run):
    status, out, _ = run("plan", "--timezone", "Asia/Tokyo", "dsl_examples/ok/jobs.toml")
    assert status == 0
    plan = Plan.model_validate_json(out)
    assert plan.timezone == "Asia/Tokyo" and plan.workflows[0].phases[2].timezone == "Asia/Tokyo"


def test_plan_command_errors_exit_1_with_diagnostics_on_stderr(run):
    status, out, err = run("plan", "--no-color", "dsl_examples/err/FL206-bad-duration.toml")
    assert (status, out) == (1, "")
    assert "error[FL206]" in err and err.endswith("error\n")


def test_plan_command_key_collision_exits_1(run):
    folder = "dsl_examples/err/FL503-workflow-key-collision"
    status, out, err = run("plan", "--no-color", f"{folder}/orders", f"{folder}/users")
    assert (status, out) == (1, "")
    assert "error[FL503]" in err
    status, out, _ = run("plan", folder)
    assert status == 0
    assert [w.key for w in Plan.model_validate_json(out).workflows] == ["orders/daily.toml", "users/daily.toml"]


def test_plan_command_warnings_go_to_stderr_and_the_plan_is_printed(run, tmp_path):
    path = write(tmp_path, "wf.toml", phase("a", rule="cron=0 0 * * *&no_alert=false"))
    status, out, err = run("plan", "--no-color", path)
    assert status == 0
    assert "warning[FL216]" in err
    assert Plan.model_validate_json(out).workflows[0].phases[0].id == "a"


@pytest.mark.parametrize(
    "args, message",
    [
        (["dsl_examples/ok/nope.toml"], "dsl_examples/ok/nope.toml: no such file or directory"),
        (["--timezone", "Mars/Olympus", "dsl_examples/ok"], "--timezone: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_plan_command_user_errors_exit_2(run, args, message):
    status, out, err = run("plan", *args)
    assert (status, out) == (2, "")
    assert err.startswith(f"flowlord plan: {message}")


def test_plan_command_needs_a_path(run):
    status, out, err = run("plan")
    assert status == 2 and "PATH" in err


def test_plan_command_on_an_empty_folder(run, tmp_path):
    status, out, err = run("plan", str(tmp_path))
    assert status == 0 and "no *.toml files" in err
    assert Plan.model_validate_json(out) == Plan()


def test_json_text_puts_flat_containers_on_one_line():
    value = {"a": [1, 2], "b": {"c": {"d": 1}, "e": []}, "f": "é"}
    text = cli.json_text(value)
    assert json.loads(text) == value
    assert text == '{\n  "a": [1, 2],\n  "b": {\n    "c": {"d": 1},\n    "e": []\n  },\n  "f": "é"\n}'


# --- flowlord plan --at / --next ----------------------------------------------------------------


def plan_output(run, *args: str) -> dict:
    status, out, err = run("plan", *args)
    assert (status, err) == (0, "")
    Plan.model_validate_json(out)  # `at` and `next` sit beside the plan, which still loads
    return json.loads(out)


def test_at_lists_the_exact_task_of_a_plain_cron(run):
    output = plan_output(run, "dsl_examples/ok/hourly_etl.toml", "--at", "2026-03-05T07:05:00Z")
    assert output["at"] == {
        "instant": "2026-03-05T07:05:00Z",
        "tasks": [
            {
                "workflow": "hourly_etl.toml",
                "phase": "extract_events",
                "topic": "extract_events",
                "job": None,
                "info": "gs://acme-raw/events/2026/03/05/06/?hour=2026-03-05T06",  # offset=-1h
                "meta": "workflow=hourly_etl.toml&cron=2026-03-05T06",
                "problems": [],
            }
        ],
        "errors": [],
    }


def test_at_an_instant_when_nothing_fires(run):
    # `0 5 * * * *` fires at five past (seconds first): nothing at 07:00:00.
    output = plan_output(run, "dsl_examples/ok/hourly_etl.toml", "--at", "2026-03-05T07:00:00Z")
    assert output["at"] == {"instant": "2026-03-05T07:00:00Z", "tasks": [], "errors": []}
    assert "next" not in output


def test_at_expands_a_meta_batch(run):
    output = plan_output(run, "dsl_examples/ok", "--at", "2026-03-05T02:30:00Z")
    tasks = output["at"]["tasks"]
    assert [(t["workflow"], t["phase"]) for t in tasks] == [("meta_fanout.toml", "export_orders")] * 3
    assert [t["meta"] for t in tasks] == [
        f"bucket=acme-{r}&cron=2026-03-04T02&region={r}&workflow=meta_fanout.toml" for r in ("us", "eu", "apac")
    ]
    assert tasks[0]["info"] == "?day=2026-03-04&region=us&dest=gs://acme-us/orders/2026/03/04/"


def test_at_expands_a_for_by_batch(run):
    output = plan_output(run, "dsl_examples/ok/backfill.toml", "--at", "2026-03-06T03:00:00Z")
    infos = [t["info"] for t in output["at"]["tasks"]]
    assert len(infos) == 49  # for=-48h&by=hour: 03:00 back to 03:00 two days before, both ends
    assert infos[0] == "?hour=2026-03-06T03" and infos[-1] == "?hour=2026-03-04T03"


def test_at_without_an_offset_is_read_in_the_timezone(run):
    output = plan_output(
        run, "dsl_examples/ok/hourly_etl.toml", "--timezone", "Europe/Paris", "--at", "2026-03-05T08:05:00"
    )
    [task] = output["at"]["tasks"]
    assert output["at"]["instant"] == "2026-03-05T07:05:00Z"
    assert task["meta"] == "workflow=hourly_etl.toml&cron=2026-03-05T07"  # 08:05 Paris - 1h


def test_at_reports_a_batch_go_would_refuse(run, tmp_path):
    path = write(tmp_path, "mf.toml", phase("mf", rule="cron=0 0 * * *&meta-file=missing/rows.json", template="?id={meta:id}"))
    output = plan_output(run, path, "--at", "2026-03-05T00:00:00Z")
    assert output["at"]["tasks"] == []
    [error] = output["at"]["errors"]
    assert (error["workflow"], error["phase"]) == ("mf.toml", "mf") and "missing/rows.json" in error["error"]


def test_next_lists_fire_times_per_cron_phase(run):
    output = plan_output(run, "dsl_examples/ok", "--at", "2026-03-05T07:05:00Z", "--next", "2")
    assert output["next"] == {
        "backfill.toml": {
            "rollup_daily": ["2026-03-08T04:15:00Z", "2026-03-15T04:15:00Z"],
            "rollup_hourly": ["2026-03-06T03:00:00Z", "2026-03-07T03:00:00Z"],
        },
        "hourly_etl.toml": {"extract_events": ["2026-03-05T08:05:00Z", "2026-03-05T09:05:00Z"]},
        "jobs.toml": {"warehouse:snapshot": ["2026-03-06T01:00:00Z", "2026-03-07T01:00:00Z"]},
        "meta_fanout.toml": {"export_orders": ["2026-03-06T02:30:00Z", "2026-03-07T02:30:00Z"]},
    }


def test_next_times_are_in_the_phase_zone(run, tmp_path):
    path = write(
        tmp_path, "z.toml",
        phase("tokyo", rule="cron=0 0 1 * * *") + phase("paris", rule="cron=TZ=Europe/Paris 0 0 1 * * *"),
    )
    output = plan_output(run, path, "--timezone", "Asia/Tokyo", "--at", "2026-03-28T00:00:00Z", "--next", "2")
    assert output["next"] == {
        "z.toml": {
            # 00:00Z is 01:00 in Paris, and fire times come strictly after; summer time from the 29th
            "paris": ["2026-03-29T01:00:00+01:00", "2026-03-30T01:00:00+02:00"],
            "tokyo": ["2026-03-29T01:00:00+09:00", "2026-03-30T01:00:00+09:00"],
        }
    }


def test_next_without_at_starts_now(run):
    from datetime import datetime, timezone

    before = datetime.now(timezone.utc)
    output = plan_output(run, "dsl_examples/ok/hourly_etl.toml", "--next", "1")
    assert "at" not in output
    [fire] = output["next"]["hourly_etl.toml"]["extract_events"]
    moment = datetime.fromisoformat(fire)
    assert before < moment and (moment - before).total_seconds() <= 3600


@pytest.mark.parametrize(
    "args, message",
    [
        (["--at", "yesterday"], "--at: 'yesterday' is not an ISO 8601 time"),
        (["--at", "2026-13-01T00:00:00Z"], "--at: '2026-13-01T00:00:00Z' is not an ISO 8601 time"),
        (["--next", "0"], "--next: 0 is not a positive number"),
    ],
)
def test_bad_at_or_next_exits_2(run, args, message):
    status, out, err = run("plan", "dsl_examples/ok", *args)
    assert (status, out) == (2, "")
    assert err.startswith(f"flowlord plan: {message}")
