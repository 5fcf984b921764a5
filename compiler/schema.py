"""A JSON Schema (draft 2020-12) of the workflow FILE format, for TOML editors.

Generated from pydantic models of the file as written (not the AST). Go matches the table
name and the keys case-insensitively; JSON Schema cannot say that, so the schema names the
canonical spellings (`Phase`, `dependsOn`) and accepts every other letter case through
patternProperties. Only `flowlord schema` uses this module; regenerate the committed copy with
`python -m flowlord.compiler.schema > dsl_examples/workflow.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

NAME = r"[^:\s]+(:[^:\s]+)?"
RULE_KEYS = (
    "cron", "offset", "files", "require", "retry_delay", "no_alert", "for", "by", "meta",
    "meta-file", "job", "count",
    # Capitalised keys override a child task's fields in Go (lint warns about them).
    "Template", "Task", "Job", "Workflow",
)
_PAIR = "(?:" + "|".join(RULE_KEYS) + ")=[^&]*"
RULE = f"^(?:{_PAIR})?(?:&(?:{_PAIR})?)*$"


class PhaseTable(BaseModel):
    """One [[Phase]] table: a task, when it runs and what it is sent."""

    model_config = ConfigDict(
        extra="forbid", title="Phase", field_title_generator=lambda name, _: name
    )

    task: str = Field(
        description="The topic the task is sent to, optionally with a job: `topic` or `topic:job`. "
        "`topic:job` names the phase and must be unique.",
        pattern=f"^{NAME}$",
        examples=["extract_events", "warehouse:snapshot"],
    )
    dependsOn: str = Field(
        "",
        description="The parent phase, `topic` (any job of it) or `topic:job`. The phase starts "
        "when its parent completes. Empty: the phase starts only by its rule (cron or files).",
        pattern=f"^({NAME})?$",
        examples=["extract_events", "warehouse:snapshot"],
    )
    rule: str = Field(
        "",
        description="A query string of `key=value` pairs joined by `&`. Keys: cron, offset, files, "
        "require, retry_delay, no_alert, for, by, meta, meta-file, job, count. Durations are Go "
        "durations (`-4h30m`, `90s`; no `d`). Crons are robfig/cron v3: 6 fields with seconds "
        "first, or 5 without seconds.",
        pattern=RULE,
        examples=[
            "cron=0 5 * * * *&offset=-1h&retry_delay=2m",
            "files=gs://acme-logs/web/*/*/*/*/*.log.gz",
            "cron=0 0 3 * * *&for=-48h&by=hour",
            "cron=0 30 2 * * *&meta=region:us,eu|bucket:acme-us,acme-eu",
            "require={meta:file}",
        ],
    )
    retry: int = Field(
        0,
        description="How many times a failed task is sent again before it counts as failed.",
        examples=[3],
    )
    template: str = Field(
        "",
        description="The task's info string. Tokens: {yyyy} {yy} {mm} (month) {dd} {hh} {min} {TS} "
        "{SLUG} {HOUR_SLUG} {DAY_SLUG} {MONTH_SLUG} {host} {pod} {uuid} {meta:key}. Text after "
        "the first `#` (not at the start) is a comment that time tokens do not fill.",
        examples=["?hour={yyyy}-{mm}-{dd}T{hh}", "{meta:file}?day={yyyy}-{mm}-{dd}"],
    )


class WorkflowFile(BaseModel):
    """A flowlord workflow file: an array of [[Phase]] tables."""

    model_config = ConfigDict(extra="forbid", title="flowlord workflow file")

    Phase: list[PhaseTable] = Field(
        description="The workflow's phases. `[[phase]]` (any letter case) is the same table.",
    )


def _other_case(word: str) -> str:
    """A regex of `word` in any letter case but the canonical one (which `properties` covers)."""
    letters = "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)
    return f"^(?!{word}$){letters}$"


def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of a workflow file, as a dict."""
    schema = WorkflowFile.model_json_schema()
    phase = schema["$defs"]["PhaseTable"]
    phase["patternProperties"] = {
        _other_case(name): {k: v for k, v in prop.items() if k in ("type", "pattern")}
        for name, prop in phase["properties"].items()
    }
    # `task` is required in some letter case: unless another case is present, ask for `task`.
    phase["if"] = {"propertyNames": {"not": {"pattern": _other_case("task")}}}
    phase["then"] = {"required": phase.pop("required")}
    schema["patternProperties"] = {_other_case("Phase"): schema["properties"]["Phase"]}
    schema.pop("required")  # Go accepts any letter case, and a file without phases
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def workflow_schema_json() -> str:
    """The schema as the text committed in dsl_examples/workflow.schema.json."""
    return json.dumps(workflow_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(workflow_schema_json(), end="")
