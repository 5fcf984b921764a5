"""The registry of diagnostic codes: one stable id, a slug, a severity and an explanation each.

Ranges: FL1xx workflow file (TOML, tables, keys, task names), FL2xx rule strings, FL3xx cron
expressions, FL4xx templates, FL5xx across phases and files.
FL6xx the phase graph of a workflow file (dependsOn: parents, cycles, reachability, meta flow).
Severity is error where the Go flowlord would misbehave at run time, warning where it would
run but probably not as meant.
"""

from __future__ import annotations

from dataclasses import dataclass

from .diagnostics import Diagnostic, Label, Severity
from .source import Span

ERROR, WARNING = Severity.ERROR, Severity.WARNING


@dataclass(frozen=True)
class Code:
    id: str
    name: str
    severity: Severity
    summary: str

    def at(
        self,
        span: Span,
        message: str,
        *,
        help: str | None = None,
        notes: tuple[str, ...] = (),
        secondary: tuple[Label, ...] = (),
    ) -> Diagnostic:
        return Diagnostic(self.id, self.severity, message, span, help, notes, secondary)


REGISTRY: dict[str, Code] = {}


def _code(id: str, name: str, severity: Severity, summary: str) -> Code:
    code = Code(id, name, severity, summary)
    assert id not in REGISTRY, id
    REGISTRY[id] = code
    return code


# FL1xx: the workflow file
TOML_SYNTAX = _code("FL101", "toml-syntax", ERROR, "the file is not valid TOML")
UNKNOWN_TABLE = _code("FL102", "unknown-table", ERROR, "a table other than [[Phase]]")
UNKNOWN_KEY = _code("FL103", "unknown-key", ERROR, "a phase key flowlord does not know")
WRONG_TYPE = _code("FL104", "wrong-type", ERROR, "a phase value of the wrong TOML type")
MISSING_TASK = _code("FL105", "missing-task", ERROR, "a phase without a task")
BAD_TASK_NAME = _code("FL106", "bad-task-name", ERROR, "a task that is not `topic` or `topic:job`")
JOB_CONFLICT = _code("FL107", "job-conflict", ERROR, "the job given in both task and rule, differently")
CASE_COLLISION = _code("FL108", "case-collision", ERROR, "the same key or table spelled in two letter cases")
NO_PHASES = _code("FL109", "no-phases", WARNING, "a workflow file without any phase")
BAD_DEPENDS_ON = _code("FL110", "bad-depends-on", ERROR, "a dependsOn that is not `topic` or `topic:job`")
NEGATIVE_RETRY = _code("FL111", "negative-retry", WARNING, "a negative retry count")
PYTHON_ERROR = _code("FL112", "python-error", ERROR, "a Python workflow module that raises on import or holds several workflows")

# FL2xx: rule strings
RULE_NOT_QUERY = _code("FL201", "rule-not-query", ERROR, "a rule segment that is not key=value")
UNKNOWN_RULE_KEY = _code("FL202", "unknown-rule-key", ERROR, "a rule key flowlord does not know")
OVERRIDE_RULE_KEY = _code("FL203", "override-rule-key", WARNING, "a capitalised rule key that overrides a child task field")
DUPLICATE_RULE_KEY = _code("FL204", "duplicate-rule-key", ERROR, "a rule key given twice")
EMPTY_RULE_VALUE = _code("FL205", "empty-rule-value", ERROR, "a rule key without a value")
BAD_DURATION = _code("FL206", "bad-duration", ERROR, "a value that is not a Go duration")
RULE_BAD_CHARACTER = _code("FL207", "rule-bad-character", ERROR, "a character the two Go rule parsers read differently")
BAD_BY = _code("FL208", "bad-by", ERROR, "a `by` that is not hour, day, week or month")
META_SYNTAX = _code("FL209", "meta-syntax", ERROR, "a meta row that is not key:value,value")
META_LENGTHS = _code("FL210", "meta-lengths", ERROR, "meta lists of unequal lengths")
META_AND_META_FILE = _code("FL211", "meta-and-meta-file", ERROR, "meta and meta-file in one rule")
BATCH_WITHOUT_CRON = _code("FL212", "batch-without-cron", WARNING, "for/by that nothing will use")
FILES_DOUBLESTAR = _code("FL213", "files-doublestar", ERROR, "a files glob with `**`")
BAD_GLOB = _code("FL214", "bad-glob", ERROR, "a files glob that cannot match anything")
REQUIRE_WITHOUT_META = _code("FL215", "require-without-meta", WARNING, "a require that names no {meta:key}")
NO_ALERT_VALUE = _code("FL216", "no-alert-value", WARNING, "a no_alert value that Go reads differently")
NEGATIVE_RETRY_DELAY = _code("FL217", "negative-retry-delay", ERROR, "a negative or sub-microsecond retry_delay")
IGNORED_RULE_KEY = _code("FL218", "ignored-rule-key", WARNING, "a rule key the Go flowlord ignores here")

