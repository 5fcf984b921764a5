"""The rows the store hands out and takes in: small frozen dataclasses, never raw tuples."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..task import Task

__all__ = [
    "AlertRecord", "FileMessageRecord", "NotificationRecord", "PendingRetry", "PhaseRecord",
    "PhaseRow", "RejectedRecord", "ResultCount", "TaskRecord",
]


@dataclass(frozen=True, slots=True)
class TaskRecord:
    seq: int  # insertion order; pass the last one as `before` for the next page
    event: str  # "sent" or "done"
    task: Task
    workflow: str
    phase: str
    attempt: int
    topic: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class PendingRetry:
    id: int
    task: Task
    topic: str
    due_at: datetime
    attempt: int
    workflow: str
    phase: str
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    task_id: str
    type: str
    job: str
    workflow: str
    phase: str
    result: str
    msg: str
    task_time: str
    created: datetime
    sent_at: datetime | None


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A message of the notification outbox (runtime/notify.py) for one channel."""

    id: int
    kind: str  # alert, summary, test
    channel: str  # slack, webhook
    text: str
    body: str  # the JSON posted
    alert_ids: tuple[int, ...]
    status: str  # pending, sent, failed
    attempts: int
    error: str  # the last delivery error
    created: datetime
    next_at: datetime
    done_at: datetime | None


@dataclass(frozen=True, slots=True)
class FileMessageRecord:
    id: int
    path: str
    size: int
    message: str
    task_ids: tuple[str, ...]
    received_at: datetime


@dataclass(frozen=True, slots=True)
class PhaseRow:
    """One phase of a workflow as loaded, for `Store.replace_phases`."""

    phase_id: str
    topic: str
    job: str = ""
    rule: str = ""
    template: str = ""
    depends_on: str = ""
    diagnostics: tuple[Any, ...] = field(default=())  # JSON-serialisable items


@dataclass(frozen=True, slots=True)
class PhaseRecord:
    workflow: str
    position: int
    phase_id: str
    topic: str
    job: str
    rule: str
    template: str
    depends_on: str
    diagnostics: tuple[Any, ...]
    loaded_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    id: int
    topic: str
    reason: str
    detail: str
    raw: bytes  # the first 64 KiB
    size: int
    received_at: datetime


@dataclass(frozen=True, slots=True)
class ResultCount:
    type: str
    job: str
    result: str  # "" for done messages without a result
    count: int
