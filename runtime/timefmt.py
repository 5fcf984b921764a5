"""Time and meta, the way the Go flowlord computes them (spec §8, §8.1, §9, §12, §13.4-13.5, §15).

Pure functions: no clock, no I/O (the hostname and the `{uuid}` generator come in a RenderEnv).

* **Go time arithmetic** (`go_date`, `go_add`, `go_add_date`, `go_truncate`): Go's `time.Date`
  normalises overflowing fields and resolves a wall time that a DST change skipped or repeated
  by its own rule, which is not PEP 495's; `t.Add` is absolute while Python's aware `+` is
  wall-clock. The cron schedule and batch steps are built on these so they land where Go lands.
  Go's zero time (0001-01-01T00:00:00Z) is `ZERO_TIME`; `is_zero` tests for it.
* **Templates** (`render`): Go's `tmpl.Parse(template, t)` followed by `tmpl.Meta`, over the
  Template AST. A zero time leaves every time/host token literal (Go's wire behaviour) and says
  so in `problems`; a missing meta key renders empty (Go) and is reported too.
* **Task time** (`task_time`, `info_time`, `path_time`): Go's `TaskTime`, `InfoTime`, `PathTime`
  with their unanchored patterns, priority order, fall-through and no-fallback quirks, and the
  `net/url` parse failure that zeroes the time.
* **Meta strings**: `parse_query` (Go `url.ParseQuery`), and the three ways Go writes meta:
  `encode_plain` (cron and child tasks: concatenation), `encode_sorted_unescaped` (batch and
  file tasks: `url.QueryUnescape(values.Encode())`) and `encode_sorted_escaped` (retries:
  `values.Encode()`). The first two write values raw in Go, which corrupts the meta when a
  value holds `&`, `=`, `+`, `%`, `#` or `;` (§20.33); here such a key or value is
  query-escaped, and any string without those characters keeps Go's exact bytes.
"""

from __future__ import annotations

import math
import re
import socket
import uuid as _uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Union
from urllib.parse import quote_plus

from flowlord.compiler.ast import HostField, MetaRef, Template, Text, TimeField

UTC = timezone.utc

# --- Go time -------------------------------------------------------------------------------

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
"""Go's zero `time.Time`: what TaskTime/InfoTime/PathTime return when there is no time."""


def is_zero(t: datetime | None) -> bool:
    """Go's `t.IsZero()`; None counts as zero too."""
    if t is None:
        return True
    if t.year > 2:  # an offset moves an instant by less than a day: not Go's zero
        return False
    if t.tzinfo is None:
        return t == ZERO_TIME.replace(tzinfo=None)
    try:
        return t.astimezone(UTC) == ZERO_TIME
    except OverflowError:
        return False


def _offset_at(instant: datetime, loc) -> timedelta:
    """The UTC offset in force at an instant (an aware datetime) in `loc`."""
    return instant.astimezone(loc).utcoffset() or timedelta(0)


def go_date(year: int, month: int, day: int, hour: int, minute: int, second: int, loc,
            microsecond: int = 0) -> datetime:
    """Go's `time.Date`: fields may overflow (month 13, day 32, day 0, hour 24 …) and are
    normalised; the wall time is then resolved in `loc` as Go does it: look the offset up at the
    wall time read as UTC, then at the instant that gives, and use the second answer. For New York
    this picks the first of a repeated hour and, in a spring-forward gap, the offset after the
    change (02:30 → 01:30 EST); east of UTC a gap resolves the other way (Berlin 02:30 → 03:30).
    """
    months = year * 12 + (month - 1)
    year, month = divmod(months, 12)
    wall = datetime(year, month + 1, 1, tzinfo=UTC) + timedelta(
        days=day - 1, hours=hour, minutes=minute, seconds=second, microseconds=microsecond
    )
    first = _offset_at(wall, loc)
    offset = _offset_at(wall - first, loc)
    return (wall - offset).astimezone(loc)


def go_add(t: datetime, delta: timedelta) -> datetime:
    """Go's `t.Add(d)`: absolute time, kept in t's zone (Python's aware `+` is wall-clock)."""
    return (t.astimezone(UTC) + delta).astimezone(t.tzinfo)


