"""The JSON Schema of the workflow file: committed copy is current, and it accepts real files."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from flowlord.compiler.schema import workflow_schema

ROOT = Path(__file__).parents[1]
COMMITTED = ROOT / "dsl_examples" / "workflow.schema.json"
UPSTREAM = ROOT.parent / "shared" / "upstream" / "workflows"


def test_committed_schema_is_current():
    assert json.loads(COMMITTED.read_text(encoding="utf-8")) == workflow_schema(), (
        "dsl_examples/workflow.schema.json is stale: regenerate it with "
        "`python -m flowlord.compiler.schema > dsl_examples/workflow.schema.json`"
    )


@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the `test` extra")
    jsonschema.Draft202012Validator.check_schema(workflow_schema())
    return jsonschema.Draft202012Validator(workflow_schema())


def _errors(validator, data: dict) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(data)]


def _load(path: Path) -> dict:
    return tomllib.loads(path.read_text(encoding="utf-8"))


OK_EXAMPLES = sorted((ROOT / "dsl_examples" / "ok").glob("*.toml"))


@pytest.mark.parametrize("path", OK_EXAMPLES, ids=lambda p: p.name)
def test_ok_examples_validate(validator, path):
    assert _errors(validator, _load(path)) == []


def test_upstream_workflows_validate(validator):
    if not UPSTREAM.is_dir():
        pytest.skip(f"{UPSTREAM} is absent (shared/ sits beside the clone)")
    paths = sorted(UPSTREAM.glob("*.toml"))
    assert paths
    for path in paths:
        assert _errors(validator, _load(path)) == [], path


@pytest.mark.parametrize(
    "text, where",
    [
        ('[[phases]]\ntask = "a"\n', "phases"),
        ('[[Phase]]\ntask = "a"\ndepends_on = "b"\n', "depends_on"),
        ('[[Phase]]\ntask = "a"\nretry = "3"\n', "retry"),
        ('[[Phase]]\ntask = "a:b:c"\n', "task"),
        ('[[Phase]]\nrule = "cron=@daily"\n', "task"),
        ('[[Phase]]\ntask = "a"\nrule = "0 0 * * * *"\n', "rule"),
        ('[[Phase]]\ntask = "a"\nrule = "cron=@daily&Offset=-1h"\n', "rule"),
        ('[[Phase]]\ntask = "a"\nrule = "require:{meta:file}"\n', "rule"),
    ],
)
def test_wrong_files_do_not_validate(validator, text, where):
    errors = _errors(validator, tomllib.loads(text))
    assert errors and any(where in e for e in errors), errors


def test_any_letter_case_is_accepted(validator):
    text = '[[phase]]\nTask = "a"\nDependsOn = "b"\nRULE = "cron=@daily"\nRetry = 1\n'
    assert _errors(validator, tomllib.loads(text)) == []
