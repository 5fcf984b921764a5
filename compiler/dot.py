"""Graphviz DOT for workflows: the one drawing of phase graphs (`flowlord graph`, the dashboard).

`workflows_dot(workflows, diagnostics)` returns DOT source text built with `graphviz.Digraph`;
it needs no Graphviz binary (rendering to SVG or PNG does). The drawing:

- one cluster per workflow file, labelled with the file's path; a file without phases, or one
  that could not be read into a workflow at all (a TOML syntax error, say), gets one note node;
- one node per phase, labelled `topic:job` (or `topic`) and, on a second line, its trigger:
  the cron in words for common patterns (`every hour at :00`, `daily at 01:00`) or as written,
  `files: <pattern>`; a child phase shows nothing more;
- a shape and colour per kind of phase: cron (blue box), files (green folder), child (grey
  ellipse), untriggered (dashed octagon: nothing can ever start it);
- an edge from each parent to each child (`phase_graph`), drawn red when it lies on a cycle;
- phases with diagnostics get a red (error) or orange (warning) border and a tooltip listing the
  messages; diagnostics that belong to no phase mark the file's cluster the same way.

Node ids are stable (`w<file index>p<phase index>`, files sorted by path, phases in file order)
and every list is sorted, so the same input always gives the same text.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

import graphviz
import networkx as nx

from .ast import CronSpec, CronTrigger, FileTrigger, Phase, Workflow
from .diagnostics import Diagnostic
from .graph import phase_graph

RED = "#dc2626"
ORANGE = "#f59e0b"

_KIND_STYLE: dict[str, dict[str, str]] = {
    "cron": {"shape": "box", "style": "rounded,filled", "fillcolor": "#dbeafe"},
    "files": {"shape": "folder", "style": "filled", "fillcolor": "#dcfce7"},
    "child": {"shape": "ellipse", "style": "filled", "fillcolor": "#f3f4f6"},
    "none": {"shape": "octagon", "style": "dashed", "fillcolor": "white", "fontcolor": "#6b7280"},
}
_SEVERITY_STYLE: dict[str, dict[str, str]] = {
    "error": {"color": RED, "penwidth": "2.5"},
    "warning": {"color": ORANGE, "penwidth": "2"},
}

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STEP = re.compile(r"(?:\*|0)/(\d+)")


# --- escaping --------------------------------------------------------------------------------


def dot_text(text: str) -> str:
    """Text shown literally in a DOT label or tooltip: backslashes doubled (no `\\n`, `\\N` or
    `\\l` escapes), `&` as `&amp;` (Graphviz decodes entities in plain labels), line breaks as
    `\\n`, and never read as an HTML label even when it looks like `<…>`. Quotes are escaped
    by graphviz's quoting when the source is written."""
    text = text.replace("\\", "\\\\").replace("&", "&amp;")
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")


def _lines(*lines: str) -> str:
    return graphviz.nohtml("\\n".join(dot_text(line) for line in lines))


# --- triggers --------------------------------------------------------------------------------


def cron_in_words(spec: CronSpec) -> str:
    """A short English reading of common schedules, else the expression as written."""
    if spec.descriptor == "@every" and spec.every is not None:
        words: str | None = f"every {spec.every.text}"
    else:
        words = _fields_in_words(spec)
    if words is None:
        return spec.text
    return f"{words} ({spec.timezone})" if spec.timezone else words


