"""Rule grammar: the query string, every key's value language, and every rule diagnostic."""

import pytest
from conftest import codes_of, mapped

from flowlord.compiler.ast import CronTrigger, FileTrigger
from flowlord.compiler.diagnostics import Sink
from flowlord.compiler.parse_rule import parse_rule


def rule_of(text):
    sink = Sink()
    return parse_rule(mapped(text), sink), sink


def test_full_rule():
    rule, sink = rule_of("cron=0 * * * *&offset=-4h&job=t2&retry_delay=10ms&no_alert=true&require={meta:file}")
    assert sink.sorted() == []
    assert [p.key for p in rule.pairs] == ["cron", "offset", "job", "retry_delay", "no_alert", "require"]
    (trigger,) = rule.triggers
    assert isinstance(trigger, CronTrigger) and trigger.spec.text == "0 * * * *"
    assert rule.offset.duration.nanoseconds == -4 * 3600 * 10**9
    assert rule.retry_delay.nanoseconds == 10 * 10**6
    assert rule.job.value == "t2" and rule.no_alert is True
    assert rule.require.keys == ("file",)


def test_empty_rule_and_empty_segments():
    for text in ("", "&", "cron=0 * * * *&&"):
        rule, sink = rule_of(text)
        assert sink.sorted() == []


def test_batch_and_meta():
    rule, sink = rule_of("cron=0 0 * * *&for=-48h&by=hourly&meta=key:a,b|val:1,2")
    assert sink.sorted() == []
    batch = rule.batch
    assert batch.by == "hour" and batch.for_.nanoseconds == -48 * 3600 * 10**9
    assert [(r.key, r.values) for r in batch.meta.rows] == [("key", ("a", "b")), ("val", ("1", "2"))]


def test_meta_keeps_empty_items_and_joins_repeated_keys_like_go():
    rule, sink = rule_of("meta=k: a,,b&meta=j:1,2,3|k:x,y,z")
    assert sink.sorted() == []
    assert [(r.key, r.values) for r in rule.batch.meta.rows] == [("k", ("x", "y", "z")), ("j", ("1", "2", "3"))]


def test_files_trigger_and_percent_decoding():
    rule, sink = rule_of("files=gs://b/%2A/x+y.csv")
    assert sink.sorted() == []
    (trigger,) = rule.triggers
    assert isinstance(trigger, FileTrigger) and trigger.pattern == "gs://b/*/x y.csv"


@pytest.mark.parametrize(
    "text, code, start, end",
    [
        ("0 0 * * * *", "FL201", 0, 11),
        ("require:{meta:file}", "FL201", 0, 19),
        ("cron=1 * * * *&offset", "FL201", 15, 21),
        ("=x", "FL201", 0, 1),
        ("Offset=-4h", "FL202", 0, 6),
        ("meta_file=x.json", "FL202", 0, 9),
        ("Template=x", "FL203", 0, 8),
        ("job=a&job=b", "FL204", 6, 9),
        ("cron=", "FL205", 0, 4),
        ("offset=4d", "FL206", 8, 9),
        ("cron=0 * * * *;x=1", "FL207", 14, 15),
        ("files=a#b", "FL207", 7, 8),
        ("files=a%zz", "FL207", 7, 10),
        ("cron=0 * * * *&for=-4h&by=minute", "FL208", 26, 32),
        ("cron=0 * * * *&meta=key", "FL209", 20, 23),
        ("cron=0 * * * *&meta=a:1,2|b:1", "FL210", 26, 29),
        ("cron=0 * * * *&meta=a:1&meta-file=x.json", "FL211", 24, 33),
        ("files=/data/**/x.csv", "FL213", 12, 14),
        ("files=/data/[a-", "FL214", 12, 15),
        ("require=abc", "FL215", 8, 11),
        ("no_alert=false", "FL216", 0, 14),
        ("no_alert", "FL216", 0, 8),
        ("retry_delay=-5s", "FL217", 12, 15),
        ("count=3", "FL218", 0, 5),
    ],
)
def test_rule_diagnostics(text, code, start, end):
    _, sink = rule_of(text)
    found = [(d.code, d.span.start, d.span.end) for d in sink.sorted()]
    assert (code, start, end) in found, found


def test_bare_cron_suggests_cron_key():
    _, sink = rule_of("0 0 * * * *")
    (d,) = sink.sorted()
    assert d.help == "did you mean `cron=0 0 * * * *`?"


def test_unknown_key_did_you_mean():
    _, sink = rule_of("Offset=-4h&meta_file=x&no-alert=1&retries=3")
    helps = [d.help for d in sink.sorted()]
    assert helps[:3] == ["did you mean `offset`?", "did you mean `meta-file`?", "did you mean `no_alert`?"]
    assert helps[3].startswith("known keys:")


def test_positions_survive_percent_escapes():
    # `%20` is three characters in the rule but one in the value: the bad unit is still found
    _, sink = rule_of("offset=%2D4d")
    (d,) = sink.sorted()
    assert (d.code, d.span.start, d.span.end) == ("FL206", 11, 12)


def test_one_bad_key_does_not_hide_the_others():
    _, sink = rule_of("Cron=1&offset=4x&by=yearly&files=**")
    assert codes_of(sink) == ["FL202", "FL206", "FL208", "FL213"]
