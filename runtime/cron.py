"""When a cron phase fires: robfig/cron v3.0.1's `Schedule.Next`, computed from the AST.

Implementation choice: robfig's algorithm is ported directly onto the expanded field values of
the CronSpec (`CronField.values` and the star bit), not delegated to croniter. Measured against
robfig (shared/spec/cron-dialect.md), croniter needs five corrections (seconds first, `?` in any
field, `*/1` keeping the star bit, `@every`, the spring-forward gap) and still scans 50 years for
an impossible date; the port is short and is exact by construction:

* The search starts at the next whole second strictly after `after`, in the spec's zone.
* Month, then day, then hour, minute and second are advanced the way robfig does it, with Go's
  time arithmetic (timefmt.go_date / go_add / go_add_date / go_truncate): hours are stepped in
  absolute time, so a wall time inside a spring-forward gap is skipped for that day and the
  repeated fall-back hour fires twice; midnight-less days are corrected like robfig.
* Day matching: if day-of-month or day-of-week carries the star bit (`*` or `?`, also `*/1`),
  a day must match both fields, else either (`0 0 1-31 * MON` is every day).
* No time within five years (from the start's year) gives None (Go: the zero time; the entry
  never runs), e.g. `0 0 30 2 *`.
* `@every d` is robfig's ConstantDelaySchedule: `after` truncated to the second plus d, d
  rounded down to whole seconds and at least 1s; not aligned to the clock.

The zone: the spec's own `TZ=`/`CRON_TZ=` prefix wins over the `tz` argument (the scheduler's
zone, which Go takes from the process). Results are in that zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from flowlord.compiler.ast import CronSpec

from .timefmt import UTC, go_add, go_add_date, go_date, go_truncate

SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
HORIZON_YEARS = 5
NANOSECONDS_PER_SECOND = 1_000_000_000


def spec_zone(spec: CronSpec, tz: tzinfo) -> tzinfo:
    """The zone a spec runs in: its `TZ=` prefix, else the scheduler's zone `tz`."""
    if spec.timezone and spec.timezone != "Local":
        return ZoneInfo(spec.timezone)
    return tz


def every_delay(spec: CronSpec) -> timedelta:
    """robfig's `Every(d)`: whole seconds, at least one."""
    assert spec.every is not None
    nanos = spec.every.nanoseconds
    nanos = max(nanos, NANOSECONDS_PER_SECOND)
    return timedelta(seconds=nanos // NANOSECONDS_PER_SECOND)


def next_fire(spec: CronSpec, after: datetime, tz: tzinfo) -> datetime | None:
    """The first fire time strictly after `after` (an aware datetime), in the spec's zone;
    None when robfig finds none within five years (the entry would never run)."""
    if after.tzinfo is None:
        raise ValueError("next_fire needs an aware datetime")
    loc = spec_zone(spec, tz)
    t = after.astimezone(loc)
    if spec.every is not None:
        return go_add(t.replace(microsecond=0), every_delay(spec))
    if len(spec.fields) != 6:
        raise ValueError(f"cron spec {spec.text!r} has no expanded fields")
    return _robfig_next(spec, t, loc)


def fires_at(spec: CronSpec, instant: datetime, tz: tzinfo) -> bool:
    """True when `instant` is one of the spec's fire times (whole seconds only). `@every` has
    no fire times of its own (each follows the previous run), so it raises ValueError."""
    if spec.every is not None:
        raise ValueError("@every fires relative to its previous run, not at fixed times")
    if instant.tzinfo is None:
        raise ValueError("fires_at needs an aware datetime")
    if instant.microsecond:
        return False
    found = next_fire(spec, go_add(instant, -SECOND), tz)
    # Compare instants in UTC: Python never finds a repeated-hour time equal across zones, and
    # compares wall clocks (ignoring fold) within one zone.
    return found is not None and found.astimezone(UTC) == instant.astimezone(UTC)


def fire_times(spec: CronSpec, start: datetime, end: datetime, tz: tzinfo) -> Iterator[datetime]:
    """The fire times t with start < t <= end, in order (for `@every`: start + d, start + 2d, …,
    as the scheduler chains them)."""
    last = end.astimezone(UTC)
    t = next_fire(spec, start, tz)
    while t is not None and t.astimezone(UTC) <= last:
        yield t
        t = next_fire(spec, t, tz)


# --- robfig's SpecSchedule.Next ----------------------------------------------------------------


def _go_weekday(t: datetime) -> int:
    return (t.weekday() + 1) % 7  # Go: Sunday = 0


def _robfig_next(spec: CronSpec, t: datetime, loc: tzinfo) -> datetime | None:
    second, minute, hour, dom, month, dow = spec.fields
    seconds, minutes, hours = set(second.values), set(minute.values), set(hour.values)
    doms, months, dows = set(dom.values), set(month.values), set(dow.values)
    star_day = dom.star or dow.star

    def day_matches(t: datetime) -> bool:
        dom_match = t.day in doms
        dow_match = _go_weekday(t) in dows
        return (dom_match and dow_match) if star_day else (dom_match or dow_match)

    # Start at the earliest possible time: the upcoming second.
    t = go_add(t.replace(microsecond=0), SECOND)
    added = False
    year_limit = t.year + HORIZON_YEARS

    while True:  # WRAP
        if t.year > year_limit:
            return None

        wrapped = False
        while t.month not in months:
            if not added:
                added = True
                t = go_date(t.year, t.month, 1, 0, 0, 0, loc)
            t = go_add_date(t, months=1)
            if t.month == 1:
                wrapped = True
                break
        if wrapped:
            continue

        while not day_matches(t):
            if not added:
                added = True
                t = go_date(t.year, t.month, t.day, 0, 0, 0, loc)
            t = go_add_date(t, days=1)
            # Midnight may not exist (DST at 00:00): robfig moves back to the day's start.
            if t.hour != 0:
                if t.hour > 12:
                    t = go_add(t, timedelta(hours=24 - t.hour))
                else:
                    t = go_add(t, timedelta(hours=-t.hour))
            if t.day == 1:
                wrapped = True
                break
        if wrapped:
            continue

        while t.hour not in hours:
            if not added:
                added = True
                t = go_date(t.year, t.month, t.day, t.hour, 0, 0, loc)
            t = go_add(t, HOUR)
            if t.hour == 0:
                wrapped = True
                break
        if wrapped:
            continue

        while t.minute not in minutes:
            if not added:
                added = True
                t = go_truncate(t, MINUTE)
            t = go_add(t, MINUTE)
            if t.minute == 0:
                wrapped = True
                break
        if wrapped:
            continue

        while t.second not in seconds:
            if not added:
                added = True
                t = go_truncate(t, SECOND)
            t = go_add(t, SECOND)
            if t.second == 0:
                wrapped = True
                break
        if wrapped:
            continue

        return t


__all__ = ["next_fire", "fires_at", "fire_times", "spec_zone", "every_delay"]
