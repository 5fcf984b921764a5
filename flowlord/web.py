"""The dashboard inside `flowlord serve`: the compiler's part of its context, and the server.

    stop = start_web(service)      # the service's web slot: Service(start_web=start_web)

`start_web` builds a runtime.web.WebContext from the service (its store, engine, settings, bus,
the reload watcher kept as `service.watcher`) and serves `make_app(context)` with waitress in a
thread on the settings' http_host:http_port; it returns the function that stops it.

The runtime may not import the compiler's passes, so this layer gives it what needs them:
`WorkflowDrawing` lints the workflow files once per plan (by plan hash) and keeps the SVG of
`compiler.dot.workflows_dot` (rendered with Graphviz's `dot`; none when it is missing) with the
node -> phase map, and the lint's warnings; `explain` is compiler.report.explain.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from flowlord import __version__
from flowlord.compiler.plan import Plan
from flowlord.runtime.web import Diagram, WebContext, make_app

__all__ = ["WorkflowDrawing", "build_context", "serve_app", "start_web"]

log = logging.getLogger("flowlord.web")
SUBMIT_TIMEOUT = 120.0


def plan_hash(plan: Plan | None) -> str:
    return hashlib.sha256(plan.model_dump_json().encode()).hexdigest() if plan else ""


def problem_dict(problem: Any) -> dict[str, Any]:
    """A flowlord.reload.Problem as the dashboard shows it."""
    fields = ("file", "line", "column", "severity", "code", "message", "help")
    return {name: getattr(problem, name, None) for name in fields}


class WorkflowDrawing:
    """The diagram and the lint's problems of the workflow files behind a plan, computed again
    only when the plan's hash changes."""

    def __init__(self, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        self._lock = threading.Lock()
        self._key: str | None = None
        self._diagram: Diagram | None = None
        self._problems: list[dict[str, Any]] = []
        self._missing_dot = False

    def diagram(self, plan: Plan | None) -> Diagram | None:
        self._refresh(plan)
        return self._diagram

    def problems(self, plan: Plan | None) -> list[dict[str, Any]]:
        self._refresh(plan)
        return list(self._problems)

    def _refresh(self, plan: Plan | None) -> None:
        key = plan_hash(plan)
        with self._lock:
            if key == self._key:
                return
            try:
                self._diagram, self._problems = self._draw()
            except Exception:  # a drawing that fails must not take the page down
                log.exception("drawing the workflow files")
                self._diagram, self._problems = None, []
            self._key = key

    def _draw(self) -> tuple[Diagram | None, list[dict[str, Any]]]:
        import graphviz

        from flowlord.compiler import lint_files
        from flowlord.compiler.dot import workflows_dot
        from flowlord.compiler.files import find_workflow_files
        from flowlord.reload import Problem

        entries = find_workflow_files(self.paths)
        keys = dict(entries)
        compilation = lint_files([path for path, _ in entries], keys=keys)
        problems = [problem_dict(Problem.of(d, compilation)) for d in compilation.diagnostics]
        # drawn under their keys (the paths relative to the workflow folder), not the full paths
        workflows = [w.model_copy(update={"path": keys.get(w.path, w.path)})
                     for w in compilation.workflows]
        diagnostics = [dataclasses.replace(d, span=dataclasses.replace(
            d.span, path=keys.get(d.span.path, d.span.path))) for d in compilation.diagnostics]
        source = workflows_dot(workflows, diagnostics)
        try:
            svg = graphviz.Source(source).pipe(format="svg").decode("utf-8")
        except graphviz.ExecutableNotFound:
            if not self._missing_dot:
                log.warning("Graphviz's `dot` is not installed: the dashboard shows no diagram")
                self._missing_dot = True
            return None, problems
        # workflows_dot's stable node ids: w<i>p<j>, files (and unreadable ones) sorted by path
        paths = sorted({w.path for w in workflows} | {d.span.path for d in diagnostics})
        nodes = {}
        for workflow in workflows:
            index = paths.index(workflow.path)
            for j, phase in enumerate(workflow.phases):
                nodes[f"w{index}p{j}"] = (workflow.path, phase.name)
        return Diagram(svg, nodes), problems


def _explain(code: str) -> str:
    from flowlord.compiler.report import explain

    return explain(code)


def _settings_dict(settings: Any) -> dict[str, Any]:
    if hasattr(settings, "model_dump"):
        data = settings.model_dump()
    elif dataclasses.is_dataclass(settings):
        data = dataclasses.asdict(settings)
    else:
        data = dict(getattr(settings, "__dict__", {}))

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, timedelta):
            return str(value)
        if isinstance(value, (list, tuple)):
            return ", ".join(map(str, value))
        return value

    return plain(data)


