"""What flowlord does about one event: a cron firing, a done message, a file message.

Each `Dispatcher` method returns `Effects` — tasks to send, retries to keep, alerts, rejections —
and touches neither the bus nor the store's writes; the engine applies them (engine.py), so the
same decisions serve `serve` and `simulate`. The rules are the Go flowlord's (spec §11.3, §13,
§15), with its silent failures fixed (§20):

* done `complete`: every child phase of the task's phase (PlanPhase.children, in order) gets
  expand.child_tasks (require checked, batch expanded, each phase its own copy of the parent
  meta); the children keep the parent's id. A phase whose tasks cannot be built is alerted and
  the others go on (Go: logged; §20.21).
* done `error`: retried while the phase's `retry` count is above the attempt (meta `retry`; a
  non-number is not 0 as in Go (§20.29) but the engine's own count of the task's attempts), after
  `retry_delay` (default 1s) plus a uniform jitter in [0, 40%) of it when the rule sets
  `retry_delay`, with meta `retry=N` (and `delayed=<go-tools PrintDuration>` when `retry_delay`
  is set), the same id, a new created, the phase's job, meta sorted and escaped. Exhausted: a
  copy with `retry=failed&retried=N` to the failed topic (unless disabled) and an alert unless
  `no_alert`.
* done `alert`: an alert (Go only posts to Slack and logs "unknown result"; §20.30). `warn`:
  recorded only. Anything else: rejected.
* The phase is looked up in the task's own workflow (meta `workflow`), by `type` and job (the
  task's job, else meta `job`): not Go's first-match across every file (§21.1). Not found:
  rejected, and alerted for an error result (Go: only logged; §20.20).
* A task whose expansion reports problems (unrendered tokens, escaped meta) is sent and alerted.
"""

from __future__ import annotations

import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable
from zoneinfo import ZoneInfo

from flowlord.compiler.plan import Plan, PlanPhase, PlanWorkflow

from .expand import ExpandError, ParentContext, TaskSpec, child_task_fields, cron_tasks, file_tasks
from .task import (
    ALERT,
    COMPLETE,
    ERROR,
    WARN,
    Meta,
    Task,
    encode_sorted_escaped,
    format_time,
    parse_meta,
)
from .timefmt import RenderEnv

__all__ = [
    "DEFAULT_RETRY_DELAY",
    "AlertEffect",
    "Dispatcher",
    "Effects",
    "PlanIndex",
    "RejectEffect",
    "RetryEffect",
    "SendEffect",
    "go_print_duration",
]

DEFAULT_RETRY_DELAY = timedelta(seconds=1)
JITTER_PERCENT = 40
_GO_INT = re.compile(r"[+-]?[0-9]+\Z")


# --- effects --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendEffect:
    topic: str
    task: Task
    workflow: str = ""
    phase: str = ""
    attempt: int = 0


@dataclass(frozen=True)
class RetryEffect:
    task: Task
    due: datetime
    attempt: int
    workflow: str = ""
    phase: str = ""
    topic: str = ""


@dataclass(frozen=True)
class AlertEffect:
    task: Task
    workflow: str = ""
    phase: str = ""
    msg: str | None = None  # default: the task's msg
    result: str | None = None  # default: the task's result


@dataclass(frozen=True)
class RejectEffect:
    reason: str  # a short slug: not-json, unknown-result, phase-not-found, …
    detail: str = ""


@dataclass
class Effects:
    """What one event leads to. `record` is the done message's (workflow, phase, attempt)."""

    sends: list[SendEffect] = field(default_factory=list)
    retries: list[RetryEffect] = field(default_factory=list)
    alerts: list[AlertEffect] = field(default_factory=list)
    rejects: list[RejectEffect] = field(default_factory=list)
    record: tuple[str, str, int] = ("", "", 0)
    notes: list[str] = field(default_factory=list)  # for the log


