"""The store: SQLite, and the only code in flowlord that speaks SQL (`Store` here, its
connections in database.py, the schema in schema.sql, the rows it returns in records.py).

WAL with synchronous=NORMAL: a commit survives the process being killed (the crash test); only
a power loss can take the last commits back. `Store.open(path, synchronous="FULL")` for more.

Connections. One writer connection, used under a lock (an RLock: a thread inside
`transaction()` calls the write methods freely), so writes are serialised in this process; each
reading thread has its own connection, and WAL lets those reads run beside the writer without
blocking it or each other. A `:memory:` database exists only in its one connection, so there
reads also use the writer connection under the lock. Connections are opened with
`check_same_thread=False` only so that `close()` and a reopen can close them from any thread; a
gate guarantees none is in use when that happens.

A missing database is created. A database file deleted (or replaced) while open is noticed
before the next read or write (and on SQLite's "database moved" error), every connection is
closed first (so an old connection cannot later delete the new file's WAL), leftovers of the
old file are removed, and a new database is created: never fatal. A file that is not a database
is moved aside and replaced.

The store is synchronous, as sqlite3 is: a write is tens of microseconds, fine to call from the
event loop; `asyncio.to_thread` works too (the store is thread-safe). Do not `await` inside
`transaction()`: another coroutine on the same thread would join the transaction.

Times: everything flowlord stamps is ISO UTC text with milliseconds; task times are normalised
to UTC whole seconds when they parse. `due_at` is compared as text (a fixed-width UTC format
written only here, so text order is time order, and the index is used); retention compares with
`julianday()`, as timestamps.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from ..task import Task, format_time, parse_time
from .database import SCHEMA_VERSION, Database, StoreError
from .records import (
    AlertRecord,
    FileMessageRecord,
    PendingRetry,
    PhaseRecord,
    PhaseRow,
    RejectedRecord,
    ResultCount,
    TaskRecord,
)

__all__ = [
    "DEFAULT_RETENTION", "SCHEMA_VERSION", "Store", "StoreError",
    "AlertRecord", "FileMessageRecord", "PendingRetry", "PhaseRecord", "PhaseRow",
    "RejectedRecord", "ResultCount", "TaskRecord",
]

DEFAULT_RETENTION = timedelta(days=90)
MAX_PAGE = 1000
RAW_LIMIT = 64 << 10  # bytes of a rejected message kept

_TASK_COLUMNS = ("seq, event, id, type, job, info, meta, result, msg, created, started, ended, "
                 "workflow, phase, attempt, topic, recorded_at")
_RETRY_COLUMNS = "rid, task, topic, due_at, attempt, workflow, phase, recorded_at"
_ALERT_COLUMNS = "aid, task_id, type, job, workflow, phase, result, msg, task_time, created, sent_at"


def _stamp(moment: datetime | None) -> str:
    """Flowlord's own time stamps: UTC, fixed width, milliseconds (naive means UTC)."""
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")


def _stamp_us(moment: datetime) -> str:
    """`_stamp` to the microsecond (the scheduler's fire times)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return _stamp(moment)[:-1] + f"{moment.microsecond % 1000:03d}Z"


def _digest(task: Task) -> bytes:
    return hashlib.blake2b(task.to_json(), digest_size=16).digest()


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _task_time(text: str) -> str:
    """A task's RFC 3339 time as UTC whole seconds; kept as sent when it does not parse."""
    if not text or (len(text) == 20 and text[10] == "T" and text[19] == "Z"):
        return text
    try:
        return format_time(parse_time(text))
    except ValueError:
        return text


