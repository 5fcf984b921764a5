"""The phase graph checks (FL6xx, compiler/graph_checks.py): small workflows linted whole, and
the (code, line, column) of every diagnostic they get compared with what is expected."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowlord.compiler import lint_files
from flowlord.compiler.graph_checks import MAX_CYCLES

CRON = 'rule = "cron=0 0 1 * * *"'
T = 'template = "?day={yyyy}-{mm}-{dd}"'


def phases(*bodies: str) -> str:
    """A workflow of `[[Phase]]` tables; each body is its lines, `;`-separated."""
    return "\n".join("[[Phase]]\n" + "\n".join(line.strip() for line in body.split(";")) + "\n" for body in bodies)


def found(compilation) -> list[tuple[str, int, int]]:
    result = []
    for d in compilation.diagnostics:
        line, column = compilation.sources[d.span.path].line_col(d.span.start)
        result.append((d.code, line, column))
    return result


# Every table row: (id, workflow text, [(code, line, column)] of every diagnostic, in file order).
# Line numbers count from 1; with `phases()`, phase k (1-based) starts at line 1 + (k - 1) * (n + 2)
# for bodies of n lines, so the rows keep the bodies short and spell the positions out.
CASES = [
    (
        "unknown parent",
        phases(f'task = "extract"; {CRON}; {T}', f'task = "load"; dependsOn = "extrakt"; {T}'),
        [("FL601", 8, 14)],
    ),
    (
        "unknown parent job",
        phases(
            f'task = "w:snapshot"; {CRON}; {T}',
            f'task = "w:compact"; dependsOn = "w:snapshots"; {T}',
        ),
        [("FL602", 8, 14)],
    ),
    (
        "dependsOn topic:job whose topic is only the phase itself",
        phases(f'task = "w:a"; {CRON}; dependsOn = "w:b"; {T}'),
        [("FL602", 4, 14)],
    ),
    (
        "cycle of three, started by a cron",
        phases(
            f'task = "a"; {CRON}; dependsOn = "c"; {T}',
            f'task = "b"; dependsOn = "a"; {T}',
            f'task = "c"; dependsOn = "b"; {T}',
        ),
        [("FL603", 4, 14)],
    ),
    (
        "self-dependency",
        phases(f'task = "a"; {CRON}; {T}', f'task = "b"; dependsOn = "b"; {T}'),
        [("FL603", 8, 14)],
    ),
    (
        "several cycles in one workflow: two through one phase, and one apart",
        phases(
            f'task = "x:1"; dependsOn = "y"; {T}',  # 1
            f'task = "x:2"; dependsOn = "y"; {T}',  # 6
            f'task = "y"; dependsOn = "x"; {T}',  # 11
            f'task = "p"; dependsOn = "q"; {T}',  # 16
            f'task = "q"; dependsOn = "p"; {T}',  # 21
        ),
        # x:1 -> y -> x:1 and x:2 -> y -> x:2 (each from its x phase), p -> q -> p; y has two jobs
        [("FL603", 3, 14), ("FL603", 8, 14), ("FL606", 13, 14), ("FL603", 18, 14)],
    ),
    (
        "diamond: two paths to one phase are no cycle",
        phases(
            f'task = "a"; {CRON}; {T}',  # 1
            f'task = "b:1"; dependsOn = "a"; {T}',  # 6
            f'task = "b:2"; dependsOn = "a"; {T}',  # 11
            f'task = "c"; dependsOn = "b"; {T}',  # 16
            f'task = "d"; dependsOn = "c"; {T}',  # 21
        ),
        [("FL606", 18, 14)],
    ),
    (
        "a deeper diamond through jobs",
        phases(
            f'task = "a:1"; {CRON}; {T}',  # 1
            f'task = "a:2"; dependsOn = "a:1"; {T}',  # 6
            f'task = "b"; dependsOn = "a:1"; {T}',  # 11
            f'task = "c:x"; dependsOn = "a:2"; {T}',  # 16
            f'task = "c:y"; dependsOn = "b"; {T}',  # 21
            f'task = "d"; dependsOn = "c:x"; {T}',  # 26
        ),
        [],
    ),
    (
        "never starts: no trigger at all",
        phases(f'task = "idle"; {T}'),
        [("FL604", 2, 9)],
    ),
    (
        "never starts: a batch without cron",
        phases('task = "batch"; rule = "meta-file=rows.json"; template = "?n={meta:name}"'),
        [("FL604", 2, 9)],
    ),
    (
        "a phase with an error is not called idle too",
        phases(f'task = "a"; dependsOn = "x:y:z"; {T}', f'task = "b"; rule = "0 0 * * * *"; {T}'),
        [("FL110", 3, 14), ("FL201", 8, 9)],
    ),
    (
        "an error in the template does not hide an idle phase",
        phases('task = "a"; template = "?d={yyyy"'),
        [("FL604", 2, 9), ("FL402", 3, 16)],
    ),
    (
        "an unknown table after it does not hide an idle phase",
        '[[Phase]]\ntask = "a"\ntemplate = "?x=1"\n\n[[phases]]\ntask = "b"\n',
        [("FL604", 2, 9), ("FL102", 5, 3)],
    ),
    (
        "below a phase with a rule error, no FL605",
        phases(f'task = "a"; rule = "0 0 * * * *"; {T}', f'task = "b"; dependsOn = "a"; {T}'),
        [("FL201", 3, 9)],
    ),
    (
        "parent never runs: an idle root, two levels down",
        phases(
            f'task = "a"; rule = "offset=-24h"; {T}',
            f'task = "b"; dependsOn = "a"; {T}',
            f'task = "c"; dependsOn = "b"; {T}',
        ),
        [("FL604", 2, 9), ("FL605", 8, 14), ("FL605", 13, 14)],
    ),
    (
        "parent never runs: below an unknown parent",
        phases(f'task = "a"; dependsOn = "nowhere"; {T}', f'task = "b"; dependsOn = "a"; {T}'),
        [("FL601", 3, 14), ("FL605", 8, 14)],
    ),
    (
        "parent never runs: below a cycle that nothing starts",
        phases(
            f'task = "a"; dependsOn = "b"; {T}',
            f'task = "b"; dependsOn = "a"; {T}',
            f'task = "c"; dependsOn = "b"; {T}',
        ),
        [("FL603", 3, 14), ("FL605", 13, 14)],
    ),
    (
        "a child of a live and a dead parent runs",
        phases(
            f'task = "a:1"; {CRON}; {T}',
            f'task = "a:2"; {T}',
            f'task = "b"; dependsOn = "a"; {T}',
        ),
        [("FL604", 7, 9), ("FL606", 12, 14)],
    ),
    (
        "a phase with a parent and its own cron runs",
        phases(f'task = "a"; {T}', f'task = "b"; {CRON}; dependsOn = "a"; {T}'),
        [("FL604", 2, 9)],
    ),
    (
        "ambiguous parent",
        phases(
            f'task = "e:orders"; {CRON}; {T}',
            f'task = "e:users"; {CRON}; {T}',
            f'task = "notify"; dependsOn = "e"; {T}',
        ),
        [("FL606", 13, 14)],
    ),
    (
        "one job and no job are two jobs too",
        phases(f'task = "e"; {CRON}; {T}', f'task = "e:x"; {CRON}; {T}', f'task = "n"; dependsOn = "e"; {T}'),
        [("FL606", 13, 14)],
    ),
    (
        "a topic with one job is no ambiguity",
        phases(f'task = "e:orders"; {CRON}; {T}', f'task = "notify"; dependsOn = "e"; {T}'),
        [],
    ),
]

# Meta flow (FL607): which {meta:key} and require keys each kind of parent task can fill.
FILE_PARENT = 'task = "in"; rule = "files=gs://b/*/*/*/*.csv&job=raw"; template = "{meta:file}?day={yyyy}-{mm}-{dd}"'
META_CASES = [
    (
        "a file task's children get file, filename, workflow and its rule keys",
        phases(
            FILE_PARENT,
            'task = "load"; dependsOn = "in"; rule = "require={meta:file}";'
            ' template = "{meta:file}?n={meta:filename}&w={meta:workflow}&f={meta:files}&j={meta:job}"',
        ),
        [],
    ),
    (
        "a file task carries no cron",
        phases(FILE_PARENT, 'task = "load"; dependsOn = "in"; template = "?c={meta:cron}"'),
        [("FL607", 9, 16)],
    ),
    (
        "meta flow through two levels: the grandchild of a file phase has no file",
        phases(
            FILE_PARENT,  # 1
            'task = "load"; dependsOn = "in"; rule = "require={meta:file}"; template = "{meta:file}"',  # 7
            'task = "index"; dependsOn = "load"; rule = "require={meta:file}"; template = "{meta:file}&w={meta:workflow}"',  # 13
        ),
        [("FL607", 15, 17), ("FL607", 16, 13)],
    ),
    (
        "cron passes down a chain; workflow always",
        phases(
            f'task = "a"; {CRON}; {T}',
            'task = "b"; dependsOn = "a"; template = "?c={meta:cron}"',
            'task = "c"; dependsOn = "b"; template = "?c={meta:cron}&w={meta:workflow}"',
        ),
        [],
    ),
    (
        "a cron task carries job only when its phase has one",
        phases(
            f'task = "a:daily"; {CRON}; {T}',
            f'task = "b"; {CRON}; {T}',
            'task = "c"; dependsOn = "a"; template = "?j={meta:job}"',
            'task = "d"; dependsOn = "b"; template = "?j={meta:job}"',
        ),
        [("FL607", 19, 16)],
    ),
    (
        "a child task carries its own job, not its parent's",
        phases(
            f'task = "a:daily"; {CRON}; {T}',
            'task = "b:x"; dependsOn = "a"; template = "?j={meta:job}"',
            'task = "c"; dependsOn = "b"; template = "?j={meta:job}"',
            'task = "d"; dependsOn = "c"; template = "?j={meta:job}"',
        ),
        [("FL607", 19, 16)],
    ),
    (
        "a batch task carries the meta keys of its template, not its rows",
        phases(
            'task = "export"; rule = "cron=0 0 2 * * *&meta=region:us,eu|bucket:a,b"; template = "?r={meta:region}"',
            'task = "push"; dependsOn = "export"; template = "?r={meta:region}&b={meta:bucket}"',
        ),
        [("FL607", 9, 32)],
    ),
    (
        "a child's own meta rows fill its template, not its require",
        phases(
            f'task = "a"; {CRON}; {T}',
            'task = "b"; dependsOn = "a"; rule = "meta=table:x&require={meta:table}"; template = "?t={meta:table}"',
        ),
        [("FL607", 9, 30)],
    ),
    (
        "a child's own meta-file may fill anything",
        phases(
            f'task = "a"; {CRON}; {T}',
            'task = "b"; dependsOn = "a"; rule = "meta-file=rows.json"; template = "?t={meta:anything}"',
        ),
        [],
    ),
    (
        "a child with two parents: one that carries the key is enough",
        phases(
            'task = "in:files"; rule = "files=gs://b/*/*/*/*.csv"; template = "{meta:file}"',  # 1
            f'task = "in:cron"; {CRON}; {T}',  # 6
            'task = "load"; dependsOn = "in"; template = "{meta:file}&r={meta:region}"',  # 11
        ),
        [("FL606", 13, 14), ("FL607", 14, 27)],
    ),
    (
        "a grandchild of a meta batch",
        phases(
            'task = "e"; rule = "cron=0 0 2 * * *&meta=t:a,b"; template = "?t={meta:t}"',
            'task = "f"; dependsOn = "e"; template = "?t={meta:t}"',
            'task = "g"; dependsOn = "f"; template = "?t={meta:t}"',
        ),
        [("FL607", 14, 16)],
    ),
    (
        "a parent that never starts provides nothing",
        phases(f'task = "a"; {T}', 'task = "b"; dependsOn = "a"; template = "?w={meta:workflow}"'),
        [("FL604", 2, 9), ("FL605", 7, 14), ("FL607", 8, 16)],
    ),
]


@pytest.mark.parametrize("text, expected", [c[1:] for c in CASES + META_CASES], ids=[c[0] for c in CASES + META_CASES])
def test_graph_checks(lint_toml, text, expected):
    assert found(lint_toml(text)) == expected


def _one(lint_toml, text, code):
    diagnostics = [d for d in lint_toml(text).diagnostics if d.code == code]
    assert len(diagnostics) == 1, diagnostics
    return diagnostics[0]


def test_unknown_parent_suggests_topic_and_topic_job(lint_toml):
    text = phases(f'task = "warehouse:snapshot"; {CRON}; {T}', f'task = "c"; dependsOn = "warehous:snapshot"; {T}')
    assert _one(lint_toml, text, "FL601").help == "did you mean `warehouse:snapshot`?"
    text = phases(f'task = "extract"; {CRON}; {T}', f'task = "load"; dependsOn = "extrakt"; {T}')
    d = _one(lint_toml, text, "FL601")
    assert d.message == "no phase of this workflow is `extrakt`: `load` never starts"
    assert d.help == "did you mean `extract`?"


def test_unknown_parent_never_suggests_the_phase_itself(lint_toml):
    d = _one(lint_toml, phases(f'task = "load"; dependsOn = "laod"; {T}'), "FL601")
    assert "did you mean" not in d.help


def test_unknown_parent_job_names_the_jobs(lint_toml):
    text = phases(
        f'task = "w:snapshot"; {CRON}; {T}', f'task = "w:vacuum"; {CRON}; {T}', f'task = "w:compact"; dependsOn = "w:snapshots"; {T}'
    )
    d = _one(lint_toml, text, "FL602")
    assert d.help == "did you mean `w:snapshot`? the phases of topic `w` are `w:snapshot`, `w:vacuum`"


def test_cross_file_parent_is_noted(tmp_path):
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(phases(f'task = "load"; dependsOn = "extract:daily"; {T}'), encoding="utf-8")
    b.write_text(phases(f'task = "extract:daily"; {CRON}; {T}'), encoding="utf-8")
    for jobs in (1, 2):
        diagnostics = [d for d in lint_files([str(a), str(b)], jobs=jobs).diagnostics if d.code == "FL601"]
        assert len(diagnostics) == 1
        d = diagnostics[0]
        assert d.notes == (
            f"`extract:daily` is a phase of `{b}`, but Go starts children only from phases of their own workflow file",
        )
        assert [label.span.path for label in d.secondary] == [str(b)]
    # alone, the same file has no such note
    (d,) = [d for d in lint_files([str(a)]).diagnostics if d.code == "FL601"]
    assert d.notes == () and d.secondary == ()


def test_cross_file_note_in_parallel_mode(tmp_path, monkeypatch):
    import flowlord.compiler as compiler

    monkeypatch.setattr(compiler, "PARALLEL_FROM", 2)
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.write_text(phases(f'task = "load"; dependsOn = "extract"; {T}'), encoding="utf-8")
    b.write_text(phases(f'task = "extract"; {CRON}; {T}'), encoding="utf-8")
    (d,) = [d for d in lint_files([str(a), str(b)], jobs=2).diagnostics if d.code == "FL601"]
    assert d.notes and str(b) in d.notes[0]


def test_cycle_message_paths_and_labels(lint_toml):
    text = phases(
        f'task = "b"; dependsOn = "a"; {T}',
        f'task = "a"; {CRON}; dependsOn = "c"; {T}',
        f'task = "c"; dependsOn = "b"; {T}',
    )
    d = _one(lint_toml, text, "FL603")
    # starts from the phase first in the file, and follows parent -> child
    assert d.message == 'phases start each other in a loop: "b" -> "c" -> "a" -> "b"'
    assert [label.message for label in d.secondary] == ["`c` starts after `b`", "`a` starts after `c`"]
    source = lint_toml(text).sources
    spans = [d.span, *(label.span for label in d.secondary)]
    texts = [next(iter(source.values())).text[s.start : s.end] for s in spans]
    assert texts == ["a", "b", "c"]  # each one's dependsOn value


def test_self_dependency_message(lint_toml):
    d = _one(lint_toml, phases(f'task = "a"; dependsOn = "a"; {T}'), "FL603")
    assert d.message == '`a` depends on itself: "a" -> "a"'
    assert d.secondary == ()


def test_every_cycle_once(lint_toml):
    # a complete graph on three topics with two jobs each has many elementary cycles
    bodies = []
    for topic, parent in (("a", "b"), ("b", "c"), ("c", "a")):
        for job in (1, 2):
            bodies.append(f'task = "{topic}:{job}"; dependsOn = "{parent}"; {T}')
    cycles = [d.message for d in lint_toml(phases(*bodies)).diagnostics if d.code == "FL603"]
    # 2 x 2 x 2 ways once round a -> b -> c, and 4 twice round (through both jobs of each)
    assert len(cycles) == len(set(cycles)) == 12


def test_cycles_are_capped(lint_toml):
    # six topics of three jobs in a ring: 3**6 cycles
    bodies = []
    topics = "abcdef"
    for k, topic in enumerate(topics):
        for job in (1, 2, 3):
            bodies.append(f'task = "{topic}:{job}"; dependsOn = "{topics[k - 1]}"; {T}')
    cycles = [d for d in lint_toml(phases(*bodies)).diagnostics if d.code == "FL603"]
    assert len(cycles) == MAX_CYCLES
    assert sum(bool(d.notes) for d in cycles) == 1


def test_never_starts_says_why(lint_toml):
    d = _one(lint_toml, phases('task = "b"; rule = "meta=k:a,b"; template = "?k={meta:k}"'), "FL604")
    assert "a batch (`meta=`) runs only on a `cron=` schedule" in d.message
    d = _one(lint_toml, phases(f'task = "b"; {T}'), "FL604")
    assert d.message == "`b` never starts: it has no `cron=`, no `files=` and no `dependsOn`"


def test_parent_never_runs_names_the_dead_root(lint_toml):
    text = phases(f'task = "a"; {T}', f'task = "b"; dependsOn = "a"; {T}', f'task = "c"; dependsOn = "b"; {T}')
    diagnostics = [d for d in lint_toml(text).diagnostics if d.code == "FL605"]
    assert [d.message for d in diagnostics] == [
        "`b` never runs: every chain of its parents begins at `a`, and it never starts",
        "`c` never runs: every chain of its parents begins at `a`, and it never starts",
    ]
    assert all([label.message for label in d.secondary] == ["never starts"] for d in diagnostics)


def test_ambiguous_parent_lists_the_jobs(lint_toml):
    text = phases(f'task = "e:orders"; {CRON}; {T}', f'task = "e:users"; {CRON}; {T}', f'task = "n"; dependsOn = "e"; {T}')
    d = _one(lint_toml, text, "FL606")
    assert d.message == "`e` has 2 jobs: `n` starts after each of `e:orders` and `e:users`"
    assert d.help == 'to start after one of them only, write `dependsOn = "e:orders"`'


def test_meta_flow_note_names_the_path(lint_toml):
    text = phases(
        FILE_PARENT,
        'task = "load"; dependsOn = "in"; template = "{meta:file}"',
        'task = "index"; dependsOn = "load"; template = "{meta:file}"',
    )
    d = _one(lint_toml, text, "FL607")
    assert d.message == "`{meta:file}` is never filled: no parent task carries `file`"
    assert d.notes == (
        "started by `load` (a child task carries only `workflow` and drops the rest of its parent's meta, "
        "`file` from `in:raw` included)",
    )
    assert d.help.startswith("only the direct children of `in:raw` get its `file`: depend on `in:raw`")


def test_meta_flow_note_for_a_cron_parent(lint_toml):
    text = phases(f'task = "task1"; rule = "cron=0 * * * *&job=t2"; {T}', 'task = "t"; dependsOn = "task1"; template = "{meta:file}"')
    d = _one(lint_toml, text, "FL607")
    assert d.notes == ("started by `task1:t2` (a cron task carries only `workflow`, `cron`, `job`)",)


def test_require_that_no_parent_meets(lint_toml):
    text = phases(f'task = "a"; {CRON}; {T}', 'task = "b"; dependsOn = "a"; rule = "require={meta:file}"; template = "?x=1"')
    d = _one(lint_toml, text, "FL607")
    assert d.message == "`b` is never started by its parents: `require` needs `{meta:file}`, which no parent task carries"


def test_edges_match_compiler_graph(lint_toml):
    """graph_checks builds its own adjacency, without networkx: the same edges as phase_graph."""
    from flowlord.compiler.graph import phase_graph
    from flowlord.compiler.graph_checks import _Graph

    for case in CASES + META_CASES:
        (workflow,) = lint_toml(case[1]).workflows
        n = len(workflow.phases)
        ours = _Graph(workflow, [False] * n, [False] * n, set(), None)
        edges = {(p, c) for c in range(n) for p in ours.parents[c]}
        assert edges == set(phase_graph(workflow).edges), case[0]


def test_no_networkx_without_a_cycle(tmp_path):
    """A sound workflow with dependsOn lints without importing networkx; a cycle imports it."""
    sound = tmp_path / "sound.toml"
    sound.write_text(phases(f'task = "a"; {CRON}; {T}', f'task = "b"; dependsOn = "a"; {T}'), encoding="utf-8")
    loop = tmp_path / "loop.toml"
    loop.write_text(phases(f'task = "a"; dependsOn = "a"; {T}'), encoding="utf-8")
    code = (
        "import sys\n"
        "from flowlord.compiler import lint_files\n"
        "lint_files([sys.argv[1]])\n"
        "print('networkx' in sys.modules)\n"
    )
    for path, imported in ((sound, "False"), (loop, "True")):
        out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == imported, out.stderr


def test_no_false_positive_on_ok_examples():
    from pathlib import Path

    ok = sorted((Path(__file__).resolve().parents[1] / "dsl_examples" / "ok").glob("*.toml"))
    assert ok
    assert [d.code for d in lint_files([str(p) for p in ok]).diagnostics] == []

