"""Notifications: alerts to Slack (incoming webhook) and to a generic JSON webhook.

What is sent (as the Go flowlord, spec §16, without its losses, §20.36):

* an `alert` result: an immediate message, the task as indented JSON, level Critical (red);
* every other alert (exhausted retries, tasks that could not be built or sent, incomplete
  tasks): a periodic summary, one line per `type[:job]` with its count and the compact dates of
  its task times (PrintDates, runtime/summary.py), under a first line
  `see report at <dashboard>/web/alert?date=YYYY-MM-DD` (the dashboard's alert page, as Go's
  link; the UTC day of the oldest alert it carries, the page's days being UTC days).

Cadence (`summary_tick`, the Go state machine): a tick at start, then one every `frequency`;
a tick that finds alerts sends them and doubles the frequency, up to `max_frequency`; a quiet
tick puts it back to `min_frequency`. So while alerts keep coming, 5m, 10m, 20m, 40m, 80m, 80m…

Nothing is lost, nothing is sent twice. The alerts table says which alerts were carried
(`sent_at`); the notifications table is an outbox. A tick selects the unsent alerts, queues
one message per channel carrying exactly those alerts (by id) and marks exactly those sent, in
ONE store transaction: an alert raised meanwhile is simply unsent and goes with the next
summary (Go compared time stamps, and lost what came between its query and its update); a
restart finds them sent and does not send them again (Go re-sent the whole day). The delivery
loop then posts what the outbox holds: a failure (no answer, HTTP 4xx/5xx) is recorded on the
message (attempts, last error) and tried again with a doubling delay (2s up to 5 min; Slack's
`Retry-After` respected), while the channel's later messages wait behind it, until it is sent
or `give_up_after` (24h) old, then marked failed. Never fatal. A crash between a post and its
recording sends that one message again: at least once.

Delivery is stdlib urllib in a thread (timeout 10 s); messages to one channel are spaced by
`spacing` seconds (1 s, as the Go Slack client sleeps, for Slack's rate limit).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from .clock import Clock, SystemClock
from .store import AlertRecord, NotificationRecord, Store
from .summary import alert_groups
from .task import ALERT, Task

__all__ = [
    "Channel", "Notifications", "SlackChannel", "WebhookChannel", "alert_text", "post_json",
    "summary_text",
]

log = logging.getLogger("flowlord.notify")

DEFAULT_MIN_FREQUENCY = timedelta(minutes=5)
SLACK_COLORS = {"ok": "#00FF00", "warning": "#FFFF00", "critical": "#FF0000", "other": "#2210FF"}
MAX_BODY_ALERTS = 1000  # alerts listed in a webhook body (the count says how many in all)


# --- channels --------------------------------------------------------------------------------


class Channel:
    """Where messages go: a name (the notifications table's `channel`), a URL, and the JSON
    body of a message."""

    name = "channel"

    def __init__(self, url: str) -> None:
        self.url = url

    def body(self, kind: str, text: str, alerts: Sequence[AlertRecord], level: str) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name})"


class SlackChannel(Channel):
    """A Slack incoming webhook: the Go client's attachment payload, `[prefix] ` before the
    text when configured, the level's colour (Critical: red)."""

    name = "slack"

    def __init__(self, url: str, *, prefix: str = "", channel: str = "", title: str = "") -> None:
        super().__init__(url)
        self.prefix = prefix
        self.channel = channel
        self.title = title

    def body(self, kind: str, text: str, alerts: Sequence[AlertRecord], level: str) -> dict:
        if self.prefix:
            text = f"[{self.prefix}] {text}"
        attachment: dict[str, Any] = {}
        if self.title:
            attachment["title"] = self.title
        attachment.update(text=text, color=SLACK_COLORS.get(level, ""), pretext="flowlord",
                          author_name="")
        message: dict[str, Any] = {}
        if self.channel:
            message["channel"] = self.channel
        message["attachments"] = [attachment]
        return message


class WebhookChannel(Channel):
    """Any chat tool or service: a JSON POST of {kind, text, alerts[]} (and `count`, the
    number of alerts carried, of which at most 1000 are listed)."""

    name = "webhook"

    def body(self, kind: str, text: str, alerts: Sequence[AlertRecord], level: str) -> dict:
        return {"kind": kind, "text": text, "level": level, "count": len(alerts),
                "alerts": [_alert_json(a) for a in alerts[:MAX_BODY_ALERTS]]}


def _alert_json(alert: AlertRecord) -> dict:
    return {"id": alert.id, "task_id": alert.task_id, "type": alert.type, "job": alert.job,
            "workflow": alert.workflow, "phase": alert.phase, "result": alert.result,
            "msg": alert.msg, "task_time": alert.task_time,
            "created": alert.created.isoformat().replace("+00:00", "Z")}


def post_json(url: str, body: bytes | str, *, timeout: float = 10.0) -> tuple[str | None, float | None]:
    """POSTs a JSON body. Returns (None, None) on a 2xx answer, else (the error, the answer's
    Retry-After in seconds when it gave one). Never raises."""
    data = body.encode("utf-8") if isinstance(body, str) else body
    try:
        request = urllib.request.Request(url, data=data, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "flowlord"})
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
            return None, None
    except urllib.error.HTTPError as error:
        try:
            detail = error.read(300).decode("utf-8", "replace").strip()
        except Exception:
            detail = ""
        retry_after = None
        try:
            retry_after = float(error.headers.get("Retry-After", ""))
        except (TypeError, ValueError):
            pass
        return f"HTTP {error.code}" + (f": {detail}" if detail else ""), retry_after
    except Exception as error:  # URLError, timeouts, refused connections, bad URLs (ValueError)
        reason = getattr(error, "reason", None)
        return f"{type(error).__name__}: {reason if reason is not None else error}", None


