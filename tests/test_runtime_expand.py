"""runtime.expand: the tasks of a cron firing (§11.3, §12), of a finished parent (§13.5) and of a
matched file (§15), built from real TOML compiled by the front end."""

import gzip
import json
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from flowlord.compiler import compile_paths
from flowlord.compiler.plan import PlanPhase
from flowlord.runtime.expand import (
    ExpandError,
    TaskSpec,
    child_tasks,
    cron_tasks,
    file_tasks,
)
from flowlord.runtime.timefmt import ZERO_TIME, RenderEnv, parse_query

UTC = timezone.utc
NY = ZoneInfo("America/New_York")
ENV = RenderEnv(hostname="flowlord-7f9c-abcde", new_uuid=lambda: "0a1b2c3d")


@pytest.fixture
def phases(tmp_path):
    """Compiles TOML text; returns {phase name: PlanPhase}."""

    def compile(text: str, name: str = "f1.toml", timezone: str = "UTC") -> dict[str, PlanPhase]:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        compilation = compile_paths([str(path)], timezone=timezone)
        assert compilation.plan is not None, [d.message for d in compilation.diagnostics]
        (workflow,) = compilation.plan.workflows
        return {phase.id: phase for phase in workflow.phases}

    return compile


def utc(*fields) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def summary(tasks: list[TaskSpec]) -> list[tuple[str, str]]:
    return [(t.info, t.meta_string) for t in tasks]


# upstream internal/test/f1.toml, the phases these tests use
F1 = """
[[Phase]]
task = "task1"
rule = "cron=0 * * * *&offset=-4h&job=t2&retry_delay=10ms"
retry = 3
template = "?date={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "task2"
dependsOn = "task1"
rule = ""
retry = 3
template = "{meta:file}?time={yyyy}-{mm}-{dd}"

[[Phase]]
task = "task5"
rule = "job=t5&retry_delay=10ms"
retry = 3
template = "?year={yyyy}"
DependsOn = "task1:t2"

[[Phase]]
task = "task6"
rule = "require={meta:file}"
retry = 0
template = "{meta:file}"
dependsOn = "task5"
"""


# --- plain cron -------------------------------------------------------------------------------------


def test_plain_cron_task(phases):
    (task,) = cron_tasks(phases(F1)["task1:t2"], "f1.toml", utc(2024, 1, 15, 4), env=ENV)
    assert task == TaskSpec(
        topic="task1",
        job="t2",
        info="?date=2024-01-15T00",
        meta=(("workflow", "f1.toml"), ("cron", "2024-01-15T00"), ("job", "t2")),
        meta_string="workflow=f1.toml&cron=2024-01-15T00&job=t2",
        time=utc(2024, 1, 15, 0),
        problems=(),
    )


def test_plain_cron_is_not_truncated(phases):
    wf = phases('[[Phase]]\ntask = "t"\nrule = "cron=0 0 4 * * *&offset=-90s"\ntemplate = "?at={hh}:{min}"\n')
    (task,) = cron_tasks(wf["t"], "wf.toml", utc(2024, 1, 15, 4), env=ENV)
    assert task.info == "?at=03:58"
    assert task.meta_string == "workflow=wf.toml&cron=2024-01-15T03"
    assert task.job == ""


def test_plain_cron_meta_tokens_render_empty_and_are_reported(phases):
    wf = phases('[[Phase]]\ntask = "t:j"\nrule = "cron=@daily"\ntemplate = "?table={meta:table}&d={dd}"\n')
    (task,) = cron_tasks(wf["t:j"], "wf.toml", utc(2024, 1, 15), env=ENV)
    assert task.info == "?table=&d=15"
    assert len(task.problems) == 1 and "{meta:table}" in task.problems[0]


def test_plain_cron_in_the_phase_zone(phases):
    wf = phases('[[Phase]]\ntask = "t"\nrule = "cron=0 0 1 * * *"\ntemplate = "?hour={yyyy}-{mm}-{dd}T{hh}"\n',
                timezone="America/New_York")
    (task,) = cron_tasks(wf["t"], "wf.toml", utc(2024, 1, 15, 6), env=ENV)
    assert task.info == "?hour=2024-01-15T01"
    assert task.meta_string == "workflow=wf.toml&cron=2024-01-15T01"
    assert task.time.utcoffset().total_seconds() == -5 * 3600


