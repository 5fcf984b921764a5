"""`flowlord graph` and `compiler.dot.workflows_dot`: the DOT golden, renders with the real
Graphviz `dot` (one SVG node per phase, one SVG edge per dependency), cycles and diagnostics
marked, label escaping, cron in words, and the command line (formats, missing Graphviz).

The DOT golden is tests/golden/graph/jobs.dot; after an intended change of the drawing,
regenerate it with `python tests/update_golden.py` and review the diff.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import graphviz
import pytest

from flowlord import cli
from flowlord.compiler import lint_files
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.dot import RED, ORANGE, cron_in_words, workflows_dot
from flowlord.compiler.graph import phase_graph
from flowlord.compiler.parse_cron import parse_cron
from flowlord.compiler.source import MappedText

REPO = Path(__file__).resolve().parents[1]
OK = sorted((REPO / "dsl_examples" / "ok").glob("*.toml"))
UPSTREAM = sorted((REPO.parent / "shared" / "upstream" / "workflows").glob("*.toml"))
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"

_GEN = Path(__file__).with_name("update_golden.py")
if "update_golden" in sys.modules:
    update_golden = sys.modules["update_golden"]
else:
    _spec = importlib.util.spec_from_file_location("update_golden", _GEN)
    update_golden = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = update_golden  # its dataclass looks itself up there
    _spec.loader.exec_module(update_golden)

CYCLE = """
[[Phase]]
task = "a"
dependsOn = "c"
template = "?x=1"

[[Phase]]
task = "b"
dependsOn = "a"
template = "?x=1"

[[Phase]]
task = "c"
dependsOn = "b"
template = "?x=1"

[[Phase]]
task = "after"
dependsOn = "c"
template = "?x=1"

[[Phase]]
task = "loop"
dependsOn = "loop"
template = "?x=1"

[[Phase]]
task = "root"
rule = "cron=0 5 * * * *"
template = "?h={hh}"

[[Phase]]
task = "leaf"
dependsOn = "root"
template = "?h={hh}"
"""

MARKED = """
[[Phase]]
task = "good"
rule = "cron=0 0 1 * * *"
template = "?d={yyyy}"

[[Phase]]
task = "bad"
rule = "cron=0 0 1 * * *&retry-delay=2m"
template = "?d={yyyy}"

[[Phase]]
task = "shaky"
dependsOn = "good"
rule = "no_alert=false"
template = "?d={yyyy}"
"""


@pytest.fixture(scope="module")
def dot_binary() -> str:
    found = shutil.which("dot")
    assert found, "these tests need Graphviz's `dot`: apt-get install graphviz (the README's test command does)"
    return found


def render_svg(source: str) -> ET.Element:
    return ET.fromstring(graphviz.Source(source).pipe(format="svg"))


def groups(svg: ET.Element, kind: str) -> dict[str, ET.Element]:
    """The SVG's `<g class="node">` (or edge) groups by their title: a node id or `a->b`."""
    found = {}
    for g in svg.iter(f"{SVG}g"):
        if g.get("class") == kind:
            title = g.find(f"{SVG}title").text
            assert title not in found
            found[title] = g
    return found


def texts(group: ET.Element) -> list[str]:
    return [t.text or "" for t in group.iter(f"{SVG}text")]


def strokes(group: ET.Element, shape: str) -> set[str]:
    return {e.get("stroke") for e in group.iter(f"{SVG}{shape}")}


def tooltip(group: ET.Element) -> str:
    return next((a.get(f"{XLINK}title") for a in group.iter(f"{SVG}a")), "")


