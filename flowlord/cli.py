"""The `flowlord` command line: `main(argv) -> exit code`, one function per subcommand; run()
is the console script.

Exit codes: 0 clean, 1 problems found, 2 usage or I/O errors. Each subcommand imports what it
needs inside its function, so `flowlord lint` never pays for networkx, croniter, jinja2 or
bottle. To add a command, write `_add_<name>(commands)` that registers its parser with
`set_defaults(run=_<name>)` and list it in COMMANDS.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from typing import Callable, Sequence

from flowlord import __version__

# flowlord's pydantic models are its own; skipping the discovery of third-party pydantic
# plugins (an entry-point scan of every installed package) saves ~10 ms per command.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

FORMATS = ("text", "json", "sarif", "github")  # compiler.report.FORMATS, without importing it


class UserError(Exception):
    """A problem with the command line or the files it names: reported on stderr, exit 2."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
    except SystemExit as stop:  # argparse: --help and --version (0), usage errors (2)
        return _status(stop)
    try:
        return args.run(args)
    except SystemExit as stop:  # a subcommand's parser.error()
        return _status(stop)
    except UserError as problem:
        print(f"flowlord {args.command}: {problem}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `flowlord lint … | head`
        _silence_stdout()
        return 1
    except KeyboardInterrupt:
        return 130


# Commands that only read files and print: they end with os._exit once their output is out.
QUICK_EXIT = {"lint", "graph", "plan", "schema", "export"}


def run() -> None:
    """The console script and `python -m flowlord`: main() with the process's arguments.

    After a command in QUICK_EXIT the process ends without tearing down the interpreter:
    finalizing the imported modules (pydantic, lark) took 27 ms, a fifth of a one-file lint,
    and those commands hold no resource that needs it.
    """
    argv = sys.argv[1:]
    code = main(argv)
    if not argv or argv[0] not in QUICK_EXIT:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `flowlord lint … | head`
        code = 1
    os._exit(code)


def _status(stop: SystemExit) -> int:
    return stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowlord", description="a workflow orchestrator for cron and file-arrival pipelines"
    )
    parser.add_argument("--version", action="version", version=f"flowlord {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


# --- lint ------------------------------------------------------------------------------------


def _add_lint(commands: argparse._SubParsersAction) -> None:
    lint = commands.add_parser(
        "lint",
        help="check workflow files",
        description="check workflow files and report problems; exit 1 when there are errors",
    )
    lint.add_argument(
        "paths", nargs="*", metavar="PATH",
        help="workflow files (.toml, or .py modules, which are imported), or folders to search for *.toml",
    )
    lint.add_argument("--format", choices=FORMATS, default="text", help="default: text")
    lint.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    lint.add_argument("--explain", metavar="CODE", help="explain a code such as FL104 and exit")
    lint.add_argument("--no-color", action="store_true", help="never colour the text output")
    lint.add_argument(
        "--jobs", type=int, default=0, metavar="N", help="processes for many files (default: one per core)"
    )
    lint.set_defaults(run=_lint, parser=lint)


def _lint(args: argparse.Namespace) -> int:
    # A lint builds a large acyclic AST and exits: collecting cycles would only re-scan it.
    gc.disable()
    if args.explain:
        return _explain(args.explain)
    if not args.paths:
        args.parser.error("give at least one PATH, or --explain CODE")
    entries = workflow_entries(args.paths)
    files = [path for path, _ in entries]
    if not files:
        print(f"flowlord lint: no *.toml files in {', '.join(args.paths)}", file=sys.stderr)

    from flowlord.compiler import lint_files, report
    from flowlord.compiler.diagnostics import Severity

    try:
        compilation = lint_files(files, jobs=args.jobs or os.cpu_count() or 1, keys=dict(entries))
    except OSError as error:  # read between our check and the compiler's, or a special file
        raise UserError(_os_problem(error.filename, error)) from None
    color = args.format == "text" and not args.no_color and _terminal_wants_color()
    diagnostics = compilation.diagnostics
    output = report.render(
        args.format, diagnostics, compilation.sources, color=color, tool_version=__version__
    )
    sys.stdout.write(output)
    failing = {Severity.ERROR, Severity.WARNING} if args.strict else {Severity.ERROR}
    return 1 if any(Severity(d.severity) in failing for d in diagnostics) else 0


def _explain(code: str) -> int:
    from flowlord.compiler import codes, report
    from flowlord.compiler.suggest import did_you_mean

    try:
        text = report.explain(code)
    except KeyError:
        known = [*codes.REGISTRY, *(entry.name for entry in codes.REGISTRY.values())]
        hint = did_you_mean(code.strip(), known, template="{}")
        raise UserError(f"unknown code {code!r}" + (f"; {hint}" if hint else "")) from None
    sys.stdout.write(text)
    return 0


def workflow_files(paths: Sequence[str]) -> list[str]:
    """Files as given, folders searched recursively for *.toml (sorted, hidden entries skipped).

    Each file is listed once; a missing or unreadable path raises UserError.
    """
    return [path for path, _ in workflow_entries(paths)]


def workflow_entries(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(file, workflow key) pairs as compiler.files.find_workflow_files finds them, each file
    checked to be readable; a missing or unreadable path raises UserError."""
    from flowlord.compiler.files import find_workflow_files

    try:
        found = find_workflow_files(paths)
    except OSError as error:
        raise UserError(_os_problem(error.filename, error)) from None
    for path, _ in found:
        _check_readable(path)
    return found


def _check_readable(path: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise UserError(_os_problem(path, error)) from None


def _os_problem(path: object, error: OSError) -> str:
    reason = error.strerror or str(error)
    return f"{path}: {reason[:1].lower()}{reason[1:]}"


def _terminal_wants_color() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    return not os.environ.get("NO_COLOR") and sys.stdout.isatty()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# --- schema ----------------------------------------------------------------------------------


def _add_schema(commands: argparse._SubParsersAction) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of workflow files",
        description="print the JSON Schema (draft 2020-12) of workflow files, for TOML editors",
    )
    schema.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE instead")
    schema.set_defaults(run=_schema, parser=schema)


def _write_output(text: str, path: str | None) -> int:
    """`text` to stdout, or to the file given with -o."""
    if path is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as error:
        raise UserError(_os_problem(path, error)) from None
    return 0


def _schema(args: argparse.Namespace) -> int:
    from flowlord.compiler.schema import workflow_schema_json

    text = workflow_schema_json()
    return _write_output(text, args.output)


# --- graph -----------------------------------------------------------------------------------

GRAPH_FORMATS = ("dot", "svg", "png")
_GRAPH_EXTENSIONS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}
GRAPHVIZ_MISSING = (
    "the Graphviz `dot` program was not found on PATH; it renders svg and png.\n"
    "Install Graphviz (Debian/Ubuntu: `apt-get install graphviz`, macOS: `brew install graphviz`,\n"
    "or see https://graphviz.org/download/), or write DOT text, which needs no Graphviz:\n"
    "  flowlord graph --format dot PATH... [-o FILE.dot]"
)


def _add_graph(commands: argparse._SubParsersAction) -> None:
    graph = commands.add_parser(
        "graph",
        help="draw the phase graph of workflow files",
        description="draw the phases and dependencies of workflow files (Graphviz DOT, SVG or "
        "PNG); problems found by the lint are drawn too (red: errors, orange: warnings) and "
        "make the exit status 1",
    )
    graph.add_argument(
        "paths", nargs="+", metavar="PATH", help="workflow files, or folders to search for *.toml"
    )
    graph.add_argument(
        "--format", choices=GRAPH_FORMATS,
        help="default: from the extension of -o FILE, else dot (svg and png need Graphviz)",
    )
    graph.add_argument("-o", "--output", metavar="FILE", help="write the drawing to FILE")
    graph.set_defaults(run=_graph, parser=graph)


def _graph(args: argparse.Namespace) -> int:
    fmt = args.format
    if fmt is None and args.output is not None:
        extension = os.path.splitext(args.output)[1].lower()
        fmt = _GRAPH_EXTENSIONS.get(extension)
        if fmt is None:
            raise UserError(
                f"cannot tell the format from {args.output!r}: name it .dot, .svg or .png, "
                "or give --format dot|svg|png"
            )
    fmt = fmt or "dot"
    if fmt == "png" and args.output is None and sys.stdout.isatty():
        raise UserError("will not write PNG to a terminal: give -o FILE.png or redirect stdout")
    files = workflow_files(args.paths)
    if not files:
        raise UserError(f"no *.toml files in {', '.join(args.paths)}")

    from flowlord.compiler import lint_files
    from flowlord.compiler.dot import workflows_dot

    try:
        compilation = lint_files(files)
    except OSError as error:
        raise UserError(_os_problem(error.filename, error)) from None
    source = workflows_dot(compilation.workflows, compilation.diagnostics)
    if fmt == "dot":
        data = source.encode("utf-8")
    else:
        import graphviz

        try:
            data = graphviz.Source(source).pipe(format=fmt)
        except graphviz.ExecutableNotFound:
            raise UserError(GRAPHVIZ_MISSING) from None
        except graphviz.CalledProcessError as error:
            detail = (error.stderr or b"").decode("utf-8", "replace").strip()
            raise UserError(f"Graphviz `dot` failed: {detail or error}") from None
    if args.output is None and fmt == "dot":
        sys.stdout.write(source)
    elif args.output is None:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        try:
            with open(args.output, "wb") as handle:
                handle.write(data)
        except OSError as error:
            raise UserError(_os_problem(args.output, error)) from None
    errors = sum(d.severity == "error" for d in compilation.diagnostics)
    warnings = sum(d.severity == "warning" for d in compilation.diagnostics)
    if errors or warnings:
        counts = [f"{n} {word}{'s' if n != 1 else ''}"
                  for n, word in ((errors, "error"), (warnings, "warning")) if n]
        print(f"flowlord graph: drew {' and '.join(counts)} (run `flowlord lint` for details)",
              file=sys.stderr)
    return 1 if errors else 0


# --- plan ------------------------------------------------------------------------------------


def _add_plan(commands: argparse._SubParsersAction) -> None:
    plan = commands.add_parser(
        "plan",
        help="print the execution plan of workflow files as JSON",
        description="compile workflow files and print their execution plan as JSON; when there "
        "are errors, print the diagnostics on stderr instead and exit 1",
    )
    plan.add_argument(
        "paths", nargs="+", metavar="PATH", help="workflow files, or folders to search for *.toml"
    )
    plan.add_argument(
        "--timezone", default="UTC", metavar="ZONE",
        help="the zone of cron schedules without TZ=, as the Go flowlord's local zone (default: UTC)",
    )
    plan.add_argument(
        "--at", metavar="INSTANT",
        help="also list the tasks the cron phases send at this ISO 8601 instant, e.g. "
        "2026-03-05T07:00:00Z (without an offset: in --timezone)",
    )
    plan.add_argument(
        "--next", type=int, metavar="N",
        help="also list the next N fire times of each cron phase (after --at, else after now)",
    )
    plan.add_argument("--no-color", action="store_true", help="never colour the diagnostics")
    plan.set_defaults(run=_plan, parser=plan)


def compile_for(command: str, paths: Sequence[str], timezone: str, *, color: bool = True,
                empty_ok: bool = False):
    """The plan that `plan`, `simulate` and `serve` run from, or None: the workflow files
    compiled, their diagnostics printed on stderr as `flowlord lint` prints them. A missing
    file or an unknown --timezone is a UserError; so are no files at all, unless `empty_ok`
    (then an empty plan, with a notice)."""
    from flowlord.compiler import compile_files, report
    from flowlord.compiler.build_plan import PlanError, check_timezone

    try:
        check_timezone(timezone)
    except ValueError as error:
        raise UserError(f"--timezone: {error}") from None
    entries = workflow_entries(paths)
    if not entries and not empty_ok:
        raise UserError(f"no *.toml files in {', '.join(paths)}")
    if not entries:
        print(f"flowlord {command}: no *.toml files in {', '.join(paths)}", file=sys.stderr)
    try:
        compilation = compile_files(entries, timezone=timezone)
    except OSError as error:
        raise UserError(_os_problem(error.filename, error)) from None
    except PlanError as error:
        print(f"flowlord {command}: {error}", file=sys.stderr)
        return None
    if compilation.diagnostics:  # warnings only, or errors and no plan
        color = color and not os.environ.get("NO_COLOR") and sys.stderr.isatty()
        sys.stderr.write(report.render("text", compilation.diagnostics, compilation.sources, color=color))
    return compilation.plan


def _plan(args: argparse.Namespace) -> int:
    at = _instant(args.at, args.timezone) if args.at is not None else None
    if args.next is not None and args.next < 1:
        raise UserError(f"--next: {args.next} is not a positive number of fire times")
    plan = compile_for("plan", args.paths, args.timezone, color=not args.no_color, empty_ok=True)
    if plan is None:
        return 1
    output = plan.model_dump(mode="json")
    if at is not None:
        output["at"] = _tasks_at(plan, at)
    if args.next is not None:
        from datetime import datetime, timezone

        output["next"] = _next_fires(plan, at or datetime.now(timezone.utc), args.next)
    sys.stdout.write(json_text(output) + "\n")
    return 0


def _instant(text: str, zone: str):
    """--at as an aware datetime; a time without an offset is read in `zone`."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"--at: {text!r} is not an ISO 8601 time such as 2026-03-05T07:00:00Z"
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=ZoneInfo(zone))


def _iso(moment) -> str:
    """ISO 8601 to the second (or finer when needed), `Z` for a zero offset."""
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _tasks_at(plan, instant) -> dict:
    """`at`: every task that the cron phases firing at `instant` send, in plan order; a batch
    that Go would refuse (meta-file missing, meta lengths) is listed under `errors`. `@every`
    phases fire relative to the service's start, so they are left out."""
    from datetime import timezone
    from zoneinfo import ZoneInfo

    from flowlord.runtime.cron import fires_at
    from flowlord.runtime.expand import ExpandError, cron_tasks

    tasks: list[dict] = []
    errors: list[dict] = []
    for workflow in plan.workflows:
        for phase in workflow.phases:
            if phase.cron is None or phase.cron.every is not None:
                continue
            if not fires_at(phase.cron, instant, ZoneInfo(phase.timezone)):
                continue
            where = {"workflow": workflow.key, "phase": phase.id}
            try:
                specs = cron_tasks(phase, workflow.key, instant)
            except ExpandError as error:
                errors.append({**where, "error": str(error)})
                continue
            tasks += [
                {**where, "topic": spec.topic, "job": spec.job or None, "info": spec.info,
                 "meta": spec.meta_string, "problems": list(spec.problems)}
                for spec in specs
            ]
    return {"instant": _iso(instant.astimezone(timezone.utc)), "tasks": tasks, "errors": errors}


def _next_fires(plan, after, count: int) -> dict:
    """`next`: {workflow key: {phase id: the next `count` fire times after `after`}}, cron
    phases only, each time in its phase's zone; shorter when the schedule ends."""
    from zoneinfo import ZoneInfo

    from flowlord.runtime.cron import next_fire

    result: dict[str, dict[str, list[str]]] = {}
    for workflow in plan.workflows:
        phases: dict[str, list[str]] = {}
        for phase in workflow.phases:
            if phase.cron is None:
                continue
            zone, times, t = ZoneInfo(phase.timezone), [], after
            while len(times) < count and (t := next_fire(phase.cron, t, zone)) is not None:
                times.append(_iso(t))
            phases[phase.id] = times
        if phases:
            result[workflow.key] = phases
    return result


def json_text(value: object, indent: int = 0) -> str:
    """Indented JSON in which an object or array that holds no other is written on one line."""
    import json

    if isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
        pad = "  " * (indent + 1)
        items = (f"{pad}{json.dumps(k)}: {json_text(v, indent + 1)}" for k, v in value.items())
        return "{\n" + ",\n".join(items) + "\n" + "  " * indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        pad = "  " * (indent + 1)
        items = (f"{pad}{json_text(v, indent + 1)}" for v in value)
        return "[\n" + ",\n".join(items) + "\n" + "  " * indent + "]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


# --- export ----------------------------------------------------------------------------------


def _add_export(commands: argparse._SubParsersAction) -> None:
    export = commands.add_parser(
        "export",
        help="write a Python workflow module as a TOML workflow file",
        description="import (run) a Python workflow module and write the equivalent TOML "
        "workflow file, which lints and plans the same; when the module has errors, print the "
        "diagnostics on stderr instead, write nothing and exit 1",
    )
    export.add_argument("path", metavar="FILE.py", help="a Python workflow module")
    export.add_argument("-o", "--output", metavar="FILE.toml", help="write the TOML to FILE instead of stdout")
    export.add_argument("--no-color", action="store_true", help="never colour the diagnostics")
    export.set_defaults(run=_export, parser=export)


def _export(args: argparse.Namespace) -> int:
    path = args.path
    if not path.endswith(".py"):
        raise UserError(f"{path}: export reads a Python workflow module (a .py file)")
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    _check_readable(path)

    from flowlord.compiler import lint_files, report
    from flowlord.compiler.dsl import export_toml

    try:
        compilation = lint_files([path])
    except OSError as error:
        raise UserError(_os_problem(error.filename, error)) from None
    if compilation.diagnostics:  # warnings only, or errors and nothing written
        color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stderr.isatty()
        sys.stderr.write(report.render("text", compilation.diagnostics, compilation.sources, color=color))
    if compilation.has_errors or not compilation.workflows:
        return 1
    text = export_toml(compilation.workflows[0], compilation.sources)
    return _write_output(text, args.output)


# --- worker ----------------------------------------------------------------------------------

DEFAULT_BUS = "nats://127.0.0.1:4222"  # flowlord.worker.DEFAULT_BUS, without importing it
WORKER_USAGE = (
    "flowlord worker TOPIC [--bus URL] [--done-topic TOPIC] [--group NAME] [--concurrency N]\n"
    "                       [--timeout SECONDS] [-q] -- COMMAND [ARG ...]"
)


def _worker_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bus", metavar="URL",
        help=f"the task bus: nats://HOST:PORT, file://DIR, stdio or memory:// "
        f"(default: $FLOWLORD_BUS, else {DEFAULT_BUS})",
    )
    parser.add_argument("--done-topic", default="done", metavar="TOPIC",
                        help="where the results go (default: done)")
    parser.add_argument("--group", default="workers", metavar="NAME",
                        help="consumer group: the workers of one group share the topic's tasks "
                        "(default: workers)")
    parser.add_argument("--concurrency", type=int, default=1, metavar="N",
                        help="tasks run at once (default: 1)")
    parser.add_argument("--timeout", type=_seconds, metavar="SECONDS",
                        help="kill a task's command after this long and report an error "
                        "(seconds, or a duration such as 90s, 10m, 1h; default: no limit)")
    parser.add_argument("-q", "--quiet", action="store_true", help="log problems only, not every task")


