"""Template text → Template AST, with the Go template engine's exact token rules.

Go (tmpl.Parse) replaces tokens by string substitution with these spellings: `{SLUG}`,
`{HOUR_SLUG}`, `{DAY_SLUG}`, `{MONTH_SLUG}` and `{TS}` exactly; year, month, day and hour in
any letter case (`{Yyyy}` works; `{mm}` is the MONTH); `{min}` and `{uuid}` lower case only;
`{host}` and `{pod}` in any case; `{meta:key}` with key in [0-9A-Za-z_]. Everything else is
left literal, so the parser reports it. After the first `#` that is not at index 0 Go fills
meta tokens only.
"""

from __future__ import annotations

import re
from functools import lru_cache

from lark import Token

from . import codes
from .ast import HostField, MetaRef, Template, TemplatePart, Text, TimeField
from .diagnostics import Sink
from .grammar import parser
from .source import MappedText
from .suggest import did_you_mean

_EXACT = {"SLUG", "HOUR_SLUG", "DAY_SLUG", "MONTH_SLUG", "TS", "min"}
_ANY_CASE = {"yyyy": "yyyy", "yy": "yy", "mm": "mm", "dd": "dd", "hh": "hh"}
_HOST_ANY_CASE = {"host", "pod"}
_META_KEY = re.compile(r"[0-9A-Za-z_]+")
KNOWN_TOKENS = (
    "yyyy", "yy", "mm", "dd", "hh", "min", "TS", "SLUG", "HOUR_SLUG", "DAY_SLUG", "MONTH_SLUG",
    "host", "pod", "uuid",
)  # fmt: skip
_HELP = {
    "ts": "Go never replaces `{ts}` (the upstream README is wrong): write `{TS}`",
    "uuid": "only lower-case `{uuid}` is replaced: write `{uuid}`",
    "min": "only lower-case `{min}` is replaced: write `{min}`",
}


@lru_cache(maxsize=8192)
def _tokens(text: str) -> tuple[Token, ...]:
    """Tokens hold positions relative to the text, so equal texts share them; templates repeat.

    The grammar's start rule takes any sequence of its tokens, so lexing is the whole parse:
    skipping the LALR pass over a flat list of tokens saves a quarter of the time."""
    return tuple(parser("template", lexer="basic").lex(text))


def parse_template(text: MappedText, sink: Sink) -> Template:
    comment = text.text.find("#")
    if comment <= 0:  # Go: a `#` at index 0 is not a comment
        parts = _parse(text, 0, sink, in_comment=False)
        return Template(span=text.whole(), text=text.text, parts=tuple(parts))
    head = _parse(text.slice(0, comment), 0, sink, in_comment=False)
    tail = _parse(text.slice(comment, len(text.text)), comment, sink, in_comment=True)
    return Template(
        span=text.whole(), text=text.text, parts=tuple(head + tail), comment_at=len(head)
    )


def meta_refs(text: MappedText, sink: Sink) -> list[MetaRef]:
    """The `{meta:key}` references in a string that is not otherwise a template (`require=`)."""
    return [
        part
        for part in _parse(text, 0, sink, in_comment=True, report_tokens=False)
        if isinstance(part, MetaRef)
    ]


def _parse(
    text: MappedText, base: int, sink: Sink, *, in_comment: bool, report_tokens: bool = True
) -> list[TemplatePart]:
    """Parts of one stretch of template; `base` is its index in the whole template."""
    parts: list[TemplatePart] = []
    uuid_seen = False
    tokens = _tokens(text.text)
    for token in tokens:
        start, end = token.start_pos, token.end_pos
        span = text.span(start, end)
        value = str(token)
        if token.type == "TEXT":
            parts.append(Text(span=span, value=value))
            continue
        if token.type == "STRAY":
            if report_tokens and not in_comment:
                _stray_brace(text, start, value, sink)
            parts.append(Text(span=span, value=value))
            continue
        name = value[1:-1]
        if name.startswith("meta:"):
            key = name[5:]
            if _META_KEY.fullmatch(key):
                parts.append(MetaRef(span=span, key=key))
            else:
                if report_tokens:
                    sink.emit(
                        codes.BAD_META_TOKEN.at(
                            span,
                            f"`{value}` is not a meta reference: a key is letters, digits and `_`",
                            help="Go leaves it in the task literally; name the key with letters, digits and `_`",
                        )
                    )
                parts.append(Text(span=span, value=value))
            continue
        part = _time_or_host(name, value, span, uuid_seen)
        if part is None or in_comment:
            if in_comment and isinstance(part, TimeField) and report_tokens:
                sink.emit(
                    codes.TOKEN_AFTER_COMMENT.at(
                        span,
                        f"`{value}` follows the template's `#` comment, where Go fills only meta tokens",
                        help="move the token before the `#`, or drop the `#` if it is not a comment",
                    )
                )
            elif part is None and not in_comment and report_tokens:
                _unknown_token(name, value, span, uuid_seen, sink)
            parts.append(Text(span=span, value=value))
            continue
        if isinstance(part, HostField) and part.name == "uuid":
            uuid_seen = True
        parts.append(part)
    return parts


def _time_or_host(name: str, written: str, span, uuid_seen: bool):
    if name in _EXACT:
        return TimeField(span=span, name=name, written=written)
    lowered = name.lower()
    if lowered in _ANY_CASE:
        return TimeField(span=span, name=_ANY_CASE[lowered], written=written)
    if lowered in _HOST_ANY_CASE:
        return HostField(span=span, name=lowered, written=written)
    if name == "uuid" and not uuid_seen:
        return HostField(span=span, name="uuid", written=written)
    return None


def _unknown_token(name: str, written: str, span, uuid_seen: bool, sink: Sink) -> None:
    if name == "uuid" and uuid_seen:
        sink.emit(
            codes.REPEATED_UUID.at(
                span,
                "a second `{uuid}` is left literal: Go replaces only the first",
                help="use one `{uuid}` per template",
            )
        )
        return
    lowered = name.lower()
    if lowered in _HELP:
        help = _HELP[lowered]
    elif lowered.startswith("meta:"):
        help = f"the prefix is case-sensitive: write `{{meta:{name[5:]}}}`"
    else:
        help = did_you_mean(name, KNOWN_TOKENS, "`{{{}}}`") or (
            "known tokens: " + " ".join(f"{{{t}}}" for t in KNOWN_TOKENS) + " {meta:key}"
        )
    sink.emit(
        codes.UNKNOWN_TOKEN.at(
            span, f"unknown template token `{written}` would reach the worker literally", help=help
        )
    )


def _stray_brace(text: MappedText, start: int, brace: str, sink: Sink) -> None:
    if brace == "{":
        message = "`{` is never closed"
        help = "close the token with `}`, e.g. `{yyyy}`"
    else:
        message = "`}` has no matching `{`"
        help = "remove the `}` or open the token with `{`"
    sink.emit(codes.UNBALANCED_BRACE.at(text.span(start, start + 1), message, help=help))
