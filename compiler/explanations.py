"""The long explanation of every diagnostic code, for `flowlord lint --explain CODE` and the README.

Loaded lazily through `codes.EXPLANATIONS` (a module `__getattr__`), so linting never imports it.
Each entry says what the check finds and what the Go flowlord does with such input at run time,
then shows a minimal workflow that triggers exactly that code and the same workflow fixed.

An example that needs several workflow files (FL502) separates them with `# file: NAME` comment
lines; the snippet as a whole is still valid TOML.
"""

from __future__ import annotations

from dataclasses import dataclass
from textwrap import dedent


@dataclass(frozen=True)
class Explanation:
    why: str
    example: str
    fix: str


FILE_MARKER = "# file: "


def split_files(snippet: str) -> list[tuple[str, str]]:
    """(file name, text) pairs of a snippet; one `workflow.toml` unless it has `# file:` lines."""
    files: list[tuple[str, list[str]]] = []
    for line in snippet.splitlines(keepends=True):
        if line.startswith(FILE_MARKER):
            files.append((line[len(FILE_MARKER):].strip(), []))
        else:
            if not files:
                files.append(("workflow.toml", []))
            files[-1][1].append(line)
    return [(name, "".join(lines)) for name, lines in files]


def _toml(text: str) -> str:
    return dedent(text).lstrip("\n")


# What Go does with a cron expression its parser rejects; shared by FL301-FL306 and FL309.
_CRON_ERROR = (
    "Go's `schedule()` fails on it: at start-up flowlord exits, and on a reload the error is only "
    "logged, the previous schedule stays in charge and the half-built new one is never stopped, so "
    "every other cron entry fires twice from then on."
)

# What Go does when it cannot build a cron job from the rule (bad offset/for/meta, meta+meta-file).
_JOB_ERROR = (
    "at start-up flowlord exits, and on a reload a nil job is registered that crashes the process "
    "when its cron fires."
)

_ROOT = _toml(
    """
    [[Phase]]
    task = "extract"
    rule = "cron=0 1 * * *"
    template = "?day={yyyy}-{mm}-{dd}"
    """
)


