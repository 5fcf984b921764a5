"""Retention: history older than `retention` (default 90 days) deleted in small batches.

`purge()` deletes, oldest first, at most `batch_size` rows (5,000) per store transaction, each
in a worker thread, with a short pause between two (50 ms): the store's write lock is never
held for long, so the dispatcher's writes pass between the batches. Tasks, alerts, file
messages and rejected input go by when they were recorded; sent and failed notifications by
when they were queued; pending retries, pending notifications, phases and the schedule state
are kept. The cutoff is fixed when a purge starts (rows strictly before now - retention).

The operations (runtime/operations.py) purge at start and then daily; `purge_now()` there (or
`purge_sync()` here, for a command) does it on demand.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone

from .store import DEFAULT_RETENTION, Store

__all__ = ["DEFAULT_BATCH", "DEFAULT_RETENTION", "purge", "purge_sync"]

log = logging.getLogger("flowlord.retention")

DEFAULT_BATCH = 5000
DEFAULT_PAUSE = 0.05  # seconds between two batches


def _add(total: dict[str, int], deleted: dict[str, int]) -> None:
    for table, count in deleted.items():
        total[table] = total.get(table, 0) + count


async def purge(store: Store, retention: timedelta = DEFAULT_RETENTION, *,
                now: datetime | None = None, batch_size: int = DEFAULT_BATCH,
                pause: float = DEFAULT_PAUSE) -> dict[str, int]:
    """Deletes what is older than `retention`, batch by batch. Returns the rows deleted per
    table (and `batches`: the transactions it took)."""
    now = now or datetime.now(timezone.utc)
    total: dict[str, int] = {"tasks": 0, "alerts": 0, "file_messages": 0, "rejected": 0,
                             "notifications": 0}
    batches = 0
    started = time.monotonic()
    while True:
        deleted = await asyncio.to_thread(store.cleanup, retention, now=now, batch_size=batch_size)
        batches += 1
        _add(total, deleted)
        if sum(deleted.values()) < batch_size:
            break
        await asyncio.sleep(pause)
    while True:
        count = await asyncio.to_thread(store.cleanup_notifications, retention, now=now,
                                        batch_size=batch_size)
        batches += 1
        total["notifications"] += count
        if count < batch_size:
            break
        await asyncio.sleep(pause)
    _log(total, batches, time.monotonic() - started, retention)
    return {**total, "batches": batches}


def purge_sync(store: Store, retention: timedelta = DEFAULT_RETENTION, *,
               now: datetime | None = None, batch_size: int = DEFAULT_BATCH,
               pause: float = DEFAULT_PAUSE) -> dict[str, int]:
    """`purge` without an event loop (a command, a test)."""
    return asyncio.run(purge(store, retention, now=now, batch_size=batch_size, pause=pause))


def _log(total: dict[str, int], batches: int, seconds: float, retention: timedelta) -> None:
    if any(total.values()):
        log.info("retention (%s days): deleted %s in %d batch(es), %.2fs",
                 f"{retention.total_seconds() / 86400:g}",
                 ", ".join(f"{n} {t}" for t, n in total.items() if n), batches, seconds)
