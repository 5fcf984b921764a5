"""Property: whatever the input, the front end only ever yields diagnostics, never an exception."""

import tomllib

from conftest import mapped
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowlord.compiler import lint_files
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_cron import parse_cron
from flowlord.compiler.parse_duration import parse_duration
from flowlord.compiler.parse_rule import RULE_KEYS, parse_rule
from flowlord.compiler.parse_template import parse_template

# Text biased towards the characters each language gives meaning to.
RULE_ALPHABET = "&=;#%+:|,{}*/?-@ 0123456789abcdhmsuxyzACFT_." + "é"
rule_text = st.one_of(
    st.text(alphabet=RULE_ALPHABET, max_size=60),
    st.lists(
        st.tuples(st.sampled_from(RULE_KEYS + ("Offset", "x", "")), st.text(alphabet=RULE_ALPHABET, max_size=20)),
        max_size=6,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
)
cron_text = st.one_of(
    st.text(alphabet="0123456789*/,-? @JANMONFRISUTZ=/", max_size=40),
    st.lists(st.text(alphabet="0123456789*/,-?LW#MONJAN", min_size=1, max_size=6), min_size=0, max_size=8).map(" ".join),
)
template_text = st.text(alphabet="{}#:metayYmMdDhHinTSLUGOR_xo?=&/-é0", max_size=50)


@settings(max_examples=400, deadline=None)
@given(rule_text)
def test_rules_never_raise(text):
    parse_rule(mapped(text), Sink())


@settings(max_examples=400, deadline=None)
@given(cron_text)
def test_crons_never_raise(text):
    sink = Sink()
    spec = parse_cron(mapped(text), sink)
    assert (spec is None) == sink.has_errors()


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+-.0123456789nsuµμmh d", max_size=20))
def test_durations_never_raise(text):
    parse_duration(mapped(text), Sink(), "offset", allow_integer_ns=True)


@settings(max_examples=300, deadline=None)
@given(template_text)
def test_templates_never_raise(text):
    template = parse_template(mapped(text), Sink())
    assert template.text == text


toml_value = st.one_of(
    rule_text.map(lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'),
    template_text.map(lambda s: "'" + s.replace("'", "") + "'"),
    st.integers(-5, 5).map(str),
    st.sampled_from(["true", "[1, 2]", "{a = 1}", '"""\nx\\\n  y"""', "1979-05-27"]),
)
toml_key = st.sampled_from(["task", "Task", "rule", "dependsOn", "depends_on", "retry", "template", "x.y"])
toml_table = st.tuples(
    st.sampled_from(["[[Phase]]", "[[phase]]", "[[phases]]", "[Phase]", "[other]"]),
    st.lists(st.tuples(toml_key, toml_value), max_size=6),
)
toml_doc = st.one_of(
    st.lists(toml_table, max_size=4).map(
        lambda tables: "\n".join(h + "\n" + "\n".join(f"{k} = {v}" for k, v in kvs) for h, kvs in tables)
    ),
    st.text(max_size=80),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(toml_doc)
def test_toml_files_never_raise(tmp_path, text):
    path = tmp_path / "wf.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    compilation = lint_files([str(path)])
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert any(d.code == "FL101" for d in compilation.diagnostics)
    for diagnostic in compilation.diagnostics:
        source = compilation.sources[diagnostic.span.path]
        assert 0 <= diagnostic.span.start <= diagnostic.span.end <= len(source.text)
