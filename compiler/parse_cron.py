"""Cron expressions as robfig/cron v3 reads them with flowlord's parser options
(SecondOptional | Minute | Hour | Dom | Month | Dow | Descriptor).

The outer layer follows robfig's `Parser.Parse` step by step (the `TZ=`/`CRON_TZ=` prefix up to
the first space, descriptors, the split on Go whitespace, 5 or 6 fields); each field is parsed
with grammar/cron.lark and judged against its bounds and names. Every problem in every field is
reported at its own characters, and nothing is returned when there was an error.

Analysis works on the decoded string only and is memoised (per expression and per field);
positions are relative and become file spans through the caller's MappedText.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import NamedTuple

from lark import Lark, Token, Transformer, UnexpectedInput

from . import codes
from .ast import CronField, CronSpec
from .diagnostics import Label, Sink
from .grammar import parser
from .parse_duration import SECOND, format_duration, parse_duration
from .source import MappedText
from .suggest import nearest

__all__ = ["parse_cron"]

# Go's unicode.IsSpace, which strings.Fields and strings.TrimSpace use.
_GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_FIELD_RUN = re.compile(f"[^{_GO_SPACE}]+")
_NOT_SPACE = re.compile(f"[^{_GO_SPACE}]")
_SPACE_RUN = re.compile(f"[{_GO_SPACE}]+")
_TRIMMED = re.compile(f"[^{_GO_SPACE}](?:.*[^{_GO_SPACE}])?", re.S)  # strings.TrimSpace
_NUMBER = re.compile(r"\+?[0-9]+")  # strconv.Atoi, minus the `-` that splits ranges
_LETTERS = re.compile(r"[A-Za-z]+")
_ITEM_TOKEN = re.compile(r"[*?/-]|[^,\-/*?]+")

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_MONTH_NAMES = {name: i for i, name in enumerate(_MONTHS, 1)}
_DAY_NAMES = {name: i for i, name in enumerate(_DAYS)}
_FULL_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)
_MAX_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # Feb 29 counts


class _Kind(NamedTuple):
    name: str  # CronField.name
    label: str  # as said in messages
    low: int
    high: int
    names: dict[str, int] | None


_KINDS = (
    _Kind("second", "second", 0, 59, None),
    _Kind("minute", "minute", 0, 59, None),
    _Kind("hour", "hour", 0, 23, None),
    _Kind("day_of_month", "day-of-month", 1, 31, None),
    _Kind("month", "month", 1, 12, _MONTH_NAMES),
    _Kind("day_of_week", "day-of-week", 0, 6, _DAY_NAMES),
)
SECOND_F, MINUTE_F, HOUR_F, DOM_F, MONTH_F, DOW_F = range(6)

_ORDER_5 = "minute hour day-of-month month day-of-week"
_ORDER_6 = "second minute hour day-of-month month day-of-week"

# Descriptors and the six fields robfig builds for them (seconds first).
_DESCRIPTORS = {
    "@yearly": ("0", "0", "0", "1", "1", "*"),
    "@annually": ("0", "0", "0", "1", "1", "*"),
    "@monthly": ("0", "0", "0", "1", "*", "*"),
    "@weekly": ("0", "0", "0", "*", "*", "0"),
    "@daily": ("0", "0", "0", "*", "*", "*"),
    "@midnight": ("0", "0", "0", "*", "*", "*"),
    "@hourly": ("0", "0", "*", "*", "*", "*"),
}
_EVERY = "@every "
_DESCRIPTOR_LIST = (
    "@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly and @every <duration>"
)

_NO_SYNTAX = {
    "L": "the Go scheduler has no `L` (last day) syntax",
    "W": "the Go scheduler has no `W` (nearest weekday) syntax",
    "LW": "the Go scheduler has no `LW` (last weekday) syntax",
    "H": "the Go scheduler has no `H` (hashed value) syntax",
}
_NO_HASH = "the Go scheduler has no `#` (nth weekday of the month) syntax"

# A problem: (code, start, end, message, help, secondary labels as (start, end, message)).
_Problem = tuple


def _problem(code, start, end, message, help=None, secondary=()) -> _Problem:
    return (code, start, end, message, help, tuple(secondary))


def _shift(problems, by: int) -> list[_Problem]:
    return [
        (c, s + by, e + by, m, h, tuple((a + by, b + by, t) for a, b, t in sec))
        for c, s, e, m, h, sec in problems
    ]


# --- one field -----------------------------------------------------------------------------


class _Items(Transformer):
    """Inline transformer for grammar/cron.lark: a field becomes a list of
    (kind, first token, second token or None, step token or None)."""

    def field(self, items):
        return items

    def item(self, children):
        base = children[0]
        return (base[0], base[1], base[2], children[1] if len(children) > 1 else None)

    def any(self, children):
        return ("any", children[0], None)

    def single(self, children):
        return ("single", children[0], None)

    def range(self, children):
        return ("range", children[0], children[1])

    def step(self, children):
        return children[0]


_ITEMS = _Items()


def _parser() -> Lark:
    return parser("cron", transformer=_ITEMS, lexer="basic", start=("field", "item"))


class _FieldResult(NamedTuple):
    values: tuple[int, ...]
    star: bool
    problems: tuple[_Problem, ...]  # relative to the field's start


@lru_cache(maxsize=1 << 16)
def _field(kind_index: int, text: str) -> _FieldResult:
    kind = _KINDS[kind_index]
    try:
        items = _parser().parse(text, start="field")
    except UnexpectedInput:
        return _field_by_items(kind, text)
    values: set[int] = set()
    star = False
    problems: list[_Problem] = []
    for item in items:
        item_star = _item(kind, item, values, problems)
        star = star or item_star
    if problems:
        return _FieldResult((), False, tuple(problems))
    return _FieldResult(tuple(sorted(values)), star, ())


def _field_by_items(kind: _Kind, text: str) -> _FieldResult:
    """The slow path after a syntax error: every comma-separated item on its own, so that each
    item's problem is reported (robfig also splits on commas first)."""
    problems: list[_Problem] = []
    seen_empty: set[tuple[int, int]] = set()
    start = 0
    pieces = text.split(",")
    for index, piece in enumerate(pieces):
        end = start + len(piece)
        if piece == "":
            # point at the comma that makes the empty item
            comma = (end, end + 1) if index < len(pieces) - 1 else (start - 1, start)
            if comma not in seen_empty:
                seen_empty.add(comma)
                problems.append(_problem(
                    codes.CRON_SYNTAX, *comma,
                    f"empty item in the {kind.label} field `{text}`",
                    "remove the extra comma",
                ))
        else:
            try:
                item = _parser().parse(piece, start="item")
            except UnexpectedInput as error:
                problems.extend(_shift([_syntax_problem(kind, piece, error)], start))
            else:
                item_problems: list[_Problem] = []
                _item(kind, item, set(), item_problems)
                problems.extend(_shift(item_problems, start))
        start = end + 1
    return _FieldResult((), False, tuple(problems))