def _fields_in_words(spec: CronSpec) -> str | None:
    if len(spec.fields) != 6:
        return None
    sec, minute, hour, dom, month, dow = spec.fields

    def single(field) -> int | None:
        return field.values[0] if len(field.values) == 1 and not field.star else None

    def step(field, high: int) -> int | None:
        match = _STEP.fullmatch(field.text)
        if match is None:
            return None
        n = int(match.group(1))
        return n if n > 1 and field.values == tuple(range(0, high, n)) else None

    s, m, h = single(sec), single(minute), single(hour)
    if s is not None and m is not None and h is not None:
        at = f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")
        if dom.star and month.star and dow.star:
            return f"daily at {at}"
        if dom.star and month.star:
            days = _day_list(dow.values)
            return f"weekly on {days} at {at}" if len(dow.values) == 1 else f"{days} at {at}"
        if month.star and dow.star and len(dom.values) <= 4:
            ordinal = "day" if len(dom.values) == 1 else "days"
            return f"monthly on {ordinal} {', '.join(map(str, dom.values))} at {at}"
        day, month_value = single(dom), single(month)
        if day is not None and month_value is not None and dow.star:
            return f"yearly on {_MONTHS[month_value - 1]} {day} at {at}"
        return None
    if not (dom.star and month.star and dow.star):
        return None
    if s is not None and m is not None:
        past = f":{m:02d}" + (f":{s:02d}" if s else "")
        if hour.star:
            return f"every hour at {past}"
        every = step(hour, 24)
        return f"every {every} hours at {past}" if every else None
    if not hour.star:
        return None
    if s is not None and minute.star:
        return "every minute" if s == 0 else f"every minute at second {s}"
    if s == 0:
        every = step(minute, 60)
        return f"every {every} minutes" if every else None
    if minute.star and sec.star:
        return "every second"
    if minute.star:
        every = step(sec, 60)
        return f"every {every} seconds" if every else None
    return None


def _day_list(values: Sequence[int]) -> str:
    """Day-of-week numbers as names, runs of three or more as `Mon-Fri`."""
    parts: list[str] = []
    run: list[int] = []
    for value in [*values, None]:
        if run and value is not None and value == run[-1] + 1:
            run.append(value)
            continue
        if run:
            if len(run) >= 3:
                parts.append(f"{_DAYS[run[0]]}-{_DAYS[run[-1]]}")
            else:
                parts.extend(_DAYS[v] for v in run)
        run = [] if value is None else [value]
    return ", ".join(parts)


def phase_kind(phase: Phase) -> str:
    """`cron`, `files`, `child` or `none`: what starts the phase (cron first when several)."""
    keys = {key for key, _ in _trigger_pairs(phase)}
    if "cron" in keys:
        return "cron"
    if "files" in keys:
        return "files"
    return "child" if phase.depends_on is not None else "none"


def trigger_lines(phase: Phase) -> list[str]:
    """One line per `cron=` and `files=` of the rule, in the rule's order. A cron that did not
    parse (it has a diagnostic) is shown as written."""
    crons = {t.spec.text: t.spec for t in phase.rule.triggers if isinstance(t, CronTrigger)}
    lines = []
    for key, value in _trigger_pairs(phase):
        if key == "cron":
            spec = crons.get(value)
            lines.append(cron_in_words(spec) if spec is not None else value)
        else:
            lines.append(f"files: {value}")
    return lines


def _trigger_pairs(phase: Phase) -> list[tuple[str, str]]:
    pairs = [(p.key, p.value) for p in phase.rule.pairs if p.key in ("cron", "files")]
    if not pairs:  # a rule built without its pairs (e.g. by hand): fall back on the triggers
        for trigger in phase.rule.triggers:
            if isinstance(trigger, CronTrigger):
                pairs.append(("cron", trigger.spec.text))
            elif isinstance(trigger, FileTrigger):
                pairs.append(("files", trigger.pattern))
    return pairs


# --- diagnostics -----------------------------------------------------------------------------


def _assign(
    workflow: Workflow, diagnostics: Iterable[Diagnostic]
) -> tuple[dict[int, list[Diagnostic]], list[Diagnostic]]:
    """Each diagnostic of the file to the phase whose table holds its primary location (from
    the phase's header to the next one's); those before the first phase to the file."""
    order = sorted(range(len(workflow.phases)), key=lambda i: workflow.phases[i].span.start)
    starts = [workflow.phases[i].span.start for i in order]
    by_phase: dict[int, list[Diagnostic]] = {}
    unplaced: list[Diagnostic] = []
    for diagnostic in diagnostics:
        at = bisect.bisect_right(starts, diagnostic.span.start)
        if at == 0:
            unplaced.append(diagnostic)
        else:
            by_phase.setdefault(order[at - 1], []).append(diagnostic)
    return by_phase, unplaced


def _severity(diagnostics: Sequence[Diagnostic]) -> str | None:
    severities = {str(getattr(d.severity, "value", d.severity)) for d in diagnostics}
    return "error" if "error" in severities else "warning" if "warning" in severities else None


