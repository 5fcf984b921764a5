"""Operations: what keeps an operator informed and the history safe, beside the engine.

    restore_history(config, store_path)          # before Store.open: restore when missing
    ops = Operations(store, config, clock)
    engine.add_listener(ops.on_event)            # immediate messages for `alert` results
    await ops.start()                            # the loops below, as asyncio tasks
    ...
    await ops.send_test()                        # GET /notify
    ops.status()                                 # the About page
    await ops.stop()                             # a last backup; then close the store

The loops, on the engine's clock:

* summaries (runtime/notify.py): a tick at start then at the notification frequency; each
  tick first runs the incomplete-task check (runtime/incomplete.py), as Go does;
* immediate alerts: when the engine reports an `alert` result (and every min frequency);
* delivery of the outbox, with its retries;
* backup (runtime/backup.py) every `backup_interval` (1h) when `backup_path` is set, and at stop;
* retention (runtime/retention.py) at start and every `retention_interval` (24h).

None of them is ever fatal: a failure is logged, shown by `status()` and tried again.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .backup import BackupInfo, backup_database, restore_if_missing
from .clock import Clock, SystemClock
from .incomplete import DEFAULT_TASK_TTL, check_incomplete, task_ttl
from .notify import Channel, Notifications, SlackChannel, WebhookChannel
from .retention import DEFAULT_BATCH, DEFAULT_PAUSE, purge
from .store import DEFAULT_RETENTION, Store

__all__ = ["OpsConfig", "Operations", "restore_history"]

log = logging.getLogger("flowlord.operations")


@dataclass
class OpsConfig:
    """The operations' settings (Go's `[slack]` and `[sqlite]`, and `[webhook] url`)."""

    slack_url: str = ""
    slack_prefix: str = ""
    slack_channel: str = ""
    slack_title: str = ""
    webhook_url: str = ""
    min_frequency: timedelta = timedelta(minutes=5)  # 0: 5m
    max_frequency: timedelta = timedelta(0)  # not above min: 16 x min
    dashboard_url: str = ""  # the report link of summaries: <dashboard_url>/web/alert?date=…
    task_ttl: timedelta = DEFAULT_TASK_TTL  # at least 1h
    incomplete_check: bool = True
    retention: timedelta = DEFAULT_RETENTION
    retention_interval: timedelta = timedelta(days=1)
    retention_batch: int = DEFAULT_BATCH
    retention_pause: float = DEFAULT_PAUSE
    backup_path: str = ""  # a path, file://, s3://, gs://, memory://; empty: no backups
    backup_interval: timedelta = timedelta(hours=1)
    backup_options: dict[str, Any] = field(default_factory=dict)  # fsspec storage options
    http_timeout: float = 10.0
    retry_backoff: timedelta = timedelta(seconds=2)
    retry_backoff_max: timedelta = timedelta(minutes=5)
    give_up_after: timedelta = timedelta(hours=24)
    spacing: float = 1.0  # seconds between two posts to one channel

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> OpsConfig:
        """From `flowlord serve`'s settings (read by attribute: `slack`, `sqlite`, an
        optional `webhook`, `host`, `http_port`); `overrides` win."""
        slack = getattr(settings, "slack", None)
        sqlite = getattr(settings, "sqlite", None)
        webhook = getattr(settings, "webhook", None)
        values: dict[str, Any] = {}
        for name, source, attr in (
                ("slack_url", slack, "url"), ("slack_prefix", slack, "prefix"),
                ("slack_channel", slack, "channel"), ("slack_title", slack, "title"),
                ("min_frequency", slack, "min_frequency"), ("max_frequency", slack, "max_frequency"),
                ("webhook_url", webhook, "url"), ("task_ttl", sqlite, "task_ttl"),
                ("retention", sqlite, "retention"), ("backup_path", sqlite, "backup_path"),
                ("backup_interval", sqlite, "backup_interval")):
            value = getattr(source, attr, None) if source is not None else None
            if value is not None:
                values[name] = value
        host, port = getattr(settings, "host", "") or "localhost", getattr(settings, "http_port", 0)
        if port:
            values["dashboard_url"] = f"http://{host}:{port}"
        values.update(overrides)
        return cls(**values)

    def channels(self) -> list[Channel]:
        found: list[Channel] = []
        if self.slack_url:
            found.append(SlackChannel(self.slack_url, prefix=self.slack_prefix,
                                      channel=self.slack_channel, title=self.slack_title))
        if self.webhook_url:
            found.append(WebhookChannel(self.webhook_url))
        return found


def restore_history(config: OpsConfig, store_path: str) -> bool:
    """Before `Store.open`: restores the backup when the local file is missing or empty."""
    if not config.backup_path:
        return False
    return restore_if_missing(store_path, config.backup_path, options=config.backup_options)


class Operations:
    def __init__(self, store: Store, config: OpsConfig | None = None, clock: Clock | None = None,
                 *, channels: list[Channel] | None = None) -> None:
        self.store = store
        self.config = config = config or OpsConfig()
        self.clock = clock or SystemClock()
        self.task_ttl = task_ttl(config.task_ttl)
        self.notifications = Notifications(
            store, config.channels() if channels is None else channels, self.clock,
            min_frequency=config.min_frequency, max_frequency=config.max_frequency,
            dashboard_url=config.dashboard_url, timeout=config.http_timeout,
            retry_backoff=config.retry_backoff, retry_backoff_max=config.retry_backoff_max,
            give_up_after=config.give_up_after, spacing=config.spacing)
        self.last_backup: BackupInfo | None = None
        self.last_backup_error: str = ""
        self.last_retention: dict[str, Any] | None = None
        self.last_incomplete: dict[str, Any] | None = None
        self._tasks: list[asyncio.Task] = []
        self._retention_task: asyncio.Task | None = None
        self._backup_thread_lock = threading.Lock()  # one backup at a time, whoever awaits it
        self._stopping: asyncio.Event | None = None
        self._backup_lock: asyncio.Lock | None = None
        self._retention_lock: asyncio.Lock | None = None
        self.started = False

    # --- the engine's listener ----------------------------------------------------------

    def on_event(self, event: Any) -> None:
        """`engine.add_listener(ops.on_event)`: an `alert` result is sent at once."""
        if getattr(event, "kind", "") == "alert" and getattr(event, "result", "") == "alert":
            self.notifications.alert_raised()

    # --- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        self._stopping = asyncio.Event()
        self._backup_lock = asyncio.Lock()
        self._retention_lock = asyncio.Lock()
        notes = self.notifications
        loops = [notes.run_summaries(self._before_tick), notes.run_immediate(), notes.run_delivery()]
        if self.config.backup_path:
            loops.append(self._backup_loop())
        self._tasks = [asyncio.create_task(loop) for loop in loops]
        self._retention_task = asyncio.create_task(self._retention_loop())
        self._tasks.append(self._retention_task)
        log.info("operations started: notifications to %s, backups %s, retention %s days",
                 ", ".join(notes.channels) or "nowhere (no [slack] url nor [webhook] url)",
                 f"to {self.config.backup_path} every {self.config.backup_interval}"
                 if self.config.backup_path else "off",
                 f"{self.config.retention.total_seconds() / 86400:g}")

    async def stop(self, *, backup: bool = True) -> None:
        """Stops the loops (a post in flight is finished and recorded, within the HTTP
        timeout; a purge stops between two batches), then takes a last backup. Call it before
        closing the store."""
        if not self.started:
            return
        self.started = False
        self.notifications.stop()
        if self._stopping is not None:
            self._stopping.set()
        if self._retention_task is not None:
            self._retention_task.cancel()
        others = [t for t in self._tasks if t is not self._retention_task]
        if others:
            _, late = await asyncio.wait(others, timeout=self.config.http_timeout + 1)
            for task in late:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks, self._retention_task = [], None
        if backup and self.config.backup_path:
            await self.backup_now()

    # --- steps --------------------------------------------------------------------------

    def _before_tick(self, now: datetime) -> None:
        if not self.config.incomplete_check:
            return
        raised = check_incomplete(self.store, now, self.task_ttl)
        self.last_incomplete = {"at": _iso(now), "raised": len(raised)}

    async def backup_now(self) -> dict[str, Any]:
        """A backup now (periodic, at stop, or on demand). Never raises: the outcome."""
        if not self.config.backup_path:
            return {"error": "no backup_path configured"}
        lock = self._backup_lock or asyncio.Lock()
        async with lock:
            try:
                info = await asyncio.to_thread(self._backup)
            except Exception as error:  # BackupError, OSError, sqlite3.Error, fsspec errors
                self.last_backup_error = f"{type(error).__name__}: {error}"
                log.error("backup to %s failed: %s", self.config.backup_path, self.last_backup_error)
                return {"error": self.last_backup_error}
            self.last_backup, self.last_backup_error = info, ""
            try:
                self.store.set_state("backup.last", info.at.isoformat(), at=self.clock.now())
            except Exception:
                log.exception("recording the backup time")
            return info.as_json()

    def _backup(self) -> BackupInfo:
        with self._backup_thread_lock:  # a cancelled await leaves its thread running
            return backup_database(self.store.path, self.config.backup_path,
                                   options=self.config.backup_options)

    async def purge_now(self) -> dict[str, Any]:
        """Retention now (daily, or on demand): rows older than `retention`, in batches."""
        lock = self._retention_lock or asyncio.Lock()
        async with lock:
            now = self.clock.now()
            deleted = await purge(self.store, self.config.retention, now=now,
                                  batch_size=self.config.retention_batch,
                                  pause=self.config.retention_pause)
            self.last_retention = {"at": _iso(now), "deleted": deleted}
            return deleted

    async def send_test(self) -> dict[str, Any]:
        """GET /notify: a test message to every channel, now. {"channels": {name: "sent" or
        the error}}; no channel configured: {"channels": {}, "error": …}."""
        outcome = await self.notifications.send_test()
        if not outcome:
            return {"channels": {}, "error": "no notification channel configured "
                                             "([slack] url or [webhook] url)"}
        return {"channels": outcome}

    # --- loops --------------------------------------------------------------------------

    async def _backup_loop(self) -> None:
        interval = max(self.config.backup_interval, timedelta(seconds=1))
        while True:
            await self._sleep(self.clock.now() + interval)
            if self._stopping is not None and self._stopping.is_set():
                return
            await self.backup_now()

    async def _retention_loop(self) -> None:
        interval = max(self.config.retention_interval, timedelta(minutes=1))
        while True:
            try:
                await self.purge_now()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("retention")
            await self._sleep(self.clock.now() + interval)
            if self._stopping is not None and self._stopping.is_set():
                return

    async def _sleep(self, until: datetime) -> None:
        assert self._stopping is not None
        waits = [asyncio.ensure_future(self.clock.sleep_until(until)),
                 asyncio.ensure_future(self._stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """For the About page: the notification frequency, the last summary, the last backup."""
        try:
            notify = self.notifications.status()
        except Exception as error:  # the store is closed or failing: still a page
            notify = {"error": str(error)}
        last_backup = self.last_backup.as_json() if self.last_backup else None
        if last_backup is None:
            try:
                stored = self.store.state("backup.last")
            except Exception:
                stored = None
            if stored:
                last_backup = {"at": stored.replace("+00:00", "Z"), "target": self.config.backup_path}
        return {
            "notifications": notify,
            "backup": {"path": self.config.backup_path or None,
                       "interval": str(self.config.backup_interval) if self.config.backup_path else None,
                       "last": last_backup, "error": self.last_backup_error or None},
            "retention": {"days": self.config.retention.total_seconds() / 86400,
                          "last": self.last_retention},
            "incomplete": {"task_ttl": str(self.task_ttl), "last": self.last_incomplete},
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