def _item(kind: _Kind, item, values: set[int], problems: list[_Problem]) -> bool:
    """Check one item, add its values; True if it carries robfig's star bit."""
    form, first, second, step_token = item
    before = len(problems)
    step = 1
    if step_token is not None:
        step = _step(kind, step_token, problems)
    if form == "any":
        low, high = kind.low, kind.high
    else:
        low = _value(kind, first, problems)
        if form == "range":
            high = _value(kind, second, problems)
            if (high is None and step_token is None and kind.name == "day_of_week"
                    and second.value.lstrip("+") == "7" and low is not None):
                # `1-7`: robfig has no Sunday 7; say how to write the range
                a = first.value
                fixed = "0-6" if low == 0 else f"{a}-6,0" if low < 6 else f"{a},0"
                code, s, e, m, _, sec = problems[-1]
                problems[-1] = (code, s, e, m, f"Sunday is 0: write `{fixed}`", sec)
        elif step_token is not None:
            high = kind.high  # robfig: `N/step` means `N-max/step`
        else:
            high = low
        if form == "range" and low is not None and high is not None and low > high:
            problems.append(_bad_range(kind, first, second, low, high))
    if len(problems) > before or step is None or low is None or high is None:
        return False
    values.update(range(low, high + 1, step))
    return form == "any" and step == 1


