"""Rule string → Rule AST.

A rule is a URL query string read by two Go parsers (net/url and jbsmith7741/uri) that
disagree on `;`, `#` and bad escapes; flowlord reads it once, like net/url (`+` is a space,
`%XX` is decoded), and reports every character the two would read differently. Each value is
then handed to the parser of its own language (cron, duration, meta, template), with a
MappedText so that positions stay exact through percent-escapes.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Token, Tree

from . import codes
from .ast import (
    Batch,
    CronTrigger,
    Duration,
    FileTrigger,
    MetaFile,
    MetaRow,
    MetaSpec,
    Name,
    Offset,
    Require,
    Rule,
    RulePair,
)
from .diagnostics import Label, Sink
from .grammar import parser
from .parse_cron import parse_cron
from .parse_duration import parse_duration
from .parse_template import meta_refs
from .source import MappedText
from .suggest import did_you_mean

RULE_KEYS = (
    "cron", "offset", "files", "require", "retry_delay", "no_alert",
    "for", "by", "meta", "meta-file", "job", "count",
)  # fmt: skip
# Go's uri decoder lets these capitalised keys override a child task's fields.
OVERRIDE_KEYS = ("Template", "Task", "Job", "Workflow")
BATCH_STEPS = {
    "hour": "hour", "hourly": "hour", "day": "day", "daily": "day",
    "week": "week", "weekly": "week", "month": "month", "monthly": "month",
}  # fmt: skip
_FALSE_WORDS = {"false", "0", "no", "off", "f", "n"}
_CRON_LIKE = re.compile(r"^\s*(@\w+|[\d*?/,\-A-Za-z]+(\s+[\d*?/,\-A-Za-z]+){4,5})\s*$")
_HEX = "0123456789abcdefABCDEF"


# The rule grammar's terminals never overlap, so it takes the faster basic lexer; the meta
# grammar's keys and items do, so it needs the lexer that follows the parser's state.
_LEXERS = {"rule": "basic", "meta": "contextual"}


@lru_cache(maxsize=8192)
def _parse(grammar: str, text: str) -> Tree:
    """Trees hold positions relative to the text, so equal texts share one; rules repeat a lot."""
    return parser(grammar, lexer=_LEXERS[grammar]).parse(text)


def parse_rule(text: MappedText, sink: Sink) -> Rule:
    pairs = _segments(text, sink)
    seen: dict[str, RulePair] = {}
    values: dict[str, object] = {}
    meta_rows: list[MetaRow] = []
    meta_pairs: list[RulePair] = []
    for pair, value in pairs:
        key = pair.key
        first = seen.get(key)
        if first is not None and key != "meta":
            sink.emit(
                codes.DUPLICATE_RULE_KEY.at(
                    pair.key_span,
                    f"rule key `{key}` is given twice; Go uses the first value",
                    help="remove one of them",
                    secondary=(Label(first.key_span, "first given here"),),
                )
            )
            continue
        seen.setdefault(key, pair)
        if key not in RULE_KEYS:
            _unknown_key(pair, sink)
            continue
        if not pair.value and key != "no_alert":
            sink.emit(
                codes.EMPTY_RULE_VALUE.at(
                    pair.key_span,
                    f"rule key `{key}` has no value",
                    help=f"give it a value or remove `{key}=`",
                )
            )
            continue
        if key == "meta":
            meta_pairs.append(pair)
            meta_rows.extend(_meta_rows(value, sink))
        else:
            values[key] = _parse_value(key, pair, value, sink)

    if "meta" in seen and "meta-file" in seen:
        sink.emit(
            codes.META_AND_META_FILE.at(
                seen["meta-file"].key_span,
                "`meta` and `meta-file` cannot be used together",
                help="keep one of them; Go refuses to build the job",
                secondary=(Label(seen["meta"].key_span, "`meta` given here"),),
            )
        )
    meta = None
    if meta_pairs:
        meta = MetaSpec(span=meta_pairs[0].value_span, rows=tuple(_merge_rows(meta_rows)))
        _check_meta_lengths(meta, sink)

    triggers = tuple(v for k in ("cron", "files") if isinstance(v := values.get(k), (CronTrigger, FileTrigger)))
    batch = None
    if any(k in seen for k in ("for", "by", "meta", "meta-file")):
        by = values.get("by")
        batch = Batch(
            span=text.whole(),
            for_=values.get("for"),
            by=by if isinstance(by, str) else "day",
            meta=meta,
            meta_file=values.get("meta-file"),
        )
    offset = values.get("offset")
    return Rule(
        span=text.whole(),
        text=text.text,
        pairs=tuple(pair for pair, _ in pairs),
        triggers=triggers,
        offset=Offset(span=offset.span, duration=offset) if isinstance(offset, Duration) else None,
        batch=batch,
        require=values.get("require"),
        retry_delay=values.get("retry_delay"),
        no_alert=bool(values.get("no_alert", False)),
        job=values.get("job"),
    )


# --- segments ----------------------------------------------------------------------------------


def _segments(text: MappedText, sink: Sink) -> list[tuple[RulePair, MappedText]]:
    """The well-formed `key=value` pairs with their decoded values; other segments are reported."""
    pairs = []
    tree = _parse("rule", text.text)
    for segment in tree.children:
        kind = segment.data
        if kind == "empty":
            continue  # Go skips empty segments (`&&`, a trailing `&`)
        tokens: list[Token | Tree] = segment.children  # the value, if any, is a Tree of tokens
        start = tokens[0].start_pos if tokens else 0
        last = tokens[-1] if tokens else None
        end = (last.children[-1] if isinstance(last, Tree) else last).end_pos if tokens else start
        if not _clean(text, start, end, sink):
            continue  # Go's net/url drops the whole segment
        if kind == "bare":
            _bare_segment(text, str(tokens[0]), start, end, sink)
            continue
        if kind == "keyless":
            sink.emit(
                codes.RULE_NOT_QUERY.at(
                    text.span(start, start + 1),
                    "`=` without a key",
                    help="write `key=value`, e.g. `cron=0 * * * *`",
                )
            )
            continue
        key_token = tokens[0]
        key = _decode(text, key_token.start_pos, key_token.end_pos)
        value_start = key_token.end_pos + 1
        value_end = end if len(tokens) > 2 else value_start
        value = _decode(text, value_start, value_end)
        pair = RulePair(
            span=text.span(start, value_end),
            key=key.text,
            value=value.text,
            key_span=key.whole(),
            value_span=text.span(value_start, value_end),
        )
        pairs.append((pair, value))
    return pairs


def _clean(text: MappedText, start: int, end: int, sink: Sink) -> bool:
    """Reports `;`, `#` and bad %-escapes, which the two Go parsers read differently."""
    raw = text.text
    for i in range(start, end):
        ch = raw[i]
        if ch == ";":
            sink.emit(
                codes.RULE_BAD_CHARACTER.at(
                    text.span(i, i + 1),
                    "`;` in a rule: Go's net/url drops this whole segment while the job builder keeps it",
                    help="use `&` between keys, or write `%3B` for a literal semicolon",
                )
            )
            return False
        if ch == "#":
            sink.emit(
                codes.RULE_BAD_CHARACTER.at(
                    text.span(i, i + 1),
                    "`#` in a rule: Go's job builder drops everything after it",
                    help="write `%23` for a literal `#`",
                )
            )
            return False
        if ch == "%" and not (i + 2 < end and raw[i + 1] in _HEX and raw[i + 2] in _HEX):
            sink.emit(
                codes.RULE_BAD_CHARACTER.at(
                    text.span(i, min(i + 3, end)),
                    "invalid %-escape: Go drops this whole segment",
                    help="write `%25` for a literal `%`",
                )
            )
            return False
    return True


def _decode(text: MappedText, start: int, end: int) -> MappedText:
    """Percent-decodes raw[start:end] like Go's url.QueryUnescape, keeping each character's origin."""
    raw = text.text
    if "%" not in raw[start:end] and "+" not in raw[start:end]:
        return text.slice(start, end)
    data = bytearray()
    origins: list[int] = []
    i = start
    while i < end:
        ch = raw[i]
        if ch == "%":
            data.append(int(raw[i + 1 : i + 3], 16))
            origins.append(i)
            i += 3
            continue
        encoded = (" " if ch == "+" else ch).encode()
        data.extend(encoded)
        origins.extend([i] * len(encoded))
        i += 1
    chars: list[str] = []
    offsets: list[int] = []
    j = 0
    while j < len(data):
        lead = data[j]
        width = 1 if lead < 0xC0 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
        chars.append(bytes(data[j : j + width]).decode("utf-8", errors="replace")[:1] or "\ufffd")
        offsets.append(text.offsets[origins[j]])
        j += width
    offsets.append(text.offsets[end])
    return MappedText(text.path, "".join(chars), offsets)


def _bare_segment(text: MappedText, segment: str, start: int, end: int, sink: Sink) -> None:
    span = text.span(start, end)
    stripped = segment.strip()
    if stripped.startswith("require:"):
        help = f"write `require={stripped[len('require:'):]}`: Go reads `require:…` as a key with no value, which requires nothing"
        message = "`require:` is not a rule key"
    elif stripped == "no_alert":
        sink.emit(
            codes.NO_ALERT_VALUE.at(
                span,
                "a bare `no_alert` does not suppress alerts: Go needs a non-empty value",
                help="write `no_alert=true`",
            )
        )
        return
    elif stripped in RULE_KEYS:
        message = f"rule key `{stripped}` has no `=` and no value"
        help = f"write `{stripped}=…`"
    elif stripped.startswith("@") or (" " in stripped and _CRON_LIKE.match(segment)):
        message = "this segment is not `key=value`: without `cron=` the phase is never scheduled"
        help = f"did you mean `cron={stripped}`?"
    else:
        message = f"`{stripped}` is not `key=value`"
        help = did_you_mean(stripped, RULE_KEYS) or "a rule is a query string: `cron=0 * * * *&offset=-4h`"
    sink.emit(codes.RULE_NOT_QUERY.at(span, message, help=help))


def _unknown_key(pair: RulePair, sink: Sink) -> None:
    if pair.key in OVERRIDE_KEYS:
        sink.emit(
            codes.OVERRIDE_RULE_KEY.at(
                pair.key_span,
                f"`{pair.key}=` overrides the {pair.key.lower()} of the tasks this phase starts as a child",
                help=f"rule keys are case-sensitive: write `{pair.key.lower()}=` if you did not mean to override the child task",
            )
        )
        return
    sink.emit(
        codes.UNKNOWN_RULE_KEY.at(
            pair.key_span,
            f"unknown rule key `{pair.key}`: Go ignores it",
            help=did_you_mean(pair.key, RULE_KEYS)
            or "known keys: " + ", ".join(f"`{k}`" for k in RULE_KEYS),
        )
    )


# --- values -------------------------------------------------------------------------------------


def _parse_value(key: str, pair: RulePair, value: MappedText, sink: Sink):
    span = value.whole()
    if key == "cron":
        spec = parse_cron(value, sink)
        return CronTrigger(span=pair.span, spec=spec) if spec is not None else None
    if key in ("offset", "for"):
        return parse_duration(value, sink, key, allow_integer_ns=True)
    if key == "retry_delay":
        delay = parse_duration(value, sink, key)
        if delay is not None and (delay.nanoseconds < 0 or 0 < delay.nanoseconds < 1000):
            sink.emit(
                codes.NEGATIVE_RETRY_DELAY.at(
                    span,
                    f"retry_delay `{value.text}` is negative or below a microsecond: Go panics when it retries",
                    help="use a positive delay such as `30s`",
                )
            )
            return None
        return delay
    if key == "files":
        _check_glob(value, sink)
        return FileTrigger(span=pair.span, pattern=value.text)
    if key == "require":
        refs = meta_refs(value, sink)
        if not refs:
            sink.emit(
                codes.REQUIRE_WITHOUT_META.at(
                    span,
                    "`require` names no `{meta:key}`, so it requires nothing",
                    help="write the meta keys the parent must provide, e.g. `require={meta:file}`",
                )
            )
        return Require(span=span, text=value.text, keys=tuple(r.key for r in refs))
    if key == "no_alert":
        if value.text.strip().lower() in _FALSE_WORDS or not value.text:
            sink.emit(
                codes.NO_ALERT_VALUE.at(
                    pair.span,
                    f"`no_alert={value.text}` does not mean what it says: Go suppresses alerts for any non-empty value, `false` included, and never for an empty one",
                    help="write `no_alert=true` to suppress alerts, or remove the key to keep them",
                )
            )
        return bool(value.text)
    if key == "by":
        step = BATCH_STEPS.get(value.text.lower())
        if step is None:
            sink.emit(
                codes.BAD_BY.at(
                    span,
                    f"`by={value.text}` is not a batch step: Go silently steps by day",
                    help=did_you_mean(value.text, BATCH_STEPS) or "use `hour`, `day`, `week` or `month`",
                )
            )
        return step
    if key == "meta-file":
        return MetaFile(span=span, path=value.text)
    if key == "job":
        return Name(span=span, value=value.text)
    if key == "count":
        sink.emit(
            codes.IGNORED_RULE_KEY.at(
                pair.key_span,
                "`count` is never used by the Go flowlord",
                help="remove it",
            )
        )
    return None


def _check_glob(value: MappedText, sink: Sink) -> None:
    """Go filepath.Match syntax: `*`, `?`, `[...]` (`^` negates), `\\` escapes; no `**`."""
    raw = value.text
    if (i := raw.find("**")) >= 0:
        sink.emit(
            codes.FILES_DOUBLESTAR.at(
                value.span(i, i + 2),
                "`**` is not supported: Go's filepath.Match reads it as `*`, which never crosses `/`",
                help="match each directory level with its own `*`, e.g. `/data/*/*/*.csv`",
            )
        )
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\":
            if i + 1 >= len(raw):
                _bad_glob(value, i, i + 1, "a trailing `\\` escapes nothing", sink)
            i += 2
            continue
        if ch == "[":
            close = _class_end(raw, i)
            if close < 0:
                _bad_glob(value, i, len(raw), "`[` opens a character class that is never closed", sink)
                return
            i = close
        i += 1


def _class_end(raw: str, start: int) -> int:
    """Index of the `]` closing the class opened at `start`, or -1 when the class is malformed."""
    i = start + 1
    if i < len(raw) and raw[i] == "^":
        i += 1
    first = True
    while i < len(raw):
        ch = raw[i]
        if ch == "]" and not first:
            return i
        if ch == "\\":
            i += 1
        elif ch == "-" and first:
            return -1
        first = False
        i += 1
    return -1


def _bad_glob(value: MappedText, start: int, end: int, message: str, sink: Sink) -> None:
    sink.emit(
        codes.BAD_GLOB.at(
            value.span(start, end),
            f"{message}: Go treats the malformed pattern as matching no file",
            help="close the class with `]`, or escape a literal bracket as `\\[`",
        )
    )


# --- meta ---------------------------------------------------------------------------------------


def _meta_rows(value: MappedText, sink: Sink) -> list[MetaRow]:
    rows = []
    tree = _parse("meta", value.text)
    for row in tree.children:
        if row.data == "empty_row":
            continue
        tokens = [t for t in row.children if isinstance(t, Token)]
        first: Token = tokens[0]
        if row.data == "bad_row" or first.type == "COLON":
            if row.data == "bad_row":
                message = f"meta row `{first}` has no `:`"
            else:
                message = "a meta row has an empty key before `:`"
            sink.emit(
                codes.META_SYNTAX.at(
                    value.span(first.start_pos, first.end_pos),
                    message,
                    help="write `key:value1,value2`, rows separated by `|`",
                )
            )
            continue
        values_tree: Tree = row.children[-1]
        items = [t for t in values_tree.children if isinstance(t, Token)]
        end = items[-1].end_pos if items else tokens[1].end_pos
        rows.append(
            MetaRow(
                span=value.span(first.start_pos, end),
                key=str(first),
                values=_row_values(values_tree),
            )
        )
    return rows


def _row_values(values: Tree) -> tuple[str, ...]:
    """Go splits on `,` keeping empty items; `key:` alone is an empty list."""
    tokens = values.children
    if not tokens:
        return ()
    items = [""]
    for token in tokens:
        if token.type == "COMMA":
            items.append("")
        else:
            items[-1] = str(token)
    return tuple(items)


def _merge_rows(rows: list[MetaRow]) -> list[MetaRow]:
    """A later row with the same key replaces an earlier one, as in Go."""
    by_key: dict[str, MetaRow] = {}
    for row in rows:
        by_key[row.key] = row
    return list(by_key.values())


def _check_meta_lengths(meta: MetaSpec, sink: Sink) -> None:
    if len({len(row.values) for row in meta.rows}) <= 1:
        return
    first = meta.rows[0]
    for row in meta.rows[1:]:
        if len(row.values) != len(first.values):
            sink.emit(
                codes.META_LENGTHS.at(
                    row.span,
                    f"meta `{row.key}` has {len(row.values)} values but `{first.key}` has {len(first.values)}",
                    help="give every meta key the same number of values; row i takes value i of each key",
                    secondary=(Label(first.span, f"`{first.key}` has {len(first.values)}"),),
                )
            )
