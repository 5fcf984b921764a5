"""Recovers the positions that tomllib does not report.

tomllib gives the values; this scanner walks the same (already validated) text and records,
for every table header and every key/value, where it is. String values get a MappedText: the
decoded string with the file offset of each character, escapes included, so a caret inside a
`rule` or `template` lands on the exact character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .source import MappedText

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]*")
_SIMPLE_ENTRY = re.compile(
    r'(?P<key>[A-Za-z0-9_-]+)[ \t]*=[ \t]*(?P<value>"(?P<string>[^"\\\n]*)"(?!")|-?[0-9]+(?=[ \t]*(?:#|\r?\n|$)))'
)
_BLANK = re.compile(r"(?:[ \t]+|#[^\n]*)*")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\", "e": "\x1b"}


@dataclass
class KeyValue:
    key: str  # the last component of a dotted key
    dotted: tuple[str, ...]
    key_start: int
    key_end: int
    value_start: int
    value_end: int
    string: MappedText | None = None  # set for string values


@dataclass
class Table:
    name: tuple[str, ...]
    is_array: bool
    start: int  # the header's span
    end: int
    name_start: int
    name_end: int
    entries: list[KeyValue] = field(default_factory=list)


@dataclass
class Layout:
    root: list[KeyValue]
    tables: list[Table]


class _Scanner:
    def __init__(self, path: str, text: str):
        self.path = path
        self.text = text
        self.pos = 0

    # -- whitespace, comments ---------------------------------------------------------------
    def skip_blank(self, newlines: bool) -> None:
        """Skips spaces, tabs and comments, and newlines too when `newlines` is set."""
        blank = _BLANK_LINES if newlines else _BLANK
        self.pos = blank.match(self.text, self.pos).end()

    # -- keys ------------------------------------------------------------------------------
    def key_part(self) -> tuple[str, int, int]:
        start = self.pos
        ch = self.text[self.pos]
        if ch == '"' or ch == "'":
            value = self.string()
            return value.text, start, self.pos
        self.pos = _BARE_KEY.match(self.text, start).end()
        return self.text[start : self.pos], start, self.pos

    def dotted_key(self) -> tuple[tuple[str, ...], int, int]:
        """A possibly dotted key: its parts and the span of the whole key."""
        parts = []
        self.skip_blank(newlines=False)
        start = self.pos
        while True:
            part, _, end = self.key_part()
            parts.append(part)
            self.skip_blank(newlines=False)
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                self.skip_blank(newlines=False)
                continue
            return tuple(parts), start, end

    # -- values ----------------------------------------------------------------------------
    def value(self) -> MappedText | None:
        """Skips one value; returns a MappedText when it is a string."""
        text = self.text
        ch = text[self.pos]
        if ch == '"' or ch == "'":
            return self.string()
        if ch == "[":
            self.pos += 1
            while True:
                self.skip_blank(newlines=True)
                if text[self.pos] == "]":
                    self.pos += 1
                    return None
                self.value()
                self.skip_blank(newlines=True)
                if text[self.pos] == ",":
                    self.pos += 1
        if ch == "{":
            self.pos += 1
            while True:
                self.skip_blank(newlines=False)
                if text[self.pos] == "}":
                    self.pos += 1
                    return None
                self.dotted_key()
                self.pos += 1  # '='
                self.skip_blank(newlines=False)
                self.value()
                self.skip_blank(newlines=False)
                if text[self.pos] == ",":
                    self.pos += 1
        # numbers, booleans, dates: up to a delimiter (dates may hold one space before the time)
        n = len(text)
        while self.pos < n and text[self.pos] not in ",]}#\r\n":
            if text[self.pos] in " \t" and not (
                self.pos + 1 < n and text[self.pos + 1].isdigit() and text[self.pos - 1].isdigit()
            ):
                break
            self.pos += 1
        return None

    def string(self) -> MappedText:
        text = self.text
        quote = text[self.pos]
        multi = text.startswith(quote * 3, self.pos)
        self.pos += 3 if multi else 1
        if multi:  # a newline right after the opening quotes is trimmed
            if text.startswith("\r\n", self.pos):
                self.pos += 2
            elif text.startswith("\n", self.pos):
                self.pos += 1
        if not multi:  # the common case, a one-line string without escapes, maps verbatim
            close = text.find(quote, self.pos)
            if quote == "'" or text.find("\\", self.pos, close) < 0:
                start, self.pos = self.pos, close + 1
                return MappedText.verbatim(self.path, text[start:close], start)
        chars: list[str] = []
        offsets: list[int] = []
        while True:
            ch = text[self.pos]
            if ch == quote:
                if not multi:
                    self.pos += 1
                    break
                if text.startswith(quote * 3, self.pos):
                    # up to two quotes may precede the closing triple
                    extra = 0
                    while extra < 2 and text.startswith(quote * 4, self.pos + extra):
                        extra += 1
                    for i in range(extra):
                        chars.append(quote)
                        offsets.append(self.pos + i)
                    self.pos += extra + 3
                    break
            if ch == "\\" and quote == '"':
                start = self.pos
                esc = text[self.pos + 1]
                if esc in _ESCAPES:
                    chars.append(_ESCAPES[esc])
                    offsets.append(start)
                    self.pos += 2
                elif esc in "uU":
                    width = 4 if esc == "u" else 8
                    chars.append(chr(int(text[self.pos + 2 : self.pos + 2 + width], 16)))
                    offsets.append(start)
                    self.pos += 2 + width
                elif esc == "x":
                    chars.append(chr(int(text[self.pos + 2 : self.pos + 4], 16)))
                    offsets.append(start)
                    self.pos += 4
                else:  # line-ending backslash: trim whitespace and newlines
                    self.pos += 1
                    while text[self.pos] in " \t\r\n":
                        self.pos += 1
                continue
            chars.append(ch)
            offsets.append(self.pos)
            self.pos += 1
        end = self.pos - (3 if multi else 1)
        offsets.append(end)
        return MappedText(self.path, "".join(chars), offsets)

    # -- document --------------------------------------------------------------------------
    def document(self) -> Layout:
        root: list[KeyValue] = []
        tables: list[Table] = []
        entries = root
        text, n = self.text, len(self.text)
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= n:
                return Layout(root, tables)
            start = self.pos
            if text[self.pos] == "[":
                is_array = text.startswith("[[", self.pos)
                self.pos += 2 if is_array else 1
                name, name_start, name_end = self.dotted_key()
                self.pos += 2 if is_array else 1
                table = Table(name, is_array, start, self.pos, name_start, name_end)
                tables.append(table)
                entries = table.entries
                continue
            simple = _SIMPLE_ENTRY.match(text, start)
            if simple:  # `key = "plain string"` or `key = 3`: most entries, read in one step
                key, string = simple["key"], simple["string"]
                self.pos = simple.end()
                mapped = None
                if string is not None:
                    mapped = MappedText.verbatim(self.path, string, simple.start("string"))
                entries.append(
                    KeyValue(key, (key,), start, simple.end("key"), simple.start("value"), self.pos, mapped)
                )
                continue
            dotted, key_start, key_end = self.dotted_key()
            self.pos += 1  # '='
            self.skip_blank(newlines=False)
            value_start = self.pos
            string = self.value()
            entries.append(
                KeyValue(dotted[-1], dotted, key_start, key_end, value_start, self.pos, string)
            )


def scan(path: str, text: str) -> Layout:
    """The layout of a TOML document that tomllib has already accepted."""
    return _Scanner(path, text).document()
