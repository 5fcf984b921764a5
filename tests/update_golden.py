"""Regenerates the golden outputs of the failing examples in dsl_examples/err/.

    python tests/update_golden.py          # rewrite every .out from the current linter
    python tests/update_golden.py --check  # exit 1 when a .out is stale or missing

Each example is `dsl_examples/err/<CODE>-<name>.toml` (`.py` for a Python workflow module, or
a folder `<CODE>-<name>/` of workflow files, for checks across files) and its golden output
`<CODE>-<name>.out` beside it:
the exact stdout of `flowlord lint --no-color <example>` run from the repository root with the
path relative. Only the .out files are written; the workflow files are never touched.
tests/test_golden.py fails when an output differs from what the linter prints now.

It also rewrites the DOT goldens of `flowlord graph` in tests/golden/graph/ (GRAPH_EXAMPLES:
`<stem>.dot` is the stdout of `flowlord graph <example>`), which tests/test_graph.py checks,
and the plan goldens in tests/golden/plan/ (PLAN_EXAMPLES: `<stem>.json` is the stdout of
`flowlord plan <example>`), which tests/test_plan.py checks. A folder example that holds only
folders (FL503) is linted with each of them as its own PATH. The simulate goldens in
tests/golden/simulate/ (`<workflow>.<scenario>.out`: the stdout of `flowlord simulate
<workflow>.toml --events <workflow>.<scenario>.jsonl`) are checked by tests/test_simulate.py.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from flowlord import cli

REPO = Path(__file__).resolve().parents[1]
ERR = REPO / "dsl_examples" / "err"
GRAPH_GOLDEN = REPO / "tests" / "golden" / "graph"
GRAPH_EXAMPLES = ("dsl_examples/ok/jobs.toml",)  # relative to REPO, drawn from there
PLAN_GOLDEN = REPO / "tests" / "golden" / "plan"
# The Go flowlord's own workflows (shared/ beside the clone): `<name>.out` is the stdout of
# `flowlord lint --no-color ../shared/upstream/workflows/<name>.toml`; warnings only.
UPSTREAM = REPO.parent / "shared" / "upstream" / "workflows"
UPSTREAM_GOLDEN = REPO / "tests" / "golden" / "upstream"
# relative to REPO, planned from there; tests/test_plan.py checks them
PLAN_EXAMPLES = ("dsl_examples/ok/hourly_etl.toml", "dsl_examples/ok/jobs.toml", "dsl_examples/ok/meta_fanout.toml")
_NAME = re.compile(r"(FL\d{3})-([a-z0-9-]+)")


@dataclass(frozen=True)
class Example:
    code: str  # FL202
    name: str  # FL202-unknown-rule-key
    path: str  # dsl_examples/err/FL202-unknown-rule-key.toml, relative to REPO, with `/`
    out: Path  # the golden output file

    @property
    def is_folder(self) -> bool:
        return (REPO / self.path).is_dir()

    @property
    def args(self) -> tuple[str, ...]:
        """The PATHs it is linted with: itself, or each sub-folder of a folder that holds only
        folders (FL503: files that several folder arguments give one workflow key)."""
        entries = sorted((REPO / self.path).iterdir()) if self.is_folder else []
        if entries and all(entry.is_dir() for entry in entries):
            return tuple(entry.relative_to(REPO).as_posix() for entry in entries)
        return (self.path,)


def examples() -> list[Example]:
    """Every example in dsl_examples/err/, sorted by name: `<CODE>-<name>.toml` files and
    `<CODE>-<name>/` folders. Other entries (the .out files among them) are ignored."""
    found = []
    for entry in sorted(ERR.iterdir()):
        if entry.is_dir():
            stem = entry.name
        elif entry.suffix in (".toml", ".py"):  # a .py example is a Python workflow module
            stem = entry.stem
        else:
            continue
        match = _NAME.fullmatch(stem)
        if match is None:
            raise ValueError(f"{entry}: an example's name must be `<CODE>-<name>`")
        found.append(
            Example(
                code=match.group(1),
                name=stem,
                path=entry.relative_to(REPO).as_posix(),
                out=ERR / f"{stem}.out",
            )
        )
    return found


def lint(*args: str) -> tuple[int, str]:
    """(exit status, stdout) of `flowlord lint --no-color ARGS...` run in the repository root."""
    stdout = io.StringIO()
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout):
            status = cli.main(["lint", "--no-color", *args])
    finally:
        os.chdir(previous)
    return status, stdout.getvalue()


def expected(example: Example) -> str:
    """What the example's .out must hold now."""
    return lint(*example.args)[1]


