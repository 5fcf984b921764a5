"""The Go flowlord's API routes, where users script against them: `GET /status`,
`POST /refresh` (GET: 405), `POST /backload`, `GET /task/<id>`, `GET /recap`; and one of
flowlord's own, `POST /task/<id>/rerun`."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Iterator
from datetime import datetime
from typing import Any

import bottle

from ..backload import BackloadError, parse_request, plan_backload
from ..dispatcher import SendEffect
from ..rerun import RerunError, rerun_effect
from ..summary import day_bounds, recap
from .core import BadRequest, Web, is_form, task_href, to_json, wants_json


def _json(data: Any, status: int = 200) -> str:
    bottle.response.status = status
    bottle.response.content_type = "application/json"
    return to_json(data)


def _task_json(task: Any) -> dict[str, str]:
    """The task as the wire has it (empty fields left out, as Go's omitempty)."""
    fields = ("type", "job", "info", "created", "id", "meta", "result", "msg", "started", "ended")
    return {k: getattr(task, k) for k in fields if getattr(task, k) or k in ("type", "info")}


def run(web: Web, coroutine: Awaitable[Any]) -> Any:
    if web.ctx.submit is not None:
        return web.ctx.submit(coroutine)
    return asyncio.run(coroutine)  # no engine loop of its own (tests): a private one


def install(web: Web) -> None:
    ctx = web.ctx
    app = web.app

    @app.get("/status")
    def status() -> str:
        bottle.response.content_type = "text/plain; charset=utf-8"
        return "ok"

    @app.get("/refresh")
    def refresh_get() -> str:
        raise bottle.HTTPError(405, "refresh changes state: POST /refresh (a JSON body, or the "
                                    "About page's button) reloads the workflow files now",
                               Allow="POST")

    @app.post("/refresh")
    def refresh() -> Any:
        web.guard()
        if ctx.reload is None:
            raise bottle.HTTPError(503, "reloading is not available here")
        outcome = ctx.reload()
        files = [*outcome.get("added", ()), *outcome.get("modified", ()),
                 *("-" + f for f in outcome.get("removed", ()))]
        body = {"status": outcome.get("status"), "Updated": ctx.current_time(),
                "problems": outcome.get("problems", [])}
        if files:
            body["Files"] = files
        failed = outcome.get("status") in ("rejected", "error")
        if is_form() and not failed:
            bottle.redirect("/web/about?refreshed=" + str(outcome.get("status")), 303)
        return _json(body, 400 if failed else 200)

    @app.post("/backload")
    def backload() -> Any:
        web.guard()
        body = web.json_body()
        plan = ctx.current_plan()
        if plan is None:
            raise bottle.HTTPError(503, "no workflows are loaded")
        try:
            request = parse_request(body)
            made = plan_backload(plan, request, now=ctx.current_time(),
                                 base_dir=ctx.base_dir or _folder(ctx.workflow_root),
                                 limit=ctx.backload_limit)
        except BackloadError as error:
            raise BadRequest(str(error)) from None
        failed = 0
        if request.execute:
            if ctx.engine is None:
                raise bottle.HTTPError(503, "no engine: tasks cannot be sent from here")
            sends = [SendEffect(t.type, t, made.workflow, made.phase.id, 0) for t in made.tasks]
            results = run(web, ctx.engine.send(sends, f"backload:{uuid.uuid4()}"))
            failed = sum(error is not None for _, error in results)
            if failed:
                made.notes.append(f"{failed} could not be published: they are resent "
                                  "automatically and alerted")
        return _json({
            "Status": made.status(request.execute), "Count": len(made.tasks),
            "Tasks": [_task_json(t) for t in made.tasks], "Workflow": made.workflow,
            "Phase": made.phase.id, "From": made.start, "To": made.end, "By": made.by,
            "Problems": sorted({p for s in made.specs for p in s.problems}),
            "Failed": failed,
        })

    @app.route("/notify", ["GET", "POST"])
    def notify() -> str:
        """Go's `GET /notify`: a test message to every notification channel, now. Off
        loopback it is a state change like the others (POST with the token)."""
        if web.auth_required:
            web.guard()
        if ctx.notify is None:
            raise bottle.HTTPError(503, "notifications are not available here")
        outcome = run(web, ctx.notify())
        channels = outcome.get("channels") or {}
        sent = any(v == "sent" for v in channels.values())
        return _json(outcome, 200 if sent else 502 if channels else 503)

    @app.get("/task/<task_id>")
    def task(task_id: str) -> str:
        events = ctx.store.task_history(task_id)
        completed = any(e.event == "done" and e.task.result for e in events)
        last = ""
        for e in events:
            stamp = e.task.ended if e.task.result else e.task.created
            last = max(last, stamp or "")
        return _json({"LastUpdate": last or "0001-01-01T00:00:00Z", "Completed": completed,
                      "Events": [_task_json(e.task) for e in events] or None})

    @app.post("/task/<task_id>/rerun")
    def rerun(task_id: str) -> Any:
        """Runs one finished step of the chain again: `workflow` and `phase` in a JSON body or
        in the task page's form (which is sent back to the page)."""
        web.guard()
        values = _rerun_values(web)
        if ctx.engine is None:
            raise bottle.HTTPError(503, "no engine: tasks cannot be sent from here")
        history = ctx.store.task_history(task_id)
        if not history:
            raise bottle.HTTPError(404, f"no task with id {task_id}")
        try:
            send = rerun_effect(history, values["workflow"], values["phase"], ctx.current_time())
        except RerunError as error:
            raise bottle.HTTPError(409, str(error)) from None
        ((_, error),) = run(web, ctx.engine.send([send], f"rerun:{uuid.uuid4()}"))
        if is_form():
            bottle.redirect(task_href(task_id), 303)
        return _json({"Status": "sent" if error is None else f"not sent yet ({error}): it is resent "
                      "automatically and alerted", "Task": _task_json(send.task)})

    @app.get("/recap")
    def recap_route() -> str:
        day = web.day()
        since, until = day_bounds(day)
        entries = recap(r.task for r in _all_rows(ctx.store, since, until))
        if wants_json():
            return _json({e.key: e.as_json() for e in entries})
        bottle.response.content_type = "text/plain; charset=utf-8"
        return "".join(e.text() + "\n" for e in entries)


def _rerun_values(web: Web) -> dict[str, str]:
    """`workflow` and `phase`, from the form or the JSON body; both must be strings."""
    values = dict(bottle.request.forms.decode().items()) if is_form() else web.json_body()
    if not isinstance(values, dict):
        raise BadRequest("the body must be a JSON object")
    for name in ("workflow", "phase"):
        if not isinstance(values.get(name), str) or len(values[name]) > 500:
            raise BadRequest(f"{name}: give the step's {name} as a string")
    return values


def _all_rows(store: Any, since: datetime, until: datetime, cap: int = 100_000) -> Iterator:
    """Every task row of [since, until), page by page (at most `cap`)."""
    for offset in range(0, cap, 1000):
        rows = store.task_rows(since=since, until=until, limit=1000, offset=offset)
        yield from rows
        if len(rows) < 1000:
            return


def _folder(root: str | None) -> str | None:
    if root is None:
        return None
    return root if os.path.isdir(root) else os.path.dirname(os.path.abspath(root))


__all__ = ["install"]
