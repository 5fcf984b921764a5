"""The dashboard and HTTP API (runtime/web) on the JSON twins, against a real store filled by a
real engine (MemoryBus, SimClock): cron fires, done messages, retries, alerts, file messages."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import webtest
from prometheus_client.parser import text_string_to_metric_families

from flowlord.compiler import compile_paths
from flowlord.runtime.bus.memory import MemoryBus
from flowlord.runtime.clock import SimClock
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.store import Store
from flowlord.runtime.summary import alert_groups, print_dates
from flowlord.runtime.task import Task
from flowlord.runtime.web import WebContext, make_app
from flowlord.web import WorkflowDrawing

UTC = timezone.utc
T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)
XSS = "<script>window.__xss=1</script>"

WORKFLOW = """
[[Phase]]
task = "extract"
rule = "cron=0 * * * *&offset=-1h"
retry = 1
template = "?hour={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "load"
dependsOn = "extract"
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "ingest"
rule = "files=/data/*/in.csv"
template = "{meta:file}"

[[Phase]]
task = "report"
rule = "cron=0 0 6 * * *&meta=name:a,b"
template = "?day={yyyy}-{mm}-{dd}&name={meta:name}"
"""

DAILY = """
[[Phase]]
task = "rollup"
rule = "cron=0 30 2 * * *"
template = "?day={yyyy}-{mm}-{dd}"
"""


@dataclass
class Site:
    folder: Path
    store: Store
    engine: Engine
    bus: MemoryBus
    clock: SimClock
    ctx: WebContext
    app: webtest.TestApp
    ids: SimpleNamespace

    def context(self, **changes) -> WebContext:
        values = {f: getattr(self.ctx, f) for f in self.ctx.__dataclass_fields__}
        values.update(changes)
        return WebContext(**values)

    def client(self, **changes) -> webtest.TestApp:
        return webtest.TestApp(make_app(self.context(**changes)))


def build_site(root: Path) -> Site:
    """Workflows, an engine and a store with a day of history; the app made before the events,
    so that its metrics saw them."""
    folder = root / "workflows"
    folder.mkdir()
    (folder / "etl.toml").write_text(WORKFLOW, encoding="utf-8")
    (folder / "daily.toml").write_text(DAILY, encoding="utf-8")
    (root / "outside.txt").write_text("secret", encoding="utf-8")
    compilation = compile_paths([str(folder)])
    assert compilation.plan is not None, [d.message for d in compilation.diagnostics]
    plan = compilation.plan
    clock = SimClock(T0)
    store = Store.open(root / "flowlord.db")
    bus = MemoryBus()
    engine = Engine(plan, store, bus, clock, Settings(rng=random.Random(3), no_jitter=True))
    drawing = WorkflowDrawing([str(folder)])

    def explain(code: str) -> str:
        from flowlord.compiler.report import explain as compiler_explain

        return compiler_explain(code)

    ctx = WebContext(
        store=store, engine=engine, diagnostics=lambda: drawing.problems(engine.plan),
        diagram_svg=lambda: drawing.diagram(engine.plan), explain=explain,
        reload=lambda: {"status": "unchanged", "added": [], "removed": [], "modified": [],
                        "problems": []},
        workflow_root=str(folder), settings={"http_port": 8080, "token": "hidden",
                                             "slack": {"url": "https://hooks.example/x"},
                                             "bus": "nats://user:pw@host:4222"},
        started_at=T0, version="9.9.9", bus_status=lambda: {"kind": "MemoryBus", "status": "ok",
                                                             "lag": {"done": 3}},
    )
    app = webtest.TestApp(make_app(ctx))
    ids = asyncio.run(_history(engine, clock, bus, store))
    return Site(folder, store, engine, bus, clock, ctx, app, ids)


async def _advance(engine: Engine, clock: SimClock, until: datetime) -> None:
    while (due := engine.next_due()) is not None and due <= until:
        clock.set(max(due, clock.now()))
        await engine.run_due(due)
    clock.set(until)


def _sent(bus: MemoryBus, topic: str) -> list[Task]:
    return [Task.from_json(m) for m in bus.published(topic)]


async def _history(engine: Engine, clock: SimClock, bus: MemoryBus, store: Store) -> SimpleNamespace:
    engine.start()
    await _advance(engine, clock, T0 + timedelta(hours=3, minutes=10))
    extract = _sent(bus, "extract")
    assert [t.info for t in extract] == [f"?hour=2024-01-{d}" for d in ("14T23", "15T00", "15T01", "15T02")]
    first, second = extract[:2]

    def done(task: Task, result: str, at: datetime, **changes) -> bytes:
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return task.replace(result=result, started=(at + timedelta(seconds=5)).strftime(stamp),
                            ended=(at + timedelta(seconds=45)).strftime(stamp), **changes).to_json()

    clock.set(T0 + timedelta(hours=3, minutes=20))
    assert await engine.process_done(done(first, "complete", clock.now()))
    (load,) = _sent(bus, "load")
    assert await engine.process_done(done(load, "complete", clock.now()))
    assert await engine.process_done(done(second, "error", clock.now(), msg="disk full"))
    await _advance(engine, clock, T0 + timedelta(hours=3, minutes=21))
    retry = [t for t in _sent(bus, "extract") if t.id == second.id][-1]
    assert retry.created != second.created
    assert await engine.process_done(done(retry, "error", clock.now(), msg="disk still full"))
    # the XSS probe: a task someone else sent, done with script in its info and msg
    probe = Task(type="extract", info=XSS, created="2024-01-15T03:30:00Z", id="probe-1",
                 meta="workflow=etl.toml&cron=2024-01-15T02")
    clock.set(T0 + timedelta(hours=3, minutes=30))
    assert await engine.process_done(done(probe, "warn", clock.now(), msg=XSS))
    for path in ("/data/2024/in.csv", "/other/file.txt"):
        data = json.dumps({"path": path, "size": 1234, "created": "2024-01-15T03:00:00Z"}).encode()
        assert await engine.process_file(data)
    (ingest,) = _sent(bus, "ingest")
    return SimpleNamespace(first=first.id, second=second.id, load=load.id,
                           probe="probe-1", ingest=ingest.id)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    made = build_site(tmp_path_factory.mktemp("site"))
    yield made
    made.store.close()


# --- summaries ---------------------------------------------------------------------------------


@pytest.mark.parametrize("times, expected", [
    ([datetime(2018, 4, 9, h) for h in (3, 4, 5)], "2018/04/09T03-2018/04/09T05"),
    ([datetime(2018, 4, d) for d in (9, 10, 11, 12, 15, 16, 17)],
     "2018/04/09-2018/04/12,2018/04/15-2018/04/17"),
    ([datetime(2018, m, 1) for m in (1, 2, 3)], "2018/01-2018/03"),
    ([datetime(2018, 1, 1), datetime(2018, 3, 1)], "2018/01/01T00,2018/03/01T00"),
    ([datetime(2018, 1, 1, 3)], "2018/01/01T03"),
    ([], ""),
    ([datetime(2018, 4, 9, 3), datetime(2018, 4, 9, 3), datetime(2018, 4, 9, 4)],
     "2018/04/09T03-2018/04/09T04"),
])
def test_print_dates_matches_go(times, expected):
    assert print_dates(times) == expected


def test_alert_groups_sorted_by_count_then_key():
    groups = alert_groups([("b", "", "2024-01-01T03:00:00Z"), ("a", "j", "2024-01-01T04:00:00Z"),
                           ("b", "", "2024-01-01T04:00:00Z")])
    assert [(g.key, g.count, g.dates) for g in groups] == [
        ("b", 2, "2024/01/01T03-2024/01/01T04"), ("a:j", 1, "2024/01/01T04")]
    assert groups[0].line() == "b:" + " " * 33 + "    2  2024/01/01T03-2024/01/01T04"


# --- tasks ---------------------------------------------------------------------------------------


def test_tasks_of_a_day_with_counts_chart_and_durations(site):
    data = site.app.get("/web/task.json?date=2024-01-15").json
    assert data["date"] == "2024-01-15" and data["page"] == 1 and data["pages"] == 1
    counts = data["counts"]
    # 4 extract fires + 1 retry + load + rollup + ingest + the probe (a done message of a task
    # sent by no one here)
    assert counts["total"] == 9
    assert (counts["complete"], counts["error"], counts["warn"], counts["alert"]) == (2, 2, 1, 0)
    assert counts["running"] == 4  # two extracts, the rollup and the ingest task
    load = next(t for t in data["tasks"] if t["type"] == "load")
    assert (load["result"], load["queue"], load["run"]) == ("complete", "00:00:05", "00:00:40")
    assert load["href"] == "/web/task/" + site.ids.first
    hours = {b["hour"]: b["total"] for b in data["chart"]["bars"] if b["total"]}
    assert hours == {"00": 1, "01": 1, "02": 2, "03": 5}
    running = [s for b in data["chart"]["bars"] for s in b["segments"] if s["result"] == "running"]
    assert sum(s["count"] for s in running) == 4
    assert data["days"] == ["2024-01-15"]
    assert "extract" in data["types"] and "load" in data["types"]


@pytest.mark.parametrize("query, count", [
    ("type=extract", 6), ("result=running", 4), ("result=error", 2), ("type=extract&result=error", 2),
    ("type=load&result=complete", 1), ("type=nothing", 0),
])
def test_task_filters(site, query, count):
    data = site.app.get(f"/web/task.json?date=2024-01-15&{query}").json
    assert data["total"] == count == len(data["tasks"])
    assert data["counts"]["total"] == 9  # the day's counts ignore the filters


def test_task_filter_by_id_finds_the_chain_on_any_day(site):
    data = site.app.get(f"/web/task.json?date=2023-01-01&id={site.ids.first}").json
    assert sorted(t["type"] for t in data["tasks"]) == ["extract", "load"]


def test_pagination(site, tmp_path):
    store = Store.open(tmp_path / "many.db")
    for n in range(230):
        store.record_sent(Task(type="t", info=f"?n={n}", created=f"2024-02-01T{n // 60:02d}:{n % 60:02d}:00Z",
                               id=f"id{n}"))
    client = site.client(store=store, engine=None)
    first = client.get("/web/task.json?date=2024-02-01").json
    assert (first["total"], first["pages"], len(first["tasks"])) == (230, 3, 100)
    last = client.get("/web/task.json?date=2024-02-01&page=3").json
    assert len(last["tasks"]) == 30 and last["first"] == 201 and last["last"] == 230
    assert first["tasks"][0]["info"] == "?n=229"  # newest first
    assert client.get("/web/task.json?date=2024-02-01&page=4", status=400).json["error"].startswith("page")
    html = client.get("/web/task?date=2024-02-01&page=2").text
    assert "page 2 of 3" in html and "page=3" in html and "page=1" in html
    store.close()


def test_task_chain_has_parent_children_and_retries(site):
    chain = site.app.get(f"/web/task/{site.ids.second}.json").json
    (link,) = chain["chain"]
    assert link["phase"] == "extract" and link["retries"] == 1 and link["result"] == "error"
    assert [a["try"] for a in link["attempts"]] == [1, 2]
    assert link["children"] == ["load"]
    whole = site.app.get(f"/web/task/{site.ids.first}",
                         headers={"Accept": "application/json"}).json
    phases = [(c["phase"], c["parent"], c["depth"]) for c in whole["chain"]]
    assert phases == [("extract", None, 0), ("load", "extract", 1)]
    assert whole["completed"] is True
    assert site.app.get("/web/task/nope.json", status=404).json["error"] == "no task with id nope"


def test_task_api_is_go_shaped(site):
    data = site.app.get(f"/task/{site.ids.second}").json
    assert data["Completed"] is True and len(data["Events"]) == 5  # sent, done, retry, done, failed copy
    assert {"type", "info", "created", "id"} <= set(data["Events"][0])
    assert site.app.get("/task/unknown").json == {"LastUpdate": "0001-01-01T00:00:00Z",
                                                  "Completed": False, "Events": None}


# --- alerts, files, workflows ----------------------------------------------------------------------


def test_alerts_of_a_day_with_the_compact_summary(site):
    data = site.app.get("/web/alert.json?date=2024-01-15").json
    assert data["total"] == len(data["alerts"]) >= 1
    (group,) = [g for g in data["summary"] if g["key"] == "extract"]
    assert group["count"] >= 1 and group["dates"].startswith("2024/01/15T")
    failed = [a for a in data["alerts"] if a["task_id"] == site.ids.second]
    assert failed and failed[0]["msg"] == "disk still full"
    assert site.app.get("/web/alert.json?date=2024-01-16").json["alerts"] == []


def test_files_matched_and_not_with_the_tasks_they_started(site):
    data = site.app.get("/web/files.json?date=2024-01-15").json
    assert data["counts"] == {"total": 2, "matched": 1, "tasks": 1, "unmatched": 1}
    by_path = {f["path"]: f for f in data["files"]}
    started = by_path["/data/2024/in.csv"]["tasks"]
    assert [(t["type"], t["id"]) for t in started] == [("ingest", site.ids.ingest)]
    assert by_path["/other/file.txt"]["matched"] is False
    only = site.app.get("/web/files.json?date=2024-01-15&show=unmatched").json
    assert [f["path"] for f in only["files"]] == ["/other/file.txt"]


def test_workflows_with_fire_times_children_and_diagram(site):
    data = site.app.get("/web/workflow.json").json
    etl = next(w for w in data["workflows"] if w["key"] == "etl.toml")
    phases = {p["id"]: p for p in etl["phases"]}
    assert phases["extract"]["next"] == "2024-01-15T04:00:00Z"
    assert phases["extract"]["prev"] == "2024-01-15T03:00:00Z"
    assert phases["extract"]["children"] == ["load"] and phases["load"]["parent"] == "extract"
    assert phases["ingest"]["files"] == ["/data/*/in.csv"]
    assert phases["load"]["latest"]["state"] == "complete"
    svg = data["diagram"]
    assert svg.startswith("<svg") and "<script" not in svg
    assert 'data-phase="extract"' in svg and 'data-phase="rollup"' in svg
    assert 'class="node phase state-complete"' in svg
    html = site.app.get("/web/workflow").text
    assert "<svg" in html and 'data-phase="load"' in html


def test_diagnostics_link_to_their_code_page(site):
    problems = [{"file": str(site.folder / "etl.toml"), "line": 3, "column": 8,
                 "severity": "warning", "code": "FL604", "message": "never runs", "help": None}]
    client = site.client(diagnostics=lambda: problems)
    data = client.get("/web/workflow.json").json
    etl = next(w for w in data["workflows"] if w["key"] == "etl.toml")
    assert etl["diagnostics"] == problems
    assert 'href="/codes/FL604"' in client.get("/web/workflow").text
    code = site.app.get("/codes/FL604.json").json
    assert code["code"] == "FL604" and "FL604" in code["text"]
    assert "FL604" in site.app.get("/codes/FL604").text
    site.app.get("/codes/FL999", status=404)
    site.app.get("/codes/%3Cb%3E", status=400)


def test_info_and_recap_are_go_shaped(site):
    info = site.app.get("/info").json
    assert info["app_name"] == "flowlord" and info["version"] == "9.9.9"
    extract = info["workflow"]["etl.toml"]["extract"]
    assert extract["Schedule"] == ["0 * * * *?offset=-1h"] and extract["Child"] == ["load"]
    assert info["workflow"]["etl.toml"]["ingest"]["Schedule"] == ["/data/*/in.csv"]
    assert "load" not in info["workflow"]["etl.toml"]
    text = site.app.get("/recap?date=2024-01-15").text
    assert "load\n\tmin: 40s max: 40s avg: 40s\n\tComplete: 1 2024/01/14T23\n" in text
    assert "rollup\n\tmin: - max: - avg: -\n\tRunning: 1 2024/01/15T02\n" in text
    recap = site.app.get("/recap?date=2024-01-15", headers={"Accept": "application/json"}).json
    assert recap["extract"]["error"]["Count"] == 2


def test_about_masks_secrets(site):
    data = site.app.get("/web/about.json").json
    assert data["version"] == "9.9.9" and data["plan"]["workflows"] == 2
    assert data["settings"]["token"] == "(set)" and data["settings"]["slack"]["url"] == "(set)"
    assert data["settings"]["bus"] == "nats://***@host:4222"
    assert data["store"]["tables"]["tasks"] > 0 and data["store"]["status"] == "ok"
    assert data["bus"]["lag"] == {"done": 3}
    assert site.app.get("/").text == site.app.get("/web/about").text


# --- bad input, errors, escaping -------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "/web/task?date=2024-13-01", "/web/task?date=yesterday", "/web/task?page=0",
    "/web/task?page=abc", "/web/task?result=bogus", "/web/alert?date=2024-1-1",
    "/web/files?show=some", "/web/task?page=99", "/recap?date=nope", "/web/task?type=" + "x" * 300,
    "/web/task?id=%01",
])
def test_bad_parameters_are_400_with_a_message(site, url):
    reply = site.app.get(url, status=400)
    assert "Traceback" not in reply.text
    as_json = site.app.get(url, headers={"Accept": "application/json"}, status=400).json
    assert as_json["status"] == 400 and as_json["error"]


def test_an_unexpected_error_is_a_clean_500(site, caplog):
    def broken():
        raise RuntimeError("the secret detail")

    client = site.client(diagnostics=broken)
    with caplog.at_level(logging.ERROR, logger="flowlord.web"):
        reply = client.get("/web/workflow", status=500, expect_errors=True)
    assert "the secret detail" not in reply.text and "Traceback" not in reply.text
    assert "internal error" in reply.text
    assert "the secret detail" in caplog.text  # in the log instead


def test_unknown_page_and_method(site):
    assert "no page at /nowhere" in site.app.get("/nowhere", status=404).text
    site.app.post("/web/task", status=405)


def test_script_in_task_data_is_escaped(site):
    html = site.app.get("/web/task?date=2024-01-15").text
    assert XSS not in html and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in html
    chain = site.app.get("/web/task/probe-1").text
    assert XSS not in chain and "&lt;script&gt;" in chain
    assert site.app.get("/web/task.json?date=2024-01-15").json["tasks"][0]["info"] is not None


def test_workflow_files_are_confined_to_the_folder(site):
    listing = site.app.get("/workflow/").text.split()
    assert listing == ["daily.toml", "etl.toml"]
    reply = site.app.get("/workflow/etl.toml")
    assert reply.content_type == "application/toml" and "extract" in reply.text
    for bad in ("/workflow/../outside.txt", "/workflow/%2e%2e/outside.txt", "/workflow/a/../../outside.txt"):
        assert site.app.get(bad, expect_errors=True).status_int in (400, 404)
    link = site.folder / "escape.toml"
    link.symlink_to(site.folder.parent / "outside.txt")
    try:
        assert site.app.get("/workflow/escape.toml", status=403).json["error"].endswith(
            "outside the workflow folder")
    finally:
        link.unlink()
    site.app.get("/workflow/missing.toml", status=404)


def test_static_files_and_security_headers(site):
    css = site.app.get("/static/style.css")
    assert css.content_type == "text/css" and "--complete" in css.text
    assert "default-src 'self'" in css.headers["Content-Security-Policy"]
    site.app.get("/static/nothing.css", status=404)
    site.app.get("/static/", status=404)


# --- backload ------------------------------------------------------------------------------------


def _backload(client, body, status=200, **headers):
    return client.post("/backload", json.dumps(body), status=status,
                       headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("body, count", [
    ({"Task": "extract", "From": "2020-01-01T00", "To": "2020-01-02T23", "By": "hour"}, 48),
    ({"task": "extract", "from": "2020-01-01", "to": "2020-02-01"}, 32),
    ({"Task": "extract", "From": "2020-01-01", "To": "2020-12-01", "By": "month"}, 12),
    ({"Task": "extract", "From": "2020-01-01", "To": "2020-02-01", "By": "weekly"}, 5),
    ({"Task": "extract", "At": "2020-01-05T07"}, 1),
    ({"Task": "report", "At": "2020-01-05"}, 2),  # the phase's meta rows: name a, b
    ({"Task": "report", "At": "2020-01-05", "meta": {"name": ["x", "y", "z"]}}, 3),
])
def test_backload_dry_run_counts(site, body, count):
    data = _backload(site.app, body).json
    assert data["Count"] == count == len(data["Tasks"])
    assert data["Status"].startswith("DRY RUN ONLY: phase found in")


def test_backload_backwards_range_is_newest_first(site):
    data = _backload(site.app, {"Task": "extract", "From": "2020-04-01", "To": "2020-01-01",
                                "By": "month"}).json
    assert [t["meta"].split("cron=")[1][:10] for t in data["Tasks"]] == [
        "2020-04-01", "2020-03-01", "2020-02-01", "2020-01-01"]
    assert data["Tasks"][0]["info"] == "?hour=2020-04-01T00"


def test_backload_meta_rows_and_meta_file(site, tmp_path):
    (site.folder / "names.json").write_text('{"name": "ann"}\n{"name": "bob"}\n', encoding="utf-8")
    try:
        data = _backload(site.app, {"Task": "report", "At": "2020-01-05",
                                    "meta-file": "names.json"}).json
        assert [t["info"] for t in data["Tasks"]] == ["?day=2020-01-05&name=ann",
                                                      "?day=2020-01-05&name=bob"]
    finally:
        (site.folder / "names.json").unlink()
    outside = tmp_path / "rows.json"
    outside.write_text('{"name": "eve"}\n', encoding="utf-8")
    error = _backload(site.app, {"Task": "report", "At": "2020-01-05", "meta-file": str(outside)},
                      status=400).json["error"]
    assert "not inside the workflow folder" in error


@pytest.mark.parametrize("body, message", [
    ({"Task": "extract", "At": "2020-02-30"}, "is not a time"),
    ({"Task": "extract", "From": "soon"}, "is not a time"),
    ({"Task": "extract", "At": "2020-01-01", "By": "fortnight"}, "is not hour, day, week or month"),
    ({"Task": "nothing", "At": "2020-01-01"}, "no phase nothing"),
    ({"Task": "extract", "Workflow": "daily.toml", "At": "2020-01-01"}, "it is in etl.toml"),
    ({"Task": "extract", "Template": "?other={yyyy}", "At": "2020-01-01"}, "Template differs"),
    ({"Task": "report", "At": "2020-01-01", "meta": {"name": ["a"]}, "meta-file": "x.json"},
     "meta and meta-file both used"),
    ({"Task": "report", "At": "2020-01-01", "meta": {"name": "a", "x": ["b"]}}, "not a mix"),
    ({"Task": "extract", "From": "2000-01-01", "To": "2020-01-01", "By": "hour"},
     "more than the limit of 1000"),
    ({"At": "2020-01-01"}, "Task is required"),
    ({"Task": "extract", "Bogus": 1}, "unknown field"),
    ({"Task": "extract", "Execute": "yes"}, "Execute: expected true or false"),
    ([1, 2], "must be a JSON object"),
])
def test_backload_refuses_bad_requests_with_400(site, body, message):
    reply = _backload(site.app, body, status=400).json
    assert message in reply["error"], reply


def test_backload_rejects_malformed_json(site):
    reply = site.app.post("/backload", "{nope", status=400,
                          headers={"Content-Type": "application/json"}).json
    assert reply["error"].startswith("the body is not valid JSON")


def test_backload_execute_sends_and_records(site):
    before = len(site.bus.published("extract"))
    data = _backload(site.app, {"Task": "extract", "From": "2019-06-01T00", "To": "2019-06-01T02",
                                "By": "hour", "Execute": True}).json
    assert data["Status"].startswith("Executed: ") and data["Count"] == 3
    sent = site.bus.published("extract")[before:]
    assert [Task.from_json(m).info for m in sent] == [
        "?hour=2019-06-01T00", "?hour=2019-06-01T01", "?hour=2019-06-01T02"]
    recorded = site.store.task_history(data["Tasks"][0]["id"])
    assert [(r.event, r.workflow, r.phase) for r in recorded] == [("sent", "etl.toml", "extract")]


# --- state changes: POST, JSON or CSRF, the token ----------------------------------------------


def test_state_changes_need_post_and_json_or_the_csrf_token(site):
    reply = site.app.get("/refresh", status=405)
    assert reply.headers["Allow"] == "POST" and "POST /refresh" in reply.json["error"]
    site.app.get("/backload", status=405)
    site.app.post("/backload", "Task=extract", status=415,
                  headers={"Content-Type": "text/plain"})
    assert "CSRF" in site.app.post("/refresh", {"x": "1"}, status=403).json["error"]
    about = site.app.get("/web/about")
    form = about.forms[0]
    assert form.action == "/refresh" and form.method.lower() == "post"
    done = form.submit(status=303)
    assert done.headers["Location"].endswith("/web/about?refreshed=unchanged")
    assert site.app.post("/refresh", "{}", headers={"Content-Type": "application/json"}).json[
        "status"] == "unchanged"


def test_a_rejected_reload_is_a_400_with_its_problems(site):
    problem = {"file": "etl.toml", "line": 1, "column": 1, "severity": "error", "code": "FL101",
               "message": "bad", "help": None}
    client = site.client(reload=lambda: {"status": "rejected", "added": [], "removed": [],
                                         "modified": ["etl.toml"], "problems": [problem]})
    reply = client.post("/refresh", "{}", status=400, headers={"Content-Type": "application/json"})
    assert reply.json["problems"] == [problem] and reply.json["Files"] == ["etl.toml"]


def test_off_loopback_state_changes_need_the_token(site, caplog):
    body = {"Task": "extract", "At": "2020-01-01"}
    with caplog.at_level(logging.WARNING, logger="flowlord.web"):
        open_client = site.client(host="0.0.0.0", token=None)
    assert "0.0.0.0" in caplog.text and "backload and refresh are disabled" in caplog.text
    assert "no token" in _backload(open_client, body, status=403).json["error"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flowlord.web"):
        client = site.client(host="10.0.0.5", token="s3cret")
    assert "need the token" in caplog.text and "readable by anyone" in caplog.text
    _backload(client, body, status=401)
    _backload(client, body, status=401, Authorization="Bearer wrong")
    assert _backload(client, body, Authorization="Bearer s3cret").json["Count"] == 1
    client.get("/web/task.json?date=2024-01-15", status=200)  # reading stays open
    local = site.client(host="127.0.0.1", token="s3cret")
    assert _backload(local, body).json["Count"] == 1  # loopback: no token needed


# --- metrics -------------------------------------------------------------------------------------


def test_metrics_parse_as_prometheus_text(site):
    text = site.app.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    sent = {s.labels["topic"]: s.value for s in families["flowlord_tasks_sent"].samples
            if s.name == "flowlord_tasks_sent_total"}
    assert sent["extract"] >= 4 and sent["load"] == 1 and sent["retry-failed"] == 1
    done = {(s.labels["topic"], s.labels["result"]): s.value
            for s in families["flowlord_tasks_done"].samples if s.name.endswith("_total")}
    assert done[("extract", "error")] == 2 and done[("load", "complete")] == 1
    assert families["flowlord_alerts"].samples[0].value >= 1
    assert families["flowlord_retries_pending"].samples[0].value == 0
    assert families["flowlord_bus_lag_messages"].samples[0].labels == {"topic": "done"}
    severities = {s.labels["severity"] for s in families["flowlord_reload_problems"].samples}
    assert severities == {"error", "warning"}
    # each app has its own registry: a second app starts from zero
    fresh = {f.name: f for f in text_string_to_metric_families(site.client().get("/metrics").text)}
    assert not [s for s in fresh["flowlord_tasks_sent"].samples if s.name.endswith("_total")]


# --- the HTML pages ----------------------------------------------------------------------------


@pytest.mark.parametrize("url, text", [
    ("/web/task?date=2024-01-15", "Tasks by hour created"),
    ("/web/task/{first}", "A chain shares its id"),
    ("/web/workflow", "coloured by its latest task"),
    ("/web/alert?date=2024-01-15", "Summary"),
    ("/web/files?date=2024-01-15", "started tasks"),
    ("/web/backload", "Preview"),
    ("/web/about", "Reload workflow files now"),
    ("/web/task?date=2023-01-01", "No tasks were created on 2023-01-01"),
])
def test_each_page_renders(site, url, text):
    reply = site.app.get(url.format(first=site.ids.first))
    assert reply.content_type == "text/html" and text in reply.text
    assert '<link rel="stylesheet" href="/static/style.css">' in reply.text


def _nav_links(html: str) -> list[str]:
    nav = html.split('<nav aria-label="main">', 1)[1].split("</nav>", 1)[0]
    return [part.split('"', 1)[0] for part in nav.split('href="')[1:]]


def test_the_picked_day_is_carried_by_the_dated_pages_links(site):
    plain = ["/web/task", "/web/workflow", "/web/alert", "/web/files", "/web/backload", "/web/about"]
    assert _nav_links(site.app.get("/web/task").text) == plain  # today, not pinned
    picked = ["/web/task?date=2024-01-15", "/web/workflow", "/web/alert?date=2024-01-15",
              "/web/files?date=2024-01-15", "/web/backload", "/web/about"]
    for page in ("/web/task", "/web/alert", "/web/files"):
        assert _nav_links(site.app.get(f"{page}?date=2024-01-15").text) == picked
    assert _nav_links(site.app.get("/web/workflow?date=2024-01-15").text) == plain


# --- running a step again ------------------------------------------------------------------------


@pytest.fixture
def own_site(tmp_path) -> Site:
    """A site of this test's own: a rerun sends and records tasks."""
    made = build_site(tmp_path)
    yield made
    made.store.close()


