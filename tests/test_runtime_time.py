"""runtime.timefmt: Go's TaskTime / InfoTime / PathTime (spec §9), tmpl.Parse + tmpl.Meta over the
Template AST (§8, §8.1), and the meta strings Go writes (§12, §13.4, §13.5, §15, §20.33)."""

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_template import parse_template
from flowlord.compiler.source import MappedText
from flowlord.runtime.timefmt import (
    ZERO_TIME,
    JsonRow,
    RenderEnv,
    encode_plain,
    encode_sorted_escaped,
    encode_sorted_unescaped,
    format_hour,
    go_float,
    info_time,
    is_zero,
    parse_query,
    path_time,
    render,
    render_text,
    task_time,
    unsafe_meta,
)

UTC = timezone.utc
ENV = RenderEnv(hostname="flowlord-7f9c-abcde", new_uuid=lambda: "0a1b2c3d")
T = datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)


def utc(*fields) -> datetime:
    return datetime(*fields, tzinfo=UTC)


def tmpl(text: str):
    return parse_template(MappedText.verbatim("<t>", text, 0), Sink())


# --- InfoTime -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "info, expected",
    [
        # each pattern
        ("?time=2020-03-05T11:45:10Z", utc(2020, 3, 5, 11, 45, 10)),
        ("?timestamp=2020-03-05T11:45:10Z", utc(2020, 3, 5, 11, 45, 10)),
        ("?day=2020-03-05T11:45:10Z", utc(2020, 3, 5, 11, 45, 10)),
        ("?hour=2020-03-05T11", utc(2020, 3, 5, 11)),
        ("?hour_utc=2020-03-05T11", utc(2020, 3, 5, 11)),
        ("?date=2020-03-05T11", utc(2020, 3, 5, 11)),
        ("?day=2020-03-05", utc(2020, 3, 5)),
        ("?date=2020-03-05", utc(2020, 3, 5)),
        # `day` is not an hour key, `time` needs a full Z timestamp
        ("?day=2020-03-05T15", utc(2020, 3, 5)),
        ("?time=2020-03-05T11", ZERO_TIME),
        # a trailing :MM:SSZ after an hour is ignored ... unless the key makes it a timestamp
        ("?hour=2020-03-05T11:45:10Z", utc(2020, 3, 5, 11)),
        # only a literal Z
        ("?time=2020-03-05T11:45:10+02:00", ZERO_TIME),
        ("?time=2020-03-05T11:45:10z", ZERO_TIME),
        # unanchored substrings
        ("?update=2020-01-02", utc(2020, 1, 2)),
        ("today:2020-01-02", utc(2020, 1, 2)),
        ("gs://bucket/date=2021-05-06/part-0.json", utc(2021, 5, 6)),
        ("?lasthour=2020-01-02T03", utc(2020, 1, 2, 3)),
        # priority order, whatever the position
        ("?day=2020-01-01&hour=2020-02-02T05", utc(2020, 2, 2, 5)),
        ("?hour=2020-02-02T05&time=2020-03-03T01:02:03Z", utc(2020, 3, 3, 1, 2, 3)),
        ("gs://b/2019/09/09/x.json?day=2020-01-01", utc(2020, 1, 1)),
        # within a pattern the leftmost wins
        ("?day=2020-01-01&date=2020-02-02", utc(2020, 1, 1)),
        # a match failing the calendar falls through to the next step
        ("?day=2020-02-30", ZERO_TIME),
        ("gs://b/2020/01/05/f.txt?day=2020-02-30", utc(2020, 1, 5)),
        ("?hour=2020-03-05T25&day=2020-03-04", utc(2020, 3, 4)),
        ("?time=2020-03-05T11:61:00Z&hour=2020-03-05T04", utc(2020, 3, 5, 4)),
        # the path: only the URL's path component, percent-decoded
        ("gs://bucket/path/2020/01/02/03/file.gz", utc(2020, 1, 2, 3)),
        ("/data/2020-01-02.csv", utc(2020, 1, 2)),
        ("gs://bucket-2020-01-02/x.txt", ZERO_TIME),
        ("gs://2020/01/02/x.txt", ZERO_TIME),  # host 2020, path /01/02/x.txt
        ("s3:2020/01/02/x.txt", ZERO_TIME),  # opaque: no path
        ("gs://b/2020%2F01%2F02/x", utc(2020, 1, 2)),
        ("?x=gs://b/2020/01/02/file.txt", ZERO_TIME),  # in the query, not the path
        # a URL Go cannot parse gives zero even with a date parameter
        ("gs://bucket/%zz/2020/01/02?day=2020-03-05", ZERO_TIME),
        ("gs://bucket:port/x?day=2020-03-05", ZERO_TIME),
        ("gs://{meta:bucket}/x?day=2020-03-05", ZERO_TIME),
        (":foo?day=2020-03-05", ZERO_TIME),
        ("a_b:c/x?day=2020-03-05", ZERO_TIME),  # first path segment with a colon
        ("?day=2020-03-05\n", ZERO_TIME),  # control character
        ("?day=2020-03-05#frag%zz", ZERO_TIME),
        # a bad escape in the query is not a parse error
        ("?x=%zz&day=2020-03-05", utc(2020, 3, 5)),
        # ASCII digits only
        ("?day=２０２０-01-01", ZERO_TIME),
        ("", ZERO_TIME),
    ],
)
def test_info_time(info, expected):
    assert info_time(info) == expected


