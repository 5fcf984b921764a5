"""Running one finished step of a chain again, from the dashboard or the API.

The Go flowlord has no such action: a failed task could only be backloaded anew, under a new
id. A rerun sends the step's first task as it was sent (type, job, info, meta and the chain's
id) with a new `created`, so it joins its chain on the task page, gets a fresh retry budget
(no `retry` in its meta) and, when it completes, starts the step's children as usual.
"""

from __future__ import annotations

from datetime import datetime

from .dispatcher import SendEffect
from .store.records import TaskRecord
from .task import format_time


class RerunError(Exception):
    """The step cannot be run again; the message says why."""


def rerun_problem(history: list[TaskRecord], workflow: str, phase: str) -> str | None:
    """Why the step (workflow, phase) of a chain cannot run again, or None when it can;
    `history` is the chain's records (Store.task_history), oldest first."""
    sent = _sent(history, workflow, phase)
    if not sent:
        return f"no task of phase {phase!r} in workflow {workflow!r} was sent in this chain"
    latest = sent[-1].task
    if not any(r.event == "done" and r.task.type == latest.type and r.task.job == latest.job
               and r.task.created == latest.created for r in history):
        return f"{phase} is still running: run it again once its result is in"
    return None


def rerun_effect(history: list[TaskRecord], workflow: str, phase: str, now: datetime) -> SendEffect:
    """The send that runs the step (workflow, phase) of a chain again; raises RerunError with
    rerun_problem's reason when it cannot."""
    problem = rerun_problem(history, workflow, phase)
    if problem is not None:
        raise RerunError(problem)
    first = min(_sent(history, workflow, phase), key=lambda r: r.attempt)  # the try before retries
    task = first.task.replace(created=format_time(now), result="", msg="", started="", ended="")
    return SendEffect(first.topic or task.type, task, workflow, phase, 0)


def _sent(history: list[TaskRecord], workflow: str, phase: str) -> list[TaskRecord]:
    return [r for r in history if r.event == "sent" and r.workflow == workflow and r.phase == phase]
