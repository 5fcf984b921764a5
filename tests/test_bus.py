"""Buses: the in-memory bus, the JSON-lines file bus and stdio, and open_bus."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
from flowlord.runtime.bus import Bus, BusError, Message, open_bus
from flowlord.runtime.bus.files import FileBus, StdioBus
from flowlord.runtime.bus.memory import MemoryBus


def run(coro, timeout: float = 10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def drain(subscription) -> list[bytes]:
    """Reads to the end, acking each message (the end waits for every message to be settled)."""
    out = []
    async for message in subscription:
        out.append(message.data)
        await message.ack()
    return out


async def take(subscription, n: int) -> list[Message]:
    out = []
    async for message in subscription:
        out.append(message)
        if len(out) == n:
            break
    return out


# --- memory ---------------------------------------------------------------------------------

def test_memory_bus_is_a_bus():
    assert isinstance(MemoryBus(), Bus)
    assert isinstance(FileBus("x"), Bus)
    assert isinstance(StdioBus(), Bus)


def test_memory_publish_before_subscribe_is_kept_in_order():
    async def main():
        bus = MemoryBus()
        for i in range(5):
            await bus.publish("t", b"m%d" % i)
        sub = bus.subscribe("t")
        got = await take(sub, 5)
        assert [m.data for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert all(m.attempt == 1 and m.topic == "t" for m in got)
        for m in got:
            await m.ack()
        assert bus.pending("t") == 0
        assert bus.published("t") == [b"m%d" % i for i in range(5)]
        assert bus.published("other") == []
        await bus.close()

    run(main())


def test_memory_waiting_subscriber_wakes_on_publish():
    async def main():
        bus = MemoryBus()
        sub = bus.subscribe("t")
        waiter = asyncio.create_task(take(sub, 2))
        await asyncio.sleep(0)
        await bus.publish("t", b"a")
        await bus.publish("t", b"b")
        assert [m.data for m in await waiter] == [b"a", b"b"]

    run(main())


def test_memory_nak_redelivers_with_attempt_count():
    async def main():
        bus = MemoryBus()
        await bus.publish("t", b"x")
        await bus.publish("t", b"y")
        sub = bus.subscribe("t")
        first = await sub.__anext__()
        await first.nak()
        # redelivered after what was already queued
        assert [(m.data, m.attempt) for m in await take(sub, 2)] == [(b"y", 1), (b"x", 2)]
        assert bus.pending("t") == 2  # two delivered, none acked

    run(main())


def test_memory_nak_delay():
    async def main():
        loop = asyncio.get_running_loop()
        bus = MemoryBus()
        await bus.publish("t", b"x")
        sub = bus.subscribe("t")
        m = await sub.__anext__()
        start = loop.time()
        await m.nak(0.2)
        await m.nak()  # a second settle does nothing
        await m.ack()
        again = await sub.__anext__()
        assert again.data == b"x" and again.attempt == 2
        assert loop.time() - start >= 0.19
        await again.ack()
        assert bus.pending("t") == 0

    run(main())


def test_memory_unacked_messages_return_when_a_subscription_closes():
    async def main():
        bus = MemoryBus()
        for d in (b"a", b"b", b"c"):
            await bus.publish("t", d)
        sub = bus.subscribe("t")
        a, b = await take(sub, 2)
        await a.ack()
        await sub.close()
        await b.ack()  # too late: it was already returned
        later = bus.subscribe("t")
        assert [(m.data, m.attempt) for m in await take(later, 2)] == [(b"b", 2), (b"c", 1)]
        async for _ in sub:
            raise AssertionError("a closed subscription yields nothing")

    run(main())


def test_memory_subscribers_of_a_topic_share_and_groups_each_get_all():
    async def main():
        bus = MemoryBus()
        one, two = bus.subscribe("t"), bus.subscribe("t")
        other = bus.subscribe("t", group="audit")
        for i in range(4):
            await bus.publish("t", b"%d" % i)
        got_one = [m.data for m in await take(one, 2)]
        got_two = [m.data for m in await take(two, 2)]
        assert sorted(got_one + got_two) == [b"0", b"1", b"2", b"3"]
        assert [m.data for m in await take(other, 4)] == [b"0", b"1", b"2", b"3"]
        late = bus.subscribe("t", group="late")  # a new group starts from the first message
        assert [m.data for m in await take(late, 1)] == [b"0"]

    run(main())


def test_memory_close_ends_iteration_and_refuses_publish():
    async def main():
        bus = MemoryBus()
        sub = bus.subscribe("t")
        waiting = asyncio.create_task(take(sub, 1))
        await asyncio.sleep(0)
        await bus.close()
        assert await waiting == []
        with pytest.raises(BusError):
            await bus.publish("t", b"x")

    run(main())


def test_memory_cancelled_reader_loses_nothing():
    async def main():
        bus = MemoryBus()
        sub = bus.subscribe("t")
        reader = asyncio.create_task(sub.__anext__())
        await asyncio.sleep(0)
        bus.publish_nowait("t", b"x")  # handed to the waiter...
        reader.cancel()  # ...which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await reader
        m = await sub.__anext__()
        assert m.data == b"x"

    run(main())


def test_memory_history_across_topics():
    async def main():
        bus = MemoryBus()
        await bus.publish("a", b"1")
        await bus.publish("b", b"2")
        await bus.publish("a", b"3")
        assert bus.history() == [("a", b"1"), ("b", b"2"), ("a", b"3")]

    run(main())


# --- file bus -------------------------------------------------------------------------------

def test_file_bus_appends_lines_and_reads_them_back(tmp_path):
    async def main():
        bus = FileBus(tmp_path / "bus", follow=False)
        for i in range(3):
            await bus.publish("task1", b'{"type":"task1","info":"%d"}' % i)
        path = tmp_path / "bus" / "task1.json"
        assert path.read_bytes().splitlines() == [b'{"type":"task1","info":"%d"}' % i for i in range(3)]
        assert await drain(bus.subscribe("task1")) == path.read_bytes().splitlines()
        # the position is committed: a new subscription (a restart) starts after it
        assert await drain(FileBus(tmp_path / "bus", follow=False).subscribe("task1")) == []
        await bus.publish("task1", b"four")
        assert await drain(bus.subscribe("task1")) == [b"four"]
        assert (tmp_path / "bus" / "task1.json.offset").read_text().strip() == str(path.stat().st_size)

    run(main())


def test_file_bus_unacked_and_naked_messages_are_read_again(tmp_path):
    async def main():
        bus = FileBus(tmp_path, follow=False)
        for d in (b"a", b"b", b"c"):
            await bus.publish("t", d)
        sub = bus.subscribe("t")
        a = await sub.__anext__()
        b = await sub.__anext__()
        await b.ack()  # acked, but after the unacked `a`: the commit stays before `a`
        await a.nak()
        again = await sub.__anext__()
        assert (again.data, again.attempt) == (b"a", 2)
        await sub.close()  # `a` (attempt 2) and `c` never acked
        assert await drain(bus.subscribe("t")) == [b"a", b"b", b"c"]  # at least once: b comes again

    run(main())


def test_file_bus_follows_a_growing_file_and_go_style_lines(tmp_path):
    async def main():
        bus = FileBus(tmp_path, follow=True, poll=0.02)
        sub = bus.subscribe("done")
        waiter = asyncio.create_task(take(sub, 3))
        await asyncio.sleep(0.05)
        with open(tmp_path / "done.json", "ab") as f:  # a Go worker appending
            f.write(b'{"type":"a"}\r\n\n  \n{"type":"b"}\n{"type"')
            f.flush()
            await asyncio.sleep(0.05)
            f.write(b':"c"}\n')
        got = await waiter
        assert [m.data for m in got] == [b'{"type":"a"}', b'{"type":"b"}', b'{"type":"c"}']
        await bus.close()

    run(main())


def test_file_bus_last_line_without_newline_when_not_following(tmp_path):
    (tmp_path / "t.json").write_bytes(b"one\ntwo")
    async def main():
        return await drain(FileBus(tmp_path, follow=False).subscribe("t"))
    assert run(main()) == [b"one", b"two"]


def test_file_bus_rereads_a_truncated_file(tmp_path):
    async def main():
        bus = FileBus(tmp_path, follow=False)
        await bus.publish("t", b"first-long-line")
        await drain(bus.subscribe("t"))
        (tmp_path / "t.json").write_bytes(b"new\n")  # shorter: rotated
        return await drain(bus.subscribe("t"))
    assert run(main()) == [b"new"]


def test_file_bus_groups_have_their_own_position(tmp_path):
    async def main():
        bus = FileBus(tmp_path, follow=False)
        await bus.publish("t", b"x")
        await drain(bus.subscribe("t"))
        return await drain(bus.subscribe("t", group="audit"))
    assert run(main()) == [b"x"]
    assert (tmp_path / "t.json.offset").exists() and (tmp_path / "t.json.audit.offset").exists()


@pytest.mark.parametrize("topic", ["", "a/b", "../x", ".hidden", "a\\b"])
def test_file_bus_refuses_topics_that_are_not_plain_names(tmp_path, topic):
    bus = FileBus(tmp_path)
    with pytest.raises(BusError):
        run(bus.publish(topic, b"x"))
    with pytest.raises(BusError):
        bus.subscribe(topic)


def test_file_bus_refuses_a_newline_in_a_message(tmp_path):
    with pytest.raises(BusError):
        run(FileBus(tmp_path).publish("t", b"a\nb"))


# --- stdio ----------------------------------------------------------------------------------

ECHO = textwrap.dedent("""
    import asyncio
    from flowlord.runtime.bus import open_bus

    async def main():
        bus = open_bus("stdio")
        async for m in bus.subscribe("done"):
            if m.data == b"retry" and m.attempt == 1:
                await m.nak(0.01)
                continue
            await bus.publish("out", b"%d:" % m.attempt + m.data)
            await m.ack()
        await bus.close()

    asyncio.run(main())
