"""Diagnostics are data: passes emit them into a Sink and never print or raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


@dataclass(frozen=True)
class Label:
    span: Span
    message: str = ""


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span
    help: str | None = None
    notes: tuple[str, ...] = ()
    secondary: tuple[Label, ...] = ()

    @property
    def sort_key(self) -> tuple:
        return (self.span.path, self.span.start, self.span.end, self.code, self.message)


@dataclass
class Sink:
    """Collects diagnostics; `sorted()` gives them in file order without duplicates."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def emit(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def has_errors(self) -> bool:
        return any(d.severity is Severity.ERROR for d in self.diagnostics)

    def sorted(self) -> list[Diagnostic]:
        unique = {(d.sort_key, d.help): d for d in self.diagnostics}
        return [unique[k] for k in sorted(unique, key=lambda k: k[0])]
