"""The typed AST: frozen pydantic models named after the grammars. No behaviour lives here.

Every node a user could be blamed for carries a `span` into its workflow file.
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import core_schema

from .source import Span


class _TupleAsBuilt:
    """Takes a tuple as it is and validates anything else (a list, JSON) element by element.

    The parsers assemble the AST from nodes they have just built, so checking every element of
    every tuple again cost 4% of a lint; a plan read from JSON is still checked in full.
    """

    def __get_pydantic_core_schema__(self, source, handler):
        checked = handler(source)
        as_built = core_schema.union_schema(
            [core_schema.is_instance_schema(tuple), checked], mode="left_to_right"
        )
        return core_schema.json_or_python_schema(json_schema=checked, python_schema=as_built)


Item = TypeVar("Item")
TupleOf = Annotated[tuple[Item, ...], _TupleAsBuilt()]


class Node(BaseModel):
    model_config = ConfigDict(frozen=True)

    span: Span


class Name(Node):
    """A string value with its position (task, topic, job, dependsOn parts)."""

    value: str


# --- Go durations --------------------------------------------------------------------------


class Duration(Node):
    text: str
    nanoseconds: int


# --- cron (robfig/cron v3 dialect) ---------------------------------------------------------

CronFieldName = Literal["second", "minute", "hour", "day_of_month", "month", "day_of_week"]


class CronField(Node):
    name: CronFieldName
    text: str
    values: TupleOf[int]
    # robfig's star bit: the field was `*` or `?` with step 1; it decides the dom/dow AND/OR rule.
    star: bool


class CronSpec(Node):
    text: str
    timezone: str | None = None
    descriptor: str | None = None  # "@daily", "@every", … as written
    every: Duration | None = None  # only for @every
    fields: TupleOf[CronField] = ()  # six fields, seconds first; empty for @every


# --- rule parts ------------------------------------------------------------------------------


class RulePair(Node):
    """One `key=value` segment as written; `value` is percent-decoded like Go's net/url."""

    key: str
    value: str
    key_span: Span
    value_span: Span


class CronTrigger(Node):
    kind: Literal["cron"] = "cron"
    spec: CronSpec


class FileTrigger(Node):
    kind: Literal["files"] = "files"
    pattern: str


Trigger = Annotated[Union[CronTrigger, FileTrigger], Field(discriminator="kind")]


class Offset(Node):
    duration: Duration


class MetaRow(Node):
    key: str
    values: TupleOf[str]


class MetaSpec(Node):
    rows: TupleOf[MetaRow]


class MetaFile(Node):
    path: str


BatchStep = Literal["hour", "day", "week", "month"]


class Batch(Node):
    for_: Duration | None = None
    by: BatchStep = "day"
    meta: MetaSpec | None = None
    meta_file: MetaFile | None = None


class Require(Node):
    text: str
    keys: TupleOf[str]


class RetryPolicy(Node):
    retries: int = 0
    delay: Duration | None = None
    no_alert: bool = False


class Rule(Node):
    text: str
    pairs: TupleOf[RulePair] = ()
    triggers: TupleOf[Trigger] = ()
    offset: Offset | None = None
    batch: Batch | None = None
    require: Require | None = None
    retry_delay: Duration | None = None
    no_alert: bool = False
    job: Name | None = None


# --- templates -------------------------------------------------------------------------------

TimeFieldName = Literal[
    "yyyy", "yy", "mm", "dd", "hh", "min", "TS", "SLUG", "HOUR_SLUG", "DAY_SLUG", "MONTH_SLUG"
]


class Text(Node):
    kind: Literal["text"] = "text"
    value: str


class TimeField(Node):
    kind: Literal["time"] = "time"
    name: TimeFieldName
    written: str  # as written, e.g. "{YYYY}"


class MetaRef(Node):
    kind: Literal["meta"] = "meta"
    key: str


class HostField(Node):
    kind: Literal["host"] = "host"
    name: Literal["host", "pod", "uuid"]
    written: str


TemplatePart = Annotated[
    Union[Text, TimeField, MetaRef, HostField], Field(discriminator="kind")
]


class Template(Node):
    text: str
    parts: TupleOf[TemplatePart] = ()
    # Parts from this index on follow the template's `#` comment: Go fills their meta tokens only.
    comment_at: int | None = None


# --- phases and workflows --------------------------------------------------------------------


class DependsOn(Node):
    topic: str
    job: str | None = None  # None: any job of the topic


class Phase(Node):
    """One [[Phase]] table; `span` is its header."""

    task: Name
    topic: str
    job: str | None = None
    depends_on: DependsOn | None = None
    rule: Rule
    retry: RetryPolicy
    template: Template

    @property
    def name(self) -> str:
        return f"{self.topic}:{self.job}" if self.job else self.topic


class Workflow(Node):
    path: str
    phases: TupleOf[Phase] = ()