""")


def test_stdio_bus_in_a_subprocess():
    lines = b'{"type":"a"}\n\nretry\r\n{"type":"b"}\n   \nlast'
    done = subprocess.run([sys.executable, "-c", ECHO], input=lines, capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr.decode()
    out = done.stdout.splitlines()
    # blank lines skipped, \r dropped, the last line without a newline read, the nak'd one again
    assert sorted(out) == sorted([b'1:{"type":"a"}', b'1:{"type":"b"}', b"1:last", b"2:retry"])
    assert [line for line in out if line.startswith(b"1:")] == [b'1:{"type":"a"}', b'1:{"type":"b"}', b"1:last"]


def test_stdio_bus_reads_only_one_topic():
    bus = StdioBus(stdin=open(os.devnull, "rb"))
    bus.subscribe("done")
    bus.subscribe("done")
    with pytest.raises(BusError, match="already read"):
        bus.subscribe("files")


def test_stdio_bus_with_given_streams(tmp_path):
    source = tmp_path / "in"
    source.write_bytes(b"x\ny\n")
    out = open(tmp_path / "out", "wb")

    async def main():
        bus = StdioBus(stdin=open(source, "rb"), stdout=out)
        async for m in bus.subscribe("t"):
            await bus.publish("whatever", m.data.upper())
            await m.ack()

    run(main())
    out.close()
    assert (tmp_path / "out").read_bytes() == b"X\nY\n"


# --- open_bus -------------------------------------------------------------------------------

def test_open_bus(tmp_path):
    assert isinstance(open_bus("memory://"), MemoryBus)
    assert isinstance(open_bus("stdio"), StdioBus)
    assert isinstance(open_bus(""), StdioBus)  # as in Go, empty means stdio
    bus = open_bus(f"file://{tmp_path}?follow=false&poll=0.5")
    assert isinstance(bus, FileBus) and bus.root == tmp_path and not bus.follow and bus.poll == 0.5
    assert open_bus("file://rel/dir").root.as_posix() == "rel/dir"
    assert open_bus(f"file://{tmp_path}").follow


@pytest.mark.parametrize("url", ["nsq://localhost:4150", "kafka", "file://", "file:///x?folow=1",
                                 "file:///x?poll=soon"])
def test_open_bus_refuses(url):
    with pytest.raises(BusError):
        open_bus(url)


def test_open_bus_nats():
    # connects on first use: tests/test_nats_bus.py runs it on a real server
    bus = open_bus("nats://localhost:4222,nats://other:4222")
    assert type(bus).__name__ == "NatsBus" and isinstance(bus, Bus)
    assert bus.servers == ["nats://localhost:4222", "nats://other:4222"]
