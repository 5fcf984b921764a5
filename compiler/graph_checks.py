"""Checks that need the whole phase graph of one workflow file (FL6xx).

The graph is the Go flowlord's Children rule (spec §14.2, compiler/graph.py): within one
workflow file, a phase is a child of every phase whose topic is its `dependsOn` topic and whose
job is its `dependsOn` job, or any job when it names none. The checks build that adjacency in
plain Python and import networkx (through compiler.graph) only to list the cycles of a workflow
that has one, so linting a sound workflow never loads it.

What a task carries in its meta (spec §10, §12, §13.5, §15 and Go's batch.go) decides which
`{meta:key}` a child can fill:
- a cron task: `workflow`, `cron`, and `job` when the phase has a job;
- a batch task with data rows (`meta=` or `meta-file=`): the same plus every meta key that its
  template references (Go records the template's keys, whatever the rows hold);
- a file task: `file`, `filename`, `workflow` and every key of its rule (`job` only with `job=`);
- a child task: `workflow`, `cron` when its parent's task had one, and `job` when the child phase
  has a job. The rest of the parent's meta is dropped, so a grandchild of a file phase never
  sees `{meta:file}`.
A child's template is filled from its parent task's meta plus its own `meta=` rows (anything
with a `meta-file=`); its `require` is checked against the parent task's meta alone.
"""

from __future__ import annotations

import bisect
from dataclasses import replace

from . import codes
from .ast import MetaRef, Phase, Workflow
from .diagnostics import Label, Severity, Sink
from .source import SourceFile, Span
from .suggest import did_you_mean, nearest

# A workflow can hold exponentially many cycles; past this many the rest are not listed.
MAX_CYCLES = 100

_FILE_KEYS = ("file", "filename", "workflow")


def _keys(keys) -> str:
    return ", ".join(f"`{k}`" for k in keys)


def _names(phases: list[Phase]) -> str:
    names = [f"`{p.name}`" for p in phases]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _triggers(phase: Phase) -> tuple[bool, bool]:
    """Whether the rule has `cron=` and `files=` with a value: what makes Go schedule the phase
    and match files with it (even when the value is wrong, which other checks report)."""
    rule = phase.rule
    cron = files = False
    for trigger in rule.triggers:  # the parsed, valid ones
        if trigger.kind == "cron":
            cron = True
        else:
            files = True
    if (not cron and "cron=" in rule.text) or (not files and "files=" in rule.text):
        for pair in rule.pairs:
            if pair.value:
                if pair.key == "cron":
                    cron = True
                elif pair.key == "files":
                    files = True
    return cron, files


def _template_keys(phase: Phase) -> list[str]:
    return list(dict.fromkeys(p.key for p in phase.template.parts if isinstance(p, MetaRef)))


def _batch_rows(phase: Phase) -> bool:
    """A cron phase with data rows: Go records its template's meta keys in each task."""
    batch = phase.rule.batch
    if batch is None:
        return False
    return batch.meta_file is not None or (
        batch.meta is not None and any(row.values for row in batch.meta.rows)
    )


def check_graph(workflow: Workflow, sink: Sink) -> None:
    phases = list(workflow.phases)
    triggers = [_triggers(p) for p in phases]
    cron = [c for c, _ in triggers]
    files = [f for _, f in triggers]
    idle = [i for i, p in enumerate(phases) if p.depends_on is None and not cron[i] and not files[i]]
    erroneous = _erroneous(workflow, sink) if idle else set()
    for i in idle:
        if i not in erroneous:
            _never_starts(phases[i], sink)
    if all(p.depends_on is None for p in phases):
        return
    _Graph(workflow, cron, files, erroneous, sink).check()


# Errors that put a phase's trigger or parent in doubt: a phase key misspelt, of the wrong type or
# spelt twice (`depends_on`), a bad dependsOn, any rule or cron error.
_TRIGGER_ERRORS = ("FL103", "FL104", "FL108", "FL110", "FL2", "FL3")


