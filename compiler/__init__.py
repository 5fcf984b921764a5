"""The compiler's front door: workflow files in, typed AST and diagnostics out."""

from __future__ import annotations

from dataclasses import dataclass, field

from .ast import Workflow
from .diagnostics import Diagnostic
from .source import SourceFile


@dataclass
class Compilation:
    sources: dict[str, SourceFile] = field(default_factory=dict)
    workflows: list[Workflow] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
