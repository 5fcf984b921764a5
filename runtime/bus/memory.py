"""The in-memory bus, for tests and `flowlord simulate`, and the queue it shares with stdio.

Every topic keeps what was published to it (`published(topic)`, `history()`), in order. Each
consumer group of a topic has a FIFO queue; a group's first subscription starts it from the
topic's first message, so nothing published before anyone listened is lost. Subscriptions of one
group take turns. An unacked message goes back to its queue when nak'd (after the delay) or when
its subscription closes.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from . import BusError, Message, Subscription

__all__ = ["MemoryBus"]


class _Item:
    __slots__ = ("data", "deliveries")

    def __init__(self, data: bytes, deliveries: int = 0) -> None:
        self.data = data
        self.deliveries = deliveries


class _Queue:
    """Ready items of one consumer, handed to waiting subscriptions first come, first served.

    `unsettled` counts items delivered or waiting out a nak delay. The queue ends when closed,
    or once `eof` is set (no more input) and nothing is ready or unsettled.
    """

    def __init__(self) -> None:
        self.ready: deque[_Item] = deque()
        self.waiters: deque[asyncio.Future] = deque()
        self.timers: set[asyncio.TimerHandle] = set()
        self.unsettled = 0
        self.eof = False
        self.closed = False

    def finished(self) -> bool:
        return self.closed or (self.eof and not self.ready and self.unsettled == 0)

    def put(self, item: _Item, *, front: bool = False) -> None:
        if self.closed:
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if front:
            self.ready.appendleft(item)
        else:
            self.ready.append(item)

    def put_back(self, items: list[_Item]) -> None:
        """Returns items, oldest first, ahead of everything ready."""
        items = list(items)
        while items and any(not w.done() for w in self.waiters):
            self.put(items.pop(0))
        self.ready.extendleft(reversed(items))

    def put_later(self, item: _Item, delay: float) -> None:
        loop = asyncio.get_running_loop()
        self.unsettled += 1  # still owed to a subscriber until the timer fires

        def due() -> None:
            self.timers.discard(handle)
            self.unsettled -= 1
            self.put(item)

        handle = loop.call_later(delay, due)
        self.timers.add(handle)

    def settled(self) -> None:
        self.unsettled -= 1
        if self.finished():
            self.wake_all()

    def set_eof(self) -> None:
        self.eof = True
        if self.finished():
            self.wake_all()

    def close(self) -> None:
        self.closed = True
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
        self.ready.clear()
        self.wake_all()

    def wake_all(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


class QueueMessage(Message):
    __slots__ = ("_owner", "_item", "_settled")

    def __init__(self, owner: QueueSubscription, item: _Item) -> None:
        super().__init__(owner.topic, item.data, item.deliveries)
        self._owner = owner
        self._item = item
        self._settled = False

    def _settle(self) -> bool:
        if self._settled:
            return False
        self._settled = True
        self._owner._inflight.pop(self, None)
        return True

    async def ack(self) -> None:
        if self._settle():
            self._owner.queue.settled()

    async def nak(self, delay: float = 0.0) -> None:
        if not self._settle():
            return
        queue = self._owner.queue
        if delay > 0 and not queue.closed:
            queue.put_later(self._item, delay)
            queue.settled()
        else:
            queue.settled()
            queue.put(self._item)


class QueueSubscription(Subscription):
    """A subscription that takes its messages from a `_Queue`."""

    def __init__(self, topic: str, queue: _Queue, on_close=None) -> None:
        self.topic = topic
        self.queue = queue
        self._inflight: dict[QueueMessage, None] = {}  # in delivery order
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._on_close = on_close

    def _start(self) -> None:
        """Hook for queues fed by something that starts on first use (stdin)."""

    async def __anext__(self) -> QueueMessage:
        self._start()
        queue = self.queue
        while True:
            if self._closed:
                raise StopAsyncIteration
            if queue.ready:
                item = queue.ready.popleft()
                break
            if queue.finished():
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            queue.waiters.append(waiter)
            self._waiter = waiter
            try:
                item = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled() and waiter.result() is not None:
                    queue.put(waiter.result(), front=True)  # handed to us as we were cancelled
                raise
            finally:
                self._waiter = None
            if item is None:
                continue  # woken to look again: closed, or the input ended
            if self._closed:
                queue.put(item, front=True)
                raise StopAsyncIteration
            break
        return self._deliver(item)

    def _deliver(self, item: _Item) -> QueueMessage:
        item.deliveries += 1
        self.queue.unsettled += 1
        message = QueueMessage(self, item)
        self._inflight[message] = None
        return message

    def take_ready(self, limit: int) -> list[QueueMessage]:
        """Up to `limit` more messages, only those ready now (never waits): a consumer that
        handles several at once (the engine's group commit) settles each as usual."""
        taken: list[QueueMessage] = []
        ready = self.queue.ready
        while ready and len(taken) < limit and not self._closed:
            taken.append(self._deliver(ready.popleft()))
        return taken

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        returned = list(self._inflight)
        self._inflight.clear()
        for message in returned:
            message._settled = True
            self.queue.unsettled -= 1
        if not self.queue.closed:
            self.queue.put_back([m._item for m in returned])
        if self._on_close is not None:
            self._on_close(self)


class _Topic:
    __slots__ = ("log", "groups")

    def __init__(self) -> None:
        self.log: list[bytes] = []
        self.groups: dict[str, _Queue] = {"": _Queue()}


class MemoryBus:
    """In-process bus. `published(topic)` and `history()` show what was sent, for tests."""

    def __init__(self, *, duplicate_window: float = 120.0) -> None:
        self._topics: dict[str, _Topic] = {}
        self._history: list[tuple[str, bytes]] = []
        self._subscriptions: set[QueueSubscription] = set()
        self._closed = False
        self.duplicate_window = duplicate_window  # seconds a msg_id is remembered, as JetStream's
        self._msg_ids: dict[str, float] = {}  # msg_id -> when first published, oldest first
        self._forget_at = 0.0  # when to forget the expired ones next

    def _topic(self, topic: str) -> _Topic:
        state = self._topics.get(topic)
        if state is None:
            if not isinstance(topic, str) or not topic:
                raise BusError(f"bad topic {topic!r}")
            state = self._topics[topic] = _Topic()
        return state

    async def publish(self, topic: str, data: bytes, *, msg_id: str | None = None) -> None:
        self.publish_nowait(topic, data, msg_id=msg_id)

    def publish_nowait(self, topic: str, data: bytes, *, msg_id: str | None = None) -> None:
        """`publish` for synchronous callers (tests, the simulator's input). A `msg_id` seen
        within `duplicate_window` seconds drops the message, as JetStream's dedupe does."""
        if self._closed:
            raise BusError("the bus is closed")
        data = bytes(data)
        state = self._topics.get(topic) or self._topic(topic)
        if msg_id is not None:
            now = time.monotonic()
            ids = self._msg_ids
            if now >= self._forget_at:  # forget the ids older than the window, once a second
                self._forget_at = now + 1.0
                while ids:
                    oldest, when = next(iter(ids.items()))
                    if now - when < self.duplicate_window:
                        break
                    del ids[oldest]
            when = ids.get(msg_id)
            if when is not None:
                if now - when < self.duplicate_window:
                    return
                del ids[msg_id]  # seen long ago: remembered anew, at the end
            ids[msg_id] = now
        state.log.append(data)
        self._history.append((topic, data))
        for queue in state.groups.values():
            queue.put(_Item(data))

    def subscribe(self, topic: str, *, group: str | None = None) -> QueueSubscription:
        if self._closed:
            raise BusError("the bus is closed")
        state = self._topic(topic)
        key = group or ""
        queue = state.groups.get(key)
        if queue is None:
            queue = state.groups[key] = _Queue()
            queue.ready.extend(_Item(data) for data in state.log)
        subscription = QueueSubscription(topic, queue, on_close=self._subscriptions.discard)
        self._subscriptions.add(subscription)
        return subscription

    async def close(self) -> None:
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        for state in self._topics.values():
            for queue in state.groups.values():
                queue.close()

    # --- views for tests ----------------------------------------------------------------------

    def published(self, topic: str) -> list[bytes]:
        """Every message published to `topic`, in order, consumed or not."""
        state = self._topics.get(topic)
        return list(state.log) if state else []

    def history(self) -> list[tuple[str, bytes]]:
        """Every (topic, message) published, in order, across topics."""
        return list(self._history)

    def pending(self, topic: str, *, group: str | None = None) -> int:
        """Messages of `topic` not yet acked by `group` (ready, in flight or delayed)."""
        state = self._topics.get(topic)
        queue = state.groups.get(group or "") if state else None
        return len(queue.ready) + queue.unsettled if queue else 0
