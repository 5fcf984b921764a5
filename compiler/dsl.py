"""The Python DSL: workflows declared in Python, compiled exactly like TOML ones.

    from flowlord import Workflow

    wf = Workflow()
    wf.phase(task="etl:extract", cron="0 0 * * * *", offset="-4h", retry=3,
             template="?hour={yyyy}-{mm}-{dd}T{hh}")
    wf.phase(task="etl:load", depends_on="etl:extract", template="?hour={yyyy}-{mm}-{dd}T{hh}")

Declaring only records: each `Phase` keeps its keyword values and where it was called. To
lint, `load_python` imports (executes) the module, takes its module-level `Workflow`, and
spells each phase the way a TOML file would (the rule string built from the rule keywords),
with MappedTexts whose offsets point at the keyword values in the .py file. Those go through
`loader.build_phase`, so the AST and every check are the TOML ones and a caret lands on the
exact character of the Python string literal (or on the whole value when it is not a plain
literal: an f-string, a variable, a literal with escapes).
"""

from __future__ import annotations

import ast as pyast
import contextlib
import dataclasses
import os
import re
import sys
import traceback
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from . import ast, codes
from .diagnostics import Diagnostic, Label, Sink
from .source import MappedText, SourceFile, Span
from .suggest import did_you_mean

# Keyword → rule key, in the order the rule string is built (after a raw `rule=`, if any).
RULE_KEYWORDS: dict[str, str] = {
    "cron": "cron",
    "files": "files",
    "offset": "offset",
    "for_": "for",
    "by": "by",
    "meta": "meta",
    "meta_file": "meta-file",
    "require": "require",
    "job": "job",
    "retry_delay": "retry_delay",
    "no_alert": "no_alert",
}
PHASE_KEYWORDS = ("task", "depends_on", "template", "retry", "rule")
KEYWORDS = PHASE_KEYWORDS + tuple(RULE_KEYWORDS)

# Characters a rule value cannot hold as they are: the rule is a URL query string.
_ESCAPES = {"%": "%25", "&": "%26", "+": "%2B", "#": "%23", ";": "%3B"}


# --- the API -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallSite:
    """Where a Phase or Workflow was declared: the file and the call's position as Python
    reports it (1-based lines, UTF-8 byte columns; None where unknown)."""

    path: str
    line: int
    end_line: int | None = None
    col: int | None = None
    end_col: int | None = None


