"""Retention: history older than `retention` deleted in batches (one short transaction each),
at its boundaries, without holding up the writers; daily and on demand from the operations."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from flowlord.runtime.clock import SimClock
from flowlord.runtime.operations import OpsConfig, Operations
from flowlord.runtime.retention import purge, purge_sync
from flowlord.runtime.store import DEFAULT_RETENTION, PhaseRow, Store
from flowlord.runtime.task import Task

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
CUTOFF = NOW - DEFAULT_RETENTION


def task(n: int) -> Task:
    return Task(type="task1", job="t2", info=f"?n={n}", created="2024-01-15T00:00:00Z", id=f"id-{n}")


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "flowlord.db") as s:
        yield s


def seed(store: Store, at: datetime, n: int) -> None:
    store.record_sent(task(n), at=at)
    store.record_alert(task(n), at=at)
    store.record_file_message(f"gs://b/{n}", 1, b"{}", [f"id-{n}"], at=at)
    store.record_rejected("done", "not-json", b"x", at=at)


def test_batches_delete_everything_before_the_cutoff_and_nothing_after(store):
    old = [CUTOFF - timedelta(days=400) + timedelta(hours=i) for i in range(20)]
    old.append(CUTOFF - timedelta(milliseconds=1))
    kept = [CUTOFF, CUTOFF + timedelta(milliseconds=1), NOW]
    for n, at in enumerate(old + kept):
        seed(store, at, n)
    store.add_retry(task(99), CUTOFF - timedelta(days=10), attempt=1, at=CUTOFF - timedelta(days=10))
    store.replace_phases("f1.toml", [PhaseRow("task1", "task1")], at=CUTOFF - timedelta(days=10))
    # notifications: an old sent one goes, an old pending one stays, a recent one stays
    for status in ("sent", "pending", "recent"):
        nid = store.queue_notification("summary", "slack", status, "{}",
                                       at=NOW if status == "recent" else CUTOFF - timedelta(days=1))
        if status == "sent":
            store.notification_sent(nid, at=CUTOFF - timedelta(days=1))

    deleted = purge_sync(store, now=NOW, batch_size=7, pause=0)
    assert deleted == {"tasks": 21, "alerts": 21, "file_messages": 21, "rejected": 21,
                       "notifications": 1, "batches": 14}  # 84 rows / 7: 12 full, 1 empty; notifications: 1
    assert sorted(r.task.id for r in store.recent_tasks()) == ["id-21", "id-22", "id-23"]
    assert len(store.alerts()) == len(store.file_messages()) == len(store.rejected()) == 3
    assert len(store.pending_retries()) == 1 and len(store.phases()) == 1
    assert sorted(n.text for n in store.notifications()) == ["pending", "recent"]
    assert purge_sync(store, now=NOW, batch_size=7, pause=0)["batches"] == 2  # nothing left


def test_a_batch_is_one_transaction_of_at_most_the_batch_size_oldest_first(store):
    for n in range(10):
        seed(store, CUTOFF - timedelta(days=10 - n), n)
    deleted = store.cleanup(now=NOW, batch_size=4)
    assert deleted == {"tasks": 4, "alerts": 0, "file_messages": 0, "rejected": 0}
    assert sorted(r.task.id for r in store.recent_tasks()) == [f"id-{n}" for n in range(4, 10)]
    assert store.cleanup(now=NOW, batch_size=10) == {"tasks": 6, "alerts": 4, "file_messages": 0,
                                                     "rejected": 0}
    # without a batch size: everything at once, as before
    assert store.cleanup(now=NOW) == {"tasks": 0, "alerts": 6, "file_messages": 10, "rejected": 10}


def test_the_cutoff_is_an_instant_whatever_the_zone_of_now(store):
    seed(store, datetime(2024, 6, 1, 0, 30, tzinfo=UTC), 1)
    seed(store, datetime(2024, 5, 31, 23, 30, tzinfo=UTC), 2)
    now = datetime(2024, 6, 11, 2, 0, tzinfo=timezone(timedelta(hours=2)))  # 00:00Z
    deleted = purge_sync(store, timedelta(days=10), now=now, batch_size=100, pause=0)
    assert deleted["tasks"] == 1 and [r.task.id for r in store.recent_tasks()] == ["id-1"]


def test_purging_does_not_hold_up_the_writers(tmp_path):
    store = Store.open(tmp_path / "flowlord.db")
    old = CUTOFF - timedelta(days=1)
    with store.transaction():
        for n in range(20000):
            store.record_sent(task(n), at=old)
    latencies: list[float] = []
    stop = threading.Event()

    def dispatcher():  # writes all along, timing each write
        n = 100000
        while not stop.is_set():
            started = time.monotonic()
            store.record_sent(task(n), at=NOW)
            latencies.append(time.monotonic() - started)
            n += 1
            time.sleep(0.001)

    async def main():
        thread = threading.Thread(target=dispatcher)
        thread.start()
        try:
            before = len(latencies)
            deleted = await purge(store, now=NOW, batch_size=1000, pause=0.01)
            during = len(latencies) - before
        finally:
            stop.set()
            thread.join()
        return deleted, during

    deleted, during = asyncio.run(main())
    assert deleted["tasks"] == 20000 and deleted["batches"] >= 20
    assert during > 5  # the writer got through while the purge ran
    assert max(latencies) < 1.0
    assert len(store.recent_tasks(limit=1000)) == min(len(latencies), 1000)
    store.close()


def test_operations_purge_at_start_then_daily_and_on_demand(store):
    async def main():
        clock = SimClock(NOW)
        ops = Operations(store, OpsConfig(retention=timedelta(days=30), retention_pause=0), clock)
        seed(store, NOW - timedelta(days=31), 1)
        await ops.start()
        await clock.advance_to(NOW)
        deadline = time.monotonic() + 5
        while ops.last_retention is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert ops.status()["retention"]["last"]["deleted"]["tasks"] == 1
        seed(store, NOW - timedelta(days=29, hours=1), 2)  # over 30 days old tomorrow
        await clock.advance_to(NOW + timedelta(hours=23))
        assert len(store.recent_tasks()) == 1
        await clock.advance_to(NOW + timedelta(days=1, seconds=1))
        deadline = time.monotonic() + 5
        while store.recent_tasks() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert store.recent_tasks() == []
        seed(store, NOW - timedelta(days=40), 3)
        assert (await ops.purge_now())["tasks"] == 1
        await ops.stop()

    asyncio.run(main())