# --- texts ------------------------------------------------------------------------------------


def summary_text(alerts: Sequence[AlertRecord], dashboard_url: str = "") -> str:
    """The summary: the report link, then one line per `type[:job]` (most alerts first)."""
    day = min(a.created for a in alerts).date().isoformat() if alerts else ""
    lines = [f"see report at {dashboard_url.rstrip('/')}/web/alert?date={day}"]
    lines += [g.line() for g in alert_groups((a.type, a.job, a.task_time) for a in alerts)]
    return "\n".join(lines)


def alert_text(alert: AlertRecord, task: Task | None = None) -> str:
    """An immediate alert: the task as indented JSON (Go's message)."""
    if task is None:
        task = Task(type=alert.type, job=alert.job, created=alert.task_time, id=alert.task_id,
                    result=alert.result, msg=alert.msg)
    return json.dumps(json.loads(task.to_json()), indent=2, ensure_ascii=False)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (
        f"{seconds}s" if seconds else "")
    return text or "0s"


# --- the outbox and its loops -------------------------------------------------------------------


class Notifications:
    """Alerts into the outbox (immediate messages, summaries at the cadence) and the outbox to
    the channels. The step methods (`flush_immediate`, `summary_tick`, `deliver_due`) are what
    the loops (`run_*`) repeat; tests call them directly."""

    def __init__(self, store: Store, channels: Iterable[Channel] = (), clock: Clock | None = None,
                 *, min_frequency: timedelta = DEFAULT_MIN_FREQUENCY,
                 max_frequency: timedelta | None = None, dashboard_url: str = "",
                 timeout: float = 10.0, retry_backoff: timedelta = timedelta(seconds=2),
                 retry_backoff_max: timedelta = timedelta(minutes=5),
                 give_up_after: timedelta = timedelta(hours=24), spacing: float = 1.0) -> None:
        self.store = store
        self.channels = {c.name: c for c in channels}
        self.clock = clock or SystemClock()
        if min_frequency <= timedelta(0):
            min_frequency = DEFAULT_MIN_FREQUENCY  # Go: 5m when 0
        if max_frequency is None or max_frequency <= min_frequency:
            max_frequency = 16 * min_frequency  # Go: 16 x min when not above it
        self.min_frequency = min_frequency
        self.max_frequency = max_frequency
        self.frequency = min_frequency
        self.dashboard_url = dashboard_url
        self.timeout = timeout
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.give_up_after = give_up_after
        self.spacing = spacing
        self.last_summary: datetime | None = None  # the last tick that sent one
        self.last_tick: datetime | None = None
        self.next_tick: datetime | None = None
        self.last_error: str = ""
        self._last_post: dict[str, float] = {}
        self._kick = asyncio.Event()  # the outbox has something new
        self._alert = asyncio.Event()  # an `alert` result was recorded
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._delivering = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    # --- alerts into the outbox ---------------------------------------------------------

    def flush_immediate(self, now: datetime | None = None) -> int:
        """Queues a message per `alert` result not yet sent. Returns how many alerts."""
        if not self.enabled:
            return 0
        now = now or self.clock.now()
        with self.store.transaction():
            alerts = self._unsent(immediate=True)
            for alert in alerts:
                text = alert_text(alert, self._alert_task(alert))
                self._queue("alert", text, [alert], "critical", now)
            if alerts:
                self.store.mark_alerts_sent([a.id for a in alerts], at=now)
        if alerts:
            log.info("%d immediate alert(s) queued", len(alerts))
            self._kick.set()
        return len(alerts)

    def queue_summary(self, now: datetime | None = None) -> int:
        """Queues one summary of every other alert not yet sent, and marks exactly those sent,
        in one transaction. Returns how many alerts it carries (0: nothing queued)."""
        if not self.enabled:
            return 0
        now = now or self.clock.now()
        with self.store.transaction():
            alerts = self._unsent(immediate=False)
            if alerts:
                self._queue("summary", summary_text(alerts, self.dashboard_url), alerts,
                            "critical", now)
                self.store.mark_alerts_sent([a.id for a in alerts], at=now)
        if alerts:
            log.info("a summary of %d alert(s) queued", len(alerts))
            self._kick.set()
        return len(alerts)

    def summary_tick(self, now: datetime | None = None) -> int:
        """One step of the cadence: a summary of what is unsent, then the next frequency
        (doubled, up to the max, after a summary; back to the min after a quiet tick)."""
        now = now or self.clock.now()
        count = self.queue_summary(now)
        if count:
            self.last_summary = now
            self.frequency = min(self.frequency * 2, self.max_frequency)
        elif self.frequency != self.min_frequency:
            self.frequency = self.min_frequency
        self.last_tick = now
        self.next_tick = now + self.frequency
        return count

    def _unsent(self, *, immediate: bool) -> list[AlertRecord]:
        alerts: list[AlertRecord] = []
        while True:
            page = self.store.unsent_alerts(after=alerts[-1].id if alerts else 0, immediate=immediate)
            alerts += page
            if not page:
                return alerts

    def _queue(self, kind: str, text: str, alerts: Sequence[AlertRecord], level: str,
               now: datetime) -> list[int]:
        ids = [a.id for a in alerts]
        return [self.store.queue_notification(
                    kind, channel.name, text,
                    json.dumps(channel.body(kind, text, alerts, level), ensure_ascii=False),
                    ids, at=now)
                for channel in self.channels.values()]

    def _alert_task(self, alert: AlertRecord) -> Task | None:
        """The done message that raised an `alert` result (for its info and meta)."""
        if not alert.task_id:
            return None
        found = None
        for record in self.store.task_history(alert.task_id):
            if (record.event == "done" and record.task.type == alert.type
                    and record.task.result == ALERT):
                found = record.task
        return found

    # --- the outbox to the channels -----------------------------------------------------

    async def deliver_due(self) -> int:
        """Posts every message due, in order; returns how many were sent. A channel that fails
        keeps its later messages waiting behind the one to retry."""
        async with self._delivering:
            self._keep_order()
            sent = 0
            while True:
                notes = self.store.due_notifications(self.clock.now())
                if not notes:
                    return sent
                failing: set[str] = set()
                for note in notes:
                    if note.channel in failing:
                        continue
                    if await self._deliver(note):
                        sent += 1
                    else:
                        failing.add(note.channel)
                if failing:
                    # what is left is not due before the failing channel's retry
                    if not [n for n in self.store.due_notifications(self.clock.now())
                            if n.channel not in failing]:
                        return sent

    def _keep_order(self) -> None:
        """A channel whose oldest pending message waits for its retry: its newer messages
        (queued since) wait until then too."""
        oldest: dict[str, NotificationRecord] = {}
        for note in self.store.notifications(limit=1000, status="pending"):  # newest first
            oldest[note.channel] = note
        now = self.clock.now()
        for channel, note in oldest.items():
            if note.next_at > now:
                self.store.postpone_notifications(channel, note.next_at)

    async def _deliver(self, note: NotificationRecord, *, retry: bool = True) -> bool:
        channel = self.channels.get(note.channel)
        if channel is None:
            self.store.notification_failed(note.id, f"no {note.channel} channel configured",
                                           retry_at=None, at=self.clock.now())
            return False
        await self._space(channel.name)
        error, retry_after = await asyncio.to_thread(post_json, channel.url, note.body,
                                                     timeout=self.timeout)
        self._last_post[channel.name] = time.monotonic()
        now = self.clock.now()
        if error is None:
            self.store.notification_sent(note.id, at=now)
            log.info("%s %d sent to %s", note.kind, note.id, channel.name)
            return True
        self.last_error = f"{channel.name}: {error}"
        if not retry or now - note.created >= self.give_up_after:
            self.store.notification_failed(note.id, error, retry_at=None, at=now)
            log.error("%s %d to %s failed (%s), attempt %d: given up", note.kind, note.id,
                      channel.name, error, note.attempts + 1)
            return False
        delay = min(self.retry_backoff * (2 ** min(note.attempts, 30)), self.retry_backoff_max)
        if retry_after is not None:
            delay = max(delay, timedelta(seconds=min(retry_after, 3600)))
        retry_at = now + delay
        self.store.notification_failed(note.id, error, retry_at=retry_at, at=now)
        self.store.postpone_notifications(channel.name, retry_at)
        log.warning("%s %d to %s failed (%s), attempt %d: again in %s", note.kind, note.id,
                    channel.name, error, note.attempts + 1, _duration(delay))
        return False

    async def _space(self, channel: str) -> None:
        last = self._last_post.get(channel)
        if last is not None and self.spacing > 0:
            wait = self.spacing - (time.monotonic() - last)
            if wait > 0:
                await asyncio.sleep(wait)

    async def send_test(self, text: str = "flowlord test message") -> dict[str, str]:
        """GET /notify: a test message to every channel, posted now, once (recorded in the
        outbox as sent or failed). Returns each channel's outcome: `sent` or the error."""
        if not self.enabled:
            return {}
        outcome: dict[str, str] = {}
        async with self._delivering:  # the delivery loop does not take them meanwhile
            with self.store.transaction():
                ids = self._queue("test", text, [], "ok", self.clock.now())
            for note in reversed(self.store.notifications(before=max(ids) + 1, limit=len(ids))):
                ok = await self._deliver(note, retry=False)
                outcome[note.channel] = "sent" if ok else self._note(note.id).error
        return outcome

    def _note(self, note_id: int) -> NotificationRecord:
        return self.store.notifications(before=note_id + 1, limit=1)[0]

    # --- the loops ----------------------------------------------------------------------

    def alert_raised(self) -> None:
        """An `alert` result was recorded (the engine's listener): send it now. Safe from
        any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._alert.set()
        else:
            loop.call_soon_threadsafe(self._alert.set)

    def bind(self) -> None:
        """Binds to the running event loop (the loops do it)."""
        self._loop = asyncio.get_running_loop()

    def stop(self) -> None:
        self._stopping.set()
        self._kick.set()
        self._alert.set()

    async def run_summaries(self, before_tick=None) -> None:
        """The cadence: a tick now, then one every `frequency`. `before_tick(now)` runs first
        at each tick (the incomplete-task check)."""
        self.bind()
        while not self._stopping.is_set():
            now = self.clock.now()
            try:
                if before_tick is not None:
                    before_tick(now)
                self.summary_tick(now)
            except Exception:  # never dies
                log.exception("summary tick")
                self.next_tick = now + self.frequency
            await self._wait(self.next_tick, self._stopping)

    async def run_immediate(self, poll: timedelta | None = None) -> None:
        """Immediate alerts: at start, at each `alert_raised()`, and every `poll` (default: the
        min frequency) in case an event was missed."""
        self.bind()
        poll = poll or self.min_frequency
        while not self._stopping.is_set():
            self._alert.clear()
            try:
                self.flush_immediate()
            except Exception:
                log.exception("immediate alerts")
            await self._wait(self.clock.now() + poll, self._alert)

    async def run_delivery(self) -> None:
        """Posts the outbox: now, when something is queued, when a retry is due."""
        self.bind()
        while not self._stopping.is_set():
            self._kick.clear()
            try:
                await self.deliver_due()
                due = self.store.next_notification_due()
            except Exception:
                log.exception("delivering notifications")
                due = self.clock.now() + timedelta(seconds=5)
            await self._wait(due, self._kick)

    async def _wait(self, until: datetime | None, event: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._stopping.wait())]
        if until is not None:
            waits.append(asyncio.ensure_future(self.clock.sleep_until(until)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

    # --- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        pending = self.store.notifications(limit=1000, status="pending")
        failed = self.store.notifications(limit=1, status="failed")
        return {
            "channels": sorted(self.channels),
            "frequency": _duration(self.frequency),
            "frequency_seconds": self.frequency.total_seconds(),
            "min_frequency": _duration(self.min_frequency),
            "max_frequency": _duration(self.max_frequency),
            "last_summary": _iso(self.last_summary),
            "next_summary": _iso(self.next_tick) if self.enabled else None,
            "pending": len(pending),
            "last_failed": ({"id": failed[0].id, "channel": failed[0].channel,
                             "error": failed[0].error, "at": _iso(failed[0].done_at)}
                            if failed else None),
            "last_error": self.last_error,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")

