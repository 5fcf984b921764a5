"""The Python DSL (compiler.dsl): same AST and checks as TOML, diagnostics on the .py lines,
module errors, `flowlord export`, and `flowlord lint x.py`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowlord import cli
from flowlord.compiler import lint_files

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "dsl_examples" / "python_pipeline.py"


def write(folder: Path, name: str, text: str) -> str:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return str(path)


def strip_spans(value):
    """A model_dump() without positions: `span`, `key_span`, `value_span` and `path`."""
    if isinstance(value, dict):
        return {k: strip_spans(v) for k, v in value.items() if not k.endswith("span") and k != "path"}
    if isinstance(value, (list, tuple)):
        return [strip_spans(v) for v in value]
    return value


def phases_of(compilation) -> list:
    assert len(compilation.workflows) == 1
    return [strip_spans(phase.model_dump()) for phase in compilation.workflows[0].phases]


def found(compilation) -> list[tuple[str, int, int, int, int]]:
    """(code, line, column, end line, end column) of each diagnostic, 1-based, end exclusive."""
    from flowlord.compiler.report import position

    out = []
    for d in compilation.diagnostics:
        at = position(d.span, compilation.sources)
        out.append((d.code, at.line, at.column, at.end_line, at.end_column))
    return out


def column_of(path: str, line: int, needle: str, skip: str = "") -> int:
    """1-based column where `needle` starts on `line`, after the first occurrence of `skip`."""
    text = Path(path).read_text(encoding="utf-8").splitlines()[line - 1]
    return text.index(needle, text.index(skip) + len(skip) if skip else 0) + 1


# --- the same AST as TOML -----------------------------------------------------------------------

MODULE = """
from flowlord import Phase, Workflow

wf = Workflow()
wf.phase(task="etl:extract", cron="0 0 * * * *", offset="-4h", retry=3, retry_delay="30s", template="?hour={yyyy}-{mm}-{dd}T{hh}")
wf.phase(task="etl:load", depends_on="etl:extract", template="?hour={yyyy}-{mm}-{dd}T{hh}")
wf.phase(task="ahead", cron="TZ=Europe/Paris 0 0 6 * * *", offset="+4h", no_alert=True, template="?day={yyyy}-{mm}-{dd}")
wf.add(Phase(task="fan", cron="@daily", meta={"client": ["a", "b"], "region": ("us", "eu")}, template="?c={meta:client}&r={meta:region}"))
wf.phase(task="fan2", cron="@daily", meta="client:a,b|region:us,eu", template="?c={meta:client}")
wf.phase(task="backfill", job="daily", cron="0 0 7 * * *", for_="-72h", by="day", template="?day={yyyy}-{mm}-{dd}")
wf.phase(task="listed", cron="@hourly", meta_file="gs://bucket/list.json", template="?x={meta:x}")
wf.phase("files", files="gs://b/*/*/*/*.gz", no_alert=False, template="{meta:file}?d={yyyy}-{mm}-{dd}")
wf.phase(task="child", depends_on="files", require="{meta:file}", rule="retry_delay=1m", retry=1, template="{meta:file}")
"""

TOML = """
[[Phase]]
task = "etl:extract"
rule = "cron=0 0 * * * *&offset=-4h&retry_delay=30s"
retry = 3
template = "?hour={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "etl:load"
dependsOn = "etl:extract"
template = "?hour={yyyy}-{mm}-{dd}T{hh}"

[[Phase]]
task = "ahead"
rule = "cron=TZ=Europe/Paris 0 0 6 * * *&offset=%2B4h&no_alert=true"
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "fan"
rule = "cron=@daily&meta=client:a,b|region:us,eu"
template = "?c={meta:client}&r={meta:region}"

[[Phase]]
task = "fan2"
rule = "cron=@daily&meta=client:a,b|region:us,eu"
template = "?c={meta:client}"

[[Phase]]
task = "backfill"
rule = "cron=0 0 7 * * *&for=-72h&by=day&job=daily"
template = "?day={yyyy}-{mm}-{dd}"

[[Phase]]
task = "listed"
rule = "cron=@hourly&meta-file=gs://bucket/list.json"
template = "?x={meta:x}"

[[Phase]]
task = "files"
rule = "files=gs://b/*/*/*/*.gz"
template = "{meta:file}?d={yyyy}-{mm}-{dd}"

