"""Workers: runtime.worker.Worker and CommandHandler on the memory and file buses, the Python
API (flowlord.worker) and `flowlord worker`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import flowlord
from flowlord import cli
from flowlord import worker as api
from flowlord.runtime import worker as worker_module
from flowlord.runtime.bus import BusError, Subscription
from flowlord.runtime.bus.files import FileBus
from flowlord.runtime.bus.memory import MemoryBus, QueueMessage
from flowlord.runtime.task import Task, new_task, parse_time
from flowlord.runtime.worker import CommandHandler, TaskError, Worker

PY = sys.executable
FLOWLORD = [PY, "-m", "flowlord"]


def run(coro, timeout: float = 20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def done_tasks(bus: MemoryBus, topic: str = "done") -> list[Task]:
    return [Task.from_json(data) for data in bus.published(topic)]


async def until(condition, timeout: float = 10.0, step: float = 0.005) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(step)


async def work(bus: MemoryBus, handler, tasks, *, topic: str = "etl", expect: int | None = None, **options):
    """Publishes `tasks`, runs a Worker until `expect` results (default: one per task) are on
    the done topic, stops it and returns (worker, results)."""
    for task in tasks:
        bus.publish_nowait(topic, task if isinstance(task, bytes) else task.to_json())
    worker = Worker(bus, topic, handler, **options)
    running = asyncio.ensure_future(worker.run())
    want = len(tasks) if expect is None else expect
    await until(lambda: len(bus.published(options.get("done_topic", "done"))) >= want or running.done())
    worker.stop()
    await running
    return worker, done_tasks(bus, options.get("done_topic", "done"))


def one(handler, task: Task | None = None, **options) -> Task:
    async def main():
        bus = MemoryBus()
        worker, results = await work(bus, handler, [task or new_task("etl", info="s3://in/a.json")], **options)
        assert bus.pending("etl", group="workers") == 0
        (result,) = results
        return result

    return run(main())


# --- commands ---------------------------------------------------------------------------------


def test_command_complete_with_the_last_line_of_stdout_and_the_task_on_stdin(tmp_path):
    task = new_task("etl", job="load", info="s3://in/a.json", meta="day=2026-03-05&x=é")
    stdin = tmp_path / "stdin"
    script = 'cat > "$1"; echo first; echo "  the last line  "; echo; echo "   "'
    result = one(["sh", "-c", script, "sh", str(stdin)], task)
    assert stdin.read_bytes() == task.to_json() + b"\n"
    assert result.result == "complete" and result.msg == "the last line"
    assert (result.type, result.job, result.info, result.id, result.meta, result.created) == (
        task.type, task.job, task.info, task.id, task.meta, task.created)


def test_command_without_output_completes_without_msg():
    result = one(["true"])
    assert result.result == "complete" and result.msg == ""
    assert b'"msg"' not in result.to_json()


def test_command_sees_the_task_in_its_environment(tmp_path):
    out = tmp_path / "env.json"
    code = ("import json, os, sys; json.dump({k: v for k, v in os.environ.items() "
            "if k.startswith('FLOWLORD_')}, open(sys.argv[1], 'w'))")
    task = new_task("etl", job="load", info="s3://in/a.json?x=1", meta="day=2026-03-05&b=2")
    assert one([PY, "-c", code, str(out)], task).result == "complete"
    env = json.loads(out.read_text())
    assert env["FLOWLORD_INFO"] == task.info
    assert env["FLOWLORD_ID"] == task.id
    assert env["FLOWLORD_JOB"] == "load"
    assert env["FLOWLORD_META"] == task.meta
    assert env["FLOWLORD_TYPE"] == "etl"
    assert env["FLOWLORD_CREATED"] == task.created


def test_command_failure_reports_the_tail_of_stderr():
    script = "for i in $(seq 1 30); do echo line$i >&2; done; echo out; exit 3"
    result = one(["sh", "-c", script])
    assert result.result == "error"
    assert result.msg == "\n".join(f"line{i}" for i in range(11, 31))  # the last 20 lines


def test_stderr_tail_is_at_most_2_kib():
    code = "import sys; sys.stderr.write('x' * 9000 + 'END\\n'); sys.exit(1)"
    result = one([PY, "-c", code])
    assert result.result == "error"
    assert result.msg.endswith("xEND") and len(result.msg.encode()) <= 2048


def test_failure_without_stderr_reports_the_exit_status():
    assert one(["sh", "-c", "exit 7"]).msg == "exit status 7"
    assert one(["sh", "-c", "kill -TERM $$"]).msg == "killed by signal SIGTERM"


def test_a_command_that_cannot_start_is_an_error(tmp_path):
    result = one([str(tmp_path / "missing")])
    assert result.result == "error" and result.msg.startswith(f"cannot run {tmp_path / 'missing'}: ")


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[-1].startswith("Z")  # a zombie nobody reaped yet
    except FileNotFoundError:
        return True
    except OSError:
        return False


def test_timeout_kills_the_process_group(tmp_path):
    pidfile = tmp_path / "pid"
    script = 'sleep 30 & echo $! > "$1"; wait'
    start = time.monotonic()
    result = one(["sh", "-c", script, "sh", str(pidfile)], timeout=0.3)
    assert time.monotonic() - start < 5
    assert result.result == "error" and result.msg == "timed out after 0.3s"
    assert result.started and result.ended
    pid = int(pidfile.read_text())
    deadline = time.monotonic() + 3
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(pid), "the command's child outlived the timeout"


def test_command_concurrency_is_bounded(tmp_path):
    # each task logs to its own file: appends from concurrent tasks to one file can interleave
    script = ('python3 -c "import time; print(\'start\', time.time())" >> "$1.$FLOWLORD_INFO"; sleep 0.4; '
              'python3 -c "import time; print(\'end\', time.time())" >> "$1.$FLOWLORD_INFO"')
    script = script.replace("python3", PY)

    async def main():
        bus = MemoryBus()
        tasks = [new_task("etl", info=str(i)) for i in range(6)]
        _, results = await work(bus, ["sh", "-c", script, "sh", str(tmp_path / "log")], tasks, concurrency=2)
        assert sorted(r.info for r in results) == [str(i) for i in range(6)]
        assert all(r.result == "complete" for r in results)

    run(main())
    lines = [line for log in tmp_path.glob("log.*") for line in log.read_text().splitlines()]
    assert len(lines) == 12
    events = sorted((float(t), kind) for kind, t in (line.split() for line in lines))
    busy = peak = 0
    for _, kind in sorted(events, key=lambda e: (e[0], e[1] == "start")):  # an end before a start at a tie
        busy += 1 if kind == "start" else -1
        peak = max(peak, busy)
    assert peak == 2


def test_background_child_holding_stdout_does_not_hold_the_task(monkeypatch):
    monkeypatch.setattr(worker_module, "_PIPE_GRACE", 0.2)
    start = time.monotonic()
    result = one(["sh", "-c", "sleep 5 & echo done"])
    assert result.result == "complete" and result.msg == "done"
    assert time.monotonic() - start < 3


def test_big_input_and_output(tmp_path):
    task = new_task("etl", info="i" * 900_000)
    quits = one(["sh", "-c", 'echo "bye ${FLOWLORD_INFO_TOO_LONG}${#FLOWLORD_INFO}"'], task)  # no stdin read
    assert (quits.result, quits.msg) == ("complete", "bye 10")  # too long for the environment
    code = "import sys; data = sys.stdin.read(); print('x' * 5_000_000); print(len(data))"
    chatty = one([PY, "-c", code], task)
    assert (chatty.result, chatty.msg) == ("complete", str(len(task.to_json()) + 1))


def test_command_handler_needs_a_command():
    with pytest.raises(ValueError):
        CommandHandler([])
    with pytest.raises(ValueError):
        CommandHandler("sh -c true")


# --- Python handlers ----------------------------------------------------------------------------


def test_python_handlers_complete_and_error():
    def ok(task):
        return f"loaded {task.info}"

    def nothing(task):
        return None

    def fails(task):
        raise ValueError("no such file")

    def quiet(task):
        raise TaskError("upstream not ready")

    async def async_ok(task):
        await asyncio.sleep(0)
        return "async done"

    async def async_fails(task):
        raise RuntimeError("async boom")

    async def async_empty(task):
        raise KeyError

    cases = [(ok, "complete", "loaded s3://in/a.json"), (nothing, "complete", ""),
             (fails, "error", "no such file"), (quiet, "error", "upstream not ready"),
             (async_ok, "complete", "async done"), (async_fails, "error", "async boom"),
             (async_empty, "error", "KeyError")]
    for handler, status, msg in cases:
        result = one(handler)
        assert (result.result, result.msg) == (status, msg), handler.__name__


def test_python_handler_timeout():
    async def slow(task):
        await asyncio.sleep(10)

    def blocking(task):
        time.sleep(1)

    def own_timeout(task):
        raise TimeoutError("the database did not answer")

    assert one(slow, timeout=0.1).msg == "timed out after 0.1s"
    assert one(blocking, timeout=0.1).msg == "timed out after 0.1s"
    assert one(own_timeout, timeout=5).msg == "the database did not answer"


def test_started_and_ended_are_set_and_ordered():
    def slow(task):
        time.sleep(0.05)

    task = new_task("etl", info="x").replace(result="error", msg="stale", started="2000-01-01T00:00:00Z")
    before = datetime.now(timezone.utc).replace(microsecond=0)
    result = one(slow, task)
    after = datetime.now(timezone.utc)
    assert result.result == "complete" and result.msg == ""
    started, ended = parse_time(result.started), parse_time(result.ended)
    assert before <= started <= ended <= after  # RFC 3339, whole seconds, UTC
    assert result.started.endswith("Z") and len(result.started) == len("2026-03-05T07:00:00Z")
    assert result.created == task.created


def test_python_concurrency_is_bounded():
    spans: list[tuple[float, float]] = []

    async def handler(task):
        start = time.monotonic()
        await asyncio.sleep(0.05)
        spans.append((start, time.monotonic()))

    def threaded(task):
        start = time.monotonic()
        time.sleep(0.05)
        spans.append((start, time.monotonic()))

    for function in (handler, threaded):
        spans.clear()

        async def main(function=function):
            bus = MemoryBus()
            await work(bus, function, [new_task("etl", info=str(i)) for i in range(9)], concurrency=3)

        run(main())
        assert len(spans) == 9
        peak = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        assert peak == 3, function.__name__


def test_bad_messages_are_acked_and_skipped():
    async def main():
        bus = MemoryBus()
        bad = [b"not json", b"[1, 2]", b'{"type": ""}', b'{"type": 5}']
        worker, results = await work(bus, lambda task: "ok", [*bad, new_task("etl", info="good")], expect=1)
        assert [r.info for r in results] == ["good"]
        assert worker.stats.bad == 4 and worker.stats.complete == 1
        assert bus.pending("etl", group="workers") == 0

    run(main())


def test_the_result_is_published_before_the_input_is_acked(monkeypatch):
    events: list[tuple[str, bytes]] = []
    real_ack = QueueMessage.ack

    async def ack(self):
        events.append(("ack", self.data))
        await real_ack(self)

    class SpyBus(MemoryBus):
        async def publish(self, topic, data, **options):
            events.append((f"publish {topic}", data))
            await super().publish(topic, data, **options)

    monkeypatch.setattr(QueueMessage, "ack", ack)

    async def main():
        bus = SpyBus()
        tasks = [new_task("etl", info=str(i)) for i in range(3)]
        for task in tasks:
            bus.publish_nowait("etl", task.to_json())
        events.clear()
        worker = Worker(bus, "etl", lambda task: task.info)
        running = asyncio.ensure_future(worker.run())
        await until(lambda: sum(kind == "ack" for kind, _ in events) == 3)
        worker.stop()
        await running
        for task in tasks:
            published = next(i for i, (kind, data) in enumerate(events)
                             if kind == "publish done" and Task.from_json(data).id == task.id)
            acked = events.index(("ack", task.to_json()))
            assert published < acked

    run(main())


def test_a_result_that_cannot_be_published_is_not_acked(monkeypatch):
    monkeypatch.setattr(worker_module, "_PUBLISH_RETRIES", (0.01,))

    class Broken(MemoryBus):
        async def publish(self, topic, data, **options):
            if topic == "done":
                raise BusError("no route to the server")
            await super().publish(topic, data, **options)

    async def main():
        bus = Broken()
        calls = []
        bus.publish_nowait("etl", new_task("etl").to_json())
        worker = Worker(bus, "etl", lambda task: calls.append(task))
        running = asyncio.ensure_future(worker.run())
        await until(lambda: worker.stats.unfinished == 1)
        worker.stop()
        await running
        assert calls and bus.pending("etl", group="workers") == 1  # delivered again later

    run(main())


def test_each_result_has_its_own_message_id():
    ids = []

    class Recording(MemoryBus):
        async def publish(self, topic, data, *, msg_id=None):
            ids.append(msg_id)
            await super().publish(topic, data, msg_id=msg_id)

    async def main():
        bus = Recording()
        task = new_task("etl")
        _, results = await work(bus, lambda t: None, [task, task])  # the same task sent twice
        assert [r.id for r in results] == [task.id, task.id]
        assert len(set(ids)) == 2 and None not in ids

    run(main())


def test_long_tasks_tell_the_bus_they_are_in_progress(monkeypatch):
    beats = []

    async def in_progress(self):
        beats.append(self.data)

    monkeypatch.setattr(QueueMessage, "in_progress", in_progress, raising=False)

    async def slow(task):
        await asyncio.sleep(0.35)

    one(slow, progress_every=0.1)
    assert 2 <= len(beats) <= 4


# --- stopping -----------------------------------------------------------------------------------


def test_graceful_stop_finishes_the_tasks_in_flight_and_takes_no_more():
    async def main():
        bus = MemoryBus()
        started = asyncio.Event()

        async def slow(task):
            started.set()
            await asyncio.sleep(0.3)
            return "finished"

        for i in range(5):
            bus.publish_nowait("etl", new_task("etl", info=str(i)).to_json())
        worker = Worker(bus, "etl", slow, concurrency=2)
        running = asyncio.ensure_future(worker.run())
        await started.wait()
        await asyncio.sleep(0.05)
        worker.stop()
        stats = await running
        results = done_tasks(bus)
        assert [r.msg for r in results] == ["finished", "finished"]
        assert stats.complete == 2 and stats.unfinished == 0
        assert bus.pending("etl", group="workers") == 3  # for the next worker

    run(main())


def test_stop_when_idle_returns_at_once():
    async def main():
        bus = MemoryBus()
        worker = Worker(bus, "etl", lambda task: None)
        running = asyncio.ensure_future(worker.run())
        await asyncio.sleep(0.05)
        worker.stop()
        await asyncio.wait_for(running, 1)

    run(main())


def test_forced_stop_kills_commands_and_leaves_their_tasks_unacked():
    async def main():
        bus = MemoryBus()
        bus.publish_nowait("etl", new_task("etl").to_json())
        worker = Worker(bus, "etl", ["sleep", "30"])
        running = asyncio.ensure_future(worker.run())
        await until(lambda: worker.in_flight == 1)
        await asyncio.sleep(0.1)
        worker.stop()
        worker.stop(force=True)
        stats = await asyncio.wait_for(running, 3)
        assert stats.unfinished == 1 and bus.published("done") == []
        assert bus.pending("etl", group="workers") == 1
        _, results = await work(bus, lambda task: "second try", [], expect=1)
        assert [r.msg for r in results] == ["second try"]

    run(main())


def test_a_failing_subscription_is_raised_after_the_tasks_in_flight():
    class Failing(Subscription):
        def __init__(self):
            self.closed = False

        async def __anext__(self):
            raise BusError("connection refused")

        async def close(self):
            self.closed = True

    class Bus(MemoryBus):
        def subscribe(self, topic, *, group=None):
            self.sub = Failing()
            return self.sub

    async def main():
        bus = Bus()
        with pytest.raises(BusError, match="connection refused"):
            await Worker(bus, "etl", lambda task: None).run()
        assert bus.sub.closed

    run(main())


def test_worker_checks_its_options():
    bus = MemoryBus()
    with pytest.raises(ValueError):
        Worker(bus, "etl", lambda t: None, concurrency=0)
    with pytest.raises(ValueError):
        Worker(bus, "etl", lambda t: None, timeout=0)
    with pytest.raises(TypeError):
        Worker(bus, "etl", "not callable")


# --- file bus -----------------------------------------------------------------------------------


def test_worker_on_the_file_bus_ends_with_its_input(tmp_path):
    tasks = [new_task("etl", info=f"f{i}") for i in range(3)]
    (tmp_path / "etl.json").write_bytes(b"".join(t.to_json() + b"\n" for t in tasks) + b"junk\n")

    async def main():
        bus = FileBus(tmp_path, follow=False)
        stats = await Worker(bus, "etl", ["sh", "-c", 'echo "did $FLOWLORD_INFO"'], concurrency=2).run()
        assert (stats.complete, stats.bad) == (3, 1)

    run(main())
    results = [Task.from_json(line) for line in (tmp_path / "done.json").read_bytes().splitlines()]
    assert sorted(r.msg for r in results) == ["did f0", "did f1", "did f2"]
    size = (tmp_path / "etl.json").stat().st_size
    assert (tmp_path / "etl.json.workers.offset").read_text().strip() == str(size)


# --- the Python API -----------------------------------------------------------------------------


@pytest.fixture
def registry():
    api.clear()
    yield api
    api.clear()


def test_task_handler_registers_and_serve_runs_it(registry):
    @registry.task_handler("etl", concurrency=2)
    def etl(task):
        if task.info == "bad":
            raise ValueError("cannot load bad")
        return f"loaded {task.info}"

    @registry.task_handler("report", done_topic="reports-done")
    async def report(task):
        return "reported"

    assert etl(new_task("etl", info="x")) == "loaded x"  # still a plain function
    assert set(registry.handlers()) == {"etl", "report"}

    async def main():
        bus = MemoryBus()
        for info in ("a", "bad"):
            bus.publish_nowait("etl", new_task("etl", info=info).to_json())
        bus.publish_nowait("report", new_task("report").to_json())
        stop = asyncio.Event()
        serving = asyncio.ensure_future(registry.serve(bus, stop=stop))
        await until(lambda: len(bus.published("done")) == 2 and len(bus.published("reports-done")) == 1)
        stop.set()
        stats = await serving
        assert stats["etl"].complete == 1 and stats["etl"].error == 1
        results = {t.info: (t.result, t.msg) for t in done_tasks(bus)}
        assert results == {"a": ("complete", "loaded a"), "bad": ("error", "cannot load bad")}
        assert done_tasks(bus, "reports-done")[0].msg == "reported"

    run(main())


def test_task_handler_refuses_a_second_handler_for_a_topic(registry):
    registry.task_handler("etl")(lambda task: None)
    with pytest.raises(ValueError, match="already has a handler"):
        registry.task_handler("etl")(lambda task: None)
    with pytest.raises(ValueError):
        registry.task_handler("")
    with pytest.raises(ValueError, match="no task handlers"):
        run(registry.serve(MemoryBus(), handlers={}))


def test_flowlord_exports_the_worker_api():
    assert flowlord.Worker is Worker
    assert flowlord.task_handler is api.task_handler
    assert api.bus_url("memory://") == "memory://"


def test_run_serves_until_sigterm(tmp_path):
    script = tmp_path / "etl_worker.py"
    script.write_text(textwrap.dedent("""
        from flowlord.worker import task_handler, run

        @task_handler("etl")
        def etl(task):
            return "python " + task.info

        run()
    """))
    (tmp_path / "bus").mkdir()
    env = {**os.environ, "FLOWLORD_BUS": f"file://{tmp_path / 'bus'}?poll=0.02"}
    process = subprocess.Popen([PY, str(script)], env=env, stderr=subprocess.PIPE, text=True)
    try:
        (tmp_path / "bus" / "etl.json").write_bytes(new_task("etl", info="x").to_json() + b"\n")
        done = _wait_for_line(tmp_path / "bus" / "done.json", process)
        assert (done.result, done.msg) == ("complete", "python x")
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Traceback" not in process.stderr.read()


# --- flowlord worker ----------------------------------------------------------------------------


def _wait_for_line(path: Path, process: subprocess.Popen, timeout: float = 15.0) -> Task:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().endswith(b"\n"):
            return Task.from_json(path.read_bytes().splitlines()[-1])
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {process.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"no line in {path}")


def test_cli_worker_runs_the_command_and_stops_gracefully_on_sigterm(tmp_path):
    bus = tmp_path / "bus"
    bus.mkdir()
    marker = tmp_path / "started"
    script = f'echo "got $FLOWLORD_INFO"; touch {marker}; sleep 0.5; echo "loaded $FLOWLORD_INFO"'
    process = subprocess.Popen(
        [*FLOWLORD, "worker", "etl", "--bus", f"file://{bus}?poll=0.02", "--timeout", "10",
         "--", "sh", "-c", script],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        (bus / "etl.json").write_bytes(new_task("etl", info="s3://a").to_json() + b"\n")
        deadline = time.monotonic() + 15
        while not marker.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.01)
        assert marker.exists(), process.stderr.read() if process.poll() is not None else "not started"
        process.send_signal(signal.SIGTERM)  # while the task runs: it finishes first
        assert process.wait(10) == 0
        done = _wait_for_line(bus / "done.json", process)
        assert (done.result, done.msg) == ("complete", "loaded s3://a")
        assert done.started and done.ended
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = process.stderr.read()
    assert "complete" in log and "SIGTERM" in log and "Traceback" not in log


def test_cli_worker_without_a_command_is_a_usage_error(capsys):
    assert cli.main(["worker", "etl"]) == 2
    assert "COMMAND" in capsys.readouterr().err
    assert cli.main(["worker", "etl", "--bus", "memory://", "--"]) == 2


def test_cli_worker_usage_errors(capsys, tmp_path):
    assert cli.main(["worker", "etl", "--concurrency", "0", "--", "true"]) == 2
    assert cli.main(["worker", "etl", "--timeout", "soon", "--", "true"]) == 2
    assert cli.main(["worker", "etl", "stray", "--bogus", "--", "true"]) == 2
    assert cli.main(["worker", "etl", "--", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "is not an executable file" in err and "Traceback" not in err


def test_cli_worker_reads_options_before_and_after_the_topic(monkeypatch):
    seen = {}

    async def fake_work(args, bus, url, command):
        seen.update(vars(args), url=url, command=command)
        return 0

    monkeypatch.setattr(cli, "_work", fake_work)
    monkeypatch.delenv("FLOWLORD_BUS", raising=False)
    assert cli.main(["worker", "--concurrency", "3", "etl", "--timeout", "2m", "--bus", "memory://",
                     "--", "sh", "-c", "echo --bus"]) == 0
    assert (seen["topic"], seen["concurrency"], seen["timeout"], seen["url"]) == ("etl", 3, 120.0, "memory://")
    assert seen["command"] == ["sh", "-c", "echo --bus"]
    assert cli.main(["worker", "etl", "--bus", "memory://", "echo", "-n", "x"]) == 0  # no --: fine too
    assert seen["command"] == ["echo", "-n", "x"]
    monkeypatch.setenv("FLOWLORD_BUS", "memory://")
    assert cli.main(["worker", "etl", "--", "true"]) == 0
    assert seen["url"] == "memory://" and seen["done_topic"] == "done" and seen["group"] == "workers"
    monkeypatch.delenv("FLOWLORD_BUS")
    assert cli.main(["worker", "etl", "--", "true"]) == 0
    assert seen["url"] == "nats://127.0.0.1:4222"


def test_cli_worker_with_an_unusable_bus_exits_2_without_a_traceback():
    for url in ("bogus://x", "nats://127.0.0.1:1?connect_wait=0.3"):
        done = subprocess.run([*FLOWLORD, "worker", "etl", "--bus", url, "--", "true"],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 2, done.stderr
        assert f"flowlord worker: bus {url}" in done.stderr and "Traceback" not in done.stderr
