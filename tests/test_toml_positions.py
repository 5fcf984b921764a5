"""The TOML position scanner: every value's span, strings mapped character by character."""

import tomllib

import pytest

from flowlord.compiler.toml_positions import scan

DOC = r'''# a comment
checksum = "x"
[[Phase]]   # trailing comment
task = "a\u00e9b\tc"
'rule' = 'lit\eral'
"dependsOn" = """
multi \
   line"""
template = """x""y"""""
arr = [1, [2, "x"], {a = "y"}]   # arrays and inline tables are skipped whole
tbl = {b.c = 2, d = "z"}
dt = 1979-05-27 07:32:00Z
x.y = "dot"
[[ phase ]]
retry=3
'''


def test_scan_finds_tables_and_keys():
    tomllib.loads(DOC)
    layout = scan("f", DOC)
    assert [kv.key for kv in layout.root] == ["checksum"]
    assert [(t.name, t.is_array) for t in layout.tables] == [(("Phase",), True), (("phase",), True)]
    assert [kv.dotted for kv in layout.tables[0].entries] == [
        ("task",), ("rule",), ("dependsOn",), ("template",), ("arr",), ("tbl",), ("dt",), ("x", "y"),
    ]  # fmt: skip
    assert DOC[layout.tables[1].name_start : layout.tables[1].name_end] == "phase"


def test_string_values_decode_like_tomllib_with_exact_offsets():
    data = tomllib.loads(DOC)["Phase"][0]
    entries = {kv.dotted[0]: kv for kv in scan("f", DOC).tables[0].entries}
    for key in ("task", "rule", "dependsOn", "template"):
        assert entries[key].string.text == data[key]
    task = entries["task"].string
    # the é comes from the 6-character escape \u00e9, the tab from \t
    assert DOC[task.offsets[1] : task.offsets[2]] == "\\u00e9"
    assert DOC[task.offsets[3] : task.offsets[4]] == "\\t"
    assert DOC[task.offsets[4]] == "c"
    span = task.span(1, 2)
    assert DOC[span.start : span.end] == "\\u00e9"
    multi = entries["dependsOn"].string
    assert multi.text == "multi line"
    assert DOC[multi.offsets[6]] == "l"  # after the line-ending backslash


@pytest.mark.parametrize(
    "value",
    ['"plain"', "'literal \\n'", '"""\nfirst\n  second"""', "'''\nraw \\t'''", '"q\\"uote"', '"\\U0001F600 x"'],
)
def test_every_string_form_round_trips(value):
    doc = f"[[Phase]]\ntask = {value}\n"
    expected = tomllib.loads(doc)["Phase"][0]["task"]
    string = scan("f", doc).tables[0].entries[0].string
    assert string.text == expected
    assert len(string.offsets) == len(expected) + 1
    assert all(a < b for a, b in zip(string.offsets, string.offsets[1:]))
