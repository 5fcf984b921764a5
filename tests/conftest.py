from pathlib import Path

import pytest

from flowlord.compiler import lint_files
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.source import MappedText

REPO = Path(__file__).resolve().parents[1]
UPSTREAM_WORKFLOWS = REPO.parent / "shared" / "upstream" / "workflows"


def mapped(text: str) -> MappedText:
    return MappedText.verbatim("<test>", text, 0)


def codes_of(sink: Sink) -> list[str]:
    return [d.code for d in sink.sorted()]


@pytest.fixture
def lint_toml(tmp_path):
    """Lints TOML text written to a file; returns the Compilation."""

    def lint(text: str, name: str = "wf.toml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return lint_files([str(path)])

    return lint
