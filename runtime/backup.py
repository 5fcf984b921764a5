"""Backup and restore of the SQLite history.

    restore_if_missing("data/flowlord.db", "s3://bucket/flowlord.db")   # before Store.open
    backup_database("data/flowlord.db", "/backups/flowlord.db")         # periodically, at stop

A backup is taken with SQLite's online backup API (`sqlite3.Connection.backup`), never by
copying the file: one step, under one read transaction, so it is a consistent snapshot while
the store keeps writing (WAL: readers do not block the writer, nor the writer them). It is
written to a temporary file beside the target, checked (`PRAGMA quick_check`), switched out of
WAL mode (a standalone file), flushed to disk, and only then renamed over the target
(`os.replace`, atomic) or uploaded. So a crash during a backup leaves the history untouched
(it is only read) and the previous backup whole (it is replaced only by a complete one).

Targets: a local path (or `file://`), or any fsspec URL: `s3://` with `pip install
'flowlord[s3]'`, `gs://` with `flowlord[gcs]`, `memory://` (the tests). Object stores commit
an upload whole, so the remote backup is replaced atomically too; the snapshot is made in a
local temporary file (`<database>.backup-tmp`) first.

Restore: at start, when the local file is missing or empty (Go: empty) and the backup exists,
the backup is copied to a temporary file, checked, and renamed into place; leftover `-wal` and
`-shm` files of the old database are removed first (SQLite would replay a stale WAL into the
restored file). A backup that is not a sound database is not restored (logged): flowlord starts
with an empty history rather than not at all.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = ["BackupError", "BackupInfo", "backup_database", "is_remote", "restore_if_missing"]

log = logging.getLogger("flowlord.backup")


class BackupError(Exception):
    """A backup or restore that could not be done (the caller logs it: never fatal)."""


@dataclass(frozen=True)
class BackupInfo:
    target: str
    bytes: int
    seconds: float
    at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "bytes": self.bytes, "seconds": round(self.seconds, 3),
                "at": self.at.isoformat().replace("+00:00", "Z")}


def is_remote(target: str) -> bool:
    """An fsspec URL (s3://, gs://, memory://, …); `file://` and plain paths are local."""
    return "://" in target and not target.startswith("file://")


def _local(target: str) -> str:
    return target[len("file://"):] if target.startswith("file://") else target


def _fs(target: str, options: dict[str, Any] | None):
    try:
        import fsspec
    except ImportError:
        scheme = target.split("://", 1)[0]
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(scheme, "backup")
        raise BackupError(f"{target}: remote backups need fsspec: pip install 'flowlord[{extra}]'") from None
    try:
        return fsspec.core.url_to_fs(target, **(options or {}))
    except (ImportError, ValueError) as error:
        scheme = target.split("://", 1)[0]
        extra = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}.get(scheme)
        hint = f": pip install 'flowlord[{extra}]'" if extra else ""
        raise BackupError(f"{target}: {error}{hint}") from error


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: str) -> None:
    try:
        _fsync(os.path.dirname(os.path.abspath(path)) or ".")
    except OSError:  # some systems cannot open a folder: the rename is still atomic
        pass


def _remove(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


def _check(path: str) -> None:
    conn = sqlite3.connect(f"{Path(path).absolute().as_uri()}?mode=ro", uri=True)
    try:
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as error:
        raise BackupError(f"{path} is not a sound SQLite database: {error}") from error
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"{path} is not a sound SQLite database: {result}")


def _snapshot(source: str, tmp: str, pages: int,
              progress: Callable[[int, int, int], object] | None) -> None:
    """The online backup of `source` into a new standalone file `tmp`."""
    _remove(tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm")
    src = sqlite3.connect(f"{Path(source).absolute().as_uri()}?mode=rw", uri=True)
    try:
        src.execute("PRAGMA query_only=ON")
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst, pages=pages, progress=progress)
            dst.execute("PRAGMA journal_mode=DELETE")  # a file on its own, not marked WAL
            result = dst.execute("PRAGMA quick_check").fetchone()[0]
            if result != "ok":
                raise BackupError(f"the snapshot of {source} failed its check: {result}")
        finally:
            dst.close()
    finally:
        src.close()
    _fsync(tmp)


def backup_database(source: str | os.PathLike, target: str, *, pages: int = -1,
                    progress: Callable[[int, int, int], object] | None = None,
                    options: dict[str, Any] | None = None) -> BackupInfo:
    """Backs up the database file `source` to `target` (a path or an fsspec URL). `pages`
    and `progress` are `Connection.backup`'s (-1: all in one step, the consistent way while
    another connection writes). Raises BackupError (or OSError, sqlite3.Error)."""
    source = str(source)
    if source == ":memory:":
        raise BackupError("an in-memory store cannot be backed up")
    if not os.path.exists(source):
        raise BackupError(f"{source} does not exist")
    started = time.monotonic()
    if is_remote(target):
        fs, path = _fs(target, options)
        tmp = source + ".backup-tmp"
        try:
            _snapshot(source, tmp, pages, progress)
            size = os.path.getsize(tmp)
            parent = path.rsplit("/", 1)[0] if "/" in path else ""
            if parent:
                try:
                    fs.makedirs(parent, exist_ok=True)
                except Exception:  # object stores have no folders
                    pass
            fs.put_file(tmp, path)
        finally:
            _remove(tmp, tmp + "-journal")
    else:
        path = os.path.abspath(_local(target))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        try:
            _snapshot(source, tmp, pages, progress)
            size = os.path.getsize(tmp)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp, tmp + "-journal")
            raise
        _fsync_dir(path)
    info = BackupInfo(target, size, time.monotonic() - started, datetime.now(timezone.utc))
    log.info("backed up %s to %s (%d bytes, %.2fs)", source, target, size, info.seconds)
    return info


def _exists(target: str, options: dict[str, Any] | None) -> bool:
    if is_remote(target):
        fs, path = _fs(target, options)
        return fs.exists(path)
    return os.path.exists(_local(target))


def restore_if_missing(local_path: str | os.PathLike, backup_path: str, *,
                       options: dict[str, Any] | None = None) -> bool:
    """Restores the backup into `local_path` when that file is missing or empty. True when
    it did; False when there was nothing to do or the backup could not be used (logged)."""
    local = str(local_path)
    if not backup_path or local == ":memory:":
        return False
    if os.path.exists(local) and os.path.getsize(local) > 0:
        return False
    try:
        if not _exists(backup_path, options):
            log.info("no backup at %s yet: starting with an empty history", backup_path)
            return False
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        tmp = local + ".restore-tmp"
        _remove(tmp)
        try:
            if is_remote(backup_path):
                fs, path = _fs(backup_path, options)
                fs.get_file(path, tmp)
            else:
                # the backup is a standalone file (no WAL): the online API copies it exactly
                src = sqlite3.connect(f"{Path(_local(backup_path)).absolute().as_uri()}?mode=ro", uri=True)
                try:
                    dst = sqlite3.connect(tmp)
                    try:
                        src.backup(dst)
                    finally:
                        dst.close()
                finally:
                    src.close()
            _check(tmp)
            _fsync(tmp)
            _remove(local + "-wal", local + "-shm", local + "-journal")
            os.replace(tmp, local)
        finally:
            _remove(tmp, tmp + "-journal")
        _fsync_dir(local)
    except (BackupError, OSError, sqlite3.Error) as error:
        log.error("restoring %s from %s failed (%s): starting with an empty history", local,
                  backup_path, error)
        return False
    log.info("restored %s from the backup %s", local, backup_path)
    return True
