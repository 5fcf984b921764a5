"""Workers: consume the tasks of a topic, run a handler for each, report the result.

`Worker(bus, topic, handler)` subscribes to `topic` (as consumer group `group`, so that several
worker processes share its tasks) and, for each message:

1. decodes the task; a message that is not a task (`BadMessage`) is logged, acked and skipped;
2. runs the handler, with at most `concurrency` tasks in flight and, with `timeout`, at most that
   many seconds per task;
3. publishes the result to `done_topic`: the same task (type, job, info, id, meta, created) with
   `result` (`complete` or `error`), `msg`, `started` and `ended` (RFC 3339, UTC);
4. THEN acks the message. Delivery is at least once: a worker that dies before publishing has
   not acked, so the bus delivers the task again.

A handler is an `async def handler(task) -> str | None` or a plain function of the same shape
(run in a thread of its own, so it does not hold up the others): what it returns is the `msg`
of a complete task; what it raises makes an error task whose `msg` is the exception's text
(`TaskError(msg)` to report a failure without a traceback in the log). `CommandHandler(argv)`
runs a command per task. A list of strings as the handler is short for a `CommandHandler`.

`stop()` stops taking tasks and lets those in flight finish (each within `timeout`);
`stop(force=True)` cancels them too, without acking, so the bus delivers them again. A timed-out
plain function cannot be interrupted: it is reported as an error and left to finish in its
(daemon) thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import os
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Sequence

from .bus import Bus, BusError, Message, Subscription
from .task import COMPLETE, ERROR, BadMessage, Task, format_time, utc_now

try:
    from .bus import publish_takes_msg_id
except ImportError:  # a bus module without message ids
    def publish_takes_msg_id(bus: Bus) -> bool:
        return False

__all__ = [
    "CommandHandler", "TaskError", "Worker", "WorkerStats", "task_env",
    "ENV_LIMIT", "MSG_LIMIT", "RETURN_LIMIT", "STDERR_LINES",
]

log = logging.getLogger("flowlord.worker")

MSG_LIMIT = 2048  # bytes of a command's stderr tail, stdout line or exception text in `msg`
RETURN_LIMIT = 64 * 1024  # bytes of the message a Python handler returns
STDERR_LINES = 20  # lines of a failed command's stderr kept in `msg`
ENV_LIMIT = 64 * 1024  # bytes of a task field passed in the environment, at most
_KEEP = 16 * 1024  # bytes of stdout and stderr held while a command runs (their tails)
_PIPE_GRACE = 1.0  # seconds to read what is left in the pipes once a command has exited
_PUBLISH_RETRIES = (0.2, 1.0, 3.0)  # pauses between attempts to publish a result
_PROGRESS_EVERY = 10.0  # seconds between "still working" signals, at most

Handler = Callable[[Task], "str | None | Awaitable[str | None]"]


class TaskError(Exception):
    """A failed task: its text is the `msg` of the error result, as given."""


def _clip_tail(text: str, limit: int) -> str:
    """The last `limit` bytes of `text` (UTF-8), cut at a character boundary."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", "ignore")


def _clip_head(text: str, limit: int) -> str:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _exception_text(error: BaseException) -> str:
    text = str(error).strip()
    return _clip_head(text, MSG_LIMIT) if text else type(error).__name__


# --- commands -------------------------------------------------------------------------------


def task_env(task: Task) -> dict[str, str]:
    """The variables a command sees for `task`. The task JSON on stdin is the whole task: NUL
    characters, which no environment can hold, are dropped here, and a value longer than
    ENV_LIMIT bytes (Linux refuses to start a command with a variable over 128 KiB) is left
    out, with FLOWLORD_<NAME>_TOO_LONG=1 set instead."""
    values = {
        "FLOWLORD_TYPE": task.type, "FLOWLORD_JOB": task.job, "FLOWLORD_INFO": task.info,
        "FLOWLORD_ID": task.id, "FLOWLORD_META": task.meta, "FLOWLORD_CREATED": task.created,
    }
    env = {}
    for key, value in values.items():
        value = value.replace("\x00", "")
        if len(value) > ENV_LIMIT // 4 and len(value.encode("utf-8", "surrogatepass")) > ENV_LIMIT:
            env[f"{key}_TOO_LONG"] = "1"
        else:
            env[key] = value
    return env


class _Tail:
    """The last `keep` bytes of a stream."""

    def __init__(self, keep: int = _KEEP) -> None:
        self.keep = keep
        self.data = bytearray()

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > self.keep:
            del self.data[: len(self.data) - self.keep]

    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