def test_run_again_from_the_task_page_sends_the_first_task_anew(own_site):
    site = own_site
    page = site.app.get(f"/web/task/{site.ids.second}")
    (form,) = [f for f in page.forms.values() if f.action.endswith("/rerun")]
    assert form.action == f"/task/{site.ids.second}/rerun"
    assert (form["workflow"].value, form["phase"].value) == ("etl.toml", "extract")
    before = _sent(site.bus, "extract")
    first = next(t for t in before if t.id == site.ids.second)
    site.clock.set(T0 + timedelta(hours=5))
    reply = form.submit(status=303)
    assert reply.headers["Location"].endswith(f"/web/task/{site.ids.second}")

    (again,) = _sent(site.bus, "extract")[len(before):]
    assert (again.id, again.info, again.meta) == (first.id, first.info, first.meta)
    assert "retry=" not in again.meta and again.created == "2024-01-15T05:00:00Z"
    sent = [r for r in site.store.task_history(site.ids.second) if r.event == "sent"]
    assert [(r.topic, r.attempt) for r in sent] == [  # the try, its retry, failed, and again
        ("extract", 0), ("extract", 1), ("retry-failed", 1), ("extract", 0)]

    # it is a task like any other: once complete, its children start
    done = again.replace(result="complete", started=again.created, ended=again.created)
    assert asyncio.run(site.engine.process_done(done.to_json()))
    (load,) = [t for t in _sent(site.bus, "load") if t.id == site.ids.second]
    assert load.info == "?day=2024-01-15"  # the day of its parent, ?hour=2024-01-15T00