def test_cron_meta_escapes_a_workflow_key_go_would_corrupt(phases):
    (task,) = cron_tasks(phases(F1)["task1:t2"], "a&b.toml", utc(2024, 1, 15, 4), env=ENV)
    assert task.meta_string == "workflow=a%26b.toml&cron=2024-01-15T00&job=t2"
    assert dict(parse_query(task.meta_string)[0])["workflow"] == "a&b.toml"
    assert task.problems


def test_naive_fire_time_is_refused(phases):
    with pytest.raises(ValueError):
        cron_tasks(phases(F1)["task1:t2"], "f1.toml", datetime(2024, 1, 15))


# --- batches (§12) --------------------------------------------------------------------------------


def test_batch_ordering_reverses_the_whole_list(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=0 0 * * *&for=-24h&meta=name:a,b"\n'
                'template = "?day={yyyy}-{mm}-{dd}&name={meta:name}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert summary(tasks) == [
        ("?day=2024-01-15&name=b", "cron=2024-01-15T00&name=b&workflow=f1.toml"),
        ("?day=2024-01-15&name=a", "cron=2024-01-15T00&name=a&workflow=f1.toml"),
        ("?day=2024-01-14&name=b", "cron=2024-01-14T00&name=b&workflow=f1.toml"),
        ("?day=2024-01-14&name=a", "cron=2024-01-14T00&name=a&workflow=f1.toml"),
    ]
    assert [t.time for t in tasks] == [utc(2024, 1, 15)] * 2 + [utc(2024, 1, 14)] * 2
    assert all(t.problems == () for t in tasks)


def test_negative_for_not_a_multiple_of_the_step_skips_the_current_period(phases):
    wf = phases('[[Phase]]\ntask = "b:j"\nrule = "cron=0 0 10 * * *&for=-36h"\n'
                'template = "?hour={yyyy}-{mm}-{dd}T{hh}"\n')
    tasks = cron_tasks(wf["b:j"], "f1.toml", utc(2024, 1, 15, 10), env=ENV)
    assert summary(tasks) == [
        ("?hour=2024-01-14T22", "cron=2024-01-14T22&job=j&workflow=f1.toml"),
        ("?hour=2024-01-13T22", "cron=2024-01-13T22&job=j&workflow=f1.toml"),
    ]
    assert {t.job for t in tasks} == {"j"}


def test_positive_for_includes_an_end_hit_exactly(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&for=48h"\ntemplate = "?day={yyyy}-{mm}-{dd}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert [t.info for t in tasks] == ["?day=2024-01-15", "?day=2024-01-16", "?day=2024-01-17"]


def test_hourly_batch(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@hourly&for=-2h&by=hour"\ntemplate = "?hour={yyyy}-{mm}-{dd}T{hh}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15, 1), env=ENV)
    assert [t.info for t in tasks] == ["?hour=2024-01-15T01", "?hour=2024-01-15T00", "?hour=2024-01-14T23"]


def test_monthly_steps_drift_from_the_31st(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=0 0 0 31 * *&for=2160h&by=month"\n'
                'template = "?day={yyyy}-{mm}-{dd}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2020, 1, 31), env=ENV)
    assert [t.info for t in tasks] == ["?day=2020-01-31", "?day=2020-03-02", "?day=2020-04-02"]


def test_weekly_steps(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&for=-336h&by=week"\ntemplate = "?day={yyyy}-{mm}-{dd}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert [t.info for t in tasks] == ["?day=2024-01-15", "?day=2024-01-08", "?day=2024-01-01"]


def test_batch_is_truncated_to_the_hour(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=0 37 10 * * *&for=1h&by=hour"\ntemplate = "{hh}:{min}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15, 10, 37), env=ENV)
    assert [t.info for t in tasks] == ["10:00", "11:00"]


def test_batch_truncates_on_the_wall_clock_of_a_half_hour_zone(phases):
    """Go truncates on the UTC clock, which gives 10:30 in Kolkata (spec §20.39)."""
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=TZ=Asia/Kolkata 0 37 10 * * *&for=1h&by=hour"\n'
                'template = "{hh}:{min}"\n')
    kolkata = ZoneInfo("Asia/Kolkata")
    tasks = cron_tasks(wf["b"], "f1.toml", datetime(2024, 1, 15, 10, 37, tzinfo=kolkata), env=ENV)
    assert [t.info for t in tasks] == ["10:00", "11:00"]


