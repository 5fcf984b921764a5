"""Summaries of a day: the Go flowlord's compact alert summary and its `/recap` statistics.

`print_dates(times)` is Go's tmpl.PrintDates (spec §8.2): times sorted; the granularity is
monthly, daily when two distinct times share a month, hourly when two share a day; runs of
consecutive values (the next hour, the next calendar day, the next month; equal times count)
collapse to `start-end`; a value on its own prints as `YYYY/MM/DDTHH`; parts are joined by `,`.

`alert_groups(alerts)` is BuildCompactSummary: alerts grouped by `type` or `type:job`, each
with its count and the PrintDates of its task times, sorted by count (descending), then key.
`recap(rows)` is `/recap`: per `type[:job]`, the run time (min, max, average) of the complete
tasks and the count and dates of each result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

from .dispatcher import go_print_duration
from .task import Task, parse_time
from .timefmt import is_zero, task_time

__all__ = ["AlertGroup", "RecapEntry", "alert_groups", "day_bounds", "print_dates", "recap",
           "task_key"]

HOUR = timedelta(hours=1)


def _hour(t: datetime) -> str:
    return f"{t.year:04d}/{t.month:02d}/{t.day:02d}T{t.hour:02d}"


def _day(t: datetime) -> str:
    return f"{t.year:04d}/{t.month:02d}/{t.day:02d}"


def _month(t: datetime) -> str:
    return f"{t.year:04d}/{t.month:02d}"


def _next_hour(a: datetime, b: datetime) -> bool:
    return b - a == HOUR


def _next_day(a: datetime, b: datetime) -> bool:
    return b.date() == a.date() + timedelta(days=1)


def _next_month(a: datetime, b: datetime) -> bool:
    return (b.year, b.month) == ((a.year, a.month + 1) if a.month < 12 else (a.year + 1, 1))


_GRANULARITY = {"hour": (_hour, _next_hour), "day": (_day, _next_day), "month": (_month, _next_month)}


def _granularity(times: Sequence[datetime]) -> str:
    distinct = sorted(set(times))
    days = [t.date() for t in distinct]
    if len(set(days)) < len(days):
        return "hour"
    months = [(t.year, t.month) for t in distinct]
    return "day" if len(set(months)) < len(months) else "month"


def print_dates(times: Iterable[datetime]) -> str:
    """Go's PrintDates: `2018/04/09T03-2018/04/09T05`, `2018/04/09-2018/04/12,2018/04/15`, …"""
    ordered = sorted(times)
    if not ordered:
        return ""
    if len(ordered) == 1:
        return _hour(ordered[0])
    fmt, follows = _GRANULARITY[_granularity(ordered)]
    parts: list[str] = []

    def close(start: datetime, end: datetime) -> None:
        parts.append(f"{fmt(start)}-{fmt(end)}" if start != end else _hour(start))

    start = prev = ordered[0]
    for t in ordered[1:]:
        if t != prev and not follows(prev, t):
            close(start, prev)
            start = t
        prev = t
    close(start, prev)
    return ",".join(parts)


def task_key(type: str, job: str) -> str:
    return f"{type}:{job}" if job else type


def _parsed(text: str) -> datetime | None:
    try:
        return parse_time(text)
    except ValueError:
        return None


@dataclass(frozen=True)
class AlertGroup:
    key: str  # type or type:job
    count: int
    dates: str  # print_dates of the task times

    def line(self) -> str:
        """The Slack summary line: key padded to 35, count right-aligned in 5, the dates."""
        return f"{self.key + ':':<35}{self.count:>5}  {self.dates}"


def alert_groups(alerts: Iterable[tuple[str, str, str]]) -> list[AlertGroup]:
    """BuildCompactSummary over (type, job, task_time) triples (Store.alert_keys)."""
    groups: dict[str, list[datetime | None]] = {}
    for type, job, when in alerts:
        groups.setdefault(task_key(type, job), []).append(_parsed(when))
    found = [AlertGroup(key, len(times), print_dates(t for t in times if t is not None))
             for key, times in groups.items()]
    return sorted(found, key=lambda g: (-g.count, g.key))


@dataclass
class RecapEntry:
    key: str
    durations: list[timedelta] = field(default_factory=list)  # of the complete tasks
    times: dict[str, list[datetime]] = field(default_factory=dict)  # result -> task times
    counts: dict[str, int] = field(default_factory=dict)  # result ("" running) -> count

    def stats(self) -> dict[str, str]:
        if not self.durations:
            return {"min": "", "max": "", "avg": ""}
        nanos = [int(d.total_seconds() * 1e9) for d in self.durations]
        return {"min": go_print_duration(min(nanos)), "max": go_print_duration(max(nanos)),
                "avg": go_print_duration(sum(nanos) // len(nanos))}

    def as_json(self) -> dict:
        """Go's JSON shape: min, max, avg and, per result seen, {Count, Times}."""
        out: dict = self.stats()
        for result, count in self._ordered():
            out[result or "running"] = {"Count": count,
                                        "Times": print_dates(self.times.get(result, []))}
        return out

    def _ordered(self) -> list[tuple[str, int]]:
        """complete, error, alert, warn, then running and anything else."""
        rank = {"complete": 0, "error": 1, "alert": 2, "warn": 3, "": 4}
        return sorted(self.counts.items(), key=lambda item: (rank.get(item[0], 5), item[0]))

    def text(self) -> str:
        stats = self.stats()
        lines = [self.key, f"\tmin: {stats['min'] or '-'} max: {stats['max'] or '-'} "
                           f"avg: {stats['avg'] or '-'}"]
        for result, count in self._ordered():
            name = (result or "running").capitalize()
            lines.append(f"\t{name}: {count} {print_dates(self.times.get(result, []))}".rstrip())
        return "\n".join(lines)


def recap(tasks: Iterable[Task]) -> list[RecapEntry]:
    """Per `type[:job]` (sorted): run times of complete tasks, and each result's count and task
    times (from meta `cron`, else the info; tasks without one are counted, not dated)."""
    entries: dict[str, RecapEntry] = {}
    for task in tasks:
        key = task_key(task.type, task.job)
        entry = entries.setdefault(key, RecapEntry(key))
        result = task.result
        entry.counts[result] = entry.counts.get(result, 0) + 1
        when = task_time(task.meta, task.info)
        if not is_zero(when):
            entry.times.setdefault(result, []).append(when)
        if result == "complete":
            started, ended = _parsed(task.started), _parsed(task.ended)
            if started is not None and ended is not None and ended >= started:
                entry.durations.append(ended - started)
    return [entries[k] for k in sorted(entries)]


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """[00:00, next 00:00) of a UTC day."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return start, start + timedelta(days=1)
