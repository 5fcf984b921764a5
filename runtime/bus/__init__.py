"""Message buses: the `Bus` protocol and `open_bus(url)`.

The interface is asyncio. The NATS JetStream client (nats-py) that comes next is asyncio, and so
are its acks; the dispatcher waits on several subscriptions (done, files) and timers at once,
which one event loop does without a thread per consumer. Blocking work behind a bus (stdin,
local files) stays inside its implementation.

Delivery is at least once. A subscriber receives one `Message` at a time and settles it:
`ack()` when its effects are durable, `nak(delay)` to have it delivered again after `delay`
seconds. A message left unsettled when its subscription closes is delivered again to the next
subscriber. `Message.attempt` counts deliveries, starting at 1.

Subscriptions of one topic share its messages (each goes to one of them, a work queue); a
`group` name gives an independent consumer with its own position (a JetStream durable, an NSQ
channel, a Pub/Sub subscription).

URLs (`open_bus`):
    memory://                         in-process queues (tests, `simulate`)
    file://DIR[?follow=false&poll=S]  JSON lines: topic `t` is the file `DIR/t.json`
    stdio                             stdin lines in, stdout lines out (also the empty string)
    nats://HOST:4222[,HOST2:4222…]    NATS JetStream (`nats.NatsBus`; options as ?key=value)
    tls://…                           the same over TLS
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import AsyncIterator, Protocol, runtime_checkable

__all__ = ["Bus", "BusError", "Message", "Subscription", "open_bus", "publish_takes_msg_id"]


class BusError(Exception):
    """A bus that cannot be built or used (bad URL, bad topic, closed bus)."""


class Message(ABC):
    """One delivery of a message. Settle it once; later calls do nothing."""

    __slots__ = ("topic", "data", "attempt")

    def __init__(self, topic: str, data: bytes, attempt: int = 1) -> None:
        self.topic = topic
        self.data = data
        self.attempt = attempt  # deliveries so far, this one included

    @abstractmethod
    async def ack(self) -> None:
        """Done with it: it is not delivered again."""

    @abstractmethod
    async def nak(self, delay: float = 0.0) -> None:
        """Not done: deliver it again after `delay` seconds."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.topic!r} attempt={self.attempt} {self.data[:60]!r}>"


class Subscription(ABC):
    """An async iterator of Messages; closing it ends the iteration and returns the messages it
    holds unsettled to its topic.

    A finite input (stdin, a file bus with follow=false) ends the iteration only once every
    message delivered is settled, since a nak may still bring one back: settle each message (or
    close the subscription) before waiting for the end."""

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    @abstractmethod
    async def __anext__(self) -> Message: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


@runtime_checkable
class Bus(Protocol):
    async def publish(self, topic: str, data: bytes, *, msg_id: str | None = None) -> None:
        """Send one message. Raises BusError when it cannot.

        `msg_id` (optional, keyword) names the message: a bus that deduplicates (NATS JetStream
        within its duplicate window, the memory bus) stores a message published twice under one
        id once. Buses without dedupe (file, stdio) may not take it; check with
        `publish_takes_msg_id(bus)`."""

    def subscribe(self, topic: str, *, group: str | None = None) -> Subscription:
        """The messages of `topic`. Setting up may happen on the first iteration."""

    async def close(self) -> None:
        """Ends every subscription and refuses later publishes."""


def open_bus(url: str) -> Bus:
    """A bus from its URL (see the module docstring)."""
    if url in ("", "stdio", "stdio://"):
        from .files import StdioBus

        return StdioBus()
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise BusError(f"task bus {url!r} not supported: use memory://, file://DIR, stdio or nats://HOST")
    if scheme == "memory":
        from .memory import MemoryBus

        return MemoryBus()
    if scheme == "file":
        from .files import FileBus

        return FileBus.from_url(url)
    if scheme in ("nats", "tls"):
        from .nats import NatsBus

        return NatsBus.from_url(url)
    raise BusError(f"task bus {scheme!r} not supported: use memory://, file://DIR, stdio or nats://HOST")


def publish_takes_msg_id(bus: Bus) -> bool:
    """Whether `bus.publish` accepts the `msg_id` keyword."""
    import inspect

    try:
        parameters = inspect.signature(bus.publish).parameters
    except (TypeError, ValueError):
        return False
    return "msg_id" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