def build_context(service: Any, loop: asyncio.AbstractEventLoop) -> WebContext:
    """The dashboard's view of a running service (runtime.service.Service)."""
    settings = service.settings
    workflow = getattr(settings, "workflow", "") or ""
    drawing = WorkflowDrawing([workflow]) if workflow else None

    def submit(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(SUBMIT_TIMEOUT)

    def diagnostics() -> list[dict[str, Any]]:
        rejected = list(getattr(service, "problems", []) or [])
        if rejected:
            return [problem_dict(p) for p in rejected]
        return drawing.problems(service.engine.plan) if drawing else []

    def reload() -> dict[str, Any]:
        watcher = getattr(service, "watcher", None)
        if watcher is None:
            raise RuntimeError("no workflow watcher")
        outcome = submit(watcher.reload())
        return {"status": outcome.status, "added": list(outcome.added),
                "removed": list(outcome.removed), "modified": list(outcome.modified),
                "problems": [problem_dict(p) for p in outcome.problems]}

    def bus_status() -> dict[str, Any]:
        bus = service.bus
        embedded = getattr(service, "embedded", None)
        status: dict[str, Any] = {"kind": type(bus).__name__}
        url = getattr(settings, "bus", "") or (getattr(embedded, "url", "") if embedded else "")
        if url:
            status["url"] = url
        connected = getattr(bus, "connected", None)
        status["status"] = "ok" if connected is None else "connected" if connected else "disconnected"
        pending = getattr(bus, "pending", None)
        if pending is not None:
            lag = {}
            topics = [getattr(settings, "done_topic", "done") or "done"]
            file_topic = getattr(settings, "file_topic", "files")
            if file_topic and file_topic != "-":
                topics.append(file_topic)
            try:
                for topic in topics:
                    value = pending(topic)
                    if inspect.isawaitable(value):
                        value = asyncio.run_coroutine_threadsafe(value, loop).result(2.0)
                    lag[topic] = int(value)
                status["lag"] = lag
            except Exception as error:  # lag is a nicety: never fail the page for it
                log.debug("bus lag unavailable: %s", error)
        return status

    token = getattr(settings, "token", "") or None
    return WebContext(
        store=service.store, engine=service.engine, plan=lambda: service.engine.plan,
        diagnostics=diagnostics,
        diagram_svg=(lambda: drawing.diagram(service.engine.plan)) if drawing else (lambda: None),
        explain=_explain, reload=reload if workflow else None,
        workflow_root=os.path.abspath(workflow) if workflow else None,
        settings=_settings_dict(settings),
        started_at=getattr(service, "started_at", None) or service.clock.now(),
        version=__version__, token=token, host=getattr(settings, "http_host", "127.0.0.1"),
        port=int(getattr(settings, "http_port", 8080) or 0), bus_status=bus_status,
        submit=submit,
        # runtime/operations.py, when the service runs them: GET /notify and About's status
        notify=getattr(getattr(service, "operations", None), "send_test", None),
        operations=getattr(getattr(service, "operations", None), "status", None),
    )


def serve_app(app: Callable, host: str, port: int, *, threads: int = 8
              ) -> tuple[Callable[[], None], int]:
    """Serves a WSGI app with waitress in a daemon thread. Raises OSError when it cannot listen.
    Returns `(stop, port)` (the port bound, for a port of 0)."""
    from waitress import wasyncore
    from waitress.server import create_server

    server = create_server(app, host=host, port=port, threads=threads, ident="flowlord",
                           clear_untrusted_proxy_headers=True)
    bound = int(server.effective_port)

    def run() -> None:
        try:
            server.run()
        except Exception:  # closing from stop() may surface here
            log.debug("web server loop ended", exc_info=True)

    thread = threading.Thread(target=run, name="flowlord-web", daemon=True)
    thread.start()

    def stop() -> None:
        server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        thread.join(5.0)
        server.task_dispatcher.shutdown()

    return stop, bound


def start_web(service: Any) -> Callable[[], None] | None:
    """The service's web slot: the dashboard on http_host:http_port (none for port 0)."""
    settings = service.settings
    host = getattr(settings, "http_host", "127.0.0.1")
    port = int(getattr(settings, "http_port", 8080) or 0)
    if port == 0:
        return None
    context = build_context(service, asyncio.get_running_loop())
    stop, bound = serve_app(make_app(context), host, port)
    log.info("dashboard on http://%s:%d/", host if ":" not in host else f"[{host}]", bound)
    return stop
