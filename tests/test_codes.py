"""The code registry, the long explanations and the README's codes table agree."""

from __future__ import annotations

import importlib.util
import re
import tomllib
from pathlib import Path

import pytest

from flowlord.compiler import codes
from flowlord.compiler.explanations import EXPLANATIONS, Explanation, split_files

_GEN = Path(__file__).with_name("gen_codes_table.py")
_spec = importlib.util.spec_from_file_location("gen_codes_table", _GEN)
gen_codes_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen_codes_table)

IDS = sorted(codes.REGISTRY)
# FL101's example is invalid TOML by design.
NOT_TOML = {"FL101"}


def test_code_ids_and_names():
    names = [c.name for c in codes.REGISTRY.values()]
    assert len(names) == len(set(names))
    for id, code in codes.REGISTRY.items():
        assert code.id == id
        assert re.fullmatch(r"FL\d{3}", id), id
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", code.name), code.name
        assert code.summary and code.summary == code.summary.strip()


def test_every_code_is_explained():
    assert set(EXPLANATIONS) == set(codes.REGISTRY)


def test_explanations_load_lazily_through_codes():
    assert codes.EXPLANATIONS is EXPLANATIONS
    with pytest.raises(AttributeError):
        codes.NO_SUCH_THING  # noqa: B018


@pytest.mark.parametrize("id", IDS)
def test_explanation_is_complete(id):
    explanation = EXPLANATIONS[id]
    assert isinstance(explanation, Explanation)
    for text in (explanation.why, explanation.example, explanation.fix):
        assert text.strip()
    assert explanation.fix != explanation.example
    # A Python module's fix (FL112) declares its phases with the DSL instead.
    assert "[[Phase]]" in explanation.fix or "Workflow()" in explanation.fix
    why = explanation.why
    assert why == why.strip() and why.endswith("."), why
    assert 2 <= len(re.findall(r"\.(?:\s|$)", why)) <= 5, f"{id}: why should be 2-5 sentences"


@pytest.mark.parametrize("id", IDS)
def test_example_and_fix_are_toml(id):
    explanation = EXPLANATIONS[id]
    snippets = [("fix", explanation.fix)]
    if id not in NOT_TOML:
        snippets.append(("example", explanation.example))
    for which, snippet in snippets:
        for name, text in split_files(snippet):
            if name.endswith(".py"):  # a Python workflow module (FL112): valid Python instead
                compile(text, name, "exec")
                continue
            try:
                tomllib.loads(text)
            except tomllib.TOMLDecodeError as error:
                pytest.fail(f"{id} {which} ({name}) is not TOML: {error}")


def test_fl101_example_is_not_toml():
    with pytest.raises(tomllib.TOMLDecodeError):
        tomllib.loads(EXPLANATIONS["FL101"].example)


def test_readme_codes_table_is_current():
    text = gen_codes_table.README.read_text(encoding="utf-8")
    table = gen_codes_table.current_table(text)
    assert table == gen_codes_table.render_table(), "run python tests/gen_codes_table.py"
    rows = [line for line in table.splitlines()[2:] if line.strip()]
    listed = {}
    for row in rows:
        id, name, severity, summary = (cell.strip() for cell in row.strip("|").split(" | "))
        listed[id] = (name.strip("`"), severity, summary.replace("\\|", "|"))
    assert listed == {
        c.id: (c.name, c.severity.value, c.summary) for c in codes.REGISTRY.values()
    }


def _lint(tmp_path: Path, snippet: str) -> set[str]:
    from flowlord.compiler import lint_files
    from flowlord.compiler.files import find_workflow_files

    paths = []
    for name, text in split_files(snippet):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)  # FL503: `# file: orders/daily.toml`
        path.write_text(text, encoding="utf-8")
        paths.append(str(path))
    result = lint_files(paths, keys=dict(find_workflow_files(paths)))
    return {d.code for d in getattr(result, "diagnostics", result)}


@pytest.mark.parametrize("id", IDS)
def test_linter_flags_example_and_passes_fix(id, tmp_path):
    explanation = EXPLANATIONS[id]
    (tmp_path / "example").mkdir()
    (tmp_path / "fix").mkdir()
    assert id in _lint(tmp_path / "example", explanation.example)
    assert id not in _lint(tmp_path / "fix", explanation.fix)