def _seconds(text: str) -> float:
    import math
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*", text)
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (or 90s, 10m, 1h)")
    scale = {None: 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    value = float(match.group(1)) * scale
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive number of seconds")
    return value


def _add_worker(commands: argparse._SubParsersAction) -> None:
    worker = commands.add_parser(
        "worker",
        usage=WORKER_USAGE,
        help="run a command for each task of a topic",
        description="consume the tasks of TOPIC and run COMMAND once per task: the task JSON on "
        "stdin, FLOWLORD_TYPE, FLOWLORD_JOB, FLOWLORD_INFO, FLOWLORD_ID and FLOWLORD_META in the "
        "environment. Exit 0 reports the task complete (msg: the last line of stdout), another "
        "exit an error (msg: the end of stderr); results go to the done topic with started and "
        "ended. SIGINT or SIGTERM: take no more tasks, finish those running, exit 0 (a second "
        "signal kills them; the bus delivers them again).",
    )
    worker.add_argument("topic", metavar="TOPIC", help="the topic whose tasks to run")
    _worker_options(worker)
    worker.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARG ...]",
                        help="the command to run for each task, after --")
    worker.set_defaults(run=_worker, parser=worker)


def _worker(args: argparse.Namespace) -> int:
    rest = list(args.argv)
    # argparse cannot mix options after TOPIC with a command of its own: read them here.
    options = argparse.ArgumentParser(prog="flowlord worker", usage=WORKER_USAGE, add_help=False)
    _worker_options(options)
    options.add_argument("-h", "--help", action="store_true", dest="worker_help")
    options.add_argument("argv", nargs=argparse.REMAINDER)
    if "--" in rest:
        cut = rest.index("--")
        head, command = rest[:cut], rest[cut + 1:]
        stray = options.parse_args(head, namespace=args).argv
        if stray:
            args.parser.error(f"unexpected {' '.join(stray)!r} before --: "
                              "put the command after --, e.g. flowlord worker etl -- ./etl.sh")
    else:
        command = options.parse_args(rest, namespace=args).argv
    if getattr(args, "worker_help", False):
        args.parser.print_help()
        return 0
    if not command:
        args.parser.error("give the COMMAND to run for each task after --, "
                          "e.g. flowlord worker etl -- ./etl.sh")
    if args.concurrency < 1:
        args.parser.error(f"--concurrency: {args.concurrency} is not 1 or more")
    import shutil

    if shutil.which(command[0]) is None:
        where = "is not an executable file" if os.sep in command[0] else "was not found on PATH"
        raise UserError(f"the command {command[0]!r} {where}")

    import asyncio
    import logging

    from flowlord.runtime.bus import BusError, open_bus

    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    url = args.bus or os.environ.get("FLOWLORD_BUS") or DEFAULT_BUS
    try:
        bus = open_bus(url)
    except (BusError, NotImplementedError, ValueError, OSError) as error:
        raise UserError(f"bus {url}: {error}") from None
    return asyncio.run(_work(args, bus, url, command))


