"""A workflow file → Workflow AST, accepting what the Go decoder accepts and reporting the rest.

Go matches the `[[Phase]]` table and its keys case-insensitively and silently ignores every
other table and key; here those become diagnostics with did-you-mean. Values come from
tomllib; their positions from toml_positions.
"""

from __future__ import annotations

import re
import tomllib

from . import codes
from .ast import DependsOn, Name, Phase, RetryPolicy, Workflow
from .diagnostics import Label, Sink
from .parse_rule import parse_rule
from .parse_template import parse_template
from .source import MappedText, SourceFile, Span
from .suggest import did_you_mean
from .toml_positions import KeyValue, Table, scan

PHASE_KEYS = {"task": "task", "rule": "rule", "dependson": "dependsOn", "retry": "retry", "template": "template"}
STRING_KEYS = {"task", "rule", "dependson", "template"}
_WHITESPACE = re.compile(r"\s")
_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)$")


def load_workflow(source: SourceFile, sink: Sink) -> Workflow | None:
    try:
        data = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as error:
        _toml_error(source, str(error), sink)
        return None
    layout = scan(source.path, source.text)
    for entry in layout.root:
        _unknown_top_level(source, entry, sink)
    phase_tables = _phase_tables(source, layout.tables, data, sink)
    phases = []
    for table, values in phase_tables:
        phase = _phase(source, table, values, sink)
        if phase is not None:
            phases.append(phase)
    if not phase_tables and not sink.has_errors():
        sink.emit(
            codes.NO_PHASES.at(
                source.span(0, 0),
                "this workflow file defines no phase",
                help="add a `[[Phase]]` table with a `task`",
            )
        )
    return Workflow(span=source.span(0, len(source.text)), path=source.path, phases=tuple(phases))


def _toml_error(source: SourceFile, message: str, sink: Sink) -> None:
    match = _TOML_POSITION.search(message)
    offset = len(source.text)
    if match and match.group(1):
        line, column = int(match.group(1)), int(match.group(2))
        starts = source.line_starts()
        offset = min(starts[min(line, len(starts)) - 1] + column - 1, len(source.text))
    text = _TOML_POSITION.sub("", message)
    text = text[:1].lower() + text[1:]
    sink.emit(
        codes.TOML_SYNTAX.at(
            source.span(offset, min(offset + 1, len(source.text))),
            text,
            help="check the quotes, brackets and `=` at the caret; nothing in this file is checked until it parses",
        )
    )


def _unknown_top_level(source: SourceFile, entry: KeyValue, sink: Sink) -> None:
    name = entry.dotted[0]
    if name.lower() == "checksum":  # Go decodes it into an unused field
        return
    span = source.span(entry.key_start, entry.key_end)
    if name.lower() in PHASE_KEYS:
        help = "phase keys belong inside a `[[Phase]]` table: add `[[Phase]]` above this line"
    elif name.lower() == "phase":
        help = "write each phase as its own `[[Phase]]` table"
    else:
        help = did_you_mean(name, ["Phase"]) or "a workflow file holds only `[[Phase]]` tables"
    sink.emit(codes.UNKNOWN_KEY.at(span, f"unknown top-level key `{name}`: Go ignores it", help=help))