class Store:
    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL",
                 busy_timeout: float = 5.0) -> None:
        self._db = Database(path, synchronous=synchronous, busy_timeout=busy_timeout)
        self.path = self._db.path
        self._write = self._db.write
        self._rows = self._db.rows

    @classmethod
    def open(cls, path: str | os.PathLike, **options: Any) -> Store:
        """Opens (creating or upgrading) the database at `path`, or `:memory:`."""
        return cls(path, **options)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.path!r})"

    def close(self) -> None:
        self._db.close()

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """All writes inside commit together, or none does (an exception rolls back); reads
        inside see them. Nested calls join the outer transaction. Do not await inside."""
        with self._db.transaction():
            yield self

    # --- tasks ------------------------------------------------------------------------------

    def record_sent(self, task: Task, *, workflow: str = "", phase: str = "", attempt: int = 0,
                    topic: str | None = None, at: datetime | None = None) -> int:
        """A task sent to `topic` (default: its type). Returns its row number."""
        return self._insert_task("sent", task, workflow, phase, attempt,
                                 task.type if topic is None else topic, None, at)

    def record_done(self, task: Task, *, workflow: str = "", phase: str = "", attempt: int = 0,
                    at: datetime | None = None) -> bool:
        """A done message. False when this very message was recorded before (a redelivery): record
        it in the same `transaction()` as its effects, and False means they were applied."""
        return self._insert_task("done", task, workflow, phase, attempt, "", _digest(task), at) is not None

    def has_done(self, task: Task) -> bool:
        """True when this very done message was recorded (what `record_done` would refuse): the
        dispatcher asks before sending anything for a message that may be a redelivery."""
        return bool(self._rows("SELECT 1 FROM tasks WHERE digest = ? LIMIT 1", (_digest(task),)))

    def _insert_task(self, event: str, task: Task, workflow: str, phase: str, attempt: int,
                     topic: str, digest: bytes | None, at: datetime | None) -> int | None:
        row = (event, task.id, task.type, task.job, task.info, task.meta, task.result, task.msg,
               _task_time(task.created), _task_time(task.started), _task_time(task.ended),
               workflow, phase, attempt, topic, digest, _stamp(at))

        def work(conn: sqlite3.Connection) -> int | None:
            cur = conn.execute(
                "INSERT OR IGNORE INTO tasks (event, id, type, job, info, meta, result, msg, created,"
                " started, ended, workflow, phase, attempt, topic, digest, recorded_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)
            return cur.lastrowid if cur.rowcount else None

        return self._write(work)

    def recent_tasks(self, *, limit: int = 50, before: int | None = None, event: str | None = None,
                     type: str | None = None, job: str | None = None, result: str | None = None,
                     workflow: str | None = None) -> list[TaskRecord]:
        """Newest first; the next page is `before=page[-1].seq`."""
        where, params = [], []
        for column, value in (("event", event), ("type", type), ("job", job), ("result", result),
                              ("workflow", workflow)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:
            where.append("seq < ?")
            params.append(before)
        sql = f"SELECT {_TASK_COLUMNS} FROM tasks"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        return [self._task_record(r) for r in self._rows(sql, [*params, _page(limit)])]

    def task_history(self, task_id: str, *, limit: int = MAX_PAGE) -> list[TaskRecord]:
        """Every event of one id (a whole chain shares its id), oldest first."""
        rows = self._rows(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE id = ? ORDER BY seq LIMIT ?",
                          (task_id, _page(limit)))
        return [self._task_record(r) for r in rows]

    def result_counts(self, *, since: datetime | None = None,
                      until: datetime | None = None) -> list[ResultCount]:
        """Done messages per (type, job, result) whose task was created in [since, until)."""
        where, params = ["event = 'done'"], []
        if since is not None:
            where.append("created >= ?")
            params.append(format_time(since))
        if until is not None:
            where.append("created < ?")
            params.append(format_time(until))
        rows = self._rows("SELECT type, job, result, count(*) FROM tasks WHERE "
                          + " AND ".join(where) + " GROUP BY type, job, result ORDER BY type, job, result",
                          params)
        return [ResultCount(*r) for r in rows]

    @staticmethod
    def _task_record(r: tuple) -> TaskRecord:
        task = Task(type=r[3], job=r[4], info=r[5], created=r[9], id=r[2], meta=r[6], result=r[7],
                    msg=r[8], started=r[10], ended=r[11])
        return TaskRecord(seq=r[0], event=r[1], task=task, workflow=r[12], phase=r[13],
                          attempt=r[14], topic=r[15], recorded_at=_when(r[16]))

    # --- retries ----------------------------------------------------------------------------

    def add_retry(self, task: Task, due_at: datetime, *, attempt: int, workflow: str = "",
                  phase: str = "", topic: str | None = None, at: datetime | None = None) -> int:
        """A task to send at `due_at` (to `topic`, default its type). Returns the retry's id."""
        row = (task.to_json().decode("utf-8"), task.type if topic is None else topic,
               _stamp(due_at), attempt, workflow, phase, _stamp(at))
        return self._write(lambda conn: conn.execute(
            "INSERT INTO pending_retries (task, topic, due_at, attempt, workflow, phase, recorded_at)"
            " VALUES (?,?,?,?,?,?,?)", row).lastrowid)

    def due_retries(self, now: datetime, *, limit: int = MAX_PAGE) -> list[PendingRetry]:
        """Retries due at or before `now`, soonest first."""
        rows = self._rows(f"SELECT {_RETRY_COLUMNS} FROM pending_retries WHERE due_at <= ?"
                          " ORDER BY due_at, rid LIMIT ?", (_stamp(now), limit))
        return [self._retry(r) for r in rows]

    def pending_retries(self) -> list[PendingRetry]:
        """Every retry not yet sent, soonest first (what a restart must send)."""
        rows = self._rows(f"SELECT {_RETRY_COLUMNS} FROM pending_retries ORDER BY due_at, rid")
        return [self._retry(r) for r in rows]

    def next_retry_due(self) -> datetime | None:
        rows = self._rows("SELECT min(due_at) FROM pending_retries")
        return _when(rows[0][0])

    def remove_retry(self, retry_id: int) -> bool:
        """Once it was sent. False when it was already gone."""
        return self._write(lambda conn: conn.execute(
            "DELETE FROM pending_retries WHERE rid = ?", (retry_id,)).rowcount > 0)

    @staticmethod
    def _retry(r: tuple) -> PendingRetry:
        return PendingRetry(id=r[0], task=Task.from_json(r[1]), topic=r[2], due_at=_when(r[3]),
                            attempt=r[4], workflow=r[5], phase=r[6], recorded_at=_when(r[7]))

    # --- alerts -----------------------------------------------------------------------------

    def record_alert(self, task: Task, *, workflow: str = "", phase: str = "", job: str | None = None,
                     result: str | None = None, msg: str | None = None,
                     at: datetime | None = None) -> int:
        """An alert about `task` (job, result and msg default to the task's own)."""
        row = (task.id, task.type, task.job if job is None else job, workflow, phase,
               task.result if result is None else result, task.msg if msg is None else msg,
               _task_time(task.created), _stamp(at))
        return self._write(lambda conn: conn.execute(
            "INSERT INTO alerts (task_id, type, job, workflow, phase, result, msg, task_time, created)"
            " VALUES (?,?,?,?,?,?,?,?,?)", row).lastrowid)

    def alerts(self, *, since: datetime | None = None, until: datetime | None = None,
               limit: int = 100, before: int | None = None) -> list[AlertRecord]:
        """Newest first, raised in [since, until); the next page is `before=page[-1].id`."""
        where, params = [], []
        for clause, value in (("created >= ?", since), ("created < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(_stamp(value))
        if before is not None:
            where.append("aid < ?")
            params.append(before)
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY aid DESC LIMIT ?", [*params, _page(limit)])
        return [self._alert(r) for r in rows]

    def unsent_alerts(self, *, limit: int = MAX_PAGE) -> list[AlertRecord]:
        """Alerts no notification carried yet, oldest first."""
        rows = self._rows(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE sent_at IS NULL"
                          " ORDER BY aid LIMIT ?", (limit,))
        return [self._alert(r) for r in rows]

    def mark_alerts_sent(self, alert_ids: Iterable[int], *, at: datetime | None = None) -> int:
        ids = [(_stamp(at), i) for i in alert_ids]
        return self._write(lambda conn: conn.executemany(
            "UPDATE alerts SET sent_at = ? WHERE aid = ? AND sent_at IS NULL", ids).rowcount)

    @staticmethod
    def _alert(r: tuple) -> AlertRecord:
        return AlertRecord(*r[:9], created=_when(r[9]), sent_at=_when(r[10]))

    # --- file messages, rejected input, phases ---------------------------------------------

    def record_file_message(self, path: str, size: int, message: bytes | str,
                            task_ids: Iterable[str], *, at: datetime | None = None) -> int:
        """A message of the files topic and the ids of the tasks it started."""
        text = message.decode("utf-8", "replace") if isinstance(message, (bytes, bytearray)) else message
        row = (path, size, text, json.dumps(list(task_ids)), _stamp(at))
        return self._write(lambda conn: conn.execute(
            "INSERT INTO file_messages (path, size, message, task_ids, received_at) VALUES (?,?,?,?,?)",
            row).lastrowid)

    def file_messages(self, *, limit: int = 50, before: int | None = None,
                      path: str | None = None) -> list[FileMessageRecord]:
        where, params = [], []
        if path is not None:
            where.append("path = ?")
            params.append(path)
        if before is not None:
            where.append("fid < ?")
            params.append(before)
        sql = "SELECT fid, path, size, message, task_ids, received_at FROM file_messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY fid DESC LIMIT ?", [*params, _page(limit)])
        return [FileMessageRecord(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), _when(r[5]))
                for r in rows]

    def record_rejected(self, topic: str, reason: str, raw: bytes | str, *, detail: str = "",
                        at: datetime | None = None) -> int:
        """Bad input, recorded and skipped. `raw` is kept up to 64 KiB."""
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else bytes(raw)
        row = (topic, reason, detail, data[:RAW_LIMIT], len(data), _stamp(at))
        return self._write(lambda conn: conn.execute(
            "INSERT INTO rejected (topic, reason, detail, raw, size, received_at) VALUES (?,?,?,?,?,?)",
            row).lastrowid)

    def rejected(self, *, limit: int = 50, before: int | None = None) -> list[RejectedRecord]:
        sql = "SELECT xid, topic, reason, detail, raw, size, received_at FROM rejected"
        params: list[Any] = []
        if before is not None:
            sql += " WHERE xid < ?"
            params.append(before)
        rows = self._rows(sql + " ORDER BY xid DESC LIMIT ?", [*params, _page(limit)])
        return [RejectedRecord(*r[:6], received_at=_when(r[6])) for r in rows]

    def replace_phases(self, workflow: str, rows: Iterable[PhaseRow], *,
                       at: datetime | None = None) -> int:
        """The phases of `workflow` become `rows` (none: the workflow is gone)."""
        stamp = _stamp(at)
        values = [(workflow, position, r.phase_id, r.topic, r.job, r.rule, r.template, r.depends_on,
                   json.dumps(list(r.diagnostics), default=str), stamp)
                  for position, r in enumerate(rows)]

        def work(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM phases WHERE workflow = ?", (workflow,))
            conn.executemany(
                "INSERT INTO phases (workflow, position, phase_id, topic, job, rule, template,"
                " depends_on, diagnostics, loaded_at) VALUES (?,?,?,?,?,?,?,?,?,?)", values)
            return len(values)

        return self._write(work)

    def phases(self, workflow: str | None = None) -> list[PhaseRecord]:
        sql = ("SELECT workflow, position, phase_id, topic, job, rule, template, depends_on,"
               " diagnostics, loaded_at FROM phases")
        params: tuple = ()
        if workflow is not None:
            sql, params = sql + " WHERE workflow = ?", (workflow,)
        rows = self._rows(sql + " ORDER BY workflow, position", params)
        return [PhaseRecord(*r[:8], diagnostics=tuple(json.loads(r[8])), loaded_at=_when(r[9]))
                for r in rows]

    # --- the scheduler's state ----------------------------------------------------------------

    def last_fire(self, workflow: str, phase: str) -> datetime | None:
        """The instant through which the cron phase's fire times were handled, if ever set."""
        rows = self._rows("SELECT last_fire FROM schedule_state WHERE workflow = ? AND phase_id = ?",
                          (workflow, phase))
        return _when(rows[0][0]) if rows else None

    def last_fires(self) -> dict[tuple[str, str], datetime]:
        """Every phase's last handled fire time, by (workflow, phase id)."""
        rows = self._rows("SELECT workflow, phase_id, last_fire FROM schedule_state")
        return {(r[0], r[1]): _when(r[2]) for r in rows}

    def set_last_fire(self, workflow: str, phase: str, moment: datetime, *,
                      at: datetime | None = None) -> None:
        """Records that the phase's fire times through `moment` (kept to the microsecond) were
        handled. Kept when the phase leaves the plan, so that it resumes if it comes back."""
        row = (workflow, phase, _stamp_us(moment), _stamp(at))
        self._write(lambda conn: conn.execute(
            "INSERT INTO schedule_state (workflow, phase_id, last_fire, updated_at) VALUES (?,?,?,?)"
            " ON CONFLICT (workflow, phase_id) DO UPDATE SET last_fire = excluded.last_fire,"
            " updated_at = excluded.updated_at", row))

    # --- retention --------------------------------------------------------------------------

    def cleanup(self, older_than: timedelta = DEFAULT_RETENTION, *,
                now: datetime | None = None) -> dict[str, int]:
        """Deletes history recorded before now - older_than (strictly before; compared as
        timestamps). Pending retries and phases are kept. Returns the rows deleted per table."""
        cutoff = _stamp((now or datetime.now(timezone.utc)) - older_than)
        targets = (("tasks", "recorded_at"), ("alerts", "created"),
                   ("file_messages", "received_at"), ("rejected", "received_at"))

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            return {table: conn.execute(
                f"DELETE FROM {table} WHERE julianday({column}) < julianday(?)", (cutoff,)).rowcount
                for table, column in targets}

        return self._write(work)


def _page(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))
