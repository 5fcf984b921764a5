"""What the dashboard is given: the store, the engine and callables of the layer above.

The runtime must not import the compiler's passes, so whatever needs them (the diagram, which
is compiler/dot.py's `workflows_dot` of the AST with its diagnostics; a code's explanation;
a reload) is a callable that the flowlord layer (flowlord/web.py) fills in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flowlord.compiler.plan import Plan

from ..engine import Engine
from ..store import Store

__all__ = ["Diagram", "WebContext"]


@dataclass(frozen=True)
class Diagram:
    """The workflows drawn as SVG (Graphviz's output of `workflows_dot`), and which phase each
    node of it is: Graphviz node name (`w0p1`) -> (workflow key, phase id)."""

    svg: str
    nodes: Mapping[str, tuple[str, str]] = field(default_factory=dict)


def _no_plan() -> Plan | None:
    return None


@dataclass
class WebContext:
    store: Store
    engine: Engine | None = None
    # the running plan (default: the engine's)
    plan: Callable[[], Plan | None] | None = None
    # the latest reload's problems and the lint warnings of the files, as dicts: file, line,
    # column, severity, code, message, help
    diagnostics: Callable[[], list[dict[str, Any]]] = list
    # the running plan's workflows drawn (cached by plan hash by the caller); None: no Graphviz
    diagram_svg: Callable[[], Diagram | None] = lambda: None
    # a code's explanation as text (compiler.report.explain); KeyError for an unknown code
    explain: Callable[[str], str] | None = None
    # POST /refresh: check the workflow files now; returns a dict with `status` (applied,
    # same-plan, unchanged, rejected, error), `added`, `removed`, `modified`, `problems`
    reload: Callable[[], dict[str, Any]] | None = None
    workflow_root: str | None = None  # the folder (or file) /workflow/… serves
    settings: dict[str, Any] = field(default_factory=dict)  # shown on About, secrets masked
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    version: str = ""
    token: str | None = None  # required for state changes when bound off loopback
    host: str = "127.0.0.1"  # the address the server is bound to
    port: int = 8080
    bus_status: Callable[[], dict[str, Any]] = lambda: {"status": "unknown"}
    # runs a coroutine on the engine's event loop and returns its result (the flowlord layer:
    # asyncio.run_coroutine_threadsafe(...).result()); default: asyncio.run in the caller
    submit: Callable[[Awaitable[Any]], Any] | None = None
    now: Callable[[], datetime] | None = None  # default: the engine's clock, else the wall clock
    backload_limit: int = 1000
    base_dir: str | None = None  # where request meta-files may be read (default: workflow_root)
    # runtime/operations.py: GET /notify sends a test message (`ops.send_test`, a coroutine
    # function, run through `submit`); About shows `ops.status()` (notification frequency,
    # last summary, last backup, retention)
    notify: Callable[[], Awaitable[dict[str, Any]]] | None = None
    operations: Callable[[], dict[str, Any]] | None = None

    def current_plan(self) -> Plan | None:
        if self.plan is not None:
            return self.plan()
        return self.engine.plan if self.engine is not None else None

    def current_time(self) -> datetime:
        if self.now is not None:
            return self.now()
        if self.engine is not None:
            return self.engine.clock.now()
        return datetime.now(timezone.utc)
