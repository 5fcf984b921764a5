"""The whole loop on one machine (issue 5): throughput and latency of the engine on NATS JetStream.

    python bench/loop_bench.py [--messages 20000] [--runs 3] [--rate 1000] [--duration 10]
                               [--only throughput|latency] [--profile FILE]

A real embedded nats-server (runtime/bus/embedded.EmbeddedNats, 127.0.0.1, JetStream on disk in a
temporary folder), an Engine on a NatsBus with a real store (SQLite file, WAL), and a workflow of a
parent phase and one child phase (`dependsOn` the parent).

(a) Max throughput. MESSAGES done messages (`complete`, one per parent task) are published to the
    done subject first; then the engine starts and the clock runs until its done consumer has
    nothing pending (every message acked: recorded, its child published and acknowledged by
    JetStream). Floor, in the same run, on the same server and the same messages: a nats-py loop
    that only consumes them (a durable pull consumer, `fetch` of as many as the engine pulls, 256),
    republishes each (JetStream publish, the acks awaited together: `publish_async`) and acks it.
    Each run uses fresh subjects and a fresh store; medians of RUNS runs; the ratio engine/floor
    (target >= 0.5).

(b) Latency at a fixed offered load. A second process (this script, `--role worker`) plays the
    rest of the system with the NatsBus: it publishes parent tasks at RATE per second for DURATION
    seconds (as the scheduler would), a fake worker answers each with a `complete` done message,
    and a child subscriber (another NatsBus subscription, as a worker would consume) receives the
    children. Latency: from just before the done message is published to the child's arrival at
    the subscriber (both in the worker process: one clock). Prints p50/p99/max (target p99 < 50
    ms at 1,000/s) and the rates achieved.

The engine runs in this process, as `flowlord serve` does; peak RSS of this process at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flowlord.compiler import compile_paths
from flowlord.runtime.bus.embedded import EmbeddedNats
from flowlord.runtime.bus.nats import NatsBus
from flowlord.runtime.clock import SystemClock
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.store import Store
from flowlord.runtime.task import Task, format_time

import nats  # nats-py, for the floor

UTC = timezone.utc
T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)
BATCH = Settings().done_batch  # the engine's done batch (and pull) size: the floor's fetch size

WORKFLOW = """\
[[Phase]]
task = "parent"
rule = "cron=0 0 1 1 *"
retry = 2
template = "?date={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "child"
dependsOn = "parent"
rule = "retry_delay=30s"
retry = 3
template = "gs://acme/raw/{yyyy}/{mm}/{dd}/{hh}/child.json.gz"
"""


def compile_plan(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "loop.toml").write_text(WORKFLOW, encoding="utf-8")
    compilation = compile_paths([str(folder)])
    if compilation.plan is None:
        raise SystemExit("; ".join(d.message for d in compilation.diagnostics))
    return compilation.plan


def parent_task(i: int) -> Task:
    hour = (T0 - timedelta(hours=1 + i % 48)).strftime("%Y-%m-%dT%H")
    return Task(type="parent", info=f"?date={hour}", created=format_time(datetime.now(UTC)),
                id=str(uuid.uuid4()), meta=f"workflow=loop.toml&cron={hour}")


def done_of(task: Task) -> Task:
    now = format_time(datetime.now(UTC))
    return task.replace(result="complete", started=now, ended=now)


def done_messages(count: int) -> list[bytes]:
    return [done_of(parent_task(i)).to_json() for i in range(count)]


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def preload(url: str, subject: str, messages: list[bytes]) -> None:
    """Publishes `messages` to `subject` (its stream must exist), acks awaited together."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for start in range(0, len(messages), 1000):
        futures = [await js.publish_async(subject, data) for data in messages[start:start + 1000]]
        await asyncio.gather(*futures)
    await nc.close()


# --- (a) max throughput ---------------------------------------------------------------------------