def _step(kind: _Kind, token: Token, problems: list[_Problem]) -> int | None:
    text = token.value
    if _NUMBER.fullmatch(text):
        step = int(text)
        if step == 0:
            problems.append(_problem(
                codes.CRON_BAD_STEP, token.start_pos, token.end_pos,
                f"the step `{text}` in the {kind.label} field must be a positive number",
                "a step of 0 never advances; write `*/1` or `*` for every value",
            ))
            return None
        if step > (1 << 63) - 1:
            problems.append(_problem(
                codes.CRON_BAD_STEP, token.start_pos, token.end_pos,
                f"the step `{text}` in the {kind.label} field is too large",
            ))
            return None
        return step
    problems.append(_problem(
        codes.CRON_BAD_STEP, token.start_pos, token.end_pos,
        f"the step `{text}` in the {kind.label} field is not a number",
        _STEP_HELP,
    ))
    return None


def _range_text(kind: _Kind) -> str:
    return f"{kind.label} field ({kind.low}-{kind.high})"


def _value(kind: _Kind, token: Token, problems: list[_Problem]) -> int | None:
    text = token.value
    start, end = token.start_pos, token.end_pos
    if _NUMBER.fullmatch(text):
        value = int(text)
        if kind.low <= value <= kind.high:
            return value
        problems.append(_problem(
            codes.CRON_OUT_OF_RANGE, start, end,
            f"`{text}` is out of range for the {_range_text(kind)}",
            _range_help(kind, value),
        ))
        return None
    lower = text.lower()
    if kind.names is not None and lower in kind.names:
        return kind.names[lower]
    problems.append(_bad_word(kind, token))
    return None


def _range_help(kind: _Kind, value: int) -> str | None:
    if kind.name == "day_of_week" and value == 7:
        return "Sunday is 0: write `0` or `SUN`"
    if kind.name == "hour" and value == 24:
        return "midnight is hour 0"
    if kind.name in ("minute", "second") and value == 60:
        return f"the last {kind.name} is 59"
    if kind.name == "day_of_month" and value == 0:
        return "days of the month start at 1"
    if kind.name == "month" and value == 0:
        return "months start at 1 (`JAN`)"
    return None


def _bad_word(kind: _Kind, token: Token) -> _Problem:
    """A value that is neither a number nor a name of this field."""
    text = token.value
    start, end = token.start_pos, token.end_pos
    lower = text.lower()
    upper = text.upper()
    if "#" in text:
        hash_at = start + text.index("#")
        return _problem(codes.CRON_SYNTAX, hash_at, end,
                        f"`{text}` is not a valid value in the {kind.label} field", _NO_HASH)
    if _LETTERS.fullmatch(text):
        if upper in _NO_SYNTAX:
            return _problem(codes.CRON_UNKNOWN_NAME, start, end,
                            f"`{text}` is not a valid value in the {kind.label} field",
                            _NO_SYNTAX[upper])
        other = "month" if lower in _MONTH_NAMES else "day" if lower in _DAY_NAMES else None
        if other is not None:
            return _problem(codes.CRON_UNKNOWN_NAME, start, end,
                            f"`{text}` is a {other} name, not allowed in the {_range_text(kind)}",
                            _field_order_help())
        if kind.names is None:
            return _problem(codes.CRON_UNKNOWN_NAME, start, end,
                            f"`{text}` is not a number: the {_range_text(kind)} takes numbers only")
        noun = "month" if kind.names is _MONTH_NAMES else "day"
        first = "JAN-DEC" if noun == "month" else "SUN-SAT"
        return _problem(codes.CRON_UNKNOWN_NAME, start, end,
                        f"`{text}` is not a {noun} name or a number in the {kind.label} field "
                        f"({kind.low}-{kind.high} or {first})",
                        _suggest_name(text, kind.names))
    # digits and letters mixed: `15W`, `5L`, `L5`, or anything else Atoi rejects
    head = re.match(r"[0-9]+([A-Za-z]+)$", text)
    if head is not None:
        letters = head.group(1)
        at = start + head.start(1)
        return _problem(codes.CRON_SYNTAX, at, end,
                        f"`{text}` is not a number in the {kind.label} field",
                        _NO_SYNTAX.get(letters.upper(), "write a number without letters"))
    tail = re.match(r"([A-Za-z]+)[0-9]+$", text)
    if tail is not None and tail.group(1).upper() in _NO_SYNTAX:
        return _problem(codes.CRON_SYNTAX, start, end,
                        f"`{text}` is not a valid value in the {kind.label} field",
                        _NO_SYNTAX[tail.group(1).upper()])
    if text.upper().startswith(("TZ=", "CRON_TZ=")):
        return _problem(codes.CRON_SYNTAX, start, end,
                        f"`{text}` is not a valid value in the {kind.label} field",
                        "a time zone prefix is written `TZ=<zone>` or `CRON_TZ=<zone>`, "
                        "in capitals, at the very start")
    return _problem(codes.CRON_SYNTAX, start, end,
                    f"`{text}` is not a number in the {_range_text(kind)}")