[[Phase]]
task = "child"
dependsOn = "files"
rule = "retry_delay=1m&require={meta:file}"
retry = 1
template = "{meta:file}"
"""


def test_same_ast_as_the_equivalent_toml(tmp_path):
    python = lint_files([write(tmp_path, "wf.py", MODULE)])
    toml = lint_files([write(tmp_path, "wf.toml", TOML)])
    assert python.diagnostics == toml.diagnostics == []
    assert phases_of(python) == phases_of(toml)
    assert len(phases_of(python)) == 9


def test_spans_point_into_the_python_file(tmp_path):
    path = write(tmp_path, "wf.py", MODULE)
    compilation = lint_files([path])
    extract = compilation.workflows[0].phases[0]
    text = Path(path).read_text(encoding="utf-8")
    assert text[extract.span.start : extract.span.end] == "wf.phase"
    assert text[extract.task.span.start : extract.task.span.end] == "etl:extract"
    cron = extract.rule.triggers[0].spec
    assert text[cron.span.start : cron.span.end] == "0 0 * * * *"
    assert [text[f.span.start : f.span.end] for f in cron.fields] == ["0", "0", "*", "*", "*", "*"]
    pairs = {p.key: text[p.key_span.start : p.key_span.end] for p in extract.rule.pairs}
    assert pairs == {"cron": "cron", "offset": "offset", "retry_delay": "retry_delay"}
    assert text[extract.retry.span.start : extract.retry.span.end] == "3"
    backfill = compilation.workflows[0].phases[5]
    keys = {p.key: text[p.key_span.start : p.key_span.end] for p in backfill.rule.pairs}
    assert keys["for"] == "for_"


# --- diagnostics at the .py line and column ------------------------------------------------------


def test_bad_cron_caret_on_the_python_characters(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="é_report", cron="0 0 30 2 *", template="?day={yyyy}-{mm}-{dd}")
        """,
    )
    compilation = lint_files([path])
    column = column_of(path, 4, "30", skip='cron="')
    assert found(compilation) == [("FL307", 4, column, 4, column + 2)]
    assert compilation.diagnostics[0].span.path == path


def test_multi_line_call_and_percent_encoded_value(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="ok", cron="0 5 * * *", template="?day={yyyy}-{mm}-{dd}")
        wf.phase(
            task="late",
            cron="0 5 * * *",
            offset="+4d",
            retry_delay="30x",
            template="?day={yyyy}-{mm}-{dd}",
        )
        """,
    )
    compilation = lint_files([path])
    d_column = column_of(path, 8, "d", skip='"+4')
    x_column = column_of(path, 9, "x", skip='"30')
    assert found(compilation) == [("FL206", 8, d_column, 8, d_column + 1), ("FL206", 9, x_column, 9, x_column + 1)]


def test_a_value_that_is_not_a_plain_literal_is_blamed_whole(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        DAY = "{yyyy}-{mm}-{dd}"
        wf = Workflow()
        wf.phase(task="a", cron="0 5 * * *", template=f"?day={DAY}&ts={{ts}}")
        wf.phase(task="b", cron="0 5 * * *", template="?day={yyyy}-{mm}-{dd}\\t{ts}")
        """,
    )
    compilation = lint_files([path])
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    a_start = lines[4].index('f"') + 1
    a_end = lines[4].rindex('"') + 2
    b_start = lines[5].index('"?day') + 1
    b_end = lines[5].rindex('"') + 2
    assert found(compilation) == [("FL401", 5, a_start, 5, a_end), ("FL401", 6, b_start, 6, b_end)]


def test_unknown_keyword_is_a_diagnostic_with_did_you_mean(tmp_path, capsys):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="extract", crom="0 5 * * *", template="?day={yyyy}-{mm}-{dd}")
        wf.phase(task="load", dependsOn="extract")
        """,
    )
    compilation = lint_files([path])
    assert found(compilation) == [
        ("FL103", 4, 26, 4, 30),
        ("FL103", 5, 23, 5, 32),
    ]
    helps = [d.help for d in compilation.diagnostics]
    assert helps == ["did you mean `cron`?", "did you mean `depends_on`?"]
    assert compilation.diagnostics[0].message == "unknown phase keyword `crom`"


def test_wrong_types_are_fl104(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="a", cron="0 5 * * *", retry="3", no_alert="yes", meta={"k": "a,b"}, template=7)
        """,
    )
    compilation = lint_files([path])
    line = Path(path).read_text(encoding="utf-8").splitlines()[3]
    codes_and_columns = [(code, column) for code, _, column, _, _ in found(compilation)]
    assert codes_and_columns == [
        ("FL104", line.index('"3"') + 1),
        ("FL104", line.index('"yes"') + 1),
        ("FL104", line.index('{"k"') + 1),
        ("FL104", line.index("7") + 1),
    ]


