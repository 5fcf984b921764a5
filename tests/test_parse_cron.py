"""Cron expressions in robfig/cron v3's dialect (flowlord's parser options): expansion checked
against robfig's results (shared/spec/cron-dialect.md), and every error at its exact characters.

Columns in the tables are 1-based and the end column is exclusive, as in Lark and SARIF."""

import random

import pytest

from flowlord.compiler import codes
from flowlord.compiler.diagnostics import Severity, Sink
from flowlord.compiler.parse_cron import parse_cron
from flowlord.compiler.source import MappedText

ALL = object()  # every value of the field
SECONDS, MINUTES, HOURS = tuple(range(60)), tuple(range(60)), tuple(range(24))
DOMS, MONTHS, DOWS = tuple(range(1, 32)), tuple(range(1, 13)), tuple(range(7))
FULL = (SECONDS, MINUTES, HOURS, DOMS, MONTHS, DOWS)


def mapped(text: str) -> MappedText:
    return MappedText.verbatim("<t>", text, 0)


def run(text: str):
    sink = Sink()
    return parse_cron(mapped(text), sink), sink.sorted()


def expanded(spec):
    return tuple(
        ALL if field.values == FULL[i] else field.values for i, field in enumerate(spec.fields)
    )


@pytest.mark.parametrize(
    "text, values",
    [
        # robfig: 00:05, 00:10, 00:15, …
        ("0 */5 * * * *", ((0,), tuple(range(0, 60, 5)), ALL, ALL, ALL, ALL)),
        ("1 2 */6 4 5 SUN", ((1,), (2,), (0, 6, 12, 18), (4,), (5,), (0,))),
        ("0 0 * * *", ((0,), (0,), (0,), ALL, ALL, ALL)),  # 5 fields: seconds = 0
        ("0 0 1 * * *", ((0,), (0,), (1,), ALL, ALL, ALL)),  # flowlord README: daily 01:00
        ("0 9 * JAN-MAR MON-FRI", ((0,), (0,), (9,), ALL, (1, 2, 3), (1, 2, 3, 4, 5))),
        ("0 9 * jan,Jun Sun", ((0,), (0,), (9,), ALL, (1, 6), (0,))),
        ("? 0 9 * * *", (ALL, (0,), (9,), ALL, ALL, ALL)),  # `?` in any field
        ("0 ? 9 * * *", ((0,), ALL, (9,), ALL, ALL, ALL)),
        ("TZ=America/New_York 0 0 9 * * *", ((0,), (0,), (9,), ALL, ALL, ALL)),
        ("5/15 * * * *", ((0,), (5, 20, 35, 50), ALL, ALL, ALL, ALL)),  # N/step = N-max/step
        ("*/61 * * * *", ((0,), (0,), ALL, ALL, ALL, ALL)),
        ("09 08 * * *", ((0,), (9,), (8,), ALL, ALL, ALL)),
        ("0 0 * * MON-FRI/2", ((0,), (0,), (0,), ALL, ALL, (1, 3, 5))),
        ("0 0 1 JAN-DEC/3 *", ((0,), (0,), (0,), (1,), (1, 4, 7, 10), ALL)),
        ("0 0 * * 1,3-4,SAT", ((0,), (0,), (0,), ALL, ALL, (1, 3, 4, 6))),
        ("0 0 * * SUN-SAT", ((0,), (0,), (0,), ALL, ALL, ALL)),
        ("0 0 * * MON/2", ((0,), (0,), (0,), ALL, ALL, (1, 3, 5))),
        ("0 0 0 29 2 *", ((0,), (0,), (0,), (29,), (2,), ALL)),  # fires on 2028-02-29
        ("  0\t0 \n * *  *  ", ((0,), (0,), (0,), ALL, ALL, ALL)),  # any Go whitespace
        ("0 0 1,15 * *", ((0,), (0,), (0,), (1, 15), ALL, ALL)),
        ("+5 * * * *", ((0,), (5,), ALL, ALL, ALL, ALL)),  # strconv.Atoi takes a sign
        ("0 0 31 4,6 MON", ((0,), (0,), (0,), (31,), (4, 6), (1,))),  # OR: Mondays fire
    ],
)
def test_good_expressions(text, values):
    spec, diagnostics = run(text)
    assert diagnostics == []
    assert expanded(spec) == values
    assert [f.name for f in spec.fields] == [
        "second", "minute", "hour", "day_of_month", "month", "day_of_week"
    ]
    assert spec.text == text and spec.descriptor is None and spec.every is None


