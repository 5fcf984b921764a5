"""Backload: the tasks of a phase over a time range, as the Go flowlord's `POST /backload`
builds them (spec §12.1, upstream-dashboard-api §2.3), without its silent failures.

    request = parse_request(json_body)          # BackloadError(400 message) when it is wrong
    result = plan_backload(plan, request, now=..., base_dir=..., limit=1000)
    result.tasks                                 # Task objects, ids and created set

The request fields are Go's, matched case-insensitively: `Task`, `Job`, `Template`, `Workflow`,
`By`, `At`, `From`, `To`, `meta` (an object of strings or of string lists), `meta-file`,
`Execute`. The tasks are Go's `Batch.Range(from, to)` (runtime/expand.batch_range): one task per
step and meta row, meta `cron`, `workflow`, `job` and the template's meta keys.

Kept from Go: only `From` or only `To` is a single instant; `At` wins over a range (said in the
status); no time at all is now (truncated to the hour, so a preview and its execution a second
later give the same tasks); a backwards range is stepped forwards and reversed; the phase's
`meta`/`meta-file` are the defaults when the request gives neither; both is an error.

Fixed (each is a BackloadError, a 400):
* a time that does not parse (Go: silently now); a `By` other than hour(ly), day/daily,
  week(ly), month(ly) (Go: silently day);
* the phase is the request's: `Task[:Job]`, in `Workflow` when given (Go takes the first match
  in any file and then replaces the request's template and workflow with its own without a
  word); a `Template` or `Workflow` that disagrees with the phase found is refused, not
  overridden; a task that is no phase is refused (Go publishes any topic with any template);
* a `meta-file` other than the phase's own must lie inside `base_dir` (Go reads any path with
  the server's credentials);
* more than `limit` tasks (Go: unbounded; 200 years by hour is 1.7 M tasks in memory).
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flowlord.compiler.plan import Plan, PlanPhase, PlanWorkflow

from .expand import ExpandError, TaskSpec, batch_range, create_meta, read_meta_file
from .task import Task, format_time, parse_time

__all__ = ["DEFAULT_LIMIT", "BackloadError", "BackloadRequest", "Backload", "parse_request",
           "plan_backload"]

UTC = timezone.utc
DEFAULT_LIMIT = 1000
_STEPS = {"hour": "hour", "hourly": "hour", "day": "day", "daily": "day", "week": "week",
          "weekly": "week", "month": "month", "monthly": "month"}
_FIELDS = {"task": "task", "job": "job", "template": "template", "workflow": "workflow",
           "by": "by", "at": "at", "from": "from_", "to": "to", "meta": "meta",
           "meta-file": "meta_file", "meta_file": "meta_file", "metafile": "meta_file",
           "execute": "execute"}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_HOUR = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}\Z")


class BackloadError(ValueError):
    """A request that cannot be run as given; the message says why (an HTTP 400)."""


@dataclass(frozen=True)
class BackloadRequest:
    task: str
    job: str = ""
    template: str = ""
    workflow: str = ""
    by: str = ""
    at: datetime | None = None
    from_: datetime | None = None
    to: datetime | None = None
    meta: dict[str, list[str]] | None = None
    meta_file: str = ""
    execute: bool = False


@dataclass
class Backload:
    """What a request makes: the phase, the tasks, the notes for the status line."""

    workflow: str
    phase: PlanPhase
    start: datetime
    end: datetime
    by: str
    tasks: list[Task] = field(default_factory=list)
    specs: list[TaskSpec] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def status(self, executed: bool) -> str:
        return ("Executed: " if executed else "DRY RUN ONLY: ") + ", ".join(self.notes)


def parse_time_value(name: str, text: str) -> datetime:
    """`YYYY-MM-DD`, `YYYY-MM-DDTHH` or RFC 3339, as UTC."""
    text = text.strip()
    try:
        if _DAY.match(text):
            return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        if _HOUR.match(text):
            return datetime.strptime(text, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        return parse_time(text)
    except ValueError:
        raise BackloadError(f"{name}: {text!r} is not a time: write YYYY-MM-DD, YYYY-MM-DDTHH "
                            "or an RFC 3339 time such as 2024-01-15T05:00:00Z") from None


def _string(name: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise BackloadError(f"{name}: expected a string, got {type(value).__name__}")
    return value.strip()


def _meta(value: Any) -> dict[str, list[str]] | None:
    """Go accepts an object of strings or an object of string lists, not a mix."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BackloadError("meta: expected an object such as {\"key\": [\"a\", \"b\"]}")
    kinds = {isinstance(v, list) for v in value.values()}
    if len(kinds) > 1:
        raise BackloadError("meta: give every key a string or every key a list, not a mix")
    meta: dict[str, list[str]] = {}
    for key, items in value.items():
        items = items if isinstance(items, list) else [items]
        if not all(isinstance(item, str) for item in items):
            raise BackloadError(f"meta: the values of {key!r} must be strings")
        meta[str(key)] = list(items)
    return meta or None


