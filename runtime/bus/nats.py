"""The NATS JetStream bus (nats-py): `NatsBus`, opened by `open_bus("nats://host:4222")`.

Layout on the server
    Each topic is one subject, `PREFIX + subject_token(topic)`; the default prefix is `flowlord.`.
    One stream (default name: the prefix in capitals, `FLOWLORD`) holds `PREFIX.>`: it is created
    when missing, with file storage, limits-based retention (`max_age`, 7 days by default; discard
    old) and a duplicate window for `Nats-Msg-Id` dedupe (2 minutes). An existing stream is used
    as it is, so an operator may give it other limits or replicas.

Topic names
    A NATS subject token cannot hold `.`, `*`, `>` or white space, and consumer names cannot hold
    `/` or `\\` either, so a topic is encoded: ASCII letters, digits, `_` and `-` stay as they are,
    every other byte of its UTF-8 form becomes `~XX` (two upper-case hex digits). `task1` stays
    `task1`, `bq.load` becomes `bq~2Eload`. The encoding is reversible (`topic_of_token`), and
    `~~` never occurs inside a token, which the consumer names below rely on.

Consumers
    Subscriptions of one (topic, group) share one durable pull consumer, named `TOKEN(topic)` for
    the default group and `TOKEN(topic)~~TOKEN(group)` otherwise; it filters the topic's subject,
    starts from the first message in the stream (as a new MemoryBus group does), acks explicitly
    and redelivers what is not acked within `ack_wait`. `max_ack_pending` bounds the messages
    delivered and not yet settled across every subscriber of the consumer (back-pressure: the
    server stops delivering at the bound); each subscription also asks for at most `batch`
    messages at a time, so it buffers no more than that. A consumer that takes several messages
    at once (`take_ready(n)`: those already received, without waiting; the engine's group
    commit) has the subscription ask for up to n + 1 at a time instead, as soon as it took some,
    so that the next ones arrive while it handles these. `Message.attempt` is the server's count
    of deliveries (`num_delivered`). Messages a subscription holds unsettled when it closes,
    including those it had fetched but not yet handed out, are nak'd so they come back at once;
    those then count one more delivery.

Connections
    nats-py reconnects forever, with a growing wait between attempts (`reconnect_wait`, capped
    by `reconnect_wait_max`), and resubscribes by itself; subscriptions pull again as soon as the
    connection is back. `publish` waits for the JetStream ack: while the connection is down or
    JetStream does not answer it waits and sends again (up to `publish_timeout` seconds, forever
    by default, until the bus is closed), with the same `Nats-Msg-Id` each time, so the server
    stores the message once. Give `msg_id` (a task id and attempt, say) to have the server drop a
    message published twice within the duplicate window across calls too. `publish_many` sends
    several messages at once and awaits their acks together (a reply subject of the bus's own,
    one round trip for all); one not acknowledged within `request_timeout` goes again alone,
    through `publish`.

URL
    `nats://host:4222`, several comma-separated for a cluster (`nats://a:4222,nats://b:4222` or
    `nats://a:4222,b:4222`), `tls://…` as nats-py takes it, `user:pass@` credentials as well.
    A query string sets options: `?prefix=x.&stream=X&ack_wait=30&max_ack_pending=1000&batch=64
    &max_age=604800&replicas=3&name=flowlord`.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import random
import re
import time
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from . import BusError, Message, Subscription

try:  # imported lazily by open_bus: a missing client only fails when a NATS bus is asked for
    import nats
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client as _Client
    from nats.js import api as _api
    from nats.nuid import NUID
except ImportError as _error:  # pragma: no cover - nats-py is a dependency
    nats = None
    _IMPORT_ERROR: ImportError | None = _error
else:
    _IMPORT_ERROR = None

__all__ = ["NatsBus", "NatsMessage", "NatsSubscription", "consumer_name", "subject_token", "topic_of_token"]

log = logging.getLogger("flowlord.bus.nats")

_PLAIN = re.compile(rb"[A-Za-z0-9_-]")
_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|~[0-9A-F]{2})+")
_MAX_CONSUMER_NAME = 200  # names are file names in the server's store


# --- names ------------------------------------------------------------------------------------

def subject_token(topic: str) -> str:
    """The subject token of a topic (see the module docstring). Raises BusError for ''."""
    if not isinstance(topic, str) or not topic:
        raise BusError(f"bad topic {topic!r}")
    return "".join(
        chr(b) if _PLAIN.fullmatch(bytes((b,))) else f"~{b:02X}" for b in topic.encode("utf-8")
    )


def topic_of_token(token: str) -> str:
    """The topic a subject token encodes: the inverse of `subject_token`."""
    if not _TOKEN.fullmatch(token or ""):
        raise BusError(f"{token!r} is not a flowlord subject token")
    out = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "~":
            out.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(ord(token[i]))
            i += 1
    return out.decode("utf-8")


def consumer_name(topic: str, group: str | None = None) -> str:
    """The durable consumer of (topic, group): `TOKEN(topic)` or `TOKEN(topic)~~TOKEN(group)`.

    A name longer than 200 characters is cut and ends with `~h` and a hash of the whole."""
    name = subject_token(topic)
    if group:
        name += "~~" + subject_token(group)
    if len(name) > _MAX_CONSUMER_NAME:
        digest = hashlib.sha256(name.encode()).hexdigest()[:32]
        name = name[: _MAX_CONSUMER_NAME - 34] + "~h" + digest
    return name


def _stream_name(prefix: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "_", prefix.strip(".")).upper()
    return name or "FLOWLORD"


def _normalize_prefix(prefix: str) -> str:
    if not isinstance(prefix, str) or not prefix.strip("."):
        raise BusError(f"bad subject prefix {prefix!r}: give one or more tokens, like 'flowlord.'")
    if not prefix.endswith("."):
        prefix += "."
    for part in prefix[:-1].split("."):
        if not part or any(c in part for c in "*> \t\r\n"):
            raise BusError(f"bad subject prefix {prefix!r}")
    return prefix


def _require_client() -> None:
    if _IMPORT_ERROR is not None:
        raise BusError(f"the NATS bus needs nats-py (pip install nats-py): {_IMPORT_ERROR}")


# --- messages ---------------------------------------------------------------------------------

class NatsMessage(Message):
    """One JetStream delivery. `ack`, `nak` and `in_progress` reach the server without waiting
    for it: a lost ack only means one more delivery (at least once)."""

    __slots__ = ("_attempt", "_msg", "_owner", "_settled")

    def __init__(self, owner: NatsSubscription, msg: Any, attempt: int | None = None) -> None:
        self._msg = msg
        super().__init__(owner.topic, msg.data, attempt)
        self._owner = owner
        self._settled = False

    @property
    def attempt(self) -> int:
        """The server's count of deliveries (`num_delivered`), read when first asked."""
        if self._attempt is None:
            try:
                self._attempt = self._msg.metadata.num_delivered
            except Exception:  # not a JetStream delivery: count it as a first one
                self._attempt = 1
        return self._attempt

    @attempt.setter
    def attempt(self, value: int | None) -> None:
        self._attempt = value

    @property
    def headers(self) -> dict[str, str]:
        return dict(self._msg.headers or {})

    @property
    def sequence(self) -> int:
        """The message's sequence number in the stream."""
        return self._msg.metadata.sequence.stream

    def _settle(self) -> bool:
        if self._settled:
            return False
        self._settled = True
        self._owner._inflight.pop(self, None)
        return True

    async def ack(self) -> None:
        if self._settle():
            await _quietly(self._msg.ack(), "ack")

    async def nak(self, delay: float = 0.0) -> None:
        if self._settle():
            await _quietly(self._msg.nak(delay if delay and delay > 0 else None), "nak")

    async def in_progress(self) -> None:
        """Still working on it: the server restarts its `ack_wait` clock."""
        if not self._settled:
            await _quietly(self._msg.in_progress(), "in_progress")