@pytest.mark.parametrize(
    "text, stars",
    [
        ("0 0 9 13 * FRI", (False, False)),  # OR
        ("0 0 9 * * FRI", (True, False)),  # AND
        ("0 0 9 ? * FRI", (True, False)),
        ("0 0 9 */1 * FRI", (True, False)),  # robfig keeps the star bit for step 1
        ("0 0 9 13 * */1", (False, True)),
        ("0 0 9 */2 * MON", (False, False)),
        ("0 0 9 1-31 * MON", (False, False)),
        ("0 0 9 13 * 0-6", (False, False)),
        ("0 0 9 *,5 * 1", (True, False)),
    ],
)
def test_star_bit(text, stars):
    spec, diagnostics = run(text)
    assert diagnostics == []
    assert (spec.fields[3].star, spec.fields[5].star) == stars


def test_five_field_spans_and_texts():
    spec, _ = run("0 */5 * * MON")
    assert [(f.text, f.span.start, f.span.end) for f in spec.fields] == [
        ("0", 0, 0), ("0", 0, 1), ("*/5", 2, 5), ("*", 6, 7), ("*", 8, 9), ("MON", 10, 13)
    ]
    assert (spec.span.start, spec.span.end) == (0, 13)


@pytest.mark.parametrize(
    "text, timezone",
    [
        ("TZ=America/New_York 0 0 9 * * *", "America/New_York"),
        ("CRON_TZ=Asia/Tokyo 0 9 * * *", "Asia/Tokyo"),
        ("TZ=UTC   @daily", "UTC"),
        ("TZ= 0 0 * * *", "UTC"),  # Go's LoadLocation("") is UTC
        ("0 0 * * *", None),
    ],
)
def test_timezones(text, timezone):
    spec, diagnostics = run(text)
    assert diagnostics == []
    assert spec.timezone == timezone


@pytest.mark.parametrize(
    "text, fields",
    [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
    ],
)
def test_descriptors(text, fields):
    spec, diagnostics = run(text)
    assert diagnostics == []
    equivalent, _ = run(fields)
    assert spec.descriptor == text
    assert [(f.name, f.values, f.star) for f in spec.fields] == [
        (f.name, f.values, f.star) for f in equivalent.fields
    ]
    assert all((f.span.start, f.span.end) == (0, len(text)) for f in spec.fields)


@pytest.mark.parametrize(
    "text, nanoseconds, span",
    [
        ("@every 1h30m", 5_400_000_000_000, (7, 12)),
        ("@every 90s", 90_000_000_000, (7, 10)),
        ("TZ=UTC @every 1s", 1_000_000_000, (14, 16)),
    ],
)
def test_every(text, nanoseconds, span):
    spec, diagnostics = run(text)
    assert diagnostics == []
    assert spec.descriptor == "@every" and spec.fields == ()
    assert spec.every.nanoseconds == nanoseconds
    assert (spec.every.span.start, spec.every.span.end) == span


@pytest.mark.parametrize(
    "text, col, end_col",
    [("@every 500ms", 8, 13), ("@every 0s", 8, 10), ("@every -1h", 8, 11), ("@every 1.5s", 8, 12)],
)
def test_every_below_a_second_warns(text, col, end_col):
    spec, diagnostics = run(text)
    assert spec is not None and spec.every is not None
    assert [(d.code, d.severity, d.span.start + 1, d.span.end + 1) for d in diagnostics] == [
        (codes.CRON_EVERY_SUBSECOND.id, Severity.WARNING, col, end_col)
    ]


