"""The store's connections: one writer under a lock, a reader per thread, WAL, the schema
version, and a database deleted or replaced under us opened anew. See the package docstring."""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, TypeVar

__all__ = ["SCHEMA_VERSION", "Database", "StoreError"]

log = logging.getLogger("flowlord.store")

SCHEMA_VERSION = 3
_UPGRADES: dict[int, str] = {  # version -> SQL that upgrades the version before it to it
    # 2: the scheduler's memory: per cron phase, the instant through which its fire times were
    # handled (fired, or skipped by the catch-up policy), so fires missed while down are seen.
    2: """
CREATE TABLE schedule_state (
    workflow    TEXT    NOT NULL,
    phase_id    TEXT    NOT NULL,
    last_fire   TEXT    NOT NULL,              -- UTC, microseconds: 2024-01-15T00:00:00.000000Z
    updated_at  TEXT    NOT NULL,
    PRIMARY KEY (workflow, phase_id)
) STRICT;
PRAGMA user_version = 2;
""",
    # 3: operations (runtime/notify.py, incomplete.py, backup.py): the notification outbox (a
    # message per channel, queued in the transaction that marks its alerts sent, then delivered
    # and retried from here) and a small key-value state (the incomplete check's watermark).
    3: """
CREATE TABLE notifications (
    nid         INTEGER PRIMARY KEY,
    kind        TEXT    NOT NULL,              -- alert, summary, test
    channel     TEXT    NOT NULL,              -- slack, webhook
    text        TEXT    NOT NULL DEFAULT '',
    body        TEXT    NOT NULL,              -- the JSON posted
    alert_ids   TEXT    NOT NULL DEFAULT '[]', -- JSON array of the alerts it carries
    status      TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts    INTEGER NOT NULL DEFAULT 0,
    error       TEXT    NOT NULL DEFAULT '',   -- the last delivery error
    created     TEXT    NOT NULL,
    next_at     TEXT    NOT NULL,              -- when a pending one is (next) tried
    done_at     TEXT                           -- when it was sent or given up
) STRICT;
CREATE INDEX notifications_pending ON notifications (next_at, nid) WHERE status = 'pending';
CREATE INDEX notifications_by_created ON notifications (created);
CREATE TABLE ops_state (
    key         TEXT    PRIMARY KEY,
    value       TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
) STRICT;
PRAGMA user_version = 3;
""",
}

T = TypeVar("T")


class StoreError(Exception):
    """The database cannot be used (a schema newer than this flowlord, an unwritable folder,
    a closed store)."""


