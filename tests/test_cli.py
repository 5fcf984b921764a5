"""`flowlord` CLI: exit codes, file discovery, output formats, --explain, user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import flowlord.compiler
from flowlord import __version__, cli
from flowlord.compiler import codes, report
from flowlord.compiler.files import find_workflow_files

REPO = os.path.join(os.path.dirname(__file__), os.pardir)
VALID = '[[Phase]]\ntask = "a"\nrule = "cron=0 * * * *"\n'
INVALID = VALID + 'retry = "x"\n'
WARNING_MARK = "# no phases here\n"

@pytest.fixture
def fake(monkeypatch):
    """The real compiler, wrapped to record which files the CLI hands it."""
    real = flowlord.compiler.lint_files
    calls: list[list[str]] = []

    def spy(paths, **options):
        calls.append(list(paths))
        return real(paths, **options)

    spy.calls = calls
    monkeypatch.setattr(flowlord.compiler, "lint_files", spy)
    return spy


def write(folder, name: str, text: str) -> str:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- exit codes and output ----------------------------------------------------------------------


def test_clean_lint_prints_nothing_and_exits_0(fake, tmp_path, capsys):
    assert cli.main(["lint", write(tmp_path, "ok.toml", VALID)]) == 0
    assert capsys.readouterr() == ("", "")


def test_errors_exit_1_with_text_report(fake, tmp_path, capsys):
    path = write(tmp_path, "bad.toml", INVALID)
    assert cli.main(["lint", path]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"{path}:4:9: error[FL104]: ")
    assert out.endswith("\n1 error\n") and "\x1b[" not in out


def test_warnings_fail_only_with_strict(fake, tmp_path, capsys):
    path = write(tmp_path, "warn.toml", WARNING_MARK)
    assert cli.main(["lint", path]) == 0
    assert "warning[FL109]" in capsys.readouterr().out
    assert cli.main(["lint", "--strict", path]) == 1


@pytest.mark.parametrize("format", cli.FORMATS)
def test_every_format_renders(fake, tmp_path, capsys, format):
    path = write(tmp_path, "bad.toml", INVALID)
    assert cli.main(["lint", "--format", format, path]) == 1
    out = capsys.readouterr().out
    if format == "json":
        assert [d["code"] for d in json.loads(out)] == ["FL104"]
    elif format == "sarif":
        assert json.loads(out)["runs"][0]["tool"]["driver"]["version"] == __version__
    elif format == "github":
        assert out.startswith("::error file=")


def test_formats_match_the_renderers():
    assert cli.FORMATS == report.FORMATS


def test_folders_are_searched_recursively_sorted_skipping_hidden(fake, tmp_path):
    write(tmp_path, "b.toml", VALID)
    write(tmp_path, "a/z.toml", VALID)
    write(tmp_path, "a/deeper/y.toml", VALID)
    write(tmp_path, ".hidden/x.toml", INVALID)
    write(tmp_path, "a/.editor.toml", INVALID)
    write(tmp_path, "a/notes.txt", "")
    single = write(tmp_path, "elsewhere/c.toml", VALID)
    assert cli.main(["lint", str(tmp_path / "a"), str(tmp_path), single]) == 0
    [paths] = fake.calls
    rel = [os.path.relpath(p, tmp_path) for p in paths]
    assert rel == [
        os.path.join("a", "deeper", "y.toml"),
        os.path.join("a", "z.toml"),
        "b.toml",
        os.path.join("elsewhere", "c.toml"),
    ]


def test_empty_folder_is_clean_with_a_notice(fake, tmp_path, capsys):
    assert cli.main(["lint", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no *.toml files" in captured.err


def test_color_follows_the_terminal_and_no_color(fake, tmp_path, capsys, monkeypatch):
    path = write(tmp_path, "bad.toml", INVALID)
    monkeypatch.setattr(cli, "_terminal_wants_color", lambda: True)
    cli.main(["lint", path])
    assert "\x1b[" in capsys.readouterr().out
    cli.main(["lint", "--no-color", path])
    assert "\x1b[" not in capsys.readouterr().out
    cli.main(["lint", "--format", "json", path])
    assert "\x1b[" not in capsys.readouterr().out


def test_terminal_wants_color(monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert cli._terminal_wants_color()
    monkeypatch.setenv("NO_COLOR", "1")
    assert not cli._terminal_wants_color()
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False, raising=False)
    assert not cli._terminal_wants_color()


# --- user errors: exit 2, a message on stderr, never a traceback -------------------------------


def test_missing_path_exits_2_naming_it(fake, tmp_path, capsys):
    missing = str(tmp_path / "nope.toml")
    assert cli.main(["lint", write(tmp_path, "ok.toml", VALID), missing]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"flowlord lint: {missing}: no such file or directory\n"
    assert fake.calls == []


def test_unopenable_file_exits_2_even_as_root(fake, tmp_path, capsys, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(cli, "open", refuse, raising=False)  # shadows the builtin in cli only
    path = write(tmp_path, "secret.toml", VALID)
    assert cli.main(["lint", path]) == 2
    assert capsys.readouterr().err == f"flowlord lint: {path}: permission denied\n"
    assert fake.calls == []


def test_io_error_inside_the_compiler_exits_2(monkeypatch, tmp_path, capsys):
    def failing(paths, **options):
        raise PermissionError(13, "Permission denied", paths[0])

    monkeypatch.setattr(flowlord.compiler, "lint_files", failing, raising=False)
    path = write(tmp_path, "ok.toml", VALID)
    assert cli.main(["lint", path]) == 2
    assert capsys.readouterr().err == f"flowlord lint: {path}: permission denied\n"


@pytest.mark.parametrize(
    "argv",
    [["lint"], ["lint", "--format", "xml", "x.toml"], [], ["nonsense"], ["lint", "--bogus"]],
)
def test_usage_errors_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and "Traceback" not in err


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out == f"flowlord {__version__}\n"


def test_help_exits_0(capsys):
    assert cli.main(["lint", "--help"]) == 0
    assert "--explain" in capsys.readouterr().out


# --- --explain ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["FL101", "fl101", "toml-syntax"])
def test_explain_known_code(code, capsys):
    assert cli.main(["lint", "--explain", code]) == 0
    out = capsys.readouterr().out
    assert out.startswith("FL101 toml-syntax (error)\n") and codes.TOML_SYNTAX.summary in out


def test_explain_unknown_code_suggests(capsys):
    assert cli.main(["lint", "--explain", "FL1O4"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "flowlord lint: unknown code 'FL1O4'; did you mean FL104?\n"


# --- start-up and the real compiler --------------------------------------------------------------


def test_importing_the_cli_loads_no_heavy_dependency():
    heavy = ("networkx", "croniter", "jinja2", "bottle", "lark")
    probe = f"import sys, flowlord.cli; print(sorted(set({heavy!r}) & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_python_dash_m(tmp_path):
    result = subprocess.run([sys.executable, "-m", "flowlord", "--version"], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (0, f"flowlord {__version__}\n")


@pytest.mark.parametrize("files", [1, 300])  # within the pipe's buffer, and far beyond it
def test_quick_exit_flushes_all_output_and_keeps_the_status(tmp_path, capsys, files):
    # lint ends with os._exit: everything written must still reach the pipe, status unchanged
    for i in range(files):
        write(tmp_path, f"flows/bad{i:03}.toml", INVALID.replace('"a"', f'"a{i}"'))
    folder = str(tmp_path / "flows")
    assert cli.main(["lint", folder]) == 1
    expected = capsys.readouterr().out
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    command = [sys.executable, "-m", "flowlord", "lint", folder]
    result = subprocess.run(command, capture_output=True, text=True, env=buffered)
    assert (result.returncode, result.stdout) == (1, expected)
    assert expected.endswith(f"\n{files} error{'s' if files > 1 else ''}\n")


def test_real_compiler_valid_file(tmp_path, capsys):
    assert cli.main(["lint", write(tmp_path, "ok.toml", VALID)]) == 0
    assert capsys.readouterr().out == ""


def test_real_compiler_wrong_type(tmp_path, capsys):
    path = write(tmp_path, "bad.toml", INVALID)
    assert cli.main(["lint", "--format", "json", path]) == 1
    items = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["line"], d["file"]) for d in items] == [("FL104", 4, path)]


def test_real_compiler_folder(tmp_path, capsys):
    write(tmp_path, "flows/ok.toml", VALID.replace('"a"', '"b"'))
    write(tmp_path, "flows/sub/bad.toml", INVALID)
    assert cli.main(["lint", str(tmp_path / "flows")]) == 1
    out = capsys.readouterr().out
    assert "error[FL104]" in out and out.endswith("\n1 error\n")


def test_parallel_lint_reports_what_one_process_reports(monkeypatch):
    monkeypatch.setattr(flowlord.compiler, "PARALLEL_FROM", 2)
    paths = [path for path, _ in find_workflow_files([os.path.join(REPO, "dsl_examples")])]
    serial = flowlord.compiler.lint_files(paths, jobs=1)
    parallel = flowlord.compiler.lint_files(paths, jobs=2)
    assert len(parallel.diagnostics) > 50
    assert parallel.diagnostics == serial.diagnostics
    text = report.render("text", parallel.diagnostics, parallel.sources, color=False)
    assert text == report.render("text", serial.diagnostics, serial.sources, color=False)


def test_parallel_lint_raises_a_childs_io_error(monkeypatch, tmp_path):
    monkeypatch.setattr(flowlord.compiler, "PARALLEL_FROM", 2)
    paths = [write(tmp_path, f"w{i}.toml", VALID.replace('"a"', f'"a{i}"')) for i in range(4)]

    def refuse_the_last(path, *args, **kwargs):
        if path == paths[-1]:
            raise PermissionError(13, "Permission denied", path)
        return open(path, *args, **kwargs)

    monkeypatch.setattr(flowlord.compiler, "open", refuse_the_last, raising=False)  # forked along
    with pytest.raises(PermissionError) as raised:
        flowlord.compiler.lint_files(paths, jobs=2)
    assert raised.value.filename == paths[-1]


# --- schema ----------------------------------------------------------------------------------------

COMMITTED_SCHEMA = os.path.join(os.path.dirname(__file__), os.pardir, "dsl_examples", "workflow.schema.json")


def _committed_schema() -> str:
    with open(COMMITTED_SCHEMA, encoding="utf-8") as handle:
        return handle.read()


def test_schema_prints_the_committed_schema(capsys):
    assert cli.main(["schema"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert json.loads(captured.out) == json.loads(_committed_schema())
    assert captured.out == _committed_schema()


def test_schema_output_file(tmp_path, capsys):
    target = tmp_path / "workflow.schema.json"
    assert cli.main(["schema", "-o", str(target)]) == 0
    assert capsys.readouterr() == ("", "")
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(_committed_schema())


def test_schema_unwritable_output_exits_2(tmp_path, capsys):
    target = tmp_path / "missing" / "workflow.schema.json"
    assert cli.main(["schema", "-o", str(target)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"flowlord schema: {target}: ")


def test_schema_is_listed_in_help(capsys):
    assert cli.main(["--help"]) == 0
    assert "schema" in capsys.readouterr().out