async def engine_throughput(url: str, plan, work: Path, run: int, messages: list[bytes],
                            profile: str | None = None) -> float:
    prefix = f"tp{run}."
    bus = NatsBus(url, prefix=prefix)
    await bus.connect()  # the stream
    await preload(url, prefix + "done", messages)
    store = Store.open(work / f"tp{run}" / "flowlord.db")
    engine = Engine(plan, store, bus, SystemClock(), Settings(files_topic="-"))
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    start = time.perf_counter()
    runner = asyncio.create_task(engine.run())
    await asyncio.sleep(0.05)
    while await bus.pending("done"):
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    engine.stop()
    await asyncio.wait_for(runner, 10)
    await bus.close()
    done = len(store.recent_tasks(event="done", limit=1000))
    store.close()
    assert done == min(len(messages), 1000), done
    return elapsed


async def floor_throughput(url: str, run: int, messages: list[bytes]) -> float:
    """A nats-py loop: fetch, republish (acks awaited together), ack; the same messages."""
    prefix = f"fl{run}"
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name=prefix.upper(), subjects=[prefix + ".>"])
    await preload(url, prefix + ".done", messages)
    sub = await js.pull_subscribe(prefix + ".done", durable="floor")
    start = time.perf_counter()
    seen = 0
    while seen < len(messages):
        try:
            batch = await sub.fetch(BATCH, timeout=2)
        except nats.errors.TimeoutError:
            continue
        futures = [await js.publish_async(prefix + ".child", m.data) for m in batch]
        await asyncio.gather(*futures)
        for m in batch:
            await m.ack()
        seen += len(batch)
    await nc.flush()
    elapsed = time.perf_counter() - start
    await nc.close()
    return elapsed