class _Capture(asyncio.SubprocessProtocol):
    """Keeps the tails of a command's stdout and stderr, and tells when it exits and when its
    pipes close (a background child can hold them open long after the command has exited)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.out, self.err = _Tail(), _Tail()
        self.exited = loop.create_future()
        self.drained = loop.create_future()
        self._open = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        (self.out if fd == 1 else self.err).add(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open.discard(fd)  # fd 0: the command closed its stdin unread, which is fine
        if not self._open and not self.drained.done():
            self.drained.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _last_line(text: str) -> str | None:
    for line in reversed(text.splitlines()):
        if line.strip():
            return _clip_tail(line.strip(), MSG_LIMIT)
    return None


def _stderr_tail(text: str) -> str:
    lines = [line.rstrip() for line in text.rstrip().splitlines()][-STDERR_LINES:]
    while lines and not lines[0].strip():
        lines.pop(0)
    return _clip_tail("\n".join(lines), MSG_LIMIT).strip()


def _exit_text(code: int) -> str:
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class CommandHandler:
    """Runs `argv` once per task, in a process group of its own.

    stdin: the task JSON and a newline. Environment: the worker's (or `env`), plus
    FLOWLORD_TYPE, FLOWLORD_JOB, FLOWLORD_INFO, FLOWLORD_ID, FLOWLORD_META and
    FLOWLORD_CREATED. Exit 0: complete, `msg` = the last non-blank line of stdout (trimmed), if
    any. Another exit: error, `msg` = the last lines of stderr (at most 20 lines and 2 KiB), or
    `exit status N` when stderr is empty. Cancelled (a timeout, a forced stop): the whole process
    group is killed (SIGKILL).
    """

    def __init__(self, argv: Sequence[str | os.PathLike], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike | None = None) -> None:
        if isinstance(argv, (str, bytes)) or not argv:
            raise ValueError("CommandHandler: give the command as a non-empty list, e.g. ['./etl.sh', '--fast']")
        self.argv = [os.fspath(arg) for arg in argv]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd

    def __repr__(self) -> str:
        return f"CommandHandler({self.argv!r})"

    async def __call__(self, task: Task) -> str | None:
        env = dict(os.environ if self.env is None else self.env)
        env.update(task_env(task))
        loop = asyncio.get_running_loop()
        try:
            transport, capture = await loop.subprocess_exec(
                lambda: _Capture(loop), *self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, cwd=self.cwd, start_new_session=True,
            )
        except OSError as error:
            raise TaskError(f"cannot run {self.argv[0]}: {error.strerror or error}") from None
        except (ValueError, UnicodeError) as error:  # an argument or variable no OS can take
            raise TaskError(f"cannot run {self.argv[0]}: {error}") from None
        try:
            stdin = transport.get_pipe_transport(0)
            stdin.write(task.to_json() + b"\n")
            stdin.close()  # after what is buffered is written, or at once if the command quit
            await asyncio.shield(capture.exited)
            # What is still in the pipes; a background child that keeps them open is not waited for.
            await asyncio.wait((capture.drained,), timeout=_PIPE_GRACE)
        except BaseException:  # cancelled: a timeout or a forced stop
            _kill_group(transport)
            try:
                await asyncio.wait_for(asyncio.shield(capture.exited), _PIPE_GRACE)
            except BaseException:  # noqa: BLE001 - cancelled again: the first reason stands
                pass
            raise
        finally:
            transport.close()
        code = transport.get_returncode()
        if code == 0:
            return _last_line(capture.out.text())
        raise TaskError(_stderr_tail(capture.err.text()) or _exit_text(code))


def _kill_group(transport: asyncio.SubprocessTransport) -> None:
    """SIGKILL to the command's process group (its children too). The group outlives its
    leader while a member lives, so its id cannot have been given to another process."""
    pid = transport.get_pid()
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        if transport.get_returncode() is None:
            try:
                transport.kill()
            except ProcessLookupError:
                pass


# --- Python handlers ------------------------------------------------------------------------


def _is_async(handler: Callable) -> bool:
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)
    return call is not None and inspect.iscoroutinefunction(call)


def _in_thread(function: Callable[[Task], Any], task: Task) -> asyncio.Future:
    """Calls `function(task)` in a new daemon thread: a plain function that overruns its
    timeout must neither block the next tasks nor keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    context = contextvars.copy_context()

    def settle(value: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)

    def body() -> None:
        try:
            value, error = context.run(function, task), None
        except BaseException as exc:  # noqa: BLE001 - handed to the event loop
            value, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, value, error)
        except RuntimeError:
            pass  # the loop is gone (a timed-out handler outliving the worker)

    threading.Thread(target=body, name=f"flowlord-task-{task.type}", daemon=True).start()
    return future