def test_daily_batch_across_spring_forward_follows_go(phases):
    """Go's AddDate resolves 02:00 on 2026-03-08 (which New York skips) to 01:00 EST, and the
    following steps keep that hour."""
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=0 0 2 * * *&for=48h"\ntemplate = "{dd}T{hh}"\n',
                timezone="America/New_York")
    tasks = cron_tasks(wf["b"], "f1.toml", datetime(2026, 3, 7, 2, tzinfo=NY), env=ENV)
    assert [t.info for t in tasks] == ["07T02", "08T01", "09T01"]


def test_hourly_batch_across_fall_back_keeps_both_one_oclocks(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@hourly&for=2h&by=hour"\ntemplate = "{hh}"\n',
                timezone="America/New_York")
    tasks = cron_tasks(wf["b"], "f1.toml", datetime(2026, 11, 1, 0, tzinfo=NY), env=ENV)
    assert [t.info for t in tasks] == ["00", "01", "01"]
    assert [t.time.utcoffset().total_seconds() / 3600 for t in tasks] == [-4, -4, -5]


def test_time_only_batch_reports_meta_tokens(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&for=24h"\ntemplate = "?d={dd}&x={meta:x}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert summary(tasks) == [
        ("?d=15&x=", "cron=2024-01-15T00&workflow=f1.toml"),
        ("?d=16&x=", "cron=2024-01-16T00&workflow=f1.toml"),
    ]
    assert all("{meta:x}" in t.problems[0] for t in tasks)


def test_batch_records_only_referenced_meta_keys(phases):
    """Rows differing only in a key the template does not use give duplicate tasks (Go)."""
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&meta=a:1,2|b:x,y"\ntemplate = "?a={meta:a}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert summary(tasks) == [
        ("?a=1", "a=1&cron=2024-01-15T00&workflow=f1.toml"),
        ("?a=2", "a=2&cron=2024-01-15T00&workflow=f1.toml"),
    ]


def test_batch_meta_values_are_raw_unless_they_would_corrupt(phases):
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&meta=f:gs://b/x y,a%26b"\ntemplate = "{meta:f}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), env=ENV)
    assert summary(tasks) == [
        ("gs://b/x y", "cron=2024-01-15T00&f=gs://b/x y&workflow=f1.toml"),
        ("a&b", "cron=2024-01-15T00&f=a%26b&workflow=f1.toml"),
    ]
    assert tasks[0].problems == () and tasks[1].problems


PRESIDENTS = [
    {"name": "george washington", "start": 1789, "end": 1797},
    {"name": "john adams", "start": 1797, "end": 1801},
]


def test_meta_file_rows(phases, tmp_path):
    data = tmp_path / "test"
    data.mkdir()
    (data / "presidents.json").write_text("\n".join(json.dumps(r) for r in PRESIDENTS) + "\n\n")
    wf = phases('[[Phase]]\ntask = "batch-president"\nrule = "cron=@daily&meta-file=test/presidents.json"\n'
                'template = "?president={meta:name}&start={meta:start}&end={meta:end}"\n', name="f3.toml")
    tasks = cron_tasks(wf["batch-president"], "f3.toml", utc(2024, 1, 15), base_dir=tmp_path, env=ENV)
    assert summary(tasks) == [
        ("?president=george washington&start=1789&end=1797",
         "cron=2024-01-15T00&end=1797&name=george washington&start=1789&workflow=f3.toml"),
        ("?president=john adams&start=1797&end=1801",
         "cron=2024-01-15T00&end=1801&name=john adams&start=1797&workflow=f3.toml"),
    ]


def test_meta_file_glob_and_gzip(phases, tmp_path):
    (tmp_path / "a.json").write_text('{"k": "1"}\n')
    with gzip.open(tmp_path / "b.json.gz", "wt") as handle:
        handle.write('{"k": "2"}\nnull\n')
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&meta-file=*.json*"\ntemplate = "k={meta:k}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), base_dir=tmp_path, env=ENV)
    assert [t.info for t in tasks] == ["k=1", "k=2", "k="]
    assert tasks[2].problems  # the null row has no `k`


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no files found"),
        ('{"k": 1}\n{"k": }\n', "invalid JSON"),
        ("[1, 2]\n", "cannot unmarshal array"),
        ("", "has no rows"),
    ],
)
def test_meta_file_errors(phases, tmp_path, content, message):
    if content is not None:
        (tmp_path / "rows.json").write_text(content)
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&meta-file=rows.json"\ntemplate = "k={meta:k}"\n')
    with pytest.raises(ExpandError, match=message):
        cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), base_dir=tmp_path, env=ENV)


