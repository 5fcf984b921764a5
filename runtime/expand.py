"""Tasks from a plan phase, exactly as the Go flowlord puts them on the wire (spec §10-§13, §15),
with the silent failures the spec names made visible or fixed.

Three entry points, one per way a task is born:

* `cron_tasks(phase, workflow_key, fire)`: a cron firing (§11.3): a plain cron task, or the
  batch of §12 when the rule has `for`, `meta` or `meta-file`.
* `child_tasks(phase, parent)`: a finished parent starts this child phase (§13.5).
* `file_tasks(phase, workflow_key, path)`: a file matched this phase's `files=` pattern (§15).

Each returns TaskSpecs (topic, job, info, meta, time, problems); ids and created times are the
dispatcher's. Where Go would fail (inconsistent meta lengths, a missing or bad meta-file) these
raise ExpandError with Go's message: Go only logs or alerts it and sends nothing.

Differences from Go, all deliberate (spec §20):

* Meta keys and values holding `&`, `=`, `+`, `%`, `#` or `;` are query-escaped instead of
  written raw (§20.33); other meta keeps Go's exact bytes. Each such value is a problem.
* Meta tokens that Go leaves literal (plain cron tasks, time-only batch tasks) render empty
  and are reported (§20.31); a zero task time keeps Go's literal time tokens and is reported.
* Child phases each get their own copy of the parent meta (§20.21: no sibling leak).
* A batch is truncated to the hour on the wall clock of the phase's zone, not on the UTC clock
  (§20.39: Go's absolute truncation is wrong for zones with non-hour offsets).
* A meta-file that yields no rows for a single instant raises ExpandError (Go: no task, no word).
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flowlord.compiler.ast import Batch, Duration, MetaFile, MetaSpec, Template
from flowlord.compiler.plan import PlanPhase

from .timefmt import (
    UTC,
    JsonRow,
    MetaSource,
    Rendered,
    RenderEnv,
    encode_plain,
    encode_sorted_unescaped,
    first_values,
    format_hour,
    go_add,
    go_add_date,
    meta_get,
    parse_query,
    path_time,
    render,
    render_text,
    set_pair,
    sorted_pairs,
    task_time,
    unsafe_meta,
    values_of,
)

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class TaskSpec:
    """A task to send, before the dispatcher gives it an id and a created time.

    `meta` holds the pairs in the order they are written in `meta_string`, the wire string.
    `job` is "" when the task has none (Go omits it). `time` is the task time the info was
    rendered from (Go's zero time, timefmt.ZERO_TIME, when there was none). `problems` are the
    silent failures Go would have sent without a word."""

    topic: str
    job: str
    info: str
    meta: tuple[tuple[str, str], ...]
    meta_string: str
    time: datetime
    problems: tuple[str, ...] = ()


class ExpandError(ValueError):
    """Go's error for a batch it refuses to build; Go sends none of its tasks."""


# --- shared pieces ---------------------------------------------------------------------------


def duration(value: Duration | None) -> timedelta:
    """A Go duration as a timedelta (to the microsecond, toward zero)."""
    if value is None:
        return timedelta(0)
    nanos = value.nanoseconds
    micros = abs(nanos) // 1000
    return timedelta(microseconds=micros if nanos >= 0 else -micros)


def is_batch(batch: Batch | None) -> bool:
    """Go's NewJob: a batch job when `for` is non-zero, or a meta-file or any meta is given."""
    if batch is None:
        return False
    return bool(
        (batch.for_ is not None and batch.for_.nanoseconds != 0)
        or batch.meta_file is not None
        or (batch.meta is not None and batch.meta.rows)
    )


def create_meta(values: Mapping[str, Sequence[str]]) -> list[dict[str, str]]:
    """Go's createMeta: index-aligned rows; every key must have as many values as the first."""
    rows: list[dict[str, str]] | None = None
    for key, items in values.items():
        if rows is None:
            rows = [{} for _ in items]
        if len(items) != len(rows):
            raise ExpandError(f"inconsistent lengths in meta {len(items)} != {len(rows)}")
        for row, item in zip(rows, items, strict=True):
            row[key] = item
    return rows or []


def _spec_rows(meta: MetaSpec | None) -> dict[str, list[str]]:
    return {row.key: list(row.values) for row in meta.rows} if meta is not None else {}


def _json_number(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ExpandError(f"json: cannot unmarshal number {text} into Go value of type float64")
    return value


def _no_constant(name: str) -> Any:
    raise ExpandError(f"invalid character '{name[0]}' looking for beginning of value")


_GO_JSON_KINDS = {str: "string", float: "number", bool: "bool", list: "array"}


def json_row(line: str) -> JsonRow:
    """One meta-file line as Go's `json.Unmarshal(line, &GetMap)`: numbers are float64, `null`
    is an empty row, anything but an object is an error."""
    try:
        value = json.loads(line, parse_int=_json_number, parse_float=_json_number,
                           parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        raise ExpandError(f"invalid JSON in meta-file line {line!r}: {error.msg}") from None
    if value is None:
        return JsonRow()
    if not isinstance(value, dict):
        kind = _GO_JSON_KINDS.get(type(value), type(value).__name__)
        raise ExpandError(f"json: cannot unmarshal {kind} into Go value of type tmpl.GetMap")
    return JsonRow(value)


def read_meta_file(meta_file: MetaFile | str, base_dir: str | os.PathLike | None = None) -> list[JsonRow]:
    """The rows of a meta-file (Go's glob reader): every file matching the path, relative to
    `base_dir` unless absolute, in name order, `.gz` decompressed; each non-empty line a JSON
    object."""
    path = meta_file.path if isinstance(meta_file, MetaFile) else meta_file
    full = path if base_dir is None or os.path.isabs(path) else os.path.join(base_dir, path)
    if glob.has_magic(full):
        files = sorted(f for f in glob.glob(full) if os.path.isfile(f))
    else:
        files = [full] if os.path.isfile(full) else []
    if not files:
        raise ExpandError(f'file "{path}" error no files found for {full}')
    rows: list[JsonRow] = []
    for name in files:
        opener: Callable[..., Any] = gzip.open if name.endswith(".gz") else open
        with opener(name, "rb") as handle:
            data = handle.read()
        for raw in data.split(b"\n"):
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if line:
                rows.append(json_row(line.decode("utf-8", errors="replace")))
    return rows


def _empty_meta_render(template: Template, t: datetime, env: RenderEnv | None, why: str) -> Rendered:
    """Meta tokens that Go leaves literal: rendered empty here, and said why."""
    rendered = render(template, t, {}, env=env)
    if not rendered.keys:
        return rendered
    tokens = ", ".join(dict.fromkeys(f"{{meta:{key}}}" for key in rendered.keys))
    problems = [p for p in rendered.problems if not p.startswith("meta key ")]
    problems.append(f"{tokens} rendered empty: {why} (Go sends the token literally)")
    return Rendered(rendered.text, rendered.keys, tuple(problems))


def _task(topic: str, job: str, rendered: Rendered, pairs: Sequence[tuple[str, str]],
          meta_string: str, t: datetime, extra: Iterable[str] = ()) -> TaskSpec:
    problems = list(extra) + list(rendered.problems) + unsafe_meta(pairs)
    return TaskSpec(
        topic=topic,
        job=job,
        info=rendered.text,
        meta=tuple(pairs),
        meta_string=meta_string,
        time=t,
        problems=tuple(dict.fromkeys(problems)),
    )


_STEPS: dict[str, Callable[[datetime], datetime]] = {
    "hour": lambda t: go_add(t, HOUR),
    "week": lambda t: go_add_date(t, days=7),
    "month": lambda t: go_add_date(t, months=1),
    "day": lambda t: go_add_date(t, days=1),
}


def batch_range(
    template: Template,
    topic: str,
    job: str,
    workflow_key: str,
    start: datetime,
    end: datetime,
    by: str,
    rows: Sequence[MetaSource],
    *,
    env: RenderEnv | None = None,
) -> list[TaskSpec]:
    """Go's `Batch.Range(start, end)` (§12): for t = start; t <= end (inclusive only when hit
    exactly); t = step(t), one task per row (or one time-only task), and the whole flat list
    reversed when end < start. Meta: `cron` = t's hour, `workflow`, `job`, and every key the
    template references with the row's value; sorted, Go's unescaped form."""
    step = _STEPS.get(by.lower(), _STEPS["day"])
    # Instants compare in UTC: within one zone Python compares wall clocks, ignoring DST folds.
    reverse = end.astimezone(UTC) < start.astimezone(UTC)
    if reverse:
        start, end = end, start
    last = end.astimezone(UTC)
    tasks: list[TaskSpec] = []
    t = start
    while t.astimezone(UTC) <= last:
        base = [("cron", format_hour(t))]
        if workflow_key:
            base.append(("workflow", workflow_key))
        if job:
            base.append(("job", job))
        if rows:
            for row in rows:
                rendered = render(template, t, row, env=env)
                pairs = base
                for key in rendered.keys:
                    pairs = set_pair(pairs, key, _row_value(row, key))
                ordered = sorted_pairs(pairs)
                tasks.append(_task(topic, job, rendered, ordered,
                                   encode_sorted_unescaped(ordered), t))
        else:
            rendered = _empty_meta_render(template, t, env, "a batch without meta rows fills no meta")
            ordered = sorted_pairs(base)
            tasks.append(_task(topic, job, rendered, ordered, encode_sorted_unescaped(ordered), t))
        t = step(t)
    if reverse:
        tasks.reverse()
    return tasks


def _row_value(row: MetaSource, key: str) -> str:
    return meta_get(row, key)[0]


# --- cron ------------------------------------------------------------------------------------


def cron_tasks(
    phase: PlanPhase,
    workflow_key: str,
    fire: datetime,
    *,
    base_dir: str | os.PathLike | None = None,
    env: RenderEnv | None = None,
) -> list[TaskSpec]:
    """The tasks of one cron firing at `fire` (an aware instant), in the phase's zone.

    Plain job: t = fire + offset, not truncated; meta `workflow=<key>&cron=<t's hour>` plus
    `&job=<job>`, concatenated. Batch job: t = (fire + offset) truncated to the hour, then
    `batch_range(t, t + for)` with the rule's meta rows, or the meta-file's rows read relative to
    `base_dir`. Raises ExpandError where Go refuses the batch."""
    if fire.tzinfo is None:
        raise ValueError("cron_tasks needs an aware fire time")
    t = go_add(fire.astimezone(ZoneInfo(phase.timezone)), duration(phase.offset))
    job = phase.job or ""
    batch = phase.batch
    if is_batch(batch):
        assert batch is not None
        if batch.meta is not None and batch.meta.rows and batch.meta_file is not None:
            raise ExpandError("meta_file and meta can not be used at the same time")
        start = t.replace(minute=0, second=0, microsecond=0)
        end = go_add(start, duration(batch.for_))
        rows: list[MetaSource] = list(create_meta(_spec_rows(batch.meta)))
        if batch.meta_file is not None:
            rows.extend(read_meta_file(batch.meta_file, base_dir))
            if not rows and start.astimezone(UTC) == end.astimezone(UTC):
                raise ExpandError(
                    f'meta-file "{batch.meta_file.path}" has no rows: no tasks '
                    "(Go sends nothing and says nothing)"
                )
        return batch_range(phase.template, phase.topic, job, workflow_key, start, end, batch.by,
                           rows, env=env)
    rendered = _empty_meta_render(phase.template, t, env, "a plain cron task has no meta")
    pairs = [("workflow", workflow_key), ("cron", format_hour(t))]
    if job:
        pairs.append(("job", job))
    return [_task(phase.topic, job, rendered, pairs, encode_plain(pairs), t)]


# --- children --------------------------------------------------------------------------------


def _field(task: Any, name: str) -> Any:
    if isinstance(task, Mapping):
        return task.get(name)
    return getattr(task, name, None)


def parent_meta(parent: Any) -> tuple[list[tuple[str, str]], list[str]]:
    """A parent task's meta as pairs, and the parse problems Go ignores. The parent is a
    TaskSpec, a wire task (object or dict with `meta`/`info`/`job`); its meta a string (parsed
    like Go's `url.ParseQuery`), a mapping, or pairs."""
    meta = _field(parent, "meta")
    if meta is None:
        return [], []
    if isinstance(meta, str):
        return parse_query(meta)
    if isinstance(meta, Mapping):
        pairs = []
        for key, value in meta.items():
            for item in (value if isinstance(value, (list, tuple)) else [value]):
                pairs.append((str(key), str(item)))
        return pairs, []
    return [(str(k), str(v)) for k, v in meta], []


def require_met(phase: PlanPhase, meta: Mapping[str, Sequence[str]]) -> bool:
    """§6.2 `require`: every `{meta:KEY}` it names has a non-empty value in the parent's meta."""
    if phase.require is None:
        return True
    first = {key: values[0] for key, values in meta.items() if values}
    return all(first.get(key) for key in phase.require.keys)


@lru_cache(maxsize=4096)
def _overrides(rule: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """Go's capitalised rule keys `Task=`, `Job=`, `Template=` of a rule (the first of each)."""
    found: dict[str, str] = {}
    for key, value in rule:
        if key in ("Task", "Job", "Template"):
            found.setdefault(key, value)
    return found


class ParentContext:
    """What `child_tasks` reads of a parent, worked out once for all its child phases: its meta
    pairs and the problems of parsing them, as url.Values and as first values, its task time;
    and, as the children ask, the meta rows of a child without `meta=` rows of its own and the
    meta of each child job. Pass it to `child_tasks` in place of the parent."""

    __slots__ = ("pairs", "problems", "values", "first", "info", "_time", "_rows", "_metas")

    def __init__(self, parent: Any, pairs: list[tuple[str, str]] | None = None) -> None:
        """`pairs`: the parent's meta already parsed (string keys and values), if it was."""
        if pairs is None:
            pairs, problems = parent_meta(parent)
        else:
            problems = []
        self.pairs = pairs
        self.problems = tuple(problems)
        self.values = values_of(pairs)
        self.first = first_values(pairs)
        self.info = _field(parent, "info") or ""
        self._time: datetime | None = None
        self._rows: list[dict[str, str]] | str | None = None
        self._metas: dict[str, tuple[tuple[tuple[str, str], ...], str, tuple[str, ...]]] = {}

    @property
    def time(self) -> datetime:
        """Go's TaskTime of the parent (its meta `cron`, else its info)."""
        if self._time is None:
            self._time = task_time(self.values, self.info)
        return self._time

    def rows(self) -> list[dict[str, str]]:
        """create_meta of the parent's meta alone (raises its ExpandError, each time)."""
        rows = self._rows
        if rows is None:
            try:
                rows = create_meta(self.values)
            except ExpandError as error:
                rows = str(error)
            self._rows = rows
        if isinstance(rows, str):
            raise ExpandError(rows)
        return rows

    def meta(self, job: str) -> tuple[tuple[tuple[str, str], ...], str, tuple[str, ...]]:
        """A child's meta: `workflow=<parent workflow>`, `cron=<parent cron>` when the parent
        had one, `job=<child job>`; as pairs, as the wire string, and its problems along with
        the parent's."""
        found = self._metas.get(job)
        if found is None:
            first = self.first
            meta, meta_string, unsafe = _child_meta(first.get("workflow", ""),
                                                    first.get("cron") or "", job)
            found = (meta, meta_string, (*self.problems, *unsafe) if self.problems else unsafe)
            self._metas[job] = found
        return found


@lru_cache(maxsize=4096)
def _child_meta(workflow: str, cron: str, job: str
                ) -> tuple[tuple[tuple[str, str], ...], str, tuple[str, ...]]:
    """A child's meta pairs, wire string and problems (children of one hour share them)."""
    meta = [("workflow", workflow)]
    if cron:
        meta.append(("cron", cron))
    if job:
        meta.append(("job", job))
    return tuple(meta), encode_plain(meta), tuple(unsafe_meta(meta))


def child_tasks(
    phase: PlanPhase,
    parent: Any,
    *,
    base_dir: str | os.PathLike | None = None,
    env: RenderEnv | None = None,
) -> list[TaskSpec]:
    """The tasks a finished `parent` starts for the child `phase` (§13.5); [] when `require`
    is not met by the parent's meta. `parent` may be a ParentContext, to share the work on the
    parent between its child phases.

    Time = task_time(parent meta, parent info). The rows come from a copy of the parent's meta
    (each key's values) with the child's `meta=` rows merged in (replacing keys), then the
    meta-file's rows appended, as in Go; so the child template can use any parent meta value.
    Meta is replaced by `workflow=<parent workflow>`, `&cron=<parent cron>` when the parent had
    one, and `&job=<child job>`, concatenated. Go's capitalised rule keys `Task=`, `Job=` and
    `Template=` override the child's topic, job and template (`Workflow=` changes nothing on the
    wire). Raises ExpandError where Go logs "error creating child tasks" and sends none."""
    context = parent if isinstance(parent, ParentContext) else ParentContext(parent)
    return [TaskSpec(topic, job, info, meta, meta_string, t, problems)
            for topic, job, info, meta, meta_string, t, problems
            in child_task_fields(phase, context, base_dir=base_dir, env=env)]


def child_task_fields(
    phase: PlanPhase,
    context: ParentContext,
    *,
    base_dir: str | os.PathLike | None = None,
    env: RenderEnv | None = None,
) -> list[tuple[str, str, str, tuple[tuple[str, str], ...], str, datetime, tuple[str, ...]]]:
    """`child_tasks` as tuples of the TaskSpec fields, in their order (the dispatcher's hot
    path, which makes wire tasks of them at once)."""
    if not require_met(phase, context.values):
        return []
    t = context.time

    batch = phase.batch
    own = _spec_rows(batch.meta) if batch is not None else {}
    if own:
        merged = {key: list(items) for key, items in context.values.items()}  # a copy per child
        merged.update(own)
        rows: list[MetaSource] = list(create_meta(merged))
    else:
        rows = list(context.rows())
    if batch is not None and batch.meta_file is not None:
        rows.extend(read_meta_file(batch.meta_file, base_dir))
        if not rows:
            raise ExpandError(
                f'meta-file "{batch.meta_file.path}" has no rows: no tasks '
                "(Go sends nothing and says nothing)"
            )

    overrides = _overrides(phase.rule)
    topic = overrides.get("Task") or phase.topic
    job = overrides.get("Job") or phase.job or ""
    template_text = overrides.get("Template")
    meta, meta_string, problems = context.meta(job)

    tasks = []
    for row in rows or [None]:
        if template_text is not None:
            rendered = render_text(template_text, t, row if row is not None else {}, env=env)
        elif row is None:
            rendered = _empty_meta_render(phase.template, t, env, "the parent task has no meta")
        else:
            rendered = render(phase.template, t, row, env=env)
        if rendered.problems or problems:
            found = tuple(dict.fromkeys((*problems[:len(context.problems)], *rendered.problems,
                                         *problems[len(context.problems):])))
        else:
            found = ()
        tasks.append((topic, job, rendered.text, meta, meta_string, t, found))
    return tasks


# --- files -----------------------------------------------------------------------------------


def go_base(path: str) -> str:
    """Go's `filepath.Base` on a Unix system."""
    if path == "":
        return "."
    path = path.rstrip("/")
    if path == "":
        return "/"
    return path.rsplit("/", 1)[-1]


def file_tasks(
    phase: PlanPhase,
    workflow_key: str,
    path: str,
    *,
    env: RenderEnv | None = None,
) -> list[TaskSpec]:
    """The task a file at `path` starts for a phase whose `files=` pattern matched it (§15):
    time = path_time(path); meta = every rule pair as written, then `file`, `filename` and
    `workflow` set; no `cron`. The template's meta tokens read that meta (first values)."""
    t = path_time(path)
    pairs: list[tuple[str, str]] = list(phase.rule)
    pairs = set_pair(pairs, "file", path)
    pairs = set_pair(pairs, "filename", go_base(path))
    pairs = set_pair(pairs, "workflow", workflow_key)
    rendered = render(phase.template, t, values_of(pairs), env=env)
    ordered = sorted_pairs(pairs)
    return [_task(phase.topic, phase.job or "", rendered, ordered,
                  encode_sorted_unescaped(ordered), t)]


__all__ = [
    "TaskSpec", "ExpandError", "cron_tasks", "child_tasks", "file_tasks", "batch_range",
    "create_meta", "read_meta_file", "json_row", "require_met", "parent_meta", "is_batch",
    "duration", "go_base", "ParentContext",
]  # fmt: skip