def _field_order_help() -> str:
    return f"the fields are {_ORDER_5}, or {_ORDER_6} with 6 fields"


def _suggest_name(word: str, names: dict[str, int]) -> str | None:
    lower = word.lower()
    if len(lower) > 3 and lower[:3] in names:  # `Monday`, `january`
        match = lower[:3]
    else:
        match = nearest(lower, names)
    if match is None:
        return None
    return f"did you mean `{match if word.islower() else match.upper()}`?"


def _bad_range(kind: _Kind, first: Token, second: Token, low: int, high: int) -> _Problem:
    a, b = first.value, second.value
    named = kind.names is not None and _LETTERS.fullmatch(a) is not None
    if named:
        words = _MONTHS if kind.names is _MONTH_NAMES else _DAYS
        top, bottom = words[-1], words[0]
        if not a.islower():
            top, bottom = top.upper(), bottom.upper()
    else:
        top, bottom = str(kind.high), str(kind.low)
    head = a if low == kind.high else f"{a}-{top}"
    tail = b if high == kind.low else f"{bottom}-{b}"
    return _problem(
        codes.CRON_BAD_RANGE, first.start_pos, second.end_pos,
        f"the range `{a}-{b}` in the {kind.label} field starts after it ends",
        f"ranges do not wrap around; write a list: `{head},{tail}`",
    )


_RANGE_HELP = "write a range as `1-5`"
_STEP_HELP = "a step must be a positive number, e.g. `*/5`"


