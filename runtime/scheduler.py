"""The cron scheduler: when each cron phase of the plan fires next, and what was missed while
flowlord was down.

One entry per cron phase, keyed by (workflow key, phase id), in a heap by next fire time. The
engine asks `next_due()`, pops what is due with `pop_due(until)`, fires it, and reports it with
`fired(entry, t)`, which moves the entry to its next fire time (runtime/cron.next_fire, robfig's
algorithm) and remembers `t` in the store (`Store.set_last_fire`).

The remembered time is the instant through which the phase's fire times were handled. At
start-up (and for a phase that a reload adds) the fire times between it and now were missed:
the catch-up policy decides what happens to them, and the decision is logged:

* `latest` (default): the latest missed fire time runs once, now;
* `all`: every missed fire time runs, oldest first (at most `limit` of them; the rest are skipped
  and said so);
* `none`: they are skipped.

A phase never seen before starts now: a fire time equal to the start instant counts as due (so
the first instant of `flowlord simulate` fires what is due exactly then), and an `@every` chain
starts at the start instant (robfig: start + d, start + 2d, …).

`replace(phases, now)` swaps the plan's cron phases (hot reload): an entry whose phase is still
there keeps its next fire time (recomputed from its last fire time when the spec changed); a new
one is registered as above; a removed one is dropped, its stored time kept.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Iterable
from zoneinfo import ZoneInfo

from flowlord.compiler.ast import CronSpec
from flowlord.compiler.plan import PlanPhase

from .cron import every_delay, fire_times, next_fire

__all__ = ["CATCH_UP_POLICIES", "CronEntry", "Scheduler"]

log = logging.getLogger("flowlord.scheduler")

CATCH_UP_POLICIES = ("latest", "all", "none")
UTC_MICRO = timedelta(microseconds=1)
_COUNTED = 3  # missed fire times counted for the log under `latest` and `none`
_WINDOWS = (timedelta(minutes=1), timedelta(hours=1), timedelta(days=1), timedelta(days=32),
            timedelta(days=367), timedelta(days=6 * 366))


@dataclass(eq=False)
class CronEntry:
    workflow: str
    phase: PlanPhase
    zone: tzinfo
    next: datetime | None = None  # the next fire time (aware), None: never again
    last: datetime | None = None  # the last fire time handled
    catch_up: int = 0  # fires still owed to the catch-up policy (next is one of them)
    resume_after: datetime | None = None  # where the regular schedule resumes after them
    firing: bool = False  # popped and not yet reported fired: kept out of the heap
    version: int = field(default=0)

    @property
    def key(self) -> tuple[str, str]:
        return self.workflow, self.phase.id

    def describe(self) -> str:
        return f"{self.workflow} {self.phase.id} ({self.phase.cron.text if self.phase.cron else ''})"


def _same_schedule(a: PlanPhase, b: PlanPhase) -> bool:
    if a.cron is None or b.cron is None:
        return False
    return (a.cron.text, a.cron.timezone, a.timezone) == (b.cron.text, b.cron.timezone, b.timezone)


class Scheduler:
    def __init__(self, store, *, catch_up: str = "latest", limit: int = 1000) -> None:
        if catch_up not in CATCH_UP_POLICIES:
            raise ValueError(f"catch-up policy {catch_up!r}: use one of {', '.join(CATCH_UP_POLICIES)}")
        self.store = store
        self.catch_up = catch_up
        self.limit = max(1, limit)
        self.entries: dict[tuple[str, str], CronEntry] = {}
        self._heap: list[tuple[datetime, int, CronEntry, int]] = []
        self._order = itertools.count()

    # --- building ---------------------------------------------------------------------------

    def replace(self, phases: Iterable[tuple[str, PlanPhase]], now: datetime) -> None:
        """The cron phases become `phases` ((workflow key, phase) pairs, in plan order)."""
        with self.store.transaction():  # one commit for the marks of every new phase
            self._replace(phases, now)
        self._rebuild()

    def _replace(self, phases: Iterable[tuple[str, PlanPhase]], now: datetime) -> None:
        marks: dict[tuple[str, str], datetime] | None = None
        entries: dict[tuple[str, str], CronEntry] = {}
        for workflow, phase in phases:
            if phase.cron is None:
                continue
            key = (workflow, phase.id)
            if key in entries:
                log.warning("%s %s: a second cron phase with this id is ignored", workflow, phase.id)
                continue
            old = self.entries.get(key)
            if old is not None:
                entry = self._keep(old, phase, now)
            else:
                if marks is None:
                    marks = self.store.last_fires()
                entry = self._register(workflow, phase, marks.get(key), now)
            entries[key] = entry
        self.entries = entries

    def _keep(self, old: CronEntry, phase: PlanPhase, now: datetime) -> CronEntry:
        same = _same_schedule(old.phase, phase)
        old.phase = phase
        if not same:
            old.zone = ZoneInfo(phase.timezone)
            base = now if phase.cron.every is not None else now - UTC_MICRO
            old.catch_up, old.resume_after = 0, None
            old.next = _next_fire(phase.cron, base, old.zone)
            log.info("%s: schedule changed, next fire %s", old.describe(), _iso(old.next))
        return old

    def _register(self, workflow: str, phase: PlanPhase, mark: datetime | None,
                  now: datetime) -> CronEntry:
        spec = phase.cron
        zone = ZoneInfo(phase.timezone)
        entry = CronEntry(workflow, phase, zone)
        if mark is None:
            # New: a fire time at `now` is due; @every chains from now.
            entry.last = now if spec.every is not None else now - UTC_MICRO
            self.store.set_last_fire(workflow, phase.id, entry.last, at=now)
            entry.next = _next_fire(spec, entry.last, zone)
            return entry
        entry.last = mark
        missed, capped, latest = self._missed(entry, mark, now)
        if not missed:
            entry.next = _next_fire(spec, mark, zone)
            return entry
        count = f"at least {len(missed)}" if capped else str(len(missed))
        span = f"between {_iso(mark)} and {_iso(now)}"
        if self.catch_up == "none":
            log.warning("catch-up %s: %s fire time(s) missed %s; policy none: skipped",
                        entry.describe(), count, span)
            entry.last = latest
            self.store.set_last_fire(workflow, phase.id, latest, at=now)
            entry.next = _next_fire(spec, latest, zone)
        elif self.catch_up == "latest":
            log.warning("catch-up %s: %s fire time(s) missed %s; policy latest: running the one "
                        "at %s once", entry.describe(), count, span, _iso(latest))
            entry.next, entry.catch_up, entry.resume_after = latest, 1, latest
        else:
            if capped:
                log.warning("catch-up %s: %s fire time(s) missed %s; policy all: running the "
                            "first %d (from %s), skipping the rest up to %s", entry.describe(),
                            count, span, len(missed), _iso(missed[0]), _iso(latest))
            else:
                log.warning("catch-up %s: %s fire time(s) missed %s; policy all: running each, "
                            "from %s", entry.describe(), count, span, _iso(missed[0]))
            entry.next, entry.catch_up, entry.resume_after = missed[0], len(missed), latest
        return entry

    def _missed(self, entry: CronEntry, mark: datetime,
                now: datetime) -> tuple[list[datetime], bool, datetime | None]:
        """Fire times in (mark, now): the first ones (up to `limit` for the `all` policy, else
        a few, to count them in the log), whether there were more, and the latest one."""
        spec, zone = entry.phase.cron, entry.zone
        end = now - UTC_MICRO
        first = _next_fire(spec, mark, zone)
        if first is None or _utc(first) > end:
            return [], False, None
        cap = self.limit if self.catch_up == "all" else _COUNTED
        missed: list[datetime] = []
        t: datetime | None = first
        while t is not None and _utc(t) <= end:
            if len(missed) == cap:
                following = _next_fire(spec, missed[-1], zone)
                return missed, True, self._latest(entry, mark, end, missed[-1], following)
            missed.append(t)
            t = _next_fire(spec, t, zone)
        return missed, False, missed[-1]

    @staticmethod
    def _latest(entry: CronEntry, mark: datetime, end: datetime, known: datetime,
                following: datetime | None) -> datetime | None:
        """The last fire time in (mark, end] (`known` is one, `following` the one after it),
        looked for in growing windows back from `end`, the first twice the spec's period."""
        spec, zone = entry.phase.cron, entry.zone
        if following is None or _utc(following) > end:
            return known
        if spec.every is not None:
            # A chain from `mark`: whole seconds, then a link every `step`; the last at or
            # before `end`.
            step = every_delay(spec)
            first = mark.replace(microsecond=0)
            links = (end - first) // step
            return first + links * step if links > 0 else None
        period = _utc(following) - _utc(known)
        for window in (2 * period, *_WINDOWS, end - mark):
            start = max(mark, end - window)
            last = None
            for t in fire_times(spec, start, end, zone):
                last = t
            if last is not None or start == mark:
                return last
        return None

    def _rebuild(self) -> None:
        self._heap = []
        for entry in self.entries.values():
            self._push(entry)

    def _push(self, entry: CronEntry) -> None:
        entry.version += 1
        if entry.next is not None and not entry.firing:
            heapq.heappush(self._heap, (_utc(entry.next), next(self._order), entry, entry.version))

    # --- running ----------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """The earliest next fire time (UTC) over all entries."""
        heap = self._heap
        while heap and (heap[0][2].version != heap[0][3]
                        or self.entries.get(heap[0][2].key) is not heap[0][2]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, until: datetime) -> tuple[CronEntry, datetime] | None:
        """The entry due soonest, when at or before `until`, with its fire time. Report it
        with `fired` once it has fired (or failed to)."""
        due = self.next_due()
        if due is None or due > until:
            return None
        _, _, entry, _ = heapq.heappop(self._heap)
        entry.version += 1
        entry.firing = True  # out of the heap until fired() puts it back
        return entry, entry.next

    def fired(self, entry: CronEntry, t: datetime, *, remember: bool = True) -> None:
        """`entry` fired at `t`: remembers it (unless the caller already did, in its own
        transaction: `remember=False`) and moves the entry to its next fire time."""
        entry.last = t
        entry.firing = False
        if remember:
            self.store.set_last_fire(entry.workflow, entry.phase.id, t)
        if entry.catch_up > 0:
            entry.catch_up -= 1
            if entry.catch_up == 0:
                entry.next = _next_fire(entry.phase.cron, entry.resume_after or t, entry.zone)
                entry.resume_after = None
            else:
                entry.next = _next_fire(entry.phase.cron, t, entry.zone)
        else:
            entry.next = _next_fire(entry.phase.cron, t, entry.zone)
        if self.entries.get(entry.key) is entry:
            self._push(entry)


_NEXT: dict[tuple, datetime | None] = {}


def _next_fire(spec: CronSpec, after: datetime, zone: tzinfo) -> datetime | None:
    """`cron.next_fire`, remembered: phases that share a schedule (every hour at :00, …) share
    their fire times, so each is worked out once per instant, not once per phase."""
    if after.tzinfo is None:
        return next_fire(spec, after, zone)  # refused there
    # The instant in UTC: within one zone Python compares wall clocks, and would take the two
    # instants of a repeated hour for one.
    key = (spec.text, spec.timezone, zone, after.astimezone(timezone.utc))
    found = _NEXT.get(key, _MISSING)
    if found is _MISSING:
        found = next_fire(spec, after, zone)
        if len(_NEXT) >= 8192:
            _NEXT.clear()
        _NEXT[key] = found
    return found


_MISSING = object()


def _utc(moment: datetime) -> datetime:
    from .clock import as_utc

    return as_utc(moment)


def _iso(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    text = _utc(moment).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
