"""The SQLite store: schema, records and queries, durable retries, recreation, retention,
concurrency and transactions. Real database files in tmp_path."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import datetime, timedelta, timezone

import pytest
from flowlord.runtime.store import (
    DEFAULT_RETENTION,
    SCHEMA_VERSION,
    PhaseRow,
    Store,
    StoreError,
)
from flowlord.runtime.task import Task, new_task

UTC = timezone.utc
T0 = datetime(2024, 1, 15, tzinfo=UTC)


def task(n: int = 0, **fields) -> Task:
    base = dict(type="task1", job="t2", info=f"?n={n}", created="2024-01-15T00:00:00Z",
                id=f"id-{n}", meta="workflow=f1.toml&cron=2024-01-15T00&job=t2")
    base.update(fields)
    return Task(**base)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "flowlord.db"


@pytest.fixture
def store(db):
    with Store.open(db) as s:
        yield s


# --- schema ---------------------------------------------------------------------------------

def test_schema_version_and_wal(store, db):
    assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"tasks", "pending_retries", "alerts", "file_messages", "phases", "rejected"} <= tables
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"tasks_by_created", "tasks_by_type_job", "tasks_by_id"} <= indexes
    conn.close()


def test_reopening_keeps_the_schema_and_data(db):
    with Store.open(db) as s:
        s.record_sent(task())
    with Store.open(db) as s:
        assert s.schema_version == SCHEMA_VERSION and len(s.recent_tasks()) == 1


def test_a_newer_schema_is_refused(db):
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Store.open(db)


def test_a_file_that_is_not_a_database_is_moved_aside(db):
    db.write_bytes(b"this is not sqlite" * 100)
    with Store.open(db) as s:
        assert s.schema_version == SCHEMA_VERSION
    assert [p.name for p in db.parent.glob("flowlord.db.corrupt-*")]


def test_memory_database():
    with Store.open(":memory:") as s:
        s.record_sent(task())
        assert s.schema_version == SCHEMA_VERSION
        assert [r.task for r in s.recent_tasks()] == [task()]


def test_the_folder_is_created(tmp_path):
    with Store.open(tmp_path / "a" / "b" / "x.db") as s:
        assert s.schema_version == SCHEMA_VERSION


# --- tasks ----------------------------------------------------------------------------------

def test_record_and_query_tasks(store):
    sent = task(1)
    seq = store.record_sent(sent, workflow="f1.toml", phase="task1:t2", attempt=0, at=T0)
    done = sent.replace(result="complete", started="2024-01-15T00:00:05Z", ended="2024-01-15T01:00:05+01:00")
    assert store.record_done(done, workflow="f1.toml", phase="task1:t2", at=T0 + timedelta(seconds=9))
    child = task(1, type="task2", job="", meta="workflow=f1.toml&cron=2024-01-15T00")
    store.record_sent(child, workflow="f1.toml", phase="task2", at=T0 + timedelta(seconds=10))
    store.record_sent(task(2), at=T0 + timedelta(seconds=11))

    recent = store.recent_tasks(limit=10)
    assert [r.seq for r in recent] == [seq + 3, seq + 2, seq + 1, seq]
    first = recent[-1]
    assert first.event == "sent" and first.task == sent and first.topic == "task1"
    assert first.workflow == "f1.toml" and first.phase == "task1:t2" and first.recorded_at == T0
    assert recent[-2].event == "done" and recent[-2].topic == ""
    assert recent[-2].task.ended == "2024-01-15T00:00:05Z"  # normalised to UTC whole seconds

    history = store.task_history("id-1")  # a chain shares one id
    assert [(r.event, r.task.type) for r in history] == [("sent", "task1"), ("done", "task1"), ("sent", "task2")]
    assert store.recent_tasks(event="done")[0].task.result == "complete"
    assert [r.task.id for r in store.recent_tasks(type="task1", job="t2", event="sent")] == ["id-2", "id-1"]
    assert store.recent_tasks(workflow="f1.toml", limit=1)[0].task.type == "task2"


def test_pagination(store):
    for n in range(25):
        store.record_sent(task(n))
    pages, before = [], None
    while True:
        page = store.recent_tasks(limit=10, before=before)
        if not page:
            break
        pages.append([r.task.id for r in page])
        before = page[-1].seq
    assert [len(p) for p in pages] == [10, 10, 5]
    assert pages[0][0] == "id-24" and pages[-1][-1] == "id-0"


def test_a_redelivered_done_message_is_recorded_once(store):
    done = task(result="error", msg="boom")
    assert store.record_done(done) is True
    assert store.record_done(done) is False
    assert store.record_done(done.replace(msg="other")) is True
    assert len(store.recent_tasks(event="done")) == 2


def test_result_counts(store):
    for n, result in enumerate(["complete", "complete", "error", "warn", ""]):
        store.record_done(task(n, result=result))
    store.record_done(task(9, result="complete", created="2024-01-16T00:00:00Z"))
    store.record_sent(task(10))
    counts = {(c.type, c.job, c.result): c.count for c in store.result_counts()}
    assert counts == {("task1", "t2", "complete"): 3, ("task1", "t2", "error"): 1,
                      ("task1", "t2", "warn"): 1, ("task1", "t2", ""): 1}
    day = store.result_counts(since=T0, until=T0 + timedelta(days=1))
    assert sum(c.count for c in day) == 5


def test_task_times_that_do_not_parse_are_kept(store):
    store.record_sent(task(created="yesterday"))
    assert store.recent_tasks()[0].task.created == "yesterday"


# --- retries --------------------------------------------------------------------------------

def test_retries_are_durable_across_close_and_reopen(db):
    retry = task(result="", meta="cron=2024-01-15T00&job=t2&retry=1&workflow=f1.toml")
    with Store.open(db) as s:
        late = s.add_retry(retry, T0 + timedelta(minutes=5), attempt=1, workflow="f1.toml", phase="task1:t2")
        soon = s.add_retry(retry.replace(info="other"), T0 + timedelta(seconds=30, milliseconds=250),
                           attempt=2, topic="elsewhere")
    with Store.open(db) as s:  # a restart
        pending = s.pending_retries()
        assert [p.id for p in pending] == [soon, late]
        assert pending[1].task == retry and pending[1].topic == "task1" and pending[1].attempt == 1
        assert pending[1].workflow == "f1.toml" and pending[1].phase == "task1:t2"
        assert pending[0].topic == "elsewhere" and pending[0].due_at == T0 + timedelta(seconds=30, milliseconds=250)
        assert s.next_retry_due() == pending[0].due_at
        assert s.due_retries(T0 + timedelta(seconds=30)) == []
        assert [p.id for p in s.due_retries(T0 + timedelta(seconds=30, milliseconds=250))] == [soon]
        assert [p.id for p in s.due_retries(T0 + timedelta(hours=1))] == [soon, late]
        assert s.remove_retry(soon) is True and s.remove_retry(soon) is False
    with Store.open(db) as s:
        assert [p.id for p in s.pending_retries()] == [late]
        assert s.cleanup(timedelta(0), now=T0 + timedelta(days=1000)) and s.pending_retries()  # never expired


def test_due_times_in_other_zones_compare_as_instants(store):
    plus2 = timezone(timedelta(hours=2))
    rid = store.add_retry(task(), datetime(2024, 1, 15, 2, 0, tzinfo=plus2), attempt=1)  # = T0
    assert [p.id for p in store.due_retries(T0)] == [rid]
    assert store.due_retries(T0 - timedelta(milliseconds=1)) == []


# --- transactions ---------------------------------------------------------------------------

def test_transaction_commits_together(store):
    with store.transaction():
        store.record_done(task(result="error"))
        store.add_retry(task(), T0, attempt=1)
        assert len(store.recent_tasks()) == 1  # reads inside see the transaction's writes
    assert len(store.recent_tasks()) == 1 and len(store.pending_retries()) == 1


def test_transaction_rolls_back_on_exception(store):
    store.record_sent(task(0))
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.record_done(task(1, result="error"))
            store.add_retry(task(1), T0, attempt=1)
            with store.transaction():  # nested: joins the outer one
                store.record_alert(task(1))
            raise RuntimeError("crash before the ack")
    assert [r.task.id for r in store.recent_tasks()] == ["id-0"]
    assert store.pending_retries() == [] and store.alerts() == []
    # and the store still works
    assert store.record_done(task(1, result="error")) is True


def test_a_transaction_is_invisible_to_other_threads_until_it_commits(store):
    seen = []
    with store.transaction():
        store.record_sent(task(1))
        reader = threading.Thread(target=lambda: seen.append(len(store.recent_tasks())))
        reader.start()
        reader.join()
    assert seen == [0] and len(store.recent_tasks()) == 1


# --- a database deleted under us ------------------------------------------------------------

def test_deleted_database_file_is_recreated_on_the_next_write(store, db):
    store.record_sent(task(1))
    store.add_retry(task(1), T0, attempt=1)
    os.remove(db)
    assert not db.exists()
    store.record_sent(task(2))  # not fatal
    assert db.exists()
    assert [r.task.id for r in store.recent_tasks()] == ["id-2"]
    assert store.pending_retries() == []  # lost with the file, as they must be
    assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db)  # another process sees the new database
    assert conn.execute("SELECT id FROM tasks").fetchall() == [("id-2",)]
    conn.close()


def test_deleted_database_with_its_wal_and_folder(store, db):
    store.record_sent(task(1))
    store.recent_tasks()  # a reader connection is open too
    shutil.rmtree(db.parent)
    assert store.recent_tasks() == []  # a read notices too
    store.record_sent(task(3))
    assert [r.task.id for r in store.recent_tasks()] == ["id-3"]


def test_replaced_database_file_is_reopened(store, db, tmp_path):
    other = tmp_path / "other.db"
    with Store.open(other) as s:
        s.record_sent(task(7))
    store.record_sent(task(1))
    os.replace(other, db)
    for suffix in ("-wal", "-shm"):
        if os.path.exists(str(other) + suffix):
            os.replace(str(other) + suffix, str(db) + suffix)
    assert [r.task.id for r in store.recent_tasks()] == ["id-7"]


def test_closed_store_refuses(store):
    store.close()
    with pytest.raises(StoreError):
        store.recent_tasks()
    with pytest.raises(StoreError):
        store.record_sent(task())
    store.close()  # twice is fine


# --- retention ------------------------------------------------------------------------------

def test_cleanup_boundaries(store):
    now = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    cutoff = now - DEFAULT_RETENTION
    for n, delta in enumerate([timedelta(days=-400), timedelta(seconds=-1), timedelta(milliseconds=-1),
                               timedelta(0), timedelta(milliseconds=1), timedelta(days=1)]):
        at = cutoff + delta
        store.record_sent(task(n), at=at)
        store.record_alert(task(n), at=at)
        store.record_file_message(f"gs://b/{n}", 1, b"{}", [f"id-{n}"], at=at)
        store.record_rejected("done", "not-json", b"x", at=at)
    store.add_retry(task(), cutoff - timedelta(days=10), attempt=1, at=cutoff - timedelta(days=10))
    store.replace_phases("f1.toml", [PhaseRow("task1", "task1")], at=cutoff - timedelta(days=10))

    deleted = store.cleanup(now=now)  # 90 days by default
    assert deleted == {"tasks": 3, "alerts": 3, "file_messages": 3, "rejected": 3}
    assert sorted(r.task.id for r in store.recent_tasks()) == ["id-3", "id-4", "id-5"]  # at the cutoff: kept
    assert len(store.pending_retries()) == 1 and len(store.phases()) == 1
    assert store.cleanup(now=now) == {"tasks": 0, "alerts": 0, "file_messages": 0, "rejected": 0}


def test_cleanup_compares_instants_not_strings(store):
    # a local-time cutoff is converted: 2024-06-01T02:00+02:00 is 00:00Z
    store.record_sent(task(1), at=datetime(2024, 6, 1, 0, 30, tzinfo=UTC))
    store.record_sent(task(2), at=datetime(2024, 5, 31, 23, 30, tzinfo=UTC))
    now = datetime(2024, 6, 11, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    assert store.cleanup(timedelta(days=10), now=now)["tasks"] == 1
    assert [r.task.id for r in store.recent_tasks()] == ["id-1"]


# --- alerts, file messages, rejected, phases ------------------------------------------------

def test_alerts(store):
    failed = task(1, result="error", msg="boom", job="")
    a1 = store.record_alert(failed, workflow="f1.toml", phase="task1", job="t2", at=T0)
    a2 = store.record_alert(task(2, result="alert", msg="look"), at=T0 + timedelta(hours=1))
    newest = store.alerts()
    assert [a.id for a in newest] == [a2, a1]
    first = newest[1]
    assert (first.task_id, first.type, first.job, first.workflow, first.result, first.msg) == (
        "id-1", "task1", "t2", "f1.toml", "error", "boom")
    assert first.created == T0 and first.sent_at is None and first.task_time == "2024-01-15T00:00:00Z"
    assert [a.id for a in store.alerts(since=T0 + timedelta(minutes=1))] == [a2]
    assert [a.id for a in store.alerts(before=a2)] == [a1]
    assert [a.id for a in store.unsent_alerts()] == [a1, a2]
    assert store.mark_alerts_sent([a1], at=T0 + timedelta(hours=2)) == 1
    assert [a.id for a in store.unsent_alerts()] == [a2]
    assert store.alerts()[1].sent_at == T0 + timedelta(hours=2)


def test_file_messages(store):
    fid = store.record_file_message("gs://b/2024/01/15/x.csv", 120, b'{"path":"gs://b/2024/01/15/x.csv"}',
                                    ["id-1", "id-2"], at=T0)
    store.record_file_message("gs://b/other.csv", 0, "{}", [], at=T0)
    got = store.file_messages(path="gs://b/2024/01/15/x.csv")
    assert len(got) == 1 and got[0].id == fid and got[0].task_ids == ("id-1", "id-2")
    assert got[0].size == 120 and got[0].received_at == T0
    assert len(store.file_messages()) == 2


def test_rejected_keeps_the_reason_and_a_bounded_copy(store):
    store.record_rejected("done", "not-json", b"\xff{oops", detail="Expecting value")
    store.record_rejected("done", "too-large", b"x" * (200 << 10))
    big, bad = store.rejected()
    assert (bad.topic, bad.reason, bad.detail, bad.raw, bad.size) == (
        "done", "not-json", "Expecting value", b"\xff{oops", 6)
    assert big.size == 200 << 10 and len(big.raw) == 64 << 10


def test_replace_phases(store):
    rows = [PhaseRow("task1", "task1", rule="cron=0 * * * *", template="?date={yyyy}"),
            PhaseRow("task2:j", "task2", job="j", depends_on="task1",
                     diagnostics=({"code": "FL301", "message": "m"},))]
    assert store.replace_phases("f1.toml", rows, at=T0) == 2
    store.replace_phases("f2.toml", [PhaseRow("x", "x")], at=T0)
    got = store.phases("f1.toml")
    assert [(p.phase_id, p.position, p.job, p.depends_on) for p in got] == [
        ("task1", 0, "", ""), ("task2:j", 1, "j", "task1")]
    assert got[1].diagnostics == ({"code": "FL301", "message": "m"},) and got[0].loaded_at == T0
    store.replace_phases("f1.toml", rows[:1])
    assert [p.phase_id for p in store.phases()] == ["task1", "x"]
    store.replace_phases("f1.toml", [])
    assert [p.workflow for p in store.phases()] == ["f2.toml"]


# --- concurrency ----------------------------------------------------------------------------

def test_concurrent_readers_with_one_writer(db):
    store = Store.open(db)
    errors: list[BaseException] = []
    stop = threading.Event()
    total = 400

    def writer():
        try:
            for n in range(total):
                if n % 2:
                    store.record_sent(new_task("t", info=str(n)))
                else:
                    with store.transaction():
                        store.record_done(new_task("t", info=str(n)).replace(result="complete"))
                        store.add_retry(new_task("t"), T0, attempt=1)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()

    def reader():
        last = 0
        try:
            while not stop.is_set():
                page = store.recent_tasks(limit=5)
                seq = page[0].seq if page else 0
                assert seq >= last  # never goes back
                last = seq
                dones = len(store.recent_tasks(event="done", limit=1000))
                retries = len(store.pending_retries())
                assert retries >= dones  # a transaction is seen whole or not at all
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)] + [threading.Thread(target=writer)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(store.recent_tasks(limit=1000)) == total
    store.close()


def test_a_second_process_can_read_while_we_write(db):
    with Store.open(db) as ours, Store.open(db) as theirs:
        ours.record_sent(task(1))
        assert [r.task.id for r in theirs.recent_tasks()] == ["id-1"]
        theirs.record_sent(task(2))
        assert len(ours.recent_tasks()) == 2


def test_a_committed_retry_survives_sigkill(db):
    script = textwrap.dedent(f"""
        import sys, time
        from datetime import datetime, timezone
        from flowlord.runtime.store import Store
        from flowlord.runtime.task import Task
        store = Store.open({str(db)!r})
        with store.transaction():
            store.record_done(Task("task1", id="x", result="error"))
            store.add_retry(Task("task1", id="x", meta="retry=1"), datetime(2024, 1, 15, tzinfo=timezone.utc), attempt=1)
        print("committed", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"committed\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with Store.open(db) as s:
        (retry,) = s.pending_retries()
        assert retry.task == Task("task1", id="x", meta="retry=1") and retry.attempt == 1
        assert s.record_done(Task("task1", id="x", result="error")) is False  # the redelivery is known
