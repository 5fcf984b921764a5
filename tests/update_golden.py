"""Regenerates the golden outputs of the failing examples in dsl_examples/err/.

    python tests/update_golden.py          # rewrite every .out from the current linter
    python tests/update_golden.py --check  # exit 1 when a .out is stale or missing

Each example is `dsl_examples/err/<CODE>-<name>.toml` (or a folder `<CODE>-<name>/` of
workflow files, for checks across files) and its golden output `<CODE>-<name>.out` beside it:
the exact stdout of `flowlord lint --no-color <example>` run from the repository root with the
path relative. Only the .out files are written; the workflow files are never touched.
tests/test_golden.py fails when an output differs from what the linter prints now.
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


def examples() -> list[Example]:
    """Every example in dsl_examples/err/, sorted by name: `<CODE>-<name>.toml` files and
    `<CODE>-<name>/` folders. Other entries (the .out files among them) are ignored."""
    found = []
    for entry in sorted(ERR.iterdir()):
        if entry.is_dir():
            stem = entry.name
        elif entry.suffix == ".toml":
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
    return lint(example.path)[1]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for example in examples():
        text = expected(example)
        current = example.out.read_bytes().decode("utf-8") if example.out.exists() else None
        if current == text:
            continue
        stale.append(example.out.relative_to(REPO).as_posix())
        if not check:
            example.out.write_bytes(text.encode("utf-8"))
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
