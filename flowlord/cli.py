"""The `flowlord` command line: `main(argv) -> exit code`, one function per subcommand.

Exit codes: 0 clean, 1 problems found, 2 usage or I/O errors. Each subcommand imports what it
needs inside its function, so `flowlord lint` never pays for networkx, croniter, jinja2 or
bottle. To add a command, write `_add_<name>(commands)` that registers its parser with
`set_defaults(run=_<name>)` and list it in COMMANDS.
"""

from __future__ import annotations

import argparse
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


def _schema(args: argparse.Namespace) -> int:
    from flowlord.compiler.schema import workflow_schema_json

    text = workflow_schema_json()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as error:
        raise UserError(_os_problem(args.output, error)) from None
    return 0


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


def _plan(args: argparse.Namespace) -> int:
    from flowlord.compiler import compile_files, report
    from flowlord.compiler.build_plan import PlanError, check_timezone

    try:
        check_timezone(args.timezone)
    except ValueError as error:
        raise UserError(f"--timezone: {error}") from None
    at = _instant(args.at, args.timezone) if args.at is not None else None
    if args.next is not None and args.next < 1:
        raise UserError(f"--next: {args.next} is not a positive number of fire times")
    entries = workflow_entries(args.paths)
    if not entries:
        print(f"flowlord plan: no *.toml files in {', '.join(args.paths)}", file=sys.stderr)
    try:
        compilation = compile_files(entries, timezone=args.timezone)
    except OSError as error:
        raise UserError(_os_problem(error.filename, error)) from None
    except PlanError as error:
        print(f"flowlord plan: {error}", file=sys.stderr)
        return 1
    if compilation.diagnostics:  # warnings only, or errors and no plan
        color = not args.no_color and not os.environ.get("NO_COLOR") and sys.stderr.isatty()
        text = report.render("text", compilation.diagnostics, compilation.sources, color=color)
        sys.stderr.write(text)
    if compilation.plan is None:
        return 1
    output = compilation.plan.model_dump(mode="json")
    if at is not None:
        output["at"] = _tasks_at(compilation.plan, at)
    if args.next is not None:
        from datetime import datetime, timezone

        output["next"] = _next_fires(compilation.plan, at or datetime.now(timezone.utc), args.next)
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
    if args.output is None:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as error:
        raise UserError(_os_problem(args.output, error)) from None
    return 0


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_lint, _add_schema, _add_graph, _add_plan, _add_export)