# --- PathTime -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/a/b/20200102T030405.json", utc(2020, 1, 2, 3, 4, 5)),
        ("gs://b/2019/01/01/log-20200102T030405.json", utc(2020, 1, 2, 3, 4, 5)),  # base name wins
        ("/20200102T030405/file.txt", ZERO_TIME),  # a timestamp in a directory is ignored
        ("/x/2020/01/02/20201340T000000.txt", ZERO_TIME),  # base-name timestamp that fails: zero
        ("/2020/01/02/03/f.gz", utc(2020, 1, 2, 3)),
        ("/2020/01/02/f.gz", utc(2020, 1, 2)),
        ("/x/2020-01-02.txt", utc(2020, 1, 2)),
        ("/2020/01/f.gz", utc(2020, 1, 1)),
        # pattern order beats position
        ("/2020-05-05/2020/01/02/03/x", utc(2020, 1, 2, 3)),
        ("/2020-05-05/2020/01/x", utc(2020, 5, 5)),
        # a substring that fails to parse: zero, no fallback to the next pattern
        ("/2020/02/30/2020-01-05.txt", ZERO_TIME),
        ("/2020/13/x", ZERO_TIME),
        ("/2020/01/02/24/x", ZERO_TIME),
        # unanchored
        ("12345/06/07/08", utc(2345, 6, 7, 8)),
        # one-digit parts never match
        ("/2020/1/2/x", ZERO_TIME),
        ("gs://bucket/x", ZERO_TIME),
    ],
)
def test_path_time(path, expected):
    assert path_time(path) == expected


# --- TaskTime -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "meta, info, expected",
    [
        # §10: the cron meta wins (hour precision) over the info
        ({"cron": "2024-01-01T08"}, "?time=2024-01-01T05:45:00Z", utc(2024, 1, 1, 8)),
        ("workflow=f1.toml&cron=2024-01-01T08&job=t2", "?day=2023-01-01", utc(2024, 1, 1, 8)),
        ({"cron": ["2024-01-01T08", "2025-01-01T00"]}, "", utc(2024, 1, 1, 8)),
        # one-digit hours parse (Go's `15` is not zero-padded)
        ({"cron": "2024-01-01T8"}, "", utc(2024, 1, 1, 8)),
        # anything else falls back to the info
        ({"cron": "2024-01-01T08:00"}, "?day=2023-06-07", utc(2023, 6, 7)),
        ({"cron": "2024-01-01"}, "?day=2023-06-07", utc(2023, 6, 7)),
        ({"cron": "2024-02-30T08"}, "?day=2023-06-07", utc(2023, 6, 7)),
        ({"cron": "0 0 * * *"}, "gs://b/2020/01/02/f", utc(2020, 1, 2)),
        ({}, "?hour=2020-01-02T03", utc(2020, 1, 2, 3)),
        (None, "", ZERO_TIME),
        ("", "?day=2023-06-07", utc(2023, 6, 7)),
    ],
)
def test_task_time(meta, info, expected):
    assert task_time(meta, info) == expected


def test_zero_time():
    assert is_zero(ZERO_TIME) and is_zero(None)
    assert not is_zero(T)
    assert format_hour(ZERO_TIME) == "0001-01-01T00"