def go_add_date(t: datetime, years: int = 0, months: int = 0, days: int = 0) -> datetime:
    """Go's `t.AddDate`: calendar arithmetic with Go's normalisation (Jan 31 + 1 month = Mar 2
    or 3), resolved in t's zone by `go_date`."""
    return go_date(t.year + years, t.month + months, t.day + days, t.hour, t.minute, t.second,
                   t.tzinfo, t.microsecond)


def go_truncate(t: datetime, unit: timedelta) -> datetime:
    """Go's `t.Truncate(d)` for d dividing a day: absolute, i.e. on the UTC clock."""
    utc = t.astimezone(UTC)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return (utc - (utc - epoch) % unit).astimezone(t.tzinfo)


def format_hour(t: datetime) -> str:
    """Go's `t.Format("2006-01-02T15")`: the `cron` meta value (`0001-01-01T00` for zero)."""
    return f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}"


def _utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
         second: int = 0) -> datetime | None:
    """A time Go's `time.Parse` accepts (calendar-valid); None where Go fails. Year 0, which Go
    accepts, cannot be represented here and counts as a failure."""
    try:
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


# --- templates -----------------------------------------------------------------------------


def _default_hostname() -> str:
    try:
        return socket.gethostname() or "hostname"
    except OSError:
        return "hostname"


def _new_uuid8() -> str:
    return _uuid.uuid4().hex[:8]  # Go: the first `-` group of a UUID v4's string


@dataclass(frozen=True)
class RenderEnv:
    """What a template may need besides the time: `{host}`/`{pod}` read the hostname, `{uuid}`
    the generator (first 8 hex characters of a UUID v4)."""

    hostname: str
    new_uuid: Callable[[], str] = _new_uuid8

    @property
    def pod(self) -> str:
        """Go: the last two `-`-separated parts of the hostname (the whole name without `-`)."""
        parts = self.hostname.split("-")
        return "-".join(parts[-2:]) if len(parts) > 1 else self.hostname


@lru_cache(maxsize=1)
def default_env() -> RenderEnv:
    """This machine's hostname (`hostname` when the lookup fails, like Go) and random UUIDs."""
    return RenderEnv(hostname=_default_hostname())


@dataclass(frozen=True)
class Rendered:
    text: str
    keys: tuple[str, ...] = ()  # meta keys filled, one per token, in order (Go's key list)
    problems: tuple[str, ...] = ()


class JsonRow(dict):
    """A meta-file row (one JSON object). Read with Go's GetMap rules: strings as they are,
    numbers in Go's shortest plain decimal form, null and missing keys empty, and booleans,
    objects and arrays as `i~bool`, `i~map[string]interface {}`, `i~[]interface {}`."""


MetaSource = Union[Mapping[str, Any], JsonRow]

_GO_TYPE_NAMES = {bool: "bool", dict: "map[string]interface {}", list: "[]interface {}"}


def go_float(value: float) -> str:
    """Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits, no exponent."""
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def meta_get(meta: MetaSource, key: str) -> tuple[str, str | None]:
    """A meta value the way Go's Getter reads it, plus a problem when it is missing or odd.

    A JsonRow follows GetMap; any other mapping is url.Values-like: a string, or a list whose
    first value is used (Go's `Values.Get`)."""
    if isinstance(meta, JsonRow):
        if key not in meta or meta[key] is None:
            what = "is null" if key in meta else "is missing"
            return "", f"meta key `{key}` {what}: `{{meta:{key}}}` rendered empty"
        value = meta[key]
        if isinstance(value, str):
            return value, None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            name = _GO_TYPE_NAMES.get(type(value), type(value).__name__)
            return f"i~{name}", (
                f"meta key `{key}` is a JSON {type(value).__name__}: Go renders `i~{name}`"
            )
        return go_float(float(value)), None
    value = meta.get(key)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    if value is None:
        return "", f"meta key `{key}` is missing: `{{meta:{key}}}` rendered empty"
    return str(value), None


