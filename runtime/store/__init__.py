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
    NotificationRecord,
    PendingRetry,
    PhaseRecord,
    PhaseRow,
    RejectedRecord,
    ResultCount,
    TaskRecord,
)

__all__ = [
    "DEFAULT_RETENTION", "SCHEMA_VERSION", "Store", "StoreError",
    "AlertRecord", "FileMessageRecord", "NotificationRecord", "PendingRetry", "PhaseRecord", "PhaseRow",
    "RejectedRecord", "ResultCount", "TaskRecord",
]

DEFAULT_RETENTION = timedelta(days=90)
MAX_PAGE = 1000
RAW_LIMIT = 64 << 10  # bytes of a rejected message kept

_TASK_COLUMNS = ("seq, event, id, type, job, info, meta, result, msg, created, started, ended, "
                 "workflow, phase, attempt, topic, recorded_at")
_INSERT_TASK = ("INSERT OR IGNORE INTO tasks (event, id, type, job, info, meta, result, msg, created,"
                " started, ended, workflow, phase, attempt, topic, digest, recorded_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_RETRY_COLUMNS = "rid, task, topic, due_at, attempt, workflow, phase, recorded_at"
_ALERT_COLUMNS = "aid, task_id, type, job, workflow, phase, result, msg, task_time, created, sent_at"
_NOTE_COLUMNS = ("nid, kind, channel, text, body, alert_ids, status, attempts, error, created, next_at,"
                 " done_at")


def _stamp(moment: datetime | None) -> str:
    """Flowlord's own time stamps: UTC, fixed width, milliseconds (naive means UTC)."""
    global _LAST_STAMP
    if moment is None:
        moment = datetime.now(timezone.utc)
    elif moment == _LAST_STAMP[0]:  # the same instant (aware and naive never compare equal)
        return _LAST_STAMP[1]  # the rows of one event share it
    given = moment
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:"
            f"{moment.minute:02d}:{moment.second:02d}.{moment.microsecond // 1000:03d}Z")
    _LAST_STAMP = (given, text)
    return text


_LAST_STAMP: tuple[datetime, str] = (datetime(1, 1, 1), "0001-01-01T00:00:00.000Z")