def _syntax_problem(kind: _Kind, item: str, error: UnexpectedInput) -> _Problem:
    """Turn Lark's error on one comma-free item into a message about that item: which token
    Lark stopped at, judged by the one or two tokens before it."""
    tokens = [(m.group(), m.start(), m.end()) for m in _ITEM_TOKEN.finditer(item)]
    bad = getattr(error, "token", None)
    if bad is not None and bad.type == "$END":
        pos = len(item)
    else:
        pos = error.pos_in_stream if error.pos_in_stream is not None else 0
    k = next((i for i, t in enumerate(tokens) if t[1] >= pos), len(tokens))
    tok = tokens[k][0] if k < len(tokens) else None
    start, end = tokens[min(k, len(tokens) - 1)][1:]  # at the end of the item: its last token
    prev = tokens[k - 1][0] if k > 0 else None
    prev2 = tokens[k - 2][0] if k > 1 else None
    where = f"in the {kind.label} field"
    code, message, help = codes.CRON_SYNTAX, f"unexpected `{tok}` {where}", None

    if tok is None and prev == "-":
        message, help = f"the range `{item}` {where} has no end", _RANGE_HELP
    elif tok is None and prev == "/":
        code, message = codes.CRON_BAD_STEP, f"`{item}` {where} has no step after `/`"
        help = "write a step as `*/5`"
    elif tok is None:
        message = f"`{item}` {where} is incomplete"
    elif tok == "-":
        after = tokens[k + 1][0] if k + 1 < len(tokens) else ""
        if prev is None and _NUMBER.fullmatch(after):
            end = tokens[k + 1][2]
            code = codes.CRON_OUT_OF_RANGE
            message = f"`-{after}` is out of range for the {_range_text(kind)}"
            help = "negative numbers are not allowed"
        elif prev is None:
            message, help = f"the range `{item}` {where} has no start", _RANGE_HELP
        elif prev in ("*", "?"):
            message = f"`{prev}` cannot start a range {where}"
            help = (f"the Go scheduler ignores everything after `{prev}-`; "
                    f"write `{prev}` or a range such as `1-5`")
        elif prev == "/":
            code, message = codes.CRON_BAD_STEP, f"negative step in `{item}` {where}"
            help = _STEP_HELP
        elif "-" in (prev, prev2):
            message = f"too many hyphens in `{item}` {where}"
            help = "a range has one start and one end, e.g. `1-5`"
        elif prev2 == "/":
            message = f"unexpected `-` after the step in `{item}` {where}"
            help = "the step comes last, e.g. `1-5/2`"
    elif tok == "/":
        if prev is None:
            message = f"`{item}` {where} has no range before `/`"
            help = "write `*/5` for every 5th value"
        elif prev == "-":
            message, help = f"the range in `{item}` {where} has no end", _RANGE_HELP
        elif "/" in (prev, prev2):
            message = f"too many slashes in `{item}` {where}"
            help = "an item takes one step, e.g. `*/5`"
    elif tok in ("*", "?"):
        if prev == "/":
            code, message = codes.CRON_BAD_STEP, f"the step `{tok}` {where} is not a number"
            help = _STEP_HELP
        elif prev == "-":
            message, help = f"`{tok}` cannot end a range {where}", _RANGE_HELP
        else:
            help = "separate list items with commas"
    elif prev in ("*", "?"):  # a value right after `*`
        help = f"write `*/{tok}` to step by {tok}, or `{tok}` alone"
    return _problem(code, start, end, message, help)


# --- the whole expression ------------------------------------------------------------------


class _Analysis(NamedTuple):
    problems: tuple[_Problem, ...]
    timezone: str | None
    descriptor: str | None
    every: tuple[int, int] | None  # the duration after `@every `
    fields: tuple[tuple[int, int, int, str, tuple[int, ...], bool], ...]


@cache
def _zone_ok(zone: str) -> bool:
    """time.LoadLocation: "" and "UTC" are UTC, "Local" is the local zone, the rest IANA names."""
    if zone in ("", "UTC", "Local"):
        return True
    if ".." in zone or zone.startswith(("/", "\\")):
        return False
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(zone)
        return True
    except Exception:  # ZoneInfoNotFoundError, ValueError, IsADirectoryError, …
        return False


@cache
def _zone_names() -> tuple[str, ...]:
    try:
        from zoneinfo import available_timezones

        return tuple(sorted(available_timezones()))
    except Exception:
        return ()


def _zone_help(zone: str) -> str:
    match = nearest(zone, _zone_names())
    if match is not None:
        return f"did you mean `{match}`?"
    return "use an IANA time zone name such as `UTC` or `America/New_York`"