def _call_site() -> CallSite:
    """The innermost frame outside this module: the user's call."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    code = frame.f_code
    line, end_line, col, end_col = frame.f_lineno, None, None, None
    wanted = frame.f_lasti // 2  # one position per 2-byte code unit
    for i, position in enumerate(code.co_positions()):
        if i == wanted:
            if position[0] is not None:
                line, end_line, col, end_col = position
            break
    return CallSite(code.co_filename, line, end_line, col, end_col)


class Phase:
    """One phase. The keywords mirror the TOML keys (`task`, `depends_on` for `dependsOn`,
    `template`, `retry`, `rule` for a raw rule string) and the rule keys (`cron`, `files`,
    `offset`, `for_`, `by`, `meta`, `meta_file`, `require`, `job`, `retry_delay`, `no_alert`).
    Values are plain strings, not URL-encoded: `offset="+4h"` is written `%2B4h` in the rule.
    `meta` is a dict of lists (`{"k": ["a", "b"]}`) or the rule's `"k:a,b|k2:1,2"`. Nothing is
    checked here: `flowlord lint` reports unknown keywords and bad values with their position.
    """

    def __init__(
        self,
        task: str | None = None,
        *,
        depends_on: str | None = None,
        template: str | None = None,
        retry: int | None = None,
        rule: str | None = None,
        cron: str | None = None,
        files: str | None = None,
        offset: str | None = None,
        for_: str | None = None,
        by: str | None = None,
        meta: Mapping[str, Sequence[str]] | str | None = None,
        meta_file: str | None = None,
        require: str | None = None,
        job: str | None = None,
        retry_delay: str | None = None,
        no_alert: bool | None = None,
        **unknown: object,
    ):
        given = dict(locals())
        self.site = _call_site()
        self.values: dict[str, object] = {
            key: given[key] for key in KEYWORDS if given[key] is not None
        }
        self.unknown: dict[str, object] = dict(unknown)

    def __repr__(self) -> str:
        values = ", ".join(f"{k}={v!r}" for k, v in self.values.items())
        return f"Phase({values})"


class Workflow:
    """The phases of one workflow module. A module declares one, at module level:
    `wf = Workflow()`, then `wf.phase(...)` per phase (or `Workflow(Phase(...), ...)`)."""

    def __init__(self, *phases: Phase):
        self.site = _call_site()
        self.phases: list[Phase] = []
        self.add(*phases)

    def add(self, *phases: Phase) -> Workflow:
        for phase in phases:
            if not isinstance(phase, Phase):
                raise TypeError(f"Workflow takes Phase objects, not {type(phase).__name__}")
            self.phases.append(phase)
        return self

    def phase(
        self,
        task: str | None = None,
        *,
        depends_on: str | None = None,
        template: str | None = None,
        retry: int | None = None,
        rule: str | None = None,
        cron: str | None = None,
        files: str | None = None,
        offset: str | None = None,
        for_: str | None = None,
        by: str | None = None,
        meta: Mapping[str, Sequence[str]] | str | None = None,
        meta_file: str | None = None,
        require: str | None = None,
        job: str | None = None,
        retry_delay: str | None = None,
        no_alert: bool | None = None,
        **unknown: object,
    ) -> Phase:
        """Declares a phase (the keywords of `Phase`), adds it and returns it."""
        given = dict(locals())
        del given["self"], given["unknown"]
        phase = Phase(**given, **unknown)
        self.phases.append(phase)
        return phase

    def __iter__(self) -> Iterator[Phase]:
        return iter(self.phases)

    def __len__(self) -> int:
        return len(self.phases)

    def __repr__(self) -> str:
        return f"<Workflow with {len(self.phases)} phase(s)>"


# --- loading a module ----------------------------------------------------------------------------


@dataclass
class PythonModule:
    """What `load_python` found: the workflow (None if the module could not be used), the
    sink to use for the file's further checks (it widens spans inside values that are not
    plain literals to the whole value), and the other files that phases were declared in."""

    workflow: ast.Workflow | None
    sink: Sink
    sources: dict[str, SourceFile]


def load_python(source: SourceFile, sink: Sink) -> PythonModule:
    """Imports (executes) a workflow module and builds the Workflow AST of its `Workflow`."""
    files = _Files(source)
    wide = _WideningSink(sink.diagnostics, files.regions)
    result = PythonModule(None, wide, files.others)
    module = _execute(source, sink)
    if module is None:
        return result
    found: list[tuple[str, Workflow]] = []
    for name, value in vars(module).items():
        if isinstance(value, Workflow) and all(value is not w for _, w in found):
            found.append((name, value))
    whole = source.span(0, len(source.text))
    if not found:
        sink.emit(
            codes.NO_PHASES.at(
                source.span(0, 0),
                "this Python module defines no `Workflow`",
                help="assign one at module level, `wf = Workflow()`, and add phases with `wf.phase(task=...)`",
            )
        )
        return result
    (first_name, workflow), *others = found
    for name, other in others:
        sink.emit(
            codes.PYTHON_ERROR.at(
                files.declaration(other.site, source),
                f"a second workflow, `{name}`: a workflow module holds one `Workflow`",
                help=f"add these phases to `{first_name}`, or move them to a module of their own; only `{first_name}` is checked",
                secondary=(Label(files.declaration(workflow.site, source), f"`{first_name}` declared here"),),
            )
        )
    from .loader import build_phase

    phases = []
    for declared in workflow.phases:
        phase = _PhaseBuilder(declared, files, source, wide).build(build_phase)
        if phase is not None:
            phases.append(phase)
    if not workflow.phases:
        sink.emit(
            codes.NO_PHASES.at(
                files.declaration(workflow.site, source),
                f"the workflow `{first_name}` declares no phase",
                help=f"add phases with `{first_name}.phase(task=...)`",
            )
        )
    result.workflow = ast.Workflow(span=whole, path=source.path, phases=tuple(phases))
    return result


_loads = 0


def _execute(source: SourceFile, sink: Sink) -> types.ModuleType | None:
    """Runs the module's text as a fresh module named `flowlord_workflow_N`, with its folder on
    sys.path (for sibling imports) and its prints sent to stderr; None if it raised."""
    global _loads
    try:
        code = compile(source.text, source.path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        _python_error(source, error, sink)
        return None
    _loads += 1
    name = f"flowlord_workflow_{_loads}"
    module = types.ModuleType(name)
    module.__file__ = source.path
    folder = os.path.dirname(os.path.abspath(source.path))
    sys.modules[name] = module  # dataclasses and the like look their module up there
    sys.path.insert(0, folder)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            exec(code, module.__dict__)  # noqa: S102 - importing the module is the point
    except (Exception, SystemExit) as error:  # noqa: BLE001 - any of them is FL112
        _python_error(source, error, sink)
        return None
    finally:
        sys.modules.pop(name, None)
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
    return module


def _python_error(source: SourceFile, error: BaseException, sink: Sink) -> None:
    """FL112 at the innermost line of this file that the traceback passes through."""
    described = _describe(error)
    notes: tuple[str, ...] = ()
    span = source.span(0, 0)
    if isinstance(error, SyntaxError) and error.filename == source.path and error.lineno:
        span = _syntax_span(source, error)
    else:
        frames = traceback.extract_tb(error.__traceback__)
        mine = [f for f in frames if f.filename == source.path and f.lineno]
        if mine:
            frame = mine[-1]
            span = _frame_span(source, frame)
            last = frames[-1]
            if last is not frame:
                notes = (f"raised in {last.filename}:{last.lineno}, in {last.name}",)
        elif isinstance(error, SyntaxError) and error.filename:
            notes = (f"in {error.filename}:{error.lineno}",)
    sink.emit(
        codes.PYTHON_ERROR.at(
            span,
            f"importing this workflow module raised {described}",
            help="flowlord imports (runs) a .py workflow module to find its `Workflow`: fix the error and lint again",
            notes=notes,
        )
    )


def _describe(error: BaseException) -> str:
    if isinstance(error, SyntaxError):
        text = error.msg or "invalid syntax"
    else:
        text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"`{type(error).__name__}: {first}`" if first else f"`{type(error).__name__}`"


def _syntax_span(source: SourceFile, error: SyntaxError) -> Span:
    """SyntaxError columns are 1-based characters."""
    starts = source.line_starts()
    line = min(error.lineno, len(starts))
    text = source.line_text(line)
    col = min(max((error.offset or 1) - 1, 0), len(text))
    end = col + 1
    if error.end_lineno == error.lineno and error.end_offset and error.end_offset - 1 > col:
        end = error.end_offset - 1
    end = max(min(end, len(text)), col)
    return source.span(starts[line - 1] + col, starts[line - 1] + end)


def _frame_span(source: SourceFile, frame: traceback.FrameSummary) -> Span:
    """The expression the frame was running (Python 3.11 positions), else its line's text."""
    if frame.colno is not None and frame.end_lineno is not None and frame.end_colno is not None:
        start = _offset(source, frame.lineno, frame.colno)
        end = _offset(source, frame.end_lineno, frame.end_colno)
        if end > start:
            return source.span(start, end)
    return _line_span(source, frame.lineno)