class _Gate:
    """Shared for reads; exclusive while the connections are swapped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._exclusive = False

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._exclusive = True
            while self._readers:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class Database:
    def __init__(self, path: str | os.PathLike, *, synchronous: str = "NORMAL",
                 busy_timeout: float = 5.0) -> None:
        self.path = str(path)
        self._memory = self.path == ":memory:"
        self._synchronous = synchronous.upper()
        if self._synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous={synchronous!r}: use OFF, NORMAL, FULL or EXTRA")
        self._busy_timeout = busy_timeout
        self._write_lock = threading.RLock()
        self._gate = _Gate()
        self._depth = 0  # > 0 inside transaction()
        self._tx_thread = 0  # the thread inside it
        self._generation = 0
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._side_files: dict[str, tuple[int, int]] = {}  # our -wal and -shm, by suffix
        self._closed = False
        self._commits = 0  # transactions committed, for the checkpointer
        self._checkpoint_wake = threading.Event()
        self._checkpoint_thread: threading.Thread | None = None
        self._writer = self._open_writer()
        if not self._memory:
            self._checkpoint_thread = threading.Thread(
                target=_checkpoint_loop, args=(weakref.ref(self), self._checkpoint_wake),
                name=f"flowlord-checkpoint {self.path}", daemon=True)
            self._checkpoint_thread.start()

    # --- opening ----------------------------------------------------------------------

    def _connect(self, target: str, *, uri: bool = False) -> sqlite3.Connection:
        return sqlite3.connect(target, timeout=self._busy_timeout, isolation_level=None,
                               check_same_thread=False, uri=uri)

    def _open_writer(self) -> sqlite3.Connection:
        if not self._memory:
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {self.path}: {exc}") from exc
        try:
            conn = self._setup_writer()
        except sqlite3.DatabaseError as exc:
            if self._memory or "not a database" not in str(exc):
                raise
            aside = f"{self.path}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
            log.warning("%s is not a SQLite database (%s): moved to %s, starting a new one",
                        self.path, exc, aside)
            os.replace(self.path, aside)
            self._remove_leftovers()
            conn = self._setup_writer()
        if not self._memory:
            self._identity = _file_id(self.path)
            self._side_files = {s: i for s in ("-wal", "-shm") if (i := _file_id(self.path + s))}
        return conn

    def _setup_writer(self) -> sqlite3.Connection:
        conn = self._connect(self.path)
        try:
            if not self._memory:
                conn.execute("PRAGMA journal_mode=WAL")
                # Checkpoints (copying the WAL into the database, with its fsyncs) run in the
                # checkpointer thread, not in the commits of the writer (the event loop's).
                conn.execute("PRAGMA wal_autocheckpoint=0")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}, newer than this "
                             f"flowlord's {SCHEMA_VERSION}: upgrade flowlord or use another file")
        if version == SCHEMA_VERSION:
            return
        steps = []
        if version == 0:
            steps.append(resources.files(__package__).joinpath("schema.sql").read_text("utf-8"))
            version = 1
        steps += [_UPGRADES[v] for v in range(version + 1, SCHEMA_VERSION + 1)]
        try:
            conn.executescript("BEGIN IMMEDIATE;\n" + "\n".join(steps) + "\nCOMMIT;")
        except sqlite3.OperationalError:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # another process may have created it between our look and our write
            if conn.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                raise

    def _remove_leftovers(self, *, ours_only: bool = False) -> None:
        """Removes the side files of a database that is gone. SQLite does not checkpoint nor
        delete the WAL of a file unlinked or renamed under it, and would replay that WAL into
        whatever file next takes the name. With `ours_only` (the file was replaced, not deleted),
        only the side files our own connections had are removed."""
        for suffix in ("-wal", "-shm", "-journal"):
            if ours_only and _file_id(self.path + suffix) != self._side_files.get(suffix):
                continue
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass

    def _file_changed(self) -> bool:
        return not self._memory and _file_id(self.path) != self._identity

    def _reopen_if_changed(self) -> None:
        with self._write_lock:
            if self._closed:
                raise StoreError("the store is closed")
            if self._depth or not self._file_changed():
                return
            with self._gate.exclusive():
                log.warning("%s was deleted or replaced while open: opening it anew", self.path)
                self._close_connections()
                self._remove_leftovers(ours_only=os.path.exists(self.path))
                self._generation += 1
                self._writer = self._open_writer()

    def _close_connections(self) -> None:
        with self._readers_lock:
            connections, self._readers = [self._writer, *self._readers], []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def close(self) -> None:
        with self._write_lock, self._gate.exclusive():
            if not self._closed:
                self._closed = True
                self._close_connections()  # the last one checkpoints and removes the WAL
        self._checkpoint_wake.set()
        thread = self._checkpoint_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    # --- the checkpointer ---------------------------------------------------------------

    _CHECKPOINT_CHANGES = 512  # rows written between two checkpoints, at most (about)
    _CHECKPOINT_EVERY = 1.0  # seconds, when anything was committed

    def _committed(self) -> None:
        self._commits += 1
        changes = self._writer.total_changes  # rows written by this connection
        if changes < self._checkpoint_mark:  # a new connection (the file was replaced)
            self._checkpoint_mark = 0
        if changes - self._checkpoint_mark >= self._CHECKPOINT_CHANGES:
            self._checkpoint_mark = changes
            self._checkpoint_wake.set()

    _checkpoint_mark = 0

    def _checkpoint(self) -> None:
        """A PASSIVE checkpoint: waits for no reader nor writer, copies what it can."""
        try:
            with self.reading() as conn:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except (sqlite3.Error, StoreError) as exc:  # the next one tries again
            log.debug("checkpoint of %s: %s", self.path, exc)

    @property
    def schema_version(self) -> int:
        with self.reading() as conn:
            return conn.execute("PRAGMA user_version").fetchone()[0]

    # --- the two doors: writing and reading ------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together, or none does (an exception rolls back).
        Nested calls join the outer transaction."""
        with self._write_lock:
            if self._depth:
                yield
                return
            self._reopen_if_changed()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            self._depth, self._tx_thread = 1, threading.get_ident()
            try:
                yield
                conn.execute("COMMIT")
                if not self._memory:
                    self._committed()
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._write_lock:
            if self._depth:
                return work(self._writer)
            for attempt in (1, 2):
                try:
                    with self.transaction():
                        return work(self._writer)
                except sqlite3.OperationalError as exc:
                    # SQLite refuses writes to a file unlinked under it ("readonly database" /
                    # "database moved"): open it anew once and write again.
                    if attempt == 2 or not self._file_changed():
                        raise
                    log.warning("write to %s failed (%s): reopening", self.path, exc)
            raise AssertionError("unreachable")

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        if self._memory or (self._depth and self._tx_thread == threading.get_ident()):
            # :memory: has one connection; inside a transaction, read what it wrote
            with self._write_lock:
                if self._closed:
                    raise StoreError("the store is closed")
                yield self._writer
            return
        if self._closed:
            raise StoreError("the store is closed")
        if self._file_changed():
            self._reopen_if_changed()
        with self._gate.shared():
            if self._closed:
                raise StoreError("the store is closed")
            local = self._local
            if getattr(local, "generation", -1) != self._generation or local.conn is None:
                uri = Path(self.path).absolute().as_uri() + "?mode=rw"
                local.conn = self._connect(uri, uri=True)
                local.conn.execute("PRAGMA query_only=ON")
                local.generation = self._generation
                with self._readers_lock:  # not the write lock: a reopen holds it waiting for us
                    self._readers.append(local.conn)
            yield local.conn

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[tuple]:
        with self.reading() as conn:
            return conn.execute(sql, tuple(params)).fetchall()


def _checkpoint_loop(ref: weakref.ref, wake: threading.Event) -> None:
    """The checkpointer thread: copies the WAL into the database after every few hundred rows
    written, and each second something was, so that the WAL stays small and no commit waits
    for a checkpoint's fsyncs. It holds its Database weakly: it ends with it, or when closed."""
    done = -1
    while True:
        wake.wait(Database._CHECKPOINT_EVERY)
        wake.clear()
        database = ref()
        if database is None or database._closed:
            return
        if database._commits != done:
            done = database._commits
            database._checkpoint()
        del database


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino
