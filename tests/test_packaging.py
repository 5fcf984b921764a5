"""The wheel: built offline, it ships the grammars and the flowlord.* packages only, and an
installed copy lints from another folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

import flowlord

ROOT = Path(__file__).parents[1]
VALID = ROOT / "dsl_examples" / "ok" / "hourly_etl.toml"
IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
    ".hypothesis", "corpus",
)


def _run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Build from a copy, so no build/ or stale files of the work tree end up in the wheel.
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=IGNORE)
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "-q", "-w", str(tmp / "dist"), str(src), cwd=tmp)
    (found,) = (tmp / "dist").glob("flowlord-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("target")
    _run(sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
         "--target", str(target), str(wheel), cwd=target)
    return target


def test_wheel_ships_grammars_and_only_flowlord_packages(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    grammars = sorted(p.name for p in (ROOT / "grammar").glob("*.lark"))
    assert grammars and all(f"flowlord/grammar/{g}" in names for g in grammars)
    for package in ("flowlord", "flowlord/compiler", "flowlord/runtime", "flowlord/grammar"):
        assert f"{package}/__init__.py" in names
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"flowlord"}


def test_wheel_ships_every_module_and_data_file_of_the_tree(wheel):
    """A subpackage or data file missing from pyproject.toml's lists fails here, not in production."""
    names = set(zipfile.ZipFile(wheel).namelist())
    homes = {"flowlord": "flowlord", "compiler": "flowlord/compiler", "runtime": "flowlord/runtime"}
    for folder, package in homes.items():
        for path in (ROOT / folder).rglob("*"):
            if path.suffix in (".py", ".sql", ".html", ".css", ".js") and "__pycache__" not in path.parts:
                relative = path.relative_to(ROOT / folder).as_posix()
                assert f"{package}/{relative}" in names, f"{folder}/{relative} is not in the wheel"


def test_wheel_declares_the_console_script(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("/entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "[console_scripts]" in text
    assert "flowlord = flowlord.cli:run" in text


def test_installed_wheel_lints_from_another_folder(installed, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(installed)!r})
        import re
        from importlib import resources
        from pathlib import Path
        import flowlord
        assert Path(flowlord.__file__).is_relative_to({str(installed)!r}), flowlord.__file__
        from flowlord.compiler import grammar
        lark_files = [f for f in resources.files("flowlord.grammar").iterdir()
                      if f.name.endswith(".lark")]
        assert lark_files
        for f in lark_files:
            assert Path(str(f)).is_relative_to({str(installed)!r}), f
            if re.search(r"^\\??start\\s*:", f.read_text(encoding="utf-8"), re.M):
                grammar.parser(f.name.removesuffix(".lark"))
        from flowlord.cli import main
        sys.exit(main(["lint", {str(VALID)!r}]))
        """
    )
    _run(sys.executable, "-c", script, cwd=tmp_path)


def test_python_m_flowlord_version(installed, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = _run(sys.executable, "-m", "flowlord", "--version", cwd=tmp_path, env=env)
    assert flowlord.__version__ in done.stdout + done.stderr
