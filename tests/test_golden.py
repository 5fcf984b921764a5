"""Golden files: one failing example per diagnostic code with its exact `flowlord lint` output,
clean examples of ours that must print nothing, and the Go flowlord's upstream workflows, which
may draw warnings but no error (their outputs are tests/golden/upstream/<name>.out).

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
    folders = [example for example in EXAMPLES if example.is_folder and len(example.args) == 1]
    assert [example.code for example in folders] == ["FL502"]
    assert sorted(p.name for p in (REPO / folders[0].path).iterdir()) == ["a.toml", "b.toml"]


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_output_matches_the_golden_file(example, lint):
    assert example.out.exists(), f"{example.out.name} is missing: {REGENERATE}"
    golden = example.out.read_bytes().decode("utf-8")
    _, out = lint(*example.args)
    assert out == golden, f"{example.out.name} is stale: {REGENERATE}"


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_reports_its_code(example, lint):
    _, out = lint(*example.args)
    assert f"[{example.code}]" in out


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_exit_status_follows_the_severity(example, lint):
    status, out = lint(*example.args)
    strict_status, strict_out = lint("--strict", *example.args)
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


UPSTREAM_GOLDEN = update_golden.UPSTREAM_GOLDEN


@pytest.mark.parametrize(
    "path",
    UPSTREAM_FILES or [pytest.param(None, marks=pytest.mark.skip(reason=_NO_UPSTREAM))],
    ids=[p.name for p in UPSTREAM_FILES] or ["absent"],
)
def test_upstream_workflow_matches_its_golden(path, lint):
    """Every Go workflow must run unchanged: warnings at most (tests/golden/upstream/<name>.out,
    linted as `../shared/upstream/workflows/<name>.toml` from the repository root)."""
    golden = UPSTREAM_GOLDEN / f"{path.stem}.out"
    assert golden.exists(), f"{golden.name} is missing: {REGENERATE}"
    status, out = lint(update_golden.upstream_arg(path))
    assert out == golden.read_bytes().decode("utf-8"), f"upstream/{golden.name} is stale: {REGENERATE}"
    assert status == 0
    assert "error[" not in out


def test_upstream_goldens_belong_to_upstream_files():
    if not UPSTREAM_FILES:
        pytest.skip(_NO_UPSTREAM)
    outs = {path.name for path in UPSTREAM_GOLDEN.glob("*.out")}
    assert outs == {f"{path.stem}.out" for path in UPSTREAM_FILES}


def test_upstream_warnings_are_the_known_ones(lint):
    """Go accepts these without a word; flowlord warns: f1's `task2` depends on a topic with two
    jobs (FL606) and f1/f3 children use `{meta:file}` below cron tasks (FL607); f3's
    `batch-president` and `b-meta` are batches without a cron (FL604)."""
    found = {}
    for path in UPSTREAM_FILES:
        _, out = lint("--format", "json", str(path))
        found[path.name] = sorted({(d["code"], d["severity"]) for d in json.loads(out)})
    if not found:
        pytest.skip(_NO_UPSTREAM)
    assert found.get("f1.toml") == [("FL606", "warning"), ("FL607", "warning")]
    assert found.get("f3.toml") == [("FL604", "warning"), ("FL607", "warning")]
    assert found.get("jobs.toml") == []


def test_upstream_f1_and_f3_together_share_two_phases(lint):
    """f1.toml and f3.toml both define `task2` and `task3`: linted together that is FL502, a
    warning (the run passes unless --strict), besides what each file gives alone."""
    f1, f3 = UPSTREAM / "f1.toml", UPSTREAM / "f3.toml"
    if not (f1.is_file() and f3.is_file()):
        pytest.skip(_NO_UPSTREAM)
    status, out = lint("--format", "json", str(f1), str(f3))
    alone = lint("--format", "json", str(f1))[1], lint("--format", "json", str(f3))[1]
    assert [d for d in json.loads(out) if d["code"] != "FL502"] == [*json.loads(alone[0]), *json.loads(alone[1])]
    found = [
        (d["code"], d["severity"], d["file"], d["line"], [r["file"] for r in d["related"]])
        for d in json.loads(out)
        if d["code"] == "FL502"
    ]
    assert found == [
        ("FL502", "warning", str(f3), 8, [str(f1)]),  # task = "task2"
        ("FL502", "warning", str(f3), 13, [str(f1)]),  # task = "task3"
    ]
    assert [d["message"].split()[0] for d in json.loads(out) if d["code"] == "FL502"] == ["`task2`", "`task3`"]
    assert status == 0
    assert lint("--strict", str(f1), str(f3))[0] == 1