# --- the plan, indexed ------------------------------------------------------------------------


class PlanIndex:
    """A plan's phases by workflow key and id, its cron phases and its file phases, in plan
    order. `timezone` overrides the plan's zone for cron specs without `TZ=`."""

    def __init__(self, plan: Plan, timezone: str | None = None) -> None:
        self.plan = plan
        self.workflows: dict[str, tuple[PlanWorkflow, dict[str, PlanPhase]]] = {}
        self.cron: list[tuple[str, PlanPhase]] = []
        self.files: list[tuple[str, PlanPhase]] = []
        override = timezone if timezone and timezone != plan.timezone else None
        if override is not None:
            ZoneInfo(override)  # an unknown zone fails here, not at the first fire
        for workflow in plan.workflows:
            phases: dict[str, PlanPhase] = {}
            for phase in workflow.phases:
                if override is not None and phase.cron is not None and not phase.cron.timezone:
                    phase = phase.model_copy(update={"timezone": override})
                phases.setdefault(phase.id, phase)
                if phase.cron is not None:
                    self.cron.append((workflow.key, phase))
                if phase.files:
                    self.files.append((workflow.key, phase))
            self.workflows.setdefault(workflow.key, (workflow, phases))

    def phase(self, workflow: str, phase_id: str) -> PlanPhase | None:
        found = self.workflows.get(workflow)
        return found[1].get(phase_id) if found else None


def phase_id(topic: str, job: str) -> str:
    return f"{topic}:{job}" if job else topic


# --- go-tools PrintDuration -----------------------------------------------------------------

_NS = 1
_US = 1000
_MS = 1000 * _US
_S = 1000 * _MS
_MIN = 60 * _S
_H = 60 * _MIN
_DAY = 24 * _H
_YEAR = 365 * _DAY