# --- templates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, expected",
    [
        ("?day={yyyy}-{mm}-{dd}T{hh}", "?day=2024-03-05T07"),
        ("{mm}", "03"),  # the MONTH
        ("{min}", "08"),
        ("{YYYY}/{MM}/{DD}/{HH}", "2024/03/05/07"),
        ("{Yyyy}-{yY}-{mM}-{Dd}-{hH}", "2024-24-03-05-07"),
        ("{yy}", "24"),
        ("{TS}", "20240305T070809"),
        ("{SLUG}|{HOUR_SLUG}|{DAY_SLUG}|{MONTH_SLUG}", "2024/03/05/07|2024/03/05/07|2024/03/05|2024/03"),
        # not tokens in Go: left literal
        ("{ts}{MIN}{Min}{UUID}{slug}{x}", "{ts}{MIN}{Min}{UUID}{slug}{x}"),
        # host and pod, any case
        ("{host}/{HOST}/{pod}/{Pod}", "flowlord-7f9c-abcde/flowlord-7f9c-abcde/7f9c-abcde/7f9c-abcde"),
        # only the first lower-case {uuid}
        ("{uuid}-{uuid}", "0a1b2c3d-{uuid}"),
        ("{UUID}-{uuid}", "{UUID}-0a1b2c3d"),
        # after the first `#` only meta tokens are filled
        ("?day={dd}#{dd}{meta:k}{uuid}", "?day=05#{dd}v{uuid}"),
        ("?a={dd}#one#{hh}", "?a=05#one#{hh}"),
        # a `#` at index 0 is not a comment
        ("#{dd}", "#05"),
        ("{meta:k}/{dd}", "v/05"),
    ],
)
def test_render(template, expected):
    got = render(tmpl(template), T, {"k": "v"}, env=ENV)
    assert got.text == expected
    assert got.problems == ()
    # the raw-string renderer (Template= overrides, backloads) agrees
    assert render_text(template, T, {"k": "v"}, env=ENV).text == expected


def test_render_in_the_time_zone_of_t():
    t = datetime(2024, 3, 5, 23, 30, tzinfo=ZoneInfo("America/New_York"))
    assert render(tmpl("{yyyy}-{mm}-{dd}T{hh}:{min}"), t, env=ENV).text == "2024-03-05T23:30"


def test_pod_of_a_hostname_without_dashes():
    env = RenderEnv(hostname="worker", new_uuid=lambda: "x")
    assert render(tmpl("{pod}"), T, env=env).text == "worker"


def test_default_uuid_is_8_hex_characters():
    text = render(tmpl("{uuid}"), T).text
    assert len(text) == 8 and all(c in "0123456789abcdef" for c in text)


def test_meta_none_leaves_meta_tokens_literal():
    got = render(tmpl("?a={meta:a}&d={dd}"), T, None, env=ENV)
    assert got.text == "?a={meta:a}&d=05"
    assert got.keys == ()


def test_meta_keys_are_listed_per_token():
    got = render(tmpl("{meta:a}{meta:b}{meta:a}"), T, {"a": "1", "b": ["2", "3"]}, env=ENV)
    assert got.text == "121"
    assert got.keys == ("a", "b", "a")


def test_zero_time_keeps_the_template_and_reports_it():
    got = render(tmpl("?day={yyyy}-{mm}-{dd}&h={host}&f={meta:file}#{hh}"), ZERO_TIME,
                 {"file": "gs://x"}, env=ENV)
    assert got.text == "?day={yyyy}-{mm}-{dd}&h={host}&f=gs://x#{hh}"
    assert got.problems == ("no task time: time tokens left literal: {yyyy}, {mm}, {dd}, {host}",)
    raw = render_text("?day={yyyy}-{mm}-{dd}&h={host}&f={meta:file}#{hh}", ZERO_TIME, {"file": "gs://x"}, env=ENV)
    assert raw.text == got.text and raw.problems == got.problems
    # nothing to report without time tokens
    assert render(tmpl("{meta:file}"), ZERO_TIME, {"file": "a"}, env=ENV).problems == ()


def test_missing_meta_renders_empty_and_is_reported():
    got = render(tmpl("?a={meta:a}&b={meta:b}&a2={meta:a}"), T, {"b": ""}, env=ENV)
    assert got.text == "?a=&b=&a2="
    assert got.problems == ("meta key `a` is missing: `{meta:a}` rendered empty",)


