"""The workflows: the Workflows page (phases, triggers, fire times, children, diagnostics, the
diagram coloured by each phase's latest task), the Go `/info` tree, and `/workflow/…` (the raw
files, confined to the workflow folder)."""

from __future__ import annotations

import os
from collections import deque
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import bottle

from flowlord.compiler.plan import PlanPhase, PlanWorkflow

from ..cron import fire_times, next_fire
from .context import Diagram
from .core import BadRequest, Web, log, task_href, to_json
from .pages import uptime_text

SVG = "http://www.w3.org/2000/svg"
XLINK = "http://www.w3.org/1999/xlink"
ET.register_namespace("", SVG)
ET.register_namespace("xlink", XLINK)
_ALLOWED = {f"{{{SVG}}}{t}" for t in ("svg", "g", "title", "text", "polygon", "polyline",
                                      "ellipse", "path", "a")}
STATES = ("complete", "error", "alert", "warn", "running", "none")
CHAIN = " \u279e "  # Go's Child separator


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat().replace("+00:00", "Z")


def trigger_text(phase: PlanPhase) -> str:
    parts = []
    if phase.cron is not None:
        parts.append(f"cron {phase.cron.text}")
    parts += [f"files {p}" for p in phase.files]
    if phase.parent is not None:
        parts.append("after " + phase.parent.topic + (f":{phase.parent.job}" if phase.parent.job else ""))
    return "; ".join(parts) or "nothing starts it"


def phase_states(web: Web) -> dict[tuple[str, str], dict[str, Any]]:
    """(workflow, phase) -> the state of its latest task (running, or the done result)."""
    states = {}
    for key, record in web.ctx.store.latest_phase_tasks().items():
        task = record.task
        state = (task.result or "running") if record.event == "done" else "running"
        states[key] = {"state": state if state in STATES else "none", "id": task.id,
                       "at": task.ended or task.created,
                       "href": task_href(task.id)}
    return states


def _fires(phase: PlanPhase, now: datetime) -> str | None:
    if phase.cron is None:
        return None
    try:
        return _iso(next_fire(phase.cron, now, ZoneInfo(phase.timezone)))
    except (ValueError, KeyError):
        return None


_WINDOWS = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32),
            timedelta(days=367), timedelta(days=5 * 366))


def _previous(phase: PlanPhase, now: datetime, handled: datetime | None) -> str | None:
    """The schedule's last fire time at or before now (searched in growing windows, so a
    frequent cron costs few steps); `@every` has none of its own: the last one handled."""
    if phase.cron is None:
        return None
    if phase.cron.every is not None:
        return _iso(handled)
    zone = ZoneInfo(phase.timezone)
    for window in _WINDOWS:
        last = deque(fire_times(phase.cron, now - window, now, zone), maxlen=1)
        if last:
            return _iso(last[0])
    return None


def workflows_data(web: Web) -> dict[str, Any]:
    ctx = web.ctx
    plan = ctx.current_plan()
    now = ctx.current_time()
    last = ctx.store.last_fires()
    states = phase_states(web)
    problems = ctx.diagnostics()
    placed: set[int] = set()
    workflows = []
    for workflow in plan.workflows if plan else ():
        mine = [i for i, p in enumerate(problems)
                if p.get("file") in (workflow.path, workflow.key)
                or str(p.get("file", "")).endswith("/" + workflow.key)]
        placed.update(mine)
        phases = []
        for phase in workflow.phases:
            state = states.get((workflow.key, phase.id), {"state": "none"})
            phases.append({
                "id": phase.id, "topic": phase.topic, "job": phase.job or "",
                "trigger": phase.trigger, "trigger_text": trigger_text(phase),
                "cron": phase.cron.text if phase.cron else None, "timezone": phase.timezone,
                "files": list(phase.files),
                "parent": (phase.parent.topic + (f":{phase.parent.job}" if phase.parent.job else ""))
                if phase.parent else None,
                "children": list(phase.children), "retry": phase.retry.retries,
                "retry_delay": phase.retry.delay.text if phase.retry.delay else None,
                "offset": phase.offset.text if phase.offset else None,
                "template": phase.template.text,
                "rule": "&".join(f"{k}={v}" for k, v in phase.rule),
                "next": _fires(phase, now),
                "prev": _previous(phase, now, last.get((workflow.key, phase.id))),
                "latest": state,
            })
        workflows.append({"key": workflow.key, "path": workflow.path, "phases": phases,
                          "stages": [list(s) for s in workflow.stages],
                          "diagnostics": [problems[i] for i in mine]})
    diagram = None
    try:
        drawn = ctx.diagram_svg()
        if drawn is not None:
            diagram = colour_svg(drawn, states)
    except Exception:  # a diagram that fails leaves the rest of the page
        log.exception("drawing the workflows")
    return {
        "timezone": plan.timezone if plan else "UTC", "now": _iso(now),
        "workflows": workflows,
        "diagnostics": [p for i, p in enumerate(problems) if i not in placed],
        "counts": {"workflows": len(workflows),
                   "phases": sum(len(w["phases"]) for w in workflows),
                   "errors": sum(p.get("severity") == "error" for p in problems),
                   "warnings": sum(p.get("severity") == "warning" for p in problems)},
        "diagram": diagram, "states": STATES,
    }