@lru_cache(maxsize=1024)
def _time_table(year: int, month: int, day: int, hour: int, minute: int, second: int
                ) -> dict[str, str]:
    """Every time field of a wall clock, by name (`yyyy` … `MONTH_SLUG`; `mm` is the MONTH).
    Cached: a parent's children and a minute's cron fires share one."""
    y = str(year)
    mm, dd, hh, mi = f"{month:02d}", f"{day:02d}", f"{hour:02d}", f"{minute:02d}"
    hour_slug = f"{y}/{mm}/{dd}/{hh}"
    return {
        "yyyy": y, "yy": y[2:], "mm": mm, "dd": dd, "hh": hh, "min": mi,
        "TS": f"{year:04d}{mm}{dd}T{hh}{mi}{second:02d}",
        "SLUG": hour_slug, "HOUR_SLUG": hour_slug, "DAY_SLUG": f"{y}/{mm}/{dd}", "MONTH_SLUG": f"{y}/{mm}",
    }  # fmt: skip


def _time_value(name: str, t: datetime) -> str:
    """A time field of t's wall clock (`{yyyy}` … `{MONTH_SLUG}`)."""
    value = _time_table(t.year, t.month, t.day, t.hour, t.minute, t.second).get(name)
    if value is None:
        raise ValueError(f"unknown time field {name!r}")
    return value


_TEXT, _META, _TIME, _HOST = range(4)
_TIME_NAMES = frozenset(("yyyy", "yy", "mm", "dd", "hh", "min", "TS", "SLUG", "HOUR_SLUG",
                         "DAY_SLUG", "MONTH_SLUG"))
_Steps = tuple[tuple[int, str, str], ...]
_PROGRAMS: dict[int, tuple[Template, _Steps, tuple[tuple[bool, str], ...] | None]] = {}


def _program(template: Template) -> tuple[_Steps, tuple[tuple[bool, str], ...] | None]:
    """A template's parts as (code, value, written) steps for `render`, made once per Template
    object (kept with it, so that its id cannot be reused while cached). Parts after the
    `#` comment other than meta tokens are plain text. Also, for a template of text and time
    fields only, (is a time field, text or field name) pairs: its text is all the time's."""
    cached = _PROGRAMS.get(id(template))
    if cached is not None and cached[0] is template:
        return cached[1], cached[2]
    parts = template.parts
    comment_at = len(parts) if template.comment_at is None else template.comment_at
    steps = []
    for index, part in enumerate(parts):
        if isinstance(part, Text):
            steps.append((_TEXT, part.value, part.value))
        elif isinstance(part, MetaRef):
            steps.append((_META, part.key, ""))
        elif index >= comment_at:
            steps.append((_TEXT, part.written, part.written))
        elif isinstance(part, TimeField):
            steps.append((_TIME, part.name, part.written))
        elif isinstance(part, HostField):
            steps.append((_HOST, part.name, part.written))
        else:  # pragma: no cover - the AST has no other part
            raise TypeError(f"unknown template part {part!r}")
    program = tuple(steps)
    simple = None
    if all(code == _TEXT or (code == _TIME and value in _TIME_NAMES) for code, value, _ in steps):
        simple = tuple((code == _TIME, value) for code, value, _ in steps)
    if len(_PROGRAMS) >= 65536:  # plans reloaded many times: start again
        _PROGRAMS.clear()
    _PROGRAMS[id(template)] = (template, program, simple)
    return program, simple


def render(template: Template, t: datetime, meta: MetaSource | None = None, *,
           env: RenderEnv | None = None) -> Rendered:
    """Go's `tmpl.Meta(tmpl.Parse(template, t), meta)` over the Template AST.

    * Time tokens use t's own wall clock (its zone). Parts after the template's `#` comment
      (`comment_at`) keep their time and host tokens literal; their meta tokens are filled.
    * A zero time (Go's zero or None) leaves every time and host token literal, as Go does,
      and adds the problem "no task time: …".
    * `meta=None` leaves `{meta:…}` literal (Go's Parse alone). Otherwise every meta token is
      filled (`meta_get`); a missing key renders empty and is reported.
    * Only the first `{uuid}` is replaced (the parser already leaves later ones as text).
    """
    steps, simple = _program(template)
    zero = is_zero(t)
    table = None if zero else _time_table(t.year, t.month, t.day, t.hour, t.minute, t.second)
    if simple is not None and table is not None:  # text and time fields only
        return Rendered("".join([table[value] if is_time else value for is_time, value in simple]))
    env = env or default_env()
    out: list[str] = []
    keys: list[str] = []
    problems: list[str] = []
    literal: list[str] = []
    uuid_done = False
    for code, value, written in steps:
        if code == _TEXT:
            out.append(value)
        elif code == _META:
            if meta is None:
                out.append(f"{{meta:{value}}}")
                continue
            text, problem = meta_get(meta, value)
            keys.append(value)
            out.append(text)
            if problem is not None and problem not in problems:
                problems.append(problem)
        elif zero:
            out.append(written)
            literal.append(written)
        elif code == _TIME:
            text = table.get(value)
            out.append(text if text is not None else _time_value(value, t))
        elif value == "host":
            out.append(env.hostname)
        elif value == "pod":
            out.append(env.pod)
        elif not uuid_done:
            uuid_done = True
            out.append(env.new_uuid())
        else:
            out.append(written)
    if literal:
        problems.insert(0, "no task time: time tokens left literal: " + ", ".join(dict.fromkeys(literal)))
    return Rendered("".join(out), tuple(keys), tuple(problems))


