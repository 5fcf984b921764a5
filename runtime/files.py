"""File triggers: Go's filepath.Match, the files-topic message, and a local folder watcher.

`match(pattern, path)` is Go's `path/filepath.Match` on Unix, byte for byte: `*` is any run of
characters other than `/` (a `**` is just a `*`), `?` one character other than `/`, `[...]` a
class with ranges where `^` negates (`!` does not), `\\` escapes, and the whole path must match.
Like Go it works on the UTF-8 bytes, so a `*` can stop inside a multi-byte character. A malformed
pattern (unclosed `[`, trailing `\\`, bad range) raises `BadPattern`, a ValueError; the Go
flowlord ignores that error and treats the pattern as matching nothing (spec §15, §20 item 24).

`decode_file_message(data)` reads a files-topic message as the Go flowlord does: a GCS object
event when both `id` and `name` are non-empty, else the task-tools stat JSON. Where Go silently
goes on with an empty path, it raises `task.BadMessage` with one of `FILE_REASONS`.

`LocalWatcher` watches a local folder (recursively, with watchdog) and reports each file that
matches one of its patterns once it has been written and closed, or moved in: as a stat JSON
message on the files topic of a bus, or as a `FileEvent` to a callback.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Awaitable, Callable, Iterable

from .task import MAX_MESSAGE_BYTES, BadMessage, _decode_utf8, format_time, json_kind, parse_time

__all__ = [
    "FILE_REASONS", "BadPattern", "FileEvent", "LocalWatcher",
    "check_pattern", "decode_file_message", "match", "stat_file",
]

log = logging.getLogger("flowlord.files")

# --- filepath.Match -------------------------------------------------------------------------


class BadPattern(ValueError):
    """Go's filepath.ErrBadPattern: the pattern is malformed."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        super().__init__(f"syntax error in pattern {pattern!r}")


class _Bad(Exception):
    pass


_STAR, _QUESTION, _LBRACK, _RBRACK = ord("*"), ord("?"), ord("["), ord("]")
_BACKSLASH, _CARET, _DASH, _SLASH = ord("\\"), ord("^"), ord("-"), ord("/")
_RUNE_ERROR = 0xFFFD
_SPECIAL = re.compile(r"[*?\[\\]")


def match(pattern: str, path: str) -> bool:
    """Go's `filepath.Match(pattern, path)` (Unix). Raises BadPattern for a malformed pattern."""
    if _SPECIAL.search(pattern) is None:
        return pattern == path  # nothing but literal bytes: Go compares them one by one
    try:
        return _match(_utf8(pattern), _utf8(path))
    except _Bad:
        raise BadPattern(pattern) from None


def check_pattern(pattern: str) -> None:
    """Raises BadPattern when Go's filepath.Match would report ErrBadPattern for `pattern`.

    Go checks the whole pattern whatever the path (since Go 1.16), so matching the empty
    path tells."""
    match(pattern, "")


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", "surrogateescape")  # a name os.fsdecode made: its own bytes
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")  # a lone surrogate: invalid UTF-8, as in Go


def _decode_rune(data: bytes, i: int) -> tuple[int, int]:
    """utf8.DecodeRune: the code point at `i` and its length; (U+FFFD, 1) for a bad byte."""
    lead = data[i]
    if lead < 0x80:
        return lead, 1
    if 0xC2 <= lead <= 0xDF:
        size = 2
    elif 0xE0 <= lead <= 0xEF:
        size = 3
    elif 0xF0 <= lead <= 0xF4:
        size = 4
    else:
        return _RUNE_ERROR, 1
    try:
        return ord(data[i:i + size].decode("utf-8")), size
    except (UnicodeDecodeError, TypeError):  # truncated, overlong, surrogate: one bad byte
        return _RUNE_ERROR, 1


def _match(pattern: bytes, name: bytes) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return _SLASH not in name  # a trailing * matches the rest unless it holds a /
        rest = _match_chunk(chunk, name)
        # The last chunk must use up the name; otherwise a later star may still match.
        if rest is not None and (not rest or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != _SLASH:  # the star skips i+1 bytes, never a /
                rest = _match_chunk(chunk, name[i + 1:])
                if rest is not None and (pattern or not rest):
                    name = rest
                    found = True
                    break
                i += 1
            if found:
                continue
        # No match: the rest of the pattern must still be well formed.
        while pattern:
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, b"")
        return False
    return not name


