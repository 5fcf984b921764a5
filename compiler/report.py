"""Renderers: diagnostics plus their source files in, text out; nothing is printed here.

This is the one place where offsets become 1-based line:column positions. Formats:
`text` for people (snippet, caret, help), `json` for scripts and the dashboard, `sarif` for
GitHub code scanning and `github` for workflow-command annotations. `explain` gives the long
text behind a code (`flowlord lint --explain FL104`).
"""

from __future__ import annotations

import hashlib
import json
import os
import textwrap
import unicodedata
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable, Mapping, Sequence
from urllib.parse import quote

from . import codes
from .diagnostics import Diagnostic, Severity
from .source import SourceFile, Span

Sources = Mapping[str, SourceFile]

FORMATS = ("text", "json", "sarif", "github")
TAB_WIDTH = 4
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
# The Go flowlord whose workflow files we check; replace with this project's page once it has one.
INFORMATION_URI = "https://github.com/pcelvng/task-tools/tree/master/apps/flowlord"
_LEVELS = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.NOTE: "note"}


@dataclass(frozen=True)
class Position:
    """1-based; `end_column` is exclusive (the column after the span), as in SARIF."""

    line: int
    column: int
    end_line: int
    end_column: int


def position(span: Span, sources: Sources) -> Position:
    return _locate(_source(span.path, sources), span)


def _locate(source: SourceFile, span: Span) -> Position:
    start = min(max(span.start, 0), len(source.text))
    end = min(max(span.end, start), len(source.text))
    return Position(*source.line_col(start), *source.line_col(end))


def render(
    format: str,
    diagnostics: Sequence[Diagnostic],
    sources: Sources,
    *,
    color: bool = False,
    tool_version: str | None = None,
) -> str:
    """Dispatch on a name from FORMATS; `color` only affects text, `tool_version` only SARIF."""
    if format == "text":
        return render_text(diagnostics, sources, color=color)
    if format == "json":
        return render_json(diagnostics, sources)
    if format == "sarif":
        return render_sarif(diagnostics, sources, tool_version=tool_version)
    if format == "github":
        return render_github(diagnostics, sources)
    raise ValueError(f"unknown format {format!r}, expected one of {', '.join(FORMATS)}")


# --- text ------------------------------------------------------------------------------------

_STYLES = {"error": "1;31", "warning": "1;33", "note": "1;32", "bold": "1", "gutter": "36"}


@dataclass(frozen=True)
class _Paint:
    enabled: bool

    def __call__(self, style: str, text: str) -> str:
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if self.enabled and text else text


def render_text(diagnostics: Sequence[Diagnostic], sources: Sources, *, color: bool = False) -> str:
    """One block per diagnostic, blank lines between, a summary last; "" when there is nothing."""
    if not diagnostics:
        return ""
    paint = _Paint(color)
    blocks = [_text_block(d, sources, paint) for d in diagnostics]
    return "\n\n".join(blocks) + "\n\n" + paint("bold", summary(diagnostics)) + "\n"


def summary(diagnostics: Iterable[Diagnostic]) -> str:
    """`2 errors, 1 warning`; "" when there are none."""
    counts = {severity: 0 for severity in Severity}
    for d in diagnostics:
        counts[Severity(d.severity)] += 1
    return ", ".join(
        f"{n} {severity.value}{'' if n == 1 else 's'}" for severity, n in counts.items() if n
    )


def _text_block(d: Diagnostic, sources: Sources, paint: _Paint) -> str:
    severity = Severity(d.severity).value
    pos = position(d.span, sources)
    header = (
        paint("bold", f"{d.span.path}:{pos.line}:{pos.column}: ")
        + paint(severity, f"{severity}[{d.code}]")
        + paint("bold", f": {d.message}")
    )
    lines = [header]
    source = sources.get(d.span.path)
    local = [d.span] + [label.span for label in d.secondary if label.span.path == d.span.path]
    width = max(len(str(position(span, sources).line)) for span in local)
    if source is not None:
        lines += _snippet(source, d.span, width, paint, severity)
    for label in d.secondary:
        message = label.message or "related location"
        if label.span.path == d.span.path and source is not None:
            lines.append(f"{paint('note', 'note')}: {message}")
            lines += _snippet(source, label.span, width, paint, "note")
        else:
            at = position(label.span, sources)
            where = f"{label.span.path}:{at.line}:{at.column}"
            lines.append(f"{where}: {paint('note', 'note')}: {message}")
    if d.help:
        lines += _prefixed("help", d.help, paint)
    for note in d.notes:
        lines += _prefixed("note", note, paint)
    return "\n".join(lines)


