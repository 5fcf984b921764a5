"""Go durations (`time.ParseDuration`) for `offset`, `for`, `retry_delay` and `@every`.

grammar/duration.lark gives the shape (sign, then number/unit pairs) with token positions; the
checks Go makes after its scan (unit table, the bare `0`, int64 overflow, the float arithmetic
of fractions) are done here, so every problem gets a caret on its own characters.

Analysis works on the decoded string only and is memoised by text; positions are relative and
become file spans through the caller's MappedText.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Lark, Transformer, UnexpectedInput

from . import codes
from .ast import Duration
from .diagnostics import Sink
from .grammar import parser
from .source import MappedText

__all__ = ["parse_duration", "format_duration", "NANOSECOND", "SECOND", "MINUTE", "HOUR"]

NANOSECOND = 1
MICROSECOND = 1_000
MILLISECOND = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

_UNITS = {
    "ns": NANOSECOND,
    "us": MICROSECOND,
    "\u00b5s": MICROSECOND,  # µs, micro sign
    "\u03bcs": MICROSECOND,  # μs, Greek mu
    "ms": MILLISECOND,
    "s": SECOND,
    "m": MINUTE,
    "h": HOUR,
}
_INT64_MAX = (1 << 63) - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_SPACE = re.compile(r"\s+")
_DIGITS_DOT = frozenset("0123456789.")

# Units people write that Go does not know: (nanoseconds or None, why).
_WEEK = (7 * DAY, "Go durations have no week unit")
_DAY = (DAY, "Go durations have no day unit")
_YEAR = (365 * DAY, "Go durations have no year unit")
_MONTH = (None, "Go durations have no month unit")
_ALIASES: dict[str, tuple[int | None, str]] = {
    **dict.fromkeys(("d", "day", "days", "D"), _DAY),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks", "W"), _WEEK),
    **dict.fromkeys(("y", "yr", "yrs", "year", "years", "Y"), _YEAR),
    **dict.fromkeys(("mo", "mon", "month", "months"), _MONTH),
    **dict.fromkeys(("hr", "hrs", "hour", "hours"), (HOUR, "Go writes hours as `h`")),
    **dict.fromkeys(("min", "mins", "minute", "minutes"), (MINUTE, "Go writes minutes as `m`")),
    **dict.fromkeys(("sec", "secs", "second", "seconds"), (SECOND, "Go writes seconds as `s`")),
    **dict.fromkeys(("msec", "msecs", "millis"), (MILLISECOND, "Go writes milliseconds as `ms`")),
    **dict.fromkeys(("usec", "usecs", "micros"), (MICROSECOND, "Go writes microseconds as `us`")),
    **dict.fromkeys(("nsec", "nsecs", "nanos"), (NANOSECOND, "Go writes nanoseconds as `ns`")),
    "H": (HOUR, "Go units are lower-case"),
    "S": (SECOND, "Go units are lower-case"),
    "MS": (MILLISECOND, "Go units are lower-case"),
    "US": (MICROSECOND, "Go units are lower-case"),
    "NS": (NANOSECOND, "Go units are lower-case"),
    "M": (None, "Go units are lower-case and `m` means minutes; there is no month unit"),
}
_UNIT_LIST = "ns, us, ms, s, m and h"
_EXAMPLE = "write a Go duration such as `30s`, `1h30m` or `-4h`"

# (start, end, message, help): one BAD_DURATION each, positions relative to the text.
_Problem = tuple[int, int, str, "str | None"]


class _Shape(Transformer):
    """Inline transformer: (sign token or None, [(number token, unit token or None), ...])."""

    def start(self, children):
        if children[0].__class__ is not tuple:
            return children[0], children[1:]
        return None, children

    def part(self, children):
        return children[0], children[1] if len(children) > 1 else None


_SHAPE = _Shape()


def _parser() -> Lark:
    return parser("duration", transformer=_SHAPE)


def format_duration(ns: int) -> str:
    """A short Go-style spelling of a duration: `-48h`, `1h30m`, `1.5s`, `0s`."""
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    rest = abs(ns)
    hours, rest = divmod(rest, HOUR)
    minutes, rest = divmod(rest, MINUTE)
    seconds, fraction = divmod(rest, SECOND)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if minutes else ""
    if fraction:
        if not (hours or minutes or seconds):
            for unit, size in (("ms", MILLISECOND), ("us", MICROSECOND)):
                if fraction % size == 0:
                    return f"{sign}{fraction // size}{unit}"
            if fraction < MICROSECOND:
                return f"{sign}{fraction}ns"
        out += f"{seconds}.{fraction:09d}".rstrip("0") + "s"
    elif seconds:
        out += f"{seconds}s"
    return sign + out


def _number_value(number: str, unit: int) -> int | None:
    """Go's arithmetic for one `<number><unit>` (leadingInt, leadingFraction, float64 scale);
    None on overflow."""
    whole, _, fraction = number.partition(".")
    v = int(whole) if whole else 0
    if v > (1 << 63) or v > (1 << 63) // unit:
        return None
    v *= unit
    f, scale = 0, 1.0
    for ch in fraction:
        if f > _INT64_MAX // 10:
            break  # Go stops taking digits once more would overflow
        y = f * 10 + ord(ch) - 48
        if y > (1 << 63):
            break
        f, scale = y, scale * 10
    if f > 0:
        v += int(float(f) * (float(unit) / scale))
        if v > (1 << 63):
            return None
    return v


def _unknown_unit(text: str, what: str, unit) -> tuple[_Problem, str | None]:
    """The problem for a unit Go does not know, and the reason to put before a suggested
    rewrite (None when no rewrite applies)."""
    u = unit.value
    space = _SPACE.search(u)
    if space is not None:
        start, end = unit.start_pos + space.start(), unit.start_pos + space.end()
        if end == len(text):
            help = "remove the trailing space"
        else:
            joined = _SPACE.sub("", text)
            help = "a Go duration has no spaces (a raw + in a rule also becomes a space)"
            if _go_parse(joined) is not None:
                help += f": write `{joined}`"
        return (start, end, f"unexpected space in the `{what}` duration `{text}`", help), None
    message = f"unknown unit `{u}` in the `{what}` duration `{text}`"
    alias = _ALIASES.get(u)
    if alias is None:
        return (unit.start_pos, unit.end_pos, message, f"Go duration units are {_UNIT_LIST}"), None
    why = alias[1]
    return (unit.start_pos, unit.end_pos, message, why), (why if alias[0] is not None else None)


def _go_parse(text: str) -> int | None:
    """Nanoseconds if Go would accept `text`, else None (no messages)."""
    ns, problems = _analyse(text, "", False)
    return None if problems else ns


def _with_aliases(sign, parts) -> int | None:
    """The total if every unknown unit were the alias it looks like, else None."""
    total = 0
    for number, unit in parts:
        if unit is None:
            return None
        size = _UNITS.get(unit.value)
        if size is None:
            size = _ALIASES.get(unit.value, (None, ""))[0]
            if size is None:
                return None
        value = _number_value(number.value, size)
        if value is None:
            return None
        total += value
    return -total if sign is not None and sign.value == "-" else total


@lru_cache(maxsize=1 << 16)
def _analyse(
    text: str, what: str, allow_integer_ns: bool
) -> tuple[int | None, tuple[_Problem, ...]]:
    """(nanoseconds, ()) if Go accepts `text`, else (None, problems)."""
    if text == "":
        return None, ((0, 0, f"`{what}` is empty", _EXAMPLE),)
    if allow_integer_ns and _INTEGER.fullmatch(text):
        # jbsmith7741/uri falls back to strconv.ParseInt: a plain integer is nanoseconds.
        value = int(text)
        if -(1 << 63) <= value <= _INT64_MAX:
            return value, ()
        return None, (
            (0, len(text), f"the `{what}` duration `{text}` is out of range",
             "a plain integer here is nanoseconds and must fit in 64 bits"),
        )
    try:
        sign, parts = _parser().parse(text)
    except UnexpectedInput as error:
        return None, (_shape_problem(text, what, allow_integer_ns, error),)

    # Go: after the sign, the exact string "0" is zero; any other number needs a unit.
    body = text[1:] if sign is not None else text
    if body == "0":
        return 0, ()
    problems: list[_Problem] = []
    rewrite: dict[int, str] = {}  # problem index -> reason, for unit aliases with a known size
    total: int | None = 0
    for number, unit in parts:
        if unit is None:
            message = f"missing unit after `{number.value}` in the `{what}` duration `{text}`"
            problems.append((number.start_pos, number.end_pos, message, "add a unit, e.g. `30s`"))
            continue
        size = _UNITS.get(unit.value)
        if size is None:
            problem, why = _unknown_unit(text, what, unit)
            if why is not None:
                rewrite[len(problems)] = why
            problems.append(problem)
            continue
        value = _number_value(number.value, size)
        if value is None or total is None:
            total = None
        else:
            total += value
            if total > (1 << 63):
                total = None
    if problems:
        if len(rewrite) == len(problems):
            fixed = _with_aliases(sign, parts)
            if fixed is not None and -(1 << 63) <= fixed <= _INT64_MAX:
                for i, why in rewrite.items():
                    start, end, message, _ = problems[i]
                    problems[i] = (start, end, message, f"{why}: write `{format_duration(fixed)}`")
        return None, tuple(problems)
    if total is not None and sign is not None and sign.value == "-":
        return -total, ()
    if total is None or total > _INT64_MAX:
        return None, (
            (0, len(text), f"the `{what}` duration `{text}` is out of range",
             "a Go duration holds at most 2562047h47m16.854775807s (about 292 years)"),
        )
    return total, ()


def _shape_problem(
    text: str, what: str, allow_integer_ns: bool, error: UnexpectedInput
) -> _Problem:
    """The only shape errors: nothing after the sign, or not starting with a number."""
    token = getattr(error, "token", None)
    if token is not None and token.type == "$END":
        pos = len(text)
    else:
        pos = error.pos_in_stream if error.pos_in_stream is not None else 0
    if pos >= len(text):
        return (0, len(text), f"the `{what}` duration `{text}` has no number after the sign",
                "write a number and a unit after the sign, e.g. `-4h`")
    if text[pos].isspace():
        end = _SPACE.match(text, pos).end()
        rest = text[end:]
        valid = _go_parse(rest) is not None or (
            allow_integer_ns and _INTEGER.fullmatch(rest) is not None
        )
        if pos == 0 and text[0] == " " and rest and rest[0] not in "+-" and valid:
            return (0, end, f"the `{what}` duration `{text}` starts with a space",
                    f"a raw + in a rule means a space; write %2B{rest} or {rest}")
        return (pos, end, f"unexpected space in the `{what}` duration `{text}`",
                "a Go duration has no spaces")
    end = pos + 1
    while end < len(text) and not (text[end] in _DIGITS_DOT or text[end].isspace()):
        end += 1
    bad = text[pos:end]
    message = f"the `{what}` duration `{text}` must start with a number, not `{bad}`"
    return pos, end, message, _EXAMPLE


def parse_duration(
    text: MappedText, sink: Sink, what: str, *, allow_integer_ns: bool = False
) -> Duration | None:
    """Parse `text` as Go's time.ParseDuration would; emit BAD_DURATION and return None if Go
    would reject it. `what` names the key in messages; with allow_integer_ns a plain integer is
    nanoseconds (jbsmith7741/uri's fallback for offset and for)."""
    nanoseconds, problems = _analyse(text.text, what, allow_integer_ns)
    if problems:
        for start, end, message, help in problems:
            sink.emit(codes.BAD_DURATION.at(text.span(start, end), message, help=help))
        return None
    return Duration(span=text.whole(), text=text.text, nanoseconds=nanoseconds)
