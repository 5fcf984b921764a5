"""Workers written in Python: a decorator per topic, and `run()`.

```python
from flowlord.worker import task_handler, run

@task_handler("etl", concurrency=4, timeout=600)
def etl(task):
    load(task.info)                 # task: flowlord.runtime.task.Task (type, job, info, id, meta, …)
    return f"loaded {task.info}"    # the `msg` of the complete result; raise to report an error

run()                               # the bus from FLOWLORD_BUS, else nats://127.0.0.1:4222
```

Each handler consumes its topic and reports every task to the done topic, as `flowlord worker`
does for a command: `complete` with what the handler returned as `msg`, or `error` with the text
of what it raised (`TaskError(msg)` for a failure that needs no traceback in the log), `started`
and `ended` set. An `async def` handler runs on the event loop; a plain function in a thread of
its own. `run()` stops on SIGINT or SIGTERM: it takes no more tasks and lets those in flight
finish (a second signal cancels them; they are delivered again).

`Worker` (flowlord.runtime.worker) is the class underneath, for a bus of your own:
`await Worker(bus, "etl", etl, concurrency=4).run()`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from dataclasses import dataclass
from typing import Callable, Mapping

from flowlord.runtime.bus import Bus, open_bus
from flowlord.runtime.task import Task
from flowlord.runtime.worker import CommandHandler, TaskError, Worker, WorkerStats

__all__ = [
    "DEFAULT_BUS", "CommandHandler", "Registration", "Task", "TaskError", "Worker", "WorkerStats",
    "bus_url", "clear", "handlers", "run", "serve", "task_handler",
]

DEFAULT_BUS = "nats://127.0.0.1:4222"

log = logging.getLogger("flowlord.worker")


def bus_url(url: str | None = None) -> str:
    """`url`, else $FLOWLORD_BUS, else the local NATS server."""
    return url or os.environ.get("FLOWLORD_BUS") or DEFAULT_BUS


@dataclass(frozen=True)
class Registration:
    topic: str
    handler: Callable
    concurrency: int = 1
    timeout: float | None = None
    done_topic: str | None = None  # None: run()'s
    group: str | None = None  # None: run()'s


_registry: dict[str, Registration] = {}


def task_handler(topic: str, *, concurrency: int = 1, timeout: float | None = None,
                 done_topic: str | None = None, group: str | None = None) -> Callable[[Callable], Callable]:
    """Registers the decorated function as the handler of `topic`'s tasks; the function itself
    is returned unchanged (it can still be called, and tested, directly)."""
    if not isinstance(topic, str) or not topic:
        raise ValueError(f"task_handler: give the topic to consume, e.g. @task_handler('etl'), not {topic!r}")
    if not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"task_handler({topic!r}): concurrency must be 1 or more, not {concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"task_handler({topic!r}): timeout must be a positive number of seconds")

    def register(function: Callable) -> Callable:
        if not callable(function):
            raise TypeError(f"task_handler({topic!r}) decorates a function, not {function!r}")
        known = _registry.get(topic)
        if known is not None and known.handler is not function:
            raise ValueError(f"topic {topic!r} already has a handler: {_label(known.handler)}")
        _registry[topic] = Registration(topic, function, concurrency, timeout, done_topic, group)
        return function

    return register


def handlers() -> dict[str, Registration]:
    """The registered handlers, by topic."""
    return dict(_registry)


def clear() -> None:
    """Forgets every registered handler (tests)."""
    _registry.clear()


def _label(function: Callable) -> str:
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', repr(function))}"


async def serve(bus: Bus | str | None = None, *,
                handlers: Mapping[str, Registration | Callable] | None = None,
                done_topic: str = "done", group: str = "workers",
                stop: asyncio.Event | None = None, signals: bool = False) -> dict[str, WorkerStats]:
    """Runs a Worker per handler (the registered ones unless `handlers` is given) until `stop`
    is set, a signal arrives (with `signals`) or every input ends; returns their stats.

    `bus` is a Bus or its URL (see `bus_url`); a bus opened here is closed here. If one worker
    fails (the bus), the others stop too and the error is raised.
    """
    chosen = _registry if handlers is None else handlers
    if not chosen:
        raise ValueError("no task handlers: decorate a function with @task_handler('topic') first")
    owned = bus is None or isinstance(bus, str)
    the_bus = open_bus(bus_url(bus)) if owned else bus
    loop = asyncio.get_running_loop()
    workers: list[Worker] = []
    installed: list[int] = []
    watcher: asyncio.Future | None = None
    try:
        for topic, entry in chosen.items():
            if not isinstance(entry, Registration):
                entry = Registration(topic, entry)
            workers.append(Worker(
                the_bus, topic, entry.handler, done_topic=entry.done_topic or done_topic,
                concurrency=entry.concurrency, timeout=entry.timeout, group=entry.group or group,
            ))

        def stop_all(force: bool = False) -> None:
            for worker in workers:
                worker.stop(force=force)

        if signals:
            def on_signal(number: int) -> None:
                force = any(worker.stopping for worker in workers)
                busy = sum(worker.in_flight for worker in workers)
                if force:
                    log.warning("%s again: cancelling %d task(s) in flight", signal.Signals(number).name, busy)
                else:
                    log.info("%s: stopping; finishing %d task(s) in flight (again to cancel them)",
                             signal.Signals(number).name, busy)
                stop_all(force)

            for number in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(number, on_signal, number)
                installed.append(number)
        if stop is not None:
            async def watch() -> None:
                await stop.wait()
                stop_all()

            watcher = asyncio.ensure_future(watch())
        connect = getattr(the_bus, "connect", None)
        if connect is not None:  # a server bus (NATS): fail now, not at the first task
            await connect()
        runs = [asyncio.ensure_future(worker.run()) for worker in workers]
        try:
            done, _ = await asyncio.wait(runs, return_when=asyncio.FIRST_EXCEPTION)
            if any(not job.cancelled() and job.exception() is not None for job in done):
                stop_all()
            await asyncio.wait(runs)
        except BaseException:
            stop_all(force=True)
            await asyncio.wait(runs)
            raise
        for job in runs:
            if job.exception() is not None:
                raise job.exception()
        return {worker.topic: worker.stats for worker in workers}
    finally:
        if watcher is not None:
            watcher.cancel()
        for number in installed:
            loop.remove_signal_handler(number)
        if owned:
            await the_bus.close()


def run(bus: Bus | str | None = None, *, handlers: Mapping[str, Registration | Callable] | None = None,
        done_topic: str = "done", group: str = "workers") -> dict[str, WorkerStats]:
    """Runs the registered handlers until SIGINT or SIGTERM (see `serve`). Logs one line per
    task to stderr unless logging is configured already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(bus, handlers=handlers, done_topic=done_topic, group=group, signals=True))