@pytest.mark.parametrize(
    "value, rendered, problem",
    [
        ("george washington", "george washington", False),
        (1789.0, "1789", False),
        (1.5, "1.5", False),
        (12345678901234567890.0, "12345678901234567000", False),
        (1e-7, "0.0000001", False),
        (-0.0, "-0", False),
        (None, "", True),
        (True, "i~bool", True),
        ({"a": 1}, "i~map[string]interface {}", True),
        ([1], "i~[]interface {}", True),
    ],
)
def test_json_row_values(value, rendered, problem):
    got = render(tmpl("{meta:v}"), T, JsonRow(v=value), env=ENV)
    assert got.text == rendered
    assert bool(got.problems) is problem


def test_go_float():
    assert [go_float(v) for v in (0.0, 100.0, 2.5e20, 123.456)] == ["0", "100", "250000000000000000000", "123.456"]


# --- meta strings ---------------------------------------------------------------------------------

CRON_META = [("workflow", "f1.toml"), ("cron", "2024-01-15T00"), ("job", "t2")]
FILE_META = [("workflow", "sub/f.toml"), ("file", "gs://b/2024/01/15/x y.txt"), ("filename", "x y.txt")]


def test_encode_plain_keeps_order_and_raw_bytes():
    assert encode_plain(CRON_META) == "workflow=f1.toml&cron=2024-01-15T00&job=t2"
    assert encode_plain([("workflow", "sub/f.toml"), ("cron", "2024-01-15T00")]) == "workflow=sub/f.toml&cron=2024-01-15T00"


def test_encode_sorted_unescaped_is_sorted_and_raw():
    assert encode_sorted_unescaped(CRON_META) == "cron=2024-01-15T00&job=t2&workflow=f1.toml"
    assert encode_sorted_unescaped(FILE_META) == (
        "file=gs://b/2024/01/15/x y.txt&filename=x y.txt&workflow=sub/f.toml"
    )
    # repeated keys keep their values' order
    assert encode_sorted_unescaped([("b", "2"), ("a", "1"), ("b", "0")]) == "a=1&b=2&b=0"


def test_encode_sorted_escaped_is_go_values_encode():
    assert encode_sorted_escaped(CRON_META + [("retry", "1")]) == (
        "cron=2024-01-15T00&job=t2&retry=1&workflow=f1.toml"
    )
    assert encode_sorted_escaped(FILE_META) == (
        "file=gs%3A%2F%2Fb%2F2024%2F01%2F15%2Fx+y.txt&filename=x+y.txt&workflow=sub%2Ff.toml"
    )
    assert encode_sorted_escaped([("k", "a~b_c-d.e!*'()é")]) == "k=a~b_c-d.e%21%2A%27%28%29%C3%A9"


@pytest.mark.parametrize(
    "value, plain",
    [
        ("a&b", "k=a%26b"),
        ("a=b", "k=a%3Db"),
        ("a+b", "k=a%2Bb"),
        ("100%", "k=100%25"),
        ("x#y", "k=x%23y"),
        ("x;y", "k=x%3By"),
        ("a b&c", "k=a+b%26c"),
    ],
)
def test_values_that_would_corrupt_the_meta_are_escaped(value, plain):
    assert encode_plain([("k", value)]) == plain
    assert encode_sorted_unescaped([("k", value)]) == plain
    assert parse_query(plain)[0] == [("k", value)]
    assert unsafe_meta([("k", value)])


def test_parse_query_is_go_parse_query():
    pairs, problems = parse_query("a=1&&b=x+y&c=%2F&d;e=2&f=%zz&g&=h&a=3")
    assert pairs == [("a", "1"), ("b", "x y"), ("c", "/"), ("g", ""), ("", "h"), ("a", "3")]
    assert len(problems) == 2


_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@given(st.lists(st.tuples(_TEXT.filter(bool), _TEXT), max_size=6))
def test_meta_round_trips(pairs):
    """Whatever the values, the meta parses back to them; without `& = + % # ;` the bytes are
    Go's raw bytes."""
    for encode in (encode_plain, encode_sorted_unescaped, encode_sorted_escaped):
        decoded, problems = parse_query(encode(pairs))
        assert problems == []
        assert sorted(decoded) == sorted(pairs)
    if not unsafe_meta(pairs):
        assert encode_plain(pairs) == "&".join(f"{k}={v}" for k, v in pairs)
