"""Checks that need more than one part of a phase, or more than one phase.

What each phase can receive at run time (Go, spec §10-§15): a plain cron task fills no meta
token; a batch fills the keys of its meta rows (a meta-file's keys are unknown here); a file
task gets `file`, `filename`, `workflow` and every rule key. Children get their parent's meta;
that flow needs the phase graph and is checked there.
"""

from __future__ import annotations

import re

from . import codes
from .ast import CronTrigger, FileTrigger, MetaRef, Phase, TimeField, Workflow
from .diagnostics import Label, Sink
from .source import Span

# A file task's time comes from its path (Go PathTime); these shapes are what it looks for.
_PATH_DATE = re.compile(r"\d{8}T\d{6}|\d{4}/\d{2}|\d{4}-\d{2}-\d{2}")
_GLOB_CHARS = re.compile(r"[*?\[]")


def check_phase(phase: Phase, sink: Sink) -> None:
    rule = phase.rule
    has_cron = any(isinstance(t, CronTrigger) for t in rule.triggers)
    files = [t for t in rule.triggers if isinstance(t, FileTrigger)]
    batch = rule.batch
    if batch is not None and not has_cron:
        for pair in rule.pairs:
            if pair.key in ("for", "by"):
                sink.emit(
                    codes.BATCH_WITHOUT_CRON.at(
                        pair.key_span,
                        f"`{pair.key}` is used only by cron phases; Go ignores it here",
                        help="add a `cron=` schedule or remove it",
                    )
                )
    elif batch is not None and batch.for_ is None and batch.meta is None and batch.meta_file is None:
        by = next(p for p in rule.pairs if p.key == "by")
        sink.emit(
            codes.BATCH_WITHOUT_CRON.at(
                by.key_span,
                "`by` without `for`, `meta` or `meta-file` is ignored: the phase sends one task",
                help="add `for=-24h` (say) to send one task per step",
            )
        )
    if phase.depends_on is None:
        _root_meta_refs(phase, has_cron, bool(files), sink)
        for trigger in files:
            _file_time(phase, trigger, sink)


def _root_meta_refs(phase: Phase, has_cron: bool, has_files: bool, sink: Sink) -> None:
    rule = phase.rule
    provided: set[str] | None = set()
    if has_files:
        provided |= {"file", "filename", "workflow"} | {p.key for p in rule.pairs}
    if has_cron and rule.batch is not None:
        if rule.batch.meta_file is not None:
            provided = None  # the file's keys are only known at run time
        elif rule.batch.meta is not None:
            provided |= {row.key for row in rule.batch.meta.rows}
    if provided is None or not (has_cron or has_files):
        return
    for part in phase.template.parts:
        if isinstance(part, MetaRef) and part.key not in provided:
            if has_cron and rule.batch is None and not has_files:
                why = "a cron phase without `meta` or `meta-file` fills no meta token"
                help = f"add `meta={part.key}:…` to the rule, or use a time token"
            else:
                why = "nothing this phase's trigger provides has that key"
                known = ", ".join(f"`{k}`" for k in sorted(provided)) or "none"
                help = f"keys available here: {known}"
            sink.emit(
                codes.META_KEY_UNAVAILABLE.at(
                    part.span, f"`{{meta:{part.key}}}` is never filled: {why}", help=help
                )
            )


def _file_time(phase: Phase, trigger: FileTrigger, sink: Sink) -> None:
    if _GLOB_CHARS.search(trigger.pattern) or _PATH_DATE.search(trigger.pattern):
        return
    tokens = [part for part in phase.template.parts if isinstance(part, TimeField)]
    if not tokens:
        return
    written = ", ".join(f"`{part.written}`" for part in tokens)
    sink.emit(
        codes.TIME_WITHOUT_TIME.at(
            tokens[0].span,
            f"{written} {'needs' if len(tokens) == 1 else 'need'} a time, but files matching `{trigger.pattern}` carry no date",
            help="Go then sends the whole template unrendered; match dated paths such as "
            "`/data/*/orders.csv` (for /data/2024-01-15/orders.csv), or drop the time tokens",
            secondary=(Label(trigger.span, "the file trigger"),),
        )
    )


def check_duplicates(workflow: Workflow, sink: Sink) -> list[Phase]:
    """The same topic:job twice in one workflow (an error); returns each name's first phase."""
    seen: dict[str, Phase] = {}
    for phase in workflow.phases:
        first = seen.get(phase.name)
        if first is None:
            seen[phase.name] = phase
            continue
        sink.emit(
            codes.DUPLICATE_PHASE.at(
                phase.task.span,
                f"`{phase.name}` is defined twice in this workflow: Go schedules and starts it twice",
                help="give each phase its own job, e.g. `task = \"topic:job2\"`",
                secondary=(Label(first.task.span, "first defined here"),),
            )
        )
    return list(seen.values())


def check_duplicates_across(phases: list[tuple[str, Span]], sink: Sink) -> None:
    """The same topic:job in several workflow files (a warning): `phases` holds each file's
    distinct names with their task spans, files in order."""
    first: dict[str, Span] = {}
    for name, span in phases:
        other = first.setdefault(name, span)
        if other is span:
            continue
        sink.emit(
            codes.DUPLICATE_PHASE_FILES.at(
                span,
                f"`{name}` is also defined in `{other.path}`",
                help="the Go flowlord applies the first file's retry, retry_delay and no_alert to both; give one of them another job",
                secondary=(Label(other, "also defined here"),),
            )
        )
