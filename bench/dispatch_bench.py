"""Runtime core speed (issue 4): the dispatcher with the store on, and the scheduler at scale.

    python bench/dispatch_bench.py [--runs 5] [--messages 20000] [--phases 10000] [--minutes 120]
                                   [--only dispatch|scheduler] [--profile FILE] [--json]

(a) Dispatch. A workflow of a parent phase and 3 child phases (`dependsOn` the parent). MESSAGES
    done messages, each a distinct `complete` of the parent (in time order, as they come), are
    published to a MemoryBus before the clock starts; then `Engine.run()` (SystemClock, the store
    a real SQLite file in a temporary folder, WAL, synchronous=NORMAL: flowlord's defaults)
    consumes them until every one is acked: decode, redelivery check, 3 child tasks built and
    published, recorded (the done row and the 3 sent rows; the messages already waiting share a
    transaction: the engine's group commit), then the ack. Also timed: `Engine.process_done`
    called directly on the same bytes (no bus, one transaction per message), for the split.
    The floor, on the same messages: a loop that only `json.loads` each message and inserts one
    row into the `tasks` table of the SAME schema (a database created by `Store.open`, the same
    file settings: WAL, synchronous=NORMAL), one autocommit INSERT per message, i.e. each
    message durable before the next, as the engine's rule (commit before ack) has it.
    Each run uses fresh databases; before each timed loop the collector is settled (collect,
    then `gc.freeze` the input); the figures are medians over RUNS runs (after a warm-up run),
    and the ratio engine/floor (target >= 0.5) is the ratio of the medians of wall time. The
    ratio in CPU time is printed too (the engine's includes its store's checkpointer thread).

(b) Scheduler. PHASES cron phases (10 workflows of PHASES/10; hourly, daily, every-15-minutes
    and `@every 5m` schedules spread over the minutes), an Engine on a SimClock, a MemoryBus and a
    real store. The clock moves one simulated minute at a time over MINUTES minutes, firing what is
    due (each fire: tasks built, published, recorded with the phase's last fire time, committed).
    Prints CPU seconds per simulated minute (process time), fires per minute, the start-up cost
    (registering every phase), the memory the plan index and the scheduler hold (tracemalloc,
    after start), the RSS along the way, and the memory of the plan itself (measured last: the
    plan rebuilt from its JSON under tracemalloc, which inflates the final peak RSS).

Peak RSS of the whole process is printed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flowlord.compiler import compile_paths
from flowlord.compiler.plan import Plan
from flowlord.runtime.bus.memory import MemoryBus
from flowlord.runtime.clock import SimClock, SystemClock
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.store import Store
from flowlord.runtime.task import Task, format_time

UTC = timezone.utc
T0 = datetime(2024, 1, 15, 0, 0, tzinfo=UTC)

WORKFLOW = """\
[[Phase]]
task = "parent"
rule = "cron=0 * * * *"
retry = 2
template = "?date={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "child1"
dependsOn = "parent"
rule = "retry_delay=30s"
retry = 3
template = "gs://acme/raw/{yyyy}/{mm}/{dd}/{hh}/child1.json.gz"

[[Phase]]
task = "child2:load"
dependsOn = "parent"
retry = 1
template = "?day={yyyy}-{mm}-{dd}&hour={hh}&table=events"

