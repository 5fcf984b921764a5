"""Clocks: where the engine reads the time and waits for it.

`Clock` is two calls: `now()` (an aware UTC datetime) and `await sleep_until(t)`. `SystemClock`
is the wall clock. `SimClock` is a clock that moves only when told (`advance_to`, `set`): the
tests and `flowlord simulate` run the engine on it, so that what happens at an instant is
exactly reproducible.

SimClock sleepers wake in time order (equal times: in the order they went to sleep), each with
`now()` equal to its own wake time; `advance_to` lets the event loop run between two wakes so
that what a sleeper does at 00:10 is done before the clock shows 00:20.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Protocol, runtime_checkable

__all__ = ["Clock", "SimClock", "SystemClock", "as_utc"]

UTC = timezone.utc
_MAX_NAP = 30.0  # seconds: a long sleep is cut into naps, so a wall-clock jump is noticed


def as_utc(moment: datetime) -> datetime:
    """An aware datetime in UTC; a naive one is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, an aware UTC datetime."""

    async def sleep_until(self, moment: datetime) -> None:
        """Returns once `now() >= moment` (at once when it is already)."""


class SystemClock:
    """The wall clock (UTC)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, moment: datetime) -> None:
        moment = as_utc(moment)
        while True:
            left = (moment - self.now()).total_seconds()
            if left <= 0:
                return
            await asyncio.sleep(min(left, _MAX_NAP))

    def __repr__(self) -> str:
        return "SystemClock()"


class SimClock:
    """A clock that moves only when told. `now()` starts at `start`."""

    def __init__(self, start: datetime) -> None:
        self._now = as_utc(start)
        self._sleepers: list[tuple[datetime, int, asyncio.Future]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def __repr__(self) -> str:
        return f"SimClock({self._now.isoformat()})"

    async def sleep_until(self, moment: datetime) -> None:
        moment = as_utc(moment)
        if moment <= self._now:
            await asyncio.sleep(0)  # still a suspension point, as a real sleep would be
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (moment, next(self._order), future))
        await future  # a cancelled sleeper is skipped when its time comes

    def next_wake(self) -> datetime | None:
        """The earliest time a sleeper waits for, if any."""
        self._drop_cancelled()
        return self._sleepers[0][0] if self._sleepers else None

    @property
    def sleepers(self) -> int:
        self._drop_cancelled()
        return sum(not f.done() for _, _, f in self._sleepers)

    def set(self, moment: datetime) -> None:
        """Moves the clock to `moment` (never back) and wakes, in time order, every sleeper due;
        they run when the event loop next gets control, all seeing `now() == moment`. Use
        `advance_to` to have each see its own time."""
        moment = as_utc(moment)
        if moment < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {moment}")
        self._now = moment
        while self._sleepers and self._sleepers[0][0] <= moment:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    async def advance_to(self, moment: datetime, *,
                         settle: Callable[[], Awaitable[None]] | None = None) -> None:
        """Moves the clock to `moment`, stopping at each sleeper's wake time on the way: the
        clock shows that time, the sleeper wakes, and the loop runs (`settle()`, default: a
        few rounds of the event loop) before the clock moves on."""
        moment = as_utc(moment)
        if moment < self._now:
            raise ValueError(f"the clock cannot go back from {self._now} to {moment}")
        while True:
            self._drop_cancelled()
            if not self._sleepers or self._sleepers[0][0] > moment:
                break
            wake = self._sleepers[0][0]
            self._now = max(self._now, wake)
            while self._sleepers and self._sleepers[0][0] <= wake:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            await (settle() if settle is not None else yield_to_loop())
        self._now = moment
        await (settle() if settle is not None else yield_to_loop())

    async def advance(self, delta: timedelta | float, **options) -> None:
        """`advance_to(now() + delta)`; a float is seconds."""
        if not isinstance(delta, timedelta):
            delta = timedelta(seconds=delta)
        await self.advance_to(self._now + delta, **options)

    def _drop_cancelled(self) -> None:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)


async def yield_to_loop(rounds: int = 20) -> None:
    """Lets every ready coroutine run a few steps (the bus and store used with SimClock do not
    wait on I/O, so this is enough for what a wake-up starts to finish)."""
    for _ in range(rounds):
        await asyncio.sleep(0)