def _scan_chunk(pattern: bytes) -> tuple[bool, bytes, bytes]:
    """The leading stars, then the chunk up to the next star outside a class, then the rest."""
    i = 0
    while i < len(pattern) and pattern[i] == _STAR:
        i += 1
    star = i > 0
    pattern = pattern[i:]
    in_range = False
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == _BACKSLASH:
            if i + 1 < len(pattern):
                i += 1  # a trailing \ is reported by _match_chunk
        elif c == _LBRACK:
            in_range = True
        elif c == _RBRACK:
            in_range = False
        elif c == _STAR and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: bytes, s: bytes) -> bytes | None:
    """What is left of `s` after `chunk` matched its start, or None. Once the match has failed,
    the rest of the chunk is still read, to report a malformed one (raises _Bad)."""
    failed = False
    ci = si = 0
    n = len(chunk)
    while ci < n:
        if not failed and si >= len(s):
            failed = True
        c = chunk[ci]
        if c == _LBRACK:
            rune = 0
            if not failed:
                rune, width = _decode_rune(s, si)
                si += width
            ci += 1
            negated = False
            if ci < n and chunk[ci] == _CARET:
                negated = True
                ci += 1
            matched = False
            ranges = 0
            while True:
                if ci < n and chunk[ci] == _RBRACK and ranges > 0:
                    ci += 1
                    break
                lo, ci = _get_esc(chunk, ci)
                hi = lo
                if chunk[ci] == _DASH:
                    hi, ci = _get_esc(chunk, ci + 1)
                if lo <= rune <= hi:
                    matched = True
                ranges += 1
            if matched == negated:
                failed = True
        elif c == _QUESTION:
            if not failed:
                if s[si] == _SLASH:
                    failed = True
                si += _decode_rune(s, si)[1]
            ci += 1
        else:
            if c == _BACKSLASH:
                ci += 1
                if ci >= n:
                    raise _Bad
            if not failed:
                if chunk[ci] != s[si]:
                    failed = True
                si += 1
            ci += 1
    return None if failed else s[si:]


def _get_esc(chunk: bytes, ci: int) -> tuple[int, int]:
    """One possibly escaped character of a class, and the index after it. A class may not end
    right after it: a `]` (or a range's `-`) must follow."""
    if ci >= len(chunk) or chunk[ci] in (_DASH, _RBRACK):
        raise _Bad
    if chunk[ci] == _BACKSLASH:
        ci += 1
        if ci >= len(chunk):
            raise _Bad
    rune, width = _decode_rune(chunk, ci)
    if rune == _RUNE_ERROR and width == 1:
        raise _Bad
    ci += width
    if ci >= len(chunk):
        raise _Bad
    return rune, ci


# --- the files-topic message ----------------------------------------------------------------

# Why decode_file_message rejects a message (BadMessage.reason).
FILE_REASONS = ("too-large", "not-json", "not-object", "missing-path", "bad-field")

_ATOI = re.compile(r"[+-]?[0-9]+\Z")
_INT64 = (-(1 << 63), (1 << 63) - 1)