[[Phase]]
task = "child3"
dependsOn = "parent"
template = "s3://acme/out/{HOUR_SLUG}/part.csv"
"""

FLOOR_INSERT = ("INSERT INTO tasks (event, id, type, job, info, meta, result, msg, created, started,"
                " ended, recorded_at) VALUES ('done',?,?,?,?,?,?,?,?,?,?,?)")


def compile_folder(folder: Path):
    compilation = compile_paths([str(folder)])
    if compilation.plan is None:
        raise SystemExit("the bench workflow does not compile: "
                         + "; ".join(d.message for d in compilation.diagnostics))
    return compilation.plan


def done_messages(count: int) -> list[bytes]:
    """`count` distinct done messages of the parent phase, as a Go worker writes them: in time
    order, as they come (one created every 2 seconds, each with its own hour of data)."""
    out = []
    for i in range(count):
        created_at = T0 + timedelta(seconds=2 * i)
        hour = (T0 - timedelta(hours=1 + i % 48)).strftime("%Y-%m-%dT%H")
        created = format_time(created_at)
        out.append(Task(type="parent", info=f"?date={hour}", created=created, id=str(uuid.uuid4()),
                        meta=f"workflow=bench.toml&cron={hour}", result="complete",
                        started=format_time(created_at + timedelta(seconds=1)),
                        ended=format_time(created_at + timedelta(seconds=61))).to_json())
    return out


def settle_gc() -> None:
    """Before a timed loop: collect, and move what exists (the plan, the input messages, the
    bus's copy of them) out of the collector's sight (`gc.freeze`), so that the loop pays for
    the garbage of its own work only."""
    gc.collect()
    gc.freeze()


def stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# --- (a) dispatch ---------------------------------------------------------------------------------


def floor_run(path: Path, messages: list[bytes]) -> tuple[float, float]:
    """Seconds (wall, CPU) for the floor loop: decode, one autocommit INSERT into the same schema."""
    Store.open(path).close()  # the schema, and the file settings (WAL), as flowlord makes them
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    loads, execute = json.loads, conn.execute
    settle_gc()
    start, cpu = time.perf_counter(), time.process_time()
    for data in messages:
        obj = loads(data)
        get = obj.get
        execute(FLOOR_INSERT, (get("id", ""), obj["type"], get("job", ""), get("info", ""),
                               get("meta", ""), get("result", ""), get("msg", ""), get("created", ""),
                               get("started", ""), get("ended", ""), stamp()))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.unfreeze()
    count = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    conn.close()
    assert count == len(messages), count
    return elapsed, cpu


async def _engine_run(plan, path: Path, messages: list[bytes]) -> float:
    store = Store.open(path)
    bus = MemoryBus()
    engine = Engine(plan, store, bus, SystemClock(), Settings(files_topic="-"))
    for data in messages:
        bus.publish_nowait("done", data)
    settle_gc()
    start, cpu = time.perf_counter(), time.process_time()
    runner = asyncio.create_task(engine.run())
    while bus.pending("done"):
        await asyncio.sleep(0.005)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.unfreeze()
    engine.stop()
    await asyncio.wait_for(runner, 10)
    sent = sum(len(bus.published(t)) for t in ("child1", "child2", "child3"))
    done = len(store.recent_tasks(event="done", limit=1))
    store.close()
    assert sent == 3 * len(messages), sent
    assert done == 1
    return elapsed, cpu


def engine_run(plan, path: Path, messages: list[bytes]) -> tuple[float, float]:
    """Seconds (wall, CPU) for Engine.run() to consume and ack every message (MemoryBus, SystemClock)."""
    return asyncio.run(_engine_run(plan, path, messages))


async def _direct_run(plan, path: Path, messages: list[bytes]) -> float:
    store = Store.open(path)
    bus = MemoryBus()
    engine = Engine(plan, store, bus, SystemClock(), Settings(files_topic="-"))
    engine.start()
    process = engine.process_done
    settle_gc()
    start, cpu = time.perf_counter(), time.process_time()
    for data in messages:
        if not await process(data):
            raise RuntimeError("a message was not acked")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    gc.unfreeze()
    store.close()
    return elapsed, cpu


def direct_run(plan, path: Path, messages: list[bytes]) -> tuple[float, float]:
    """Seconds (wall, CPU) for Engine.process_done on each message (no bus consumer, no ack)."""
    return asyncio.run(_direct_run(plan, path, messages))


def bench_dispatch(work: Path, runs: int, count: int, profile: str | None) -> dict:
    folder = work / "dispatch-workflows"
    folder.mkdir()
    (folder / "bench.toml").write_text(WORKFLOW, encoding="utf-8")
    plan = compile_folder(folder)
    messages = done_messages(count)
    n = 0

    def fresh() -> Path:
        nonlocal n
        n += 1
        sub = work / f"db{n}"
        sub.mkdir()
        return sub / "flowlord.db"

    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        engine_run(plan, fresh(), messages)
        profiler.disable()
        profiler.dump_stats(profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)

    # warm-up (imports, page cache, caches), not counted
    floor_run(fresh(), messages[: count // 10])
    engine_run(plan, fresh(), messages[: count // 10])
    direct_run(plan, fresh(), messages[: count // 10])
    floors, engines, directs = [], [], []
    for _ in range(runs):
        floors.append(floor_run(fresh(), messages))
        engines.append(engine_run(plan, fresh(), messages))
        directs.append(direct_run(plan, fresh(), messages))
        for sub in work.glob("db*"):
            shutil.rmtree(sub, ignore_errors=True)
    floor, eng, direct = (statistics.median(w for w, _ in x) for x in (floors, engines, directs))
    floor_cpu, eng_cpu = (statistics.median(c for _, c in x) for x in (floors, engines))
    result = {
        "messages": count,
        "floor_msgs_per_s": count / floor,
        "engine_msgs_per_s": count / eng,
        "process_done_msgs_per_s": count / direct,
        "ratio": floor / eng,
        "ratio_cpu": floor_cpu / eng_cpu,
        "ratio_process_done": floor / direct,
        "floor_runs_s": [w for w, _ in floors],
        "engine_runs_s": [w for w, _ in engines],
    }
    print(f"dispatch: {count} done messages (parent -> 3 children), median of {runs} runs")
    print(f"  floor  (json.loads + 1 INSERT, same schema)   {count / floor:10,.0f} msg/s"
          f"   ({1e6 * floor / count:6.1f} us/msg wall, {1e6 * floor_cpu / count:6.1f} CPU)")
    print(f"  engine (Engine.run, MemoryBus, store on)       {count / eng:10,.0f} msg/s"
          f"   ({1e6 * eng / count:6.1f} us/msg wall, {1e6 * eng_cpu / count:6.1f} CPU;"
          f" {3 * count / eng:,.0f} child tasks/s)")
    print(f"  engine.process_done alone (one transaction each) {count / direct:8,.0f} msg/s"
          f"   ({1e6 * direct / count:6.1f} us/msg wall)")
    print(f"  ratio engine/floor {floor / eng:.2f} (target >= 0.5); in CPU time {floor_cpu / eng_cpu:.2f}"
          f"   [process_done/floor {floor / direct:.2f}]")
    print("  runs (s): floor " + " ".join(f"{w:.3f}" for w, _ in floors)
          + " | engine " + " ".join(f"{w:.3f}" for w, _ in engines))
    return result


# --- (b) scheduler ---------------------------------------------------------------------------------


def cron_workflows(folder: Path, phases: int, files: int = 10) -> None:
    """PHASES cron phases over FILES workflow files: 60% hourly (minute i%60), 20% daily
    (hour i%24, minute i%60), 10% every 15 minutes, 10% `@every 5m`."""
    per_file = phases // files
    for f in range(files):
        tables = []
        for j in range(per_file):
            i = f * per_file + j
            kind = i % 10
            if kind < 6:
                cron = f"{i % 60} * * * *"
            elif kind < 8:
                cron = f"{i % 60} {i % 24} * * *"
            elif kind == 8:
                cron = "*/15 * * * *"
            else:
                cron = "@every 5m"
            tables.append(f'[[Phase]]\ntask = "t{i:05d}"\nrule = "cron={cron}"\n'
                          f'template = "?hour={{yyyy}}-{{mm}}-{{dd}}T{{hh}}&n={i}"\n')
        (folder / f"cron{f:02d}.toml").write_text("\n".join(tables), encoding="utf-8")


def rss_mib() -> float:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


async def _scheduler(plan, path: Path, minutes: int) -> dict:
    store = Store.open(path)
    bus = MemoryBus()
    clock = SimClock(T0)
    gc.collect()
    rss0 = rss_mib()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    cpu0 = time.process_time()
    engine = Engine(plan, store, bus, clock, Settings(files_topic="-"))
    engine.start()  # registers every phase (first start: one transaction for all marks)
    startup_cpu = time.process_time() - cpu0
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    held = sum(s.size_diff for s in after.compare_to(before, "filename"))
    rss1 = rss_mib()
    fires = 0
    per_minute = []
    end = T0
    for minute in range(1, minutes + 1):
        end = T0 + timedelta(minutes=minute)
        cpu = time.process_time()
        while (due := engine.next_due()) is not None and due <= end:
            clock.set(max(due, clock.now()))
            await engine.run_due(due)
        clock.set(end)
        per_minute.append(time.process_time() - cpu)
    fires = len(bus.history())
    store.close()
    return {"startup_cpu_s": startup_cpu, "held_bytes": held, "rss_before_mib": rss0,
            "rss_after_start_mib": rss1, "per_minute": per_minute, "fires": fires,
            "rss_after_run_mib": rss_mib()}


def plan_memory(plan) -> int:
    """Bytes the plan alone holds: the same plan rebuilt from its JSON under tracemalloc."""
    text = plan.model_dump_json()
    gc.collect()
    tracemalloc.start()
    copy = Plan.model_validate_json(text)
    gc.collect()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del copy
    return size


def bench_scheduler(work: Path, phases: int, minutes: int) -> dict:
    folder = work / "cron-workflows"
    folder.mkdir()
    cron_workflows(folder, phases)
    gc.collect()
    rss_compile = rss_mib()
    t = time.perf_counter()
    plan = compile_folder(folder)
    compile_s = time.perf_counter() - t
    gc.collect()
    rss_compiled = rss_mib()
    count = sum(1 for w in plan.workflows for p in w.phases if p.cron is not None)
    assert count == phases, count
    r = asyncio.run(_scheduler(plan, work / "sched" / "flowlord.db", minutes))
    per_minute = r["per_minute"]
    total = sum(per_minute)
    print(f"scheduler: {phases} cron phases, {minutes} simulated minutes (SimClock, MemoryBus, "
          f"real store)   [compile {compile_s:.1f} s]")
    print(f"  start-up (register every phase)     {r['startup_cpu_s']:8.3f} CPU s")
    print(f"  CPU per simulated minute            mean {total / minutes:.4f} s, median "
          f"{statistics.median(per_minute):.4f} s, max {max(per_minute):.4f} s")
    print(f"  fires                               {r['fires']} ({r['fires'] / minutes:.0f}/min, "
          f"{1e6 * total / max(r['fires'], 1):.0f} us CPU per fire)")
    print(f"  memory held by index + scheduler    {r['held_bytes'] / 2**20:8.1f} MiB (tracemalloc, "
          f"after start) = {r['held_bytes'] / phases:.0f} B/phase")
    print(f"  RSS before compile / compiled / engine started / after run   {rss_compile:.0f} / "
          f"{rss_compiled:.0f} / {r['rss_after_start_mib']:.0f} / {r['rss_after_run_mib']:.0f} MiB"
          " (after run: with the MemoryBus's copy of every task sent)")
    r["peak_rss_before_plan_memory_mib"] = peak_rss_mib()
    plan_bytes = plan_memory(plan)
    print(f"  the plan itself                     {plan_bytes / 2**20:8.1f} MiB = "
          f"{plan_bytes / phases:.0f} B/phase (tracemalloc, the plan rebuilt from its JSON; peak "
          f"RSS before this {r['peak_rss_before_plan_memory_mib']:.0f} MiB)")
    r["plan_bytes"] = plan_bytes
    r["rss_compile_mib"], r["rss_compiled_mib"] = rss_compile, rss_compiled
    r["cpu_per_minute"] = total / minutes
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--phases", type=int, default=10000)
    parser.add_argument("--minutes", type=int, default=120)
    parser.add_argument("--only", choices=("dispatch", "scheduler"))
    parser.add_argument("--profile", help="cProfile one engine run into this file first")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    results = {}
    with tempfile.TemporaryDirectory(prefix="flowlord-bench-") as tmp:
        work = Path(tmp)
        if args.only in (None, "dispatch"):
            results["dispatch"] = bench_dispatch(work, args.runs, args.messages, args.profile)
        if args.only in (None, "scheduler"):
            results["scheduler"] = bench_scheduler(work, args.phases, args.minutes)
    print(f"peak RSS {peak_rss_mib():.0f} MiB  (python {sys.version.split()[0]}, sqlite "
          f"{sqlite3.sqlite_version}, {os.cpu_count()} CPUs)")
    if args.json:
        for part in results.values():
            part.pop("per_minute", None)
        print(json.dumps(results, default=str))
    if "dispatch" in results and results["dispatch"]["ratio"] < 0.5:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