def _erroneous(workflow: Workflow, sink: Sink) -> set[int]:
    """Phases with such an error between their header and the next phase's. Whether Go starts
    them is in doubt and the error says why, so they are not reported as idle (FL604), nor are
    their descendants (FL605)."""
    starts = [p.span.start for p in workflow.phases]
    found: set[int] = set()
    for diagnostic in reversed(sink.diagnostics):  # this file's diagnostics come last
        if diagnostic.span.path != workflow.path:
            break
        if diagnostic.severity is Severity.ERROR and diagnostic.code.startswith(_TRIGGER_ERRORS):
            i = bisect.bisect_right(starts, diagnostic.span.start) - 1
            if i >= 0:
                found.add(i)
    return found


def _never_starts(phase: Phase, sink: Sink) -> None:
    batch = phase.rule.batch
    if batch is not None and (batch.meta_file or batch.meta or batch.for_):
        which = "meta-file" if batch.meta_file else "meta" if batch.meta else "for"
        why = f"a batch (`{which}=`) runs only on a `cron=` schedule, and it has no `files=` or `dependsOn` either"
        help = "add a schedule to the rule, e.g. `cron=0 0 * * *`"
    else:
        why = "it has no `cron=`, no `files=` and no `dependsOn`"
        help = (
            "add `cron=…` to the rule to schedule it, `files=…` to start it on new files, "
            'or `dependsOn = "…"` to start it after another phase'
        )
    sink.emit(
        codes.NEVER_STARTS.at(
            phase.task.span,
            f"`{phase.name}` never starts: {why}",
            help=help,
            notes=("Go accepts such a phase and only its status page says `non-scheduled phase`",),
        )
    )


class _Lazy:
    """`lazy[i]` is `function(i)`, computed once when first asked for."""

    def __init__(self, function):
        self.function = function
        self.cache: dict[int, set[str]] = {}

    def __getitem__(self, i: int) -> set[str]:
        value = self.cache.get(i)
        if value is None:
            value = self.cache[i] = self.function(i)
        return value


