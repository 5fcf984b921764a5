"""The engine: a compiled plan, a clock, a store and a bus, turned into tasks on the wire.

    engine = Engine(plan, store, bus, SystemClock(), Settings())
    await engine.run()            # until engine.stop()

`run()` runs three loops on one event loop: the timer (cron fire times from the scheduler and
pending retries from the store, in time order), the done-topic consumer and the files-topic
consumer. What each event leads to is decided by the dispatcher (dispatcher.py); the engine
applies it:

1. publish the tasks to send (a failed publish does not stop the others: it becomes a pending
   send in the store, retried after `resend_delay`, and an alert);
2. in ONE store transaction: the done message (`record_done`), every task sent, every retry to
   come (`add_retry`), every alert and rejection (and, for a cron firing, the phase's last fire
   time; for a file message, the file record);
3. only then ack the message.

Group commit (`process_done_batch`): when several done messages are waiting (a subscription
offering `take_ready`, as the memory and NATS buses do), the consumer takes up to
`Settings.done_batch` of them. They are decoded, checked for redelivery in one query (and
against each other), dispatched; their tasks are published (all at once on a bus offering
`publish_many`, NATS, whose acks are then awaited together; else message by message); ONE
transaction records them all; the listeners hear of each message in order, as they would one
by one; only then are they acked. The rules above hold for each message; a commit (a WAL
write) is shared. Should that transaction fail, each message is recorded again in its own, as
`process_done` does, so a failure naks only the message it comes from.

So a SIGKILL at any point loses nothing: before step 2 commits, the message is delivered again
and its tasks sent again (at least once); after it, the retries are in the store and are sent
after a restart (`start()` re-arms every pending retry, sending the overdue ones at once). A
message already recorded (`Store.has_done`, checked before anything is sent) is acked and does
nothing, so a redelivered done message has no second effect.

Bad input is recorded (`Store.record_rejected`) and acked; no message stops a loop. A store that
fails (disk full, locked) naks the message, to be delivered again later.

`flowlord simulate` (simulate.py) drives the same engine on a SimClock without `run()`:
`start()`, `process_done(data)`, `process_file(data)`, `next_due()` and `run_due(until)` are the
steps the loops are made of.

Listener: `Engine(..., listener=f)` calls `f(EngineEvent)` for every task sent, alert raised,
input rejected (the simulator's output; a notifier's input) and done message recorded;
`add_listener(g)` adds another (the dashboard's metrics). `send(sends, key)` publishes and
records tasks made outside the dispatcher (a dashboard backload) the way a cron firing's are.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import random
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Awaitable, Callable, Iterable

from flowlord.compiler.plan import Plan

from .bus import Bus, BusError, Message, Subscription
from .clock import Clock, SystemClock
from .dispatcher import (
    AlertEffect,
    Dispatcher,
    Effects,
    PlanIndex,
    SendEffect,
    _truncate_ms,
)
from .scheduler import CATCH_UP_POLICIES, CronEntry, Scheduler
from .store import Store, StoreError
from .task import MAX_MESSAGE_BYTES, BadMessage, Task
from .timefmt import RenderEnv

__all__ = ["Engine", "EngineEvent", "Settings", "disabled"]

log = logging.getLogger("flowlord.engine")


def disabled(topic: str | None) -> bool:
    """A topic set to `-` or the empty string is switched off."""
    return topic in (None, "", "-")


@dataclass
class Settings:
    done_topic: str = "done"
    files_topic: str = "files"  # "-" or "": no files consumer
    failed_topic: str = "retry-failed"  # "-" or "": exhausted retries are only alerted
    timezone: str | None = None  # cron specs without TZ=: this zone instead of the plan's
    base_dir: str | None = None  # relative meta-file paths are read from here (default: cwd)
    rng: random.Random | None = None  # retry jitter; seed it for reproducible delays
    no_jitter: bool = False
    catch_up: str = "latest"  # fires missed while down: latest, all or none
    catch_up_limit: int = 1000  # `all` runs at most this many missed fires per phase
    group: str | None = None  # consumer group of the done and files subscriptions
    done_batch: int = 256  # done messages already waiting recorded in one transaction (1: each alone)
    new_id: Callable[[], str] | None = None  # task ids (default: uuid4)
    env: RenderEnv | None = None  # {host}, {pod}, {uuid} in templates
    resend_delay: timedelta = field(default_factory=lambda: timedelta(seconds=5))

    def __post_init__(self) -> None:
        if self.catch_up not in CATCH_UP_POLICIES:
            raise ValueError(f"catch_up={self.catch_up!r}: use one of {', '.join(CATCH_UP_POLICIES)}")
        if disabled(self.done_topic):
            raise ValueError("the done topic cannot be disabled")
        if self.resend_delay <= timedelta(0):
            raise ValueError("resend_delay must be positive")
        if self.done_batch < 1:
            raise ValueError("done_batch must be at least 1")


@dataclass(frozen=True)
class EngineEvent:
    """`sent` (topic, task), `done` (topic, task, workflow, phase, result), `alert` (task,
    workflow, phase, result, msg) or `rejected`
    (topic, reason, detail, raw), at the clock's instant."""

    kind: str
    at: datetime
    topic: str = ""
    task: Task | None = None
    workflow: str = ""
    phase: str = ""
    result: str = ""
    msg: str = ""
    reason: str = ""
    detail: str = ""
    raw: bytes = b""


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _error_text(error: BaseException) -> str:
    return str(error) if isinstance(error, BusError) else f"{type(error).__name__}: {error}"


