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
        "paths", nargs="*", metavar="PATH", help="workflow files, or folders to search for *.toml"
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
    files = workflow_files(args.paths)
    if not files:
        print(f"flowlord lint: no *.toml files in {', '.join(args.paths)}", file=sys.stderr)

    from flowlord.compiler import lint_files, report
    from flowlord.compiler.diagnostics import Severity

    try:
        compilation = lint_files(files, jobs=args.jobs or os.cpu_count() or 1)
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
    found: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            candidates = _toml_files(path)
        elif os.path.exists(path):
            candidates = [path]
        else:
            raise UserError(f"{path}: no such file or directory")
        for file in candidates:
            key = os.path.realpath(file)
            if key not in seen:
                _check_readable(file)
                seen.add(key)
                found.append(file)
    return found


def _toml_files(folder: str) -> list[str]:
    def fail(error: OSError) -> None:
        raise UserError(_os_problem(error.filename, error))

    found = []
    for root, folders, files in os.walk(folder, onerror=fail):
        folders[:] = [name for name in folders if not name.startswith(".")]
        found += [
            os.path.join(root, name)
            for name in files
            if name.endswith(".toml") and not name.startswith(".")
        ]
    return sorted(found)


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


COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_lint, _add_schema)
