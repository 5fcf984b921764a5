"""The task library's JSON lines: a file bus and stdio.

File bus (`file://DIR`): topic `t` is the file `DIR/t.json`, one message per line. Publishing
appends a line (one write, O_APPEND, so concurrent writers do not interleave). A Go worker reads
the same file with the task library's file bus and `in_topic=DIR/t.json`, and its done messages
appended to `DIR/done.json` reach flowlord. Topics are plain names: no path separators, so a
topic cannot name a file outside DIR.

A subscription reads the file from its committed position and, by default, follows it as it
grows (`tail -f`); with `follow=false` it ends at the end of the file once every message is
settled. The position is committed on ack, up to the oldest message not yet acked, in
`DIR/t.json.offset` (`DIR/t.json.GROUP.offset` for a named group), so a restart goes on where the
last run stopped and redelivers only what was unacked. A file that shrinks or is replaced is read
again from the start. Blank lines are skipped; a trailing `\\r` is dropped as Go's line scanner
does.

Stdio (`stdio`): messages published to any topic are written to stdout, one per line, as the
Go library does (the topic is not written; a task's `type` names it). stdin is read by the first
topic subscribed; a subscription to a second topic is refused (BusError), as only one consumer
can own stdin. The iteration ends at the end of stdin once every message is settled.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs

from . import BusError, Message, Subscription
from .memory import QueueSubscription, _Item, _Queue

__all__ = ["FileBus", "StdioBus"]

MAX_LINE = 4 << 20  # a longer line is cut here and delivered as one (oversized) message
_CHUNK = 1 << 16
_BAD_TOPIC = re.compile(r"[/\\\x00\n\r]|^\.")


def _check_line(data: bytes) -> bytes:
    data = bytes(data)
    if b"\n" in data:
        raise BusError("a JSON-lines message cannot contain a newline")
    return data + b"\n"


def _strip_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


# --- file bus -------------------------------------------------------------------------------


class FileBus:
    def __init__(self, root: str | os.PathLike, *, follow: bool = True, poll: float = 0.2) -> None:
        self.root = Path(root).expanduser()
        self.follow = follow
        self.poll = poll
        self._subscriptions: set[FileSubscription] = set()
        self._closed = False

    @classmethod
    def from_url(cls, url: str) -> FileBus:
        rest = url[len("file://"):]
        path, _, query = rest.partition("?")
        if not path:
            raise BusError("file bus: give a folder, e.g. file:///var/flowlord/bus or file://./bus")
        options = {k: v[-1] for k, v in parse_qs(query).items()}
        unknown = set(options) - {"follow", "poll"}
        if unknown:
            raise BusError(f"file bus: unknown option(s) {', '.join(sorted(unknown))} (known: follow, poll)")
        follow = options.get("follow", "true").lower() not in ("0", "false", "no", "off")
        try:
            poll = float(options.get("poll", "0.2"))
        except ValueError:
            raise BusError(f"file bus: poll={options['poll']!r} is not a number of seconds") from None
        return cls(path, follow=follow, poll=poll)

    def path_for(self, topic: str) -> Path:
        if not isinstance(topic, str) or not topic or _BAD_TOPIC.search(topic):
            raise BusError(f"file bus: bad topic {topic!r} (a plain name, without '/' or a leading '.')")
        return self.root / f"{topic}.json"

    async def publish(self, topic: str, data: bytes) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        line = _check_line(data)
        path = self.path_for(topic)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
        except OSError as exc:
            raise BusError(f"file bus: cannot write {path}: {exc}") from exc

    def subscribe(self, topic: str, *, group: str | None = None) -> FileSubscription:
        if self._closed:
            raise BusError("the bus is closed")
        path = self.path_for(topic)
        if group is not None and (not group or _BAD_TOPIC.search(group)):
            raise BusError(f"file bus: bad group {group!r}")
        name = f"{path.name}.{group}.offset" if group else f"{path.name}.offset"
        subscription = FileSubscription(self, topic, path, path.with_name(name))
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()


class FileMessage(Message):
    __slots__ = ("_owner", "_start", "_settled")

    def __init__(self, owner: FileSubscription, start: int, data: bytes, attempt: int) -> None:
        super().__init__(owner.topic, data, attempt)
        self._owner = owner
        self._start = start
        self._settled = False

    async def ack(self) -> None:
        if not self._settled:
            self._settled = True
            self._owner._acked(self)

    async def nak(self, delay: float = 0.0) -> None:
        if not self._settled:
            self._settled = True
            self._owner._naked(self, delay)


class FileSubscription(Subscription):
    """Reads `path` line by line from the committed offset (blocking reads of a local file,
    short enough to run on the event loop)."""

    def __init__(self, bus: FileBus, topic: str, path: Path, offset_path: Path) -> None:
        self.topic = topic
        self.path = path
        self.offset_path = offset_path
        self._bus = bus
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._pos = 0  # file offset of the first byte not yet taken from the buffer
        self._buf = b""
        self._bi = 0
        self._skipping = False  # inside an over-long line, after its first MAX_LINE bytes
        self._unsettled: dict[int, int] = {}  # start offset -> deliveries, delivered or delayed
        self._redo: list[tuple[int, bytes, int]] = []  # nak'd and due again: (start, data, deliveries)
        self._timers: set[asyncio.TimerHandle] = set()
        self._wake: asyncio.Event | None = None
        self._committed = self._load_offset()
        self._pos = self._committed
        self._closed = False

    # --- offsets ----------------------------------------------------------------------------

    def _load_offset(self) -> int:
        try:
            return max(0, int(self.offset_path.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            return 0

    def _commit(self) -> None:
        target = min(self._unsettled) if self._unsettled else self._pos - (len(self._buf) - self._bi)
        if target == self._committed:
            return
        self._committed = target
        tmp = self.offset_path.with_name(self.offset_path.name + ".tmp")
        try:
            tmp.write_text(f"{target}\n")
            os.replace(tmp, self.offset_path)
        except OSError:
            pass  # the position is only an optimisation of at-least-once: redelivery is allowed

    # --- reading ----------------------------------------------------------------------------

    def _open(self) -> bool:
        try:
            handle = open(self.path, "rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        if stat.st_size < self._pos:
            self._reset(0)
        handle.seek(self._pos)
        self._file, self._inode = handle, (stat.st_dev, stat.st_ino)
        return True

    def _reset(self, position: int) -> None:
        self._pos = position
        self._buf, self._bi, self._skipping = b"", 0, False
        self._unsettled.clear()
        self._redo.clear()
        self._committed = -1
        self._commit()

    def _replaced(self) -> bool:
        """At the end of the file: was it truncated or replaced since we opened it?"""
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return False
        if (stat.st_dev, stat.st_ino) != self._inode or stat.st_size < self._pos:
            self._file.close()
            self._file = None
            self._reset(0)
            return True
        return False

    def _next_line(self, at_end_ok: bool) -> tuple[int, bytes] | None:
        """The next non-blank line as (start offset, bytes), or None at the end of the file."""
        while True:
            if self._file is None and not self._open():
                return None
            nl = self._buf.find(b"\n", self._bi)
            if nl < 0 and len(self._buf) - self._bi > MAX_LINE:
                nl = self._bi + MAX_LINE  # cut an over-long line
            if nl >= 0:
                start = self._pos - (len(self._buf) - self._bi)
                line = self._buf[self._bi:nl]
                cut = self._buf[nl:nl + 1] != b"\n"
                self._bi = nl if cut else nl + 1
                skipping, self._skipping = self._skipping, cut
                if skipping or not line.strip():
                    if not self._unsettled and not self._redo:
                        self._commit()
                    continue
                return start, _strip_cr(line)
            chunk = self._file.read(_CHUNK)
            if chunk:
                self._buf = self._buf[self._bi:] + chunk
                self._bi = 0
                self._pos += len(chunk)
                continue
            if self._replaced():
                continue
            rest = self._buf[self._bi:]
            if at_end_ok and rest.strip() and not self._skipping:
                start = self._pos - len(rest)
                self._bi = len(self._buf)
                return start, _strip_cr(rest)
            return None

    async def __anext__(self) -> FileMessage:
        if self._wake is None:
            self._wake = asyncio.Event()
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._redo:
                start, data, deliveries = self._redo.pop(0)
                return self._deliver(start, data, deliveries)
            found = self._next_line(at_end_ok=not self._bus.follow)
            if found is not None:
                start, data = found
                self._unsettled[start] = 0
                return self._deliver(start, data, 0)
            if not self._bus.follow and not self._unsettled:
                raise StopAsyncIteration
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._bus.poll if self._bus.follow else None)
            except asyncio.TimeoutError:
                pass

    def _deliver(self, start: int, data: bytes, deliveries: int) -> FileMessage:
        self._unsettled[start] = deliveries + 1
        return FileMessage(self, start, data, deliveries + 1)

    def _acked(self, message: FileMessage) -> None:
        if self._unsettled.pop(message._start, None) is not None:
            self._commit()
        self._poke()

    def _naked(self, message: FileMessage, delay: float) -> None:
        if message._start not in self._unsettled or self._closed:
            return
        entry = (message._start, message.data, message.attempt)
        if delay > 0:
            def due() -> None:
                self._timers.discard(handle)
                if message._start in self._unsettled:
                    self._redo.append(entry)
                    self._poke()

            handle = asyncio.get_running_loop().call_later(delay, due)
            self._timers.add(handle)
        else:
            self._redo.append(entry)
            self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self._file is not None:
            self._file.close()
            self._file = None
        self._poke()
        self._bus._subscriptions.discard(self)


# --- stdio ----------------------------------------------------------------------------------


class _StdinQueue(_Queue):
    """Lines of a binary stream, read by a daemon thread (a blocked read must not keep the
    process from exiting, and regular files cannot be watched by the event loop)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self.stream = stream
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is not None:
            return
        loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._read, args=(loop,), name="flowlord-stdin", daemon=True)
        self.thread.start()

    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        skipping = False
        try:
            while True:
                line = self.stream.readline(MAX_LINE)
                if not line:
                    break
                whole = line.endswith(b"\n")
                if not skipping:
                    data = _strip_cr(line[:-1] if whole else line)
                    if data.strip():
                        loop.call_soon_threadsafe(self.put, _Item(data))
                skipping = not whole
        except (OSError, ValueError):
            pass  # stdin closed under us: treat as its end
        finally:
            try:
                loop.call_soon_threadsafe(self.set_eof)
            except RuntimeError:
                pass  # the loop is gone