def _phase_tables(
    source: SourceFile, tables: list[Table], data: dict, sink: Sink
) -> list[tuple[Table, dict]]:
    """The [[Phase]] tables (any letter case) paired with their tomllib values."""
    found: list[tuple[Table, dict]] = []
    spelling: Table | None = None
    index: dict[str, int] = {}
    for table in tables:
        name = table.name[0]
        span = source.span(table.name_start, table.name_end)
        if name.lower() != "phase":
            if not any(t.name[0] == name and t is not table for t in tables[: tables.index(table)]):
                sink.emit(
                    codes.UNKNOWN_TABLE.at(
                        span,
                        f"unknown table `{'.'.join(table.name)}`: Go ignores it and everything in it",
                        help=did_you_mean(name, ["Phase"], "`[[{}]]`") or "phases are `[[Phase]]` tables",
                    )
                )
            continue
        if len(table.name) > 1:
            sink.emit(
                codes.UNKNOWN_TABLE.at(
                    span,
                    f"`{'.'.join(table.name)}` nests a table inside a phase; Go ignores it",
                    help="phase values are plain keys such as `rule = \"…\"`",
                )
            )
            continue
        if not table.is_array:
            sink.emit(
                codes.WRONG_TYPE.at(
                    source.span(table.start, table.end),
                    f"`[{name}]` is a single table; phases are an array of tables",
                    help=f"write `[[{name}]]`",
                )
            )
            continue
        if spelling is not None and name != spelling.name[0]:
            sink.emit(
                codes.CASE_COLLISION.at(
                    span,
                    f"`[[{name}]]` and `[[{spelling.name[0]}]]` in one file: Go decodes them in random order",
                    help=f"spell every table `[[{spelling.name[0]}]]`",
                    secondary=(Label(source.span(spelling.name_start, spelling.name_end), "first spelling"),),
                )
            )
            continue
        spelling = spelling or table
        i = index.get(name, 0)
        index[name] = i + 1
        found.append((table, data[name][i]))
    return found


def _phase(source: SourceFile, table: Table, values: dict, sink: Sink) -> Phase | None:
    header = source.span(table.start, table.end)
    entries: dict[str, KeyValue] = {}
    for entry in table.entries:
        name = entry.dotted[0]
        key = name.lower()
        span = source.span(entry.key_start, entry.key_end)
        if key not in PHASE_KEYS:
            sink.emit(
                codes.UNKNOWN_KEY.at(
                    span,
                    f"unknown phase key `{name}`: Go ignores it",
                    help=did_you_mean(name, PHASE_KEYS.values())
                    or "phase keys are " + ", ".join(f"`{k}`" for k in PHASE_KEYS.values()),
                )
            )
            continue
        if key in entries:
            first = entries[key]
            sink.emit(
                codes.CASE_COLLISION.at(
                    span,
                    f"`{name}` and `{first.dotted[0]}` are the same key to Go, which picks one at random",
                    help="keep one of them",
                    secondary=(Label(source.span(first.key_start, first.key_end), "also given here"),),
                )
            )
            continue
        if len(entry.dotted) > 1 or not _type_ok(key, values[name]):
            expected = "a string" if key in STRING_KEYS else "an integer"
            sink.emit(
                codes.WRONG_TYPE.at(
                    source.span(entry.value_start, entry.value_end) if len(entry.dotted) == 1 else span,
                    f"`{name}` must be {expected}",
                    help='write it in quotes, e.g. `rule = "cron=0 * * * *"`'
                    if key in STRING_KEYS
                    else "write a whole number without quotes, e.g. `retry = 3`",
                )
            )
            continue
        entries[key] = entry

    def text(key: str) -> MappedText:
        entry = entries.get(key)
        if entry is None or entry.string is None:
            return MappedText(source.path, "", [header.end])
        return entry.string

    retry = None
    if "retry" in entries:
        entry = entries["retry"]
        retry = (values[entry.dotted[0]], source.span(entry.value_start, entry.value_end))
    return build_phase(
        header,
        task=text("task") if "task" in entries else None,
        rule=text("rule"),
        template=text("template"),
        depends_on=text("dependson"),
        retry=retry,
        sink=sink,
    )