def _line_span(source: SourceFile, line: int) -> Span:
    starts = source.line_starts()
    line = min(max(line, 1), len(starts))
    text = source.line_text(line)
    indent = len(text) - len(text.lstrip())
    base = starts[line - 1]
    return source.span(base + indent, base + len(text.rstrip()))


def _offset(source: SourceFile, line: int, byte_col: int) -> int:
    """File offset of a Python (1-based line, UTF-8 byte column) position."""
    starts = source.line_starts()
    line = min(max(line, 1), len(starts))
    text = source.line_text(line)
    chars = len(text.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))
    return starts[line - 1] + chars


# --- from a recorded call to the texts of a phase -----------------------------------------------


class _Files:
    """The source files that phases were declared in, parsed once each with `ast`."""

    def __init__(self, module: SourceFile):
        self.module = module
        self.others: dict[str, SourceFile] = {}
        self.regions: list[Span] = []  # values mapped as a whole: diagnostics inside widen to them
        self._trees: dict[str, pyast.Module | None] = {}

    def source(self, path: str) -> SourceFile | None:
        if path == self.module.path:
            return self.module
        if path in self.others:
            return self.others[path]
        try:
            with open(path, encoding="utf-8") as handle:
                found = SourceFile(path, handle.read())
        except (OSError, UnicodeDecodeError):
            return None
        self.others[path] = found
        return found

    def tree(self, source: SourceFile) -> pyast.Module | None:
        if source.path not in self._trees:
            try:
                self._trees[source.path] = pyast.parse(source.text, source.path)
            except (SyntaxError, ValueError):
                self._trees[source.path] = None
        return self._trees[source.path]

    def call(self, site: CallSite) -> tuple[SourceFile, pyast.Call | None] | None:
        source = self.source(site.path)
        if source is None:
            return None
        tree = self.tree(source)
        if tree is None:
            return source, None
        return source, _find_call(tree, site)

    def declaration(self, site: CallSite, fallback: SourceFile) -> Span:
        """Where a Phase or Workflow was declared: the callee (`wf.phase`, `Workflow`)."""
        found = self.call(site)
        if found is None:
            return fallback.span(0, 0)
        source, call = found
        if call is None:
            return _line_span(source, site.line)
        return node_span(source, call.func)


