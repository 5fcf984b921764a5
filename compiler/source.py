"""Source files, spans and the one place where string positions become file positions.

Spans are character offsets into a SourceFile's text; 1-based line:column is computed only
when a diagnostic is rendered. Embedded languages (rule, template, cron) are parsed on their
own decoded text; a MappedText remembers, for each decoded character, the offset it came from
in the file, so escapes (TOML `\\u00e9`, URL `%2B`) never skew a caret.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Sequence


@dataclass(frozen=True, slots=True)
class Span:
    """Half-open range [start, end) of character offsets in the file at `path`.

    A plain dataclass, not a pydantic model: the AST holds tens of spans per phase, and
    pydantic accepts a Span instance as it is (see the schema below) instead of rebuilding it.
    """

    path: str
    start: int
    end: int

    def __reduce__(self):  # pickles as a constructor call: 3x faster than the slots state
        return Span, (self.path, self.start, self.end)

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        from pydantic_core import core_schema

        fields = core_schema.typed_dict_schema(
            {
                "path": core_schema.typed_dict_field(core_schema.str_schema()),
                "start": core_schema.typed_dict_field(core_schema.int_schema()),
                "end": core_schema.typed_dict_field(core_schema.int_schema()),
            }
        )
        from_dict = core_schema.no_info_after_validator_function(lambda d: cls(**d), fields)
        return core_schema.json_or_python_schema(
            json_schema=from_dict,
            python_schema=core_schema.union_schema([core_schema.is_instance_schema(cls), from_dict]),
            serialization=core_schema.plain_serializer_function_ser_schema(
                lambda span: {"path": span.path, "start": span.start, "end": span.end}
            ),
        )


@dataclass(eq=False)
class SourceFile:
    path: str
    text: str
    _line_starts: list[int] | None = field(default=None, repr=False)

    def line_starts(self) -> list[int]:
        if self._line_starts is None:
            starts = [0]
            starts.extend(i + 1 for i, ch in enumerate(self.text) if ch == "\n")
            self._line_starts = starts
        return self._line_starts

    def line_col(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of an offset; column counts characters."""
        starts = self.line_starts()
        line = bisect.bisect_right(starts, offset) - 1
        return line + 1, offset - starts[line] + 1

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        starts = self.line_starts()
        begin = starts[line - 1]
        end = starts[line] - 1 if line < len(starts) else len(self.text)
        return self.text[begin:end].rstrip("\r")

    def span(self, start: int, end: int) -> Span:
        return Span(self.path, start, end)


class MappedText:
    """A decoded string with the file offset of each of its characters.

    `offsets` has len(text) + 1 entries: offsets[i] is where character i starts in the file and
    offsets[len(text)] is where the string ends, so any [i, j) slice maps to a file span.
    """

    __slots__ = ("path", "text", "offsets")

    def __init__(self, path: str, text: str, offsets: Sequence[int]):
        if len(offsets) != len(text) + 1:
            raise ValueError("offsets must have one entry per character plus the end")
        self.path = path
        self.text = text
        self.offsets = offsets

    @classmethod
    def verbatim(cls, path: str, text: str, base: int) -> "MappedText":
        """A string that appears unchanged in the file at offset `base`."""
        return cls(path, text, range(base, base + len(text) + 1))

    def span(self, start: int, end: int | None = None) -> Span:
        """File span of decoded characters [start, end); an empty range stays empty."""
        offsets = self.offsets
        if end is None or end < start:
            end = start
        if start < 0 or end >= len(offsets):  # clamp to the string
            n = len(offsets) - 1
            start, end = min(max(start, 0), n), min(max(end, 0), n)
        return Span(self.path, offsets[start], offsets[end])

    def whole(self) -> Span:
        return Span(self.path, self.offsets[0], self.offsets[-1])

    def slice(self, start: int, end: int) -> "MappedText":
        """The substring [start, end), still mapped to the file."""
        return MappedText(self.path, self.text[start:end], self.offsets[start : end + 1])

    def __repr__(self) -> str:
        return f"MappedText({self.text!r})"
