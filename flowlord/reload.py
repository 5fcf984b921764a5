"""Hot reload: recompile the workflow files when they change, keep the last good plan otherwise.

`WorkflowWatcher` polls the workflow files every `interval` seconds (and on demand,
`await watcher.reload()`): it lists them again (compiler.files.find_workflow_files, so new files
are picked up and deleted ones drop out) and compares each file's MD5 with what it compiled
last. On a change it recompiles the whole set:

* it compiles (no error): `on_plan(plan)` is called once, and the plan becomes `watcher.plan`;
* it does not: the last good plan stays, and `on_diagnostics(problems)` gets the errors and
  warnings with their file:line:col (`Problem`); nothing is called again until the files change.

Unchanged content (a `touch`, an editor saving the same bytes) does nothing. A change that leaves
the plan equal to the running one (a comment after the last phase: the plan keeps source
positions, so most edits do change it) is logged and not passed on, except right after a
rejected set, when `on_plan` confirms the good plan again. Polling needs no platform support and
sees every kind of change (editors' rename-over saves, network folders, a git checkout).

Unlike the Go flowlord (spec §5.1, §11.4, §20 items 15-17, 24-26) there is one plan at a time,
which the engine swaps whole, so a reload never duplicates cron entries or file rules, a failed
reload leaves nothing half started, and a removed file's workflow goes with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Literal, Sequence

from flowlord.compiler import Compilation, compile_files
from flowlord.compiler.diagnostics import Diagnostic, Severity
from flowlord.compiler.files import find_workflow_files
from flowlord.compiler.plan import Plan
from flowlord.compiler.report import position

__all__ = ["Problem", "ReloadOutcome", "WorkflowWatcher"]

log = logging.getLogger("flowlord.reload")

# A file changed less than this long ago is hashed at every check even when its size and times
# look unchanged: a second write within the file system's time granularity keeps them.
_RACY_NS = 2_000_000_000


@dataclass(frozen=True)
class Problem:
    """A diagnostic of a rejected reload, located: 1-based line and column (0 when the problem
    is a whole file or folder, e.g. one that cannot be read)."""

    file: str
    line: int
    column: int
    severity: str  # error, warning or note
    code: str  # FLnnn, or `io-error` / `internal-error`
    message: str
    help: str | None = None
    diagnostic: Diagnostic | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.severity}[{self.code}]: {self.message}"

    @classmethod
    def of(cls, diagnostic: Diagnostic, compilation: Compilation) -> Problem:
        try:
            pos = position(diagnostic.span, compilation.sources)
            line, column = pos.line, pos.column
        except (OSError, LookupError, ValueError):
            line = column = 0
        return cls(
            file=diagnostic.span.path,
            line=line,
            column=column,
            severity=Severity(diagnostic.severity).value,
            code=diagnostic.code,
            message=diagnostic.message,
            help=diagnostic.help,
            diagnostic=diagnostic,
        )


@dataclass(frozen=True)
class ReloadOutcome:
    """What one check decided.

    status: `applied` (on_plan was called), `same-plan` (the files changed, the plan did not),
    `unchanged` (no file changed), `rejected` (the set does not compile: on_diagnostics was
    called, the last good plan stays) or `error` (the files could not be read, or on_plan
    failed: the last good plan stays, and the next check tries again).
    """

    status: Literal["applied", "same-plan", "unchanged", "rejected", "error"]
    plan: Plan | None = None  # the plan running after the check
    problems: tuple[Problem, ...] = ()
    added: tuple[str, ...] = ()  # workflow files, by path
    removed: tuple[str, ...] = ()
    modified: tuple[str, ...] = ()


Callback = Callable[..., "Awaitable[object] | object"]
# path -> (workflow key, MD5 hex of the content), in the order the compiler gets the files
Fingerprint = tuple[tuple[str, str, str], ...]


class WorkflowWatcher:
    """Keeps a Plan in step with the workflow files that `paths` (files or folders) name.

    `compile`, when given, is called with no argument to build the Compilation (e.g. with the
    service's own options); by default the files found are compiled with
    flowlord.compiler.compile_files in `timezone`. `on_plan(plan)` and
    `on_diagnostics(problems)` may be plain functions or coroutine functions.

    `await start()` runs the first check (its outcome is returned: with a set that does not
    compile there is no plan yet, which a service may well treat as fatal) and then checks
    every `interval` seconds until `await stop()`.
    """

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        compile: Callable[[], Compilation] | None = None,
        on_plan: Callback | None = None,
        on_diagnostics: Callback | None = None,
        interval: float = 2.0,
        *,
        timezone: str = "UTC",
    ) -> None:
        if on_plan is None:
            raise TypeError("WorkflowWatcher needs on_plan")
        if interval <= 0:
            raise ValueError(f"interval must be positive, not {interval}")
        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [os.fspath(p) for p in paths]
        self.interval = interval
        self.timezone = timezone
        self._compile = compile
        self._on_plan = on_plan
        self._on_diagnostics = on_diagnostics
        self.plan: Plan | None = None
        self.problems: tuple[Problem, ...] = ()  # of the last rejected set, until a good one
        self._fingerprint: Fingerprint | None = None  # of the last set compiled
        self._rejected = False
        self._stats: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        self._files: list[tuple[str, str]] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._last_error: str | None = None

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> ReloadOutcome:
        outcome = await self.reload()
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name="flowlord-workflow-watcher")
        return outcome

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    async def __aenter__(self) -> WorkflowWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.reload()
            except asyncio.CancelledError:
                raise
            except Exception:  # the watcher never dies
                log.exception("workflow reload failed")

    # --- one check ------------------------------------------------------------------------------

    async def reload(self) -> ReloadOutcome:
        """Checks the files now and recompiles them if they changed."""
        async with self._lock:
            return await self._reload()

    async def _reload(self) -> ReloadOutcome:
        try:
            files, fingerprint = await asyncio.to_thread(self._scan)
        except OSError as error:
            return await self._io_error(error)
        self._last_error = None
        if fingerprint == self._fingerprint:
            log.debug("workflow files unchanged")
            return ReloadOutcome("unchanged", self.plan)

        added, removed, modified = _changes(self._fingerprint or (), fingerprint)
        if self._fingerprint is None:
            log.info("loading %d workflow file(s) from %s", len(files), ", ".join(self.paths))
        else:
            log.info("workflow files changed: %s", _describe(added, removed, modified))
        try:
            compilation = await asyncio.to_thread(self._build, files)
        except OSError as error:  # changed again between the scan and the compiler's read
            return await self._io_error(error)
        except Exception as error:
            log.exception("compiling the workflow files failed")
            problem = Problem(self.paths[0] if self.paths else "", 0, 0, "error", "internal-error",
                              f"the compiler failed: {type(error).__name__}: {error}")
            self._fingerprint = fingerprint  # the same files would fail the same way
            return await self._reject((problem,), added, removed, modified)
        self._fingerprint = fingerprint
        changes = {"added": added, "removed": removed, "modified": modified}

        problems = tuple(Problem.of(d, compilation) for d in compilation.diagnostics)
        if compilation.plan is None or compilation.has_errors:
            return await self._reject(problems, added, removed, modified)

        for problem in problems:
            log.warning("%s", problem)
        plan = compilation.plan
        if plan == self.plan and not self._rejected:
            log.info("the plan is unchanged (%d workflows); nothing to apply", len(plan.workflows))
            return ReloadOutcome("same-plan", self.plan, **changes)
        try:
            await _call(self._on_plan, plan)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("on_plan failed; keeping the previous plan and trying again at the next check")
            self._fingerprint = None
            return ReloadOutcome("error", self.plan, **changes)
        before = {w.key for w in self.plan.workflows} if self.plan is not None else set()
        after = {w.key for w in plan.workflows}
        self.plan = plan
        self.problems = ()
        self._rejected = False
        log.info(
            "plan applied: %d workflow(s), %d phase(s)%s%s",
            len(plan.workflows), sum(len(w.phases) for w in plan.workflows),
            f"; new: {', '.join(sorted(after - before))}" if before and after - before else "",
            f"; gone: {', '.join(sorted(before - after))}" if before - after else "",
        )
        return ReloadOutcome("applied", plan, **changes)

    async def _reject(self, problems: tuple[Problem, ...], added, removed, modified) -> ReloadOutcome:
        errors = [p for p in problems if p.severity == "error"]
        log.warning(
            "workflow reload rejected (%d error(s)); %s",
            len(errors),
            "keeping the last good plan" if self.plan is not None else "there is no plan to run yet",
        )
        for problem in problems:
            (log.error if problem.severity == "error" else log.warning)("%s", problem)
        self.problems = problems
        self._rejected = True
        if self._on_diagnostics is not None:
            try:
                await _call(self._on_diagnostics, list(problems))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("on_diagnostics failed")
        return ReloadOutcome("rejected", self.plan, problems, added, removed, modified)

    async def _io_error(self, error: OSError) -> ReloadOutcome:
        path = os.fsdecode(error.filename) if error.filename is not None else ", ".join(self.paths)
        reason = error.strerror or str(error)
        problem = Problem(path, 0, 0, "error", "io-error", f"cannot read the workflows: {reason}")
        if str(problem) != self._last_error:  # once per problem, not at every check
            self._last_error = str(problem)
            log.error("%s; keeping the last good plan", problem)
            if self._on_diagnostics is not None:
                try:
                    await _call(self._on_diagnostics, [problem])
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("on_diagnostics failed")
        return ReloadOutcome("error", self.plan, (problem,))

    # --- in a worker thread ---------------------------------------------------------------------

    def _scan(self) -> tuple[list[tuple[str, str]], Fingerprint]:
        """The workflow files and the MD5 of each; a file whose size and times are unchanged
        (and not too recent) keeps the MD5 it had."""
        files = find_workflow_files(self.paths)
        now = time.time_ns()
        stats: dict[str, tuple[tuple[int, int, int, int], str]] = {}
        fingerprint = []
        for path, key in files:
            info = os.stat(path)
            signature = (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)
            known = self._stats.get(path)
            if known is not None and known[0] == signature and now - info.st_mtime_ns > _RACY_NS:
                digest = known[1]
            else:
                with open(path, "rb") as handle:
                    digest = hashlib.md5(handle.read(), usedforsecurity=False).hexdigest()
            stats[path] = (signature, digest)
            fingerprint.append((path, key, digest))
        self._stats = stats
        return files, tuple(fingerprint)

    def _build(self, files: list[tuple[str, str]]) -> Compilation:
        if self._compile is not None:
            return self._compile()
        return compile_files(files, timezone=self.timezone)


async def _call(callback: Callback, argument: object) -> None:
    result = callback(argument)
    if inspect.isawaitable(result):
        await result


def _changes(old: Fingerprint, new: Fingerprint) -> tuple[tuple[str, ...], ...]:
    before = {path: digest for path, _, digest in old}
    after = {path: digest for path, _, digest in new}
    added = tuple(p for p in after if p not in before)
    removed = tuple(p for p in before if p not in after)
    modified = tuple(p for p in after if p in before and before[p] != after[p])
    return added, removed, modified


def _describe(added, removed, modified) -> str:
    parts = [f"+{p}" for p in added] + [f"-{p}" for p in removed] + [f"~{p}" for p in modified]
    return " ".join(parts) or "workflow keys changed"