def _as_coroutine_function(handler: Handler | Sequence[str]) -> Callable[[Task], Awaitable[Any]]:
    if isinstance(handler, (list, tuple)):
        handler = CommandHandler(handler)
    if not callable(handler):
        raise TypeError(f"a task handler is a function of a task or a command list, not {handler!r}")
    if _is_async(handler):
        return handler  # type: ignore[return-value]

    async def call(task: Task) -> Any:
        value = await _in_thread(handler, task)
        if inspect.isawaitable(value):  # e.g. a lambda returning a coroutine
            value = await value
        return value

    return call


# --- the worker -----------------------------------------------------------------------------


@dataclass
class WorkerStats:
    complete: int = 0
    error: int = 0
    bad: int = 0  # messages that were not tasks, skipped
    unfinished: int = 0  # cancelled by a forced stop or left by a failed publish: delivered again


_STOPPED = object()


class Worker:
    """Runs `handler` for the tasks of `topic` (see the module docstring). One run per worker:
    `await worker.run()`, `worker.stop()` from the same event loop (a signal handler, a task).

    `progress_every`: seconds between `in_progress()` calls on the message of a running task,
    for buses that redeliver what is not acked in time (JetStream's `ack_wait`); by default a
    third of the bus's `ack_wait`, at most 10 s."""

    def __init__(self, bus: Bus, topic: str, handler: Handler | Sequence[str], *,
                 done_topic: str = "done", concurrency: int = 1, timeout: float | None = None,
                 group: str | None = "workers", progress_every: float | None = None) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a whole number of 1 or more, not {concurrency!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, not {timeout!r}")
        self.bus = bus
        self.topic = topic
        self.handler = handler
        self.done_topic = done_topic
        self.concurrency = concurrency
        self.timeout = timeout
        self.group = group
        self.stats = WorkerStats()
        # A bus that redelivers what is not acked within `ack_wait` (JetStream) hears that a long
        # task is still running (Message.in_progress) a few times per ack_wait.
        ack_wait = getattr(bus, "ack_wait", None)
        if progress_every is None:
            progress_every = min(_PROGRESS_EVERY, ack_wait / 3) if ack_wait else _PROGRESS_EVERY
        self.progress_every = progress_every
        self._msg_ids = publish_takes_msg_id(bus)
        self._call = _as_coroutine_function(handler)
        self._stop = asyncio.Event()
        self._force = False
        self._running = False
        self._in_flight: set[asyncio.Task] = set()

    def __repr__(self) -> str:
        return f"<Worker {self.topic!r} -> {self.done_topic!r} {self.handler!r}>"

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self, *, force: bool = False) -> None:
        """Take no more tasks; with `force`, also cancel those in flight (not acked: the bus
        delivers them again). Safe to call from a signal handler of the event loop."""
        self._stop.set()
        if force and not self._force:
            self._force = True
            for job in list(self._in_flight):
                job.cancel()

    async def run(self) -> WorkerStats:
        """Works until stopped or until the subscription ends (a finite input), then waits for
        the tasks in flight. Errors of the subscription (an unreachable bus) are raised once the
        tasks in flight are done."""
        if self._running:
            raise RuntimeError("this worker is already running")
        self._running = True
        slots = asyncio.Semaphore(self.concurrency)
        failure: BaseException | None = None
        self._stopped = asyncio.ensure_future(self._stop.wait())
        subscription: Subscription | None = None
        try:
            subscription = self.bus.subscribe(self.topic, group=self.group)
            while not self._stop.is_set():
                if slots.locked():
                    if await self._unless_stopped(slots.acquire(), late=lambda _: slots.release()) is _STOPPED:
                        break
                else:
                    await slots.acquire()  # free: no wait
                try:
                    message = await self._unless_stopped(subscription.__anext__(), late=self._give_back)
                except StopAsyncIteration:
                    slots.release()
                    break
                except Exception as error:  # the bus failed: finish what is in flight, then raise
                    slots.release()
                    failure = error
                    break
                if message is _STOPPED:
                    slots.release()
                    break
                job = asyncio.ensure_future(self._process(message))
                self._in_flight.add(job)
                job.add_done_callback(lambda done: self._finished(done, slots))
            while self._in_flight:
                await asyncio.wait(set(self._in_flight))
        except BaseException:  # run() itself cancelled: cancel the tasks, which are not acked
            self.stop(force=True)
            if self._in_flight:
                await asyncio.wait(set(self._in_flight))
            raise
        finally:
            self._running = False
            self._stopped.cancel()
            if subscription is not None:
                await subscription.close()
        if failure is not None:
            raise failure
        return self.stats

    def _finished(self, job: asyncio.Task, slots: asyncio.Semaphore) -> None:
        self._in_flight.discard(job)
        slots.release()
        if not job.cancelled() and job.exception() is not None:
            log.error("%s: a task failed inside the worker", self.topic, exc_info=job.exception())

    async def _unless_stopped(self, awaitable: Awaitable, late: Callable[[Any], Any]) -> Any:
        """The awaitable's result, or _STOPPED when stop() comes first; a result that arrives
        together with the stop is handed to `late`."""
        if self._stop.is_set():
            if inspect.iscoroutine(awaitable):
                awaitable.close()
            return _STOPPED
        work = asyncio.ensure_future(awaitable)
        try:
            await asyncio.wait((work, self._stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not work.done():
                work.cancel()
                try:
                    await work
                except (asyncio.CancelledError, StopAsyncIteration):
                    pass
                except Exception:  # noqa: BLE001 - we are stopping anyway
                    pass
        if work.cancelled():
            return _STOPPED
        if self._stop.is_set() and work.exception() is None:
            result = late(work.result())
            if inspect.isawaitable(result):
                await result
            return _STOPPED
        return work.result()

    async def _give_back(self, message: Message) -> None:
        try:
            await message.nak()
        except Exception:  # noqa: BLE001 - closing the subscription gives it back too
            pass

    async def _process(self, message: Message) -> None:
        try:
            task = Task.from_json(message.data)
        except BadMessage as error:
            log.warning("%s: skipped a message that is not a task (%s): %r",
                        self.topic, error, bytes(message.data[:200]))
            self.stats.bad += 1
            await self._settle(message.ack)
            return
        started, clock = utc_now(), time.monotonic()
        beat = self._keep_alive(message)
        try:
            try:
                async with asyncio.timeout(self.timeout) as deadline:
                    value = await self._call(task)
            except TimeoutError:
                if not deadline.expired():
                    raise  # the handler's own TimeoutError
                result, msg = ERROR, f"timed out after {self.timeout:g}s"
            else:
                text = "" if value is None else str(value)
                result, msg = COMPLETE, _clip_head(text.strip(), RETURN_LIMIT)
        except asyncio.CancelledError:
            self.stats.unfinished += 1
            log.warning("%s: %s cancelled; not acked, it will be delivered again", self.topic, _name(task))
            await self._give_back(message)
            raise
        except TaskError as error:
            result, msg = ERROR, _exception_text(error)
        except (Exception, SystemExit) as error:  # noqa: BLE001 - any failure is the task's
            result, msg = ERROR, _exception_text(error)
            log.warning("%s: %s raised %s", self.topic, _name(task), type(error).__name__, exc_info=error)
        finally:
            if beat is not None:
                beat.cancel()
        ended = utc_now()
        done = task.replace(result=result, msg=msg, started=format_time(started), ended=format_time(ended))
        if not await self._publish(done.to_json()):
            self.stats.unfinished += 1
            await self._settle(lambda: message.nak(1.0))
            return
        await self._settle(message.ack)
        setattr(self.stats, result, getattr(self.stats, result) + 1)
        line = msg.splitlines()[-1] if msg else ""
        log.info("%s: %s %s in %.2fs%s", self.topic, _name(task), result,
                 time.monotonic() - clock, f": {line[:200]}" if line else "")

    def _keep_alive(self, message: Message) -> asyncio.Task | None:
        signal_progress = getattr(message, "in_progress", None)
        if signal_progress is None or not self.progress_every or self.progress_every <= 0:
            return None

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.progress_every)
                try:
                    await signal_progress()
                except Exception as error:  # noqa: BLE001 - at worst, a redelivery
                    log.debug("%s: in_progress failed: %s", self.topic, error)

        return asyncio.ensure_future(beat())

    async def _publish(self, data: bytes) -> bool:
        # One id for every attempt: a bus that deduplicates stores the result once even when an
        # attempt that seemed to fail got through. Unique per result, so a task sent again later
        # (a retry, with the same task id) is never taken for a duplicate.
        options = {"msg_id": uuid.uuid4().hex} if self._msg_ids else {}
        for pause in (*_PUBLISH_RETRIES, None):
            try:
                await self.bus.publish(self.done_topic, data, **options)
                return True
            except (BusError, OSError) as error:
                if pause is None or self._force:
                    log.error("%s: could not publish a result to %r (%s); the task will be "
                              "delivered again", self.topic, self.done_topic, error)
                    return False
                log.warning("%s: publishing to %r failed (%s); retrying in %gs",
                            self.topic, self.done_topic, error, pause)
                await asyncio.sleep(pause)
        return False

    async def _settle(self, settle: Callable[[], Awaitable[None]]) -> None:
        try:
            await settle()
        except Exception as error:  # noqa: BLE001 - at least once: it may come back, that is all
            log.warning("%s: could not settle a message (%s); it may be delivered again", self.topic, error)


def _name(task: Task) -> str:
    return f"task {task.id}" if task.id else f"task {task.type} {task.info!r}"[:120]