async def _quietly(awaitable, what: str) -> None:
    try:
        await awaitable
    except (nats.errors.Error, OSError) as error:  # the message is delivered again: at least once
        log.debug("%s not sent (%r): the message will be delivered again", what, error)


# --- subscriptions ----------------------------------------------------------------------------

class _Pull:
    __slots__ = ("generation", "last", "remaining", "reply")

    def __init__(self, reply: str, remaining: int, last: float, generation: int) -> None:
        self.reply = reply
        self.remaining = remaining
        self.last = last  # last sign of life: a message or a heartbeat
        self.generation = generation


class NatsSubscription(Subscription):
    """A subscription on a durable pull consumer.

    It keeps at most one pull request open at a time, for up to `batch` messages, with an expiry
    and idle heartbeats; it asks again when the request ends (filled, expired, refused) or goes
    silent, and as soon as the connection comes back after a loss. It only asks while someone
    waits on `__anext__` and its buffer is at most half full."""

    def __init__(self, bus: NatsBus, topic: str, group: str | None) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group or None
        self.subject = bus.subject(topic)
        self.consumer = consumer_name(topic, group)
        self._buffer: deque = deque()
        self._inflight: dict[NatsMessage, None] = {}  # in delivery order
        self._wake = asyncio.Event()
        self._pull: _Pull | None = None
        self._pulls = 0
        self._retry_at = 0.0
        self._failures = 0
        self._consumer_ok = False
        self._inbox: str | None = None
        self._nsub = None
        self._setup_lock = asyncio.Lock()
        self._pulling: asyncio.Future | None = None  # a pull request sent from take_ready
        self._batch = bus.batch  # messages asked for at a time (see take_ready)
        self._closed = False

    def __repr__(self) -> str:
        return f"<NatsSubscription {self.topic!r} group={self.group!r} consumer={self.consumer!r}>"

    # -- delivery -------------------------------------------------------------------------------

    async def __anext__(self) -> NatsMessage:
        if self._closed:
            raise StopAsyncIteration
        if self._nsub is None:
            await self._setup()
        bus = self.bus
        while True:
            self._wake.clear()
            if self._closed:
                raise StopAsyncIteration
            if self._buffer:
                msg = self._buffer.popleft()
                break
            await self._maybe_pull()
            if self._buffer or self._closed:
                continue
            try:
                await asyncio.wait_for(self._wake.wait(), bus.heartbeat)
            except TimeoutError:
                pass
        return self._deliver(msg)

    def _deliver(self, msg) -> NatsMessage:
        message = NatsMessage(self, msg)  # its attempt is read from the metadata when asked
        self._inflight[message] = None
        return message

    def take_ready(self, limit: int) -> list[NatsMessage]:
        """Up to `limit` more messages, only those already received (never waits): a consumer
        that handles several at once (the engine's group commit) settles each as usual. Such
        a consumer is then asked for up to `limit + 1` messages at a time (at most
        `max_ack_pending`), not `batch`."""
        self._batch = max(self._batch, min(limit + 1, self.bus.max_ack_pending))
        buffer = self._buffer
        taken: list[NatsMessage] = []
        while buffer and len(taken) < limit and not self._closed:
            taken.append(self._deliver(buffer.popleft()))
        pull = self._pull
        if taken and (pull is None or pull.remaining <= 0) and self._pulling is None:
            # Ask for the next ones now, so that they come while these are handled.
            self._pulling = asyncio.ensure_future(self._pull_now())
        return taken

    async def _pull_now(self) -> None:
        try:
            await self._maybe_pull()
        except Exception as error:  # __anext__ asks again
            log.debug("pull request for %s: %r", self.consumer, error)
        finally:
            self._pulling = None

    async def _setup(self) -> None:
        async with self._setup_lock:
            if self._nsub is not None or self._closed:
                return
            nc = await self.bus._ready()
            await self._ensure_consumer()
            self._inbox = nc.new_inbox()
            self._nsub = await nc.subscribe(self._inbox + ".*", cb=self._on_msg)
            self.bus._woken.add(self._wake)

    async def _ensure_consumer(self) -> None:
        """Creates the durable consumer, or updates its settings; retries while the server or
        JetStream is away."""
        bus = self.bus
        delay = 0.05
        while not self._closed:
            try:
                await bus._ensure_stream()
                await bus._js.add_consumer(bus.stream, config=bus._consumer_config(self))
                self._consumer_ok = True
                return
            except nats.js.errors.APIError as error:
                if error.code and error.code < 500 and error.code != 408:
                    raise BusError(f"cannot set up consumer {self.consumer!r} on {bus.stream!r}: {error}")
                log.debug("consumer %s not ready yet: %r", self.consumer, error)
            except (TimeoutError, nats.errors.Error, OSError) as error:
                if isinstance(error, nats.errors.ConnectionClosedError) or bus._closed:
                    raise BusError("the bus is closed") from error
                log.debug("consumer %s not ready yet: %r", self.consumer, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _maybe_pull(self) -> None:
        bus = self.bus
        nc = bus._nc
        now = time.monotonic()
        pull = self._pull
        if pull is not None:
            silent = now - pull.last > 2 * bus.heartbeat + 1.0
            if pull.generation == bus._generation and not silent and pull.remaining > 0:
                return
            self._pull = None  # ended, or lost with the connection
        if self._closed or nc is None or not nc.is_connected or now < self._retry_at:
            return
        batch = self._batch
        want = batch - len(self._buffer)
        if want < max(1, batch // 2):
            return
        if not self._consumer_ok:
            try:
                await asyncio.wait_for(self._ensure_consumer(), bus.request_timeout * 2)
            except TimeoutError:
                self._backoff()
                return
        self._pulls += 1
        reply = f"{self._inbox}.{self._pulls}"
        request = {"batch": want, "expires": int(bus.pull_expires * 1e9)}
        if bus.heartbeat:
            request["idle_heartbeat"] = int(bus.heartbeat * 1e9)
        self._pull = _Pull(reply, want, now, bus._generation)
        try:
            await nc.publish(
                f"{bus._api_prefix}.CONSUMER.MSG.NEXT.{bus.stream}.{self.consumer}",
                json.dumps(request).encode(),
                reply=reply,
            )
        except (nats.errors.Error, OSError) as error:
            log.debug("pull request for %s not sent: %r", self.consumer, error)
            self._pull = None
            self._backoff()

    def _backoff(self) -> None:
        self._failures += 1
        self._retry_at = time.monotonic() + min(0.05 * 2**self._failures, 1.0)

    async def _on_msg(self, msg) -> None:
        headers = msg.headers
        status = headers.get("Status") if headers else None
        pull = self._pull
        if not status:
            if self._closed:
                await _quietly(msg.nak(), "nak")
                return
            self._buffer.append(msg)
            self._failures = 0
            if pull is not None:
                pull.remaining -= 1
                pull.last = time.monotonic()
            self._wake.set()
            return
        if pull is None or msg.subject != pull.reply:
            return  # about an earlier request
        if status == "100":
            pull.last = time.monotonic()
            return
        # 404/408: the request ended without (more) messages; 409: refused or the consumer changed;
        # 503: no consumer (deleted, or JetStream restarting)
        self._pull = None
        if status != "408":
            description = headers.get("Description", "")
            log.debug("pull on %s ended: %s %s", self.consumer, status, description)
            if status == "503" or "Deleted" in description:
                self._consumer_ok = False
            if status != "404":
                self._backoff()
        self._wake.set()

    # -- closing --------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self.bus._woken.discard(self._wake)
        self.bus._subscriptions.discard(self)
        returned = [m._msg for m in self._inflight] + list(self._buffer)
        for message in self._inflight:
            message._settled = True
        self._inflight.clear()
        self._buffer.clear()
        self._pull = None
        if self._nsub is not None:
            try:
                await self._nsub.unsubscribe()
            except (nats.errors.Error, OSError):
                pass
        for msg in returned:
            await _quietly(msg.nak(), "nak")


# --- the bus ----------------------------------------------------------------------------------

class NatsBus:
    """The Bus on NATS JetStream (see the module docstring).

    Connects on first use (or `await bus.connect()`); `close()` returns what subscriptions hold
    and closes the connection after flushing what it still has to send."""

    def __init__(
        self,
        servers: str | Sequence[str] = "nats://127.0.0.1:4222",
        *,
        prefix: str = "flowlord.",
        stream: str | None = None,
        ack_wait: float = 30.0,
        max_ack_pending: int = 1000,
        batch: int = 64,
        max_age: float = 7 * 24 * 3600.0,
        duplicate_window: float = 120.0,
        replicas: int = 1,
        publish_timeout: float | None = None,
        request_timeout: float = 2.0,
        connect_wait: float = 15.0,
        reconnect_wait: float = 0.1,
        reconnect_wait_max: float = 2.0,
        heartbeat: float = 5.0,
        pull_expires: float = 30.0,
        name: str = "flowlord",
        **connect_options: Any,
    ) -> None:
        _require_client()
        if isinstance(servers, str):
            servers = [s for s in servers.split(",")]
        self.servers = [_server_url(s) for s in servers if s.strip()]
        if not self.servers:
            raise BusError("no NATS server given")
        self.prefix = _normalize_prefix(prefix)
        self.stream = stream or _stream_name(self.prefix)
        if any(c in self.stream for c in ">*. /\\\t\r\n"):
            raise BusError(f"bad stream name {self.stream!r}")
        if ack_wait <= 0 or max_ack_pending < 1 or batch < 1:
            raise BusError("ack_wait, max_ack_pending and batch must be positive")
        if heartbeat and heartbeat * 2 > pull_expires:
            raise BusError("heartbeat must be at most half of pull_expires")
        self.ack_wait = float(ack_wait)
        self.max_ack_pending = int(max_ack_pending)
        self.batch = int(batch)
        self.max_age = float(max_age)
        self.duplicate_window = float(duplicate_window)
        self.replicas = int(replicas)
        self.publish_timeout = publish_timeout
        self.request_timeout = float(request_timeout)
        self.connect_wait = float(connect_wait)
        self.reconnect_wait = float(reconnect_wait)
        self.reconnect_wait_max = float(reconnect_wait_max)
        self.heartbeat = float(heartbeat)
        self.pull_expires = float(pull_expires)
        self.name = name
        self._connect_options = connect_options
        self._api_prefix = "$JS.API"
        self._nc = None
        self._js = None
        self._connect_lock: asyncio.Lock | None = None
        self._connected: asyncio.Event | None = None
        self._stream_ok = False
        self._generation = 0
        self.reconnects = 0
        self._subscriptions: set[NatsSubscription] = set()
        self._woken: set[asyncio.Event] = set()
        self._nuid = NUID()
        self._subjects: dict[str, str] = {}  # topic -> subject, for the topics in use
        self._acks: dict[str, asyncio.Future] = {}  # publish_many's messages waiting for their ack
        self._acks_prefix: str | None = None
        self._ack_count = 0
        self._closed = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsBus:
        """A bus from `nats://host:4222[,host2:4222…][?option=value&…]` (see the module docstring)."""
        base, _, query = url.partition("?")
        kinds = {"prefix": str, "stream": str, "name": str, "ack_wait": float, "max_ack_pending": int,
                 "batch": int, "max_age": float, "duplicate_window": float, "replicas": int,
                 "publish_timeout": float, "request_timeout": float, "connect_wait": float,
                 "heartbeat": float, "pull_expires": float}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in kinds:
                raise BusError(f"unknown NATS bus option {key!r} in {url!r}: use one of {', '.join(kinds)}")
            try:
                options[key] = kinds[key](value)
            except ValueError:
                raise BusError(f"bad value {value!r} for {key} in {url!r}") from None
        return cls(base, **options)

    def __repr__(self) -> str:
        return f"<NatsBus {','.join(self.servers)} stream={self.stream!r} prefix={self.prefix!r}>"

    def subject(self, topic: str) -> str:
        """The subject that carries `topic`."""
        subject = self._subjects.get(topic) if isinstance(topic, str) else None
        if subject is None:
            subject = self.prefix + subject_token(topic)
            if len(self._subjects) < 4096:
                self._subjects[topic] = subject
        return subject

    def topic(self, subject: str) -> str:
        """The topic a subject of this bus carries."""
        if not subject.startswith(self.prefix):
            raise BusError(f"subject {subject!r} is not under {self.prefix!r}")
        return topic_of_token(subject[len(self.prefix) :])

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    # -- connection -----------------------------------------------------------------------------

    async def connect(self) -> None:
        """Connects and makes sure the stream exists; raises BusError when no server answers
        within `connect_wait` seconds."""
        await self._ready()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.connect_wait
        delay = 0.05
        while True:
            try:
                await self._ensure_stream()
                return
            except nats.js.errors.APIError as error:
                if error.code is not None and error.code < 500 and error.code != 408:
                    raise BusError(f"cannot set up stream {self.stream!r}: {error}") from error
                failure: BaseException = error
            except (TimeoutError, nats.errors.Error, OSError) as error:
                failure = error
            if self._closed:
                raise BusError("the bus is closed")
            if loop.time() >= deadline:
                raise BusError(f"JetStream at {', '.join(self.servers)} not ready within {self.connect_wait:g}s: {failure!r}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def _ready(self):
        if self._closed:
            raise BusError("the bus is closed")
        if self._nc is not None:
            return self._nc
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._nc is None:
                await self._connect()
            if self._closed:
                raise BusError("the bus is closed")
        return self._nc

    async def _connect(self) -> None:
        self._connected = asyncio.Event()
        options: dict[str, Any] = dict(
            servers=self.servers,
            name=self.name,
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # forever
            reconnect_time_wait=self.reconnect_wait_max,
            connect_timeout=max(1, int(self.request_timeout)),
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
            closed_cb=self._on_closed,
        )
        if "reconnect_to_server_handler" in inspect.signature(_Client.connect).parameters:
            options["reconnect_to_server_handler"] = self._next_server  # growing waits
        options.update(self._connect_options)
        client = _Client()
        try:
            await asyncio.wait_for(client.connect(**options), self.connect_wait)
        except (TimeoutError, nats.errors.Error, OSError) as error:
            try:
                await client.close()
            except Exception:
                pass
            raise BusError(
                f"cannot connect to NATS at {', '.join(self.servers)} within {self.connect_wait:g}s: "
                f"{error!r}"
            ) from error
        self._nc = client
        self._js = client.jetstream(timeout=self.request_timeout)
        self._connected.set()
        log.info("connected to NATS at %s", client.connected_url.netloc if client.connected_url else "?")

    def _next_server(self, servers, info):
        """nats-py's reconnect hook: the least tried server, after a wait that doubles with each
        failed attempt (from `reconnect_wait` to `reconnect_wait_max`, with jitter)."""
        server = min(servers, key=lambda s: s.reconnects)
        tries = server.reconnects
        if tries == 0:
            return server, 0.0
        delay = min(self.reconnect_wait_max, self.reconnect_wait * 2 ** (tries - 1))
        return server, delay * random.uniform(0.8, 1.0)

    async def _on_error(self, error: Exception) -> None:
        if isinstance(error, (OSError, asyncio.TimeoutError, nats.errors.StaleConnectionError)):
            log.debug("NATS connection: %r", error)
        else:
            log.warning("NATS error: %r", error)

    async def _on_disconnected(self) -> None:
        if self._connected is not None:
            self._connected.clear()
        if not self._closed:
            log.warning("lost the NATS connection; reconnecting")

    async def _on_reconnected(self) -> None:
        self.reconnects += 1
        self._generation += 1  # open pull requests died with the old connection
        self._stream_ok = False
        if self._connected is not None:
            self._connected.set()
        nc = self._nc
        log.warning("reconnected to NATS at %s", nc.connected_url.netloc if nc and nc.connected_url else "?")
        for event in list(self._woken):
            event.set()

    async def _on_closed(self) -> None:
        if self._connected is not None:
            self._connected.set()  # wakes publishers, which then see the closed connection
        for event in list(self._woken):
            event.set()

    async def _ensure_stream(self) -> None:
        if self._stream_ok:
            return
        js = self._js
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            config = _api.StreamConfig(
                name=self.stream,
                subjects=[self.prefix + ">"],
                retention=_api.RetentionPolicy.LIMITS,
                storage=_api.StorageType.FILE,
                discard=_api.DiscardPolicy.OLD,
                max_age=self.max_age,
                duplicate_window=self.duplicate_window,
                num_replicas=self.replicas,
                description="flowlord task bus",
            )
            try:
                await js.add_stream(config)
            except nats.js.errors.BadRequestError as error:
                if error.err_code != 10058:  # 10058: created meanwhile by another client
                    raise BusError(f"cannot create stream {self.stream!r} for {self.prefix}>: {error}") from error
        else:
            subjects = info.config.subjects or []
            if self.prefix + ">" not in subjects:
                raise BusError(
                    f"stream {self.stream!r} exists but does not hold {self.prefix}> (it holds {subjects})"
                )
        self._stream_ok = True

    def _consumer_config(self, subscription: NatsSubscription):
        return _api.ConsumerConfig(
            name=subscription.consumer,
            durable_name=subscription.consumer,
            description=f"flowlord topic {subscription.topic!r} group {subscription.group or ''!r}",
            deliver_policy=_api.DeliverPolicy.ALL,
            ack_policy=_api.AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=self.max_ack_pending,
            filter_subject=subscription.subject,
        )

    # -- the Bus interface ----------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes, *, msg_id: str | None = None) -> None:
        """Stores one message in JetStream and waits for the server's ack (see the module
        docstring for retries). `msg_id` names the message for the server's dedupe."""
        if self._closed:
            raise BusError("the bus is closed")
        subject = self.subject(topic)
        data = bytes(data)
        await self._ready()
        headers = {"Nats-Msg-Id": str(msg_id) if msg_id is not None else self._nuid.next().decode()}
        loop = asyncio.get_running_loop()
        deadline = None if self.publish_timeout is None else loop.time() + self.publish_timeout
        delay = 0.05
        while True:
            if self._closed:
                raise BusError("the bus is closed")
            nc = self._nc
            error: BaseException | None = None
            if not nc.is_connected and not nc.is_closed:
                if self._connected.is_set():  # lost, and the client has not said so yet
                    if deadline is not None and loop.time() >= deadline:
                        raise BusError(f"publish to {topic!r}: no NATS connection within {self.publish_timeout:g}s")
                    await asyncio.sleep(0.02)
                else:
                    await self._wait_connected(deadline, topic)
                continue
            try:
                if not self._stream_ok:
                    await self._ensure_stream()
                await self._js.publish(subject, data, timeout=self.request_timeout, headers=dict(headers))
                return
            except nats.errors.ConnectionClosedError as closed:
                raise BusError("the NATS connection is closed") from closed
            except nats.errors.MaxPayloadError as big:
                raise BusError(f"message for {topic!r} is larger than the server's max payload") from big
            except nats.js.errors.NoStreamResponseError as e:
                self._stream_ok = False  # JetStream restarting, or the stream was deleted
                error = e
            except nats.js.errors.APIError as e:
                if e.code is not None and e.code < 500 and e.code != 408:
                    raise BusError(f"publish to {topic!r} refused: {e}") from e
                error = e
            except (TimeoutError, nats.errors.Error, OSError) as e:
                error = e  # timeout, reconnecting, outbound buffer full…
            if deadline is not None and loop.time() >= deadline:
                raise BusError(f"publish to {topic!r} not acknowledged within {self.publish_timeout:g}s: {error!r}")
            log.debug("publish to %s: %r; retrying", subject, error)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    async def publish_many(self, items: Sequence[tuple[str, bytes, str | None]]
                           ) -> list[BaseException | None]:
        """Stores several messages, each (topic, data, msg_id), sent at once and their
        JetStream acks awaited together (one round trip, not one each). Returns, in order, None
        for each stored and the error of each that could not be: one not acknowledged within
        `request_timeout` is published again alone, as `publish` does (with its retries and
        the same `Nats-Msg-Id`, so that the server stores it once)."""
        if self._closed:
            raise BusError("the bus is closed")
        await self._ready()
        results: list[BaseException | None] = [None] * len(items)
        headers = [{"Nats-Msg-Id": str(msg_id) if msg_id is not None else self._nuid.next().decode()}
                   for _, _, msg_id in items]
        futures: list[asyncio.Future | None] = [None] * len(items)
        tokens: list[str] = []
        nc = self._nc
        if nc.is_connected and self._stream_ok:
            try:
                prefix = await self._ack_inbox()
                loop = asyncio.get_running_loop()
                acks = self._acks
                for i, (topic, data, _) in enumerate(items):
                    self._ack_count += 1
                    token = str(self._ack_count)
                    futures[i] = acks[token] = loop.create_future()
                    tokens.append(token)
                    await nc.publish(self.subject(topic), bytes(data), reply=prefix + token,
                                     headers=headers[i])
            except (nats.errors.Error, OSError) as error:  # the rest go one by one
                log.debug("publishing %d messages at once: %r", len(items), error)
            waiting = [f for f in futures if f is not None]
            if waiting:
                await asyncio.wait(waiting, timeout=self.request_timeout)
            for token in tokens:  # those not answered in time are not waited for any more
                self._acks.pop(token, None)
        again = []
        for i, future in enumerate(futures):
            if future is not None and future.done() and not future.cancelled():
                error = future.exception()
                if error is None:
                    continue
                if isinstance(error, nats.js.errors.APIError) and error.code is not None \
                        and error.code < 500 and error.code != 408:
                    results[i] = BusError(f"publish to {items[i][0]!r} refused: {error}")
                    continue
            elif future is not None:
                future.cancel()
            again.append(i)
        for i in again:  # not acknowledged: the careful way, one at a time
            topic, data, _ = items[i]
            try:
                await self.publish(topic, data, msg_id=headers[i]["Nats-Msg-Id"])
            except Exception as error:  # BusError, or whatever the client raises
                results[i] = error
        return results

    async def _ack_inbox(self) -> str:
        """The prefix of the reply subjects of `publish_many`'s messages, where JetStream acks
        them (one subscription for the bus; the client renews it when it reconnects)."""
        if self._acks_prefix is None:
            prefix = self._nc.new_inbox() + "."
            await self._nc.subscribe(prefix + "*", cb=self._on_ack)
            self._acks_prefix = prefix
        return self._acks_prefix

    async def _on_ack(self, msg) -> None:
        """A JetStream publish ack (or its error) for `publish_many`."""
        future = self._acks.pop(msg.subject[len(self._acks_prefix):], None)
        if future is None or future.done():
            return
        headers = msg.headers
        if headers and headers.get("Status") == "503":  # no responders: no stream (yet)
            future.set_exception(nats.js.errors.NoStreamResponseError())
        elif b'"error"' in msg.data:
            error: BaseException
            try:
                nats.js.errors.APIError.from_error(json.loads(msg.data)["error"])  # raises it
            except Exception as raised:
                error = raised
            else:
                error = nats.js.errors.APIError()
            future.set_exception(error)
        else:
            future.set_result(None)

    async def _wait_connected(self, deadline: float | None, topic: str) -> None:
        loop = asyncio.get_running_loop()
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            raise BusError(
                f"publish to {topic!r}: no NATS connection within {self.publish_timeout:g}s"
            ) from None

    def subscribe(self, topic: str, *, group: str | None = None) -> NatsSubscription:
        if self._closed:
            raise BusError("the bus is closed")
        if group is not None and not isinstance(group, str):
            raise BusError(f"bad group {group!r}")
        subscription = NatsSubscription(self, topic, group)
        self._subscriptions.add(subscription)
        return subscription

    async def pending(self, topic: str, *, group: str | None = None) -> int:
        """Messages of `topic` that `group` has not acked yet (not delivered, or delivered and
        unsettled); 0 when the group has no consumer yet. The connection is flushed first, but
        the server applies acks asynchronously: one sent just before may not be counted yet."""
        nc = await self._ready()
        try:
            await nc.flush(timeout=max(1, int(self.request_timeout)))
        except (TimeoutError, nats.errors.Error):
            pass
        try:
            info = await self._js.consumer_info(self.stream, consumer_name(topic, group))
        except nats.js.errors.NotFoundError:
            return 0
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for subscription in list(self._subscriptions):
            await subscription.close()
        nc = self._nc
        if self._connected is not None:
            self._connected.set()
        if nc is not None and not nc.is_closed:
            try:
                if nc.is_connected:
                    await nc.flush(timeout=max(1, int(self.request_timeout)))
            except (TimeoutError, nats.errors.Error, OSError):
                pass
            try:
                await nc.close()
            except (nats.errors.Error, OSError):
                pass

    async def __aenter__(self) -> NatsBus:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _server_url(server: str) -> str:
    server = server.strip()
    return server if "://" in server else "nats://" + server