def _f_duration(nanos: int, precision: int) -> str:
    i = nanos // (precision // 100)  # hundredths, truncated
    text = str(i // 100)
    i %= 100
    if i == 0:
        return text
    text += "." + str(i // 10)
    i %= 10
    return text if i == 0 else text + str(i)


def go_print_duration(nanos: int) -> str:
    """jbsmith7741/go-tools PrintDuration: `0s`, `12.34ms`, `35.5s`, `1m30s`, `1d1h`; at most
    two decimals, truncated."""
    if nanos == 0:
        return "0s"
    sign = ""
    if nanos < 0:
        sign, nanos = "-", -nanos
    if nanos < _US:
        return f"{sign}{nanos}ns"
    if nanos < _MS:
        return sign + _f_duration(nanos, _US) + "µs"
    if nanos < _S:
        return sign + _f_duration(nanos, _MS) + "ms"
    text = sign
    for unit, suffix in ((_YEAR, "y"), (_DAY, "d"), (_H, "h"), (_MIN, "m")):
        count = nanos // unit
        if count:
            nanos -= count * unit
            text += f"{count}{suffix}"
    seconds = _f_duration(nanos, _S) + "s"
    return text + seconds if seconds != "0s" else text


# --- the dispatcher ---------------------------------------------------------------------------


def _truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond - moment.microsecond % 1000)


def random_id() -> str:
    return str(uuid.uuid4())


class Dispatcher:
    def __init__(self, index: PlanIndex, *, failed_topic: str = "retry-failed",
                 base_dir: str | None = None, rng: random.Random | None = None,
                 no_jitter: bool = False, new_id: Callable[[], str] | None = None,
                 env: RenderEnv | None = None,
                 attempts: Callable[[Task], int] | None = None) -> None:
        self.index = index
        self.failed_topic = "" if failed_topic in ("", "-") else failed_topic
        self.base_dir = base_dir
        self.rng = rng if rng is not None else random.Random()
        self.no_jitter = no_jitter
        self.new_id = new_id or random_id
        self.env = env
        self.attempts = attempts or (lambda task: 0)

    # --- cron -------------------------------------------------------------------------------

    def cron(self, workflow: str, phase: PlanPhase, fire: datetime, now: datetime) -> Effects:
        """The tasks of `phase` firing at `fire` (a fire time; `now` stamps `created`)."""
        effects = Effects()
        try:
            specs = cron_tasks(phase, workflow, fire, base_dir=self.base_dir, env=self.env)
        except ExpandError as error:
            effects.alerts.append(self._build_error(workflow, phase, now, f"cron {_iso(fire)}: {error}"))
            effects.notes.append(f"{workflow} {phase.id}: no tasks at {_iso(fire)}: {error}")
            return effects
        for spec in specs:
            task = Task(type=spec.topic, job=spec.job, info=spec.info, created=format_time(now),
                        id=self.new_id(), meta=spec.meta_string)
            self._send(effects, task, spec, workflow, phase.id)
        return effects

    # --- files ------------------------------------------------------------------------------

    def file(self, path: str, now: datetime, match: Callable[[str, str], bool]) -> Effects:
        """The tasks a file at `path` starts: one batch per phase (plan order) with a `files=`
        pattern that matches, even when several do."""
        effects = Effects()
        for workflow, phase in self.index.files:
            matched = False
            for pattern in phase.files:
                try:
                    if match(pattern, path):
                        matched = True
                        break
                except ValueError as error:  # the compiler rejects bad patterns: not expected
                    effects.notes.append(f"{workflow} {phase.id}: bad pattern {pattern!r}: {error}")
            if not matched:
                continue
            try:
                specs = file_tasks(phase, workflow, path, env=self.env)
            except ExpandError as error:
                effects.alerts.append(self._build_error(workflow, phase, now, f"file {path}: {error}"))
                continue
            for spec in specs:
                task = Task(type=spec.topic, job=spec.job, info=spec.info,
                            created=format_time(now), id=self.new_id(), meta=spec.meta_string)
                self._send(effects, task, spec, workflow, phase.id)
        if not effects.sends:
            effects.notes.append(f'no match found for "{path}"')
        return effects

    # --- done messages ----------------------------------------------------------------------

    def done(self, task: Task, now: datetime) -> Effects:
        effects = Effects()
        meta, _dropped = parse_meta(task.meta)
        workflow = meta.get("workflow")
        job = task.job or meta.get("job")
        pid = phase_id(task.type, job)
        phase = self.index.phase(workflow, pid)
        attempt = self._attempt(task, meta)
        effects.record = (workflow, pid if phase is not None else "", attempt)
        result = task.result
        if result == WARN:
            return effects
        if result == ALERT:
            effects.alerts.append(AlertEffect(task, workflow, pid if phase is not None else ""))
            return effects
        if result not in (COMPLETE, ERROR):
            effects.rejects.append(RejectEffect("unknown-result", f'unknown result "{result}" for {pid}'))
            return effects
        if phase is None:
            where = f'phase not found in "{workflow}" for {pid}' if workflow else \
                f"phase not found for {pid}: the task has no workflow meta"
            effects.rejects.append(RejectEffect("phase-not-found", where))
            if result == ERROR:
                effects.alerts.append(AlertEffect(task, workflow, "", msg=f"{where}; task msg: {task.msg}"))
            return effects
        if result == COMPLETE:
            # The children read the meta parsed here (a string only when Go's parser dropped
            # segments, so that child_tasks reports them).
            parent = task if _dropped else {"meta": meta.pairs, "info": task.info, "job": task.job}
            self._children(effects, task, parent, workflow, phase, now,
                           None if _dropped else list(meta.pairs))
        else:
            self._error(effects, task, meta, attempt, workflow, phase, now)
        return effects

    def _children(self, effects: Effects, task: Task, parent: Task | dict, workflow: str,
                  phase: PlanPhase, now: datetime,
                  pairs: list[tuple[str, str]] | None = None) -> None:
        found = self.index.workflows[workflow][1]
        context = ParentContext(parent, pairs)  # the parent's meta and time, read once for all
        created = format_time(now)
        sends, alerts = effects.sends, effects.alerts
        for child_id in phase.children:
            child = found.get(child_id)
            if child is None:  # a plan always names its own phases
                effects.notes.append(f"{workflow} {phase.id}: child {child_id} not in the plan")
                continue
            try:
                specs = child_task_fields(child, context, base_dir=self.base_dir, env=self.env)
            except ExpandError as error:
                alerts.append(self._build_error(
                    workflow, child, now, f"error creating child tasks for {child.topic}: {error}",
                    task_id=task.id))
                continue
            for topic, job, info, _meta, meta_string, _time, problems in specs:
                started = Task(topic, job, info, created, task.id, meta_string)
                sends.append(SendEffect(topic, started, workflow, child.id, 0))
                if problems:
                    alerts.append(AlertEffect(started, workflow, child.id, result="",
                                              msg="; ".join(problems)))

    def _error(self, effects: Effects, task: Task, meta: Meta, attempt: int, workflow: str,
               phase: PlanPhase, now: datetime) -> None:
        policy = phase.retry
        if policy.retries > attempt:
            delayed = None
            if policy.delay is None:
                nanos = int(DEFAULT_RETRY_DELAY.total_seconds() * 1e9)
            else:
                base = max(policy.delay.nanoseconds, 0)
                span = base * JITTER_PERCENT // 100
                jitter = self.rng.randrange(span) if span > 0 and not self.no_jitter else 0
                nanos = base + jitter
                delayed = go_print_duration(nanos)
            pairs = list(meta.set("retry", str(attempt + 1)))
            if delayed is not None:
                pairs = list(Meta(tuple(pairs)).set("delayed", delayed))
            retry = Task(type=task.type, job=phase.job or "", info=task.info,
                         created=format_time(now), id=task.id, meta=encode_sorted_escaped(pairs))
            due = _truncate_ms(now + timedelta(microseconds=nanos // 1000))
            effects.retries.append(RetryEffect(retry, due, attempt + 1, workflow, phase.id, task.type))
            return
        failed = meta.set("retry", "failed").set("retried", str(policy.retries))
        copy = task.replace(meta=encode_sorted_escaped(list(failed)))
        if self.failed_topic:
            effects.sends.append(SendEffect(self.failed_topic, copy, workflow, phase.id, attempt))
        if not policy.no_alert:
            effects.alerts.append(AlertEffect(copy, workflow, phase.id))

    def _attempt(self, task: Task, meta: Meta) -> int:
        """The retries behind this task: meta `retry` when it is a number, else (Go: 0, so a
        resubmitted failed task retries again) the engine's own count."""
        text = meta.get("retry")
        if not text:
            return 0
        if _GO_INT.match(text):
            return max(int(text), 0)
        return self.attempts(task)

    # --- helpers ------------------------------------------------------------------------------

    def _send(self, effects: Effects, task: Task, spec: TaskSpec, workflow: str, pid: str) -> None:
        effects.sends.append(SendEffect(spec.topic, task, workflow, pid, 0))
        if spec.problems:
            effects.alerts.append(AlertEffect(task, workflow, pid, result="",
                                              msg="; ".join(spec.problems)))

    def _build_error(self, workflow: str, phase: PlanPhase, now: datetime, msg: str, *,
                     task_id: str = "") -> AlertEffect:
        """Go's synthetic alert task: the phase's topic and job, the raw template, `error`."""
        task = Task(type=phase.topic, job=phase.job or "", info=phase.template.text,
                    created=format_time(now), id=task_id, result=ERROR, msg=msg)
        return AlertEffect(task, workflow, phase.id)


def _iso(moment: datetime) -> str:
    from .scheduler import _iso as iso

    return iso(moment)