def _bus_failure(error: BaseException) -> bool:
    """An error of the bus or its client library (a server that cannot be reached)."""
    from flowlord.runtime.bus import BusError

    if isinstance(error, (BusError, OSError, NotImplementedError, TimeoutError)):
        return True
    return any(cls.__module__.split(".")[0] == "nats" for cls in type(error).__mro__)


async def _work(args: argparse.Namespace, bus, url: str, command: list[str]) -> int:
    import asyncio
    import logging
    import signal

    from flowlord.runtime.worker import CommandHandler, Worker

    log = logging.getLogger("flowlord.worker")
    worker = Worker(bus, args.topic, CommandHandler(command), done_topic=args.done_topic,
                    concurrency=args.concurrency, timeout=args.timeout, group=args.group)
    loop = asyncio.get_running_loop()

    def on_signal(number: int) -> None:
        name = signal.Signals(number).name
        if worker.stopping:
            log.warning("%s again: killing %d task(s) in flight; the bus delivers them again",
                        name, worker.in_flight)
            worker.stop(force=True)
        else:
            log.info("%s: stopping; finishing %d task(s) in flight (again to kill them)", name, worker.in_flight)
            worker.stop()

    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, on_signal, number)
    log.info("consuming %r from %s (group %s, concurrency %d%s); results to %r",
             args.topic, url, args.group, args.concurrency,
             f", timeout {args.timeout:g}s" if args.timeout else "", args.done_topic)
    try:
        connect = getattr(bus, "connect", None)
        if connect is not None:  # a server bus (NATS): fail now, not at the first task
            await connect()
        stats = await worker.run()
    except Exception as error:
        if _bus_failure(error):
            raise UserError(f"bus {url}: {error or type(error).__name__}") from None
        raise
    finally:
        try:
            await bus.close()
        except Exception:  # noqa: BLE001 - closing a broken connection
            pass
    if stats.unfinished:
        print(f"flowlord worker: stopped with {stats.unfinished} task(s) unfinished; "
              "the bus delivers them again", file=sys.stderr)
        return 1
    return 0


