"""A workflow's phase graph: one node per phase, an edge from each parent to each child.

The edge rule is the Go flowlord's Children lookup (spec §14.2): within one workflow file, a
phase is a child of a task when its `dependsOn` topic equals the task's topic and its
`dependsOn` job is absent or equals the task's job. Nodes are the phases' indexes in
`workflow.phases`, so phases defined twice stay distinct nodes.
"""

from __future__ import annotations

import networkx as nx

from .ast import Phase, Workflow


def is_parent(parent: Phase, child: Phase) -> bool:
    depends_on = child.depends_on
    return (
        depends_on is not None
        and depends_on.topic == parent.topic
        and (depends_on.job is None or depends_on.job == parent.job)
    )


def phase_graph(workflow: Workflow) -> nx.DiGraph:
    graph = nx.DiGraph()
    phases = workflow.phases
    graph.add_nodes_from((i, {"phase": phase}) for i, phase in enumerate(phases))
    by_topic: dict[str, list[int]] = {}
    for i, phase in enumerate(phases):
        by_topic.setdefault(phase.topic, []).append(i)
    for c, child in enumerate(phases):
        if child.depends_on is None:
            continue
        for p in by_topic.get(child.depends_on.topic, ()):
            if is_parent(phases[p], child):
                graph.add_edge(p, c)
    return graph