def _takes_msg_id(bus: Bus) -> bool:
    """Whether `bus.publish` takes the `msg_id` keyword (a bus that deduplicates)."""
    try:
        parameters = inspect.signature(bus.publish).parameters
    except (TypeError, ValueError):
        return False
    return "msg_id" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


class _Redelivered(Exception):
    """A done message of a batch was recorded meanwhile: roll the batch back."""


class _Done:
    """A done message decoded and dispatched (or found bad: `reject`, its reason and detail):
    what is left is publishing its tasks (`published`: each send with its error, None when
    sent), recording it, then telling the listeners. `events`: the `sent` events a batch holds
    back until then, so that they keep their place."""

    __slots__ = ("data", "effects", "events", "extra", "now", "published", "reject", "task")

    def __init__(self, data: bytes, now: datetime, task: Task | None = None,
                 effects: Effects | None = None, reject: tuple[str, str] | None = None) -> None:
        self.data = data
        self.now = now
        self.task = task
        self.effects = effects
        self.reject = reject
        self.published: list[tuple[SendEffect, str | None]] = []
        self.events: list[EngineEvent] | None = None
        self.extra: list[AlertEffect] = []


class _Consumer:
    __slots__ = ("busy", "subscription", "topic")

    def __init__(self, topic: str, subscription: Subscription) -> None:
        self.topic = topic
        self.subscription = subscription
        self.busy = False