def _find_call(tree: pyast.Module, site: CallSite) -> pyast.Call | None:
    """The Call node of a call site: the one ending where Python's position of the CALL
    instruction ends (innermost if several), else the first call starting on its line."""
    calls = [
        node
        for node in pyast.walk(tree)
        if isinstance(node, pyast.Call) and node.lineno <= site.line <= (node.end_lineno or node.lineno)
    ]
    if site.end_line is not None and site.end_col is not None:
        exact = [c for c in calls if (c.end_lineno, c.end_col_offset) == (site.end_line, site.end_col)]
        if exact:
            return max(exact, key=lambda c: (c.lineno, c.col_offset))
    on_line = sorted((c for c in calls if c.lineno == site.line), key=lambda c: c.col_offset)
    return on_line[0] if on_line else None


def node_span(source: SourceFile, node: pyast.AST) -> Span:
    start = _offset(source, node.lineno, node.col_offset)
    end = _offset(source, node.end_lineno or node.lineno, node.end_col_offset or node.col_offset)
    return source.span(start, max(start, end))


@dataclass
class _Located:
    """A string value with the file offset of each character and of its end."""

    text: str
    starts: list[int]
    end: int

    @classmethod
    def whole(cls, text: str, span: Span) -> _Located:
        return cls(text, [span.start] * len(text), span.end)


_STRING = re.compile(r"([rRuU]?)('''|\"\"\"|'|\")")


def locate_string(source: SourceFile, node: pyast.AST, value: str, files: _Files) -> _Located:
    """Character by character for a plain literal whose text is the value; else the whole
    expression (registered so that diagnostics inside it cover all of it)."""
    span = node_span(source, node)
    if isinstance(node, pyast.Constant) and isinstance(node.value, str):
        written = source.text[span.start : span.end]
        match = _STRING.match(written)
        if match and len(written) >= match.end() + len(match.group(2)) and written.endswith(match.group(2)):
            body = written[match.end() : len(written) - len(match.group(2))]
            if body == value:
                base = span.start + match.end()
                return _Located(value, list(range(base, base + len(value))), base + len(value))
    files.regions.append(span)
    return _Located.whole(value, span)


class _Builder:
    """Builds a MappedText piece by piece; text with no origin of its own (`&`, `:`) sits
    at the end of what precedes it."""

    def __init__(self, path: str, empty_at: int):
        self.path = path
        self.chars: list[str] = []
        self.offsets: list[int] = []
        self.end = empty_at

    def add(self, located: _Located, escape: bool = False) -> None:
        for ch, start in zip(located.text, located.starts):
            written = _ESCAPES.get(ch, ch) if escape else ch
            self.chars.extend(written)
            self.offsets.extend([start] * len(written))
        self.end = located.end

    def glue(self, text: str) -> None:
        self.chars.extend(text)
        self.offsets.extend([self.end] * len(text))

    def mapped(self) -> MappedText:
        return MappedText(self.path, "".join(self.chars), [*self.offsets, self.end])


_EXPECTED = {
    "retry": ("an integer", "write a whole number, e.g. `retry=3`"),
    "no_alert": ("True or False", "write `no_alert=True`"),
    "meta": (
        "a dict of lists of strings or a string",
        'write e.g. `meta={"client": ["a", "b"]}` or `meta="client:a,b"`',
    ),
}