@lru_cache(maxsize=1 << 16)
def _analyse(text: str) -> _Analysis:
    problems: list[_Problem] = []
    timezone = None
    body_start, body_end = 0, len(text)
    if text == "":
        problems.append(_problem(
            codes.CRON_FIELD_COUNT, 0, 0, "empty cron expression",
            f"write 5 fields ({_ORDER_5}) such as `0 0 * * *`, or a descriptor such as `@daily`",
        ))
        return _Analysis(tuple(problems), None, None, None, ())

    if text.startswith(("TZ=", "CRON_TZ=")):
        equals = text.index("=")
        space = text.find(" ")
        if space < 0:
            problems.append(_problem(
                codes.CRON_BAD_TIMEZONE, 0, len(text),
                f"the time zone prefix `{text}` is not followed by a schedule",
                "the Go scheduler panics here; put the schedule after a space, "
                f"e.g. `{text} 0 0 * * *`",
            ))
            return _Analysis(tuple(problems), None, None, None, ())
        zone = text[equals + 1 : space]
        other_space = _SPACE_RUN.search(zone)
        if other_space is not None:
            # `TZ=UTC\t0 0 * * *`: Go cuts at the first space only; the rest would be misread
            problems.append(_problem(
                codes.CRON_BAD_TIMEZONE, equals + 1, space,
                f"unknown time zone `{zone.encode('unicode_escape').decode()}`",
                "put a plain space after the time zone: "
                f"`{text[: equals + 1 + other_space.start()]} …`",
            ))
            return _Analysis(tuple(problems), None, None, None, ())
        if not _zone_ok(zone):
            problems.append(_problem(
                codes.CRON_BAD_TIMEZONE, equals + 1, space,
                f"unknown time zone `{zone}`", _zone_help(zone),
            ))
        timezone = zone or "UTC"
        # strings.TrimSpace(spec[i:])
        trimmed = _TRIMMED.search(text, space)
        if trimmed is None:
            body_start = body_end = len(text)
        else:
            body_start, body_end = trimmed.span()

    body = text[body_start:body_end]
    if body.startswith("@"):
        return _descriptor(text, body, body_start, body_end, problems, timezone)

    runs = [(m.start(), m.end()) for m in _FIELD_RUN.finditer(text, body_start, body_end)]
    count = len(runs)
    if count not in (5, 6):
        problems.append(_field_count(text, runs, timezone is not None))
        return _Analysis(tuple(problems), timezone, None, None, ())

    first_kind = 0 if count == 6 else 1
    fields = []
    if count == 5:
        at = runs[0][0]
        fields.append((SECOND_F, at, at, "0", (0,), False))
    for kind_index, (start, end) in enumerate(runs, first_kind):
        result = _field(kind_index, text[start:end])
        if result.problems:
            problems.extend(_shift(result.problems, start))
        fields.append((kind_index, start, end, text[start:end], result.values, result.star))

    if not problems:
        never = _never_fires(fields)
        if never is not None:
            problems.append(never)
    return _Analysis(tuple(problems), timezone, None, None, tuple(fields))


def _descriptor(text, body, start, end, problems, timezone) -> _Analysis:
    if body in _DESCRIPTORS:
        fields = tuple(
            (i, start, end, field_text, *_field(i, field_text)[:2])
            for i, field_text in enumerate(_DESCRIPTORS[body])
        )
        return _Analysis(tuple(problems), timezone, body, None, fields)
    if body.startswith(_EVERY) and _NOT_SPACE.search(body, len(_EVERY)) is not None:
        every = (start + len(_EVERY), end)
        return _Analysis(tuple(problems), timezone, "@every", every, ())

    word = body.split()[0] if body.split() else body
    if word == "@every":
        message = "`@every` needs a duration"
        help = "write the interval after a space, e.g. `@every 1h30m`"
    elif word in _DESCRIPTORS:
        rest = body[len(word):]
        if rest.strip() == "":
            message = f"unexpected whitespace after the descriptor `{word}`"
            help = "remove the trailing whitespace: the Go scheduler compares descriptors exactly"
        else:
            message = f"unexpected text after the descriptor `{word}`"
            help = f"a descriptor stands alone: write `{word}`"
    else:
        message = f"unknown descriptor `{body}`"
        match = nearest(word, [*_DESCRIPTORS, "@every"])
        if match is not None and match != word:
            help = f"did you mean `{match}`?"
            if match.lower() == word.lower():
                help = f"descriptors are case-sensitive: {help}"
        else:
            help = f"the Go scheduler has no `{word}`; descriptors are {_DESCRIPTOR_LIST}"
    problems.append(_problem(codes.CRON_BAD_DESCRIPTOR, start, end, message, help))
    return _Analysis(tuple(problems), timezone, None, None, ())


