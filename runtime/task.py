"""The pcelvng/task message (v0.8.0) on the wire, its times, results and meta strings.

`Task.to_json()` gives the bytes Go's `json.Marshal` gives for the same task: keys in the order
`type job info created id meta result msg started ended`, `type` and `info` always present, the
others omitted when empty, no HTML escaping, no spaces, no trailing newline. Go escapes `\\b` and
`\\f` as short escapes (Go 1.22 and later; older Go wrote `\\u0008`, `\\u000c`, the same JSON
value), U+2028 and U+2029 as `\\u2028`/`\\u2029`, and writes `\\ufffd` for invalid UTF-8.

`Task.from_json()` reads a message as Go's `json.Unmarshal` would (unknown keys ignored, key
names matched case-insensitively, `null` leaves a field empty, invalid UTF-8 replaced byte by
byte) and raises `BadMessage(reason)` for what flowlord records and skips.

Meta is a URL-query-like string. `parse_meta` reads it like Go's `url.ParseQuery` into a `Meta`
multi-dict; the three encoders of the shapes the Go flowlord writes are runtime.timefmt's,
re-exported here.
"""

from __future__ import annotations

import codecs
import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Iterator

from .timefmt import (
    encode_plain,
    encode_sorted_escaped,
    encode_sorted_unescaped,
    parse_query,
    set_pair,
)

__all__ = [
    "ALERT", "COMPLETE", "ERROR", "RESULTS", "WARN", "MAX_MESSAGE_BYTES",
    "BadMessage", "Meta", "Task",
    "encode_plain", "encode_sorted_escaped", "encode_sorted_unescaped", "format_time", "new_task",
    "parse_meta", "parse_time", "utc_now",
]

# --- results -------------------------------------------------------------------------------

COMPLETE = "complete"
ERROR = "error"
WARN = "warn"
ALERT = "alert"
RESULTS = frozenset((COMPLETE, ERROR, WARN, ALERT))

MAX_MESSAGE_BYTES = 1 << 20  # 1 MiB: a larger message is rejected unread

# --- times ----------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})\Z"
)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, whole seconds (`2006-01-02T15:04:05Z`). A naive datetime is UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def parse_time(text: str) -> datetime:
    """An RFC 3339 time (any offset, optional fraction) as an aware UTC datetime.

    Raises ValueError for anything Go's `time.Parse(time.RFC3339, …)` would refuse.
    """
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    micro = int((frac or "0")[:6].ljust(6, "0"))
    tz = timezone.utc
    if zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hours, minutes = int(zone[1:3]), int(zone[4:6])
        if hours > 23 or minutes > 59:
            raise ValueError(f"not an RFC 3339 time: {text!r}")
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tz)
    return moment.astimezone(timezone.utc)


# --- JSON strings as Go writes and reads them ----------------------------------------------