def lint_text(tmp_path: Path, text: str, name: str = "wf.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return lint_files([str(path)])


# --- the golden ------------------------------------------------------------------------------


@pytest.mark.parametrize("golden,text", update_golden.graph_goldens(), ids=lambda v: getattr(v, "name", ""))
def test_dot_golden(golden: Path, text: str):
    assert golden.exists(), "run `python tests/update_golden.py`"
    assert golden.read_text(encoding="utf-8") == text, (
        "the DOT differs from the golden: run `python tests/update_golden.py` and review the diff"
    )


def test_dot_is_deterministic_and_independent_of_file_order():
    first = lint_files([str(p) for p in OK])
    second = lint_files([str(p) for p in reversed(OK)])
    assert workflows_dot(first.workflows, first.diagnostics) == workflows_dot(
        second.workflows, second.diagnostics
    )


def test_golden_shows_the_phases_and_triggers():
    text = (REPO / "tests" / "golden" / "graph" / "jobs.dot").read_text(encoding="utf-8")
    assert 'label="dsl_examples/ok/jobs.toml"' in text
    assert 'label="warehouse:snapshot\\ndaily at 01:00"' in text
    assert "w0p0 -> w0p1" in text and "w0p0 -> w0p3" in text and "w0p1 -> w0p2" in text


# --- rendered with the real dot ----------------------------------------------------------------


@pytest.mark.parametrize("paths", [[p] for p in OK] + [OK] + ([UPSTREAM] if UPSTREAM else []),
                         ids=lambda ps: ps[0].name if len(ps) == 1 else f"{len(ps)} files")
def test_svg_has_one_node_per_phase_and_one_edge_per_dependency(dot_binary, paths):
    compilation = lint_files([str(p) for p in paths])
    svg = render_svg(workflows_dot(compilation.workflows, compilation.diagnostics))
    expected_nodes, expected_edges = set(), set()
    for index, workflow in enumerate(sorted(compilation.workflows, key=lambda w: w.path)):
        graph = phase_graph(workflow)
        expected_nodes |= {f"w{index}p{i}" for i in graph.nodes}
        expected_edges |= {f"w{index}p{a}->w{index}p{b}" for a, b in graph.edges}
    nodes, edges = groups(svg, "node"), groups(svg, "edge")
    assert set(nodes) == expected_nodes
    assert set(edges) == expected_edges
    names = sorted(p.name for w in compilation.workflows for p in w.phases)
    assert sorted(texts(g)[0] for g in nodes.values()) == names


def test_jobs_svg_counts(dot_binary):
    compilation = lint_files([str(REPO / "dsl_examples" / "ok" / "jobs.toml")])
    svg = render_svg(workflows_dot(compilation.workflows, compilation.diagnostics))
    assert len(groups(svg, "node")) == 4
    assert set(groups(svg, "edge")) == {"w0p0->w0p1", "w0p0->w0p3", "w0p1->w0p2"}
    assert len([g for g in svg.iter(f"{SVG}g") if g.get("class") == "cluster"]) == 1


def test_cycle_edges_are_red_and_others_are_not(dot_binary, tmp_path):
    compilation = lint_text(tmp_path, CYCLE)
    svg = render_svg(workflows_dot(compilation.workflows, compilation.diagnostics))
    edges = groups(svg, "edge")
    red = {title for title, g in edges.items() if RED in strokes(g, "path")}
    # a -> b -> c -> a, and loop -> loop; c -> after and root -> leaf are on no cycle
    assert red == {"w0p0->w0p1", "w0p1->w0p2", "w0p2->w0p0", "w0p4->w0p4"}
    assert set(edges) == red | {"w0p2->w0p3", "w0p5->w0p6"}


def test_phases_with_diagnostics_are_marked(dot_binary, tmp_path):
    compilation = lint_text(tmp_path, MARKED)
    codes = {d.code for d in compilation.diagnostics}
    assert {"FL202", "FL216"} <= codes
    svg = render_svg(workflows_dot(compilation.workflows, compilation.diagnostics))
    nodes = groups(svg, "node")
    good, bad, shaky = nodes["w0p0"], nodes["w0p1"], nodes["w0p2"]
    assert RED in strokes(bad, "path") | strokes(bad, "polygon")
    assert "error[FL202]" in tooltip(bad) and "retry-delay" in tooltip(bad)
    assert ORANGE in strokes(shaky, "ellipse")
    assert "warning[FL216]" in tooltip(shaky)
    assert not {RED, ORANGE} & (strokes(good, "path") | strokes(good, "polygon"))
    assert tooltip(good) == ""


def test_unreadable_file_is_a_marked_note(tmp_path):
    compilation = lint_text(tmp_path, "[[Phase]\ntask = 'x'\n", "broken.toml")
    assert not compilation.workflows
    text = workflows_dot(compilation.workflows, compilation.diagnostics)
    assert "not drawn" in text and "error[FL101]" in text and RED in text


def test_labels_are_escaped(dot_binary, tmp_path):
    # the pattern decodes to  gs://b/<x>/&lt;"q"/\*.gz : entity-like text, quotes, a backslash
    pattern = 'gs://b/<x>/&lt;"q"/\\*.gz'
    folder = tmp_path / 'we"ird & <dir>\\'
    folder.mkdir()
    compilation = lint_text(
        folder,
        '[[Phase]]\ntask = "<t>"\n'
        'rule = "files=gs://b/<x>/%26lt%3B\\"q\\"/\\\\*.gz"\ntemplate = "{meta:file}"\n',
    )
    phase = compilation.workflows[0].phases[0]
    assert phase.rule.triggers[0].pattern == pattern
    source = workflows_dot(compilation.workflows, compilation.diagnostics)
    svg = render_svg(source)
    (node,) = groups(svg, "node").values()
    assert texts(node) == ["<t>", f"files: {pattern}"]
    (cluster,) = [g for g in svg.iter(f"{SVG}g") if g.get("class") == "cluster"]
    assert texts(cluster) == [str(folder / "wf.toml")]


@pytest.mark.parametrize(
    "cron,words",
    [
        ("0 * * * *", "every hour at :00"),
        ("0 5 * * * *", "every hour at :05"),
        ("0 0 1 * * *", "daily at 01:00"),
        ("15 30 2 * * *", "daily at 02:30:15"),
        ("@daily", "daily at 00:00"),
        ("@midnight", "daily at 00:00"),
        ("@hourly", "every hour at :00"),
        ("@weekly", "weekly on Sun at 00:00"),
        ("@monthly", "monthly on day 1 at 00:00"),
        ("@yearly", "yearly on Jan 1 at 00:00"),
        ("@every 1h30m", "every 1h30m"),
        ("*/10 * * * *", "every 10 minutes"),
        ("0 0 */6 * * *", "every 6 hours at :00"),
        ("15 4 * * SUN", "weekly on Sun at 04:15"),
        ("0 9 * * MON-FRI", "Mon-Fri at 09:00"),
        ("0 0 9 * * 1,3,5", "Mon, Wed, Fri at 09:00"),
        ("0 30 6 1,15 * *", "monthly on days 1, 15 at 06:30"),
        ("* * * * * *", "every second"),
        ("TZ=America/New_York 0 0 9 * * *", "daily at 09:00 (America/New_York)"),
        ("0 9-17 * * *", "0 9-17 * * *"),
        ("0 0 12 ? JAN-JUN *", "0 0 12 ? JAN-JUN *"),
        ("0 5,35 * * * *", "0 5,35 * * * *"),
    ],
)
def test_cron_in_words(cron, words):
    sink = Sink()
    spec = parse_cron(MappedText.verbatim("<test>", cron, 0), sink)
    assert spec is not None, sink.diagnostics
    assert cron_in_words(spec) == words


# --- the command line ------------------------------------------------------------------------


def test_cli_writes_dot_to_stdout(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert cli.main(["graph", "dsl_examples/ok/jobs.toml"]) == 0
    captured = capsys.readouterr()
    golden = REPO / "tests" / "golden" / "graph" / "jobs.dot"
    assert captured.out == golden.read_text(encoding="utf-8")
    assert captured.err == ""


def test_cli_writes_svg_by_extension(dot_binary, tmp_path, capsys):
    out = tmp_path / "x.svg"
    assert cli.main(["graph", str(REPO / "dsl_examples" / "ok"), "-o", str(out)]) == 0
    svg = ET.fromstring(out.read_bytes())
    assert svg.tag == f"{SVG}svg"
    assert len(groups(svg, "node")) == sum(len(lint_files([str(p)]).workflows[0].phases) for p in OK)
    assert capsys.readouterr().out == ""


def test_cli_format_overrides_extension(tmp_path):
    out = tmp_path / "x.svg"
    assert cli.main(["graph", str(OK[0]), "--format", "dot", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8").startswith("digraph flowlord {")


def test_cli_unknown_extension_needs_format(tmp_path, capsys):
    assert cli.main(["graph", str(OK[0]), "-o", str(tmp_path / "x.txt")]) == 2
    assert "--format" in capsys.readouterr().err


def test_cli_draws_errors_and_exits_1(tmp_path, capsys):
    path = tmp_path / "wf.toml"
    path.write_text(MARKED, encoding="utf-8")
    assert cli.main(["graph", str(path)]) == 1
    captured = capsys.readouterr()
    assert "error[FL202]" in captured.out
    assert "1 error" in captured.err


def test_cli_refuses_png_to_a_terminal(monkeypatch, capsys):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert cli.main(["graph", str(OK[0]), "--format", "png"]) == 2
    assert sys.stdout.getvalue() == ""
    err = capsys.readouterr().err
    assert "PNG" in err and "-o" in err


def test_cli_png_to_a_pipe_and_to_a_file(dot_binary, tmp_path):
    piped = subprocess.run(
        [sys.executable, "-m", "flowlord", "graph", str(OK[0]), "--format", "png"],
        capture_output=True, check=True,
    )
    assert piped.stdout.startswith(b"\x89PNG\r\n")
    out = tmp_path / "x.png"
    assert cli.main(["graph", str(OK[0]), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n")


def _without_dot(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {**os.environ, "PATH": str(empty)}
    return subprocess.run(
        [sys.executable, "-m", "flowlord", "graph", *args],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )


def test_cli_missing_dot_says_how_to_install(tmp_path):
    result = _without_dot(tmp_path, str(OK[0]), "-o", "x.svg")
    assert result.returncode == 2
    assert "apt-get install graphviz" in result.stderr
    assert "brew install graphviz" in result.stderr
    assert "--format dot" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.svg").exists()


def test_cli_dot_format_works_without_graphviz(tmp_path):
    result = _without_dot(tmp_path, str(OK[0]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("digraph flowlord {")
