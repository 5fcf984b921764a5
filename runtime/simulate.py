"""`flowlord simulate`: a deterministic dry run of the engine.

The same Engine as `serve` (scheduler, dispatcher, store code), on a SimClock, an in-memory bus
and a temporary (in-memory) store, with a seeded generator for task ids, `{uuid}` tokens and
retry jitter, and the host name `simulate`, so one input always gives the same output.

Input: JSON lines, each one of

    {"at": "2024-01-15T00:00:00Z"}  the clock moves to that instant: every cron phase due in
                                     (previous instant, this instant] fires at its own fire
                                     time, in time order, and every retry due by then is sent;
                                     the first `at` is the start, and fires only what is due
                                     exactly then
    {"done": TASK}                   a message on the done topic at the current instant
    {"file": STAT}                   a message on the files topic at the current instant

(TASK and STAT are JSON objects; a JSON string is taken as the raw message, to try bad ones.)
Blank lines are skipped. Before the first `at` the clock shows the first `at` of the input (the
Unix epoch when there is none). At the end of the input the clock runs on until no retry is
pending.

Output: JSON lines, one per action, in order:

    {"at": T, "topic": "…", "task": TASK}      a message sent (worker topics, the failed topic)
    {"at": T, "alert": {…}}                     an alert
    {"at": T, "rejected": {"reason": "…", "input": …}}   bad input (a bad line, a bad message)

T is RFC 3339 in UTC (with a fraction only when there is one).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from flowlord.compiler.plan import Plan

from .bus.memory import MemoryBus
from .clock import SimClock
from .engine import Engine, EngineEvent, Settings
from .store import Store
from .task import parse_time
from .timefmt import RenderEnv

__all__ = ["EPOCH", "HOSTNAME", "format_instant", "run_simulation", "simulate"]

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
HOSTNAME = "simulate"
MAX_RUN_ON = 100_000  # steps of the clock after the input, a guard against a runaway


def format_instant(moment: datetime) -> str:
    """RFC 3339 in UTC; the fraction as Go's RFC3339Nano writes it (trailing zeros dropped)."""
    moment = moment.astimezone(timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return text + "Z"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


class _Input:
    """One input line: kind (`at`, `done`, `file` or `bad`), its value, what a rejection shows."""

    __slots__ = ("kind", "reason", "shown", "value")

    def __init__(self, kind: str, value: Any, shown: Any, reason: str = "") -> None:
        self.kind, self.value, self.shown, self.reason = kind, value, shown, reason


def _parse_line(line: str) -> _Input | None:
    text = line.strip()
    if not text:
        return None
    try:
        obj = json.loads(text)
    except ValueError as error:
        return _Input("bad", None, text, f"not-json: {error}")
    if not isinstance(obj, dict):
        return _Input("bad", None, obj, "bad-event: an event is a JSON object with one of at, done, file")
    keys = [k for k in ("at", "done", "file") if k in obj]
    if len(keys) != 1 or len(obj) != 1:
        return _Input("bad", None, obj,
                      "bad-event: an event is a JSON object with exactly one of at, done, file")
    kind = keys[0]
    value = obj[kind]
    if kind == "at":
        if not isinstance(value, str):
            return _Input("bad", None, obj, "bad-at: `at` is an RFC 3339 time string")
        try:
            return _Input("at", parse_time(value), obj)
        except ValueError:
            return _Input("bad", None, obj, f"bad-at: {value!r} is not an RFC 3339 time")
    data = value.encode("utf-8", "surrogatepass") if isinstance(value, str) else _dumps(value).encode("utf-8")
    return _Input(kind, data, value)


class _Simulation:
    def __init__(self, plan: Plan, *, seed: int, no_jitter: bool, base_dir: str | None,
                 write: Callable[[str], None]) -> None:
        self.plan = plan
        self.seed = seed
        self.no_jitter = no_jitter
        self.base_dir = base_dir
        self.write = write
        self.shown: Any = None  # the input being handled, for rejections

    def _emit(self, line: dict) -> None:
        self.write(_dumps(line))

    def _on_event(self, event: EngineEvent) -> None:
        at = format_instant(event.at)
        if event.kind == "sent":
            self._emit({"at": at, "topic": event.topic, "task": json.loads(event.task.to_json())})
        elif event.kind == "alert":
            task = event.task
            alert = {"workflow": event.workflow, "phase": event.phase, "type": task.type,
                     "job": task.job, "id": task.id, "result": event.result, "msg": event.msg}
            self._emit({"at": at, "alert": alert})
        elif event.kind == "rejected":
            reason = f"{event.reason}: {event.detail}" if event.detail else event.reason
            self._emit({"at": at, "rejected": {"reason": reason, "input": self.shown}})

    async def run(self, lines: Iterable[str]) -> None:
        inputs = [parsed for line in lines if (parsed := _parse_line(line)) is not None]
        start = next((i.value for i in inputs if i.kind == "at"), EPOCH)
        ids = random.Random(f"ids:{self.seed}")
        tokens = random.Random(f"uuid:{self.seed}")
        settings = Settings(
            base_dir=self.base_dir,
            rng=random.Random(f"jitter:{self.seed}"),
            no_jitter=self.no_jitter,
            new_id=lambda: str(uuid.UUID(int=ids.getrandbits(128), version=4)),
            env=RenderEnv(hostname=HOSTNAME, new_uuid=lambda: f"{tokens.getrandbits(32):08x}"),
        )
        clock = SimClock(start)
        bus = MemoryBus()
        with Store.open(":memory:") as store:
            engine = Engine(self.plan, store, bus, clock, settings, listener=self._on_event)
            engine.start()
            for item in inputs:
                self.shown = item.shown
                if item.kind == "at":
                    if item.value < clock.now():
                        self._reject(clock, f"at-in-the-past: the clock is at {format_instant(clock.now())}")
                        continue
                    await self._advance(engine, clock, item.value)
                elif item.kind == "done":
                    await self._handled(engine.process_done(item.value), clock)
                elif item.kind == "file":
                    await self._handled(engine.process_file(item.value), clock)
                else:
                    self._reject(clock, item.reason)
            self.shown = None
            for _ in range(MAX_RUN_ON):  # the clock runs on until no retry is pending
                due = store.next_retry_due()
                if due is None:
                    break
                await self._advance(engine, clock, max(due, clock.now()))
            await bus.close()

    async def _handled(self, work, clock: SimClock) -> None:
        if not await work:  # the in-memory store failed: cannot happen, but say so
            self._reject(clock, "internal-error: the message could not be handled")

    def _reject(self, clock: SimClock, reason: str) -> None:
        self._emit({"at": format_instant(clock.now()), "rejected": {"reason": reason, "input": self.shown}})

    @staticmethod
    async def _advance(engine: Engine, clock: SimClock, until: datetime) -> None:
        """The timer loop's steps, the clock stopping at each due time on the way."""
        while (due := engine.next_due()) is not None and due <= until:
            clock.set(max(due, clock.now()))
            await engine.run_due(due)
        clock.set(until)


async def run_simulation(plan: Plan, lines: Iterable[str], *, seed: int = 0,
                         no_jitter: bool = False, base_dir: str | None = None,
                         write: Callable[[str], None]) -> None:
    """Runs the simulation, calling `write(line)` for each output line (no newline)."""
    await _Simulation(plan, seed=seed, no_jitter=no_jitter, base_dir=base_dir, write=write).run(lines)


def simulate(plan: Plan, lines: Iterable[str], *, seed: int = 0, no_jitter: bool = False,
             base_dir: str | None = None, write: Callable[[str], None] | None = None) -> list[str]:
    """Runs the simulation in a new event loop; returns the output lines (also passed to
    `write` as they come, when given)."""
    out: list[str] = []

    def sink(line: str) -> None:
        out.append(line)
        if write is not None:
            write(line)

    asyncio.run(run_simulation(plan, lines, seed=seed, no_jitter=no_jitter, base_dir=base_dir,
                               write=sink))
    return out