def _tooltip(diagnostics: Sequence[Diagnostic]) -> str:
    return _lines(
        *(f"{getattr(d.severity, 'value', d.severity)}[{d.code}]: {d.message}" for d in diagnostics)
    )


def _marks(diagnostics: Sequence[Diagnostic]) -> dict[str, str]:
    if not diagnostics:
        return {}
    attrs = {"tooltip": _tooltip(diagnostics)}
    severity = _severity(diagnostics)
    if severity is not None:
        attrs.update(_SEVERITY_STYLE[severity])
    return attrs


# --- the drawing -----------------------------------------------------------------------------


def workflows_dot(workflows: Iterable[Workflow], diagnostics: Iterable[Diagnostic] = ()) -> str:
    """DOT source of the workflows' phase graphs, with their diagnostics marked."""
    ordered = sorted(workflows, key=lambda w: w.path)
    by_path: dict[str, list[Diagnostic]] = {}
    for diagnostic in sorted(diagnostics, key=lambda d: (d.sort_key, d.help or "")):
        by_path.setdefault(diagnostic.span.path, []).append(diagnostic)

    dot = graphviz.Digraph("flowlord")
    dot.attr(rankdir="LR", fontname="Helvetica", compound="true", nodesep="0.3")
    dot.attr("node", fontname="Helvetica", fontsize="11")
    dot.attr("edge", color="#4b5563", arrowsize="0.7")

    drawn = {w.path for w in ordered}
    entries: list[tuple[str, Workflow | None]] = [(w.path, w) for w in ordered]
    entries += [(path, None) for path in sorted(by_path) if path not in drawn]
    entries.sort(key=lambda entry: entry[0])
    for index, (path, workflow) in enumerate(entries):
        with dot.subgraph(name=f"cluster_w{index}") as cluster:
            cluster.attr(
                label=_lines(path), labeljust="l", style="rounded", color="#9ca3af",
                fontname="Helvetica", fontsize="12",
            )
            if workflow is None:
                _unread_file(cluster, f"w{index}", by_path[path])
            else:
                _workflow(cluster, f"w{index}", workflow, by_path.get(path, []))
    return dot.source


def _workflow(cluster: graphviz.Digraph, prefix: str, workflow: Workflow,
              diagnostics: list[Diagnostic]) -> None:
    by_phase, unplaced = _assign(workflow, diagnostics)
    if not workflow.phases:  # Graphviz does not draw an empty cluster
        cluster.node(f"{prefix}_empty", _lines("no phases"), shape="note", fontcolor="#6b7280",
                     **_marks(unplaced))
    elif unplaced:
        cluster.attr(**_marks(unplaced))
    graph = phase_graph(workflow)
    on_cycle = _cycle_edges(graph)
    for i, phase in enumerate(workflow.phases):
        attrs = dict(_KIND_STYLE[phase_kind(phase)])
        attrs.update(_marks(by_phase.get(i, [])))
        cluster.node(f"{prefix}p{i}", _lines(phase.name, *trigger_lines(phase)), **attrs)
    for parent, child in sorted(graph.edges):
        attrs = {"color": RED, "penwidth": "2"} if (parent, child) in on_cycle else {}
        cluster.edge(f"{prefix}p{parent}", f"{prefix}p{child}", **attrs)


def _unread_file(cluster: graphviz.Digraph, prefix: str, diagnostics: list[Diagnostic]) -> None:
    count = len(diagnostics)
    cluster.node(
        f"{prefix}_unread", _lines("not drawn:", f"{count} problem{'s' if count != 1 else ''}"),
        shape="note", fontcolor="#6b7280", **_marks(diagnostics),
    )


def _cycle_edges(graph: nx.DiGraph) -> set[tuple[int, int]]:
    """The edges that lie on some cycle: self-loops, and edges inside one strongly connected
    component (exactly the edges of `nx.simple_cycles`, without listing every cycle)."""
    component = {}
    for n, members in enumerate(nx.strongly_connected_components(graph)):
        for node in members:
            component[node] = n
    return {(u, v) for u, v in graph.edges if u == v or component[u] == component[v]}
