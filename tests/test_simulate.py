"""`flowlord simulate`: golden scenarios, determinism, and the input contract."""

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

from flowlord import cli
from flowlord.compiler import compile_paths
from flowlord.runtime.simulate import format_instant, simulate

if "update_golden" in sys.modules:
    update_golden = sys.modules["update_golden"]
else:
    _spec = importlib.util.spec_from_file_location("update_golden", Path(__file__).with_name("update_golden.py"))
    update_golden = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = update_golden  # its dataclass looks itself up there
    _spec.loader.exec_module(update_golden)

SCENARIOS = update_golden.simulate_scenarios()
GOLDEN = update_golden.SIMULATE_GOLDEN


@pytest.mark.parametrize("events, workflow", SCENARIOS, ids=[e.stem for e, _ in SCENARIOS])
def test_golden_scenario(events, workflow):
    golden = events.with_suffix(".out")
    assert golden.exists(), f"run python tests/update_golden.py to write {golden.name}"
    assert update_golden.simulate_output(events, workflow) == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs: run python tests/update_golden.py and review the diff"
    )


def test_there_are_scenarios():
    assert {e.stem for e, _ in SCENARIOS} >= {"chain.complete", "chain.retry", "chain.bad-input",
                                              "files.arrivals", "batch.day"}


def lines_of(name: str) -> list[dict]:
    return [json.loads(line) for line in (GOLDEN / name).read_text().splitlines()]


def test_the_chain_goldens_say_what_the_issue_says():
    complete = lines_of("chain.complete.out")
    task1 = complete[0]
    assert task1["topic"] == "task1" and task1["at"] == "2024-01-15T00:00:00Z"
    children = [c for c in complete if c["topic"] in ("task2", "task5")]
    assert {c["task"]["id"] for c in children} == {task1["task"]["id"]}
    retry = lines_of("chain.retry.out")
    topics = [line.get("topic", "alert" if "alert" in line else "?") for line in retry]
    assert topics == ["task1", "task1", "task1", "retry-failed", "alert", "retry-failed", "task2"]
    assert "retry=1" in retry[1]["task"]["meta"] and "delayed=" in retry[1]["task"]["meta"]
    assert retry[1]["at"].startswith("2024-01-15T00:00:00.01")  # 10ms and jitter after the error
    assert retry[-1]["at"] > "2024-01-15T00:01:00Z"  # the clock ran on for the last retry
    assert "retry=failed" in retry[3]["task"]["meta"]
    bad = lines_of("chain.bad-input.out")
    assert sum("rejected" in line for line in bad) >= 10


@pytest.fixture
def chain_plan():
    compilation = compile_paths([str(GOLDEN / "chain.toml")])
    return compilation.plan


EVENTS = [
    '{"at":"2024-01-15T00:00:00Z"}',
    '{"done":{"type":"task1","job":"t2","id":"56262435-3a13-4be3-85f8-8445347ff821",'
    '"meta":"workflow=chain.toml&cron=2024-01-14T20&job=t2","result":"error"}}',
    '{"at":"2024-01-15T02:00:00Z"}',
]


def test_simulate_is_deterministic_and_seeded(chain_plan):
    first = simulate(chain_plan, EVENTS, seed=3)
    assert simulate(chain_plan, EVENTS, seed=3) == first
    other = simulate(chain_plan, EVENTS, seed=4)
    assert other != first  # ids and jitter follow the seed
    assert [json.loads(x).get("topic") for x in other] == [json.loads(x).get("topic") for x in first]


def test_no_jitter_keeps_the_ids(chain_plan):
    jittered = [json.loads(x) for x in simulate(chain_plan, EVENTS, seed=1)]
    exact = [json.loads(x) for x in simulate(chain_plan, EVENTS, seed=1, no_jitter=True)]
    assert [x["task"]["id"] for x in jittered] == [x["task"]["id"] for x in exact]
    retry = exact[1]
    assert retry["at"] == "2024-01-15T00:00:00.01Z" and "delayed=10ms" in retry["task"]["meta"]


def test_the_first_at_fires_only_what_is_due_then(chain_plan):
    out = [json.loads(x) for x in simulate(chain_plan, ['{"at":"2024-01-15T00:30:00Z"}',
                                                        '{"at":"2024-01-15T01:00:00Z"}'])]
    assert [x["at"] for x in out] == ["2024-01-15T01:00:00Z"]


def test_every_fire_in_between_fires_at_its_own_time(chain_plan):
    out = [json.loads(x) for x in simulate(chain_plan, ['{"at":"2024-01-15T00:00:00Z"}',
                                                        '{"at":"2024-01-15T03:00:00Z"}'])]
    assert [x["at"] for x in out] == [f"2024-01-15T0{h}:00:00Z" for h in range(4)]
    assert [x["task"]["created"] for x in out] == [x["at"] for x in out]


def test_events_before_the_first_at_happen_at_its_instant(chain_plan):
    out = [json.loads(x) for x in simulate(chain_plan, ['{"done":{"type":"nope"}}',
                                                        '{"at":"2024-01-15T00:00:00Z"}'])]
    assert out[0]["at"] == "2024-01-15T00:00:00Z" and "rejected" in out[0]


def test_no_at_at_all_starts_at_the_epoch(chain_plan):
    out = [json.loads(x) for x in simulate(chain_plan, ["garbage"])]
    assert out == [{"at": "1970-01-01T00:00:00Z", "rejected": {"reason": out[0]["rejected"]["reason"],
                                                                "input": "garbage"}}]


def test_format_instant():
    from datetime import datetime, timezone

    assert format_instant(datetime(2024, 1, 15, 0, 0, 0, 10000, tzinfo=timezone.utc)) == "2024-01-15T00:00:00.01Z"
    assert format_instant(datetime(2024, 1, 15, tzinfo=timezone.utc)) == "2024-01-15T00:00:00Z"


def test_cli_reads_stdin_and_reports_errors(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"at":"2024-01-15T00:00:00Z"}\n'))
    assert cli.main(["simulate", str(GOLDEN / "chain.toml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["topic"] == "task1"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[Phase]]\ntask = "a"\nrule = "cron=nope"\ntemplate = "x"\n')
    assert cli.main(["simulate", str(bad), "--events", str(GOLDEN / "chain.retry.jsonl")]) == 1
    assert capsys.readouterr().out == ""
    assert cli.main(["simulate", str(GOLDEN / "chain.toml"), "--events", str(tmp_path / "none")]) == 2