def build_phase(
    header: Span,
    *,
    task: MappedText | None,
    rule: MappedText,
    template: MappedText,
    depends_on: MappedText,
    retry: tuple[int, Span] | None,
    sink: Sink,
) -> Phase | None:
    """One phase from its values, whatever spelled them: the TOML loader and the Python DSL
    (compiler.dsl) both end here, so both get the same AST and the same checks.

    `header` is where the phase is declared (the `[[Phase]]` header, the DSL call); `task` is
    None when no task was given; an absent rule, template or dependsOn is an empty MappedText
    at the header's end; `retry` is the count as given with the span of its value.
    """
    parsed_rule = parse_rule(rule, sink)
    parsed_template = parse_template(template, sink)
    if task is None or not task.text:
        sink.emit(
            codes.MISSING_TASK.at(
                header if task is None else task.whole(),
                "this phase has no task",
                help='name the topic the phase sends to, e.g. `task = "topic"` or `task = "topic:job"`',
            )
        )
        return None
    topic, job = _task_name(task, sink)
    if topic is None:
        return None
    if job is None and parsed_rule.job is not None:
        job = parsed_rule.job.value
    elif job is not None and parsed_rule.job is not None and parsed_rule.job.value != job:
        sink.emit(
            codes.JOB_CONFLICT.at(
                parsed_rule.job.span,
                f"`job={parsed_rule.job.value}` disagrees with the job `{job}` in the task name; Go uses `{job}`",
                help="give the job once, in `task` or in the rule",
                secondary=(Label(task.whole(), f"job `{job}` given here"),),
            )
        )
    retries = _retry(retry, sink)
    return Phase(
        span=header,
        task=Name(span=task.whole(), value=task.text),
        topic=topic,
        job=job or None,
        depends_on=_depends_on(depends_on, sink),
        rule=parsed_rule,
        retry=RetryPolicy(
            span=header if retry is None else retry[1],
            retries=max(retries, 0),
            delay=parsed_rule.retry_delay,
            no_alert=parsed_rule.no_alert,
        ),
        template=parsed_template,
    )


def _type_ok(key: str, value: object) -> bool:
    if key in STRING_KEYS:
        return isinstance(value, str)
    return type(value) is int


def _task_name(task: MappedText, sink: Sink) -> tuple[str | None, str | None]:
    parts = task.text.split(":")
    problem = None
    if space := _WHITESPACE.search(task.text):
        i = space.start()
        problem = (task.span(i, i + 1), "a task name has no spaces", "remove the whitespace")
    elif not parts[0]:
        problem = (task.span(0, 1), "the topic before `:` is empty", "write `topic:job`")
    elif len(parts) > 2:
        second = len(parts[0]) + 1 + len(parts[1])
        problem = (
            task.span(second, len(task.text)),
            f"`{task.text}` has more than one `:`; Go's retries and lookups never find it",
            f"write `{parts[0]}:{parts[1]}`",
        )
    elif len(parts) == 2 and not parts[1]:
        problem = (
            task.span(len(task.text) - 1, len(task.text)),
            f"`{task.text}` ends in `:`, an empty job; Go then ignores the rule's `job=`",
            f"write `{parts[0]}` or `{parts[0]}:job`",
        )
    if problem:
        span, message, help = problem
        sink.emit(codes.BAD_TASK_NAME.at(span, message, help=help))
        return None, None
    return parts[0], parts[1] if len(parts) == 2 else None


def _depends_on(text: MappedText, sink: Sink) -> DependsOn | None:
    if not text.text:
        return None
    parts = text.text.split(":")
    if not parts[0] or len(parts) > 2 or _WHITESPACE.search(text.text):
        sink.emit(
            codes.BAD_DEPENDS_ON.at(
                text.whole(),
                f"`{text.text}` is not `topic` or `topic:job`",
                help="name the parent phase as `topic` (any of its jobs) or `topic:job`",
            )
        )
        return None
    job = parts[1] if len(parts) == 2 and parts[1] else None
    return DependsOn(span=text.whole(), topic=parts[0], job=job)


def _retry(retry: tuple[int, Span] | None, sink: Sink) -> int:
    if retry is None:
        return 0
    retries, span = retry
    if retries < 0:
        sink.emit(
            codes.NEGATIVE_RETRY.at(
                span,
                f"`retry = {retries}` behaves like 0",
                help="write `retry = 0` for no retries",
            )
        )
    return retries