def colour_svg(diagram: Diagram, states: dict[tuple[str, str], dict[str, Any]]) -> str:
    """The diagram cleaned for inlining (only drawing elements, no scripts, handlers or links)
    with each phase node classed `phase state-<state>` and titled with its name and state."""
    root = ET.fromstring(diagram.svg.encode("utf-8") if isinstance(diagram.svg, str) else diagram.svg)
    _clean(root)
    for group in root.iter(f"{{{SVG}}}g"):
        if "node" not in (group.get("class") or "").split():
            continue
        title = group.find(f"{{{SVG}}}title")
        where = diagram.nodes.get(title.text if title is not None else "")
        if where is None:
            continue
        state = states.get(where, {"state": "none"})["state"]
        group.set("class", f"node phase state-{state}")
        group.set("data-workflow", where[0])
        group.set("data-phase", where[1])
        group.set("data-state", state)
        if title is not None:
            title.text = f"{where[1]} ({where[0]}): {'no task yet' if state == 'none' else state}"
    root.set("class", "diagram")  # its own size (pt), shrunk by CSS to fit
    return ET.tostring(root, encoding="unicode")


def _clean(element: ET.Element) -> None:
    for child in list(element):
        if child.tag not in _ALLOWED:
            element.remove(child)
            continue
        for name in list(child.attrib):
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on") or local == "href" or local == "style":
                del child.attrib[name]
        _clean(child)


# --- Go's /info ----------------------------------------------------------------------------


def info_data(web: Web) -> dict[str, Any]:
    ctx = web.ctx
    plan = ctx.current_plan()
    now = ctx.current_time()
    last = ctx.store.last_fires()
    tree: dict[str, dict[str, Any]] = {}
    for workflow in plan.workflows if plan else ():
        tree[workflow.key] = _info_workflow(workflow, now, last)
    return {"app_name": "flowlord", "version": ctx.version,
            "runtime": uptime_text(max(0, int((now - ctx.started_at).total_seconds()))),
            "workflow": tree}


def _info_workflow(workflow: PlanWorkflow, now: datetime, last: dict) -> dict[str, Any]:
    phases = {p.id: p for p in workflow.phases}

    def chains(phase: PlanPhase, seen: frozenset[str]) -> list[str]:
        out = []
        for child_id in phase.children:
            child = phases.get(child_id)
            if child is None or child_id in seen:
                continue
            below = chains(child, seen | {child_id})
            out += [child_id + CHAIN + b for b in below] if below else [child_id]
        return out

    entries: dict[str, Any] = {}
    for phase in workflow.phases:
        if phase.parent is not None and phase.trigger == "child":
            continue  # shown in its root's Child chains
        entry: dict[str, Any] = {}
        schedule = []
        if phase.cron is not None:
            schedule.append(phase.cron.text + (f"?offset={phase.offset.text}" if phase.offset else ""))
            entry["Next"] = _fires(phase, now)
            entry["Prev"] = _previous(phase, now, last.get((workflow.key, phase.id))) or \
                "0001-01-01T00:00:00Z"
        schedule += list(phase.files)
        if schedule:
            entry["Schedule"] = schedule
        if phase.trigger == "none":
            entry["warning"] = "non-scheduled phase: use dependsOn, cron or files"
        children = chains(phase, frozenset({phase.id}))
        if children:
            entry["Child"] = children
        entries[phase.id] = entry
    return entries


# --- /workflow/… ---------------------------------------------------------------------------

_TYPES = {".toml": "application/toml", ".json": "application/json", ".yaml": "text/x-yaml",
          ".yml": "text/x-yaml"}


def serve_workflow_file(web: Web, path: str) -> Any:
    """A file under the workflow folder, or a folder's listing; nothing outside it."""
    if web.ctx.workflow_root is None:
        raise bottle.HTTPError(404, "no workflow folder is configured")
    root = Path(web.ctx.workflow_root).resolve()
    parts = [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or "\x00" in path:
        raise BadRequest("the path must not contain '..'")
    if root.is_file():
        if parts and parts != [root.name]:
            raise bottle.HTTPError(404, f"no workflow file {path}")
        target = root
    else:
        target = root.joinpath(*parts).resolve()
        if target != root and root not in target.parents:
            raise bottle.HTTPError(403, f"{path} is outside the workflow folder")
    if target.is_dir():
        names = sorted(
            e.name + ("/" if e.is_dir() else "") for e in os.scandir(target)
            if not e.name.startswith("."))
        bottle.response.content_type = "text/plain; charset=utf-8"
        return "".join(n + "\n" for n in names)
    if not target.is_file():
        raise bottle.HTTPError(404, f"no workflow file {path}")
    bottle.response.content_type = _TYPES.get(target.suffix.lower(), "text/plain") + "; charset=utf-8"
    return target.read_bytes()


def install(web: Web) -> None:
    @web.page("/web/workflow", "workflows.html")
    def workflows() -> dict[str, Any]:
        return workflows_data(web)

    @web.app.get("/web/workflow/diagram.svg")
    def diagram() -> str:
        data = workflows_data(web)
        if data["diagram"] is None:
            raise bottle.HTTPError(404, "no diagram: Graphviz is not installed or there is no plan")
        bottle.response.content_type = "image/svg+xml"
        return data["diagram"]

    @web.app.get("/info")
    def info() -> str:
        bottle.response.content_type = "application/json"
        return to_json(info_data(web), indent=2)

    @web.app.get("/workflow")
    @web.app.get("/workflow/")
    @web.app.get("/workflow/<path:path>")
    def workflow_file(path: str = "") -> Any:
        return serve_workflow_file(web, path)


__all__ = ["colour_svg", "info_data", "install", "workflows_data"]