S, R, T, C, N, G, D, Z, F, X, W = (
    codes.CRON_SYNTAX, codes.CRON_OUT_OF_RANGE, codes.CRON_BAD_STEP, codes.CRON_FIELD_COUNT,
    codes.CRON_UNKNOWN_NAME, codes.CRON_BAD_RANGE, codes.CRON_BAD_DESCRIPTOR,
    codes.CRON_BAD_TIMEZONE, codes.CRON_NEVER_FIRES, codes.BAD_DURATION, codes.CRON_EVERY_SUBSECOND,
)  # fmt: skip


@pytest.mark.parametrize(
    "text, expected",
    [
        # field count: the whole expression
        ("", [(C, 1, 1)]),
        ("0 */3 * *", [(C, 1, 10)]),
        ("0 0 12 * * ? 2026", [(C, 1, 18)]),
        ("JAN-MAR MON-FRI", [(C, 1, 16)]),
        (" @daily", [(C, 1, 8)]),
        ("TZ=UTC ", [(C, 1, 8)]),
        # out of range: exactly the number
        ("60 * * * *", [(R, 1, 3)]),
        ("0 24 * * *", [(R, 3, 5)]),
        ("0 0 0 * *", [(R, 5, 6)]),
        ("0 0 * 13 *", [(R, 7, 9)]),
        ("0 0 * 0 *", [(R, 7, 8)]),
        ("0 0 * * 7", [(R, 9, 10)]),
        ("0 0 * * 1-7", [(R, 11, 12)]),
        ("60 0 0 * * *", [(R, 1, 3)]),
        ("-1 * * * *", [(R, 1, 3)]),
        ("70/5 * * * *", [(R, 1, 3)]),
        ("99999999999999999999 * * * *", [(R, 1, 21)]),
        ("60 24 32 13 7", [(R, 1, 3), (R, 4, 6), (R, 7, 9), (R, 10, 12), (R, 13, 14)]),
        # steps
        ("*/0 * * * *", [(T, 3, 4)]),
        ("*/x * * * *", [(T, 3, 4)]),
        ("*/ * * * *", [(T, 2, 3)]),
        ("1-5/MON * * * *", [(T, 5, 8)]),
        ("*/* * * * *", [(T, 3, 4)]),
        # names
        ("0 0 * * MNO", [(N, 9, 12)]),
        ("0 0 * * monday", [(N, 9, 15)]),
        ("0 0 * JAN-MON *", [(N, 11, 14)]),
        ("JAN 0 * * *", [(N, 1, 4)]),
        ("0 0 L * *", [(N, 5, 6)]),
        ("0 0 * * H", [(N, 9, 10)]),
        ("0 0 15W * *", [(S, 7, 8)]),
        ("0 0 * * MON#1", [(S, 12, 14)]),
        ("0 0 * * 5L", [(S, 10, 11)]),
        # ranges
        ("0 22-2 * * *", [(G, 3, 7)]),
        ("0 0 * * FRI-MON", [(G, 9, 16)]),
        ("0 0 * NOV-FEB *", [(G, 7, 14)]),
        # other syntax
        ("1--2 * * * *", [(S, 3, 4)]),
        ("1-2-3 * * * *", [(S, 4, 5)]),
        ("*/2/3 * * * *", [(S, 4, 5)]),
        ("1,,2 * * * *", [(S, 3, 4)]),
        (",1 * * * *", [(S, 1, 2)]),
        ("1, * * * *", [(S, 2, 3)]),
        ("1- * * * *", [(S, 2, 3)]),
        ("/5 * * * *", [(S, 1, 2)]),
        ("*-5 * * * *", [(S, 2, 3)]),
        ("*5 * * * *", [(S, 2, 3)]),
        ("5* * * * *", [(S, 2, 3)]),
        ("1.5 * * * *", [(S, 1, 4)]),
        ("tz=UTC 0 0 * * *", [(S, 1, 7)]),
        # every error in one expression, each at its own field and character
        ("*/0 */x 1--2 */2/3 1,,2", [(T, 3, 4), (T, 7, 8), (S, 11, 12), (S, 17, 18), (S, 22, 23)]),
        ("1,2,99,100-3 * * * *", [(R, 5, 7), (R, 8, 11)]),
        ("0 0 * * 8-9/0", [(R, 9, 10), (R, 11, 12), (T, 13, 14)]),
        # never fires: the day-of-month field
        ("0 0 30 2 *", [(F, 5, 7)]),
        ("0 0 0 30 2 *", [(F, 7, 9)]),
        ("0 0 31 4,6 *", [(F, 5, 7)]),
        ("0 0 30,31 FEB ?", [(F, 5, 10)]),
        ("0 0 31 4,6 */1", [(F, 5, 7)]),
        # descriptors and @every
        ("@DAILY", [(D, 1, 7)]),
        ("@reboot", [(D, 1, 8)]),
        ("@every", [(D, 1, 7)]),
        ("@every ", [(D, 1, 8)]),
        ("@daily ", [(D, 1, 8)]),
        ("@daily 0", [(D, 1, 9)]),
        ("@every 1d", [(X, 9, 10)]),
        ("@every 5", [(X, 8, 9)]),
        ("@every  1h", [(X, 8, 9)]),
        # time zones
        ("TZ=UTC", [(Z, 1, 7)]),  # Go panics here
        ("TZ=UTC\t0 0 * * *", [(Z, 4, 9)]),  # Go cuts at the first space: zone "UTC\t0"
        ("TZ=UTC\t@daily", [(Z, 1, 14)]),  # no space at all: Go panics
        ("TZ=Mars/Base 0 0 * * *", [(Z, 4, 13)]),
        ("CRON_TZ=america/new_york @daily", [(Z, 9, 25)]),
        ("TZ=../etc/passwd 0 0 * * *", [(Z, 4, 17)]),
        ("TZ=Nowhere 0 0 * * 7", [(Z, 4, 11), (R, 20, 21)]),
    ],
)
def test_bad_expressions(text, expected):
    spec, diagnostics = run(text)
    assert spec is None
    assert [(d.code, d.span.start + 1, d.span.end + 1) for d in diagnostics] == [
        (code.id, col, end_col) for code, col, end_col in expected
    ]
    for d in diagnostics:
        assert not d.message[0].isupper() and not d.message.endswith("."), d.message


