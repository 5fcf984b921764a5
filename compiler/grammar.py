"""Loads the Lark grammars shipped in flowlord.grammar, once each. The only module that knows
where the grammar files live; it works from the source tree and from an installed wheel."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark


@cache
def parser(name: str, **options) -> Lark:
    """The LALR parser for grammar/<name>.lark (options are passed to Lark)."""
    text = resources.files("flowlord.grammar").joinpath(f"{name}.lark").read_text(encoding="utf-8")
    return Lark(text, parser="lalr", **options)
