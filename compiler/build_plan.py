"""Workflow ASTs → the execution Plan (compiler.plan), for a compilation without errors.

Order is part of the contract, because the Go flowlord's order is observable:

* **Phases** are listed by their *stored task name*, the order in which Go schedules a workflow's
  phases (spec §11.1) and starts a finished task's children (§13.5, §14.2): SQLite's
  `ORDER BY task`, i.e. by code point. The stored name is `task` as written when it has a `:`,
  else `topic:job` when the job came from the rule's `job=`, else the topic (§5.3).
* **children** of a phase are the phases the Go Children lookup would start after it
  (compiler.graph's edge rule), in the same order.
* **stages** are the topological generations of the phase graph (`networkx`), each in that
  order: stage 0 holds the phases no other phase starts, stage n+1 those whose parents are all
  in earlier stages.
* **workflows** are sorted by key.

Everything else is recorded as written, for the runtime to apply Go's rules: `offset` matters to
cron jobs only, `for`/`by` to cron batches only, while a child's `meta`/`meta-file` is merged into
its parent's meta (§13.5).
"""

from __future__ import annotations

from typing import Iterable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import networkx as nx

from .ast import CronSpec, CronTrigger, FileTrigger, Phase, Workflow
from .graph import phase_graph
from .plan import Plan, PlanPhase, PlanWorkflow


class PlanError(ValueError):
    """A workflow that has no plan although it passed the checks (a cycle of phases)."""


def stored_name(phase: Phase) -> str:
    """The name the Go flowlord stores the phase under, which orders its lookups (§5.3)."""
    return phase.task.value if ":" in phase.task.value else phase.name


def build_plan(
    workflows: Iterable[Workflow], keys: Mapping[str, str], timezone: str = "UTC"
) -> Plan:
    """The Plan of checked workflows; `keys` maps each workflow's path to its workflow key.

    `timezone` is the zone of cron specs without `TZ=` (Go: the process's local zone). Raises
    ValueError for an unknown zone and PlanError for a cycle of phases.
    """
    check_timezone(timezone)
    planned = [_workflow(workflow, keys[workflow.path], timezone) for workflow in workflows]
    planned.sort(key=lambda workflow: workflow.key)
    return Plan(timezone=timezone, workflows=tuple(planned))


def check_timezone(zone: str) -> None:
    """ValueError unless `zone` is an IANA zone name that this machine knows."""
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r}; use an IANA name such as UTC or Europe/Paris") from None


def _workflow(workflow: Workflow, key: str, timezone: str) -> PlanWorkflow:
    phases = workflow.phases
    graph = phase_graph(workflow)
    order = sorted(range(len(phases)), key=lambda i: stored_name(phases[i]))
    rank = {node: position for position, node in enumerate(order)}
    ids = [phase.name for phase in phases]

    def ordered(nodes: Iterable[int]) -> tuple[str, ...]:
        return tuple(ids[node] for node in sorted(nodes, key=rank.__getitem__))

    try:
        stages = tuple(ordered(stage) for stage in nx.topological_generations(graph))
    except nx.NetworkXUnfeasible:
        cycle = [ids[parent] for parent, _ in nx.find_cycle(graph)]
        path = " -> ".join(f'"{name}"' for name in [*cycle, cycle[0]])
        raise PlanError(f"{workflow.path}: the phases {path} form a cycle") from None
    return PlanWorkflow(
        key=key,
        path=workflow.path,
        phases=tuple(_phase(phases[i], ordered(graph.successors(i)), timezone) for i in order),
        stages=stages,
    )


def _zone(cron: CronSpec | None, timezone: str) -> str:
    """The spec's `TZ=` zone; without one (or `TZ=Local`, Go's time.Local) the plan's zone."""
    if cron is None or not cron.timezone or cron.timezone == "Local":
        return timezone
    return cron.timezone


def _phase(phase: Phase, children: tuple[str, ...], timezone: str) -> PlanPhase:
    rule = phase.rule
    cron = next((t.spec for t in rule.triggers if isinstance(t, CronTrigger)), None)
    files = tuple(t.pattern for t in rule.triggers if isinstance(t, FileTrigger))
    if cron is not None:
        trigger = "cron+files" if files else "cron"
    else:
        trigger = "files" if files else "child" if phase.depends_on is not None else "none"
    return PlanPhase(
        id=phase.name,
        topic=phase.topic,
        job=phase.job,
        trigger=trigger,
        cron=cron,
        timezone=_zone(cron, timezone),
        files=files,
        parent=phase.depends_on,
        template=phase.template,
        retry=phase.retry,
        offset=rule.offset.duration if rule.offset is not None else None,
        batch=rule.batch,
        require=rule.require,
        rule=tuple((pair.key, pair.value) for pair in rule.pairs),
        children=children,
    )