# FL3xx: cron expressions
CRON_FIELD_COUNT = _code("FL301", "cron-field-count", ERROR, "a cron expression without 5 or 6 fields")
CRON_OUT_OF_RANGE = _code("FL302", "cron-out-of-range", ERROR, "a cron value outside its field's range")
CRON_BAD_STEP = _code("FL303", "cron-bad-step", ERROR, "a cron step that is not a positive number")
CRON_UNKNOWN_NAME = _code("FL304", "cron-unknown-name", ERROR, "a cron word that is not a month or day name")
CRON_BAD_RANGE = _code("FL305", "cron-bad-range", ERROR, "a cron range whose start is after its end")
CRON_BAD_DESCRIPTOR = _code("FL306", "cron-bad-descriptor", ERROR, "an unknown or incomplete @descriptor")
CRON_NEVER_FIRES = _code("FL307", "cron-never-fires", ERROR, "a cron expression that matches no date")
CRON_BAD_TIMEZONE = _code("FL308", "cron-bad-timezone", ERROR, "an unknown TZ= zone or a zone without a schedule")
CRON_SYNTAX = _code("FL309", "cron-syntax", ERROR, "a malformed cron field")
CRON_EVERY_SUBSECOND = _code("FL310", "cron-every-subsecond", WARNING, "an @every interval below one second")

# FL4xx: templates
UNKNOWN_TOKEN = _code("FL401", "unknown-template-token", ERROR, "a {token} the template engine does not replace")
UNBALANCED_BRACE = _code("FL402", "unbalanced-brace", ERROR, "a { without } or a } without {")
META_KEY_UNAVAILABLE = _code("FL403", "meta-key-unavailable", WARNING, "a {meta:key} the phase can never receive")
TIME_WITHOUT_TIME = _code("FL404", "time-token-without-time", ERROR, "time tokens in a phase whose trigger carries no time")
BAD_META_TOKEN = _code("FL405", "bad-meta-token", ERROR, "a {meta:…} whose key is empty or has other characters than letters, digits and _")
TOKEN_AFTER_COMMENT = _code("FL406", "token-after-comment", WARNING, "time tokens after the template's # comment")
REPEATED_UUID = _code("FL407", "repeated-uuid", WARNING, "a second {uuid}, which stays literal")

# FL5xx: across phases and files
DUPLICATE_PHASE = _code("FL501", "duplicate-phase", ERROR, "the same topic:job defined twice in one workflow")
DUPLICATE_PHASE_FILES = _code("FL502", "duplicate-phase-across-files", WARNING, "the same topic:job defined in several workflow files")
WORKFLOW_KEY_COLLISION = _code("FL503", "workflow-key-collision", ERROR, "two workflow files with the same workflow key")

# FL6xx: the phase graph (dependsOn)
UNKNOWN_PARENT = _code("FL601", "unknown-parent", ERROR, "a dependsOn that names no phase of the workflow")
UNKNOWN_PARENT_JOB = _code("FL602", "unknown-parent-job", ERROR, "a dependsOn topic:job whose topic has no such job")
PHASE_CYCLE = _code("FL603", "phase-cycle", ERROR, "phases that depend on each other in a loop, or on themselves")
NEVER_STARTS = _code("FL604", "never-starts", WARNING, "a phase without cron, files or dependsOn")
PARENT_NEVER_RUNS = _code("FL605", "parent-never-runs", WARNING, "a phase whose every ancestor chain begins at a phase that never starts")
AMBIGUOUS_PARENT = _code("FL606", "ambiguous-parent", WARNING, "a dependsOn topic without job when the topic has several jobs")
META_UNAVAILABLE_IN_CHILD = _code("FL607", "meta-unavailable-in-child", WARNING, "a child's {meta:key} or require key that no parent task carries")


def lookup(code: str) -> Code | None:
    return REGISTRY.get(code.upper())


def __getattr__(name: str):
    # The long explanations are only needed by --explain and the README: load them lazily.
    if name == "EXPLANATIONS":
        from .explanations import EXPLANATIONS
        return EXPLANATIONS
    raise AttributeError(name)
