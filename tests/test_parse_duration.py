"""Go durations: time.ParseDuration's exact rules, carets on the offending characters, and the
uri decoder's integer-nanoseconds fallback.

Columns in the tables are 1-based and the end column is exclusive, as in Lark and SARIF."""

import pytest

from flowlord.compiler import codes
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_duration import HOUR, MINUTE, SECOND, format_duration, parse_duration
from flowlord.compiler.source import MappedText


def mapped(text: str) -> MappedText:
    return MappedText.verbatim("<t>", text, 0)


def run(text: str, what: str = "offset", **options):
    sink = Sink()
    return parse_duration(mapped(text), sink, what, **options), sink.sorted()


@pytest.mark.parametrize(
    "text, nanoseconds",
    [
        ("0", 0),
        ("-0", 0),
        ("+0", 0),
        ("0s", 0),
        ("30s", 30 * SECOND),
        ("1h30m", 90 * MINUTE),
        ("-4h", -4 * HOUR),
        ("+4h", 4 * HOUR),
        ("1.5h", 90 * MINUTE),
        (".5h", 30 * MINUTE),
        ("1.h", HOUR),
        ("1h1h", 2 * HOUR),  # Go allows a unit twice
        ("300ms", 300_000_000),
        ("2us", 2_000),
        ("2\u00b5s", 2_000),  # µ micro sign
        ("2\u03bcs", 2_000),  # μ Greek mu
        ("7ns", 7),
        ("1h2m3s4ms5us6ns", HOUR + 2 * MINUTE + 3 * SECOND + 4_000_000 + 5_000 + 6),
        ("1.0000000001h", 3_600_000_000_360),  # Go's float64 arithmetic for fractions
        ("0.000000001s", 1),
        ("9223372036854775807ns", 2**63 - 1),
        ("-9223372036854775808ns", -(2**63)),
        ("2562047h47m16.854775807s", 2**63 - 1),
        ("007s", 7 * SECOND),
    ],
)
def test_good_durations(text, nanoseconds):
    duration, diagnostics = run(text)
    assert diagnostics == []
    assert duration.nanoseconds == nanoseconds
    assert duration.text == text
    assert (duration.span.start, duration.span.end) == (0, len(text))


@pytest.mark.parametrize(
    "text, col, end_col, help_part",
    [
        ("", 1, 1, "Go duration"),
        ("1", 1, 2, "add a unit, e.g. `30s`"),
        ("00", 1, 3, "add a unit"),
        ("1h30", 3, 5, "add a unit"),
        ("1.5.5h", 1, 4, "add a unit"),
        ("-2d", 3, 4, "Go durations have no day unit: write `-48h`"),
        ("1d12h", 2, 3, "no day unit: write `36h`"),
        ("2w", 2, 3, "no week unit: write `336h`"),
        ("5min", 2, 5, "write `5m`"),
        ("1H", 2, 3, "lower-case: write `1h`"),
        ("2dd", 2, 4, "units are ns, us, ms, s, m and h"),
        (" 4h", 1, 2, "a raw + in a rule means a space; write %2B4h or 4h"),
        ("4h ", 3, 4, "remove the trailing space"),
        ("1h 30m", 3, 4, "write `1h30m`"),
        ("-", 1, 2, "after the sign"),
        ("--1h", 2, 3, "Go duration"),
        ("h", 1, 2, "Go duration"),
        ("abc", 1, 4, "Go duration"),
        (".s", 1, 3, "Go duration"),
        ("1,5h", 2, 3, "units are"),  # Go reads `,` as the unit of `1`
        ("9223372036854775808ns", 1, 22, "at most"),
        ("2562048h", 1, 9, "at most"),
        ("99999999999999999999h", 1, 22, "at most"),
    ],
)
def test_bad_durations(text, col, end_col, help_part):
    duration, diagnostics = run(text)
    assert duration is None
    assert [d.code for d in diagnostics] == [codes.BAD_DURATION.id]
    (diagnostic,) = diagnostics
    assert (diagnostic.span.start + 1, diagnostic.span.end + 1) == (col, end_col)
    assert help_part in diagnostic.help
    assert "`offset`" in diagnostic.message
    assert not diagnostic.message[0].isupper() and not diagnostic.message.endswith(".")


def test_every_problem_is_reported():
    duration, diagnostics = run("1d2x3")
    assert duration is None
    assert [(d.span.start, d.span.end) for d in diagnostics] == [(1, 2), (3, 4), (4, 5)]


def test_what_names_the_key():
    _, (diagnostic,) = run("5", what="retry_delay")
    assert "`retry_delay`" in diagnostic.message


@pytest.mark.parametrize(
    "text, allowed, nanoseconds",
    [
        ("30", True, 30),
        ("-5", True, -5),
        ("+5", True, 5),
        ("9223372036854775807", True, 2**63 - 1),
        ("4h", True, 4 * HOUR),
        ("0", False, 0),
        ("30", False, None),
        ("9223372036854775808", True, None),
        (" 4", True, None),
    ],
)
def test_integer_nanoseconds(text, allowed, nanoseconds):
    duration, diagnostics = run(text, allow_integer_ns=allowed)
    if nanoseconds is None:
        assert duration is None and [d.code for d in diagnostics] == [codes.BAD_DURATION.id]
    else:
        assert diagnostics == [] and duration.nanoseconds == nanoseconds


def test_plus_hint_for_integer_offsets():
    _, (diagnostic,) = run(" 4", allow_integer_ns=True)
    assert diagnostic.help == "a raw + in a rule means a space; write %2B4 or 4"


def test_spans_map_through_escapes():
    # The TOML string "\u002D2d" decodes to "-2d": the `-` took six characters in the file.
    file_text = 'x = "\\u002D2d"'
    decoded = "-2d"
    offsets = [5, 11, 12, 13]  # where each decoded character starts, then the end
    text = MappedText("<t>", decoded, offsets)
    sink = Sink()
    assert parse_duration(text, sink, "offset") is None
    (diagnostic,) = sink.sorted()
    assert file_text[diagnostic.span.start : diagnostic.span.end] == "d"
    good = parse_duration(MappedText("<t>", "1h", [20, 26, 27]), sink, "for")
    assert (good.span.start, good.span.end) == (20, 27)


@pytest.mark.parametrize(
    "nanoseconds, text",
    [(0, "0s"), (-48 * HOUR, "-48h"), (90 * MINUTE, "1h30m"), (1_500_000_000, "1.5s"), (500_000_000, "500ms"),
     (1_000, "1us"), (7, "7ns"), (HOUR + 1, "1h0.000000001s")],
)  # fmt: skip
def test_format_duration(nanoseconds, text):
    assert format_duration(nanoseconds) == text