_encode_basestring = json.encoder.encode_basestring  # C version: escapes as Go does for ASCII
_GO_DIFFERS = re.compile("[\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _go_fix(m: re.Match) -> str:
    ch = m.group()
    if ch == "\u2028":
        return "\\u2028"
    if ch == "\u2029":
        return "\\u2029"
    return "\\ufffd"  # a lone surrogate is not UTF-8: Go writes the escape for U+FFFD


def _quote(value: str) -> str:
    out = _encode_basestring(value)
    if _GO_DIFFERS.search(out) is None:
        return out
    return _GO_DIFFERS.sub(_go_fix, out)


def _go_replace(error: UnicodeDecodeError) -> tuple[str, int]:
    # Go's utf8.DecodeRune reports every invalid byte on its own: one U+FFFD per byte.
    return "\ufffd", error.start + 1


codecs.register_error("flowlord-go-replace", _go_replace)


def _decode_utf8(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "flowlord-go-replace")


# --- the message ----------------------------------------------------------------------------

_FIELDS = ("type", "job", "info", "created", "id", "meta", "result", "msg", "started", "ended")
_FIELD_SET = frozenset(_FIELDS)
_OPTIONAL = ("created", "id", "meta", "result", "msg", "started", "ended")


class BadMessage(ValueError):
    """A message flowlord records and skips. `reason` is a short stable slug:
    `too-large`, `not-json`, `not-object`, `missing-type` or `bad-field`."""

    REASONS = ("too-large", "not-json", "not-object", "missing-type", "bad-field")

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


def _reject_constant(name: str) -> None:
    raise ValueError(f"invalid JSON value {name}")  # Go has no NaN or Infinity


# Made once: json.loads with any option builds a new decoder per call, a fifth of a decode.
_OBJECT = json.JSONDecoder(parse_constant=_reject_constant)
_PAIRS = json.JSONDecoder(object_pairs_hook=list, parse_constant=_reject_constant)


@dataclass(frozen=True, slots=True)
class Task:
    type: str
    job: str = ""
    info: str = ""
    created: str = ""
    id: str = ""
    meta: str = ""
    result: str = ""
    msg: str = ""
    started: str = ""
    ended: str = ""

    def to_json(self) -> bytes:
        """The message bytes, as Go's json.Marshal writes the task."""
        parts = ['{"type":', _quote(self.type)]
        if self.job:
            parts += (',"job":', _quote(self.job))
        parts += (',"info":', _quote(self.info))
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value:
                parts += (',"', name, '":', _quote(value))
        parts.append("}")
        return "".join(parts).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes | bytearray | memoryview | str, *,
                  max_bytes: int = MAX_MESSAGE_BYTES) -> Task:
        if isinstance(data, str):
            size = len(data) if len(data) * 4 <= max_bytes else len(data.encode("utf-8", "surrogatepass"))
            text = data
        else:
            size = len(data)
            text = None
        if size > max_bytes:
            raise BadMessage("too-large", f"{size} bytes, more than the limit of {max_bytes}")
        if text is None:
            text = _decode_utf8(bytes(data))
        try:
            obj = _OBJECT.decode(text)
        except (ValueError, RecursionError) as exc:
            raise BadMessage("not-json", str(exc)) from None
        if not isinstance(obj, dict):
            raise BadMessage("not-object", f"a JSON {json_kind(obj)}, not an object")
        if not _FIELD_SET.issuperset(obj):
            # Go matches key names case-insensitively, in document order, the last one winning.
            pairs = _PAIRS.decode(text)
            obj = {}
            for key, value in pairs:
                folded = key.casefold()
                if folded in _FIELD_SET:
                    obj[folded] = value
        values = obj
        if not all(type(value) is str for value in obj.values()):  # all strings: the usual case
            values = {}
            for key, value in obj.items():
                if value is None:
                    continue  # Go: null leaves the field as it was
                if not isinstance(value, str):
                    raise BadMessage("bad-field", f'field "{key}" is a JSON {json_kind(value)}, not a string')
                values[key] = value
        if "\\u" in text:  # an unpaired \\uD800 escape: Go reads U+FFFD
            values = {key: _SURROGATE.sub("\ufffd", value) for key, value in values.items()}
        if not values.get("type"):
            raise BadMessage("missing-type", 'no "type", or an empty one')
        return cls(**values)

    def replace(self, **changes: str) -> Task:
        return replace(self, **changes)


def json_kind(value: object) -> str:
    """The JSON type name of a decoded value, for messages about bad input."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def new_task(type: str, job: str = "", info: str = "", meta: str = "", *,
             now: datetime | None = None, id: str | None = None) -> Task:
    """A task as Go's task.New / NewWithID builds it: `created` = now (UTC, whole seconds) and a
    fresh UUID v4 unless an id is given."""
    return Task(
        type=type, job=job, info=info, meta=meta,
        created=format_time(now if now is not None else utc_now()),
        id=id if id is not None else str(uuid.uuid4()),
    )


# --- meta -----------------------------------------------------------------------------------
# The parser and the three encoders are timefmt's (`parse_query`, `encode_plain`,
# `encode_sorted_escaped`, `encode_sorted_unescaped`); re-exported here beside the message.

_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True, slots=True)
class Meta:
    """An ordered multi-dict of meta pairs. A lookup returns the first value, as Go's
    `url.Values.Get` does; `set` replaces every value of a key, as `url.Values.Set` does."""

    pairs: tuple[tuple[str, str], ...] = ()

    def get(self, key: str, default: str = "") -> str:
        for k, v in self.pairs:
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    def keys(self) -> list[str]:
        return list(dict.fromkeys(k for k, _ in self.pairs))

    def set(self, key: str, value: str) -> Meta:
        return Meta(tuple(set_pair(self.pairs, key, value)))

    def without(self, *keys: str) -> Meta:
        drop = set(keys)
        return Meta(tuple(p for p in self.pairs if p[0] not in drop))

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self.pairs)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.pairs)

    def __len__(self) -> int:
        return len(self.pairs)


def parse_meta(text: str) -> tuple[Meta, list[str]]:
    """Go's `url.ParseQuery`: the pairs in order and the segments it drops (a `;` in them, or a
    bad %-escape). Empty segments are skipped, not dropped."""
    if not text:
        return Meta(), []
    pairs, problems = parse_query(text)
    dropped = []
    if problems:
        dropped = [seg for seg in text.split("&") if seg and (";" in seg or _BAD_ESCAPE.search(seg))]
    return Meta(tuple(pairs)), dropped