def _snippet(source: SourceFile, span: Span, width: int, paint: _Paint, style: str) -> list[str]:
    """Gutter, source line and `^~~~` under the span (to the line's end if the span goes on)."""
    pos = _locate(source, span)
    line = pos.line
    text = source.line_text(line)
    first = min(pos.column - 1, len(text))
    last = min(pos.end_column - 1, len(text)) if pos.end_line == line else len(text)
    shown, cols = _layout(text)
    marks = "^" + "~" * max(0, cols[last] - cols[first] - 1)
    bar = paint("gutter", " " * (width + 1) + "|")
    numbered = paint("gutter", f"{line:>{width}} |") + (f" {shown}" if shown else "")
    return [bar, numbered, f"{bar} {' ' * cols[first]}{paint(style, marks)}"]


def _layout(text: str) -> tuple[str, list[int]]:
    """The line as a terminal shows it and the display column where each character starts.

    Tabs go to the next multiple of TAB_WIDTH, wide East Asian characters take two columns,
    combining marks none; control characters show as U+FFFD and format characters (bidi
    overrides, zero-width joiners) are dropped, so the caret lines up with what is printed.
    """
    shown: list[str] = []
    cols = [0]
    for ch in text:
        category = unicodedata.category(ch)
        if ch == "\t":
            piece = " " * (TAB_WIDTH - cols[-1] % TAB_WIDTH)
            width = len(piece)
        elif category == "Cc":
            piece, width = "\ufffd", 1
        elif category == "Cf":
            piece, width = "", 0
        elif category in ("Mn", "Me"):
            piece, width = ch, 0
        else:
            piece, width = ch, 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        shown.append(piece)
        cols.append(cols[-1] + width)
    return "".join(shown), cols


def _prefixed(word: str, text: str, paint: _Paint) -> list[str]:
    """`help: first line`, later lines indented under the first."""
    first, *rest = text.splitlines() or [""]
    indent = " " * (len(word) + 2)
    return [f"{paint('bold', word)}: {first}"] + [indent + line for line in rest]


# --- json ------------------------------------------------------------------------------------


def render_json(diagnostics: Sequence[Diagnostic], sources: Sources) -> str:
    """A JSON array, one object per diagnostic; positions 1-based, end_column exclusive."""
    items = [_json_object(d, sources) for d in diagnostics]
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


def _json_object(d: Diagnostic, sources: Sources) -> dict:
    code = codes.lookup(d.code)
    return {
        **_json_location(d.span, sources),
        "severity": Severity(d.severity).value,
        "code": d.code,
        "name": code.name if code else None,
        "message": d.message,
        "help": d.help,
        "notes": list(d.notes),
        "related": [
            {**_json_location(label.span, sources), "message": label.message}
            for label in d.secondary
        ],
    }


def _json_location(span: Span, sources: Sources) -> dict:
    pos = position(span, sources)
    return {
        "file": span.path,
        "line": pos.line,
        "column": pos.column,
        "end_line": pos.end_line,
        "end_column": pos.end_column,
    }


# --- sarif -----------------------------------------------------------------------------------


def render_sarif(
    diagnostics: Sequence[Diagnostic],
    sources: Sources,
    *,
    tool_version: str | None = None,
    root: str | None = None,
) -> str:
    """SARIF 2.1.0 for GitHub code scanning; rules list every registered code, in order.

    Relative paths stay relative to %SRCROOT%; absolute ones are made relative to `root`
    (default: the current folder) when they lie inside it.
    """
    rule_index = {id: i for i, id in enumerate(codes.REGISTRY)}
    base = Path(os.path.abspath(root if root is not None else os.curdir))
    seen: dict[str, int] = {}
    results = [_sarif_result(d, sources, rule_index, base, seen) for d in diagnostics]
    driver = {
        "name": "flowlord",
        "version": tool_version or _installed_version(),
        "informationUri": INFORMATION_URI,
        "rules": [_sarif_rule(code) for code in codes.REGISTRY.values()],
    }
    log = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{"tool": {"driver": driver}, "columnKind": "unicodeCodePoints", "results": results}],
    }
    return json.dumps(log, indent=2, ensure_ascii=False) + "\n"


def _sarif_rule(code: codes.Code) -> dict:
    why = _long_text(code.id)[0] or code.summary
    return {
        "id": code.id,
        "name": code.name,
        "shortDescription": {"text": code.summary},
        "fullDescription": {"text": why if len(why) <= 1024 else why[:1023] + "…"},
        "help": {"text": explain(code.id), "markdown": _explain_markdown(code)},
        "defaultConfiguration": {"level": _LEVELS[code.severity]},
    }