def test_empty_meta_file_with_a_range_gives_time_only_tasks(phases, tmp_path):
    (tmp_path / "rows.json").write_text("")
    wf = phases('[[Phase]]\ntask = "b"\nrule = "cron=@daily&meta-file=rows.json&for=24h"\ntemplate = "{dd}{meta:k}"\n')
    tasks = cron_tasks(wf["b"], "f1.toml", utc(2024, 1, 15), base_dir=tmp_path, env=ENV)
    assert [t.info for t in tasks] == ["15", "16"]


# --- children (§13.5) -----------------------------------------------------------------------------


def test_child_of_a_cron_task(phases):
    wf = phases(F1)
    (parent,) = cron_tasks(wf["task1:t2"], "f1.toml", utc(2024, 1, 15, 4), env=ENV)
    (child,) = child_tasks(wf["task5:t5"], parent, env=ENV)
    assert child.topic == "task5" and child.job == "t5"
    assert child.info == "?year=2024"
    assert child.meta_string == "workflow=f1.toml&cron=2024-01-15T00&job=t5"
    assert child.time == utc(2024, 1, 15)


def test_child_meta_is_replaced(phases):
    """Only workflow, the parent's cron and the child's job survive; the template may still use
    every parent meta value."""
    wf = phases(F1)
    parent = {"type": "task1", "job": "t2", "info": "?date=2024-01-15T00",
              "meta": "workflow=f1.toml&cron=2024-01-15T08&job=t2&file=gs://b/x.txt&retry=2"}
    (child,) = child_tasks(wf["task2"], parent, env=ENV)
    assert child.info == "gs://b/x.txt?time=2024-01-15"
    assert child.meta_string == "workflow=f1.toml&cron=2024-01-15T08"
    assert child.job == ""


def test_child_time_follows_task_time(phases):
    wf = phases(F1)
    # the cron meta wins over the info (§10)
    parent = {"info": "?time=2024-01-01T05:45:00Z", "meta": "workflow=f1.toml&cron=2024-01-01T08"}
    assert child_tasks(wf["task5:t5"], parent, env=ENV)[0].time == utc(2024, 1, 1, 8)
    # no cron: the info; no cron key in the child meta
    parent = {"info": "gs://b/2023/06/07/f.txt", "meta": "workflow=f1.toml&file=gs://b/2023/06/07/f.txt"}
    (child,) = child_tasks(wf["task5:t5"], parent, env=ENV)
    assert child.time == utc(2023, 6, 7)
    assert child.meta_string == "workflow=f1.toml&job=t5"


def test_child_without_a_time_keeps_tokens_and_reports(phases):
    wf = phases(F1)
    (child,) = child_tasks(wf["task2"], {"info": "x", "meta": "workflow=f1.toml&file=f"}, env=ENV)
    assert child.time == ZERO_TIME
    assert child.info == "f?time={yyyy}-{mm}-{dd}"
    assert child.problems[0].startswith("no task time")


def test_require_is_checked_against_the_parent_meta(phases):
    wf = phases(F1)
    without = {"info": "?day=2024-01-15", "meta": "workflow=f1.toml&cron=2024-01-15T00&job=t5"}
    assert child_tasks(wf["task6"], without, env=ENV) == []
    empty = {"info": "?day=2024-01-15", "meta": "workflow=f1.toml&file="}
    assert child_tasks(wf["task6"], empty, env=ENV) == []
    with_file = {"info": "?day=2024-01-15", "meta": "workflow=f1.toml&file=gs://b/x.txt"}
    (child,) = child_tasks(wf["task6"], with_file, env=ENV)
    assert child.info == "gs://b/x.txt"


SIBLINGS = """
[[Phase]]
task = "parent"
rule = "cron=@daily"
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "a"
dependsOn = "parent"
rule = "meta=workflow:other.toml|extra:1"
template = "?e={meta:extra}&w={meta:workflow}"

[[Phase]]
task = "b"
dependsOn = "parent"
template = "?e={meta:extra}&w={meta:workflow}"
"""


