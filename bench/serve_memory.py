"""Resident memory of `flowlord serve`: on the example workflows and on 10,000 phases.

Starts the real service (embedded NATS, store, scheduler, dashboard) as a whole process, lets it
run, and reads its peak resident set (VmHWM) and current one (VmRSS) from /proc — the
service's own process, not the nats-server it starts. Targets: under 150 MB with the examples,
under 500 MB with 10,000 phases (the corpus of bench/lint_bench.py).

    python bench/serve_memory.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import lint_bench  # noqa: E402  (the corpus generator, shared with the lint benchmark)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


def measure(label: str, workflows: Path, seconds: float) -> dict[str, int]:
    with tempfile.TemporaryDirectory() as data:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["FLOWLORD_NATS_PORT"] = "0"
        command = [sys.executable, "-m", "flowlord", "serve", str(workflows), "--data-dir", data,
                   "--port", str(free_port()), "--log-level", "warning"]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            time.sleep(seconds)
            if process.poll() is not None:
                raise SystemExit(f"{label}: serve exited: {process.stderr.read().decode()[-2000:]}")
            usage = memory_kib(process.pid)
        finally:
            process.terminate()
            process.wait(30)
        print(f"{label:<40} peak {usage['VmHWM'] / 1024:7.1f} MiB   now {usage['VmRSS'] / 1024:7.1f} MiB"
              f"   (after {time.perf_counter() - started:.0f} s)")
        return usage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="how long each service runs")
    args = parser.parse_args(argv)
    examples = measure("serve dsl_examples/ok", ROOT / "dsl_examples" / "ok", args.seconds)
    corpus, _ = lint_bench.generate(1000, 1)
    large = measure("serve 1,000 files x 10 phases", corpus, args.seconds * 2)
    print(f"examples: peak {examples['VmHWM'] / 1024:.0f} MiB (target < 150); "
          f"10,000 phases: peak {large['VmHWM'] / 1024:.0f} MiB (target < 500)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