# --- serve -----------------------------------------------------------------------------------


def _add_serve(commands: argparse._SubParsersAction) -> None:
    from flowlord.serve import add_serve_parser  # argparse only: the service loads on `serve`

    add_serve_parser(commands)


# --- simulate --------------------------------------------------------------------------------


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate",
        help="dry-run the runtime on events (JSON lines in, JSON lines out)",
        description="run the scheduler and dispatcher on a simulated clock, an in-memory bus and "
        "a temporary store: read events as JSON lines ({\"at\": TIME}, {\"done\": TASK}, "
        "{\"file\": STAT}) and print what flowlord does ({\"at\", \"topic\", \"task\"}, "
        "{\"at\", \"alert\"}, {\"at\", \"rejected\"}), one JSON line each; deterministic for a "
        "given --seed. After the events the clock runs on until no retry is pending.",
    )
    simulate.add_argument(
        "paths", nargs="+", metavar="WORKFLOW_PATH", help="workflow files, or folders to search for *.toml"
    )
    simulate.add_argument("--events", metavar="FILE", help="the events (default: stdin; - is stdin too)")
    simulate.add_argument("--seed", type=int, default=0, metavar="N",
                          help="seed of task ids, {uuid} tokens and retry jitter (default: 0)")
    simulate.add_argument("--no-jitter", action="store_true", help="retry after exactly retry_delay")
    simulate.add_argument(
        "--timezone", default="UTC", metavar="ZONE",
        help="the zone of cron schedules without TZ= (default: UTC)",
    )
    simulate.add_argument("--no-color", action="store_true", help="never colour the diagnostics")
    simulate.add_argument("-v", "--verbose", action="store_true",
                          help="also log what the engine does on stderr")
    simulate.set_defaults(run=_simulate, parser=simulate)


def _simulate(args: argparse.Namespace) -> int:
    if args.events in (None, "-"):
        lines = sys.stdin.read().splitlines()
    else:
        try:
            with open(args.events, encoding="utf-8", errors="surrogateescape") as handle:
                lines = handle.read().splitlines()
        except OSError as error:
            raise UserError(_os_problem(args.events, error)) from None
    plan = compile_for("simulate", args.paths, args.timezone, color=not args.no_color)
    if plan is None:
        return 1

    import logging

    from flowlord.runtime.simulate import simulate

    engine_log = logging.getLogger("flowlord")
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(levelname)s: %(message)s")
    elif not engine_log.handlers:
        engine_log.addHandler(logging.NullHandler())  # the output lines say it all

    def write(line: str) -> None:
        sys.stdout.write(line + "\n")

    simulate(plan, lines, seed=args.seed, no_jitter=args.no_jitter, write=write)
    sys.stdout.flush()
    return 0


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_lint, _add_schema, _add_graph, _add_plan, _add_export, _add_worker, _add_simulate, _add_serve)