_GO_TIME_TOKENS = re.compile(
    r"\{(?:SLUG|HOUR_SLUG|DAY_SLUG|MONTH_SLUG|TS|min|[Yy]{4}|[Yy]{2}|[Mm]{2}|[Dd]{2}|[Hh]{2})\}"
    r"|(?i:\{(?:host|pod)\})|\{uuid\}"
)
_GO_META_TOKEN = re.compile(r"\{meta:([0-9A-Za-z_]+)\}")


def render_text(text: str, t: datetime, meta: MetaSource | None = None, *,
                env: RenderEnv | None = None) -> Rendered:
    """Go's `tmpl.Meta(tmpl.Parse(text, t), meta)` on a raw template string, substitution by
    substitution, for templates that never went through the compiler (a child rule's
    `Template=` override, a backload request's template). Same problems as `render`."""
    env = env or default_env()
    problems: list[str] = []
    if is_zero(t):
        head = text[: text.find("#")] if text.find("#") > 0 else text
        literal = [m.group() for m in _GO_TIME_TOKENS.finditer(head)]
        if literal:
            problems.append(
                "no task time: time tokens left literal: " + ", ".join(dict.fromkeys(literal))
            )
        s = text
    else:
        end = ""
        comment = text.find("#")
        s = text
        if comment > 0:
            s, end = text[:comment], text[comment:]
        s = s.replace("{SLUG}", "{HOUR_SLUG}")
        s = s.replace("{HOUR_SLUG}", "{YYYY}/{MM}/{DD}/{HH}")
        s = s.replace("{DAY_SLUG}", "{YYYY}/{MM}/{DD}")
        s = s.replace("{MONTH_SLUG}", "{YYYY}/{MM}")
        s = s.replace("{TS}", _time_value("TS", t))
        for pattern, name in ((r"\{[Yy]{4}\}", "yyyy"), (r"\{[Yy]{2}\}", "yy"), (r"\{[Mm]{2}\}", "mm"),
                              (r"\{[Dd]{2}\}", "dd"), (r"\{[Hh]{2}\}", "hh")):
            value = _time_value(name, t)
            s = re.sub(pattern, lambda _m, v=value: v, s)
        s = s.replace("{min}", _time_value("min", t))
        s = re.sub(r"(?i)\{host\}", lambda _m: env.hostname, s)
        s = re.sub(r"(?i)\{pod\}", lambda _m: env.pod, s)
        if "{uuid}" in s.lower():
            s = s.replace("{uuid}", env.new_uuid(), 1)
        s += end
    keys: list[str] = []
    if meta is not None:
        for match in list(_GO_META_TOKEN.finditer(s)):
            key = match.group(1)
            keys.append(key)
            value, problem = meta_get(meta, key)
            s = s.replace(match.group(), value)
            if problem is not None and problem not in problems:
                problems.append(problem)
    return Rendered(s, tuple(keys), tuple(problems))


# --- TaskTime / InfoTime / PathTime (§9) ----------------------------------------------------

_D = "[0-9]"  # Go's \d is ASCII only
_TIMESTAMP_RE = re.compile(
    rf"(?:day|date|time|timestamp)[=:]({_D}{{4}})-({_D}{{2}})-({_D}{{2}})T({_D}{{2}}):({_D}{{2}}):({_D}{{2}})Z"
)
_HOUR_RE = re.compile(rf"(?:date|hour|hour_utc)[=:]({_D}{{4}})-({_D}{{2}})-({_D}{{2}})T({_D}{{2}})")
_DAY_RE = re.compile(rf"(?:day|date)[=:]({_D}{{4}})-({_D}{{2}})-({_D}{{2}})")
_CRON_RE = re.compile(rf"({_D}{{4}})-({_D}{{2}})-({_D}{{2}})T({_D}{{1,2}})")

