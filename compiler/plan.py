"""The execution plan: what the runtime runs, and all it reads of a compilation.

A Plan is versioned and JSON-serialisable (`plan.model_dump_json()` /
`Plan.model_validate_json(text)`), so `flowlord plan > plan.json` and a runtime fed from that
file are the same contract. It is built from a compilation without errors only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from .ast import Batch, CronSpec, DependsOn, Duration, Require, RetryPolicy, Template

PLAN_VERSION = 1


class PlanModel(BaseModel):
    model_config = ConfigDict(frozen=True)


class PlanPhase(PlanModel):
    id: str  # "topic" or "topic:job": unique within its workflow
    topic: str
    job: str | None = None
    trigger: Literal["cron", "files", "cron+files", "child", "none"]
    cron: CronSpec | None = None
    timezone: str = "UTC"  # the cron spec's own TZ= prefix, else the plan's zone
    files: tuple[str, ...] = ()  # Go filepath.Match patterns
    parent: DependsOn | None = None
    template: Template
    retry: RetryPolicy
    offset: Duration | None = None
    batch: Batch | None = None
    require: Require | None = None
    # The rule's key=value pairs as written (decoded): a file task carries them all in its meta.
    rule: tuple[tuple[str, str], ...] = ()
    children: tuple[str, ...] = ()  # ids of the phases this one starts, in their order


class PlanWorkflow(PlanModel):
    key: str  # meta `workflow=`: the file's path relative to the workflow folder
    path: str
    phases: tuple[PlanPhase, ...]
    stages: tuple[tuple[str, ...], ...]  # topological generations of phase ids


class Plan(PlanModel):
    version: Literal[1] = PLAN_VERSION
    timezone: str = "UTC"
    workflows: tuple[PlanWorkflow, ...] = ()

    def workflow(self, key: str) -> PlanWorkflow | None:
        return next((w for w in self.workflows if w.key == key), None)