EXPLANATIONS: dict[str, Explanation] = {
    # --- FL1xx: the workflow file ---------------------------------------------------------------
    "FL101": Explanation(
        why=(
            "The file cannot be parsed as TOML, for example because a string is not closed. Go's "
            "decoder rejects the whole file, with an error message that embeds the entire file "
            "content. At start-up any load error is fatal; on a later reload it is only logged and "
            "the file keeps its old phases, so the edit silently never takes effect."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "worker:lastweek"
            rule = "cron=0 7 7 * * *&for=-168h&by=day
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "worker:lastweek"
            rule = "cron=0 7 7 * * *&for=-168h&by=day"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL102": Explanation(
        why=(
            "Go matches the array of tables to `Phase` case-insensitively (`[[phase]]` and "
            "`[[PHASE]]` work) and silently ignores every other table. A file whose phases sit under "
            "`[[phases]]` is registered with zero phases and no error, so nothing in it ever runs. "
            "Sections such as the README's `[cache]` belong in the flowlord config file, not in a "
            "workflow file."
        ),
        example=_toml(
            """
            [[phases]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL103": Explanation(
        why=(
            "A phase has five keys: `task`, `dependsOn`, `rule`, `retry` and `template`, whose "
            "names Go matches case-insensitively. Go silently ignores any other key, so a "
            "misspelling such as `depends_on` or `retries` drops the setting; Go's own validation "
            "message even suggests `depends_on`, which the decoder does not accept. In the example "
            "`load` loses its parent, has no trigger left and never runs."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            depends_on = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL104": Explanation(
        why=(
            "`retry` must be a TOML integer, and `task`, `dependsOn`, `rule` and `template` must be "
            "strings. A value of another type, such as `retry = \"3\"` or `retry = 1.5`, makes Go's "
            "decoder reject the whole file: at start-up flowlord exits, and on a reload the file "
            "keeps its old phases while the error is only logged."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            retry = "3"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL105": Explanation(
        why=(
            "`task` names the topic the phase's tasks are sent to, and with its job it is the "
            "phase's identity. Go does not require it: the phase is stored with an empty topic, its "
            "cron or file trigger builds tasks with an empty type, Go's child lookup returns nothing "
            "for an empty type, and retries never find the phase. The validation shown in the web UI "
            "does not report it."
        ),
        example=_toml(
            """
            [[Phase]]
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL106": Explanation(
        why=(
            "`task` is a topic, optionally followed by `:` and a job. For `load:orders:daily` Go "
            "takes the job `orders` but stores the whole string as the phase name, so lookups build "
            "`load:orders`, never find the phase, and its failures are neither retried nor alerted. "
            "`load:` has an empty job and makes Go ignore the rule's `job=`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "load:orders:daily"
            rule = "cron=0 2 * * *"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "load:orders"
            rule = "cron=0 2 * * *"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL107": Explanation(
        why=(
            "The job can be given as `task = \"topic:job\"` or with the rule's `job=`. When both are "
            "given and differ, Go uses the job from `task` and ignores `job=` for the phase, yet "
            "still copies `job=` into the meta of file-triggered tasks, so a worker can see two "
            "different jobs. Give the job in one place only."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "load:orders"
            rule = "cron=0 2 * * *&job=users"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "load:orders"
            rule = "cron=0 2 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL108": Explanation(
        why=(
            "Go matches table and key names case-insensitively, so `[[Phase]]` and `[[phase]]` in "
            "one file, or `task` and `Task` in one table, both decode into the same field. They are "
            "decoded in Go's random map order and one overwrites the other, so which phases or "
            "values survive can change from one load to the next. Spell each table and key one way."
        ),
        example=_ROOT
        + _toml(
            """

            [[phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL109": Explanation(
        why=(
            "The file defines no phase at all, for instance because its phases were commented out. "
            "Go loads every file of the workflow directory, whatever its extension, and registers "
            "this one with zero phases and no error. Remove the file or give it a phase."
        ),
        example=_toml(
            """
            # [[Phase]]
            # task = "report"
            # rule = "cron=0 6 * * *"
            # template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL110": Explanation(
        why=(
            "`dependsOn` names the parent as `topic` (any job of it) or `topic:job`. Go splits it on "
            "`:` and silently ignores everything after the second segment, and it compares the parts "
            "exactly, without trimming. So `extract:orders:full` runs after every `extract:orders`, "
            "whatever the third part was meant to select."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "extract:orders"
            rule = "cron=0 1 * * *"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load:orders"
            dependsOn = "extract:orders:full"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "extract:orders"
            rule = "cron=0 1 * * *"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load:orders"
            dependsOn = "extract:orders"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL111": Explanation(
        why=(
            "`retry` is how many times a failed task is re-sent before it goes to the failed topic "
            "and raises an alert. Go accepts a negative count and treats it like 0, so the first "
            "failure is final. Write `retry = 0` to say so."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            retry = -1
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            retry = 0
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL112": Explanation(
        why=(
            "A `.py` workflow module is imported, that is run, to collect its `Workflow`, so an "
            "exception while it runs (a `NameError`, a failed import, a syntax error) leaves "
            "nothing to check; the diagnostic points at the innermost line of the module that the "
            "traceback passes through. A module holds one workflow, as a TOML file does: a second "
            "module-level `Workflow` is reported too, and only the first one is checked. The Go "
            "flowlord reads TOML only, so `flowlord export` writes the module as the TOML it runs."
        ),
        example=_toml(
            """
            # file: workflow.py
            from flowlord import Workflow

            wf = Workflow()
            wf.phase(task="extract", cron="0 1 * * *", template=DAY)
            """
        ),
        fix=_toml(
            """
            # file: workflow.py
            from flowlord import Workflow

            DAY = "?day={yyyy}-{mm}-{dd}"
            wf = Workflow()
            wf.phase(task="extract", cron="0 1 * * *", template=DAY)
            """
        ),
    ),
    # --- FL2xx: rule strings ----------------------------------------------------------------------
    "FL201": Explanation(
        why=(
            "A rule is a URL query: `key=value` segments joined by `&`. A segment without `=` is a "
            "key with an empty value, so Go reads nothing from it: `rule = \"0 0 * * * *\"` has no "
            "`cron=` key and the phase is never scheduled, with no error (only the web UI status "
            "shows it). Likewise the README's `require:{meta:file}` is a key without a value and "
            "requires nothing."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "0 0 * * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 0 * * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL202": Explanation(
        why=(
            "Go reads only `cron`, `offset`, `files`, `count`, `require`, `retry_delay`, `no_alert`, "
            "`job`, `for`, `by`, `meta` and `meta-file` (plus `Template`, `Task`, `Job` and "
            "`Workflow` in child phases) and silently ignores every other key. Keys are "
            "case-sensitive, so the README's `Offset=-6h` does nothing, and neither do `meta_file`, "
            "`retries` or `no-alert`. A file-triggered task copies unknown keys into its meta, which "
            "is their only effect."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "topic"
            rule = "cron=0 0 1 * * *&Offset=-6h"
            template = "?date={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "topic"
            rule = "cron=0 0 1 * * *&offset=-6h"
            template = "?date={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL203": Explanation(
        why=(
            "In child phases Go also applies the rule to the generated task with a parser that fills "
            "fields by their Go names, case-sensitively, so `Template=`, `Task=`, `Job=` and "
            "`Workflow=` override the child's template, topic, job and workflow. The phase itself is "
            "still stored under its own `task`: in the example it is stored as `load` without a job "
            "while its tasks carry job `orders`, so retries look for `load:orders`, find nothing, "
            "and failures are neither retried nor alerted. Use lower-case `job=` or "
            "`task = \"topic:job\"`."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            rule = "Job=orders"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            rule = "job=orders"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL204": Explanation(
        why=(
            "A repeated rule key collects a list of values, but for most keys (`cron`, `offset`, "
            "`retry_delay`, `job`, ...) Go reads only the first and silently drops the others; only "
            "`meta` and `require` values are joined. In the example the phase runs at 06:00 only. "
            "To run at several times, list them in one cron expression."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *&cron=0 18 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6,18 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL205": Explanation(
        why=(
            "A key followed by `=` and nothing else has an empty value, which Go treats like a "
            "missing key: `cron=` means the phase is never scheduled, `retry_delay=` retries "
            "immediately, and `no_alert=` does not suppress alerts. It is usually a value lost while "
            "editing."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=&offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *&offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL206": Explanation(
        why=(
            "`offset`, `for` and `retry_delay` are Go durations: an optional sign, then "
            "`<number><unit>` pairs with the units `ns`, `us`, `ms`, `s`, `m` and `h`; there is no "
            "`d` or `w`. A bad `offset` or `for` makes Go fail to build the cron job: "
            + _JOB_ERROR
            + " A bad `retry_delay` silently becomes 0, so failed tasks are retried at once. A raw "
            "`+` in a rule means a space, so `+4h` must be written `%2B4h`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *&offset=-1d"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *&offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL207": Explanation(
        why=(
            "Go reads every rule with two different parsers. Go's `net/url` parser (for `cron`, "
            "`files`, `require`, `retry_delay`, `no_alert` and `job`) silently drops a whole segment "
            "that contains `;`, and also one with a bad `%` escape; the `uri` parser (for `offset`, "
            "`for`, `by`, `meta` and `meta-file`) keeps `;` as part of the value, cuts the rule off "
            "at the first `#`, and fails on a bad `%` escape. In the example, keys separated by `;` "
            "instead of `&` leave the scheduler without any `cron`, so the phase never runs. "
            "Separate keys with `&` and percent-encode literal `;`, `#` and `%` (`%3B`, `%23`, "
            "`%25`)."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 2 * * *;offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 2 * * *&offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL208": Explanation(
        why=(
            "`by` is the step of a batch: `hour`, `day`, `week` or `month` (Go also accepts "
            "`hourly`, `weekly` and `monthly`, in any letter case). Any other value, including typos "
            "such as `hours`, silently steps by one day. The example makes 3 daily tasks instead of "
            "49 hourly ones."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "rollup"
            rule = "cron=0 0 * * *&for=-48h&by=hours"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "rollup"
            rule = "cron=0 0 * * *&for=-48h&by=hour"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL209": Explanation(
        why=(
            "`meta` is a list of rows `key:value,value,...` separated by `|`, each split at its "
            "first `:`. A row without `:`, like `value=1,2,3` in the README's batch example, makes "
            "Go's rule parser fail with `invalid map format expected key:value`, so the cron job "
            "cannot be built: " + _JOB_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "worker:job-meta"
            rule = "cron=0 1 2 * * *&meta=name:a,b,c|value=1,2,3"
            template = "?name={meta:name}&value={meta:value}&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "worker:job-meta"
            rule = "cron=0 1 2 * * *&meta=name:a,b,c|value:1,2,3"
            template = "?name={meta:name}&value={meta:value}&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL210": Explanation(
        why=(
            "The meta lists are zipped: batch row i takes the i-th value of every key, so all keys "
            "need the same number of values. With unequal lengths Go's batch expansion fails with "
            "`inconsistent lengths in meta` at every run and sends no task; a cron phase raises an "
            "alert, a child phase only logs it. A child's `meta=` is merged into its parent's meta, "
            "whose keys have one value each, so there a `meta=` with more than one value always "
            "fails."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *&meta=table:users,orders,items|region:eu,us"
            template = "?table={meta:table}&region={meta:region}&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *&meta=table:users,orders,items|region:eu,us,us"
            template = "?table={meta:table}&region={meta:region}&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL211": Explanation(
        why=(
            "A batch takes its rows either from `meta=` or from the JSON lines of `meta-file=`, not "
            "both. In a cron phase Go refuses to build the job (`meta_file and meta can not be used "
            "at the same time`): " + _JOB_ERROR + " A child phase is not checked and simply gets the "
            "meta rows followed by the file rows, so each task has the other source's keys blank."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 4 * * *&meta=region:eu,us&meta-file=gs://acme-conf/tables.json"
            template = "?region={meta:region}&table={meta:table}&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 4 * * *&meta-file=gs://acme-conf/tables.json"
            template = "?region={meta:region}&table={meta:table}&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL212": Explanation(
        why=(
            "`for` and `by` only shape the batch of a cron phase: `for` is the range from the cron "
            "time and `by` its step. Go ignores them in child phases, which always generate tasks "
            "for a single instant, and in file phases; `by` alone does nothing without `for`, `meta` "
            "or `meta-file`. To process a range on a schedule, put `for` and `by` on the cron phase."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            rule = "for=-48h&by=day"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "extract"
            rule = "cron=0 1 * * *&for=-48h&by=day"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL213": Explanation(
        why=(
            "Go matches `files=` patterns with `filepath.Match`, which has no `**`: it behaves like "
            "`*` and never crosses a `/`. `gs://acme-logs/app/**/*.json` therefore matches only "
            "files exactly one directory below `app/`; deeper files trigger nothing, and Go only "
            "logs `no match found`. Write one `*` per directory level."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-logs/app/**/*.json"
            template = "{meta:file}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-logs/app/*/*/*/*.json"
            template = "{meta:file}"
            """
        ),
    ),
    "FL214": Explanation(
        why=(
            "`filepath.Match` rejects a malformed pattern, such as an unclosed `[` class or a "
            "trailing `\\`, with an error for every path. Go ignores that error and treats it as no "
            "match, so the phase loads without complaint but no file ever triggers it; each "
            "arriving file only logs `no match found`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-exports/daily/[0-9*.csv"
            template = "{meta:file}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-exports/daily/[0-9]*.csv"
            template = "{meta:file}"
            """
        ),
    ),
    "FL215": Explanation(
        why=(
            "`require` makes a child phase wait for values in its parent's meta: every `{meta:KEY}` "
            "token in it must have a non-empty value there. Text without such a token requires "
            "nothing, so `require=file` is always satisfied and the child always starts. Write the "
            "key as a token: `require={meta:file}`."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            rule = "require=file"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            rule = "require={meta:file}"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL216": Explanation(
        why=(
            "When a task has used up its retries, Go skips the alert whenever `no_alert` has any "
            "non-empty value, so `no_alert=false` and `no_alert=0` suppress alerts too. A bare "
            "`no_alert` has an empty value and suppresses nothing. Write `no_alert=true` to silence "
            "a phase, and leave the key out otherwise."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "load"
            rule = "cron=0 2 * * *&retry_delay=5m&no_alert=false"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "load"
            rule = "cron=0 2 * * *&retry_delay=5m"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL217": Explanation(
        why=(
            "Before a retry Go adds a random jitter of up to 40% of `retry_delay`. When that bound "
            "is not positive, as for a negative delay or one of 1 or 2 nanoseconds, Go's random "
            "call panics and the whole flowlord process crashes the first time the phase fails. The "
            "phase loads and validates fine, so this only shows in production."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "load"
            rule = "cron=0 2 * * *&retry_delay=-30s"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "load"
            rule = "cron=0 2 * * *&retry_delay=30s"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL218": Explanation(
        why=(
            "Go reads the key but it has no effect in this phase. `count` is stored on a file rule "
            "and never used (Go's file grouping is commented out); a `cron` next to `files` is "
            "likewise stored as an unused check on the file rule, although Go also schedules it as a "
            "separate cron job that runs without a file. A file phase copies every rule key into "
            "its tasks' meta, which is the only place the ignored key shows up."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-in/orders/*.csv&count=3"
            template = "{meta:file}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-in/orders/*.csv"
            template = "{meta:file}"
            """
        ),
    ),
    # --- FL3xx: cron expressions --------------------------------------------------------------------
    "FL301": Explanation(
        why=(
            "Go's cron parser (robfig/cron v3) takes 5 fields (minute, hour, day of month, month, "
            "day of week) or 6 with seconds first; any other count fails with `expected 5 to 6 "
            "fields`, so Quartz expressions with a year field are rejected. " + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 0 12 * * ? 2025"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 0 12 * * ?"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL302": Explanation(
        why=(
            "Each cron field has a range: seconds and minutes 0-59, hours 0-23, day of month 1-31, "
            "month 1-12, day of week 0-6. Unlike many cron dialects, `7` is not Sunday: write `0` or "
            "`SUN`. " + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * 7"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * 0"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL303": Explanation(
        why=(
            "The step after `/` must be a positive number; `*/0` fails with `step of range should "
            "be a positive number`. " + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=*/0 * * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=*/5 * * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL304": Explanation(
        why=(
            "The only names Go's cron parser knows are the three-letter `JAN` to `DEC` and `SUN` to "
            "`SAT`, in any letter case, also in ranges such as `MON-FRI`. Other words, such as "
            "`Tues` or `Monday`, fail with `failed to parse int from ...`. " + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 9 * * Tues,Thurs"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 9 * * TUE,THU"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL305": Explanation(
        why=(
            "A cron range goes from a lower to a higher value and never wraps around: `22-2` fails "
            "with `beginning of range (22) beyond end of range (2)`. Split a wrapping range in two. "
            + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "nightly"
            rule = "cron=0 22-2 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "nightly"
            rule = "cron=0 22-23,0-2 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL306": Explanation(
        why=(
            "Go accepts only the exact lower-case descriptors `@yearly`, `@annually`, `@monthly`, "
            "`@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`. `@Daily`, "
            "`@reboot` and an `@every` without a duration fail with `unrecognized descriptor`. "
            + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=@Daily"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=@daily"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL307": Explanation(
        why=(
            "Every field is valid but together they match no date, like the 31st of April, June, "
            "September and November, or `0 0 30 2 *`. robfig/cron looks at most five years ahead, "
            "finds nothing, and the entry silently never runs: Go reports no error, neither at load "
            "nor at run time."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "month-end"
            rule = "cron=0 6 31 4,6,9,11 *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "month-end"
            rule = "cron=0 6 30 4,6,9,11 *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL308": Explanation(
        why=(
            "A cron expression may start with `TZ=<zone> ` or `CRON_TZ=<zone> ` (an IANA zone "
            "name) followed by the schedule. An unknown zone fails like any cron error, and a zone "
            "with nothing after it, such as `cron=TZ=UTC`, makes Go's cron parser panic: flowlord "
            "crashes while scheduling, and the web UI's validation panics too."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=TZ=Europe/Berlin"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=TZ=Europe/Berlin 0 9 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL309": Explanation(
        why=(
            "A cron field is a comma-separated list of `*`, `?`, `N`, `N-M` or a name, each "
            "optionally followed by `/step`. Anything else fails with messages such as `too many "
            "hyphens`, `too many slashes` or `failed to parse int from ...`. " + _CRON_ERROR
        ),
        example=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=0 8-18-2 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=0 8-18/2 * * *"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    "FL310": Explanation(
        why=(
            "`@every` runs at a fixed interval counted from when the schedule was built. Go raises "
            "any interval below one second, including zero and negative ones, to one second, so "
            "`@every 15ms` (a typo for `15m`) sends a task every second."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=@every 15ms"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "poll"
            rule = "cron=@every 15m"
            template = "?hour={yyyy}-{mm}-{dd}T{hh}"
            """
        ),
    ),
    # --- FL4xx: templates ---------------------------------------------------------------------------
    "FL401": Explanation(
        why=(
            "Go's template engine replaces a fixed set of tokens: `{yyyy}`, `{yy}`, `{mm}`, `{dd}` "
            "and `{hh}` in any letter case, `{min}`, `{TS}`, `{SLUG}`, `{HOUR_SLUG}`, `{DAY_SLUG}`, "
            "`{MONTH_SLUG}`, `{host}`, `{pod}`, `{uuid}` and `{meta:KEY}`. Any other `{...}` reaches "
            "the worker literally. The README's `{ts}` and `{UUID}` are not supported: write `{TS}` "
            "and `{uuid}`. Note that `{mm}` is the month; the minute is `{min}`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 * * * *"
            template = "gs://acme-out/export-{ts}.csv"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 * * * *"
            template = "gs://acme-out/export-{TS}.csv"
            """
        ),
    ),
    "FL402": Explanation(
        why=(
            "A `{` without a closing `}`, or a `}` without an opening `{`, is not part of any token, "
            "so Go sends it and the text around it literally. `?day={yyyy}-{mm}-{dd` reaches the "
            "worker as `?day=2024-05-06-{dd`, and the worker then parses a broken date or path."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 6 * * *"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL403": Explanation(
        why=(
            "`{meta:KEY}` is filled only from the meta the phase actually gets. A plain cron phase "
            "(without `for`, `meta` or `meta-file`) never fills meta tokens, a batch fills only the "
            "keys of its meta rows, and a file phase gets `file`, `filename`, `workflow` and the "
            "keys of its own rule. A token the phase can never receive is sent literally or as an "
            "empty string, without any error."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *"
            template = "?table={meta:table}&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *&meta=table:users"
            template = "?table={meta:table}&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL404": Explanation(
        why=(
            "Time tokens are filled from the time of the phase's trigger. A file phase takes it from "
            "the file's path (`YYYY/MM/DD/HH`, `YYYY/MM/DD`, `YYYY-MM-DD`, `YYYY/MM`, or a "
            "`YYYYMMDDTHHMMSS` file name), so a pattern that can never contain a date gives Go's "
            "zero time. With zero time Go returns the template unrendered: every time token reaches "
            "the worker literally, and only `{meta:...}` tokens are filled afterwards. Match a dated "
            "path, or drop the time tokens."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-exports/daily/latest.csv"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-exports/daily/*/*/*/latest.csv"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL405": Explanation(
        why=(
            "A meta token is `{meta:KEY}` where KEY is one or more letters, digits or `_`. With an "
            "empty key or other characters, as in `{meta:table-name}` or `{meta:file.name}`, it is "
            "not a token and Go sends it literally. In a batch the rows are then never referenced, "
            "so every row produces the same task."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *&meta=table-name:users,orders"
            template = "?table={meta:table-name}&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 2 * * *&meta=table_name:users,orders"
            template = "?table={meta:table_name}&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL406": Explanation(
        why=(
            "Go treats the template from its first `#` on as a comment, unless the `#` is the first "
            "character: it sets that part aside, renders the rest, and appends it back unchanged. "
            "Time tokens after the `#` are therefore sent literally, while `{meta:...}` tokens there "
            "are still filled, because meta substitution runs on the whole string. Use `&` to add "
            "another query parameter."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 * * * *"
            template = "?day={yyyy}-{mm}-{dd}#hour={hh}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "report"
            rule = "cron=0 * * * *"
            template = "?day={yyyy}-{mm}-{dd}&hour={hh}"
            """
        ),
    ),
    "FL407": Explanation(
        why=(
            "Go replaces only the first `{uuid}` (exact lower case) with 8 random hex characters; a "
            "second `{uuid}` reaches the worker literally, and `{UUID}` is never replaced. Use a "
            "single `{uuid}`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 * * * *"
            template = "gs://acme-tmp/{uuid}/part-{uuid}.json"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 * * * *"
            template = "gs://acme-tmp/{uuid}/part-0.json"
            """
        ),
    ),
    # --- FL5xx: across phases and files ---------------------------------------------------------------
    "FL501": Explanation(
        why=(
            "A `topic:job` names one phase of a workflow. Defined twice in one file, Go keeps both: "
            "both cron entries fire, a duplicated child phase is sent twice after each completion "
            "of its parent, and error handling applies only one definition's `retry`, `retry_delay` "
            "and `no_alert` to the tasks of both. Merge the definitions or give one of them another "
            "job."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            retry = 1
            template = "?day={yyyy}-{mm}-{dd}&full=true"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            retry = 3
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL502": Explanation(
        why=(
            "Go looks up a failed task's phase by `topic:job` alone, ignoring the workflow file the "
            "task came from, and takes the first match in alphabetical order of workflow file. When "
            "two files define the same `topic:job`, failures from both are therefore handled with "
            "the first file's `retry`, `retry_delay` and `no_alert`. Give each phase its own job."
        ),
        example=_toml(
            """
            # file: orders.toml
            [[Phase]]
            task = "export:daily"
            rule = "cron=0 3 * * *&retry_delay=10m"
            retry = 3
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            # file: users.toml
            [[Phase]]
            task = "export:daily"
            rule = "cron=0 4 * * *"
            retry = 0
            template = "?table=users&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            # file: orders.toml
            [[Phase]]
            task = "export:orders"
            rule = "cron=0 3 * * *&retry_delay=10m"
            retry = 3
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            # file: users.toml
            [[Phase]]
            task = "export:users"
            rule = "cron=0 4 * * *"
            retry = 0
            template = "?table=users&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL503": Explanation(
        why=(
            "Every task carries its workflow file's key in its meta (`workflow=`), and Go finds the "
            "children of a finished task only among the phases stored under that key. The key is "
            "the file's path after the workflow folder (flowlord: relative to the folder argument "
            "that holds it, or the base name of a file argument). Two files with one key replace "
            "each other's phases in Go, and the tasks of one start the children of the other. "
            "Pass the folder that holds both, so each key keeps its sub-folder, or rename a file."
        ),
        example=_toml(
            """
            # file: orders/daily.toml
            [[Phase]]
            task = "export:orders"
            rule = "cron=0 3 * * *"
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            # file: users/daily.toml
            [[Phase]]
            task = "export:users"
            rule = "cron=0 4 * * *"
            template = "?table=users&day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            # file: orders_daily.toml
            [[Phase]]
            task = "export:orders"
            rule = "cron=0 3 * * *"
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            # file: users_daily.toml
            [[Phase]]
            task = "export:users"
            rule = "cron=0 4 * * *"
            template = "?table=users&day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    # --- FL6xx: the phase graph ---------------------------------------------------------------------
    "FL601": Explanation(
        why=(
            "Go starts a phase with `dependsOn` only when a phase of the same workflow file whose "
            "topic (and job, when given) matches finishes a task. A `dependsOn` that names no phase "
            "of the file, because of a typo or because the parent is in another workflow file, "
            "never matches: the phase silently never runs. Go's status page is the only place that "
            "mentions it (`parent task not found`)."
        ),
        example=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extrakt"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL602": Explanation(
        why=(
            "`dependsOn = \"topic:job\"` starts the phase only after a task of that topic with "
            "exactly that job. When the topic exists but none of its phases has that job, nothing "
            "ever starts the phase, and Go says nothing about it. Name one of the topic's jobs, or "
            "only the topic to start after any of them."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "warehouse:snapshot"
            rule = "cron=0 0 1 * * *"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "warehouse:compact"
            dependsOn = "warehouse:snapshots"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "warehouse:snapshot"
            rule = "cron=0 0 1 * * *"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "warehouse:compact"
            dependsOn = "warehouse:snapshot"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL603": Explanation(
        why=(
            "Go has no cycle check: when phases depend on each other in a loop, or a phase depends "
            "on itself, each completion starts the next phase of the loop, forever. Every "
            "elementary cycle is reported with its whole path, parent first. Remove one "
            "`dependsOn` of each loop, and start the chain from a `cron=` or `files=` phase."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "extract"
            rule = "cron=0 1 * * *"
            dependsOn = "load"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_ROOT
        + _toml(
            """

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL604": Explanation(
        why=(
            "A phase runs on a `cron=` schedule, on a file that matches `files=`, or after its "
            "`dependsOn` parent. A phase with none of the three is never started; `meta=`, "
            "`meta-file=` and `for=` make a batch, but a batch too runs only on a cron schedule. "
            "Go accepts such phases without a word (its own test workflows hold some), so this is "
            "a warning."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "meta=table:users,orders"
            template = "?table={meta:table}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export"
            rule = "cron=0 0 2 * * *&meta=table:users,orders"
            template = "?table={meta:table}"
            """
        ),
    ),
    "FL605": Explanation(
        why=(
            "A child runs only after one of its parents finishes a task. When every chain of "
            "parents above it begins at a phase that never starts (no trigger, or a `dependsOn` "
            "that matches nothing), the child never runs either, silently. The warning names the "
            "phases where the chains begin."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "extract"
            rule = "offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "extract"
            rule = "cron=0 0 1 * * *&offset=-24h"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "extract"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL606": Explanation(
        why=(
            "`dependsOn = \"topic\"` without a job makes the phase a child of every phase of that "
            "topic, whatever its job. When the topic has several jobs, the child therefore runs "
            "after each of them, once per parent task. That may be meant; if not, name the job "
            "with `dependsOn = \"topic:job\"`."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "export:orders"
            rule = "cron=0 0 1 * * *"
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "export:users"
            rule = "cron=0 0 2 * * *"
            template = "?table=users&day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "notify"
            dependsOn = "export"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "export:orders"
            rule = "cron=0 0 1 * * *"
            template = "?table=orders&day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "export:users"
            rule = "cron=0 0 2 * * *"
            template = "?table=users&day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "notify"
            dependsOn = "export:users"
            template = "?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
    "FL607": Explanation(
        why=(
            "A child's template is filled from its parent task's meta and its own `meta=` rows, "
            "and its `require` is checked against the parent task's meta. A cron task carries "
            "`workflow`, `cron` and `job`; a batch adds its template's meta keys; a file task "
            "carries `file`, `filename`, `workflow` and its rule keys; a child task only "
            "`workflow`, `cron` and `job`, so a grandchild never sees `{meta:file}`. A key that no "
            "parent carries is filled with an empty string, and a `require` on it means the child "
            "never starts."
        ),
        example=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-in/*/*/*/*.csv"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "ingest"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "index"
            dependsOn = "load"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"
            """
        ),
        fix=_toml(
            """
            [[Phase]]
            task = "ingest"
            rule = "files=gs://acme-in/*/*/*/*.csv"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "load"
            dependsOn = "ingest"
            template = "?day={yyyy}-{mm}-{dd}"

            [[Phase]]
            task = "index"
            dependsOn = "ingest"
            template = "{meta:file}?day={yyyy}-{mm}-{dd}"
            """
        ),
    ),
}