def parse_request(body: Any) -> BackloadRequest:
    """A decoded JSON body as a request; field names match case-insensitively, as in Go."""
    if not isinstance(body, Mapping):
        raise BackloadError("the body must be a JSON object")
    values: dict[str, Any] = {}
    for key, value in body.items():
        name = _FIELDS.get(str(key).casefold())
        if name is None:
            raise BackloadError(f"unknown field {key!r}: use Task, Job, Template, Workflow, By, "
                                "At, From, To, meta, meta-file or Execute")
        values[name] = value
    execute = values.get("execute", False)
    if not isinstance(execute, bool):
        raise BackloadError("Execute: expected true or false")
    times = {}
    for name, label in (("at", "At"), ("from_", "From"), ("to", "To")):
        text = _string(label, values.get(name))
        times[name] = parse_time_value(label, text) if text else None
    task = _string("Task", values.get("task"))
    if not task:
        raise BackloadError("Task is required: the topic of the phase to backload")
    return BackloadRequest(
        task=task, job=_string("Job", values.get("job")),
        template=_string("Template", values.get("template")),
        workflow=_string("Workflow", values.get("workflow")),
        by=_string("By", values.get("by")).lower(), meta=_meta(values.get("meta")),
        meta_file=_string("meta-file", values.get("meta_file")), execute=execute, **times,
    )


def find_phase(plan: Plan, task: str, job: str, workflow: str) -> tuple[PlanWorkflow, PlanPhase]:
    """The phase `task[:job]`, in `workflow` when given, else in the first workflow (by key)
    that has it."""
    if ":" in task and not job:
        task, job = task.split(":", 1)
    wanted = f"{task}:{job}" if job else task
    workflows = sorted(plan.workflows, key=lambda w: w.key)
    if workflow:
        workflows = [w for w in workflows if w.key == workflow]
        if not workflows:
            raise BackloadError(f"Workflow: no workflow file {workflow!r} is loaded")
    for candidate in workflows:
        for phase in candidate.phases:
            if phase.id == wanted:
                return candidate, phase
    elsewhere = sorted(w.key for w in plan.workflows if any(p.id == wanted for p in w.phases))
    if elsewhere:
        raise BackloadError(f"{wanted} is not a phase of {workflow}; it is in {', '.join(elsewhere)}")
    jobs = sorted(p.id for w in plan.workflows for p in w.phases if p.topic == task)
    hint = f": did you mean {' or '.join(jobs)}?" if jobs else ""
    raise BackloadError(f"no phase {wanted} in the workflows{hint}")


def _range(request: BackloadRequest, now: datetime, notes: list[str]) -> tuple[datetime, datetime]:
    if request.at is not None:
        if request.from_ is not None or request.to is not None:
            notes.append("At given: From and To ignored")
        return request.at, request.at
    if request.from_ is None and request.to is None:
        notes.append("no time provided: using the current hour")
        hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        return hour, hour
    if request.from_ is None:
        notes.append("from value not set")
        return request.to, request.to
    if request.to is None:
        notes.append("to value not set")
        return request.from_, request.from_
    return request.from_, request.to