@pytest.mark.parametrize(
    "text, message_part, help",
    [
        ("0 0 * * 7", "`7` is out of range for the day-of-week field (0-6)", "Sunday is 0: write `0` or `SUN`"),
        ("0 0 * * 1-7", "day-of-week field", "Sunday is 0: write `1-6,0`"),
        ("60 * * * *", "`60` is out of range for the minute field (0-59)", None),
        ("0 0 * * MNO", "`MNO`", "did you mean `MON`?"),
        ("0 0 * * monday", "`monday`", "did you mean `mon`?"),
        ("0 0 * janaury *", "`janaury`", "did you mean `jan`?"),
        ("0 22-2 * * *", "`22-2` in the hour field", "ranges do not wrap around; write a list: `22-23,0-2`"),
        ("0 0 * * FRI-MON", "`FRI-MON`", "ranges do not wrap around; write a list: `FRI-SAT,SUN-MON`"),
        ("0 0 * * sat-mon", "`sat-mon`", "ranges do not wrap around; write a list: `sat,sun-mon`"),
        ("0 0 L * *", "`L`", "the Go scheduler has no `L` (last day) syntax"),
        ("0 0 15W * *", "`15W`", "the Go scheduler has no `W` (nearest weekday) syntax"),
        ("0 0 * * MON#1", "`MON#1`", "the Go scheduler has no `#` (nth weekday of the month) syntax"),
        ("0 0 30 2 *", "never fires", "February has at most 29 days"),
        ("0 0 31 4,6 *", "never fires", "April and June have at most 30 days"),
        ("0 0 12 * * ? 2026", "found 7 fields", "the Go scheduler has no year field: remove `2026`"),
        ("0 */3 * *", "found 4 fields, expected 5 (minute hour day-of-month month day-of-week)", None),
        ("@DAILY", "`@DAILY`", "descriptors are case-sensitive: did you mean `@daily`?"),
        ("@reboot", "`@reboot`", None),
        ("@every", "`@every` needs a duration", "write the interval after a space, e.g. `@every 1h30m`"),
        ("@every -2d", "unknown unit `d`", "Go durations have no day unit: write `-48h`"),
        ("@every  1h", "starts with a space", "a raw + in a rule means a space; write %2B1h or 1h"),
        ("TZ=UTC", "`TZ=UTC`", None),
        ("TZ=america/new_york 0 0 * * *", "unknown time zone `america/new_york`", "did you mean `America/New_York`?"),
    ],
)
def test_messages(text, message_part, help):
    _, diagnostics = run(text)
    assert len(diagnostics) == 1
    (d,) = diagnostics
    assert message_part in d.message
    if help is not None:
        assert d.help == help