class _PhaseBuilder:
    def __init__(self, phase: Phase, files: _Files, module: SourceFile, sink: Sink):
        self.phase = phase
        self.files = files
        self.sink = sink
        found = files.call(phase.site)
        if found is None:  # declared in a file we cannot read: everything at the module's top
            self.source, self.call = module, None
            self.header = module.span(0, 0)
        else:
            self.source, self.call = found
            self.header = files.declaration(phase.site, module)
        self.keywords: dict[str, pyast.keyword] = {}
        self.elsewhere = self.header  # values the call does not spell out: at its `**options`
        if self.call is not None:
            for keyword in self.call.keywords:
                if keyword.arg is not None:
                    self.keywords.setdefault(keyword.arg, keyword)
                elif self.elsewhere is self.header:
                    self.elsewhere = node_span(self.source, keyword)

    # -- positions

    def _value_node(self, name: str) -> pyast.AST | None:
        keyword = self.keywords.get(name)
        if keyword is not None:
            return keyword.value
        if name == "task" and self.call is not None and self.call.args:
            return self.call.args[0]  # wf.phase("topic:job", ...)
        return None

    def _value_span(self, name: str) -> Span:
        node = self._value_node(name)
        if node is None:
            return self._fallback()
        return node_span(self.source, node)

    def _name_span(self, name: str) -> Span:
        keyword = self.keywords.get(name)
        if keyword is None:
            return self._fallback()
        start = _offset(self.source, keyword.lineno, keyword.col_offset)
        return self.source.span(start, start + len(name))

    def _fallback(self) -> Span:
        """Where a value sits when the call does not spell it out (`**options`)."""
        self.files.regions.append(self.elsewhere)
        return self.elsewhere

    def _string(self, name: str, value: str) -> _Located:
        node = self._value_node(name)
        if node is None:
            return _Located.whole(value, self._fallback())
        return locate_string(self.source, node, value, self.files)

    # -- values

    def _typed(self, name: str, value: object) -> bool:
        if name == "retry":
            ok = type(value) is int
        elif name == "no_alert":
            ok = isinstance(value, bool)
        elif name == "meta":
            ok = isinstance(value, str) or (
                isinstance(value, Mapping)
                and all(
                    isinstance(k, str)
                    and isinstance(v, (list, tuple))
                    and all(isinstance(item, str) for item in v)
                    for k, v in value.items()
                )
            )
        else:
            ok = isinstance(value, str)
        if not ok:
            expected, help = _EXPECTED.get(name, ("a string", f'write it in quotes, e.g. `{name}="…"`'))
            self.sink.emit(
                codes.WRONG_TYPE.at(
                    self._value_span(name),
                    f"`{name}` must be {expected}, not {type(value).__name__}",
                    help=help,
                )
            )
        return ok

    def _text(self, values: dict[str, object], name: str) -> MappedText | None:
        if name not in values:
            return None
        builder = _Builder(self.source.path, self.header.end)
        builder.add(self._string(name, values[name]))
        return builder.mapped()

    def _rule(self, values: dict[str, object]) -> MappedText:
        builder = _Builder(self.source.path, self.header.end)
        first = True
        if "rule" in values:
            builder.add(self._string("rule", values["rule"]))
            first = not values["rule"]
        for name, key in RULE_KEYWORDS.items():
            if name not in values or (name == "no_alert" and values[name] is False):
                continue
            if not first:
                builder.glue("&")
            first = False
            name_span = self._name_span(name)
            builder.add(_Located(key, [min(name_span.start + i, name_span.end) for i in range(len(key))], name_span.end))
            builder.glue("=")
            value = values[name]
            if name == "no_alert":
                builder.add(_Located.whole("true", self._value_span(name)))
                self.files.regions.append(self._value_span(name))
            elif name == "meta" and not isinstance(value, str):
                self._meta(builder, value)
            else:
                builder.add(self._string(name, value), escape=True)
        return builder.mapped()

    def _meta(self, builder: _Builder, meta: Mapping[str, Sequence[str]]) -> None:
        node = self._value_node("meta")
        entries: dict[str, pyast.AST] = {}
        keys: dict[str, pyast.AST] = {}
        if isinstance(node, pyast.Dict):
            for key_node, value_node in zip(node.keys, node.values):
                if isinstance(key_node, pyast.Constant) and isinstance(key_node.value, str):
                    keys.setdefault(key_node.value, key_node)
                    entries.setdefault(key_node.value, value_node)
        whole = self._value_span("meta")

        def located(text: str, node: pyast.AST | None) -> _Located:
            if node is None:
                self.files.regions.append(whole)
                return _Located.whole(text, whole)
            return locate_string(self.source, node, text, self.files)

        for i, (key, items) in enumerate(meta.items()):
            if i:
                builder.glue("|")
            key_at = located(key, keys.get(key))
            self._meta_chars(key, key_at, ":|,", "key")
            builder.add(key_at, escape=True)
            builder.glue(":")
            item_nodes = entries.get(key)
            elements = (
                item_nodes.elts
                if isinstance(item_nodes, (pyast.List, pyast.Tuple)) and len(item_nodes.elts) == len(items)
                else [None] * len(items)
            )
            if item_nodes is not None and elements == [None] * len(items):
                elements = [item_nodes] * len(items)
            for j, (item, element) in enumerate(zip(items, elements)):
                if j:
                    builder.glue(",")
                item_at = located(item, element)
                self._meta_chars(item, item_at, "|,", "value")
                builder.add(item_at, escape=True)

    def _meta_chars(self, text: str, at: _Located, forbidden: str, what: str) -> None:
        for i, ch in enumerate(text):
            if ch in forbidden:
                end = at.starts[i + 1] if i + 1 < len(at.starts) else at.end
                self.sink.emit(
                    codes.META_SYNTAX.at(
                        Span(self.source.path, at.starts[i], max(end, at.starts[i])),
                        f"a meta {what} cannot hold `{ch}`: the rule's meta is `key:a,b|key2:c,d`",
                        help="use other characters, or a `meta_file` of JSON lines",
                    )
                )
                return

    # -- the phase

    def build(self, build_phase) -> ast.Phase | None:
        phase = self.phase
        for name in phase.unknown:
            span = self._name_span(name) if name in self.keywords else self.elsewhere
            self.sink.emit(
                codes.UNKNOWN_KEY.at(
                    span,
                    f"unknown phase keyword `{name}`",
                    help=did_you_mean(name, KEYWORDS)
                    or "phase keywords are " + ", ".join(f"`{k}`" for k in KEYWORDS),
                )
            )
        values = {name: value for name, value in phase.values.items() if self._typed(name, value)}
        retry = None
        if "retry" in values:
            retry = (values["retry"], self._value_span("retry"))
        empty = MappedText(self.source.path, "", [self.header.end])
        return build_phase(
            self.header,
            task=self._text(values, "task"),
            rule=self._rule(values),
            template=self._text(values, "template") or empty,
            depends_on=self._text(values, "depends_on") or empty,
            retry=retry,
            sink=self.sink,
        )