def _stamp_us(moment: datetime) -> str:
    """`_stamp` to the microsecond (the scheduler's fire times)."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return _stamp(moment)[:-1] + f"{moment.microsecond % 1000:03d}Z"


def _digest(task: Task) -> bytes:
    """The hash of a done message's task (its wire form), which spots a redelivery. Kept for
    the last tasks: `has_done` and `record_done` ask for the same ones."""
    cached = _DIGESTS.get(id(task))
    if cached is not None and cached[0] is task:
        return cached[1]
    digest = hashlib.blake2b(task.to_json(), digest_size=16).digest()
    if len(_DIGESTS) >= 1024:
        _DIGESTS.clear()
    _DIGESTS[id(task)] = (task, digest)  # the task kept with it: its id is not reused meanwhile
    return digest


_DIGESTS: dict[int, tuple[Task, bytes]] = {}


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

    def has_done_many(self, tasks: Iterable[Task]) -> list[bool]:
        """`has_done` for each of several tasks, in one query per 500 (the engine's group
        commit asks for a whole batch of done messages at once)."""
        digests = [_digest(task) for task in tasks]
        found: set[bytes] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start:start + 500]
            found.update(r[0] for r in self._rows(
                f"SELECT digest FROM tasks WHERE digest IN ({','.join('?' * len(chunk))})", chunk))
        return [digest in found for digest in digests]

    def record_tasks(self, rows: Iterable[tuple[str, Task, str, str, int, str, datetime | None]]
                     ) -> int:
        """`record_done` and `record_sent` for several tasks in one statement, in order: each
        row is (event, task, workflow, phase, attempt, topic, at), event `done` (its topic is
        ignored) or `sent`. Returns the rows written: fewer than given when a done message was
        recorded before, which `record_done` would have said; the caller then rolls back."""
        values = [(event, task.id, task.type, task.job, task.info, task.meta, task.result, task.msg,
                   _task_time(task.created), _task_time(task.started), _task_time(task.ended),
                   workflow, phase, attempt, topic if event == "sent" else "",
                   _digest(task) if event == "done" else None, _stamp(at))
                  for event, task, workflow, phase, attempt, topic, at in rows]
        if not values:
            return 0
        return self._write(lambda conn: conn.executemany(_INSERT_TASK, values).rowcount)

    def _insert_task(self, event: str, task: Task, workflow: str, phase: str, attempt: int,
                     topic: str, digest: bytes | None, at: datetime | None) -> int | None:
        row = (event, task.id, task.type, task.job, task.info, task.meta, task.result, task.msg,
               _task_time(task.created), _task_time(task.started), _task_time(task.ended),
               workflow, phase, attempt, topic, digest, _stamp(at))

        def work(conn: sqlite3.Connection) -> int | None:
            cur = conn.execute(_INSERT_TASK, row)
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
               limit: int = 100, before: int | None = None, offset: int = 0) -> list[AlertRecord]:
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
        rows = self._rows(sql + " ORDER BY aid DESC LIMIT ? OFFSET ?",
                          [*params, _page(limit), max(0, int(offset))])
        return [self._alert(r) for r in rows]

    def unsent_alerts(self, *, limit: int = MAX_PAGE, after: int = 0,
                      immediate: bool | None = None) -> list[AlertRecord]:
        """Alerts no notification carried yet, oldest first; the next page is
        `after=page[-1].id`. `immediate`: only (True) or all but (False) `alert` results."""
        where = {None: "", True: " AND result = 'alert'", False: " AND result != 'alert'"}[immediate]
        rows = self._rows(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE sent_at IS NULL AND aid > ?"
                          f"{where} ORDER BY aid LIMIT ?", (after, limit))
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
                      path: str | None = None, since: datetime | None = None,
                      until: datetime | None = None, matched: bool | None = None,
                      offset: int = 0) -> list[FileMessageRecord]:
        """Newest first; received in [since, until); `matched`: that started tasks, or none."""
        where, params = [], []
        if path is not None:
            where.append("path = ?")
            params.append(path)
        if before is not None:
            where.append("fid < ?")
            params.append(before)
        for clause, value in (("received_at >= ?", since), ("received_at < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(_stamp(value))
        if matched is not None:
            where.append("task_ids != '[]'" if matched else "task_ids = '[]'")
        sql = "SELECT fid, path, size, message, task_ids, received_at FROM file_messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY fid DESC LIMIT ? OFFSET ?",
                          [*params, _page(limit), max(0, int(offset))])
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

    # --- dashboard reads (runtime/web) -----------------------------------------------------
    # A task row of the dashboard is one sent task (not a copy sent to the failed topic) with
    # the result, msg, started and ended of its latest done message (same id, type, job and
    # created), or a done message that matches no sent task (a task started elsewhere).

    _VIEW = (
        "WITH base AS ("
        " SELECT s.seq, s.event, s.id, s.type, s.job, s.info, s.meta, s.created, s.workflow,"
        " s.phase, s.attempt, s.topic, s.recorded_at,"
        " (SELECT d.seq FROM tasks d WHERE d.id = s.id AND d.event = 'done' AND d.type = s.type"
        "  AND d.job = s.job AND d.created = s.created ORDER BY d.seq DESC LIMIT 1) AS dseq"
        " FROM tasks s WHERE s.event = 'sent' AND s.topic = s.type AND {window}"
        " UNION ALL"
        " SELECT d.seq, d.event, d.id, d.type, d.job, d.info, d.meta, d.created, d.workflow,"
        " d.phase, d.attempt, d.topic, d.recorded_at, d.seq FROM tasks d"
        " WHERE d.event = 'done' AND {window_d} AND NOT EXISTS (SELECT 1 FROM tasks s"
        "  WHERE s.id = d.id AND s.event = 'sent' AND s.type = d.type AND s.job = d.job"
        "  AND s.created = d.created)),"
        " view AS (SELECT base.*, coalesce(d.result, '') AS result, coalesce(d.msg, '') AS msg,"
        " coalesce(d.started, '') AS started, coalesce(d.ended, '') AS ended"
        " FROM base LEFT JOIN tasks d ON d.seq = base.dseq) "
    )

    def _view(self, since: datetime | None, until: datetime | None, id: str | None,
              type: str | None = None, job: str | None = None,
              result: str | None = None) -> tuple[str, list[Any], str, list[Any]]:
        window, params = [], []
        if id is not None:
            window.append("{t}.id = ?")
            params.append(id)
        if since is not None:
            window.append("{t}.created >= ?")
            params.append(format_time(since))
        if until is not None:
            window.append("{t}.created < ?")
            params.append(format_time(until))
        clause = " AND ".join(window) or "1"
        sql = self._VIEW.format(window=clause.format(t="s"), window_d=clause.format(t="d"))
        where, wparams = [], []
        for column, value in (("type", type), ("job", job), ("result", result)):
            if value is not None:
                where.append(f"{column} = ?")
                wparams.append(value)
        return sql, params * 2, " WHERE " + " AND ".join(where) if where else "", wparams

    def task_rows(self, *, since: datetime | None = None, until: datetime | None = None,
                  id: str | None = None, type: str | None = None, job: str | None = None,
                  result: str | None = None, limit: int = 100, offset: int = 0) -> list[TaskRecord]:
        """Tasks created in [since, until) (and of `id`, `type`, `job`, `result`; "" is a
        running task), newest first: each record's task carries its latest done message's
        result, msg, started and ended."""
        sql, params, where, wparams = self._view(since, until, id, type, job, result)
        rows = self._rows(
            sql + "SELECT seq, event, id, type, job, info, meta, result, msg, created, started,"
            " ended, workflow, phase, attempt, topic, recorded_at FROM view" + where
            + " ORDER BY created DESC, seq DESC LIMIT ? OFFSET ?",
            [*params, *wparams, _page(limit), max(0, int(offset))])
        return [self._task_record(r) for r in rows]

    def task_row_counts(self, *, since: datetime | None = None, until: datetime | None = None,
                        id: str | None = None, type: str | None = None, job: str | None = None,
                        result: str | None = None, by_hour: bool = False) -> dict[tuple, int]:
        """How many task rows (as `task_rows`) per (type, job, result), or per (hour of created,
        result) with `by_hour`."""
        sql, params, where, wparams = self._view(since, until, id, type, job, result)
        keys = "substr(created, 12, 2), result" if by_hour else "type, job, result"
        rows = self._rows(f"{sql}SELECT {keys}, count(*) FROM view{where} GROUP BY {keys}",
                          [*params, *wparams])
        return {tuple(r[:-1]): r[-1] for r in rows}

    def latest_phase_tasks(self) -> dict[tuple[str, str], TaskRecord]:
        """The latest event of each (workflow, phase): a sent task (running) or a done message."""
        rows = self._rows(
            f"SELECT {_TASK_COLUMNS} FROM tasks WHERE seq IN (SELECT max(seq) FROM tasks"
            " WHERE phase != '' AND (event = 'done' OR topic = type) GROUP BY workflow, phase)")
        return {(r[12], r[13]): self._task_record(r) for r in rows}

    def sent_tasks(self, ids: Iterable[str]) -> dict[str, list[TaskRecord]]:
        """The tasks sent under each id (a file message's tasks), oldest first."""
        wanted = list(dict.fromkeys(ids))[:MAX_PAGE]
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        rows = self._rows(f"SELECT {_TASK_COLUMNS} FROM tasks WHERE event = 'sent' AND id IN"
                          f" ({marks}) AND topic = type ORDER BY seq", wanted)
        found: dict[str, list[TaskRecord]] = {}
        for r in rows:
            found.setdefault(r[2], []).append(self._task_record(r))
        return found

    def alert_keys(self, *, since: datetime | None = None, until: datetime | None = None,
                   limit: int = 100_000) -> list[tuple[str, str, str]]:
        """(type, job, task_time) of the alerts raised in [since, until): what summaries group."""
        where, params = [], []
        for clause, value in (("created >= ?", since), ("created < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(_stamp(value))
        sql = "SELECT type, job, task_time FROM alerts"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [tuple(r) for r in self._rows(sql + " ORDER BY aid LIMIT ?", [*params, int(limit)])]

    def count_rows(self, table: str, *, since: datetime | None = None,
                   until: datetime | None = None) -> int:
        """Rows of `tasks`, `alerts`, `file_messages`, `rejected` or `pending_retries`, those
        stamped in [since, until) when given (by when they happened)."""
        column = {"tasks": "created", "alerts": "created", "file_messages": "received_at",
                  "rejected": "received_at", "pending_retries": "due_at"}[table]
        stamp = format_time if table == "tasks" else _stamp
        where, params = [], []
        for clause, value in ((f"{column} >= ?", since), (f"{column} < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(stamp(value))
        sql = f"SELECT count(*) FROM {table}" + (" WHERE " + " AND ".join(where) if where else "")
        return self._rows(sql, params)[0][0]

    def file_message_counts(self, *, since: datetime | None = None,
                            until: datetime | None = None) -> dict[str, int]:
        """File messages received in [since, until): total, matched (that started tasks) and
        the tasks they started."""
        where, params = [], []
        for clause, value in (("received_at >= ?", since), ("received_at < ?", until)):
            if value is not None:
                where.append(clause)
                params.append(_stamp(value))
        sql = ("SELECT count(*), coalesce(sum(task_ids != '[]'), 0),"
               " coalesce(sum(json_array_length(task_ids)), 0) FROM file_messages")
        if where:
            sql += " WHERE " + " AND ".join(where)
        total, matched, tasks = self._rows(sql, params)[0]
        return {"total": total, "matched": matched, "tasks": tasks}

    def days_with_rows(self, table: str, *, limit: int = 400) -> list[str]:
        """The UTC days (YYYY-MM-DD) that have rows in `tasks` (by created), `alerts` or
        `file_messages`, newest first; one indexed look-up per day."""
        column = {"tasks": "created", "alerts": "created", "file_messages": "received_at"}[table]
        days: list[str] = []
        bound = "9999"
        while len(days) < limit:
            rows = self._rows(f"SELECT max({column}) FROM {table} WHERE {column} < ?", (bound,))
            if not rows or rows[0][0] is None:
                break
            day = rows[0][0][:10]
            days.append(day)
            bound = day
        return days

    def table_stats(self) -> dict[str, Any]:
        """Rows per table, and the database's size in bytes (page_count * page_size)."""
        tables = [r[0] for r in self._rows(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " ORDER BY name")]
        counts = {t: self._rows(f'SELECT count(*) FROM "{t}"')[0][0] for t in tables}
        pages = self._rows("PRAGMA page_count")[0][0]
        size = self._rows("PRAGMA page_size")[0][0]
        return {"tables": counts, "bytes": pages * size, "page_count": pages, "page_size": size}

    # --- notifications and operations state (runtime/notify.py, incomplete.py) --------------

    def queue_notification(self, kind: str, channel: str, text: str, body: str,
                           alert_ids: Iterable[int] = (), *, at: datetime | None = None) -> int:
        """A message to deliver to `channel`, due at once. Queued in the `transaction()` that
        marks its alerts sent, each alert is carried by exactly one message per channel."""
        stamp = _stamp(at)
        row = (kind, channel, text, body, json.dumps(list(alert_ids)), stamp, stamp)
        return self._write(lambda conn: conn.execute(
            "INSERT INTO notifications (kind, channel, text, body, alert_ids, created, next_at)"
            " VALUES (?,?,?,?,?,?,?)", row).lastrowid)

    def due_notifications(self, now: datetime, *, limit: int = 100) -> list[NotificationRecord]:
        """Pending messages due at or before `now`, in queue order."""
        rows = self._rows(f"SELECT {_NOTE_COLUMNS} FROM notifications WHERE status = 'pending'"
                          " AND next_at <= ? ORDER BY nid LIMIT ?", (_stamp(now), limit))
        return [self._notification(r) for r in rows]

    def next_notification_due(self) -> datetime | None:
        return _when(self._rows("SELECT min(next_at) FROM notifications WHERE status = 'pending'")[0][0])

    def notification_sent(self, note_id: int, *, at: datetime | None = None) -> None:
        self._write(lambda conn: conn.execute(
            "UPDATE notifications SET status = 'sent', attempts = attempts + 1, done_at = ?"
            " WHERE nid = ?", (_stamp(at), note_id)))

    def notification_failed(self, note_id: int, error: str, *, retry_at: datetime | None,
                            at: datetime | None = None) -> None:
        """A delivery that failed: tried again at `retry_at`, or given up (None)."""
        if retry_at is None:
            sql, params = ("UPDATE notifications SET status = 'failed', attempts = attempts + 1,"
                           " error = ?, done_at = ? WHERE nid = ?", (error, _stamp(at), note_id))
        else:
            sql, params = ("UPDATE notifications SET attempts = attempts + 1, error = ?, next_at = ?"
                           " WHERE nid = ?", (error, _stamp(retry_at), note_id))
        self._write(lambda conn: conn.execute(sql, params))

    def postpone_notifications(self, channel: str, until: datetime) -> int:
        """Pending messages of `channel` due before `until` wait until then (the channel is
        failing: they stay behind the one being retried)."""
        stamp = _stamp(until)
        return self._write(lambda conn: conn.execute(
            "UPDATE notifications SET next_at = ? WHERE status = 'pending' AND channel = ?"
            " AND next_at < ?", (stamp, channel, stamp)).rowcount)

    def notifications(self, *, limit: int = 50, before: int | None = None,
                      status: str | None = None) -> list[NotificationRecord]:
        """Newest first; the next page is `before=page[-1].id`."""
        where, params = [], []
        for clause, value in (("status = ?", status), ("nid < ?", before)):
            if value is not None:
                where.append(clause)
                params.append(value)
        sql = f"SELECT {_NOTE_COLUMNS} FROM notifications"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._rows(sql + " ORDER BY nid DESC LIMIT ?", [*params, _page(limit)])
        return [self._notification(r) for r in rows]

    @staticmethod
    def _notification(r: tuple) -> NotificationRecord:
        return NotificationRecord(*r[:5], alert_ids=tuple(json.loads(r[5])), status=r[6],
                                  attempts=r[7], error=r[8], created=_when(r[9]),
                                  next_at=_when(r[10]), done_at=_when(r[11]))

    def cleanup_notifications(self, older_than: timedelta = DEFAULT_RETENTION, *,
                              now: datetime | None = None, batch_size: int | None = None) -> int:
        """Deletes the sent and failed notifications created before now - older_than (pending
        ones are kept), at most `batch_size` of them, oldest first."""
        cutoff = _stamp((now or datetime.now(timezone.utc)) - older_than)
        limit = -1 if batch_size is None else max(1, int(batch_size))
        return self._write(lambda conn: conn.execute(
            "DELETE FROM notifications WHERE nid IN (SELECT nid FROM notifications WHERE"
            " created < ? AND status != 'pending' ORDER BY created LIMIT ?)", (cutoff, limit)).rowcount)

    def state(self, key: str) -> str | None:
        """A value of the operations' key-value state (ops_state)."""
        rows = self._rows("SELECT value FROM ops_state WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_state(self, key: str, value: str, *, at: datetime | None = None) -> None:
        row = (key, value, _stamp(at))
        self._write(lambda conn: conn.execute(
            "INSERT INTO ops_state (key, value, updated_at) VALUES (?,?,?) ON CONFLICT (key)"
            " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at", row))

    def unfinished_sent(self, after: int, cutoff: datetime, *,
                        limit: int = MAX_PAGE) -> tuple[list[TaskRecord], int]:
        """For the incomplete-task check: the tasks sent to their worker (topic = type: not the
        copies sent to the failed topic) in the rows after `after` up to the first task sent
        at or after `cutoff` (at most `limit` rows) with no done message of the
        same id, type and info recorded after them (a worker echoing another job or created
        still counts). Returns them and the last row examined: the next call's `after`."""
        top = max(after, self._rows("SELECT max(seq) FROM tasks")[0][0] or 0)  # rows after: later
        bound = self._rows("SELECT seq FROM tasks WHERE seq > ? AND seq <= ? AND event = 'sent'"
                           " AND recorded_at >= ? ORDER BY seq LIMIT 1", (after, top, _stamp(cutoff)))
        through = bound[0][0] - 1 if bound else top
        last = self._rows("SELECT seq FROM tasks WHERE seq > ? AND seq <= ? ORDER BY seq"
                          " LIMIT 1 OFFSET ?", (after, through, max(1, limit) - 1))
        if last:
            through = last[0][0]
        found = self._rows(
            f"SELECT {_TASK_COLUMNS} FROM tasks s WHERE s.seq > ? AND s.seq <= ?"
            " AND s.event = 'sent' AND s.topic = s.type AND NOT EXISTS (SELECT 1 FROM tasks d"
            " WHERE d.id = s.id AND d.seq > s.seq AND d.event = 'done' AND d.type = s.type"
            " AND d.info = s.info) ORDER BY s.seq", (after, through))
        return [self._task_record(r) for r in found], through

    # --- retention --------------------------------------------------------------------------

    def cleanup(self, older_than: timedelta = DEFAULT_RETENTION, *,
                now: datetime | None = None, batch_size: int | None = None) -> dict[str, int]:
        """Deletes history recorded before now - older_than (strictly before; compared as
        timestamps). Pending retries and phases are kept. Returns the rows deleted per table.
        With `batch_size`, at most that many rows in all, oldest first, in one short
        transaction: call again while it deletes `batch_size` (runtime/retention.py does)."""
        cutoff = _stamp((now or datetime.now(timezone.utc)) - older_than)
        targets = (("tasks", "recorded_at"), ("alerts", "created"),
                   ("file_messages", "received_at"), ("rejected", "received_at"))

        def work(conn: sqlite3.Connection) -> dict[str, int]:
            return {table: conn.execute(
                f"DELETE FROM {table} WHERE julianday({column}) < julianday(?)", (cutoff,)).rowcount
                for table, column in targets}

        def batch(conn: sqlite3.Connection) -> dict[str, int]:
            # flowlord's stamps are fixed-width UTC text: text order is time order, and the
            # column's index finds the oldest rows without reading the whole table
            left, deleted = max(1, int(batch_size)), {}
            for table, column in targets:
                deleted[table] = conn.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} WHERE"
                    f" {column} < ? ORDER BY {column} LIMIT ?)", (cutoff, left)).rowcount if left else 0
                left -= deleted[table]
            return deleted

        return self._write(work if batch_size is None else batch)


def _page(limit: int) -> int:
    return max(1, min(int(limit), MAX_PAGE))
