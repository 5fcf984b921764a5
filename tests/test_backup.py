"""Backup and restore of the SQLite history: the online backup API under a live writer, restore
at start when the local file is missing, an fsspec `memory://` remote, the periodic and final
backups of the operations, and a SIGKILL in the middle of a backup."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from flowlord.runtime.backup import BackupError, backup_database, is_remote, restore_if_missing
from flowlord.runtime.clock import SimClock
from flowlord.runtime.operations import OpsConfig, Operations, restore_history
from flowlord.runtime.store import Store
from flowlord.runtime.task import Task

UTC = timezone.utc
T0 = datetime(2024, 1, 15, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[1]


def task(n: int) -> Task:
    return Task(type="task1", job="t2", info=f"?n={n}", created="2024-01-15T00:00:00Z", id=f"id-{n}")


def rows(path) -> int:
    conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        return conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    finally:
        conn.close()


def fill(store: Store, start: int, count: int) -> None:
    with store.transaction():
        for n in range(start, start + count):
            store.record_sent(task(n), at=T0)


def test_backup_and_restore_round_trip_with_a_live_writer(tmp_path):
    local, target = tmp_path / "flowlord.db", tmp_path / "backups" / "flowlord.db"
    store = Store.open(local)
    fill(store, 0, 500)
    stop = threading.Event()
    written = [500]

    def writer():  # the dispatcher, writing all along
        n = 500
        while not stop.is_set():
            store.record_sent(task(n), at=T0)
            n += 1
            written[0] = n

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        counts = []
        for _ in range(5):
            before = written[0]
            backup_database(local, str(target))
            after = written[0]
            count = rows(target)  # a sound database, a snapshot taken during the backup
            assert before - 1 <= count <= after + 1
            counts.append(count)
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join()
    assert counts == sorted(counts) and counts[-1] > 500
    assert not (tmp_path / "backups" / "flowlord.db.tmp").exists()
    with open(target, "rb") as f:  # a standalone file: not marked WAL (bytes 18-19 are 1)
        header = f.read(20)
    assert header[18:20] == b"\x01\x01"
    store.close()

    restored = tmp_path / "elsewhere" / "flowlord.db"
    assert restore_if_missing(restored, str(target))
    with Store.open(restored) as s:
        assert len(s.recent_tasks(limit=1000)) == min(counts[-1], 1000)
        assert rows(restored) == counts[-1]
        s.record_sent(task(-1))  # and it is a working store


def test_restore_at_start_only_when_the_local_file_is_missing(tmp_path, caplog):
    local, target = tmp_path / "data" / "flowlord.db", tmp_path / "backup.db"
    config = OpsConfig(backup_path=str(target))
    assert not restore_history(config, str(local))  # no backup yet: an empty history
    with Store.open(local) as s:
        fill(s, 0, 10)
    backup_database(local, str(target))
    with Store.open(local) as s:
        fill(s, 10, 5)
    assert not restore_history(config, str(local))  # the local file wins
    assert rows(local) == 15

    for leftover in ("", "-wal", "-shm"):
        try:
            os.remove(str(local) + leftover)
        except FileNotFoundError:
            pass
    Path(str(local) + "-wal").write_bytes(b"stale wal of a database that is gone" * 10)
    assert restore_history(config, str(local))
    assert not Path(str(local) + "-wal").exists()
    assert rows(local) == 10
    with Store.open(local) as s:
        assert len(s.recent_tasks()) == 10

    local.write_bytes(b"")  # empty, as Go: restored too
    assert restore_history(config, str(local)) and rows(local) == 10

    os.remove(local)
    target.write_bytes(b"this is not a database" * 100)
    assert not restore_if_missing(local, str(target))  # logged; start with an empty history
    assert not local.exists()
    assert "restoring" in caplog.text
    assert not restore_if_missing(":memory:", str(target))
    assert not restore_if_missing(local, "")


def test_fsspec_memory_remote(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    local = tmp_path / "flowlord.db"
    with Store.open(local) as s:
        fill(s, 0, 42)
    remote = "memory://bucket/flowlord/flowlord.db"
    assert is_remote(remote) and not is_remote(str(local)) and not is_remote("file:///x.db")
    info = backup_database(local, remote)
    fs = fsspec.filesystem("memory")
    assert fs.exists("/bucket/flowlord/flowlord.db") and info.bytes == fs.size("/bucket/flowlord/flowlord.db")
    assert not Path(str(local) + ".backup-tmp").exists()
    restored = tmp_path / "restored" / "flowlord.db"
    assert restore_if_missing(restored, remote)
    assert rows(restored) == 42
    fs.rm("/bucket/flowlord/flowlord.db")
    assert not restore_if_missing(tmp_path / "other.db", remote)


def test_a_missing_backend_is_an_error_with_the_extra_to_install(tmp_path):
    local = tmp_path / "flowlord.db"
    Store.open(local).close()
    with pytest.raises(BackupError, match=r"flowlord\[|nosuchscheme"):
        backup_database(local, "nosuchscheme://bucket/x.db")
    with pytest.raises(BackupError):
        backup_database(":memory:", str(tmp_path / "b.db"))


def test_operations_back_up_periodically_and_at_stop(tmp_path):
    pytest.importorskip("fsspec")
    import fsspec

    local = tmp_path / "flowlord.db"
    remote = "memory://ops/flowlord.db"
    fs = fsspec.filesystem("memory")
    if fs.exists("/ops/flowlord.db"):
        fs.rm("/ops/flowlord.db")

    async def main():
        store = Store.open(local)
        clock = SimClock(T0)
        ops = Operations(store, OpsConfig(backup_path=remote, backup_interval=timedelta(hours=1)), clock)
        await ops.start()
        await clock.advance_to(T0)  # the loops start, and wait on the clock
        fill(store, 0, 3)
        await clock.advance_to(T0 + timedelta(minutes=59))
        assert not fs.exists("/ops/flowlord.db")
        await clock.advance_to(T0 + timedelta(hours=1))
        deadline = time.monotonic() + 10
        while ops.last_backup is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert ops.status()["backup"]["last"]["bytes"] > 0
        fill(store, 3, 4)
        await ops.stop()  # the last backup has everything
        store.close()

    asyncio.run(main())
    restored = tmp_path / "restored.db"
    assert restore_if_missing(restored, remote) and rows(restored) == 7
    fs.rm("/ops/flowlord.db")


CRASHING_BACKUP = textwrap.dedent("""
    import sys, time
    from flowlord.runtime.backup import backup_database

    def progress(status, remaining, total):
        print("progress", remaining, total, flush=True)
        time.sleep(0.05)

    backup_database(sys.argv[1], sys.argv[2], pages=4, progress=progress)
    print("finished", flush=True)