_FILE_TS_RE = re.compile(rf"({_D}{{4}})({_D}{{2}})({_D}{{2}})T({_D}{{2}})({_D}{{2}})({_D}{{2}})")
_PATH_RES = (
    re.compile(rf"({_D}{{4}})/({_D}{{2}})/({_D}{{2}})/({_D}{{2}})"),  # hour
    re.compile(rf"({_D}{{4}})/({_D}{{2}})/({_D}{{2}})"),  # day
    re.compile(rf"({_D}{{4}})-({_D}{{2}})-({_D}{{2}})"),  # day with dashes
    re.compile(rf"({_D}{{4}})/({_D}{{2}})"),  # month: the 1st at 00:00
)


def _from_match(match: re.Match) -> datetime | None:
    fields = [int(g) for g in match.groups()]
    if len(fields) == 2:
        fields.append(1)
    return _utc(*fields)


def path_time(path: str) -> datetime:
    """Go's `tmpl.PathTime`, UTC. A `YYYYMMDDTHHMMSS` in the base name wins (one in a directory
    is ignored); else the first of hour slug, day slug, dashed day, month slug that occurs
    anywhere (leftmost occurrence, unanchored: `12345/06/07/08` is year 2345). A substring that
    fails to parse (`2020/02/30`) gives ZERO_TIME, with no fallback to the next pattern."""
    base = path.rsplit("/", 1)[-1]
    match = _FILE_TS_RE.search(base)
    if match is not None:
        return _from_match(match) or ZERO_TIME
    for pattern in _PATH_RES:
        match = pattern.search(path)
        if match is not None:
            return _from_match(match) or ZERO_TIME
    return ZERO_TIME


def info_time(info: str) -> datetime:
    """Go's `tmpl.InfoTime`, UTC: ZERO_TIME when `info` does not parse as a Go URL; else, in
    this priority whatever their position, the leftmost `(day|date|time|timestamp)[=:]` +
    `YYYY-MM-DDTHH:MM:SSZ`, `(date|hour|hour_utc)[=:]` + `YYYY-MM-DDTHH`, `(day|date)[=:]` +
    `YYYY-MM-DD` (each unanchored; one that fails calendar checks falls through), then
    `path_time` of the URL's (decoded) path component only."""
    path = _go_url_path(info)
    if path is None:
        return ZERO_TIME
    for pattern in (_TIMESTAMP_RE, _HOUR_RE, _DAY_RE):
        match = pattern.search(info)
        if match is not None:
            found = _from_match(match)
            if found is not None:
                return found
    return path_time(path)


def task_time(meta: MetaSource | str | None, info: str) -> datetime:
    """Go's `tmpl.TaskTime`: the meta `cron` value when it parses exactly as `YYYY-MM-DDTHH`
    (hour precision, UTC), else `info_time(info)`. `meta` is a meta string or a mapping."""
    cron = ""
    if isinstance(meta, str):
        cron = first_values(parse_query(meta)[0]).get("cron", "")
    elif meta is not None:
        cron, _ = meta_get(meta, "cron")
    found = _cron_time(cron) if isinstance(cron, str) else None
    if found is not None:
        return found
    return info_time(info)


@lru_cache(maxsize=1024)
def _cron_time(cron: str) -> datetime | None:
    """A meta `cron` value as TaskTime reads it (`YYYY-MM-DDTHH`, UTC), None when it does not."""
    match = _CRON_RE.fullmatch(cron)
    return _from_match(match) if match is not None else None


# --- Go net/url ----------------------------------------------------------------------------

_HEX = set(b"0123456789abcdefABCDEF")
_ALNUM = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_HOST_OK = _ALNUM | set(b"!$&'()*+,;=:[]<>\"-_.~")
_USERINFO_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._:~!$&'()*+,;=%@")