async def bench_throughput(url: str, plan, work: Path, runs: int, count: int,
                           profile: str | None) -> dict:
    messages = done_messages(count)
    await engine_throughput(url, plan, work, 0, messages[: count // 10])  # warm-up
    await floor_throughput(url, 0, messages[: count // 10])
    engines, floors = [], []
    for run in range(1, runs + 1):
        floors.append(await floor_throughput(url, run, messages))
        engines.append(await engine_throughput(url, plan, work, run, messages,
                                               profile if run == 1 else None))
    eng, floor = statistics.median(engines), statistics.median(floors)
    print(f"throughput: {count} done messages (parent -> child), median of {runs} runs")
    print(f"  floor  (nats-py: fetch {BATCH}, republish, ack)   {count / floor:9,.0f} msg/s")
    print(f"  engine (NatsBus + store, one child each)    {count / eng:9,.0f} msg/s")
    print(f"  ratio engine/floor {floor / eng:.2f} (target >= 0.5)")
    print("  runs (s): floor " + " ".join(f"{x:.2f}" for x in floors)
          + " | engine " + " ".join(f"{x:.2f}" for x in engines))
    return {"floor_msgs_per_s": count / floor, "engine_msgs_per_s": count / eng,
            "ratio": floor / eng, "floor_runs_s": floors, "engine_runs_s": engines}


# --- (b) latency at a fixed load ------------------------------------------------------------------


async def bench_latency(url: str, plan, work: Path, rate: int, duration: float) -> dict:
    prefix = "lat."
    bus = NatsBus(url, prefix=prefix)
    await bus.connect()
    store = Store.open(work / "latency" / "flowlord.db")
    engine = Engine(plan, store, bus, SystemClock(), Settings(files_topic="-"))
    runner = asyncio.create_task(engine.run())
    cpu = time.process_time()
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--role", "worker", "--url", url, "--prefix", prefix,
        "--rate", str(rate), "--duration", str(duration), stdout=subprocess.PIPE)
    try:
        out, _ = await asyncio.wait_for(worker.communicate(), duration + 120)
    finally:
        if worker.returncode is None:
            worker.kill()
    cpu = time.process_time() - cpu
    engine.stop()
    await asyncio.wait_for(runner, 10)
    await bus.close()
    store.close()
    result = json.loads(out.decode().strip().splitlines()[-1])
    lat = result["latency_ms"]
    print(f"latency: {rate} parents/s offered for {duration:g} s (a worker process answers each "
          "with a done message)")
    print(f"  sent {result['sent']} parents at {result['offered_rate']:.0f}/s, done messages "
          f"{result['done']}, children received {result['received']} "
          f"({result['received_rate']:.0f}/s), missing {result['sent'] - result['received']}")
    print(f"  done published -> child at a subscriber: p50 {lat['p50']:.1f} ms, p90 "
          f"{lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms, max {lat['max']:.1f} ms "
          "(target p99 < 50 ms)")
    print(f"  engine process CPU while loaded: {100 * cpu / max(result['elapsed'], 1e-9):.0f}% "
          "of one core")
    result["engine_cpu_s"] = cpu
    return result


async def worker_role(url: str, prefix: str, rate: int, duration: float) -> None:
    """The rest of the system: parent tasks at `rate`/s, a fake worker answering each with a
    done message, a child subscriber measuring the latency. Prints one JSON line."""
    bus = NatsBus(url, prefix=prefix, name="bench-worker")
    await bus.connect()
    published: dict[str, float] = {}
    latencies: list[float] = []
    total = int(rate * duration)
    state = {"sent": 0, "done": 0}
    finished = asyncio.Event()

    async def children() -> None:
        async for message in bus.subscribe("child", group="bench"):
            arrived = time.monotonic()
            task = Task.from_json(message.data)
            sent = published.pop(task.id, None)
            if sent is not None:
                latencies.append(arrived - sent)
            await message.ack()
            if len(latencies) >= total:
                finished.set()

    async def work() -> None:
        async for message in bus.subscribe("parent", group="bench"):
            done = done_of(Task.from_json(message.data)).to_json()
            published[Task.from_json(done).id] = time.monotonic()
            await bus.publish("done", done)
            state["done"] += 1
            await message.ack()

    consumers = [asyncio.create_task(children()), asyncio.create_task(work())]
    await asyncio.sleep(1.0)  # subscriptions set up
    start = time.monotonic()
    for i in range(total):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await bus.publish("parent", parent_task(i).to_json())
        state["sent"] += 1
    sent_for = time.monotonic() - start
    try:
        await asyncio.wait_for(finished.wait(), 60)
    except asyncio.TimeoutError:
        pass
    elapsed = time.monotonic() - start
    for consumer in consumers:
        consumer.cancel()
    await asyncio.gather(*consumers, return_exceptions=True)
    await bus.close()
    ms = sorted(1000 * x for x in latencies) or [float("nan")]

    def pct(p: float) -> float:
        return ms[min(len(ms) - 1, int(p / 100 * len(ms)))]

    print(json.dumps({
        "sent": state["sent"], "done": state["done"], "received": len(latencies),
        "offered_rate": state["sent"] / sent_for, "received_rate": len(latencies) / elapsed,
        "elapsed": elapsed,
        "latency_ms": {"p50": pct(50), "p90": pct(90), "p99": pct(99), "max": ms[-1],
                       "mean": statistics.fmean(ms)},
    }))


# --- main -----------------------------------------------------------------------------------------


async def driver(args) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="flowlord-loop-") as tmp:
        work = Path(tmp)
        plan = compile_plan(work / "workflows")
        async with EmbeddedNats(work / "nats") as server:
            print(f"nats-server at {server.url} (JetStream in {work / 'nats'}), "
                  f"{os.cpu_count()} CPUs")
            if args.only in (None, "throughput"):
                results["throughput"] = await bench_throughput(server.url, plan, work, args.runs,
                                                               args.messages, args.profile)
            if args.only in (None, "latency"):
                results["latency"] = await bench_latency(server.url, plan, work, args.rate,
                                                         args.duration)
    print(f"peak RSS of this process (engine, store, driver) {peak_rss_mib():.0f} MiB")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", choices=("throughput", "latency"))
    parser.add_argument("--profile", help="cProfile the first engine throughput run into FILE")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--role", choices=("driver", "worker"), default="driver",
                        help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if args.role == "worker":
        asyncio.run(worker_role(args.url, args.prefix, args.rate, args.duration))
        return 0
    results = asyncio.run(driver(args))
    if args.json:
        print(json.dumps(results, default=str))
    ok = True
    if "throughput" in results:
        ok &= results["throughput"]["ratio"] >= 0.5
    if "latency" in results:
        ok &= results["latency"]["latency_ms"]["p99"] < 50
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