class _Graph:
    def __init__(self, workflow: Workflow, cron: list[bool], files: list[bool], erroneous: set[int], sink: Sink):
        self.workflow = workflow
        self.phases = phases = list(workflow.phases)
        self.cron = cron
        self.files = files
        self.erroneous = erroneous
        self.sink = sink
        n = len(phases)
        self.by_topic: dict[str, list[int]] = {}
        for i, phase in enumerate(phases):
            self.by_topic.setdefault(phase.topic, []).append(i)
        # The edge rule of compiler.graph.is_parent, without networkx.
        self.parents: list[list[int]] = [[] for _ in range(n)]
        self.children: list[list[int]] = [[] for _ in range(n)]
        for c, child in enumerate(phases):
            depends_on = child.depends_on
            if depends_on is None:
                continue
            for p in self.by_topic.get(depends_on.topic, ()):
                if depends_on.job is None or depends_on.job == phases[p].job:
                    self.parents[c].append(p)
                    self.children[p].append(c)
        self.live = self._reach([i for i in range(n) if cron[i] or files[i]])
        self.carries_cron = self._reach([i for i in range(n) if cron[i]])

    def _reach(self, seeds: list[int]) -> list[bool]:
        """Phases that the seeds start, themselves included (their descendants)."""
        reached = [False] * len(self.phases)
        for i in seeds:
            reached[i] = True
        stack = list(seeds)
        while stack:
            for c in self.children[stack.pop()]:
                if not reached[c]:
                    reached[c] = True
                    stack.append(c)
        return reached

    def _ancestors(self, i: int) -> list[int]:
        seen = {i}
        stack = [i]
        while stack:
            for p in self.parents[stack.pop()]:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        seen.discard(i)
        return sorted(seen)

    def check(self) -> None:
        for i, phase in enumerate(self.phases):
            if phase.depends_on is None:
                continue
            if not self.parents[i]:
                self._unknown_parent(i)
            elif phase.depends_on.job is None:
                self._ambiguous(i)
        on_cycle = self._cycles() if self._has_cycle() else set()
        for i, phase in enumerate(self.phases):
            if self.parents[i] and not self.live[i]:
                self._dead(i, on_cycle)
        carried = _Lazy(self._carried)
        for i in range(len(self.phases)):
            if self.parents[i]:
                self._meta_flow(i, carried)

    # --- FL601, FL602 ----------------------------------------------------------------------------

    def _unknown_parent(self, i: int) -> None:
        phase, phases = self.phases[i], self.phases
        depends_on = phase.depends_on
        wanted = f"{depends_on.topic}:{depends_on.job}" if depends_on.job else depends_on.topic
        same_topic = self.by_topic.get(depends_on.topic)
        if not same_topic:
            others = [p for p in phases if p is not phase]
            candidates = list(dict.fromkeys([n for p in others for n in (p.topic, p.name)]))
            help = did_you_mean(wanted, candidates)
            if help is None:
                listed = _keys(dict.fromkeys(p.name for p in others[:8])) + (", …" if len(others) > 8 else "")
                help = (
                    "`dependsOn` names the task of another phase of this workflow file, `topic` or `topic:job`"
                    + (f"; phases here: {listed}" if others else "")
                )
            self.sink.emit(
                codes.UNKNOWN_PARENT.at(
                    depends_on.span,
                    f"no phase of this workflow is `{wanted}`: `{phase.name}` never starts",
                    help=help,
                )
            )
            return
        jobs = list(dict.fromkeys(phases[p].job for p in same_topic if p != i))
        named = [j for j in jobs if j is not None]
        if not jobs:
            help = f"`{depends_on.topic}` is this phase's own topic, and no other phase has it"
        elif not named:
            help = f'`{depends_on.topic}` has no job: write `dependsOn = "{depends_on.topic}"`'
        else:
            listed = _keys(f"{depends_on.topic}:{j}" if j else depends_on.topic for j in jobs)
            help = f"the phases of topic `{depends_on.topic}` are {listed}"
            match = nearest(depends_on.job, named)
            if match is not None:
                help = f"did you mean `{depends_on.topic}:{match}`? {help}"
        self.sink.emit(
            codes.UNKNOWN_PARENT_JOB.at(
                depends_on.span,
                f"`{depends_on.topic}` has no job `{depends_on.job}`: `{phase.name}` never starts",
                help=help,
            )
        )

    # --- FL606 ---------------------------------------------------------------------------------

    def _ambiguous(self, i: int) -> None:
        phase = self.phases[i]
        parents = [self.phases[p] for p in self.parents[i]]
        jobs = list(dict.fromkeys(p.job for p in parents))
        if len(jobs) < 2:
            return
        first = {}
        for parent in parents:
            first.setdefault(parent.job, parent)
        distinct = list(first.values())
        example = next(p for p in distinct if p.job is not None)
        self.sink.emit(
            codes.AMBIGUOUS_PARENT.at(
                phase.depends_on.span,
                f"`{phase.depends_on.topic}` has {len(jobs)} jobs: `{phase.name}` starts after each of "
                f"{_names(distinct)}",
                help=f'to start after one of them only, write `dependsOn = "{example.name}"`',
                secondary=tuple(Label(p.task.span, f"`{p.name}` starts `{phase.name}`") for p in distinct),
            )
        )

    # --- FL603 ---------------------------------------------------------------------------------

    def _has_cycle(self) -> bool:
        """Kahn's algorithm: a cycle leaves phases that never get free of parents."""
        waiting = [len(ps) for ps in self.parents]
        free = [i for i, w in enumerate(waiting) if w == 0]
        done = 0
        while free:
            p = free.pop()
            done += 1
            for c in self.children[p]:
                waiting[c] -= 1
                if waiting[c] == 0:
                    free.append(c)
        return done < len(self.phases)

    def _cycles(self) -> set[int]:
        """Reports every elementary cycle (up to MAX_CYCLES); returns the phases on them."""
        import networkx as nx

        from .graph import phase_graph

        graph = phase_graph(self.workflow)
        cycles: list[tuple[int, ...]] = []
        more = False
        for cycle in nx.simple_cycles(graph):
            if len(cycles) == MAX_CYCLES:
                more = True
                break
            k = cycle.index(min(cycle))
            cycles.append(tuple(cycle[k:] + cycle[:k]))  # from the phase first in the file
        cycles.sort()
        for n, cycle in enumerate(cycles):
            self._cycle(cycle, more and n == len(cycles) - 1)
        return {i for cycle in cycles for i in cycle}

    def _cycle(self, cycle: tuple[int, ...], more: bool) -> None:
        phases = [self.phases[i] for i in cycle]
        path = " -> ".join(f'"{p.name}"' for p in [*phases, phases[0]])
        first = phases[0]
        if len(phases) == 1:
            message = f"`{first.name}` depends on itself: {path}"
            secondary: tuple[Label, ...] = ()
        else:
            message = f"phases start each other in a loop: {path}"
            secondary = tuple(
                Label(phases[k].depends_on.span, f"`{phases[k].name}` starts after `{phases[k - 1].name}`")
                for k in range(1, len(phases))
            )
        self.sink.emit(
            codes.PHASE_CYCLE.at(
                first.depends_on.span,
                message,
                help="Go has no cycle check: once one of them runs they start each other forever; "
                "remove one of these `dependsOn`",
                notes=(f"more than {MAX_CYCLES} cycles: the others are not listed",) if more else (),
                secondary=secondary,
            )
        )

    # --- FL605 ---------------------------------------------------------------------------------

    def _dead(self, i: int, on_cycle: set[int]) -> None:
        phase = self.phases[i]
        ancestors = self._ancestors(i)
        roots = [a for a in ancestors if not self.parents[a]]
        if any(a in self.erroneous for a in roots):
            return  # a root with an error: that error comes first
        if not roots:
            if i in on_cycle:
                return  # FL603 says it all
            loop = [self.phases[a] for a in ancestors if a in on_cycle] or [self.phases[a] for a in ancestors]
            message = f"`{phase.name}` never runs: its ancestors {_names(loop)} only start each other, in a loop that nothing starts"
            self.sink.emit(
                codes.PARENT_NEVER_RUNS.at(
                    phase.depends_on.span,
                    message,
                    help="give one of them a `cron=` or `files=` trigger, and break the loop",
                )
            )
            return
        dead = [self.phases[a] for a in roots]
        notes = []
        for root in dead:
            if root.depends_on is None:
                notes.append(f"`{root.name}` has no `cron=`, `files=` or `dependsOn`, so it never starts")
            else:
                notes.append(f"`{root.name}` depends on a phase that this workflow does not have")
        them = "it never starts" if len(dead) == 1 else "none of them starts"
        self.sink.emit(
            codes.PARENT_NEVER_RUNS.at(
                phase.depends_on.span,
                f"`{phase.name}` never runs: every chain of its parents begins at {_names(dead)}, and {them}",
                help=f"give {_names(dead)} a trigger (`cron=…` or `files=…`), or make `{phase.name}` "
                "depend on a phase that runs",
                notes=tuple(notes),
                secondary=tuple(Label(root.task.span, "never starts") for root in dead),
            )
        )

    # --- FL607 ---------------------------------------------------------------------------------

    def _carried(self, i: int) -> set[str]:
        """The meta keys of the tasks phase i sends, by any of its triggers."""
        phase = self.phases[i]
        keys: set[str] = set()
        job = {"job"} if phase.job else set()
        if self.cron[i]:
            keys |= {"workflow", "cron"} | job
            if _batch_rows(phase):
                keys.update(_template_keys(phase))
        if self.files[i]:
            keys.update(_FILE_KEYS)
            keys.update(pair.key for pair in phase.rule.pairs)
        if self.parents[i]:
            keys |= {"workflow"} | job
            if any(self.carries_cron[p] for p in self.parents[i]):
                keys.add("cron")
        return keys

    def _describe(self, i: int, key: str, carried: _Lazy) -> str:
        """What the tasks of phase i carry, in words."""
        phase = self.phases[i]
        kinds = []
        if self.cron[i]:
            base = ["workflow", "cron", *(["job"] if phase.job else [])]
            if _batch_rows(phase):
                extra = [k for k in _template_keys(phase) if k not in base]
                kinds.append(
                    f"a batch task carries {_keys(base)}"
                    + (f" and its template's meta keys {_keys(extra)}" if extra else "")
                )
            else:
                kinds.append(f"a cron task carries only {_keys(base)}")
        if self.files[i]:
            rule_keys = [k for k in dict.fromkeys(p.key for p in phase.rule.pairs) if k not in _FILE_KEYS]
            kinds.append(f"a file task carries {_keys(_FILE_KEYS)} and its rule keys {_keys(rule_keys)}")
        if self.parents[i]:
            base = ["workflow"]
            if any(self.carries_cron[p] for p in self.parents[i]):
                base.append("cron")
            if phase.job:
                base.append("job")
            text = f"a child task carries only {_keys(base)}"
            lost = [self.phases[p] for p in self.parents[i] if key in carried[p]]
            batch = phase.rule.batch
            if lost:
                text += f" and drops the rest of its parent's meta, `{key}` from {_names(lost[:1])} included"
            elif batch is not None and batch.meta is not None and any(r.key == key for r in batch.meta.rows):
                text += f": its own `meta={key}:…` fills its template only"
            kinds.append(text)
        if not kinds:
            kinds.append("it never starts")
        return "; ".join(kinds)

    def _meta_flow(self, i: int, carried: _Lazy) -> None:
        phase = self.phases[i]
        require = phase.rule.require
        if not (require and require.keys) and not any(isinstance(p, MetaRef) for p in phase.template.parts):
            return
        parents = list(dict.fromkeys(self.parents[i]))
        from_parents: set[str] = set().union(*(carried[p] for p in parents))
        rule = phase.rule
        missing_required = [k for k in dict.fromkeys(require.keys) if k not in from_parents] if require else []
        batch = rule.batch
        if batch is not None and batch.meta_file is not None:
            refs = []  # a meta-file row may hold any key
        else:
            available = set(from_parents)
            if batch is not None and batch.meta is not None:
                available.update(row.key for row in batch.meta.rows)
            if self.files[i]:
                available.update(_FILE_KEYS)
                available.update(pair.key for pair in rule.pairs)
            refs = [p for p in phase.template.parts if isinstance(p, MetaRef) and p.key not in available]
        if not refs and not missing_required:
            return

        def notes(key: str) -> tuple[str, ...]:
            return tuple(f"started by `{self.phases[p].name}` ({self._describe(p, key, carried)})" for p in parents)

        def fix(key: str, how: str) -> str:
            source = next(
                (self.phases[a] for a in self._ancestors(i) if key in carried[a] and a not in parents), None
            )
            if source is not None:
                return f"only the direct children of `{source.name}` get its `{key}`: depend on `{source.name}`, or {how}"
            if key in ("file", "filename"):
                return f"`{key}` comes only from a file-triggered parent (`files=` in its rule): depend on one, or {how}"
            return f"depend on a phase whose tasks carry `{key}`, or {how}"

        for key in missing_required:
            self.sink.emit(
                codes.META_UNAVAILABLE_IN_CHILD.at(
                    require.span,
                    f"`{phase.name}` is never started by its parents: `require` needs `{{meta:{key}}}`, "
                    f"which no parent task carries",
                    help=fix(key, f"remove `{{meta:{key}}}` from `require`"),
                    notes=notes(key),
                )
            )
        for ref in refs:
            self.sink.emit(
                codes.META_UNAVAILABLE_IN_CHILD.at(
                    ref.span,
                    f"`{{meta:{ref.key}}}` is never filled: no parent task carries `{ref.key}`",
                    help=fix(ref.key, f"add `meta={ref.key}:…` to this phase's rule"),
                    notes=notes(ref.key),
                )
            )


