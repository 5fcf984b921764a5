"""The pcelvng/task message on the wire: exact bytes, parsing, times and meta strings."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from flowlord.runtime.task import (
    ALERT,
    COMPLETE,
    ERROR,
    RESULTS,
    WARN,
    BadMessage,
    Task,
    encode_plain,
    encode_sorted_escaped,
    encode_sorted_unescaped,
    format_time,
    new_task,
    parse_meta,
    parse_time,
)
from hypothesis import given
from hypothesis import strategies as st

UTC = timezone.utc
JAN15 = datetime(2024, 1, 15, tzinfo=UTC)
ID = "5d2a5a1c-3b4e-4f0a-9c55-2f1b0c9a7e11"


# --- exact bytes ---------------------------------------------------------------------------

EXACT = [
    (
        Task("task1", "t2", "?date=2024-01-15T00", "2024-01-15T00:00:00Z", ID,
             "workflow=f1.toml&cron=2024-01-15T00&job=t2"),
        '{"type":"task1","job":"t2","info":"?date=2024-01-15T00","created":"2024-01-15T00:00:00Z",'
        f'"id":"{ID}","meta":"workflow=f1.toml&cron=2024-01-15T00&job=t2"}}',
    ),
    # type and info always present; every other empty field omitted
    (Task("a"), '{"type":"a","info":""}'),
    (Task("a", info="x", msg="m"), '{"type":"a","info":"x","msg":"m"}'),
    (
        Task("a", "j", "i", "2024-01-15T00:00:00Z", "x", "m", "error", "boom",
             "2024-01-15T00:00:01Z", "2024-01-15T00:00:02Z"),
        '{"type":"a","job":"j","info":"i","created":"2024-01-15T00:00:00Z","id":"x","meta":"m",'
        '"result":"error","msg":"boom","started":"2024-01-15T00:00:01Z","ended":"2024-01-15T00:00:02Z"}',
    ),
    # no HTML escaping
    (Task("a", info="s3://b/p?x=1&y=<2>"), '{"type":"a","info":"s3://b/p?x=1&y=<2>"}'),
    # Go's escapes: short ones, \u00XX lowercase for other controls, DEL and non-ASCII literal
    (Task("a", info='q"b\\n\nr\rt\tb\bf\f\x00\x1f\x7fé✓'),
     '{"type":"a","info":"q\\"b\\\\n\\nr\\rt\\tb\\bf\\f\\u0000\\u001f\x7fé✓"}'),
    # U+2028 / U+2029 always escaped; a lone surrogate is not UTF-8: Go writes \ufffd
    (Task("a", info="x\u2028y\u2029z"), '{"type":"a","info":"x\\u2028y\\u2029z"}'),
    (Task("a", info="x\udc80y"), '{"type":"a","info":"x\\ufffdy"}'),
    (Task("a", info="😀\ufffd"), '{"type":"a","info":"😀\ufffd"}'),
]


@pytest.mark.parametrize("task,expected", EXACT)
def test_exact_bytes(task, expected):
    out = task.to_json()
    assert isinstance(out, bytes)
    assert out == expected.encode("utf-8")
    assert not out.endswith(b"\n") and b": " not in out and b", " not in out


def test_invalid_utf8_is_replaced_byte_by_byte_as_go_does():
    # \xe2\x82 is a cut 3-byte sequence: Go's DecodeRune reports each byte on its own
    task = Task.from_json(b'{"type":"a","info":"x\xe2\x82y\xffz"}')
    assert task.info == "x\ufffd\ufffdy\ufffdz"
    assert task.to_json() == '{"type":"a","info":"x\ufffd\ufffdy\ufffdz"}'.encode()
    # an encoded surrogate (ED A0 80) is invalid UTF-8 too
    assert Task.from_json(b'{"type":"a","info":"\xed\xa0\x80"}').info == "\ufffd" * 3


def test_unpaired_surrogate_escape_reads_as_replacement():
    assert Task.from_json(r'{"type":"a","info":"\ud800x"}').info == "\ufffdx"
    assert Task.from_json(r'{"type":"a","info":"\ud83d\ude00"}').info == "😀"


# --- parsing --------------------------------------------------------------------------------

def test_parse_ignores_unknown_keys_and_matches_keys_case_insensitively():
    task = Task.from_json('{"type":"a","extra":{"n":[1,2]},"Job":"j","INFO":"i","Result":"complete"}')
    assert task == Task("a", job="j", info="i", result="complete")
    # Go processes keys in order: the last spelling wins
    assert Task.from_json('{"type":"a","TYPE":"b"}').type == "b"
    assert Task.from_json('{"TYPE":"b","type":"a"}').type == "a"


def test_null_leaves_a_field_empty():
    assert Task.from_json('{"type":"a","job":null,"info":null}') == Task("a")


def test_unknown_result_is_accepted_here():
    assert Task.from_json('{"type":"a","result":"done"}').result == "done"
    assert RESULTS == {COMPLETE, ERROR, WARN, ALERT} == {"complete", "error", "warn", "alert"}


@pytest.mark.parametrize("raw,reason", [
    (b"", "not-json"),
    (b"not json", "not-json"),
    (b'{"type":"a"', "not-json"),
    (b'{"type":"a"} trailing', "not-json"),
    (b'{"type":"a","n":NaN}', "not-json"),
    (b'\xef\xbb\xbf{"type":"a"}', "not-json"),  # Go refuses a BOM
    (b"[1,2]", "not-object"),
    (b'"task"', "not-object"),
    (b"null", "not-object"),
    (b"{}", "missing-type"),
    (b'{"type":""}', "missing-type"),
    (b'{"type":null,"info":"x"}', "missing-type"),
    (b'{"job":"x"}', "missing-type"),
    (b'{"type":1}', "bad-field"),
    (b'{"type":"a","info":["x"]}', "bad-field"),
    (b'{"type":"a","created":false}', "bad-field"),
    (b'{"type":"a","Meta":{}}', "bad-field"),
])
def test_bad_messages(raw, reason):
    with pytest.raises(BadMessage) as info:
        Task.from_json(raw)
    assert info.value.reason == reason
    assert info.value.reason in BadMessage.REASONS
    assert str(info.value).startswith(reason)


def test_size_limit():
    body = b'{"type":"a","info":"' + b"x" * 100 + b'"}'
    assert Task.from_json(body, max_bytes=len(body)).info == "x" * 100
    with pytest.raises(BadMessage) as info:
        Task.from_json(body, max_bytes=len(body) - 1)
    assert info.value.reason == "too-large"
    big = b'{"type":"a","info":"' + b"x" * (1 << 20) + b'"}'
    with pytest.raises(BadMessage, match="too-large"):
        Task.from_json(big)  # 1 MiB by default
    with pytest.raises(BadMessage, match="too-large"):
        Task.from_json(big.decode())  # a str is measured in UTF-8 bytes
    assert Task.from_json('{"type":"é"}', max_bytes=13).type == "é"
    with pytest.raises(BadMessage, match="too-large"):
        Task.from_json('{"type":"é"}', max_bytes=12)


def test_parse_accepts_bytes_like_and_str():
    raw = EXACT[0][1]
    for data in (raw, raw.encode(), bytearray(raw.encode()), memoryview(raw.encode())):
        assert Task.from_json(data) == EXACT[0][0]


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)


@given(st.builds(Task, type=_text.filter(bool), job=_text, info=_text, created=_text, id=_text,
                 meta=_text, result=_text, msg=_text, started=_text, ended=_text))
def test_round_trip_and_agreement_with_a_json_reader(task):
    data = task.to_json()
    assert Task.from_json(data) == task
    decoded = json.loads(data)
    assert list(decoded) == [k for k in ("type", "job", "info", "created", "id", "meta", "result",
                                         "msg", "started", "ended")
                             if k in ("type", "info") or getattr(task, k)]
    assert all(decoded[k] == getattr(task, k) for k in decoded)


def test_new_task():
    task = new_task("task1", "t2", "?date=2024-01-15T00", "workflow=f1.toml", now=JAN15 + timedelta(microseconds=5))
    assert task.created == "2024-01-15T00:00:00Z"
    assert len(task.id) == 36 and task.id[14] == "4"  # a UUID v4
    assert new_task("t", now=JAN15).id != task.id
    kept = new_task("t", now=JAN15, id=ID)
    assert kept.id == ID and kept.result == "" and kept.info == ""
    assert task.replace(result="complete").result == "complete" and task.result == ""


# --- times ----------------------------------------------------------------------------------

def test_format_time():
    assert format_time(datetime(2024, 1, 15, 3, 4, 5, 999999, tzinfo=UTC)) == "2024-01-15T03:04:05Z"
    plus2 = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 1, 15, 1, 0, tzinfo=plus2)) == "2024-01-14T23:00:00Z"
    assert format_time(datetime(2024, 1, 15)) == "2024-01-15T00:00:00Z"  # naive is UTC
    assert format_time(datetime(1, 1, 1, tzinfo=UTC)) == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize("text,expected", [
    ("2024-01-15T00:00:00Z", datetime(2024, 1, 15, tzinfo=UTC)),
    ("2024-01-15T02:00:00+02:00", datetime(2024, 1, 15, tzinfo=UTC)),
    ("2024-01-14T19:30:00-04:30", datetime(2024, 1, 15, tzinfo=UTC)),
    ("2024-01-15T00:00:00.123456789Z", datetime(2024, 1, 15, 0, 0, 0, 123456, tzinfo=UTC)),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("text", ["", "2024-01-15", "2024-01-15 00:00:00Z", "2024-01-15T00:00:00",
                                  "2024-13-01T00:00:00Z", "2024-01-15T00:00:00+2:00", "x"])
def test_parse_time_refuses(text):
    with pytest.raises(ValueError):
        parse_time(text)


# --- meta -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text,pairs,dropped", [
    ("", [], []),
    ("workflow=f1.toml&cron=2024-01-15T00&job=t2",
     [("workflow", "f1.toml"), ("cron", "2024-01-15T00"), ("job", "t2")], []),
    ("a=1&&b=2&", [("a", "1"), ("b", "2")], []),  # empty segments are skipped, not dropped
    ("a=1;b=2&c=3", [("c", "3")], ["a=1;b=2"]),  # a `;` drops the whole segment
    ("a=x+y&b=%2B&c=%41%e2%9c%93", [("a", "x y"), ("b", "+"), ("c", "A✓")], []),
    ("a=%zz&b=%4&c=%&d=ok", [("d", "ok")], ["a=%zz", "b=%4", "c=%"]),
    ("%zz=1&k%20=v", [("k ", "v")], ["%zz=1"]),
    ("a&=v&b=1=2", [("a", ""), ("", "v"), ("b", "1=2")], []),
    ("a=1&a=2", [("a", "1"), ("a", "2")], []),
])
def test_parse_meta(text, pairs, dropped):
    meta, bad = parse_meta(text)
    assert list(meta) == pairs
    assert bad == dropped


def test_meta_lookups():
    meta, _ = parse_meta("a=1&b=2&a=3")
    assert meta.get("a") == "1" and meta.get_all("a") == ["1", "3"]
    assert meta.get("zz") == "" and meta.get("zz", "?") == "?"
    assert "b" in meta and "zz" not in meta and len(meta) == 3
    assert meta.keys() == ["a", "b"]
    assert list(meta.set("a", "9")) == [("b", "2"), ("a", "9")]  # url.Values.Set: one value left
    assert list(meta.set("c", "4")) == [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")]
    assert list(meta.without("a")) == [("b", "2")]
    assert list(meta) == [("a", "1"), ("b", "2"), ("a", "3")]  # unchanged: Meta is immutable


META = [("workflow", "f1.toml"), ("cron", "2024-01-15T00"), ("job", "t2"), ("retry", "1")]


def test_the_three_meta_shapes_are_reexported_from_timefmt():
    from flowlord.runtime import timefmt

    assert encode_plain is timefmt.encode_plain
    assert encode_sorted_escaped is timefmt.encode_sorted_escaped
    assert encode_sorted_unescaped is timefmt.encode_sorted_unescaped
    assert encode_plain(META[:3]) == "workflow=f1.toml&cron=2024-01-15T00&job=t2"
    assert encode_sorted_escaped(META + [("file", "gs://b/x y")]) == (
        "cron=2024-01-15T00&file=gs%3A%2F%2Fb%2Fx+y&job=t2&retry=1&workflow=f1.toml")
    assert encode_sorted_unescaped([("workflow", "f.toml"), ("file", "gs://b/x.txt")]) == (
        "file=gs://b/x.txt&workflow=f.toml")


def test_meta_of_a_known_task_round_trips():
    task = Task.from_json(EXACT[0][1])
    meta, dropped = parse_meta(task.meta)
    assert dropped == [] and encode_plain(meta) == task.meta
    retry = meta.set("retry", "1")
    assert encode_sorted_escaped(retry) == "cron=2024-01-15T00&job=t2&retry=1&workflow=f1.toml"


@given(st.lists(st.tuples(_text, _text), max_size=6))
def test_escaped_encoding_round_trips_through_parse_meta(pairs):
    meta, dropped = parse_meta(encode_sorted_escaped(pairs))
    assert dropped == []
    assert sorted(meta) == sorted(pairs)