def test_values_given_through_a_dict_point_at_the_splat(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        HOURLY = dict(cron="0 0 * * * *", offset="-4d")
        wf = Workflow()
        wf.phase(task="a", **HOURLY, template="?h={yyyy}-{mm}-{dd}T{hh}")
        """,
    )
    compilation = lint_files([path])
    line = Path(path).read_text(encoding="utf-8").splitlines()[4]
    start = line.index("**HOURLY") + 1
    assert found(compilation) == [("FL206", 5, start, 5, start + len("**HOURLY"))]


def test_phase_declared_in_a_helper_module_points_there(tmp_path, capsys):
    write(
        tmp_path,
        "helpers.py",
        """
        from flowlord import Phase


        def hourly(task):
            return Phase(task=task, cron="0 0 * * * *", offset="-1d", template="?h={yyyy}-{mm}-{dd}T{hh}")
        """,
    )
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow
        from helpers import hourly

        wf = Workflow(hourly("a"))
        """,
    )
    sys.modules.pop("helpers", None)
    try:
        compilation = lint_files([path])
    finally:
        sys.modules.pop("helpers", None)
    [diagnostic] = compilation.diagnostics
    assert diagnostic.code == "FL206"
    assert diagnostic.span.path.endswith("helpers.py")
    assert diagnostic.span.path in compilation.sources  # so the text report can show the line
    from flowlord.compiler.report import render_text

    assert 'offset="-1d"' in render_text(compilation.diagnostics, compilation.sources)


def test_checks_of_the_whole_phase_apply_too(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="a", cron="0 5 * * *", template="?day={yyyy}")
        wf.phase(task="a", cron="0 6 * * *", template="?day={yyyy}")
        wf.phase(task="b", files="gs://bucket/latest.csv", template="?day={yyyy}")
        """,
    )
    codes = [code for code, *_ in found(lint_files([path]))]
    assert codes == ["FL501", "FL404"]


# --- the module as a whole --------------------------------------------------------------------------


def test_exception_while_importing_is_fl112_at_its_line(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        wf = Workflow()
        wf.phase(task="extract", cron="0 1 * * *", template=DAY)
        """,
    )
    compilation = lint_files([path])
    column = column_of(path, 4, "DAY")
    assert found(compilation) == [("FL112", 4, column, 4, column + 3)]
    assert "NameError: name 'DAY' is not defined" in compilation.diagnostics[0].message
    assert compilation.workflows == []


def test_exception_raised_deeper_notes_where(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        import json

        from flowlord import Workflow

        wf = Workflow()
        SETTINGS = json.loads("{not json")
        """,
    )
    compilation = lint_files([path])
    assert [(code, line) for code, line, *_ in found(compilation)] == [("FL112", 6)]
    [diagnostic] = compilation.diagnostics
    assert "JSONDecodeError" in diagnostic.message
    assert diagnostic.notes and "json" in diagnostic.notes[0]


def test_syntax_error_is_fl112_at_its_column(tmp_path):
    path = write(tmp_path, "wf.py", 'from flowlord import Workflow\nwf = Workflow(\nx = "é" +\n')
    compilation = lint_files([path])
    assert [code for code, *_ in found(compilation)] == ["FL112"]
    assert "SyntaxError" in compilation.diagnostics[0].message


def test_system_exit_is_caught(tmp_path):
    path = write(tmp_path, "wf.py", "import sys\nsys.exit(3)\n")
    assert [(code, line) for code, line, *_ in found(lint_files([path]))] == [("FL112", 2)]


def test_a_module_without_workflow_or_phases_is_fl109(tmp_path):
    none = write(tmp_path, "none.py", "X = 1\n")
    empty = write(tmp_path, "empty.py", "from flowlord import Workflow\n\nwf = Workflow()\n")
    assert [(code, line) for code, line, *_ in found(lint_files([none]))] == [("FL109", 1)]
    assert [(code, line, column) for code, line, column, *_ in found(lint_files([empty]))] == [("FL109", 3, 6)]


def test_two_workflows_in_one_module_is_fl112(tmp_path):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        first = Workflow()
        first.phase(task="a", cron="0 5 * * *", template="?day={yyyy}-{mm}-{dd}")
        again = first  # the same workflow under two names is one
        second = Workflow()
        second.phase(task="b", cron="0 0 30 2 *")
        """,
    )
    compilation = lint_files([path])
    assert [(code, line) for code, line, *_ in found(compilation)] == [("FL112", 6)]
    assert "`second`" in compilation.diagnostics[0].message
    assert [p.name for p in compilation.workflows[0].phases] == ["a"]


