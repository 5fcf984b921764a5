"""The composition root of `flowlord serve`: a plan, a store, a bus, the engine and the parts
around it, started together and stopped in order.

    service = Service(plan, settings, store, bus, embedded=server,
                      start_reload=..., start_web=start_status_web, components=[...])
    await service.run()          # until service.stop() (SIGINT/SIGTERM in `flowlord serve`)

`settings` is any object with the attributes below (flowlord.settings.ServeSettings has them);
missing ones take the default shown:

    done_topic "done", file_topic "files", failed_topic "retry-failed", timezone None,
    catch_up "latest", watch "" (a folder: LocalWatcher publishes its new files to file_topic),
    http_host "127.0.0.1", http_port 0, retention 90 days (history kept in the store)

`run()`:
1. builds the Engine (unless one is given) with a listener that writes one log line per event;
2. records the plan's phases in the store (`Store.replace_phases`, for the dashboard);
3. starts the engine (cron timer, done and files consumers), then the LocalWatcher when
   `watch` is set, then the components: `start_reload(service)`, `start_web(service)` and each
   of `components`, in that order. A component is a callable taking the service and returning
   a stop function (plain or async) or None; it may be async itself. The runtime knows nothing
   of the compiler: `flowlord serve` passes a `start_reload` that runs the WorkflowWatcher
   and hands each new plan to `service.replace_plan`;
4. deletes history older than `retention` at start and once a day; or, given `operations`
   (runtime/operations.py), starts those instead: notifications, the incomplete-task check,
   backups and batched retention; they stop after the engine, before the store closes.

`stop()` (idempotent; safe from a signal handler on the loop) starts the shutdown: the
components stop in reverse order (the web server, the reload, demo workers finishing their
tasks), the LocalWatcher stops, the engine stops taking messages and finishes those in hand,
then the bus is closed (flushing what it holds), the store is closed and the embedded NATS
server, if any, is stopped. `stop(force=True)` (a second signal) cancels what is still running.

Logs: logger `flowlord.service`, one line per event, each record carrying `event` (`sent`,
`failed`, `done`, `retry`, `alert`, `rejected`, `reload`, `start`, `stop`) and `fields` (a dict),
which `JsonFormatter` writes as one JSON object per line.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable, Iterable

from flowlord.compiler.plan import Plan

from .bus import Bus
from .clock import Clock, SystemClock
from .engine import Engine, EngineEvent, Settings
from .store import DEFAULT_RETENTION, PhaseRow, Store
from .task import Task

__all__ = ["JsonFormatter", "Service", "ServiceEngine", "TextFormatter", "phase_rows"]

log = logging.getLogger("flowlord.service")

StopFunction = Callable[[], "Awaitable[None] | None"]
Component = Callable[["Service"], "StopFunction | None | Awaitable[StopFunction | None]"]

CLEANUP_EVERY = 24 * 3600.0  # seconds
ENGINE_STOP_TIMEOUT = 30.0  # seconds to finish the messages in hand
_ENGINE_DUPLICATES = ("alert %s %s %s: %s", "rejected a %s message: %s: %s")


def event(level: int, kind: str, message: str, *args: Any, **fields: Any) -> None:
    """One structured log line of the service."""
    log.log(level, message, *args, extra={"event": kind, "fields": fields})


def _short(text: str, limit: int = 200) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _name(task: Task) -> str:
    return f"{task.type}:{task.job}" if task.job else task.type


def _task_fields(task: Task) -> dict[str, Any]:
    fields = {"type": task.type, "id": task.id, "info": task.info}
    if task.job:
        fields["job"] = task.job
    return fields


class ServiceEngine(Engine):
    """The Engine, with a log line for each retry scheduled (the other events come to the
    service's listener)."""

    def _after(self, effects, extra, now, topic, raw) -> None:  # noqa: ANN001 - Engine's hook
        super()._after(effects, extra, now, topic, raw)
        for retry in effects.retries:
            task = retry.task
            wait = (retry.due - now).total_seconds()
            event(logging.INFO, "retry", "retry    %s %s attempt %d in %.1fs", _name(task), task.id,
                  retry.attempt, wait, **_task_fields(task), attempt=retry.attempt,
                  due=retry.due.isoformat(), workflow=retry.workflow, phase=retry.phase)


class _DropEngineDuplicates(logging.Filter):
    """The engine logs alerts and rejections; the service logs them as events, with fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in _ENGINE_DUPLICATES


def phase_rows(plan: Plan) -> dict[str, list[PhaseRow]]:
    """The plan's phases as store rows, by workflow key."""
    rows: dict[str, list[PhaseRow]] = {}
    for workflow in plan.workflows:
        out = rows.setdefault(workflow.key, [])
        for phase in workflow.phases:
            depends = ""
            if phase.parent is not None:
                depends = f"{phase.parent.topic}:{phase.parent.job}" if phase.parent.job else phase.parent.topic
            out.append(PhaseRow(
                phase_id=phase.id, topic=phase.topic, job=phase.job or "",
                rule="&".join(f"{k}={v}" for k, v in phase.rule),
                template=phase.template.text, depends_on=depends,
            ))
    return rows


def file_patterns(plan: Plan) -> list[str]:
    return list(dict.fromkeys(p for w in plan.workflows for phase in w.phases for p in phase.files))


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Service:
    def __init__(self, plan: Plan, settings: Any, store: Store, bus: Bus, engine: Engine | None = None,
                 *, clock: Clock | None = None, embedded: Any = None,
                 start_reload: Component | None = None, start_web: Component | None = None,
                 components: Iterable[Component] = (), base_dir: str | None = None,
                 operations: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.clock = clock or SystemClock()
        self.embedded = embedded
        self.start_reload = start_reload
        self.start_web = start_web
        self.components = list(components)
        self.listeners: list[Callable[[EngineEvent], None]] = []
        self.plan_listeners: list[Callable[[Plan], Any]] = []
        self.problems: list[Any] = []  # diagnostics of the last rejected reload
        self.started_at: datetime | None = None
        self.ready = asyncio.Event()
        self.failed_topic = self._setting("failed_topic", "retry-failed")
        if engine is None:
            engine = ServiceEngine(plan, store, bus, self.clock, Settings(
                done_topic=self._setting("done_topic", "done"),
                files_topic=self._setting("file_topic", "files") or "-",
                failed_topic=self.failed_topic or "-",
                timezone=self._setting("timezone", None) or None,
                catch_up=self._setting("catch_up", "latest"),
                base_dir=base_dir,
            ), listener=self._on_event)
        elif callable(getattr(engine, "add_listener", None)):
            engine.add_listener(self._on_event)
        else:
            previous = engine.listener
            if previous is not None:
                self.listeners.append(previous)
            engine.listener = self._on_event
        self.engine = engine
        self.local_watcher = None
        self.reload_now: Callable[[], Any] | None = None  # set by the reload component
        self._stops: list[tuple[str, StopFunction]] = []
        self._stop_requested = asyncio.Event()
        self._force = False
        self._engine_task: asyncio.Task | None = None
        self._running = False
        self._stopped = False
        self._filter = _DropEngineDuplicates()
        # runtime/operations.py (notifications, incomplete tasks, backups, batched retention):
        # started after the parts, stopped (a last backup) after the engine, before the store
        self.operations = operations
        if operations is not None:
            self.listeners.append(operations.on_event)

    def _setting(self, name: str, default: Any) -> Any:
        value = getattr(self.settings, name, default)
        return default if value is None else value

    @property
    def plan(self) -> Plan:
        return self.engine.plan

    async def reload(self) -> Any:
        """Checks the workflow files now (the reload component sets `reload_now`; the
        dashboard's POST /refresh calls this). None when there is no reload component."""
        if self.reload_now is None:
            return None
        return await _maybe_await(self.reload_now())

    # --- events -------------------------------------------------------------------------------

    def _on_event(self, item: EngineEvent) -> None:
        if item.kind == "sent" and item.task is not None:
            task = item.task
            if self.failed_topic and item.topic == self.failed_topic:
                event(logging.WARNING, "failed", "failed   %s %s: retries exhausted, sent to %s",
                      _name(task), task.id, item.topic, topic=item.topic, **_task_fields(task))
            else:
                event(logging.INFO, "sent", "sent     %s %s %s", _name(task), task.id, _short(task.info),
                      topic=item.topic, **_task_fields(task))
        elif item.kind == "done" and item.task is not None:
            task = item.task
            fields = {**_task_fields(task), "result": task.result, "workflow": item.workflow,
                      "phase": item.phase}
            if task.msg:
                fields["msg"] = _short(task.msg, 500)
            event(logging.INFO, "done", "done     %s %s %s%s", _name(task), task.id,
                  task.result or "(no result)",
                  f": {_short(task.msg)}" if task.msg and task.result != "complete" else "", **fields)
        elif item.kind == "alert" and item.task is not None:
            task = item.task
            event(logging.WARNING, "alert", "alert    %s %s %s %s: %s", item.workflow, item.phase or _name(task),
                  task.id, item.result, _short(item.msg), workflow=item.workflow, phase=item.phase,
                  result=item.result, msg=item.msg, **_task_fields(task))
        elif item.kind == "rejected":
            event(logging.WARNING, "rejected", "rejected a %s message: %s: %s", item.topic, item.reason,
                  _short(item.detail), topic=item.topic, reason=item.reason, detail=item.detail)
        for listener in list(self.listeners):
            try:
                listener(item)
            except Exception:  # noqa: BLE001 - a listener never stops the engine
                log.exception("a service listener failed on a %s event", item.kind)

    # --- plan ---------------------------------------------------------------------------------

    async def replace_plan(self, plan: Plan) -> None:
        """A new plan (hot reload): the engine swaps it, the store's phases and the local
        watcher's patterns follow, then the plan listeners. An equal plan changes nothing."""
        if plan == self.engine.plan:
            self.problems = []
            return
        before = {w.key for w in self.engine.plan.workflows}
        self.engine.replace_plan(plan)
        self.problems = []
        self._record_phases(plan, gone=before - {w.key for w in plan.workflows})
        if self.local_watcher is not None:
            try:
                self.local_watcher.set_patterns(file_patterns(plan))
            except ValueError as error:
                log.error("local watcher: %s; keeping the previous patterns", error)
        event(logging.INFO, "reload", "reload   plan applied: %d workflows, %d phases", len(plan.workflows),
              sum(len(w.phases) for w in plan.workflows), workflows=len(plan.workflows))
        for listener in list(self.plan_listeners):
            try:
                await _maybe_await(listener(plan))
            except Exception:  # noqa: BLE001
                log.exception("a plan listener failed")

    def record_problems(self, problems: list[Any]) -> None:
        """A rejected reload's diagnostics (the WorkflowWatcher logs them): kept for the
        dashboard; the last good plan keeps running."""
        self.problems = list(problems)
        errors = sum(1 for p in problems if getattr(p, "severity", "error") == "error")
        event(logging.WARNING, "reload", "reload   rejected: %d error(s); the running plan stays", errors,
              errors=errors, problems=[str(p) for p in problems][:20])

    def _record_phases(self, plan: Plan, gone: Iterable[str] = ()) -> None:
        try:
            with self.store.transaction():
                for key, rows in phase_rows(plan).items():
                    self.store.replace_phases(key, rows)
                for key in gone:
                    self.store.replace_phases(key, [])
        except Exception:  # noqa: BLE001 - the phases table is for display only
            log.exception("recording the plan's phases in the store failed")

    # --- life cycle ---------------------------------------------------------------------------

    def stop(self, force: bool = False) -> None:
        """Starts the shutdown (see the module docstring); a second call, or `force`, cancels
        what is still running. Call it on the loop's thread."""
        again = self._stop_requested.is_set()
        self._stop_requested.set()
        if (force or again) and not self._force:
            self._force = True
            log.warning("stopping now: cancelling what is still running")
            self.engine.stop()
            task = self._engine_task
            if task is not None and not task.done():
                task.cancel()

    async def run(self) -> None:
        if self._running or self._stopped:
            raise RuntimeError("a Service runs once")
        self._running = True
        engine_log = logging.getLogger("flowlord.engine")
        engine_log.addFilter(self._filter)
        self.started_at = datetime.now(timezone.utc)
        cleanup: asyncio.Task | None = None
        failure: BaseException | None = None
        try:
            self._record_phases(self.plan)
            self._engine_task = asyncio.create_task(self.engine.run(), name="flowlord-engine")
            await self._start_parts()
            if self.operations is not None:
                await self.operations.start()  # it deletes old history itself, in batches
            else:
                cleanup = asyncio.create_task(self._cleanup_loop(), name="flowlord-cleanup")
            plan = self.plan
            event(logging.INFO, "start", "flowlord serving %d workflows (%d phases, %d cron), done topic %r",
                  len(plan.workflows), sum(len(w.phases) for w in plan.workflows),
                  len(self.engine.index.cron), self.engine.settings.done_topic,
                  workflows=len(plan.workflows))
            self.ready.set()
            stop_wait = asyncio.ensure_future(self._stop_requested.wait())
            try:
                await asyncio.wait({stop_wait, self._engine_task}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_wait.cancel()
            if self._engine_task.done() and not self._stop_requested.is_set():
                error = None if self._engine_task.cancelled() else self._engine_task.exception()
                log.error("the engine stopped by itself%s", f": {error!r}" if error else "")
                failure = error
        except BaseException as error:  # a part failed to start, or run() was cancelled
            failure = error
        finally:
            if cleanup is not None:
                cleanup.cancel()
            await self._shutdown()
            engine_log.removeFilter(self._filter)
            self._running = False
            self._stopped = True
        if failure is not None:
            raise failure

    async def _start_parts(self) -> None:
        watch = self._setting("watch", "")
        if watch:
            from .files import LocalWatcher

            topic = self._setting("file_topic", "files")
            watcher = LocalWatcher(watch, self.bus, file_patterns(self.plan), topic=topic)
            await watcher.start()
            self.local_watcher = watcher
            self._stops.append(("local watcher", watcher.stop))
        named = [("reload", self.start_reload), ("web", self.start_web)]
        named += [(getattr(c, "__name__", "component"), c) for c in self.components]
        for name, start in named:
            if start is None:
                continue
            stop = await _maybe_await(start(self))
            if stop is not None:
                self._stops.append((name, stop))

    async def _cleanup_loop(self) -> None:
        retention = self._setting("retention", DEFAULT_RETENTION)
        if not isinstance(retention, timedelta):
            retention = DEFAULT_RETENTION
        while True:
            try:
                deleted = await asyncio.to_thread(self.store.cleanup, retention)
                if any(deleted.values()):
                    log.info("history older than %s deleted: %s", retention,
                             ", ".join(f"{n} {table}" for table, n in deleted.items() if n))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("deleting old history failed")
            await asyncio.sleep(CLEANUP_EVERY)

    async def _shutdown(self) -> None:
        began = time.monotonic()
        log.info("stopping: no new messages; finishing those in hand")
        for name, stop in reversed(self._stops):
            try:
                await _maybe_await(stop())
            except Exception:  # noqa: BLE001 - go on stopping the others
                log.exception("stopping the %s failed", name)
        self._stops.clear()
        self.engine.stop()
        task = self._engine_task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), ENGINE_STOP_TIMEOUT if not self._force else 1.0)
            except asyncio.TimeoutError:
                pass
            except asyncio.CancelledError:
                pass
            except Exception:  # noqa: BLE001 - its failure is reported by run()
                pass
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.bus.close(), 10.0)
        except Exception:  # noqa: BLE001 - a broken connection
            log.exception("closing the bus failed")
        if self.operations is not None:
            try:
                await self.operations.stop()  # after the engine: the last backup has everything
            except Exception:  # noqa: BLE001
                log.exception("stopping the operations failed")
        try:
            self.store.close()
        except Exception:  # noqa: BLE001
            log.exception("closing the store failed")
        if self.embedded is not None:
            try:
                stop = getattr(self.embedded, "stop_async", None)
                await (stop() if stop is not None else asyncio.to_thread(self.embedded.stop))
            except Exception:  # noqa: BLE001
                log.exception("stopping the embedded NATS server failed")
        event(logging.INFO, "stop", "stopped cleanly in %.1fs", time.monotonic() - began,
              seconds=round(time.monotonic() - began, 3))


# --- log formats ------------------------------------------------------------------------------

class TextFormatter(logging.Formatter):
    """`2024-05-06 13:00:00.123 INFO  sent     extract 1f2e… ?hour=…`; lines that are not service
    events name their logger: `[engine] …`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s.%(msecs)03d %(levelname)-5s %(origin)s%(message)s",
                         "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        record.origin = "" if getattr(record, "event", None) else \
            f"[{record.name.removeprefix('flowlord.')}] "
        return super().format(record)


_PADDING = re.compile(r"^([a-z]+) {2,}")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (RFC 3339 UTC), level, logger, msg, event and the
    event's fields, exc for a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        line: dict[str, Any] = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _PADDING.sub(r"\1 ", record.getMessage(), count=1),
        }
        kind = getattr(record, "event", None)
        if kind:
            line["event"] = kind
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)