def test_run_again_by_json(own_site):
    site = own_site
    body = json.dumps({"workflow": "etl.toml", "phase": "extract"})
    reply = site.app.post(f"/task/{site.ids.first}/rerun", body,
                          headers={"Content-Type": "application/json"})
    assert reply.json["Status"] == "sent" and reply.json["Task"]["id"] == site.ids.first


def test_run_again_refuses_what_it_cannot_do(own_site):
    site = own_site
    json_headers = {"Content-Type": "application/json"}

    def post(task_id: str, body: object, status: int) -> str:
        return site.app.post(f"/task/{task_id}/rerun", json.dumps(body), headers=json_headers,
                             status=status).json["error"]

    running = next(t for t in _sent(site.bus, "extract") if t.info == "?hour=2024-01-15T02")
    assert "still running" in post(running.id, {"workflow": "etl.toml", "phase": "extract"}, 409)
    assert "no task of phase 'load'" in post(site.ids.second, {"workflow": "etl.toml", "phase": "load"}, 409)
    assert "no task with id nope" in post("nope", {"workflow": "etl.toml", "phase": "extract"}, 404)
    assert "phase: give" in post(site.ids.first, {"workflow": "etl.toml"}, 400)
    assert "CSRF" in site.app.post(f"/task/{site.ids.first}/rerun",
                                   {"workflow": "etl.toml", "phase": "extract"}, status=403).json["error"]
    site.app.get(f"/task/{site.ids.first}/rerun", status=405)
    page = site.app.get(f"/web/task/{running.id}")  # no button on a running step
    assert not [f for f in page.forms.values() if f.action.endswith("/rerun")]
