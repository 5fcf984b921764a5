"""Golden files: one failing example per diagnostic code with its exact `flowlord lint` output,
and clean examples (ours and the Go flowlord's upstream workflows) that must print nothing.

The failing examples are dsl_examples/err/<CODE>-<name>.toml (a folder for FL502) with the
expected text output in <CODE>-<name>.out beside them; after an intended change of a message,
regenerate the outputs with `python tests/update_golden.py` and review the diff.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from flowlord import cli
from flowlord.compiler import codes
from flowlord.compiler.diagnostics import Severity

REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path(__file__).resolve().parents[2] / "shared" / "upstream" / "workflows"

_GEN = Path(__file__).with_name("update_golden.py")
_spec = importlib.util.spec_from_file_location("update_golden", _GEN)
update_golden = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = update_golden  # its dataclass looks itself up there
_spec.loader.exec_module(update_golden)

EXAMPLES = update_golden.examples()
REGENERATE = "run `python tests/update_golden.py` and review the diff"


@pytest.fixture
def lint(monkeypatch, capsys):
    """(exit status, stdout) of the real CLI, `flowlord lint --no-color ARGS...`, run in the
    repository root; stderr must stay empty."""
    monkeypatch.chdir(REPO)

    def run(*args: str) -> tuple[int, str]:
        status = cli.main(["lint", "--no-color", *args])
        captured = capsys.readouterr()
        assert captured.err == ""
        return status, captured.out

    return run


def _ids(examples) -> list[str]:
    return [example.name for example in examples]


# --- failing examples, one per code --------------------------------------------------------------


def test_every_code_has_exactly_one_example():
    by_code: dict[str, list[str]] = {}
    for example in EXAMPLES:
        by_code.setdefault(example.code, []).append(example.name)
    assert sorted(set(by_code) - set(codes.REGISTRY)) == [], "examples of unknown codes"
    assert sorted(set(codes.REGISTRY) - set(by_code)) == [], "codes without an example in dsl_examples/err/"
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_is_named_after_its_code(example):
    assert example.name == f"{example.code}-{codes.REGISTRY[example.code].name}"


def test_every_out_file_belongs_to_an_example():
    outs = {path.name for path in (REPO / "dsl_examples" / "err").glob("*.out")}
    assert outs == {example.out.name for example in EXAMPLES}


def test_the_folder_example_holds_two_files():
    folders = [example for example in EXAMPLES if example.is_folder]
    assert [example.code for example in folders] == ["FL502"]
    assert sorted(p.name for p in (REPO / folders[0].path).iterdir()) == ["a.toml", "b.toml"]


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_output_matches_the_golden_file(example, lint):
    assert example.out.exists(), f"{example.out.name} is missing: {REGENERATE}"
    golden = example.out.read_bytes().decode("utf-8")
    _, out = lint(example.path)
    assert out == golden, f"{example.out.name} is stale: {REGENERATE}"


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_reports_its_code(example, lint):
    _, out = lint(example.path)
    assert f"[{example.code}]" in out


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_exit_status_follows_the_severity(example, lint):
    status, out = lint(example.path)
    strict_status, strict_out = lint("--strict", example.path)
    assert strict_out == out
    if codes.REGISTRY[example.code].severity == Severity.ERROR:
        assert (status, strict_status) == (1, 1)
    else:  # a warning's example shows warnings only: it passes unless --strict
        assert "error[" not in out
        assert (status, strict_status) == (0, 1)


# --- clean examples -----------------------------------------------------------------------------

CLEAN = sorted((REPO / "dsl_examples" / "ok").glob("*.toml")) + sorted(
    (REPO / "dsl_examples").glob("*.toml")
)


def test_there_are_clean_examples():
    assert len(CLEAN) >= 5


@pytest.mark.parametrize("path", CLEAN, ids=[p.relative_to(REPO).as_posix() for p in CLEAN])
def test_clean_example_prints_nothing(path, lint):
    assert lint("--strict", path.relative_to(REPO).as_posix()) == (0, "")


def test_clean_examples_together_print_nothing(lint):
    assert lint("--strict", *(path.relative_to(REPO).as_posix() for path in CLEAN)) == (0, "")


# --- the Go flowlord's own workflows ---------------------------------------------------------------

UPSTREAM_FILES = sorted(UPSTREAM.glob("*.toml")) if UPSTREAM.is_dir() else []
_NO_UPSTREAM = f"{UPSTREAM} is absent (shared/ sits beside the clone)"


@pytest.mark.parametrize(
    "path",
    UPSTREAM_FILES or [pytest.param(None, marks=pytest.mark.skip(reason=_NO_UPSTREAM))],
    ids=[p.name for p in UPSTREAM_FILES] or ["absent"],
)
def test_upstream_workflow_alone_prints_nothing(path, lint):
    assert lint(str(path)) == (0, "")
    assert lint("--strict", str(path)) == (0, "")


def test_upstream_f1_and_f3_together_share_two_phases(lint):
    """f1.toml and f3.toml both define `task2` and `task3`: linted together that is FL502, a
    warning (the run passes unless --strict), and nothing else."""
    f1, f3 = UPSTREAM / "f1.toml", UPSTREAM / "f3.toml"
    if not (f1.is_file() and f3.is_file()):
        pytest.skip(_NO_UPSTREAM)
    status, out = lint("--format", "json", str(f1), str(f3))
    found = [
        (d["code"], d["severity"], d["file"], d["line"], [r["file"] for r in d["related"]])
        for d in json.loads(out)
    ]
    assert found == [
        ("FL502", "warning", str(f3), 8, [str(f1)]),  # task = "task2"
        ("FL502", "warning", str(f3), 13, [str(f1)]),  # task = "task3"
    ]
    assert [d["message"].split()[0] for d in json.loads(out)] == ["`task2`", "`task3`"]
    assert status == 0
    assert lint("--strict", str(f1), str(f3))[0] == 1
