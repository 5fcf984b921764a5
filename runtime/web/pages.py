"""The history pages: Tasks (and one task's chain), Alerts, Files, About and the code pages.

Each handler returns the dict its JSON twin shows; the template lays it out."""

from __future__ import annotations

import hashlib
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import bottle

from ..rerun import rerun_problem
from ..store import TaskRecord
from ..summary import alert_groups, day_bounds, task_key
from ..task import parse_time
from ..timefmt import format_hour, is_zero, path_time
from .core import PER_PAGE, RESULTS, BadRequest, Web, task_href

UTC = timezone.utc
COLORS = {"complete": "#16a34a", "error": "#dc2626", "alert": "#ea580c", "warn": "#ca8a04",
          "running": "#2563eb"}
_CODE = re.compile(r"[A-Za-z0-9_-]{1,40}\Z")
_SECRET = re.compile(r"token|secret|password|passwd|webhook|credential|private|access_key|"
                     r"slack\.url", re.I)
_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def _time(text: str) -> datetime | None:
    try:
        return parse_time(text) if text else None
    except ValueError:
        return None


def clock(seconds: float | None) -> str | None:
    """HH:MM:SS, as the Go dashboard shows queue and run times."""
    if seconds is None or seconds < 0:
        return None
    whole = int(seconds)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def task_row(record: TaskRecord) -> dict[str, Any]:
    task = record.task
    created, started, ended = _time(task.created), _time(task.started), _time(task.ended)
    queue = (started - created).total_seconds() if created and started else None
    run = (ended - started).total_seconds() if started and ended else None
    return {
        "id": task.id, "type": task.type, "job": task.job, "key": task_key(task.type, task.job),
        "info": task.info, "meta": task.meta, "result": task.result or "running",
        "msg": task.msg, "created": task.created, "started": task.started, "ended": task.ended,
        "queue": clock(queue), "run": clock(run), "queue_seconds": queue, "run_seconds": run,
        "workflow": record.workflow, "phase": record.phase, "attempt": record.attempt,
        "href": task_href(task.id),
    }


