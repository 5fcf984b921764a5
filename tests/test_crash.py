"""Durable retries: a process killed with SIGKILL while a retry is pending, and a new process on
the same store sends it.

Each process runs the real Engine (`run()`) on a file-backed store and a file bus (JSON lines
in a folder), with the wall clock shifted by a given offset: the second one starts two hours
later, when the one-hour retry is overdue.
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flowlord.compiler import compile_paths
from flowlord.runtime.store import Store

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

HARNESS = r'''
import asyncio, signal, sys
from datetime import timedelta
from flowlord.compiler.plan import Plan
from flowlord.runtime.bus.files import FileBus
from flowlord.runtime.clock import SystemClock
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.store import Store


class Shifted(SystemClock):
    def __init__(self, seconds):
        self.offset = timedelta(seconds=seconds)

    def now(self):
        return super().now() + self.offset


async def main(plan_path, db, bus_dir, offset):
    with open(plan_path, encoding="utf-8") as handle:
        plan = Plan.model_validate_json(handle.read())
    store = Store.open(db)
    engine = Engine(plan, store, FileBus(bus_dir, poll=0.02), Shifted(float(offset)),
                    Settings(files_topic="-"))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, engine.stop)
    await engine.run()
    store.close()


asyncio.run(main(*sys.argv[1:]))
'''

WORKFLOW = """
[[Phase]]
task = "load"
rule = "cron=0 0 0 1 1 *&retry_delay=1h"
retry = 2
template = "?day={yyyy}-{mm}-{dd}"
"""


def wait_for(check, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(step)
    raise AssertionError("timed out")


def pending(db: Path):
    with Store.open(db) as store:
        return store.pending_retries()


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_pending_retry_survives_sigkill(tmp_path):
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "wf.toml").write_text(WORKFLOW)
    plan = compile_paths([str(folder)]).plan
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(plan.model_dump_json())
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    db, bus = tmp_path / "flowlord.db", tmp_path / "bus"
    bus.mkdir()
    failed = {"type": "load", "info": "?day=2024-01-14", "created": "2024-01-15T00:00:00Z",
              "id": "crash-1", "meta": "workflow=wf.toml", "result": "error", "msg": "boom"}
    (bus / "done.json").write_text(json.dumps(failed) + "\n")

    def start(offset: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(harness), str(plan_path), str(db), str(bus),
                                 str(offset)], stderr=subprocess.PIPE)

    first = start(0)
    try:
        (retry,) = wait_for(lambda: db.exists() and pending(db))
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    assert first.returncode == -signal.SIGKILL
    assert lines(bus / "load.json") == []  # not due for an hour
    assert retry.task.id == "crash-1" and retry.attempt == 1

    second = start(2 * 3600)  # two hours later: overdue, sent at start
    try:
        (sent,) = wait_for(lambda: lines(bus / "load.json"))
        wait_for(lambda: not pending(db))
    finally:
        second.send_signal(signal.SIGTERM)
        _, err = second.communicate(timeout=5)
    assert second.returncode == 0, err.decode()
    assert sent["id"] == "crash-1" and sent["type"] == "load"
    meta = dict(pair.split("=", 1) for pair in sent["meta"].split("&"))
    assert meta["retry"] == "1" and meta["workflow"] == "wf.toml" and meta["delayed"].startswith("1h")
    assert "result" not in sent
    assert len(lines(bus / "load.json")) == 1  # the done message was not handled twice
    with Store.open(db) as store:
        kinds = [(r.event, r.attempt) for r in store.task_history("crash-1")]
    assert kinds == [("done", 0), ("sent", 1)]