""")


def test_a_sigkill_during_a_backup_leaves_the_history_and_the_last_backup_intact(tmp_path):
    local, target = tmp_path / "flowlord.db", tmp_path / "backup" / "flowlord.db"
    with Store.open(local) as s:
        with s.transaction():
            for n in range(2000):
                s.record_sent(Task(type="task1", info="x" * 500, id=f"id-{n}"), at=T0)
    backup_database(local, str(target))
    assert rows(target) == 2000
    with Store.open(local) as s:
        fill(s, 5000, 100)  # the new backup would have 2100

    script = tmp_path / "crash.py"
    script.write_text(CRASHING_BACKUP, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(local), str(target)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = proc.stdout.readline()
        assert line.startswith("progress"), line
        proc.stdout.readline()  # a few pages into the copy
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert Path(str(target) + ".tmp").exists()  # the partial copy, never the backup itself
    assert rows(target) == 2000  # the previous backup, whole
    assert rows(local) == 2100  # the history, untouched
    with Store.open(local) as s:
        assert s.recent_tasks(limit=1)[0].task.id == "id-5099"
    backup_database(local, str(target))  # the next backup replaces the partial one
    assert rows(target) == 2100 and not Path(str(target) + ".tmp").exists()


def test_store_upgrade_from_version_2_adds_the_operations_tables(tmp_path):
    from flowlord.runtime.store import SCHEMA_VERSION
    from flowlord.runtime.store.database import _UPGRADES
    from importlib import resources

    db = tmp_path / "v2.db"
    conn = sqlite3.connect(db)
    conn.executescript(resources.files("flowlord.runtime.store").joinpath("schema.sql").read_text()
                       + _UPGRADES[2])
    conn.execute("INSERT INTO alerts (type, created) VALUES ('t', '2024-01-15T00:00:00.000Z')")
    conn.commit()
    conn.close()
    with Store.open(db) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert len(store.unsent_alerts()) == 1  # kept, and unsent: the next summary carries it
        store.queue_notification("test", "slack", "hi", "{}", at=T0)
        store.set_state("k", "v", at=T0)
        assert store.state("k") == "v" and store.notifications()[0].status == "pending"