def pages_of(total: int) -> int:
    return max(1, -(-total // PER_PAGE))


def _day_links(day: date, days: list[str]) -> dict[str, Any]:
    return {"date": day.isoformat(), "prev_day": (day - timedelta(days=1)).isoformat(),
            "next_day": (day + timedelta(days=1)).isoformat(), "days": days[:14]}


def _chart(hours: dict[tuple, int]) -> dict[str, Any]:
    """24 stacked bars (hour of created, UTC) as SVG rectangles: x, y, height per result."""
    per_hour = [{r: hours.get((f"{h:02d}", "" if r == "running" else r), 0) for r in RESULTS}
                for h in range(24)]
    top = max((sum(h.values()) for h in per_hour), default=0)
    scale = _nice(top)
    bars = []
    for h, counts in enumerate(per_hour):
        y, segments = 120.0, []
        for result in RESULTS:
            count = counts[result]
            if count:
                height = 120.0 * count / scale
                y -= height
                segments.append({"result": result, "count": count, "y": round(y, 2),
                                 "height": round(height, 2), "color": COLORS[result]})
        bars.append({"hour": f"{h:02d}", "total": sum(counts.values()), "segments": segments,
                     "counts": counts})
    return {"bars": bars, "max": scale, "ticks": [scale * i // 4 for i in range(5)]}


def _nice(top: int) -> int:
    """The y-axis top: a round number at or above the tallest bar (4 even intervals)."""
    if top <= 4:
        return 4
    step = 1
    while True:
        for m in (1, 2, 5):
            if m * step * 4 >= top:
                return m * step * 4
        step *= 10


def install(web: Web) -> None:
    ctx = web.ctx
    store = ctx.store

    @web.page("/web/task", "tasks.html")
    def tasks() -> dict[str, Any]:
        day = web.day()
        task_id = web.param("id")
        type_, job = web.param("type"), web.param("job")
        result = web.choice("result", RESULTS)
        page = web.page_number()
        since, until = day_bounds(day)
        filters = {"type": type_ or None, "job": job or None,
                   "result": None if not result else "" if result == "running" else result}
        window = {"id": task_id} if task_id else {"since": since, "until": until}
        counts = store.task_row_counts(**window)  # the day (or the id), unfiltered
        by_result = {r: 0 for r in RESULTS}
        for (_, _, res), n in counts.items():
            by_result[res or "running"] = by_result.get(res or "running", 0) + n
        total_day = sum(counts.values())
        matching = store.task_row_counts(**window, **filters)
        total = sum(matching.values())
        pages = pages_of(total)
        if page > pages:
            raise BadRequest(f"page: there are only {pages} page(s) of tasks for these filters")
        rows = store.task_rows(**window, **filters, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        types = sorted({t for t, _, _ in counts})
        jobs = sorted({j for t, j, _ in counts if j and (not type_ or t == type_)})
        hours = store.task_row_counts(**window, **filters, by_hour=True)
        return {
            **_day_links(day, store.days_with_rows("tasks")),
            "filters": {"id": task_id, "type": type_, "job": job, "result": result},
            "page": page, "pages": pages, "per_page": PER_PAGE, "total": total,
            "first": (page - 1) * PER_PAGE + 1 if total else 0,
            "last": min(page * PER_PAGE, total),
            "counts": {"total": total_day, **by_result}, "types": types, "jobs": jobs,
            "chart": _chart(hours), "tasks": [task_row(r) for r in rows],
        }

    @web.page("/web/task/<task_id>", "task.html")
    def task(task_id: str) -> dict[str, Any]:
        if len(task_id) > 200:
            raise BadRequest("the task id is longer than 200 characters")
        return task_chain(web, task_id)

    @web.page("/web/alert", "alerts.html")
    def alerts() -> dict[str, Any]:
        day = web.day()
        page = web.page_number()
        since, until = day_bounds(day)
        keys = store.alert_keys(since=since, until=until)
        total = len(keys)
        pages = pages_of(total)
        if page > pages:
            raise BadRequest(f"page: there are only {pages} page(s) of alerts on {day}")
        rows = store.alerts(since=since, until=until, limit=PER_PAGE, offset=(page - 1) * PER_PAGE)
        groups = alert_groups(keys)
        return {
            **_day_links(day, store.days_with_rows("alerts")),
            "page": page, "pages": pages, "total": total,
            "summary": [{"key": g.key, "count": g.count, "dates": g.dates} for g in groups],
            "summary_text": "\n".join(g.line() for g in groups),
            "alerts": [{
                "id": a.id, "task_id": a.task_id, "type": a.type, "job": a.job,
                "key": task_key(a.type, a.job), "workflow": a.workflow, "phase": a.phase,
                "result": a.result, "msg": a.msg, "task_time": a.task_time,
                "created": a.created, "sent_at": a.sent_at,
                "href": task_href(a.task_id),
            } for a in rows],
        }

    @web.page("/web/files", "files.html")
    def files() -> dict[str, Any]:
        day = web.day()
        page = web.page_number()
        show = web.choice("show", ("all", "matched", "unmatched")) or "all"
        since, until = day_bounds(day)
        counts = store.file_message_counts(since=since, until=until)
        matched = {"all": None, "matched": True, "unmatched": False}[show]
        total = {"all": counts["total"], "matched": counts["matched"],
                 "unmatched": counts["total"] - counts["matched"]}[show]
        pages = pages_of(total)
        if page > pages:
            raise BadRequest(f"page: there are only {pages} page(s) of files on {day}")
        rows = store.file_messages(since=since, until=until, matched=matched, limit=PER_PAGE,
                                   offset=(page - 1) * PER_PAGE)
        sent = store.sent_tasks(i for r in rows for i in r.task_ids)
        out = []
        for r in rows:
            started = [task_row(t) for i in r.task_ids for t in sent.get(i, [])[:1]]
            when = path_time(r.path)
            out.append({"id": r.id, "path": r.path, "size": r.size, "size_text": _size(r.size),
                        "received_at": r.received_at, "task_ids": list(r.task_ids),
                        "tasks": started, "matched": bool(r.task_ids),
                        "time": None if is_zero(when) else format_hour(when)})
        return {
            **_day_links(day, store.days_with_rows("file_messages")),
            "show": show, "page": page, "pages": pages, "total": total,
            "counts": {**counts, "unmatched": counts["total"] - counts["matched"]}, "files": out,
        }

    @web.page("/web/about", "about.html")
    def about() -> dict[str, Any]:
        return about_data(web)

    web.app.route("/", "GET", about)

    @web.page("/codes/<code>", "code.html")
    def code(code: str) -> dict[str, Any]:
        if not _CODE.match(code):
            raise BadRequest(f"{code!r} is not a code such as FL104")
        if ctx.explain is None:
            raise bottle.HTTPError(404, "explanations are not available here")
        try:
            text = ctx.explain(code)
        except KeyError:
            raise bottle.HTTPError(404, f"no code {code}: codes look like FL104") from None
        return {"code": code.upper(), "text": text}


def _size(size: int) -> str:
    """SI units, as go-humanize: 1.0 kB."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def task_chain(web: Web, task_id: str) -> dict[str, Any]:
    """Every step of one id (a chain shares its id): each phase's attempts, its parent and its
    children in the plan, and the raw events."""
    events = web.ctx.store.task_history(task_id)
    if not events:
        raise bottle.HTTPError(404, f"no task with id {task_id}")
    rows = web.ctx.store.task_rows(id=task_id, limit=1000)
    plan = web.ctx.current_plan()
    phases = {(w.key, p.id): p for w in plan.workflows for p in w.phases} if plan else {}
    steps = sorted((task_row(r) for r in rows), key=lambda r: (r["created"], r["key"]))
    by_phase: dict[tuple[str, str], list[dict]] = {}
    for step in steps:
        by_phase.setdefault((step["workflow"], step["phase"] or step["key"]), []).append(step)
    chain = []
    for (workflow, phase_id), attempts in by_phase.items():
        phase = phases.get((workflow, phase_id))
        parent = None
        if phase is not None and phase.parent is not None:
            parent = phase.parent.topic + (f":{phase.parent.job}" if phase.parent.job else "")
        for n, step in enumerate(attempts):
            step["try"] = n + 1
        chain.append({"workflow": workflow, "phase": phase_id, "parent": parent,
                      "children": list(phase.children) if phase else [],
                      "attempts": attempts, "result": attempts[-1]["result"],
                      "retries": len(attempts) - 1,
                      "can_rerun": web.ctx.engine is not None
                      and rerun_problem(events, workflow, phase_id) is None})
    depth: dict[str, int] = {}
    for link in chain:
        depth[link["phase"]] = depth.get(link["parent"], -1) + 1 if link["parent"] in depth else 0
        link["depth"] = depth[link["phase"]]
    completed = any(e.event == "done" and e.task.result for e in events)
    last = max((e.task.ended or e.task.created for e in events), default="")
    return {
        "id": task_id, "completed": completed, "last_update": last, "chain": chain,
        "rerun_href": "/task/" + quote(task_id, safe="") + "/rerun",
        "events": [{"seq": e.seq, "event": e.event, "topic": e.topic, "workflow": e.workflow,
                    "phase": e.phase, "attempt": e.attempt, "recorded_at": e.recorded_at,
                    **{k: getattr(e.task, k) for k in ("type", "job", "info", "meta", "result",
                                                       "msg", "created", "started", "ended")}}
                   for e in events],
    }


def plan_hash(plan: Any) -> str:
    if plan is None:
        return ""
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest()[:16]


def _mask(key: str, value: Any) -> Any:
    """Settings for show: secrets only said to be set, credentials cut out of URLs."""
    if isinstance(value, dict):
        return {k: _mask(f"{key}.{k}".lstrip("."), v) for k, v in value.items()}
    if _SECRET.search(key):
        return "(set)" if value else "(not set)"
    if isinstance(value, str):
        return _USERINFO.sub("***@", value)
    return value


def about_data(web: Web) -> dict[str, Any]:
    ctx = web.ctx
    now = ctx.current_time()
    plan = ctx.current_plan()
    try:
        stats = ctx.store.table_stats()
        store = {"status": "ok", "path": str(ctx.store.path), "schema": ctx.store.schema_version,
                 **stats}
    except Exception as error:  # the page still shows the rest
        store = {"status": f"error: {type(error).__name__}", "tables": {}, "bytes": 0}
    try:
        bus = dict(ctx.bus_status())
    except Exception as error:
        bus = {"status": f"error: {type(error).__name__}"}
    uptime = max(0, int((now - ctx.started_at).total_seconds()))
    problems = ctx.diagnostics()
    return {
        "app_name": "flowlord", "version": ctx.version, "started_at": ctx.started_at,
        "uptime": uptime_text(uptime), "uptime_seconds": uptime, "now": now,
        "plan": {"hash": plan_hash(plan), "workflows": len(plan.workflows) if plan else 0,
                 "phases": sum(len(w.phases) for w in plan.workflows) if plan else 0,
                 "errors": sum(p.get("severity") == "error" for p in problems),
                 "warnings": sum(p.get("severity") == "warning" for p in problems)},
        "bus": bus, "store": store, "size": _size(store.get("bytes", 0)),
        "settings": _mask("", ctx.settings), "host": ctx.host, "port": ctx.port,
        "auth_required": web.auth_required, "can_refresh": ctx.reload is not None,
        "operations": _operations(ctx),
    }


def _operations(ctx: Any) -> dict[str, Any] | None:
    """runtime/operations.py's status: notification frequency, last summary, last backup."""
    if ctx.operations is None:
        return None
    try:
        return ctx.operations()
    except Exception as error:  # the page still shows the rest
        return {"error": f"{type(error).__name__}: {error}"}


def uptime_text(seconds: int) -> str:
    """`1d2h3m4s`, units that are zero left out."""
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    text = "".join(f"{n}{u}" for n, u in parts if n)
    return text or "0s"