def _unescape(text: str, mode: str) -> str | None:
    """Go's `url.unescape` for mode path, fragment, user, host or query (`+` is a space only in
    query); None where Go returns an error."""
    if ("%" not in text and text.isascii() and mode not in ("host", "zone")
            and (mode != "query" or "+" not in text)):
        return text  # nothing to decode (the usual case): the loop below would copy it as is
    data = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(data):
        byte = data[i]
        if byte == 0x25:  # %
            if i + 2 >= len(data) or data[i + 1] not in _HEX or data[i + 2] not in _HEX:
                return None
            decoded = int(data[i + 1:i + 3], 16)
            if mode == "host" and decoded < 0x80 and data[i:i + 3] != b"%25":
                return None  # only non-ASCII bytes may be escaped in a host
            if (mode == "zone" and data[i:i + 3] != b"%25" and decoded != 0x20
                    and (decoded >= 0x80 or decoded not in _HOST_OK)):
                return None
            out.append(decoded)
            i += 3
            continue
        if byte == 0x2B and mode == "query":  # +
            out.append(0x20)
        elif mode in ("host", "zone") and byte < 0x80 and byte not in _HOST_OK:
            return None
        else:
            out.append(byte)
        i += 1
    return out.decode("utf-8", errors="replace")


_PORT_RE = re.compile(r"(?::[0-9]*)?")


def _valid_port(colon_port: str) -> bool:
    """Go's validOptionalPort: empty, or `:` and ASCII digits."""
    return _PORT_RE.fullmatch(colon_port) is not None


def _valid_host(host: str) -> bool:
    if host.startswith("["):
        end = host.rfind("]")
        if end < 0 or not _valid_port(host[end + 1:]):
            return False
        zone = host[:end].find("%25")
        if zone >= 0:
            return (_unescape(host[:zone], "host") is not None
                    and _unescape(host[zone:end], "zone") is not None
                    and _unescape(host[end:], "host") is not None)
    else:
        colon = host.rfind(":")
        if colon >= 0 and not _valid_port(host[colon:]):
            return False
    return _unescape(host, "host") is not None


def _valid_authority(authority: str) -> bool:
    at = authority.rfind("@")
    if at < 0:
        return _valid_host(authority)
    userinfo = authority[:at]
    if any(ch not in _USERINFO_OK for ch in userinfo):
        return False
    if _unescape(userinfo, "user") is None:
        return False
    return _valid_host(authority[at + 1:])


def _go_url_path(raw: str) -> str | None:
    """The decoded path of Go's `url.Parse(raw)`, or None where Go returns an error."""
    head, _, fragment = raw.partition("#")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in head):
        return None  # net/url: invalid control character in URL
    scheme, rest = "", head
    for i, ch in enumerate(head):
        if ch.isascii() and ch.isalpha():
            continue
        if ch.isascii() and (ch.isdigit() or ch in "+-."):
            if i == 0:
                break
            continue
        if ch == ":":
            if i == 0:
                return None  # missing protocol scheme
            scheme, rest = head[:i], head[i + 1:]
        break
    if rest.endswith("?") and rest.count("?") == 1:
        rest = rest[:-1]
    else:
        rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        if scheme:
            return "" if _unescape(fragment, "fragment") is not None else None  # opaque
        if ":" in rest.partition("/")[0]:
            return None  # first path segment in URL cannot contain colon
    if (scheme or not rest.startswith("///")) and rest.startswith("//"):
        authority, rest = rest[2:], ""
        slash = authority.find("/")
        if slash >= 0:
            authority, rest = authority[:slash], authority[slash:]
        if not _valid_authority(authority):
            return None
    path = _unescape(rest, "path")
    if path is None or _unescape(fragment, "fragment") is None:
        return None
    return path


# --- meta strings --------------------------------------------------------------------------

Pairs = Sequence[tuple[str, str]]