# --- across files ----------------------------------------------------------------------------------


def check_parents_across(names: list[tuple[str, Span]], sources: dict[str, SourceFile], sink: Sink) -> None:
    """Notes on each FL601 whose missing parent is a phase of another linted workflow file.

    `names` holds each file's distinct `topic:job` names with their task spans (as for FL502);
    the missing parent is read back from the source under the FL601's span, its dependsOn."""
    unknown = [n for n, d in enumerate(sink.diagnostics) if d.code == codes.UNKNOWN_PARENT.id]
    if not unknown:
        return
    by_topic: dict[str, list[tuple[str, Span]]] = {}
    for name, span in names:
        by_topic.setdefault(name.partition(":")[0], []).append((name, span))
    for n in unknown:
        diagnostic = sink.diagnostics[n]
        source = sources.get(diagnostic.span.path)
        if source is None:
            continue
        wanted = source.text[diagnostic.span.start : diagnostic.span.end]
        found = [
            (name, span)
            for name, span in by_topic.get(wanted.partition(":")[0], ())
            if span.path != diagnostic.span.path
        ]
        if not found:
            continue
        name, span = next(((m, s) for m, s in found if m == wanted), found[0])
        sink.diagnostics[n] = replace(
            diagnostic,
            notes=(
                *diagnostic.notes,
                f"`{name}` is a phase of `{span.path}`, but Go starts children only from phases of their own workflow file",
            ),
            secondary=(*diagnostic.secondary, Label(span, "in another workflow file")),
        )