def _sarif_result(
    d: Diagnostic, sources: Sources, rule_index: dict[str, int], base: Path, seen: dict[str, int]
) -> dict:
    location = _sarif_location(d.span, sources, base)
    text = "\n".join([d.message] + ([f"help: {d.help}"] if d.help else []))
    result: dict = {"ruleId": d.code}
    if d.code in rule_index:
        result["ruleIndex"] = rule_index[d.code]
    result.update(level=_LEVELS[Severity(d.severity)], message={"text": text}, locations=[location])
    if d.secondary:
        result["relatedLocations"] = [
            {
                "id": i,
                **_sarif_location(label.span, sources, base),
                "message": {"text": label.message or "related location"},
            }
            for i, label in enumerate(d.secondary)
        ]
    line_hash = _line_hash(d, sources, location["physicalLocation"]["artifactLocation"]["uri"])
    seen[line_hash] = seen.get(line_hash, 0) + 1
    result["partialFingerprints"] = {"primaryLocationLineHash": f"{line_hash}:{seen[line_hash]}"}
    return result


def _sarif_location(span: Span, sources: Sources, base: Path) -> dict:
    pos = position(span, sources)
    region = {
        "startLine": pos.line,
        "startColumn": pos.column,
        "endLine": pos.end_line,
        "endColumn": pos.end_column,
    }
    return {"physicalLocation": {"artifactLocation": _artifact(span.path, base), "region": region}}


def _artifact(path: str, base: Path) -> dict:
    """A %SRCROOT%-relative URI with forward slashes, or a file:// URI outside the root."""
    file = Path(os.path.normpath(path))
    if file.is_absolute():
        try:
            file = file.relative_to(base)
        except ValueError:
            return {"uri": file.as_uri()}
    return {"uri": quote(file.as_posix()), "uriBaseId": "%SRCROOT%"}


def _line_hash(d: Diagnostic, sources: Sources, uri: str) -> str:
    """Stable across runs and edits elsewhere in the file: code, path and the line's text."""
    line = _source(d.span.path, sources).line_text(position(d.span, sources).line)
    key = "\0".join([d.code, uri, "".join(line.split())])
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flowlord")
    except PackageNotFoundError:
        return "0.0.0"


# --- github ----------------------------------------------------------------------------------


def render_github(diagnostics: Sequence[Diagnostic], sources: Sources) -> str:
    """`::error file=…,line=…::message` workflow commands, escaped as actions/toolkit does."""
    return "".join(_github_line(d, sources) + "\n" for d in diagnostics)


def _github_line(d: Diagnostic, sources: Sources) -> str:
    pos = position(d.span, sources)
    command = {"error": "error", "warning": "warning"}.get(Severity(d.severity).value, "notice")
    properties: dict[str, object] = {"file": PurePath(d.span.path).as_posix(), "line": pos.line}
    if pos.end_line == pos.line:  # GitHub takes columns only for single-line annotations
        properties.update(col=pos.column, endLine=pos.end_line, endColumn=pos.end_column)
    else:
        properties["endLine"] = pos.end_line
    properties["title"] = f"flowlord {d.code}"
    message = "\n".join([d.message] + ([f"help: {d.help}"] if d.help else []))
    fields = ",".join(f"{key}={_escape_property(str(value))}" for key, value in properties.items())
    return f"::{command} {fields}::{_escape_data(message)}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


# --- explain ---------------------------------------------------------------------------------


def explain(code: str) -> str:
    """The registry entry for an id (`FL104`, any case) or a name (`wrong-type`) as text.

    Adds the long explanation (why, a bad example, the fix) when codes.EXPLANATIONS has one.
    Raises KeyError for an unknown code.
    """
    entry = _entry(code)
    why, example, fix = _long_text(entry.id)
    text = f"{entry.id} {entry.name} ({entry.severity.value})\n\n{entry.summary}\n"
    if why:
        paragraphs = (textwrap.fill(line, 88) for line in why.splitlines())
        text += "\nWhy it matters:\n" + "\n".join(paragraphs) + "\n"
    for title, snippet in (("Example", example), ("Fix", fix)):
        if snippet:
            text += f"\n{title}:\n" + textwrap.indent(snippet, "    ") + "\n"
    return text


def _explain_markdown(code: codes.Code) -> str:
    why, example, fix = _long_text(code.id)
    parts = [f"**{code.id} {code.name}** ({code.severity.value}): {code.summary}", why]
    for title, snippet in (("Example", example), ("Fix", fix)):
        if snippet:
            parts.append(f"{title}:\n\n```toml\n{snippet}\n```")
    return "\n\n".join(part for part in parts if part)


def _entry(code: str) -> codes.Code:
    wanted = code.strip()
    entry = codes.lookup(wanted) or next(
        (c for c in codes.REGISTRY.values() if c.name == wanted.lower()), None
    )
    if entry is None:
        raise KeyError(code)
    return entry


def _long_text(id: str) -> tuple[str, str, str]:
    """(why, example, fix) from codes.EXPLANATIONS, empty strings where there is none yet."""
    explanation = getattr(codes, "EXPLANATIONS", {}).get(id)
    why, example, fix = (
        (getattr(explanation, part, "") or "").strip("\n").rstrip()
        for part in ("why", "example", "fix")
    )
    return why, example, fix


def _source(path: str, sources: Sources) -> SourceFile:
    return sources.get(path) or SourceFile(path, "")
