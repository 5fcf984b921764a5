"""`flowlord serve WORKFLOW_PATH`: the service.

It reads the settings (flowlord.settings: defaults < --config FILE < FLOWLORD_* < flags),
compiles the workflows (a set with errors does not start: the diagnostics are printed as
`flowlord lint` prints them, exit 1), opens the store in the data folder, starts an embedded
nats-server there when no bus URL is given (or connects to `--bus nats://…`), and runs the
Service (flowlord.runtime.service) with the hot reload (flowlord.reload.WorkflowWatcher), the
dashboard (flowlord.web.start_web) and, with `--demo-workers`, two
in-process workers on every topic of the plan. SIGINT or SIGTERM stops it cleanly (exit 0); a
second signal cancels what is still running.

Exit codes: 0 stopped cleanly, 1 the workflows have errors (or the service failed), 2 bad
settings or the command line, a store, bus or port that cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys

__all__ = ["add_serve_parser", "configure_logging", "demo_workers", "run_serve"]

LOG_LEVELS = ("debug", "info", "warning", "error")
STEADY_DELAY = (0.2, 1.5)  # seconds a demo task takes
FLAKY_FAILURE_RATE = 0.2


def add_serve_parser(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the service: cron schedules, dependencies, retries, file triggers, hot reload",
        description="run flowlord: fire the cron phases, start children when their parent "
        "completes, retry failed tasks, react to file messages and reload the workflow files "
        "when they change. Settings come from defaults < --config FILE < FLOWLORD_* "
        "environment variables < these flags. Without a bus URL an embedded NATS server runs "
        "in the data folder. SIGINT/SIGTERM stops cleanly.",
    )
    serve.add_argument("workflow", nargs="?", metavar="WORKFLOW_PATH",
                       help="a workflow file or a folder of them (or `workflow` in the config)")
    serve.add_argument("--config", metavar="FILE",
                       help="a TOML config file; the Go flowlord's option names work "
                       "(default: $FLOWLORD_CONFIG)")
    serve.add_argument("--bus", metavar="URL",
                       help="nats://HOST:4222 (comma-separated URLs for a cluster; options as "
                       "?ack_wait=30&prefix=flowlord.), file://DIR or stdio; default: an embedded "
                       "NATS server on 127.0.0.1 with its store in the data folder")
    serve.add_argument("--data-dir", metavar="DIR",
                       help="the store file and the embedded NATS store (default: ./.flowlord)")
    serve.add_argument("--port", type=int, metavar="N",
                       help="the web server's port (default: 8080; 0: no web server)")
    serve.add_argument("--host", metavar="ADDRESS",
                       help="the web server's address (default: 127.0.0.1)")
    serve.add_argument("--timezone", metavar="ZONE",
                       help="the zone of cron schedules without TZ= (default: UTC)")
    serve.add_argument("--catch-up", choices=("latest", "all", "none"),
                       help="cron fires missed while down: run the latest (default), all or none")
    serve.add_argument("--watch", metavar="DIR",
                       help="report the files written into this local folder to the files topic")
    serve.add_argument("--log-format", choices=("text", "json"), help="default: text")
    serve.add_argument("--log-level", choices=LOG_LEVELS, help="default: info")
    serve.add_argument("--demo-workers", action="store_true",
                       help="also run two demo workers in this process on every topic of the "
                       "workflows: one completes each task after a short delay, one fails one "
                       "task in five")
    serve.set_defaults(run=run_serve, parser=serve)


FLAG_NAMES = {
    "workflow": "WORKFLOW_PATH", "bus": "--bus", "data_dir": "--data-dir", "http_port": "--port",
    "http_host": "--host", "timezone": "--timezone", "catch_up": "--catch-up", "watch": "--watch",
    "log_format": "--log-format", "log_level": "--log-level",
}


def run_serve(args: argparse.Namespace) -> int:
    from flowlord.settings import SettingsError, load_settings

    flags = {
        "workflow": args.workflow, "bus": args.bus, "data_dir": args.data_dir,
        "http_port": args.port, "http_host": args.host, "timezone": args.timezone,
        "catch_up": args.catch_up, "watch": args.watch, "log_format": args.log_format,
        "log_level": args.log_level,
    }
    try:
        settings = load_settings(args.config, os.environ, flags, flag_names=FLAG_NAMES)
    except SettingsError as error:
        for problem in error.problems:
            print(f"flowlord serve: {problem}", file=sys.stderr)
        return 2
    if not settings.workflow:
        args.parser.error("give the WORKFLOW_PATH (a workflow file or folder), or `workflow` in --config")

    plan = _compile(settings)
    if isinstance(plan, int):
        return plan

    import asyncio
    import logging

    saved = _configure(settings)
    log = logging.getLogger("flowlord.serve")
    try:
        for note in settings.notes:
            log.warning("%s", note)
        return asyncio.run(_serve(settings, plan, demo=args.demo_workers))
    except KeyboardInterrupt:
        return 130
    finally:
        _restore(saved)


def _compile(settings):
    """The plan, or the exit status when there is none."""
    from flowlord.cli import compile_for

    plan = compile_for("serve", [settings.workflow], settings.timezone)
    if plan is None:
        print("flowlord serve: not starting: the workflows have errors", file=sys.stderr)
        return 1
    return plan


# --- logging -------------------------------------------------------------------------------------


def configure_logging(log_format: str = "text", level: str = "info"):
    """Every log record to stderr, one line each (a JSON object with `json`): flowlord's at
    `level`, other libraries' (nats-py…) from WARNING, and Python's warnings too. Returns what
    to pass to `_restore` to put the previous set-up back."""
    import logging

    from flowlord.runtime.service import JsonFormatter, TextFormatter

    root, logger = logging.getLogger(), logging.getLogger("flowlord")
    saved = (root.handlers[:], root.level, logger.handlers[:], logger.level, logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logger.handlers[:] = []
    logger.setLevel(getattr(logging, level.upper(), logging.INFO))
    logger.propagate = True
    logging.captureWarnings(True)
    return saved


def _configure(settings):
    return configure_logging(settings.log_format, settings.log_level)


def _restore(saved) -> None:
    import logging

    root, logger = logging.getLogger(), logging.getLogger("flowlord")
    root.handlers[:], root_level, logger.handlers[:], level, logger.propagate = saved
    root.setLevel(root_level)
    logger.setLevel(level)
    logging.getLogger("flowlord.worker").setLevel(logging.NOTSET)
    logging.captureWarnings(False)


# --- the service -----------------------------------------------------------------------------------


async def _serve(settings, plan, *, demo: bool = False) -> int:
    import asyncio
    import logging
    import signal

    from flowlord.runtime.bus import BusError, open_bus
    from flowlord.runtime.operations import Operations, OpsConfig, restore_history
    from flowlord.runtime.service import Service
    from flowlord.runtime.store import Store, StoreError
    from flowlord.web import start_web as start_dashboard

    log = logging.getLogger("flowlord.serve")
    try:
        os.makedirs(settings.data_dir, exist_ok=True)
        lock = _lock(settings.data_dir)
    except OSError as error:
        return _fail(f"data folder {settings.data_dir}: {error.strerror or error}")
    if isinstance(lock, str):
        return _fail(lock)
    store = embedded = bus = None
    try:
        ops_config = OpsConfig.from_settings(settings)
        try:
            if restore_history(ops_config, settings.store_path):
                log.info("store %s restored from %s", settings.store_path, ops_config.backup_path)
            store = Store.open(settings.store_path)
        except (StoreError, OSError, ImportError, ValueError) as error:  # ImportError: no fsspec extra
            return _fail(f"store {settings.store_path}: {error}")
        try:
            if settings.bus:
                bus = open_bus(settings.bus)
                where = settings.bus
            else:
                embedded, bus = await _embedded(settings, log)
                where = embedded.url
            connect = getattr(bus, "connect", None)
            if connect is not None:
                await connect()
        except (BusError, OSError) as error:
            return _fail(f"bus {settings.bus or 'embedded NATS'}: {error}")
        log.info("bus %s; store %s", where, settings.store_path)
        components = [demo_workers(settings.done_topic)] if demo else []
        service = Service(plan, settings, store, bus, embedded=embedded,
                          start_reload=_reload(settings), start_web=start_dashboard,
                          components=components, operations=Operations(store, ops_config))
        store = bus = embedded = None  # the service closes them
        loop = asyncio.get_running_loop()

        def on_signal(number: int) -> None:
            name = signal.Signals(number).name
            if service._stop_requested.is_set():
                log.warning("%s again: stopping now", name)
                service.stop(force=True)
            else:
                log.info("%s: stopping (again to stop at once)", name)
                service.stop()

        for number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(number, on_signal, number)
        try:
            await service.run()
        except OSError as error:  # the web server's port, the watched folder
            return _fail(str(error) if "address" not in str(error).lower() else
                         f"cannot listen on {settings.http_host}:{settings.http_port}: {error.strerror or error} "
                         "(give another --port, or --port 0 for no web server)")
        except asyncio.CancelledError:
            return 0 if service._stop_requested.is_set() else 1
        except Exception:
            log.exception("the service failed")
            return 1
        finally:
            for number in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(number)
        return 0
    finally:
        if bus is not None:
            try:
                await bus.close()
            except Exception:  # noqa: BLE001
                pass
        if store is not None:
            store.close()
        if embedded is not None:
            await embedded.stop_async()
        _unlock(lock)


def _fail(message: str) -> int:
    print(f"flowlord serve: {message}", file=sys.stderr)
    return 2


async def _embedded(settings, log):
    """Starts the embedded nats-server (port nats_port, else any free one) and its bus."""
    import socket

    from flowlord.runtime.bus.embedded import EmbeddedNats
    from flowlord.runtime.bus.nats import NatsBus

    port = settings.nats_port or None
    if port is not None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                log.warning("port %d is taken (another NATS server?): the embedded server takes a "
                            "free port", port)
                port = None
    embedded = EmbeddedNats(settings.nats_dir, port=port)
    await embedded.start_async()
    log.info("embedded NATS server at %s, its store in %s; workers connect with "
             "`flowlord worker TOPIC --bus %s -- COMMAND`", embedded.url, settings.nats_dir, embedded.url)
    try:
        bus = NatsBus(embedded.url)
    except Exception:
        await embedded.stop_async()
        raise
    return embedded, bus


def _lock(data_dir: str):
    """An exclusive lock on the data folder (two services on one store would both fire every
    cron): the open file, or the message when another process holds it."""
    path = os.path.join(data_dir, "serve.lock")
    handle = open(path, "a+")
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        return (f"another flowlord serve{f' (pid {holder})' if holder else ''} uses the data folder "
                f"{data_dir}: stop it, or give another --data-dir")
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def _unlock(handle) -> None:
    if handle is None or isinstance(handle, str):
        return
    try:
        handle.close()
    except OSError:
        pass


def _reload(settings):
    """The service's reload component: a WorkflowWatcher on the workflow path."""

    async def start_reload(service):
        from flowlord.reload import WorkflowWatcher

        watcher = WorkflowWatcher(
            [settings.workflow], on_plan=service.replace_plan, on_diagnostics=service.record_problems,
            interval=settings.refresh.total_seconds(), timezone=settings.timezone,
        )
        service.watcher = watcher  # the dashboard's POST /refresh checks the files now
        await watcher.start()
        service.reload_now = watcher.reload

        async def stop() -> None:
            service.reload_now = None
            await watcher.stop()

        return stop

    return start_reload