class Engine:
    def __init__(self, plan: Plan, store: Store, bus: Bus, clock: Clock | None = None,
                 settings: Settings | None = None, *,
                 listener: Callable[[EngineEvent], None] | None = None) -> None:
        self.settings = settings = settings or Settings()
        self.store = store
        self.bus = bus
        self.clock = clock or SystemClock()
        self.listener = listener
        self._listeners: list[Callable[[EngineEvent], None]] = []
        self.index = PlanIndex(plan, settings.timezone)
        self.scheduler = Scheduler(store, catch_up=settings.catch_up, limit=settings.catch_up_limit)
        self.dispatcher = Dispatcher(
            self.index, failed_topic=settings.failed_topic, base_dir=settings.base_dir,
            rng=settings.rng, no_jitter=settings.no_jitter, new_id=settings.new_id,
            env=settings.env, attempts=self._own_attempts,
        )
        self._retry_due: datetime | None = None
        self._started = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._consumers: list[_Consumer] = []
        self._background: set[asyncio.Task] = set()
        self._msg_ids = _takes_msg_id(bus)

    @property
    def plan(self) -> Plan:
        return self.index.plan

    # --- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Registers the cron phases (the catch-up policy deciding about fires missed while
        down) and re-arms the pending retries. `run()` calls it; idempotent."""
        if self._started:
            return
        now = self.clock.now()
        self.scheduler.replace(self.index.cron, now)
        self._retry_due = self.store.next_retry_due()
        if self._retry_due is not None:
            log.info("%d pending retries re-armed, the first due %s",
                     len(self.store.pending_retries()), self._retry_due.isoformat())
        self._started = True

    def replace_plan(self, plan: Plan) -> None:
        """Hot reload: the new plan's phases replace the old ones. Cron phases still there keep
        their schedule and last fire time (by workflow key and phase id); none is duplicated.
        File rules are read from the plan at each message, so they cannot be either."""
        index = PlanIndex(plan, self.settings.timezone)  # fails before anything changes
        self.index = index
        self.dispatcher.index = index
        if self._started:
            self.scheduler.replace(index.cron, self.clock.now())
        self._wake.set()
        log.info("plan replaced: %d workflows, %d cron phases, %d file phases",
                 len(plan.workflows), len(index.cron), len(index.files))

    async def run(self) -> None:
        """Runs the timer and the consumers until `stop()`."""
        self.start()
        loops = [self._timer_loop(), self._consume(self.settings.done_topic, self.process_done,
                                                   self.process_done_batch)]
        if not disabled(self.settings.files_topic):
            loops.append(self._consume(self.settings.files_topic, self.process_file))
        tasks = [asyncio.create_task(loop) for loop in loops]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def stop(self) -> None:
        """Stops taking messages; those being handled are finished first. Call it from the
        event loop's thread (`loop.call_soon_threadsafe(engine.stop)` from another)."""
        self._stopping = True
        self._wake.set()
        self._stopped.set()
        for consumer in list(self._consumers):
            if not consumer.busy:
                self._spawn(consumer.subscription.close())

    def _spawn(self, coroutine: Awaitable) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- the timer: cron fires and retries, in time order ---------------------------------

    def next_due(self) -> datetime | None:
        """The next instant something is due: a cron fire time or a pending retry."""
        times = [t for t in (self.scheduler.next_due(), self._retry_due) if t is not None]
        return min(times) if times else None

    async def run_due(self, until: datetime | None = None) -> None:
        """Fires every cron phase and sends every pending retry due at or before `until`
        (default: now), in time order; each is stamped with the clock's time."""
        until = self.clock.now() if until is None else until
        while not self._stopping:
            cron_due, retry_due = self.scheduler.next_due(), self._retry_due
            if retry_due is not None and retry_due <= until and (cron_due is None or retry_due < cron_due):
                await self._send_retries(retry_due)  # a store failure: the timer loop pauses
                continue
            popped = self.scheduler.pop_due(until)
            if popped is None:
                return
            entry, fire = popped
            await self._fire(entry, fire)

    async def _timer_loop(self) -> None:
        while not self._stopping:
            try:
                due = self.next_due()
                if due is not None and due <= self.clock.now():
                    await self.run_due()
                    continue
                await self._sleep(due)
            except Exception:  # never dies: a bug in one firing must not stop the others
                log.exception("timer loop")
                await self._pause(1.0)

    async def _sleep(self, due: datetime | None) -> None:
        self._wake.clear()
        waits = [asyncio.ensure_future(self._wake.wait())]
        if due is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep_until(due)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout=seconds)
        except asyncio.TimeoutError:
            pass

    async def _fire(self, entry: CronEntry, fire: datetime) -> None:
        now = self.clock.now()
        try:
            effects = self.dispatcher.cron(entry.workflow, entry.phase, fire, now)
            for note in effects.notes:
                log.warning("%s", note)
            key = f"cron:{entry.workflow}:{entry.phase.id}:{fire.isoformat()}"
            published = await self._publish(effects.sends, now, key)
            with self.store.transaction():
                extra = self._record(effects, published, now, "", b"")
                self.store.set_last_fire(entry.workflow, entry.phase.id, fire, at=now)
            self._after(effects, extra, now, "", b"")
        except Exception:
            log.exception("firing %s at %s", entry.describe(), fire.isoformat())
        finally:
            self.scheduler.fired(entry, fire, remember=False)

    async def _send_retries(self, until: datetime) -> None:
        for retry in self.store.due_retries(until):
            now = self.clock.now()
            error = await self._publish_one(retry.topic, retry.task, now,
                                            f"retry:{retry.id}:{retry.task.id}:{retry.attempt}")
            with self.store.transaction():
                self.store.remove_retry(retry.id)
                if error is None:
                    self.store.record_sent(retry.task, workflow=retry.workflow, phase=retry.phase,
                                           attempt=retry.attempt, topic=retry.topic, at=now)
                else:
                    due = _truncate_ms(now + self.settings.resend_delay)
                    self.store.add_retry(retry.task, due, attempt=retry.attempt,
                                         workflow=retry.workflow, phase=retry.phase,
                                         topic=retry.topic, at=now)
                    log.warning("sending %s %s to %s failed (%s): again at %s", retry.task.type,
                                retry.task.id, retry.topic, error, due.isoformat())
        self._retry_due = self.store.next_retry_due()

    def add_listener(self, listener: Callable[[EngineEvent], None]) -> None:
        """Another listener, called after `listener` with every event."""
        self._listeners.append(listener)

    async def send(self, sends: Iterable[SendEffect], key: str) -> list[tuple[SendEffect, str | None]]:
        """Publishes and records tasks made outside the dispatcher (a backload), as a cron
        firing's: a failed publish becomes a pending resend and an alert. Returns each send
        with its error text (None: sent)."""
        effects = Effects(sends=list(sends))
        now = self.clock.now()
        published = await self._publish(effects.sends, now, key)
        with self.store.transaction():
            extra = self._record(effects, published, now, "", b"")
        self._after(effects, extra, now, "", b"")
        return published

    # --- messages -------------------------------------------------------------------------

    async def process_done(self, data: bytes) -> bool:
        """Handles one done-topic message. True: ack it; False: deliver it again later."""
        return await self._guard(self._done(data), "done message", data,
                                 self.settings.done_topic)

    async def process_file(self, data: bytes) -> bool:
        """Handles one files-topic message. True: ack it; False: deliver it again later."""
        return await self._guard(self._file(data), "files message", data,
                                 self.settings.files_topic)

    async def process_done_batch(self, batch: list[bytes]) -> list[bool | None]:
        """`process_done` for several messages, recorded in ONE transaction (group commit):
        each is decoded and dispatched, their tasks published (all at once on a bus that has
        `publish_many`, else message by message), then all are recorded, then the listeners
        hear of each in order, as they would one by one. Per message: True: ack it; False:
        deliver it again later; None: not begun, `stop()` came first (leave it unsettled:
        closing the subscription gives it back). A message that raises, or a common
        transaction that fails, is handled as `process_done` would (the messages before it
        recorded first; each then in its own transaction)."""
        what, topic = "done message", self.settings.done_topic
        results: list[bool | None] = [None] * len(batch)
        steps: list[tuple[int, _Done]] = []
        seen: set[Task] = set()  # what has_done cannot see yet: this batch, not yet recorded
        tasks: list[Task | None] = []
        for data in batch:
            try:
                tasks.append(Task.from_json(data))
            except Exception:
                tasks.append(None)  # decoded again in its turn: rejected, or fails there
        try:  # the redelivery check of the whole batch in one query
            known = iter(self.store.has_done_many([task for task in tasks if task is not None]))
        except Exception:
            known = None  # each asks in its turn (and fails there, alone)
        for i, data in enumerate(batch):
            task = tasks[i]
            done_before = next(known) if known is not None and task is not None else None
            try:
                step = self._done_dispatch(data, seen, task, done_before)
            except Exception as error:
                await self._done_flush(steps, results)  # keeps the listeners' order
                steps = []
                results[i] = self._failed(error, what, data, topic)
                continue
            if step is None:
                results[i] = True
            else:
                steps.append((i, step))
        await self._done_flush(steps, results)
        return results

    async def _done_flush(self, steps: list[tuple[int, _Done]], results: list[bool | None]) -> None:
        """Publishes the tasks of dispatched done messages, then records them all."""
        if not steps:
            return
        listening = self.listener is not None or bool(self._listeners)
        for _, step in steps:
            step.events = [] if listening else None
        if getattr(self.bus, "publish_many", None) is not None:
            await self._publish_steps([step for _, step in steps])
        else:
            for k, (i, step) in enumerate(steps):
                if i and self._stopping:  # stop(): the messages not begun are given back
                    del steps[k:]
                    break
                if step.reject is None:
                    step.published = await self._publish(step.effects.sends, step.now,
                                                          "done:" + _digest(step.data), step.events)
        await self._done_commit_all(steps, results)

    async def _publish_steps(self, steps: list[_Done]) -> None:
        """The tasks of several done messages, through `bus.publish_many`: all sent at once,
        and each acknowledged (JetStream), or failed, on its own."""
        items: list[tuple[str, bytes, str | None]] = []
        sends: list[tuple[_Done, SendEffect]] = []
        for step in steps:
            if step.reject is not None:
                continue
            key = "done:" + _digest(step.data)
            for n, send in enumerate(step.effects.sends):
                items.append((send.topic, send.task.to_json(), f"{key}:{n}" if self._msg_ids else None))
                sends.append((step, send))
        if not items:
            return
        try:
            errors = await self.bus.publish_many(items)
        except Exception as error:  # the bus refused them all
            errors = [error] * len(items)
        for (step, send), error in zip(sends, errors):
            if error is None:
                step.published.append((send, None))
                if step.events is not None:
                    step.events.append(EngineEvent("sent", step.now, topic=send.topic, task=send.task))
            else:
                step.published.append((send, _error_text(error)))

    async def _done_commit_all(self, steps: list[tuple[int, _Done]],
                               results: list[bool | None]) -> None:
        if not steps:
            return
        try:
            with self.store.transaction():
                self._done_record_all([step for _, step in steps])
        except Exception as error:
            if isinstance(error, _Redelivered):
                log.info("a done message of the batch was recorded meanwhile: one by one")
            else:
                log.warning("recording %d done messages together failed (%s): one by one",
                            len(steps), error)
            for i, step in steps:
                results[i] = await self._guard(self._done_commit(step), "done message", step.data,
                                               self.settings.done_topic)
            return
        for i, step in steps:
            self._done_after(step, True)
            results[i] = True

    def _done_record_all(self, steps: list[_Done]) -> None:
        """`_done_record` for several messages, inside the caller's transaction: their task
        rows in one statement, in order. Raises _Redelivered when one of them was recorded
        meanwhile (roll back, and record each alone)."""
        rows = []
        for step in steps:
            if step.reject is None:
                now = step.now
                workflow, phase, attempt = step.effects.record
                rows.append(("done", step.task, workflow, phase, attempt, "", now))
                rows.extend([("sent", send.task, send.workflow, send.phase, send.attempt,
                              send.topic, now) for send, error in step.published if error is None])
        if self.store.record_tasks(rows) != len(rows):
            raise _Redelivered
        topic = self.settings.done_topic
        for step in steps:
            if step.reject is not None:
                reason, detail = step.reject
                self.store.record_rejected(topic, reason, step.data, detail=detail, at=step.now)
            else:
                step.extra = self._record(step.effects, step.published, step.now, topic,
                                          step.data, sent_recorded=True)

    async def _guard(self, work: Awaitable, what: str, data: bytes | None = None,
                     topic: str = "") -> bool:
        try:
            await work
            return True
        except Exception as error:
            return self._failed(error, what, data, topic)

    def _failed(self, error: Exception, what: str, data: bytes | None, topic: str) -> bool:
        """Handling a message raised `error` (call it from the `except` block): a store
        failure: False, to have it delivered again; a bug: the message is recorded as an
        `internal-error` rejection and True, never fatal."""
        if isinstance(error, (sqlite3.Error, StoreError)):
            log.error("%s: the store failed (%s): to be delivered again", what, error)
            return False
        log.error("%s: unexpected error", what, exc_info=error)  # a bug: recorded with the message
        if data is None:
            return True
        try:
            self._reject(topic, "internal-error", data, f"{type(error).__name__}: {error}",
                         self.clock.now())
        except Exception:
            log.exception("%s: recording the rejection failed", what)
            return False
        return True

    async def _done(self, data: bytes) -> None:
        step = self._done_dispatch(data)
        if step is None:
            return
        if step.reject is None:
            step.published = await self._publish(step.effects.sends, step.now,
                                                 "done:" + _digest(data))
        await self._done_commit(step)

    def _done_dispatch(self, data: bytes, seen: set[Task] | None = None, task: Task | None = None,
                       done_before: bool | None = None) -> _Done | None:
        """Decodes (unless given the `task`), skips a redelivery and dispatches; None: nothing
        to record (a message seen before: by the store, as `done_before` says when it is known,
        or in `seen`, the tasks of a batch not yet recorded)."""
        now = self.clock.now()
        if task is None:
            try:
                task = Task.from_json(data)
            except BadMessage as bad:
                return _Done(data, now, reject=(bad.reason, bad.detail))
        if seen is not None:
            count = len(seen)
            seen.add(task)
            if len(seen) == count:  # twice in one batch
                done_before = True
        if done_before is None:
            done_before = self.store.has_done(task)
        if done_before:
            log.info("done message for %s %s seen before (a redelivery): skipped", task.type, task.id)
            return None
        effects = self.dispatcher.done(task, now)
        for note in effects.notes:
            log.warning("%s", note)
        return _Done(data, now, task, effects)

    async def _done_commit(self, step: _Done) -> None:
        try:
            with self.store.transaction():
                recorded = self._done_record(step)
        except BaseException:
            self._emit_held(step)  # its tasks went out, whatever the store says
            raise
        self._done_after(step, recorded)

    def _done_record(self, step: _Done) -> bool:
        """The store's part of a done message, inside the caller's transaction. False: this
        very message was recorded meanwhile (a redelivery), and nothing was written."""
        if step.reject is not None:
            reason, detail = step.reject
            self.store.record_rejected(self.settings.done_topic, reason, step.data, detail=detail,
                                       at=step.now)
            return True
        workflow, phase, attempt = step.effects.record
        if not self.store.record_done(step.task, workflow=workflow, phase=phase, attempt=attempt,
                                      at=step.now):
            return False
        step.extra = self._record(step.effects, step.published, step.now,
                                  self.settings.done_topic, step.data)
        return True

    def _done_after(self, step: _Done, recorded: bool) -> None:
        self._emit_held(step)
        topic, task, now = self.settings.done_topic, step.task, step.now
        if step.reject is not None:
            reason, detail = step.reject
            log.warning("rejected a %s message: %s: %s", topic, reason, detail)
            self._emit(EngineEvent("rejected", now, topic=topic, reason=reason, detail=detail,
                                   raw=step.data))
            return
        if not recorded:
            log.info("done message for %s %s recorded meanwhile: skipped", task.type, task.id)
            return
        if self.listener is not None or self._listeners:
            workflow, phase, _ = step.effects.record
            self._emit(EngineEvent("done", now, topic=task.type, task=task, workflow=workflow,
                                   phase=phase, result=task.result))
        self._after(step.effects, step.extra, now, topic, step.data)

    def _emit_held(self, step: _Done) -> None:
        events, step.events = step.events, None
        for event in events or ():
            self._emit(event)

    async def _file(self, data: bytes) -> None:
        from .files import decode_file_message, match

        topic = self.settings.files_topic
        now = self.clock.now()
        if len(data) > MAX_MESSAGE_BYTES:
            self._reject(topic, "too-large", data,
                         f"{len(data)} bytes, more than the limit of {MAX_MESSAGE_BYTES}", now)
            return
        try:
            event = decode_file_message(data)
        except BadMessage as bad:
            self._reject(topic, bad.reason, data, bad.detail, now)
            return
        effects = self.dispatcher.file(event.path, now, match)
        for note in effects.notes:
            log.info("%s", note)
        published = await self._publish(effects.sends, now, "file:" + _digest(data))
        with self.store.transaction():
            extra = self._record(effects, published, now, topic, data)
            self.store.record_file_message(event.path, event.size, data,
                                           [send.task.id for send in effects.sends], at=now)
        self._after(effects, extra, now, topic, data)

    # --- applying effects -------------------------------------------------------------------

    async def _publish(self, sends: Iterable[SendEffect], now: datetime, key: str,
                       events: list[EngineEvent] | None = None
                       ) -> list[tuple[SendEffect, str | None]]:
        """Sends each task, named `<key>:<n>` for a bus that drops a message published twice
        under one id (JetStream): what a redelivered message or a refired cron sends again
        after a crash is then dropped within the bus's duplicate window. Each `sent` event goes
        to the listeners, or into `events` when that is a list."""
        publish, msg_ids = self.bus.publish, self._msg_ids
        listening = self.listener is not None or bool(self._listeners)
        out: list[tuple[SendEffect, str | None]] = []
        for n, send in enumerate(sends):
            task = send.task
            try:
                if msg_ids:
                    await publish(send.topic, task.to_json(), msg_id=f"{key}:{n}")
                else:
                    await publish(send.topic, task.to_json())
            except Exception as error:  # BusError, or whatever a client raises
                out.append((send, _error_text(error)))
                continue
            out.append((send, None))
            if events is not None:
                events.append(EngineEvent("sent", now, topic=send.topic, task=task))
            elif listening:
                self._emit(EngineEvent("sent", now, topic=send.topic, task=task))
        return out

    async def _publish_one(self, topic: str, task: Task, now: datetime,
                           msg_id: str | None = None) -> str | None:
        """Sends one task; the error's text when it could not be sent."""
        try:
            if self._msg_ids and msg_id is not None:
                await self.bus.publish(topic, task.to_json(), msg_id=msg_id)
            else:
                await self.bus.publish(topic, task.to_json())
        except Exception as error:  # BusError, or whatever a client raises
            return _error_text(error)
        if self.listener is not None or self._listeners:
            self._emit(EngineEvent("sent", now, topic=topic, task=task))
        return None

    def _record(self, effects: Effects, published: list[tuple[SendEffect, str | None]],
                now: datetime, topic: str, raw: bytes, *, sent_recorded: bool = False
                ) -> list[AlertEffect]:
        """The store's part of the effects (inside the caller's transaction), but the tasks
        sent when `sent_recorded`. Returns the alerts raised for sends that failed."""
        store = self.store
        extra: list[AlertEffect] = []
        if not sent_recorded:
            store.record_tasks([("sent", send.task, send.workflow, send.phase, send.attempt,
                                 send.topic, now) for send, error in published if error is None])
        for send, error in published:
            if error is None:
                continue
            due = _truncate_ms(now + self.settings.resend_delay)
            store.add_retry(send.task, due, attempt=send.attempt, workflow=send.workflow,
                            phase=send.phase, topic=send.topic, at=now)
            alert = AlertEffect(send.task, send.workflow, send.phase, result="error",
                                msg=f"send to {send.topic} failed: {error}; sending again at "
                                    f"{due.isoformat()}")
            store.record_alert(alert.task, workflow=alert.workflow, phase=alert.phase,
                               result=alert.result, msg=alert.msg, at=now)
            extra.append(alert)
        for retry in effects.retries:
            store.add_retry(retry.task, retry.due, attempt=retry.attempt, workflow=retry.workflow,
                            phase=retry.phase, topic=retry.topic or retry.task.type, at=now)
        for alert in effects.alerts:
            store.record_alert(alert.task, workflow=alert.workflow, phase=alert.phase,
                               result=alert.result, msg=alert.msg, at=now)
        for reject in effects.rejects:
            store.record_rejected(topic, reject.reason, raw, detail=reject.detail, at=now)
        return extra

    def _after(self, effects: Effects, extra: list[AlertEffect], now: datetime, topic: str,
               raw: bytes) -> None:
        """Once committed: arm the timer for new retries, tell the listener (rejections, then
        alerts)."""
        dues = [r.due for r in effects.retries]
        dues += [_truncate_ms(now + self.settings.resend_delay) for _ in extra]
        if dues:
            first = min(dues)
            if self._retry_due is None or first < self._retry_due:
                self._retry_due = first
                self._wake.set()
        for reject in effects.rejects:
            log.warning("rejected a %s message: %s: %s", topic, reject.reason, reject.detail)
            self._emit(EngineEvent("rejected", now, topic=topic, reason=reject.reason,
                                   detail=reject.detail, raw=raw))
        for alert in [*effects.alerts, *extra]:
            task = alert.task
            log.warning("alert %s %s %s: %s", alert.workflow, alert.phase or task.type, task.id,
                        alert.msg if alert.msg is not None else task.msg)
            self._emit(EngineEvent(
                "alert", now, task=task, workflow=alert.workflow, phase=alert.phase,
                result=task.result if alert.result is None else alert.result,
                msg=task.msg if alert.msg is None else alert.msg))

    def _reject(self, topic: str, reason: str, raw: bytes, detail: str, now: datetime) -> None:
        self.store.record_rejected(topic, reason, raw, detail=detail, at=now)
        log.warning("rejected a %s message: %s: %s", topic, reason, detail)
        self._emit(EngineEvent("rejected", now, topic=topic, reason=reason, detail=detail, raw=raw))

    def _emit(self, event: EngineEvent) -> None:
        for listener in (self.listener, *self._listeners):
            if listener is None:
                continue
            try:
                listener(event)
            except Exception:
                log.exception("engine listener failed on a %s event", event.kind)

    def _own_attempts(self, task: Task) -> int:
        """The highest attempt recorded for a task of this id and type (the engine's own
        count, for a `retry` meta that is not a number)."""
        if not task.id:
            return 0
        return max((r.attempt for r in self.store.task_history(task.id)
                    if r.event == "sent" and r.task.type == task.type), default=0)

    # --- consumers ----------------------------------------------------------------------------

    async def _consume(self, topic: str, handle: Callable[[bytes], Awaitable[bool]],
                       handle_batch: Callable[[list[bytes]], Awaitable[list[bool]]] | None = None
                       ) -> None:
        backoff = 1.0
        while not self._stopping:
            try:
                subscription = self.bus.subscribe(topic, group=self.settings.group)
            except Exception as error:
                log.error("subscribing to %s failed (%s): again in %.0fs", topic, error, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            consumer = _Consumer(topic, subscription)
            self._consumers.append(consumer)
            take = getattr(subscription, "take_ready", None) if handle_batch is not None else None
            more = self.settings.done_batch - 1
            try:
                async for message in subscription:
                    consumer.busy = True
                    try:
                        waiting = take(more) if take is not None and more > 0 else None
                        if waiting:
                            await self._settle_batch([message, *waiting], handle_batch)
                        else:
                            await self._settle(message, handle)
                    finally:
                        consumer.busy = False
                    backoff = 1.0
                    if self._stopping:
                        break
                else:
                    if not self._stopping:
                        log.info("the %s topic ended", topic)
                    return
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the bus failed: subscribe again, never give up
                log.error("consuming %s failed (%s): subscribing again in %.0fs", topic, error, backoff)
                await self._pause(backoff)
                backoff = min(backoff * 2, 30.0)
            finally:
                self._consumers.remove(consumer)
                try:
                    await subscription.close()
                except Exception:
                    log.exception("closing the %s subscription", topic)

    @staticmethod
    async def _settle(message: Message, handle: Callable[[bytes], Awaitable[bool]]) -> None:
        if await handle(message.data):
            await message.ack()
        else:
            await message.nak(delay=min(30.0, 2.0 ** min(message.attempt, 5)))

    @staticmethod
    async def _settle_batch(messages: list[Message],
                            handle_batch: Callable[[list[bytes]], Awaitable[list[bool]]]) -> None:
        results = await handle_batch([message.data for message in messages])
        for message, ok in zip(messages, results):
            if ok:
                await message.ack()
            elif ok is not None:  # None: not begun (stopping); closing the subscription returns it
                await message.nak(delay=min(30.0, 2.0 ** min(message.attempt, 5)))
