"""Loads the Lark grammars shipped in flowlord.grammar, once each. The only module that knows
where the grammar files live; it works from the source tree and from an installed wheel."""

from __future__ import annotations

from functools import cache
from importlib import resources

from lark import Lark


@cache
def parser(name: str, **options) -> Lark:
    """The LALR parser for grammar/<name>.lark (options are passed to Lark).

    Built once per name and options, so options must be hashable: give several start symbols
    as a tuple (Lark itself wants a list)."""
    text = resources.files("flowlord.grammar").joinpath(f"{name}.lark").read_text(encoding="utf-8")
    if isinstance(options.get("start"), tuple):
        options["start"] = list(options["start"])
    return Lark(text, parser="lalr", cache=True, **options)