# --- demo workers -----------------------------------------------------------------------------------


def demo_workers(done_topic: str = "done", *, group: str = "workers", seed: int | None = None):
    """A service component: two in-process workers on every topic of the plan (and of each new
    plan), sharing each topic's tasks: `steady` completes a task after 0.2 to 1.5 s, `flaky`
    fails one task in five (so retries show)."""
    import asyncio
    import logging
    import random

    from flowlord.runtime.worker import TaskError, Worker

    rng = random.Random(seed)
    log = logging.getLogger("flowlord.serve")

    async def steady(task):
        await asyncio.sleep(rng.uniform(*STEADY_DELAY))
        return "demo: done"

    async def flaky(task):
        await asyncio.sleep(rng.uniform(*STEADY_DELAY))
        if rng.random() < FLAKY_FAILURE_RATE:
            raise TaskError("demo: a simulated failure (one task in five)")
        return "demo: done"

    async def start(service):
        workers: dict[str, list[Worker]] = {}
        runs: list[asyncio.Task] = []
        # the service logs each result as it takes it: the workers' own lines would repeat them
        logging.getLogger("flowlord.worker").setLevel(logging.WARNING)

        def add(plan) -> None:
            topics = sorted({phase.topic for w in plan.workflows for phase in w.phases} - set(workers))
            for topic in topics:
                pair = [Worker(service.bus, topic, handler, done_topic=done_topic, concurrency=4,
                               group=group) for handler in (steady, flaky)]
                workers[topic] = pair
                runs.extend(asyncio.create_task(w.run(), name=f"demo-worker-{topic}") for w in pair)
            if topics:
                log.info("demo workers on %s", ", ".join(topics))

        add(service.plan)
        service.plan_listeners.append(add)

        async def stop() -> None:
            for pair in workers.values():
                for worker in pair:
                    worker.stop()
            if runs:
                _, pending = await asyncio.wait(runs, timeout=5.0)
                for pair in workers.values():
                    for worker in pair:
                        worker.stop(force=True)
                if pending:
                    await asyncio.wait(pending, timeout=2.0)

        return stop

    start.__name__ = "demo workers"
    return start