def parse_query(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """Go's `url.ParseQuery`: the (key, value) pairs in order, and the problems Go ignores.
    Segments split on `&`; one with `;` or a bad `%` escape is dropped; `+` is a space."""
    pairs: list[tuple[str, str]] = []
    problems: list[str] = []
    for segment in text.split("&"):
        if ";" in segment:
            problems.append(f"meta segment `{segment}` dropped: invalid semicolon separator")
            continue
        if segment == "":
            continue
        key, _, value = segment.partition("=")
        key_text, value_text = _unescape(key, "query"), _unescape(value, "query")
        if key_text is None or value_text is None:
            problems.append(f"meta segment `{segment}` dropped: invalid URL escape")
            continue
        pairs.append((key_text, value_text))
    return pairs, problems


def values_of(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Pairs as Go's url.Values: key → its values in order, keys in first-seen order."""
    values: dict[str, list[str]] = {}
    for key, value in pairs:
        values.setdefault(key, []).append(value)
    return values


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Pairs read with Go's `Values.Get`: each key's first value."""
    values: dict[str, str] = {}
    for key, value in pairs:
        values.setdefault(key, value)
    return values


def query_escape(text: str) -> str:
    """Go's `url.QueryEscape` (space → `+`, all but `A-Za-z0-9-_.~` percent-encoded)."""
    return quote_plus(text, safe="")


UNSAFE_META_CHARS = "&=+%#;"
_UNSAFE_META = re.compile("[&=+%#;]")
_UNSAFE_OTHER = re.compile("[+%#;]")  # the unsafe characters but the separators


def _raw_or_escaped(text: str) -> str:
    """Go's raw bytes, unless they would corrupt the meta when re-parsed."""
    return query_escape(text) if _UNSAFE_META.search(text) is not None else text


def unsafe_meta(pairs: Pairs) -> list[str]:
    """Problems for the keys and values that Go would have written raw and corrupted (§20.33)."""
    problems = []
    search = _UNSAFE_META.search
    for key, value in pairs:
        if search(key) is None and search(value) is None:
            continue  # the usual case, without building anything
        for what, text in (("key", key), ("value", value)):
            bad = "".join(dict.fromkeys(ch for ch in text if ch in UNSAFE_META_CHARS))
            if bad:
                problems.append(
                    f"meta {what} `{text}` of `{key}` holds `{bad}`: escaped "
                    "(Go writes it raw, which corrupts the meta)"
                )
    return problems


def encode_plain(pairs: Pairs) -> str:
    """Cron and child meta: Go concatenates `key=value` with `&` in the given order, unescaped."""
    if not isinstance(pairs, (list, tuple)):
        pairs = list(pairs)
    text = "&".join([f"{k}={v}" for k, v in pairs])
    if (text.count("=") == len(pairs) and text.count("&") == max(len(pairs) - 1, 0)
            and _UNSAFE_OTHER.search(text) is None):
        return text  # no key or value holds a character to escape (the usual case)
    return "&".join(f"{_raw_or_escaped(k)}={_raw_or_escaped(v)}" for k, v in pairs)


def sorted_pairs(pairs: Pairs) -> list[tuple[str, str]]:
    """Pairs in the order Go's `Values.Encode` writes them: keys sorted by bytes, each key's
    values in their order."""
    return [(key, value) for key, values in sorted(values_of(pairs).items()) for value in values]


def encode_sorted_unescaped(pairs: Pairs) -> str:
    """Batch and file meta: Go's `url.QueryUnescape(values.Encode())`, i.e. sorted keys with
    raw keys and values."""
    return "&".join(f"{_raw_or_escaped(k)}={_raw_or_escaped(v)}" for k, v in sorted_pairs(pairs))


def encode_sorted_escaped(pairs: Pairs) -> str:
    """Retry and failed-topic meta: Go's `values.Encode()` (sorted keys, query-escaped)."""
    return "&".join(f"{query_escape(k)}={query_escape(v)}" for k, v in sorted_pairs(pairs))


def set_pair(pairs: Pairs, key: str, value: str) -> list[tuple[str, str]]:
    """Go's `Values.Set`: every earlier value of `key` is replaced by this one."""
    out = [(k, v) for k, v in pairs if k != key]
    out.append((key, value))
    return out


__all__ = [
    "UTC", "ZERO_TIME", "is_zero", "go_date", "go_add", "go_add_date", "go_truncate",
    "format_hour", "RenderEnv", "default_env", "Rendered", "JsonRow", "go_float", "meta_get",
    "render", "render_text", "path_time", "info_time", "task_time", "parse_query", "values_of",
    "first_values", "query_escape", "UNSAFE_META_CHARS", "unsafe_meta", "encode_plain",
    "sorted_pairs", "encode_sorted_unescaped", "encode_sorted_escaped", "set_pair",
]  # fmt: skip