def test_never_fires_labels_the_month_field():
    _, (d,) = run("0 0 31 4,6 *")
    assert [(label.span.start, label.span.end) for label in d.secondary] == [(7, 10)]


def _escaped(pieces):
    """A MappedText for a TOML string written with escapes: pieces are (decoded, as written)."""
    file_text, decoded, offsets = 'cron = "', "", []
    for char, written in pieces:
        offsets.append(len(file_text))
        decoded += char
        file_text += written
    offsets.append(len(file_text))
    return file_text + '"', MappedText("<t>", decoded, offsets)


def test_spans_map_through_escapes():
    # "0\u00200 31\t4,6 *\u0020*" — escaped spaces and a tab before the failing fields
    file_text, text = _escaped(
        [("0", "0"), (" ", "\\u0020"), ("0", "0"), (" ", " "), ("3", "3"), ("1", "1"),
         ("\t", "\\t"), ("4", "4"), (",", ","), ("6", "6"), (" ", "\\u0020"), ("*", "*")]
    )  # fmt: skip
    assert text.text == "0 0 31\t4,6 *"
    sink = Sink()
    assert parse_cron(text, sink) is None
    (d,) = sink.sorted()
    assert d.code == codes.CRON_NEVER_FIRES.id
    assert file_text[d.span.start : d.span.end] == "31"
    assert file_text[d.secondary[0].span.start : d.secondary[0].span.end] == "4,6"

    file_text, text = _escaped(
        [("0", "0"), (" ", "\\u0020"), ("0", "0"), (" ", "\\u0020"), ("*", "*"), (" ", " "),
         ("*", "*"), (" ", "\\t"), ("M", "\\u004D"), ("N", "N"), ("O", "O")]
    )  # fmt: skip
    sink = Sink()
    assert parse_cron(text, sink) is None
    (d,) = sink.sorted()
    assert d.code == codes.CRON_UNKNOWN_NAME.id
    assert file_text[d.span.start : d.span.end] == "\\u004DNO"

    file_text, text = _escaped([(c, c) for c in "@every "] + [("1", "1"), ("d", "\\u0064")])
    sink = Sink()
    assert parse_cron(text, sink) is None
    (d,) = sink.sorted()
    assert file_text[d.span.start : d.span.end] == "\\u0064"


def test_spans_are_file_offsets():
    sink = Sink()
    assert parse_cron(MappedText.verbatim("<t>", "0 0 * * 7", 100), sink) is None
    (d,) = sink.sorted()
    assert (d.span.path, d.span.start, d.span.end) == ("<t>", 108, 109)
    spec = parse_cron(MappedText.verbatim("<t>", "0 0 * * 1", 100), sink)
    assert (spec.span.start, spec.span.end) == (100, 109)
    assert (spec.fields[5].span.start, spec.fields[5].span.end) == (108, 109)


def test_same_text_twice_is_consistent():
    """Results are memoised by text; a second call still emits its diagnostics."""
    for _ in range(2):
        spec, diagnostics = run("0 0 * * 7")
        assert spec is None and [d.code for d in diagnostics] == [codes.CRON_OUT_OF_RANGE.id]


def test_never_raises_and_none_means_errors():
    rng = random.Random(7)
    alphabet = "0123456789 *?,-/LW#@HJANMONFRIjanTZ=\t.+xUTC"
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
        sink = Sink()
        spec = parse_cron(mapped(text), sink)
        assert (spec is None) == sink.has_errors(), text
        for d in sink.diagnostics:
            assert 0 <= d.span.start <= d.span.end <= len(text), text
