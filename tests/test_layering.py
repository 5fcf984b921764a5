"""Imports flow one way: flowlord → compiler, runtime; the compiler imports neither; the
runtime reads only the compiler's AST and plan."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_MAY_USE = {"flowlord.compiler.ast", "flowlord.compiler.plan", "flowlord.compiler.source"}


def imports(path: Path) -> set[str]:
    """Absolute module names imported by a file; relative imports resolved within its package."""
    package = {"compiler": "flowlord.compiler", "runtime": "flowlord.runtime", "flowlord": "flowlord"}
    parts = path.relative_to(ROOT).with_suffix("").parts
    module = ".".join([package[parts[0]], *parts[1:]])
    if path.name == "__init__.py":
        module = module.rsplit(".", 1)[0] + ".__init__"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: -node.level]
                name = ".".join(base + ([node.module] if node.module else []))
                found.add(name)
                found.update(f"{name}.{alias.name}" for alias in node.names)
            else:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def sources(folder: str) -> list[Path]:
    return sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", sources("compiler"), ids=lambda p: p.name)
def test_compiler_imports_neither_runtime_nor_cli(path):
    bad = {m for m in imports(path) if m.startswith(("flowlord.runtime", "runtime", "flowlord.cli"))}
    bad |= {m for m in imports(path) if m in ("flowlord", "flowlord.__init__")}
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources("runtime"), ids=lambda p: str(p.relative_to(ROOT)))
def test_runtime_reads_only_the_ast_and_the_plan(path):
    compiler = {m for m in imports(path) if m.startswith(("flowlord.compiler", "compiler"))}
    allowed = {m for m in compiler if any(m == a or m.startswith(a + ".") for a in RUNTIME_MAY_USE)}
    assert compiler == allowed, f"{path.name} imports {sorted(compiler - allowed)}"
    assert not {m for m in imports(path) if m.startswith("flowlord.cli")}
