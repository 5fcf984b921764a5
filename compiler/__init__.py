"""The compiler's front door: workflow files in, typed AST and diagnostics out."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import codes
from .ast import Workflow
from .checks import check_duplicates, check_phase
from .diagnostics import Diagnostic, Sink
from .loader import load_workflow
from .source import SourceFile


@dataclass
class Compilation:
    sources: dict[str, SourceFile] = field(default_factory=dict)
    workflows: list[Workflow] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


def lint_files(paths: list[str]) -> Compilation:
    """Reads, parses and checks workflow files. Never raises for bad input: an unreadable
    file raises OSError, which the CLI reports as an I/O problem."""
    compilation = Compilation()
    sink = Sink()
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        source, decoded = _decode(path, data, sink)
        compilation.sources[path] = source
        workflow = load_workflow(source, sink) if decoded else None
        if workflow is not None:
            for phase in workflow.phases:
                check_phase(phase, sink)
            compilation.workflows.append(workflow)
    check_duplicates(compilation.workflows, sink)
    compilation.diagnostics = sink.sorted()
    return compilation


def _decode(path: str, data: bytes, sink: Sink) -> tuple[SourceFile, bool]:
    """The file as text; False (and a diagnostic) when it is not UTF-8."""
    try:
        return SourceFile(path, data.decode("utf-8")), True
    except UnicodeDecodeError as error:
        source = SourceFile(path, data.decode("utf-8", errors="replace"))
        offset = len(data[: error.start].decode("utf-8"))
        sink.emit(
            codes.TOML_SYNTAX.at(
                source.span(offset, offset + 1),
                "the file is not UTF-8 text",
                help="save the workflow file as UTF-8",
            )
        )
        return source, False