def test_prints_of_the_module_go_to_stderr(tmp_path, capsys):
    path = write(
        tmp_path,
        "wf.py",
        """
        from flowlord import Workflow

        print("hello from the module")
        wf = Workflow()
        wf.phase(task="a", cron="0 5 * * *", template="?day={yyyy}-{mm}-{dd}")
        """,
    )
    assert cli.main(["lint", "--format", "json", path]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == []
    assert "hello from the module" in captured.err


# --- the example and export ------------------------------------------------------------------------


def test_the_python_example_lints_clean(monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    assert cli.main(["lint", "--strict", "--no-color", EXAMPLE.relative_to(REPO).as_posix()]) == 0
    assert capsys.readouterr().out == ""


def test_the_readme_python_workflow_lints_clean(tmp_path, capsys):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Python workflows") :]
    block = section[section.index("```python\n") + len("```python\n") : section.index("```\n", 10)]
    path = tmp_path / "readme_workflow.py"
    path.write_text(block, encoding="utf-8")
    assert cli.main(["lint", "--strict", "--no-color", str(path)]) == 0
    assert capsys.readouterr().out == ""
    assert "wf.phase(" in block


def test_export_round_trip(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(REPO)
    out = tmp_path / "clicks.toml"
    assert cli.main(["export", "dsl_examples/python_pipeline.py", "-o", str(out)]) == 0
    assert capsys.readouterr() == ("", "")
    text = out.read_text(encoding="utf-8")
    assert text.count("[[Phase]]") == 7
    assert cli.main(["lint", "--strict", "--no-color", str(out)]) == 0
    assert capsys.readouterr().out == ""
    assert phases_of(lint_files([str(out)])) == phases_of(lint_files(["dsl_examples/python_pipeline.py"]))

    # stdout without -o
    assert cli.main(["export", "dsl_examples/python_pipeline.py"]) == 0
    assert capsys.readouterr().out == text


def test_export_compiles_to_the_same_plan(tmp_path, monkeypatch, capsys):
    from flowlord import compiler

    if not hasattr(compiler, "compile_paths"):
        pytest.skip("no compile_paths yet")
    monkeypatch.chdir(REPO)
    out = tmp_path / "python_pipeline.toml"
    assert cli.main(["export", "dsl_examples/python_pipeline.py", "-o", str(out)]) == 0
    from_python = compiler.compile_paths(["dsl_examples/python_pipeline.py"])
    from_toml = compiler.compile_paths([str(out)])
    assert from_python.plan is not None and from_toml.plan is not None

    def plan(compilation):
        dumped = strip_spans(compilation.plan.model_dump())
        for workflow in dumped["workflows"]:
            workflow.pop("key")
        return dumped

    assert plan(from_python) == plan(from_toml)


def test_export_refuses_a_module_with_errors(tmp_path, capsys):
    path = write(tmp_path, "wf.py", "from flowlord import Workflow\nwf = Workflow()\nwf.phase(task='a', cron='0 0 30 2 *')\n")
    out = tmp_path / "wf.toml"
    assert cli.main(["export", "--no-color", path, "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert "error[FL307]" in captured.err and captured.out == ""
    assert not out.exists()


def test_export_wants_a_python_file(tmp_path, capsys):
    path = write(tmp_path, "wf.toml", TOML)
    assert cli.main(["export", path]) == 2
    assert "Python workflow module" in capsys.readouterr().err


def test_export_escapes_toml_strings():
    import tomllib

    from flowlord.compiler.dsl import toml_string

    for text in ['a"b', "a\\b", "tab\there", "line\nbreak", "\x7f\x01", "é ✓"]:
        assert tomllib.loads(f"x = {toml_string(text)}")["x"] == text


# --- the CLI and the package ------------------------------------------------------------------------


def test_lint_a_python_file_through_the_cli(tmp_path, capsys):
    path = write(tmp_path, "wf.py", MODULE)
    assert cli.main(["lint", path]) == 0
    assert capsys.readouterr().out == ""
    bad = write(tmp_path, "bad.py", "from flowlord import Workflow\nwf = Workflow()\nwf.phase(task='a', cron='0 0 30 2 *')\n")
    assert cli.main(["lint", "--no-color", bad]) == 1
    assert f"{bad}:3:" in capsys.readouterr().out


def test_folders_are_searched_for_toml_only(tmp_path, capsys):
    write(tmp_path, "broken.py", "raise RuntimeError('never imported')\n")
    assert cli.main(["lint", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no *.toml files" in captured.err


def test_flowlord_reexports_the_dsl_lazily():
    probe = (
        "import sys, flowlord; print('flowlord.compiler' in sys.modules); "
        "from flowlord import Workflow, Phase; print(Workflow.__module__, Phase.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "flowlord.compiler.dsl", "flowlord.compiler.dsl"]
    with pytest.raises(AttributeError):
        import flowlord

        flowlord.NoSuchThing  # noqa: B018


def test_declaring_does_not_check_anything():
    from flowlord import Phase, Workflow

    wf = Workflow()
    phase = wf.phase(task="a", cron="not a cron", whatever=1)
    assert list(wf) == [phase] and len(wf) == 1
    assert phase.values == {"task": "a", "cron": "not a cron"}
    assert phase.unknown == {"whatever": 1}
    assert phase.site.path == __file__
    with pytest.raises(TypeError):
        wf.add("not a phase")
    assert isinstance(Workflow(Phase("x")).phases[0], Phase)