@dataclass(frozen=True, slots=True)
class FileEvent:
    """A file that arrived: its full path (`gs://bucket/name` for GCS), size in bytes, creation
    (or last change) time in UTC whole seconds, and checksum (hex MD5 for task-tools stats,
    base64 MD5 for GCS)."""

    path: str
    size: int = 0
    created: datetime | None = None
    checksum: str = ""

    def to_json(self) -> bytes:
        """The task-tools stat JSON of the file, as its file-watcher sends it."""
        stats = {
            "linecnt": 0,
            "bytecnt": 0,
            "size": self.size,
            "checksum": self.checksum,
            "path": self.path,
            "created": format_time(self.created) if self.created is not None else "",
        }
        return json.dumps(stats, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid JSON value {name}")


def decode_file_message(data: bytes | bytearray | memoryview | str) -> FileEvent:
    """A files-topic message: a GCS object event or a task-tools stat JSON.

    Keys match case-insensitively, as Go's encoding/json does. A GCS event (both `id` and
    `name` non-empty strings) gives path `gs://<bucket>/<name>`, size the integer of the `size`
    string (0 when it is not one), checksum `md5Hash` and created `timeCreated` in UTC with the
    fraction dropped. Otherwise the stat JSON's `path`, `size`, `checksum` and `created`; a
    field of the wrong type is left empty, as in Go, and a time that is not RFC 3339 is None.

    Raises BadMessage (reason in FILE_REASONS) for a message over 1 MiB, one that is not JSON
    or not an object, and one without a path: the Go flowlord went on with an empty path.
    """
    if isinstance(data, str):
        size = len(data.encode("utf-8", "surrogatepass")) if len(data) * 4 > MAX_MESSAGE_BYTES else len(data)
        text = data
    else:
        size = len(data)
        text = None
    if size > MAX_MESSAGE_BYTES:
        raise BadMessage("too-large", f"{size} bytes, more than the limit of {MAX_MESSAGE_BYTES}")
    if text is None:
        text = _decode_utf8(bytes(data))
    try:
        obj = json.loads(text, object_pairs_hook=_folded, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise BadMessage("not-json", str(exc)) from None
    if not isinstance(obj, dict):
        raise BadMessage("not-object", f"a JSON {json_kind(obj)}, not an object")

    event_id, name = obj.get("id"), obj.get("name")
    if isinstance(event_id, str) and event_id and isinstance(name, str) and name:
        return FileEvent(
            path=f"gs://{_string(obj.get('bucket'))}/{name}",
            size=_atoi(obj.get("size")),
            created=_time(obj.get("timecreated")),
            checksum=_string(obj.get("md5hash")),
        )

    path = obj.get("path")
    if path is not None and not isinstance(path, str):
        raise BadMessage("bad-field", f'field "path" is a JSON {json_kind(path)}, not a string')
    if not path:
        keys = ", ".join(sorted(obj)[:8]) or "none"
        raise BadMessage(
            "missing-path",
            f'neither a GCS object event (id and name) nor a stat message with a "path" (keys: {keys})',
        )
    size_value = obj.get("size")
    return FileEvent(
        path=path,
        size=size_value if type(size_value) is int and _INT64[0] <= size_value <= _INT64[1] else 0,
        created=_time(obj.get("created")),
        checksum=_string(obj.get("checksum")),
    )


def _folded(pairs: list[tuple[str, object]]) -> dict:
    """An object with its keys case-folded, the last of equal keys winning (Go matches struct
    fields case-insensitively, in document order)."""
    return {key.casefold(): value for key, value in pairs}


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _atoi(value: object) -> int:
    """Go's strconv.Atoi of the GCS `size` string, 0 when it fails."""
    if isinstance(value, str) and _ATOI.match(value):
        number = int(value)
        if _INT64[0] <= number <= _INT64[1]:
            return number
    return 0


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value).replace(microsecond=0)
    except ValueError:
        return None


# --- the local watcher ----------------------------------------------------------------------

OnFile = Callable[[FileEvent], "Awaitable[None] | None"]


def stat_file(path: str) -> FileEvent | None:
    """The FileEvent of a local regular file (created = its last change, UTC whole seconds,
    checksum = hex MD5), or None when it is gone or not a regular file."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None  # a folder, a pipe (opening it would block), a device
        with open(path, "rb") as handle:
            info = os.fstat(handle.fileno())
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except (FileNotFoundError, NotADirectoryError):
        return None
    created = datetime.fromtimestamp(info.st_mtime, timezone.utc).replace(microsecond=0)
    return FileEvent(path=path, size=info.st_size, created=created, checksum=digest.hexdigest())


class LocalWatcher:
    """Reports the files written into a local folder (and its sub-folders) that match one of
    `patterns` (Go filepath.Match against the file's absolute path).

    `target` is a Bus, to which each file goes as a stat JSON message on `topic` (the engine's
    files topic, so the usual file rules handle it), or an async (or plain) callable that gets
    the FileEvent.

    A file is reported once it has been closed after writing, or moved in; the events of one
    write (create, modify, close) are folded into one report `debounce` seconds after the
    last. Where the platform gives no close events (macOS, Windows, `polling=True`), a file is
    reported once no event has come for `settle` seconds. On Linux a file opened for writing
    and never closed is reported after `stale` seconds without events. Files already in the
    folder at start are not reported.
    """

    def __init__(
        self,
        folder: str | os.PathLike,
        target: object,
        patterns: Iterable[str],
        *,
        topic: str = "files",
        debounce: float = 0.2,
        settle: float = 1.0,
        stale: float = 60.0,
        polling: bool = False,
    ) -> None:
        self.folder = os.path.abspath(os.fspath(folder))
        self.topic = topic
        self.debounce = debounce
        self.settle = settle
        self.stale = stale
        self.polling = polling
        self._target = target
        self._bus = target if callable(getattr(target, "publish", None)) else None
        if self._bus is None and not callable(target):
            raise TypeError("target must be a Bus (with publish) or a callable taking a FileEvent")
        self.patterns: tuple[str, ...] = ()
        self.set_patterns(patterns)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer = None
        self._close_events = False
        self._pending: dict[str, tuple[str, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task] = set()

    def set_patterns(self, patterns: Iterable[str]) -> None:
        """Replaces the patterns (e.g. after a workflow reload). Raises BadPattern for a
        malformed one, leaving the old ones in place."""
        patterns = tuple(dict.fromkeys(patterns))
        for pattern in patterns:
            check_pattern(pattern)
        self.patterns = patterns
        if not patterns:
            log.warning("local watcher on %s: no files= patterns, so no file will be reported", self.folder)

    def matches(self, path: str) -> bool:
        return any(match(pattern, path) for pattern in self.patterns)

    @property
    def running(self) -> bool:
        return self._observer is not None

    async def start(self) -> None:
        """Starts watching. Raises OSError when the folder cannot be watched."""
        if self._observer is not None:
            return
        if not os.path.isdir(self.folder):
            raise NotADirectoryError(f"cannot watch {self.folder}: not a folder")
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        self._loop = asyncio.get_running_loop()
        observer = PollingObserver(timeout=min(1.0, self.settle)) if self.polling else Observer()
        try:
            from watchdog.observers.inotify import InotifyObserver

            self._close_events = isinstance(observer, InotifyObserver)
        except Exception:  # not Linux
            self._close_events = False
        observer.schedule(_handler(self), self.folder, recursive=True)
        await asyncio.to_thread(observer.start)  # adds the watches of the whole tree
        self._observer = observer
        log.info(
            "watching %s for %s (%s)", self.folder, ", ".join(self.patterns) or "no pattern",
            "close events" if self._close_events else f"quiet for {self.settle}s",
        )

    async def stop(self) -> None:
        """Stops watching; files still waiting for their quiet period are not reported."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            await asyncio.to_thread(observer.join, 5.0)
        for _, handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> LocalWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- events (on the event loop) -----------------------------------------------------------

    def _from_thread(self, kind: str, path: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._event, kind, path)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def _event(self, kind: str, path: str) -> None:
        if self._observer is None:
            return
        pending = self._pending.get(path)
        state = pending[0] if pending else None
        if kind == "deleted":
            if pending:
                pending[1].cancel()
                del self._pending[path]
            return
        if kind in ("closed", "moved"):
            self._arm(path, "done", self.debounce)
        elif kind == "created":
            self._arm(path, "new", self.settle)
        elif kind == "modified":
            if self._close_events:
                self._arm(path, "open", self.stale)  # the close will come
            else:
                self._arm(path, "new", self.settle)
        elif kind == "opened":
            if state in ("new", "done"):
                self._arm(path, "open", self.stale)  # being written after all
        elif kind == "closed_no_write":
            if state == "open":
                self._arm(path, "new", self.settle)

    def _arm(self, path: str, state: str, delay: float) -> None:
        pending = self._pending.get(path)
        if pending:
            pending[1].cancel()
        assert self._loop is not None
        handle = self._loop.call_later(delay, self._due, path)
        self._pending[path] = (state, handle)

    def _due(self, path: str) -> None:
        state, _ = self._pending.pop(path, ("", None))
        if state == "open":
            log.warning("%s: no close after %.0fs without writes; reporting it as it is", path, self.stale)
        if not self.matches(path):
            log.debug("%s matches no files= pattern", path)
            return
        task = asyncio.ensure_future(self._report(path))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, path: str) -> None:
        try:
            event = await asyncio.to_thread(stat_file, path)
        except OSError as error:
            log.warning("cannot read %s: %s", path, error)
            return
        if event is None:
            log.debug("%s is gone or not a regular file", path)
            return
        try:
            if self._bus is not None:
                await self._bus.publish(self.topic, event.to_json())
            else:
                result = self._target(event)
                if inspect.isawaitable(result):
                    await result
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not report %s", path)
            return
        log.info("file %s (%d bytes) reported to %s", path, event.size,
                 f"topic {self.topic!r}" if self._bus is not None else "the callback")


def _handler(watcher: LocalWatcher):
    """The watchdog handler: hands each file event over to the watcher's event loop."""
    from watchdog.events import FileSystemEventHandler

    class Handler(FileSystemEventHandler):
        def dispatch(self, event) -> None:
            if event.is_directory:
                return
            kind = event.event_type
            if kind == "moved":
                if event.src_path:
                    watcher._from_thread("deleted", os.fsdecode(event.src_path))
                if event.dest_path:
                    watcher._from_thread("moved", os.fsdecode(event.dest_path))
            elif kind in ("created", "modified", "closed", "closed_no_write", "opened", "deleted"):
                watcher._from_thread(kind, os.fsdecode(event.src_path))

    return Handler()
