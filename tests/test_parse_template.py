"""Template grammar: Go's exact token spellings, the # comment rule, and every template error."""

import pytest
from conftest import codes_of, mapped

from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_template import meta_refs, parse_template


def parts(template):
    return [
        (p.kind, getattr(p, "name", None) or getattr(p, "key", None) or getattr(p, "value", None))
        for p in template.parts
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("?date={yyyy}-{mm}-{dd}T{hh}", [("text", "?date="), ("time", "yyyy"), ("text", "-"), ("time", "mm"),
                                          ("text", "-"), ("time", "dd"), ("text", "T"), ("time", "hh")]),
        ("{YYYY}{Yyyy}{yy}{MM}{Dd}{HH}", [("time", "yyyy"), ("time", "yyyy"), ("time", "yy"), ("time", "mm"),
                                          ("time", "dd"), ("time", "hh")]),
        ("{min}{TS}{SLUG}{HOUR_SLUG}{DAY_SLUG}{MONTH_SLUG}",
         [("time", "min"), ("time", "TS"), ("time", "SLUG"), ("time", "HOUR_SLUG"), ("time", "DAY_SLUG"),
          ("time", "MONTH_SLUG")]),
        ("{host}/{POD}/{uuid}", [("host", "host"), ("text", "/"), ("host", "pod"), ("text", "/"), ("host", "uuid")]),
        ("{meta:file}?x={meta:key_2}", [("meta", "file"), ("text", "?x="), ("meta", "key_2")]),
        ("", []),
        ("#{hh}", [("text", "#"), ("time", "hh")]),  # a # at index 0 is not a comment
    ],
)  # fmt: skip
def test_good_templates(text, expected):
    sink = Sink()
    template = parse_template(mapped(text), sink)
    assert parts(template) == expected
    assert sink.sorted() == []


def test_comment_keeps_meta_tokens_only():
    sink = Sink()
    template = parse_template(mapped("?d={yyyy}#note {hh} {meta:k} {anything}"), sink)
    assert template.comment_at == 2
    assert parts(template)[2:] == [("text", "#note "), ("text", "{hh}"), ("text", " "), ("meta", "k"),
                                   ("text", " "), ("text", "{anything}")]  # fmt: skip
    assert codes_of(sink) == ["FL406"]


@pytest.mark.parametrize(
    "text, code, start, end, help_part",
    [
        ("?d={yyy}", "FL401", 3, 8, "`{yyyy}`"),
        ("{ts}", "FL401", 0, 4, "`{TS}`"),
        ("{UUID}", "FL401", 0, 6, "`{uuid}`"),
        ("{MIN}", "FL401", 0, 5, "`{min}`"),
        ("{Meta:file}", "FL401", 0, 11, "`{meta:file}`"),
        ("{nonsense}", "FL401", 0, 10, "known tokens"),
        ("?d={yyyy", "FL402", 3, 4, "close"),
        ("?d=yyyy}", "FL402", 7, 8, "remove"),
        ("{meta:}", "FL405", 0, 7, "letters"),
        ("{meta:a-b}", "FL405", 0, 10, "letters"),
        ("{uuid}{uuid}", "FL407", 6, 12, "one"),
    ],
)
def test_bad_templates(text, code, start, end, help_part):
    sink = Sink()
    parse_template(mapped(text), sink)
    (diagnostic,) = sink.sorted()
    assert (diagnostic.code, diagnostic.span.start, diagnostic.span.end) == (code, start, end)
    assert help_part in diagnostic.help


def test_unknown_tokens_stay_literal_like_go():
    template = parse_template(mapped("a{x}b"), Sink())
    assert "".join(p.value for p in template.parts) == "a{x}b"


def test_meta_refs_reports_nothing_but_finds_keys():
    sink = Sink()
    refs = meta_refs(mapped("{meta:file}{other}{meta:x}"), sink)
    assert [r.key for r in refs] == ["file", "x"]
    assert sink.sorted() == []
