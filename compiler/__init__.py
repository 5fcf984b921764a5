"""The compiler's front door: workflow files in, typed AST and diagnostics out."""

from __future__ import annotations

import gc
import os
from contextlib import contextmanager
from typing import Iterator
import multiprocessing
from dataclasses import dataclass, field

from . import codes
from .ast import Workflow
from .checks import check_duplicates, check_duplicates_across, check_phase
from .diagnostics import Diagnostic, Sink
from .files import check_keys, find_workflow_files
from .graph_checks import check_graph, check_parents_across
from .loader import load_workflow
from .parse_rule import parse_rule
from .parse_template import parse_template
from .plan import Plan
from .source import MappedText, SourceFile, Span

# Below this many files a second process costs more than it saves.
PARALLEL_FROM = 64


@dataclass
class Compilation:
    sources: dict[str, SourceFile] = field(default_factory=dict)
    workflows: list[Workflow] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    plan: Plan | None = None  # compile_paths only, and only without errors

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics)


def lint_files(paths: list[str], *, jobs: int = 1, keys: dict[str, str] | None = None) -> Compilation:
    """Reads, parses and checks workflow files. Never raises for bad input: an unreadable
    file raises OSError, which the CLI reports as an I/O problem.

    `keys` maps each path to its workflow key (compiler.files.find_workflow_files); given, two
    files with one key are FL503. Without it the keys are not checked.

    With jobs > 1 and many files, the files are checked in that many forked processes and only
    the diagnostics come back (`workflows` stays empty): the typed AST costs more to send
    between processes than to build.
    """
    with _collector_paused():
        if jobs > 1 and len(paths) >= PARALLEL_FROM and "fork" in multiprocessing.get_all_start_methods():
            compilation = _lint_parallel(paths, jobs)
        else:
            compilation, names = _lint(paths)
            sink = Sink(compilation.diagnostics)
            check_duplicates_across(names, sink)
            check_parents_across(names, compilation.sources, sink)
            compilation.diagnostics = sink.sorted()
        if keys is not None:
            sink = Sink(list(compilation.diagnostics))
            check_keys(((path, keys[path]) for path in paths), compilation.sources, sink)
            if len(sink.diagnostics) > len(compilation.diagnostics):
                compilation.diagnostics = sink.sorted()
        return compilation


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The AST and the plan are acyclic and kept whole until the end, so the cyclic garbage
    collector would only re-scan them again and again (it tripled the time of a 10,000-phase
    lint). Nested pauses resume collection only when the outermost one ends."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def compile_paths(paths: list[str], *, timezone: str = "UTC") -> Compilation:
    """Lint and plan the workflow files that `paths` (files or folders) name: the diagnostics
    and, when none of them is an error, the Plan (`compilation.plan`).

    Keys and folder search as compiler.files.find_workflow_files; `timezone` is the zone of
    cron specs without `TZ=` (the Go flowlord's local zone). A missing path or an unreadable
    file raises OSError; an unknown zone raises ValueError.
    """
    return compile_files(find_workflow_files(paths), timezone=timezone)


def compile_files(files: list[tuple[str, str]], *, timezone: str = "UTC") -> Compilation:
    """compile_paths for files already found: (path, workflow key) pairs, in order."""
    keys = dict(files)
    with _collector_paused():
        compilation = lint_files(list(keys), keys=keys)
        if not compilation.has_errors:
            from .build_plan import build_plan  # networkx: only when planning

            compilation.plan = build_plan(compilation.workflows, keys, timezone=timezone)
    return compilation


def _lint(paths: list[str]) -> tuple[Compilation, list[tuple[str, Span]]]:
    """Everything that one file decides on its own; plus each file's distinct phase names for
    the checks across files."""
    compilation = Compilation()
    names: list[tuple[str, Span]] = []
    sink = Sink()
    for path in paths:
        with open(path, "rb") as handle:
            data = handle.read()
        source, decoded = _decode(path, data, sink)
        compilation.sources[path] = source
        file_sink = sink
        if not decoded:
            workflow = None
        elif path.endswith(".py"):  # a Python workflow module (compiler.dsl): imported, i.e. run
            from .dsl import load_python

            module = load_python(source, sink)
            workflow, file_sink = module.workflow, module.sink
            compilation.sources.update(module.sources)
        else:
            workflow = load_workflow(source, sink)
        if workflow is None:
            continue
        for phase in workflow.phases:
            check_phase(phase, file_sink)
        check_graph(workflow, file_sink)
        names.extend((phase.name, phase.task.span) for phase in check_duplicates(workflow, file_sink))
        compilation.workflows.append(workflow)
    compilation.diagnostics = sink.diagnostics
    return compilation, names


def warm_parsers() -> None:
    """Builds every grammar's parser by parsing one small rule and template."""
    sink = Sink()
    rule = MappedText.verbatim("", "cron=0 * * * *&offset=-4h&meta=k:a", 0)
    parse_rule(rule, sink)
    parse_template(MappedText.verbatim("", "?d={yyyy}", 0), sink)


def _lint_parallel(paths: list[str], jobs: int) -> Compilation:
    """Forks one child per share of the files and waits for their diagnostics.

    The parent lints nothing itself: a child can exit without freeing its share's AST.
    """
    warm_parsers()  # build the grammars once, before the fork, instead of once per child
    context = multiprocessing.get_context("fork")
    children = []
    for share in (paths[i::jobs] for i in range(jobs)):
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(target=_lint_child, args=(share, sender), daemon=True)
        child.start()
        sender.close()
        children.append((child, receiver))
    results = [receiver.recv() for _, receiver in children]
    for child, _ in children:  # after every recv: the children end side by side
        child.join()
    for result in results:
        if isinstance(result, Exception):
            raise result

    compilation = Compilation()
    sink = Sink()
    order = {path: i for i, path in enumerate(paths)}
    names: list[tuple[str, Span]] = []
    for diagnostics, texts, chunk_names in results:
        sink.diagnostics.extend(diagnostics)
        compilation.sources.update((p, SourceFile(p, t)) for p, t in texts.items())
        names.extend(chunk_names)
    names.sort(key=lambda entry: order[entry[1].path])  # the files' order decides which is first
    check_duplicates_across(names, sink)
    check_parents_across(names, compilation.sources, sink)
    for diagnostic in sink.diagnostics:  # a cross-file label may point into a clean file
        for path in [diagnostic.span.path, *(label.span.path for label in diagnostic.secondary)]:
            if path not in compilation.sources:
                with open(path, encoding="utf-8") as handle:
                    compilation.sources[path] = SourceFile(path, handle.read())
    compilation.diagnostics = sink.sorted()
    return compilation


def _lint_child(paths: list[str], sender) -> None:
    """Lints a share and sends its diagnostics, the text of the files they point into and its
    names; then ends the process at once, because freeing the share's AST on the way out cost
    about 5% of the lint."""
    gc.disable()
    try:
        compilation, names = _lint(paths)
        blamed = {d.span.path for d in compilation.diagnostics}
        sender.send((compilation.diagnostics, {p: compilation.sources[p].text for p in blamed}, names))
    except Exception as error:  # e.g. an unreadable file: the parent raises it as its own
        sender.send(error)
    sender.close()
    os._exit(0)


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