def test_child_rule_meta_does_not_leak_to_siblings(phases):
    wf = phases(SIBLINGS)
    (parent,) = cron_tasks(wf["parent"], "f1.toml", utc(2024, 1, 15), env=ENV)
    (a,) = child_tasks(wf["a"], parent, env=ENV)
    (b,) = child_tasks(wf["b"], parent, env=ENV)
    # the child's meta= rows are merged for its own template ...
    assert a.info == "?e=1&w=other.toml"
    # ... but never change the wire meta, nor the next sibling (Go leaks both)
    assert a.meta_string == b.meta_string == "workflow=f1.toml&cron=2024-01-15T00"
    assert b.info == "?e=&w=f1.toml"
    assert "meta key `extra` is missing" in b.problems[0]
    assert parent.meta == (("workflow", "f1.toml"), ("cron", "2024-01-15T00"))


def test_child_meta_with_several_values_fails_as_in_go(phases):
    wf = phases(SIBLINGS.replace("meta=workflow:other.toml|extra:1", "meta=extra:1,2"))
    (parent,) = cron_tasks(wf["parent"], "f1.toml", utc(2024, 1, 15), env=ENV)
    with pytest.raises(ExpandError, match="inconsistent lengths in meta"):
        child_tasks(wf["a"], parent, env=ENV)


def test_child_meta_file_rows_follow_the_parent_row(phases, tmp_path):
    (tmp_path / "rows.json").write_text('{"k": "x"}\n{"k": "y"}\n')
    wf = phases(SIBLINGS.replace("meta=workflow:other.toml|extra:1", "meta-file=rows.json")
                .replace("?e={meta:extra}&w={meta:workflow}", "?k={meta:k}", 1))
    (parent,) = cron_tasks(wf["parent"], "f1.toml", utc(2024, 1, 15), env=ENV)
    tasks = child_tasks(wf["a"], parent, base_dir=tmp_path, env=ENV)
    assert [t.info for t in tasks] == ["?k=", "?k=x", "?k=y"]  # Go: N+1 tasks
    assert tasks[0].problems and not tasks[1].problems


def test_capitalised_rule_keys_override_the_child(phases):
    wf = phases(SIBLINGS.replace("meta=workflow:other.toml|extra:1", "Job=orders&Task=other&Template=?d={dd}%26t={meta:workflow}"))
    (parent,) = cron_tasks(wf["parent"], "f1.toml", utc(2024, 1, 15), env=ENV)
    (a,) = child_tasks(wf["a"], parent, env=ENV)
    assert (a.topic, a.job, a.info) == ("other", "orders", "?d=15&t=f1.toml")
    assert a.meta_string == "workflow=f1.toml&cron=2024-01-15T00&job=orders"


def test_parent_meta_parse_problems_are_reported(phases):
    wf = phases(F1)
    (child,) = child_tasks(wf["task5:t5"], {"info": "", "meta": "workflow=f1.toml&cron=2024-01-15T00&x=a;b"}, env=ENV)
    assert any("x=a;b" in p for p in child.problems)


# --- files (§15) ----------------------------------------------------------------------------------

FILES = """
[[Phase]]
task = "ingest"
rule = "files=gs://logs/*/*/*/*.gz&job=web&retry_delay=30s"
template = "{meta:file}?day={yyyy}-{mm}-{dd}&name={meta:filename}&j={meta:job}"

[[Phase]]
task = "latest"
rule = "files=gs://exports/*.csv"
template = "{meta:file}?n={meta:filename}"
"""


def test_file_task(phases):
    wf = phases(FILES, name="files.toml")
    (task,) = file_tasks(wf["ingest:web"], "sub/files.toml", "gs://logs/2024/01/15/web 1.gz", env=ENV)
    assert task.topic == "ingest" and task.job == "web"
    assert task.info == "gs://logs/2024/01/15/web 1.gz?day=2024-01-15&name=web 1.gz&j=web"
    assert task.meta_string == (
        "file=gs://logs/2024/01/15/web 1.gz&filename=web 1.gz&files=gs://logs/*/*/*/*.gz"
        "&job=web&retry_delay=30s&workflow=sub/files.toml"
    )
    assert "cron" not in dict(task.meta)
    assert task.time == utc(2024, 1, 15)
    assert task.problems == ()


def test_file_task_without_a_date(phases):
    wf = phases(FILES, name="files.toml")
    (task,) = file_tasks(wf["latest"], "files.toml", "gs://exports/latest.csv", env=ENV)
    assert task.time == ZERO_TIME
    assert task.info == "gs://exports/latest.csv?n=latest.csv"
    assert task.meta_string == "file=gs://exports/latest.csv&filename=latest.csv&files=gs://exports/*.csv&workflow=files.toml"
    assert task.problems == ()  # no time token, nothing left literal