class _WideningSink(Sink):
    """Shares the diagnostics list of the sink it wraps; a span that falls inside a value
    mapped as a whole (see locate_string) is widened to all of that value."""

    def __init__(self, diagnostics: list[Diagnostic], regions: list[Span]):
        super().__init__(diagnostics)
        self.regions = regions

    def _widen(self, span: Span) -> Span:
        for region in self.regions:
            if region.path == span.path and region.start <= span.start and span.end <= region.end:
                return region
        return span

    def emit(self, diagnostic: Diagnostic) -> None:
        secondary = tuple(dataclasses.replace(l, span=self._widen(l.span)) for l in diagnostic.secondary)
        self.diagnostics.append(
            dataclasses.replace(diagnostic, span=self._widen(diagnostic.span), secondary=secondary)
        )


# --- export ----------------------------------------------------------------------------------------


def export_toml(workflow: ast.Workflow, sources: Mapping[str, SourceFile] | None = None) -> str:
    """The workflow as a TOML file in the canonical `[[Phase]]` spelling: it lints like the
    module and loads to the same phases. With `sources`, each phase notes its line."""
    lines = [
        f"# Exported by `flowlord export` from {workflow.path}: edit that file and export again.",
    ]
    for phase in workflow.phases:
        lines.append("")
        source = (sources or {}).get(phase.span.path)
        if source is not None:
            line, _ = source.line_col(phase.span.start)
            lines.append(f"# {phase.span.path}:{line}")
        lines.append("[[Phase]]")
        lines.append(f"task = {toml_string(phase.task.value)}")
        if phase.depends_on is not None:
            parent = phase.depends_on
            lines.append(f"dependsOn = {toml_string(parent.topic + (':' + parent.job if parent.job else ''))}")
        if phase.rule.text:
            lines.append(f"rule = {toml_string(phase.rule.text)}")
        if phase.retry.retries:
            lines.append(f"retry = {phase.retry.retries}")
        if phase.template.text:
            lines.append(f"template = {toml_string(phase.template.text)}")
    return "\n".join(lines) + "\n"


_TOML_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_string(text: str) -> str:
    """A TOML basic string."""
    out = []
    for ch in text:
        if ch in _TOML_ESCAPES:
            out.append(_TOML_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'