def graph_dot(path: str) -> str:
    """The stdout of `flowlord graph PATH` (DOT) run in the repository root."""
    stdout = io.StringIO()
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["graph", path])
    finally:
        os.chdir(previous)
    return stdout.getvalue()


def graph_goldens() -> list[tuple[Path, str]]:
    """(golden file, what it must hold now) for each of GRAPH_EXAMPLES."""
    return [(GRAPH_GOLDEN / f"{Path(path).stem}.dot", graph_dot(path)) for path in GRAPH_EXAMPLES]


def plan_json(path: str) -> str:
    """The stdout of `flowlord plan PATH` (JSON) run in the repository root."""
    stdout = io.StringIO()
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout):
            cli.main(["plan", path])
    finally:
        os.chdir(previous)
    return stdout.getvalue()


def plan_goldens() -> list[tuple[Path, str]]:
    """(golden file, what it must hold now) for each of PLAN_EXAMPLES."""
    return [(PLAN_GOLDEN / f"{Path(path).stem}.json", plan_json(path)) for path in PLAN_EXAMPLES]


def upstream_files() -> list[Path]:
    """The upstream workflow files, sorted; none when shared/ is absent."""
    return sorted(UPSTREAM.glob("*.toml")) if UPSTREAM.is_dir() else []


def upstream_arg(path: Path) -> str:
    """The path as given to `flowlord lint`: relative to REPO, e.g. ../shared/upstream/workflows/f1.toml."""
    return Path(os.path.relpath(path, REPO)).as_posix()


def upstream_goldens() -> list[tuple[Path, str]]:
    """(golden file, what it must hold now) for each upstream workflow file."""
    return [(UPSTREAM_GOLDEN / f"{path.stem}.out", lint(upstream_arg(path))[1]) for path in upstream_files()]


SIMULATE_GOLDEN = REPO / "tests" / "golden" / "simulate"


def simulate_scenarios() -> list[tuple[Path, Path]]:
    """(events, workflow) pairs: each `<workflow>.<scenario>.jsonl` in tests/golden/simulate/
    is simulated against `<workflow>.toml` beside it."""
    found = []
    for events in sorted(SIMULATE_GOLDEN.glob("*.*.jsonl")):
        workflow = SIMULATE_GOLDEN / (events.name.split(".", 1)[0] + ".toml")
        if not workflow.is_file():
            raise ValueError(f"{events}: no workflow {workflow.name} beside it")
        found.append((events, workflow))
    return found


def simulate_output(events: Path, workflow: Path) -> str:
    """The stdout of `flowlord simulate WORKFLOW --events EVENTS` (seed 0) run in the
    repository root with relative paths."""
    stdout = io.StringIO()
    previous = os.getcwd()
    os.chdir(REPO)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(io.StringIO()):
            cli.main(["simulate", workflow.relative_to(REPO).as_posix(),
                      "--events", events.relative_to(REPO).as_posix()])
    finally:
        os.chdir(previous)
    return stdout.getvalue()


def simulate_goldens() -> list[tuple[Path, str]]:
    """(golden `.out` file, what it must hold now) for each simulate scenario."""
    return [(events.with_suffix(".out"), simulate_output(events, workflow))
            for events, workflow in simulate_scenarios()]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    targets = [(example.out, expected(example)) for example in examples()] + graph_goldens() + plan_goldens()
    targets += upstream_goldens()
    targets += simulate_goldens()
    for out, text in targets:
        current = out.read_bytes().decode("utf-8") if out.exists() else None
        if current == text:
            continue
        stale.append(out.relative_to(REPO).as_posix())
        if not check:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(text.encode("utf-8"))
    if check:
        for path in stale:
            print(f"stale or missing: {path}", file=sys.stderr)
        if stale:
            print("run python tests/update_golden.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
