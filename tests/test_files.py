"""File triggers: Go's filepath.Match, the files-topic message, the local folder watcher."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from datetime import datetime, timezone

import pytest
from flowlord.runtime.bus.memory import MemoryBus
from flowlord.runtime.files import (
    FILE_REASONS,
    BadPattern,
    FileEvent,
    LocalWatcher,
    check_pattern,
    decode_file_message,
    match,
)
from flowlord.runtime.task import MAX_MESSAGE_BYTES, BadMessage

BAD = "bad pattern"

# The cases of Go's src/path/filepath/match_test.go (matchTests): pattern, path, result, where
# BAD stands for ErrBadPattern.
GO_MATCH_TESTS = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", BAD),
    ("[-]", "-", BAD),
    ("[x-]", "x", BAD),
    ("[x-]", "-", BAD),
    ("[x-]", "z", BAD),
    ("[-x]", "x", BAD),
    ("[-x]", "-", BAD),
    ("[-x]", "a", BAD),
    ("\\", "a", BAD),
    ("[a-b-c]", "a", BAD),
    ("[", "a", BAD),
    ("[^", "a", BAD),
    ("[^bc", "a", BAD),
    ("a[", "a", BAD),
    ("a[", "ab", BAD),
    ("a[", "x", BAD),
    ("a/b[", "x", BAD),
    ("*x", "xxx", True),
]

# Flowlord's own: GCS and local paths, `**`, `!`, leading dots, whole-path matching.
FLOWLORD_MATCH_TESTS = [
    ("gs://bucket/2024/01/15/*.csv", "gs://bucket/2024/01/15/events.csv", True),
    ("gs://bucket/2024/01/15/*.csv", "gs://bucket/2024/01/15/sub/events.csv", False),
    ("gs://bucket/2024/01/15/*.csv", "gs://bucket/2024/01/15/events.csv.gz", False),
    ("gs://bucket/*/*/*/*.csv", "gs://bucket/2024/01/15/events.csv", True),
    ("gs://bucket/*/*/*/*.csv", "gs://other/2024/01/15/events.csv", False),
    ("gs://bucket/*/*.csv", "gs://bucket/2024/01/15/events.csv", False),  # * never crosses /
    ("gs://bucket/**/*.csv", "gs://bucket/2024/01/15/events.csv", False),  # ** is just *
    ("gs://bucket/**/*.csv", "gs://bucket/2024/events.csv", True),
    ("gs://bucket/20[0-9][0-9]/??/??/*.json", "gs://bucket/2024/01/15/a.json", True),
    ("gs://bucket/20[0-9][0-9]/??/??/*.json", "gs://bucket/2024/1/15/a.json", False),
    ("/data/incoming/*/*.csv", "/data/incoming/2024-01-15/a.csv", True),
    ("/data/incoming/*/*.csv", "data/incoming/2024-01-15/a.csv", False),  # whole path
    ("/data/incoming/*.csv", "/data/incoming/.hidden.csv", True),  # a leading dot is not special
    ("/data/[!a]*", "/data/b", False),  # ! is not negation: the class is `!` or `a`
    ("/data/[!a]*", "/data/!x", True),
    ("/data/[^a]*", "/data/b", True),
    ("/data/file.csv", "/data/file.csv", True),
    ("/data/file.csv", "/data/file.csvx", False),
    ("/data/*", "/data/", True),  # * matches an empty run
    ("*??", "☺", True),  # Go works on bytes: the * can stop inside the 3-byte ☺
    ("", "", True),
    ("", "a", False),
    ("/data/\\[x].csv", "/data/[x].csv", True),
    ("/data/[", "/data/x", BAD),
]


@pytest.mark.parametrize("pattern, path, want", GO_MATCH_TESTS + FLOWLORD_MATCH_TESTS)
def test_match(pattern, path, want):
    if want is BAD:
        with pytest.raises(ValueError):
            match(pattern, path)
        with pytest.raises(BadPattern):
            check_pattern(pattern)
    else:
        assert match(pattern, path) is want
        check_pattern(pattern)


def test_bad_pattern_is_reported_even_after_a_mismatch():
    # Go checks the rest of the pattern once the match has failed
    with pytest.raises(BadPattern):
        match("x*[", "abc")
    with pytest.raises(BadPattern):
        match("nope/[a-", "other")


# --- decoding -------------------------------------------------------------------------------

GCS_EVENT = {
    "kind": "storage#object",
    "id": "bucket/2024/01/15/events.csv/1705312800123456",
    "selfLink": "https://www.googleapis.com/storage/v1/b/bucket/o/2024%2F01%2F15%2Fevents.csv",
    "name": "2024/01/15/events.csv",
    "bucket": "bucket",
    "generation": "1705312800123456",
    "contentType": "text/csv",
    "timeCreated": "2024-01-15T10:00:00.123Z",
    "updated": "2024-01-15T10:00:00.123Z",
    "size": "1024",
    "md5Hash": "XUFAKrxLKna5cZ2REBfFkg==",
}


def test_decode_gcs_event():
    event = decode_file_message(json.dumps(GCS_EVENT).encode())
    assert event == FileEvent(
        path="gs://bucket/2024/01/15/events.csv",
        size=1024,
        created=datetime(2024, 1, 15, 10, 0, 0, tzinfo=timezone.utc),  # fraction dropped
        checksum="XUFAKrxLKna5cZ2REBfFkg==",
    )
    assert event.created.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "changes, path, size, created",
    [
        ({"size": "12x"}, "gs://bucket/2024/01/15/events.csv", 0, datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),
        ({"size": 7}, "gs://bucket/2024/01/15/events.csv", 0, datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),
        ({"size": "-5"}, "gs://bucket/2024/01/15/events.csv", -5, datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),
        ({"timeCreated": "2024-01-15T12:30:00.9+02:00"}, "gs://bucket/2024/01/15/events.csv", 1024,
         datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)),
        ({"timeCreated": "yesterday"}, "gs://bucket/2024/01/15/events.csv", 1024, None),
        ({"bucket": None}, "gs:///2024/01/15/events.csv", 1024, datetime(2024, 1, 15, 10, tzinfo=timezone.utc)),
    ],
)
def test_decode_gcs_event_fields(changes, path, size, created):
    event = decode_file_message(json.dumps({**GCS_EVENT, **changes}).encode())
    assert (event.path, event.size, event.created) == (path, size, created)


def test_gcs_event_needs_id_and_name():
    # without an id it is read as stats, which have no path
    with pytest.raises(BadMessage) as info:
        decode_file_message(json.dumps({**GCS_EVENT, "id": ""}).encode())
    assert info.value.reason == "missing-path"
    # a stat message that happens to carry an id still is one
    stats = {"id": "x", "path": "/data/a.csv", "size": 3}
    assert decode_file_message(json.dumps(stats).encode()).path == "/data/a.csv"


def test_decode_stat_json():
    message = (
        b'{"linecnt":10,"bytecnt":200,"size":150,"checksum":"5d41402abc4b2a76b9719d911017c592",'
        b'"path":"s3://bucket/2024/01/15/events.json.gz","created":"2024-01-15T10:00:00Z",'
        b'"isDir":false,"files":0}'
    )
    assert decode_file_message(message) == FileEvent(
        path="s3://bucket/2024/01/15/events.json.gz",
        size=150,
        created=datetime(2024, 1, 15, 10, tzinfo=timezone.utc),
        checksum="5d41402abc4b2a76b9719d911017c592",
    )


def test_decode_stat_json_is_lenient_like_go():
    # keys in any letter case; wrong-typed fields left empty; a bad time is None
    event = decode_file_message(b'{"Path":"/a/b.csv","SIZE":"12","created":"soon","checksum":5}')
    assert event == FileEvent(path="/a/b.csv", size=0, created=None, checksum="")
    assert decode_file_message(b'{"path":"/a","path":"/b"}').path == "/b"  # the last one wins
    assert decode_file_message('{"path":"/données/é.csv"}').path == "/données/é.csv"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "not-json"),
        (b"not json", "not-json"),
        (b'{"path": "/a.csv"', "not-json"),
        (b'{"path": "/a.csv", "size": NaN}', "not-json"),
        (b'["/a.csv"]', "not-object"),
        (b'"/a.csv"', "not-object"),
        (b"null", "not-object"),
        (b"{}", "missing-path"),
        (b'{"path": ""}', "missing-path"),
        (b'{"type":"task1","info":"?x=1"}', "missing-path"),  # a task on the files topic
        (b'{"path": 5}', "bad-field"),
        (b'{"path": ["/a.csv"]}', "bad-field"),
    ],
)
def test_decode_bad_messages(data, reason):
    with pytest.raises(BadMessage) as info:
        decode_file_message(data)
    assert info.value.reason == reason
    assert reason in FILE_REASONS
    assert str(info.value).startswith(reason)


def test_decode_rejects_a_huge_message():
    data = b'{"path":"/a.csv","pad":"' + b"x" * MAX_MESSAGE_BYTES + b'"}'
    with pytest.raises(BadMessage) as info:
        decode_file_message(data)
    assert info.value.reason == "too-large"


def test_file_event_round_trips_as_stat_json():
    event = FileEvent("/data/a.csv", 3, datetime(2024, 1, 15, 10, tzinfo=timezone.utc), "abc")
    data = event.to_json()
    assert json.loads(data) == {
        "linecnt": 0, "bytecnt": 0, "size": 3, "checksum": "abc",
        "path": "/data/a.csv", "created": "2024-01-15T10:00:00Z",
    }
    assert decode_file_message(data) == event


# --- the local watcher ----------------------------------------------------------------------


def run(coro, timeout: float = 15.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_for(condition, timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            return
        await asyncio.sleep(0.02)


def write(path, data: bytes) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data[: len(data) // 2])
        handle.flush()
        handle.write(data[len(data) // 2:])


def test_local_watcher_reports_one_message_per_written_file(tmp_path):
    folder = str(tmp_path)
    pattern = os.path.join(folder, "*", "*.csv")

    async def main():
        bus = MemoryBus()
        watcher = LocalWatcher(folder, bus, [pattern], topic="files", debounce=0.1, settle=0.3)
        async with watcher:
            data = b"a,b\n1,2\n" * 100
            write(os.path.join(folder, "2024-01-15", "events.csv"), data)
            write(os.path.join(folder, "2024-01-15", "events.txt"), b"not matched")
            write(os.path.join(folder, "top.csv"), b"not matched either: one level too high")
            await wait_for(lambda: bus.published("files"), 2.0)
            await asyncio.sleep(0.6)  # would any duplicate or non-matching file show up?
        messages = bus.published("files")
        assert len(messages) == 1, messages
        event = decode_file_message(messages[0])
        assert event.path == os.path.join(folder, "2024-01-15", "events.csv")
        assert event.size == len(data)
        assert event.checksum == hashlib.md5(data).hexdigest()
        assert event.created is not None
        assert abs((datetime.now(timezone.utc) - event.created).total_seconds()) < 60

    run(main())


def test_local_watcher_moved_in_and_renamed_files(tmp_path):
    folder = tmp_path / "in"
    outside = tmp_path / "out"
    folder.mkdir()
    outside.mkdir()
    seen: list[FileEvent] = []

    async def on_file(event: FileEvent) -> None:
        seen.append(event)

    async def main():
        watcher = LocalWatcher(folder, on_file, [str(folder / "*.csv")], debounce=0.1, settle=0.3)
        await watcher.start()
        try:
            (outside / "a.csv").write_bytes(b"moved in")
            os.rename(outside / "a.csv", folder / "a.csv")
            (folder / "b.tmp").write_bytes(b"renamed")  # written under a temporary name
            os.rename(folder / "b.tmp", folder / "b.csv")
            await wait_for(lambda: len(seen) >= 2, 2.5)
            await asyncio.sleep(0.5)
        finally:
            await watcher.stop()
        assert sorted(e.path for e in seen) == [str(folder / "a.csv"), str(folder / "b.csv")]

    run(main())


def test_local_watcher_reports_nothing_that_does_not_match(tmp_path):
    async def main():
        bus = MemoryBus()
        async with LocalWatcher(tmp_path, bus, [str(tmp_path / "*.csv")], debounce=0.1, settle=0.3):
            (tmp_path / "notes.txt").write_text("x")
            (tmp_path / "sub").mkdir()
            (tmp_path / "sub" / "deep.csv").write_text("x")
            await asyncio.sleep(0.8)
        assert bus.published("files") == []

    run(main())


def test_local_watcher_set_patterns_and_bad_patterns(tmp_path):
    bus = MemoryBus()
    with pytest.raises(BadPattern):
        LocalWatcher(tmp_path, bus, ["/data/["])
    watcher = LocalWatcher(tmp_path, bus, [str(tmp_path / "*.csv")])
    assert watcher.matches(str(tmp_path / "a.csv"))
    with pytest.raises(ValueError):
        watcher.set_patterns(["/x/\\"])
    assert watcher.patterns == (str(tmp_path / "*.csv"),)  # unchanged
    watcher.set_patterns([str(tmp_path / "*.json")])
    assert not watcher.matches(str(tmp_path / "a.csv"))
    with pytest.raises(TypeError):
        LocalWatcher(tmp_path, object(), [])


def test_local_watcher_needs_a_folder(tmp_path):
    async def main():
        with pytest.raises(OSError):
            await LocalWatcher(tmp_path / "missing", MemoryBus(), ["*"]).start()

    run(main())


def test_local_watcher_polling_mode(tmp_path):
    # where the platform has no close events (or the folder is on a network file system)
    async def main():
        bus = MemoryBus()
        async with LocalWatcher(tmp_path, bus, [str(tmp_path / "*.csv")], settle=0.3, polling=True):
            (tmp_path / "a.csv").write_bytes(b"x" * 100)
            await wait_for(lambda: bus.published("files"), 2.5)
            await asyncio.sleep(0.5)
        assert [decode_file_message(m).path for m in bus.published("files")] == [str(tmp_path / "a.csv")]

    run(main())
