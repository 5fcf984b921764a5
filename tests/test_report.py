"""Renderers on hand-built diagnostics: exact text, JSON fields, SARIF structure, GitHub escaping."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from flowlord.compiler import codes, report
from flowlord.compiler.diagnostics import Diagnostic, Label, Severity
from flowlord.compiler.source import SourceFile, Span

WORKFLOW = '[[Phase]]\ntask = "a"\nrule = "cron=0 * * * *"\nretry = "x"\n'


def source(text: str = WORKFLOW, path: str = "flows/etl.toml") -> SourceFile:
    return SourceFile(path, text)


def span_of(src: SourceFile, needle: str) -> Span:
    start = src.text.index(needle)
    return src.span(start, start + len(needle))


def wrong_type(src: SourceFile, **extra) -> Diagnostic:
    return codes.WRONG_TYPE.at(span_of(src, '"x"'), "`retry` must be an integer, not a string", **extra)


# --- text ------------------------------------------------------------------------------------


def test_text_snippet_with_caret_under_the_span_and_summary():
    src = source()
    out = report.render_text([wrong_type(src, help="write a number: `retry = 3`")], {src.path: src})
    assert out == (
        "flows/etl.toml:4:9: error[FL104]: `retry` must be an integer, not a string\n"
        "  |\n"
        '4 | retry = "x"\n'
        "  |         ^~~\n"
        "help: write a number: `retry = 3`\n"
        "\n"
        "1 error\n"
    )


def test_text_is_empty_when_clean():
    assert report.render_text([], {}) == ""


def test_text_summary_counts_each_severity():
    src = source()
    warning = codes.NO_PHASES.at(span_of(src, "[[Phase]]"), "no phases")
    diagnostics = [wrong_type(src), warning, wrong_type(source(path="b.toml"))]
    assert report.summary(diagnostics) == "2 errors, 1 warning"
    assert report.render_text(diagnostics, {src.path: src}).endswith("\n\n2 errors, 1 warning\n")


def test_text_expands_tabs_so_the_caret_lines_up():
    src = source('[[Phase]]\n\tretry\t= "x"\n')
    out = report.render_text([wrong_type(src)], {src.path: src})
    assert out.splitlines()[1:4] == [
        "  |",
        '2 |     retry   = "x"',
        "  | " + " " * len('    retry   = ') + "^~~",
    ]


def test_text_counts_characters_not_bytes_and_wide_characters_twice():
    src = source('[[Phase]]\ntask = "é日本"\nretry = "x"\n')
    accent = codes.BAD_TASK_NAME.at(span_of(src, "日本"), "bad task name")
    out = report.render_text([accent], {src.path: src})
    assert out.splitlines()[0] == "flows/etl.toml:2:10: error[FL106]: bad task name"
    assert out.splitlines()[2:4] == [
        '2 | task = "é日本"',
        "  |          ^~~~",
    ]


def test_text_secondary_labels_in_the_same_and_in_another_file():
    src = source()
    other = source("[[Phase]]\n", path="other.toml")
    diagnostic = wrong_type(
        src,
        secondary=(Label(span_of(src, '"a"'), "in this phase"), Label(other.span(0, 9), "also here")),
        notes=("the Go flowlord would stop here",),
    )
    out = report.render_text([diagnostic], {src.path: src, other.path: other})
    assert out.splitlines()[4:] == [
        "note: in this phase",
        "  |",
        '2 | task = "a"',
        "  |        ^~~",
        "other.toml:1:1: note: also here",
        "note: the Go flowlord would stop here",
        "",
        "1 error",
    ]


def test_text_gutter_is_as_wide_as_the_largest_line_number():
    src = source("\n" * 11 + 'retry = "x"\n')
    out = report.render_text([wrong_type(src)], {src.path: src})
    assert out.splitlines()[1:4] == ["   |", '12 | retry = "x"', "   |         ^~~"]


def test_text_multi_line_span_is_marked_to_the_end_of_its_first_line():
    src = source()
    start = src.text.index("rule")
    diagnostic = codes.TOML_SYNTAX.at(src.span(start, src.text.index("retry") + 5), "broken")
    out = report.render_text([diagnostic], {src.path: src})
    assert out.splitlines()[3] == "  | " + "^" + "~" * (len('rule = "cron=0 * * * *"') - 1)


def test_text_empty_span_and_span_at_end_of_file_get_one_caret():
    src = source("[[Phase]]")
    diagnostic = codes.MISSING_TASK.at(src.span(9, 9), "a phase without a task")
    assert report.render_text([diagnostic], {src.path: src}).splitlines()[1:4] == [
        "  |",
        "1 | [[Phase]]",
        "  |          ^",
    ]


def test_text_multi_line_help_is_indented():
    src = source()
    out = report.render_text([wrong_type(src, help="one\ntwo")], {src.path: src})
    assert "help: one\n      two\n" in out


def test_text_without_the_source_still_has_the_header():
    src = source()
    out = report.render_text([wrong_type(src)], {})
    assert out.startswith("flows/etl.toml:1:1: error[FL104]: ")


def test_color_only_when_asked():
    src = source()
    warning = codes.NEGATIVE_RETRY.at(span_of(src, '"x"'), "negative")
    plain = report.render_text([wrong_type(src), warning], {src.path: src})
    colored = report.render_text([wrong_type(src), warning], {src.path: src}, color=True)
    assert "\x1b[" not in plain
    assert "\x1b[1;31merror[FL104]" in colored and "\x1b[1;33mwarning[FL111]" in colored
    assert "\x1b[36m  |\x1b[0m" in colored


# --- json ------------------------------------------------------------------------------------


def test_json_fields_are_one_based_with_exclusive_end():
    src = source()
    other = source("x = 1\n", path="other.toml")
    diagnostic = wrong_type(src, help="h", notes=("n",), secondary=(Label(other.span(4, 5), "there"),))
    [item] = json.loads(report.render_json([diagnostic], {src.path: src, other.path: other}))
    assert item == {
        "file": "flows/etl.toml",
        "line": 4,
        "column": 9,
        "end_line": 4,
        "end_column": 12,
        "severity": "error",
        "code": "FL104",
        "name": "wrong-type",
        "message": "`retry` must be an integer, not a string",
        "help": "h",
        "notes": ["n"],
        "related": [
            {"file": "other.toml", "line": 1, "column": 5, "end_line": 1, "end_column": 6, "message": "there"}
        ],
    }


def test_json_clean_is_an_empty_array():
    assert json.loads(report.render_json([], {})) == []


# --- sarif -----------------------------------------------------------------------------------


def sarif_log(diagnostics, sources, **options) -> dict:
    return json.loads(report.render_sarif(diagnostics, sources, tool_version="9.9.9", **options))


def test_sarif_has_the_fields_github_code_scanning_requires():
    src = source()
    other = source("[[Phase]]\n", path="other.toml")
    warning = codes.NO_PHASES.at(other.span(0, 9), "no phases")
    diagnostic = wrong_type(src, secondary=(Label(span_of(src, '"a"'), "here"),))
    log = sarif_log([diagnostic, warning], {src.path: src, other.path: other})

    assert log["$schema"] == report.SARIF_SCHEMA and log["version"] == "2.1.0"
    [run] = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "flowlord" and driver["version"] == "9.9.9" and driver["informationUri"]
    rules = driver["rules"]
    assert [rule["id"] for rule in rules] == list(codes.REGISTRY)
    for rule in rules:
        for key in ("shortDescription", "fullDescription", "help"):
            assert rule[key]["text"] and len(rule[key]["text"]) <= (1024 if key != "help" else 10**6)
        assert rule["name"] and rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}

    first, second = run["results"]
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["message"]["text"]
        assert result["partialFingerprints"]["primaryLocationLineHash"]
        artifact = result["locations"][0]["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%" and not artifact["uri"].startswith("/")
    assert (first["level"], second["level"]) == ("error", "warning")
    assert first["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "flows/etl.toml", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 4, "startColumn": 9, "endLine": 4, "endColumn": 12},
    }
    [related] = first["relatedLocations"]
    assert related["message"]["text"] == "here"
    assert related["physicalLocation"]["region"]["startLine"] == 2


def test_sarif_fingerprint_is_stable_and_distinguishes_repeats():
    src = source()
    again = source("# a comment first\n" + WORKFLOW)
    [one] = sarif_log([wrong_type(src)], {src.path: src})["runs"][0]["results"]
    [moved] = sarif_log([wrong_type(again)], {again.path: again})["runs"][0]["results"]
    assert one["partialFingerprints"] == moved["partialFingerprints"]
    twice = sarif_log([wrong_type(src), wrong_type(src)], {src.path: src})["runs"][0]["results"]
    hashes = [r["partialFingerprints"]["primaryLocationLineHash"] for r in twice]
    assert hashes[0] != hashes[1] and hashes[0].split(":")[0] == hashes[1].split(":")[0]


def test_sarif_paths_are_relative_with_forward_slashes(tmp_path):
    inside = source(path=str(tmp_path / "flows" / "etl.toml"))
    outside = source(path="/elsewhere/etl.toml")
    dotted = source(path="./flows/my etl.toml")
    log = sarif_log(
        [wrong_type(inside), wrong_type(outside), wrong_type(dotted)],
        {s.path: s for s in (inside, outside, dotted)},
        root=str(tmp_path),
    )
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in log["runs"][0]["results"]]
    assert uris == [
        {"uri": "flows/etl.toml", "uriBaseId": "%SRCROOT%"},
        {"uri": "file:///elsewhere/etl.toml"},
        {"uri": "flows/my%20etl.toml", "uriBaseId": "%SRCROOT%"},
    ]


def test_sarif_clean_run_still_lists_rules():
    log = sarif_log([], {})
    assert log["runs"][0]["results"] == [] and len(log["runs"][0]["tool"]["driver"]["rules"]) == len(codes.REGISTRY)


# --- github ----------------------------------------------------------------------------------


def test_github_annotation_with_help():
    src = source()
    out = report.render_github([wrong_type(src, help="use a number")], {src.path: src})
    assert out == (
        "::error file=flows/etl.toml,line=4,col=9,endLine=4,endColumn=12,title=flowlord FL104"
        "::`retry` must be an integer, not a string%0Ahelp: use a number\n"
    )


def test_github_escapes_data_and_properties():
    src = source(path="odd,dir:x/a%b.toml")
    diagnostic = codes.NEGATIVE_RETRY.at(span_of(src, '"x"'), "50% off: a, b\r\nnext")
    out = report.render_github([diagnostic], {src.path: src})
    assert out == (
        "::warning file=odd%2Cdir%3Ax/a%25b.toml,line=4,col=9,endLine=4,endColumn=12,"
        "title=flowlord FL111::50%25 off: a, b%0D%0Anext\n"
    )


def test_github_multi_line_spans_have_no_columns_and_clean_is_empty():
    src = source()
    diagnostic = codes.TOML_SYNTAX.at(src.span(0, len(src.text) - 1), "broken")
    assert report.render_github([diagnostic], {src.path: src}) == (
        "::error file=flows/etl.toml,line=1,endLine=4,title=flowlord FL101::broken\n"
    )
    assert report.render_github([], {}) == ""


# --- render and explain ----------------------------------------------------------------------


def test_render_dispatches_on_format():
    src = source()
    for format in report.FORMATS:
        assert report.render(format, [wrong_type(src)], {src.path: src})
    with pytest.raises(ValueError):
        report.render("xml", [], {})


def test_explain_without_long_texts(monkeypatch):
    def no_explanations(name):
        raise AttributeError(name)

    monkeypatch.setattr(codes, "__getattr__", no_explanations, raising=False)
    monkeypatch.delattr(codes, "EXPLANATIONS", raising=False)
    assert not hasattr(codes, "EXPLANATIONS")
    text = report.explain(" fl104 ")
    assert text == f"FL104 wrong-type (error)\n\n{codes.WRONG_TYPE.summary}\n"
    assert report.explain("wrong-type") == text
    assert "Why it matters" not in report.render_sarif([], {}, tool_version="1")


def test_explain_with_a_code_missing_from_the_long_texts(monkeypatch):
    monkeypatch.setattr(codes, "EXPLANATIONS", {}, raising=False)
    assert report.explain("FL104").endswith(f"{codes.WRONG_TYPE.summary}\n")


def test_explain_with_long_texts(monkeypatch):
    entry = SimpleNamespace(
        why="go stops reading the file " * 8, example='[[Phase]]\nretry = "x"\n', fix="retry = 3"
    )
    monkeypatch.setattr(codes, "EXPLANATIONS", {"FL104": entry}, raising=False)
    text = report.explain("FL104")
    why = text[text.index("Why it matters:\n") :].splitlines()[1:4]
    assert all(len(line) <= 88 for line in why) and why[0].startswith("go stops")
    assert text.endswith('\nExample:\n    [[Phase]]\n    retry = "x"\n\nFix:\n    retry = 3\n')
    rules = json.loads(report.render_sarif([], {}, tool_version="1"))["runs"][0]["tool"]["driver"]["rules"]
    [rule] = [r for r in rules if r["id"] == "FL104"]
    assert rule["fullDescription"]["text"] == entry.why.strip()
    assert '```toml\n[[Phase]]\nretry = "x"\n```' in rule["help"]["markdown"]


def test_every_registered_code_explains_itself():
    for id in codes.REGISTRY:
        assert report.explain(id).startswith(f"{id} ")


def test_explain_unknown_code():
    with pytest.raises(KeyError):
        report.explain("FL999")


def test_every_severity_has_a_sarif_level():
    assert {report._LEVELS[s] for s in Severity} == {"error", "warning", "note"}