class _StdinSubscription(QueueSubscription):
    def _start(self) -> None:
        self.queue.start()


class StdioBus:
    def __init__(self, stdin: BinaryIO | None = None, stdout: BinaryIO | None = None) -> None:
        self._stdin = stdin
        self._stdout = stdout
        self._queue: _StdinQueue | None = None
        self._topic: str | None = None
        self._subscriptions: set[QueueSubscription] = set()
        self._closed = False

    async def publish(self, topic: str, data: bytes) -> None:
        if self._closed:
            raise BusError("the bus is closed")
        out = self._stdout if self._stdout is not None else sys.stdout.buffer
        try:
            out.write(_check_line(data))
            out.flush()
        except (OSError, ValueError) as exc:
            raise BusError(f"stdio bus: cannot write to stdout: {exc}") from exc

    def subscribe(self, topic: str, *, group: str | None = None) -> QueueSubscription:
        if self._closed:
            raise BusError("the bus is closed")
        if self._topic is not None and topic != self._topic:
            raise BusError(f"stdio bus: stdin is already read for topic {self._topic!r}; "
                           f"it cannot also feed {topic!r}")
        if self._queue is None:
            stream = self._stdin if self._stdin is not None else sys.stdin.buffer
            self._queue, self._topic = _StdinQueue(stream), topic
        subscription = _StdinSubscription(topic, self._queue, on_close=self._subscriptions.discard)
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        if self._queue is not None:
            self._queue.close()
