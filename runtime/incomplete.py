"""Incomplete tasks: a task sent to its worker with no done message within `task_ttl`.

Each such task raises ONE alert, `INCOMPLETE: unfinished task detected` (Go's text), carried
by the next summary. Every sent row is examined once, when its `task_ttl` has passed: a
watermark in the store (`ops_state`, key `incomplete.through`) says through which row, and
moves in the same transaction as the alerts it raised, so a restart neither repeats an alert
nor skips a row. Times are flowlord's own UTC stamps of when the task was sent (not the task's
`created` string), compared as instants: the check is the same in every time zone (Go compared
a `T` string with a space-separated one and flagged tasks a day late, §20.37).

A done message counts when it has the task's id, type and info and came after it: a worker
that echoes another job or created does not cause a false alert (Go's did); a retry is a new
task, its attempt's done message does not count for it. Copies sent to the failed topic are
not tasks waiting for a worker.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .store import Store

__all__ = ["DEFAULT_TASK_TTL", "INCOMPLETE_MSG", "MIN_TASK_TTL", "check_incomplete", "task_ttl"]

log = logging.getLogger("flowlord.incomplete")

INCOMPLETE_MSG = "INCOMPLETE: unfinished task detected"
DEFAULT_TASK_TTL = timedelta(hours=4)
MIN_TASK_TTL = timedelta(hours=1)  # Go forces it up to 1h
STATE_KEY = "incomplete.through"
_PAGE = 1000


def task_ttl(ttl: timedelta | None) -> timedelta:
    """The TTL in force: the default when unset, at least an hour (as Go)."""
    if ttl is None or ttl <= timedelta(0):
        return DEFAULT_TASK_TTL
    if ttl < MIN_TASK_TTL:
        log.warning("task_ttl %s raised to the minimum of 1h", ttl)
        return MIN_TASK_TTL
    return ttl


def check_incomplete(store: Store, now: datetime, ttl: timedelta | None = DEFAULT_TASK_TTL) -> list[int]:
    """Raises the alerts of the tasks sent before now - ttl that have no done message, each
    once. Returns the ids of the alerts raised."""
    cutoff = now - task_ttl(ttl)
    raised: list[int] = []
    while True:
        with store.transaction():
            after = int(store.state(STATE_KEY) or 0)
            found, through = store.unfinished_sent(after, cutoff, limit=_PAGE)
            for record in found:
                raised.append(store.record_alert(record.task, workflow=record.workflow,
                                                 phase=record.phase, result="",
                                                 msg=INCOMPLETE_MSG, at=now))
            if through != after:
                store.set_state(STATE_KEY, str(through), at=now)
        if through == after:
            break
    if raised:
        log.warning("%d incomplete task(s): no done message within %s", len(raised), task_ttl(ttl))
    return raised