def _field_count(text: str, runs: list[tuple[int, int]], has_timezone: bool) -> _Problem:
    count = len(runs)
    message = (
        f"found {count} field{'s' if count != 1 else ''}, expected 5 ({_ORDER_5}) "
        f"or 6 ({_ORDER_6})"
    )
    help = None
    if count == 7:
        last = text[runs[-1][0] : runs[-1][1]]
        if re.fullmatch(r"(\*|\?|[0-9]{4}([-/,][0-9]{1,4})*)", last):
            help = f"the Go scheduler has no year field: remove `{last}`"
        else:
            help = "remove a field; the Go scheduler takes at most 6, seconds first"
    elif count == 1 and text[runs[0][0]] == "@" and not has_timezone:
        help = "a descriptor must be the very first character: remove the whitespace before it"
    elif count == 0:
        help = "write the schedule after the time zone, e.g. `TZ=UTC 0 0 * * *`"
    elif count < 5:
        help = "write `*` for any value in the fields you do not need"
    return _problem(codes.CRON_FIELD_COUNT, 0, len(text), message, help)


def _never_fires(fields) -> _Problem | None:
    """robfig's dayMatches: with a star in dom or dow a day must match both, else either. Only a
    restricted dom with a star dow can then match no date at all."""
    by_kind = {f[0]: f for f in fields}
    dom, month, dow = by_kind[DOM_F], by_kind[MONTH_F], by_kind[DOW_F]
    if dom[5] or not dow[5]:
        return None
    days, months = dom[4], month[4]
    if any(day <= _MAX_DAYS[m - 1] for m in months for day in days):
        return None
    longest = max(_MAX_DAYS[m - 1] for m in months)
    names = [_FULL_MONTHS[m - 1] for m in months]
    if len(names) == 1:
        help = f"{names[0]} has at most {longest} days"
    else:
        help = f"{', '.join(names[:-1])} and {names[-1]} have at most {longest} days"
    return _problem(
        codes.CRON_NEVER_FIRES, dom[1], dom[2],
        f"day `{dom[3]}` never occurs in month `{month[3]}`, so this schedule never fires",
        help,
        [(month[1], month[2], "the months chosen here")],
    )


# --- the entry point -----------------------------------------------------------------------


def parse_cron(text: MappedText, sink: Sink) -> CronSpec | None:
    """Parse a cron expression as flowlord's robfig/cron parser would; emit every problem and
    return None if Go would reject it (or the schedule can never fire)."""
    analysis = _analyse(text.text)
    for code, start, end, message, help, secondary in analysis.problems:
        labels = tuple(Label(text.span(a, b), label) for a, b, label in secondary)
        sink.emit(code.at(text.span(start, end), message, help=help, secondary=labels))

    every = None
    if analysis.every is not None:
        every = parse_duration(text.slice(*analysis.every), sink, "@every")
        if every is None:
            return None
        _check_every(every, sink)
    if analysis.problems:
        return None

    fields = tuple(
        CronField(
            span=text.span(start, end), name=_KINDS[kind].name, text=field_text,
            values=values, star=star,
        )
        for kind, start, end, field_text, values, star in analysis.fields
    )
    return CronSpec(
        span=text.whole(), text=text.text, timezone=analysis.timezone,
        descriptor=analysis.descriptor, every=every, fields=fields,
    )


def _check_every(every, sink: Sink) -> None:
    ns = every.nanoseconds
    if ns < SECOND:
        sink.emit(codes.CRON_EVERY_SUBSECOND.at(
            every.span,
            f"`@every {every.text}` runs every second: "
            "the Go scheduler raises intervals below 1s to 1s",
            help="write `@every 1s`" if ns > 0 else "write a positive interval such as `@every 1m`",
        ))
    elif ns % SECOND:
        whole = format_duration(ns - ns % SECOND)
        sink.emit(codes.CRON_EVERY_SUBSECOND.at(
            every.span,
            f"`@every {every.text}` runs every {whole}: "
            "the Go scheduler drops fractions of a second",
            help=f"write `@every {whole}`",
        ))