def _steps(start: datetime, end: datetime, by: str) -> int:
    """How many times Batch.Range steps from start to end (an upper bound for months)."""
    low, high = sorted((start, end))
    if by == "hour":
        return int((high - low) / timedelta(hours=1)) + 1
    if by == "day":
        return (high - low).days + 1
    if by == "week":
        return (high - low).days // 7 + 1
    return (high.year - low.year) * 12 + high.month - low.month + 1


def _inside(path: str, root: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _rows(request: BackloadRequest, phase: PlanPhase, base_dir: str | None,
          notes: list[str]) -> tuple[list, str]:
    batch = phase.batch
    own_file = batch.meta_file.path if batch is not None and batch.meta_file is not None else ""
    if request.meta is not None and request.meta_file:
        raise BackloadError("Unsupported: meta and meta-file both used, use one only")
    meta, meta_file = request.meta, request.meta_file
    if meta is None and not meta_file:
        if batch is not None and batch.meta is not None and batch.meta.rows:
            meta = {row.key: list(row.values) for row in batch.meta.rows}
        meta_file = own_file
    if meta_file and meta_file != own_file:
        full = meta_file if base_dir is None or os.path.isabs(meta_file) else \
            os.path.join(base_dir, meta_file)
        if base_dir is None or not _inside(os.path.dirname(full) or ".", base_dir):
            raise BackloadError(f"meta-file {meta_file!r} is not the phase's own and not inside "
                                "the workflow folder: only those are read")
    try:
        rows: list = list(create_meta(meta)) if meta else []
        if meta_file:
            rows.extend(read_meta_file(meta_file, base_dir))
            notes.append(f"meta-file {meta_file}: {len(rows)} rows")
    except ExpandError as error:
        raise BackloadError(str(error)) from None
    except OSError as error:
        raise BackloadError(f"meta-file {meta_file!r}: {error.strerror or error}") from None
    return rows, meta_file


def plan_backload(plan: Plan, request: BackloadRequest, *, now: datetime,
                  base_dir: str | None = None, limit: int = DEFAULT_LIMIT,
                  new_id: Callable[[], str] | None = None) -> Backload:
    """The tasks of a request (none sent). Raises BackloadError."""
    workflow, phase = find_phase(plan, request.task, request.job, request.workflow)
    notes = [f"phase found in {workflow.key}"]
    if request.template and request.template != phase.template.text:
        raise BackloadError(f"Template differs from the template of {phase.id} in {workflow.key} "
                            f"({phase.template.text!r}): leave it out to use the phase's")
    by = _STEPS.get(request.by or "day")
    if by is None:
        raise BackloadError(f"By: {request.by!r} is not hour, day, week or month")
    if not request.by:
        notes.append("using default day iterator")
    start, end = _range(request, now, notes)
    rows, meta_file = _rows(request, phase, base_dir, notes)
    if meta_file and not rows:  # Go: none for one instant, time-only tasks for a range
        notes.append("the meta-file has no rows: no tasks")
        return Backload(workflow.key, phase, start, end, by, notes=notes)
    count = _steps(start, end, by) * max(1, len(rows))
    if count > limit:
        raise BackloadError(f"this backload makes {count} tasks, more than the limit of {limit}: "
                            "narrow the range, step by a longer period, or backload in parts")
    specs = batch_range(phase.template, phase.topic, phase.job or "", workflow.key, start, end,
                        by, rows)
    if len(specs) > limit:  # months: the estimate is a bound, this is exact
        raise BackloadError(f"this backload makes {len(specs)} tasks, more than the limit of {limit}")
    created = format_time(now)
    make_id = new_id or (lambda: str(uuid.uuid4()))
    tasks = [Task(type=s.topic, job=s.job, info=s.info, created=created, id=make_id(),
                  meta=s.meta_string) for s in specs]
    return Backload(workflow.key, phase, start, end, by, tasks, specs, notes)
