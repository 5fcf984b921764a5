"""Notifications against a real local HTTP server (http.server on 127.0.0.1 in a thread) that
records every request: immediate alerts, summaries (grouping, compact dates, cadence), no alert
lost nor sent twice (alerts arriving during a send, a restart), delivery failures retried and
recorded, the generic webhook, the test message; and the incomplete-task check."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from flowlord.compiler import compile_paths
from flowlord.runtime.bus.memory import MemoryBus
from flowlord.runtime.clock import SimClock
from flowlord.runtime.engine import Engine, Settings
from flowlord.runtime.incomplete import INCOMPLETE_MSG, check_incomplete, task_ttl
from flowlord.runtime.notify import Notifications, SlackChannel, WebhookChannel, post_json
from flowlord.runtime.operations import OpsConfig, Operations
from flowlord.runtime.store import Store
from flowlord.runtime.summary import print_dates
from flowlord.runtime.task import Task

UTC = timezone.utc
T0 = datetime(2024, 1, 15, tzinfo=UTC)


# --- a real HTTP server that records what it is sent -------------------------------------------


class Recorder:
    """POSTs are recorded (path, headers, JSON body); answers come from `statuses` (then 200);
    `on_request(body)` runs in the server's thread before the answer."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.statuses: list[int] = []
        self.on_request = None
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's name)
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with recorder.lock:
                    status = recorder.statuses.pop(0) if recorder.statuses else 200
                    recorder.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": json.loads(data), "status": status})
                if recorder.on_request is not None:
                    recorder.on_request(json.loads(data))
                answer = b"ok" if status < 300 else b"server trouble"
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "7")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def bodies(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.requests if r["status"] < 300]

    def texts(self) -> list[str]:
        return [b["attachments"][0]["text"] if "attachments" in b else b["text"] for b in self.bodies]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    recorder = Recorder()
    yield recorder
    recorder.close()


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "flowlord.db") as s:
        yield s


def task(n: int = 0, **fields) -> Task:
    base = dict(type="task1", job="t2", info=f"?n={n}", created="2024-01-15T00:00:00Z",
                id=f"id-{n}", meta="workflow=f1.toml&job=t2")
    base.update(fields)
    return Task(**base)


def notes(store, server, clock=None, *, channels=None, **options) -> Notifications:
    options.setdefault("spacing", 0)
    options.setdefault("dashboard_url", "http://dash:8080")
    return Notifications(store, channels if channels is not None else [SlackChannel(server.url)],
                         clock or SimClock(T0), **options)


async def until(condition, timeout: float = 5.0) -> None:
    """Waits (real time) for what a thread does: an HTTP request, a backup."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def pad(key: str, count: int, dates: str) -> str:
    # written out, not with the code's own format: key and ':' in 35 columns, count in 5
    return key + ":" + " " * (34 - len(key)) + " " * (5 - len(str(count))) + str(count) + "  " + dates


# --- PrintDates (spec §8.2, the Go test cases) ------------------------------------------------


def hours(*texts: str) -> list[datetime]:
    return [datetime.strptime(t, "%Y/%m/%dT%H").replace(tzinfo=UTC) for t in texts]


@pytest.mark.parametrize("times, expected", [
    ([], ""),
    (["2018/04/09T03"], "2018/04/09T03"),
    (["2018/04/09T03", "2018/04/09T04", "2018/04/09T05"], "2018/04/09T03-2018/04/09T05"),
    (["2018/04/10T14", "2018/04/10T14", "2018/04/10T00", "2018/04/09T00", "2018/04/10T00",
      "2018/04/11T00"], "2018/04/09T00,2018/04/10T00,2018/04/10T14,2018/04/11T00"),
    (["2018/04/09T03", "2018/04/09T04", "2018/04/09T05", "2018/04/09T07", "2018/04/09T08",
      "2018/04/09T09", "2018/04/09T11"],
     "2018/04/09T03-2018/04/09T05,2018/04/09T07-2018/04/09T09,2018/04/09T11"),
    (["2018/04/09T00", "2018/04/10T00", "2018/04/11T00", "2018/04/12T00"], "2018/04/09-2018/04/12"),
    (["2018/04/09T00", "2018/04/10T00", "2018/04/11T00", "2018/04/12T00", "2018/04/15T00",
      "2018/04/16T00", "2018/04/17T00"], "2018/04/09-2018/04/12,2018/04/15-2018/04/17"),
    (["2018/01/01T00", "2018/02/01T00", "2018/03/01T00", "2018/05/01T10"],
     "2018/01-2018/03,2018/05/01T10"),
    (["2018/12/01T00", "2019/01/01T00"], "2018/12-2019/01"),
    (["2018/04/09T05", "2018/04/09T05"], "2018/04/09T05"),
])
def test_print_dates(times, expected):
    assert print_dates(hours(*times)) == expected


# --- immediate alerts -------------------------------------------------------------------------

ALERTING = """
[[Phase]]
task = "task1"
rule = "cron=0 * * * *&job=t2"
template = "?date={yyyy}-{mm}-{dd}T{hh}"
"""


def test_alert_result_sends_an_immediate_message_through_the_engine(tmp_path, server):
    """The engine records the `alert` result, its listener wakes the operations, and Slack
    receives the task as indented JSON: prefix, channel, title, red."""
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "f1.toml").write_text(ALERTING, encoding="utf-8")
    plan = compile_paths([str(folder)]).plan

    async def main():
        clock = SimClock(T0)
        store = Store.open(tmp_path / "flowlord.db")
        engine = Engine(plan, store, MemoryBus(), clock, Settings(rng=random.Random(1)))
        config = OpsConfig(slack_url=server.url, slack_prefix="prod", slack_channel="#ops",
                           slack_title="flowlord", spacing=0)
        ops = Operations(store, config, clock)
        engine.add_listener(ops.on_event)
        engine.start()
        await ops.start()
        clock.set(T0 + timedelta(hours=1))
        await engine.run_due()
        sent = [r.task for r in store.recent_tasks(event="sent")]
        assert sent
        done = sent[0].replace(result="alert", msg="disk almost full")
        assert await engine.process_done(done.to_json())
        await until(lambda: len(server.bodies) == 1)
        # the post is answered before the outbox row is marked: wait for that too
        await until(lambda: [n.status for n in store.notifications()] == ["sent"])
        body = server.bodies[0]
        assert body["channel"] == "#ops"
        (attachment,) = body["attachments"]
        assert attachment["title"] == "flowlord" and attachment["color"] == "#FF0000"
        assert attachment["pretext"] == "flowlord"
        assert attachment["text"].startswith("[prod] {\n")
        assert json.loads(attachment["text"][len("[prod] "):]) == json.loads(done.to_json())
        assert server.requests[0]["headers"]["Content-Type"] == "application/json"
        # carried: never again, nor in a summary
        assert store.unsent_alerts() == []
        (note,) = store.notifications()
        assert (note.kind, note.channel, note.status, note.attempts) == ("alert", "slack", "sent", 1)
        ops.notifications.summary_tick()
        await ops.stop()
        assert len(server.requests) == 1
        store.close()

    asyncio.run(main())


def test_immediate_alerts_left_unsent_before_a_restart_are_sent_at_start(store, server):
    store.record_alert(task(1, result="alert", msg="look"), at=T0)
    n = notes(store, server)

    async def main():
        assert n.flush_immediate() == 1
        assert await n.deliver_due() == 1

    asyncio.run(main())
    text = server.texts()[0]
    assert json.loads(text)["msg"] == "look"  # the alert's own fields when the task is not stored


# --- summaries ----------------------------------------------------------------------------------


def test_summary_groups_by_type_and_job_with_compact_dates(store, server):
    for h in (1, 2, 3):
        store.record_alert(task(h, created=f"2024-01-15T0{h}:00:00Z", result="error"),
                           at=T0 + timedelta(hours=5))
    for d in (10, 11):
        store.record_alert(task(d, type="task2", job="", created=f"2024-01-{d}T00:00:00Z",
                                result="error"), at=T0 + timedelta(hours=6))
    store.record_alert(task(9, type="zz", job="j", created="2024-01-14T23:00:00Z"),
                       msg=INCOMPLETE_MSG, at=T0 + timedelta(hours=7))
    store.record_alert(task(8, result="alert"), at=T0)  # immediate: not in summaries
    n = notes(store, server)

    async def main():
        assert n.queue_summary() == 6
        await n.deliver_due()

    asyncio.run(main())
    assert server.texts() == ["\n".join([
        "see report at http://dash:8080/web/alert?date=2024-01-15",
        pad("task1:t2", 3, "2024/01/15T01-2024/01/15T03"),
        pad("task2", 2, "2024/01/10-2024/01/11"),
        pad("zz:j", 1, "2024/01/14T23"),
    ])]
    assert [a.result for a in store.unsent_alerts()] == ["alert"]


def test_cadence_doubles_while_alerts_keep_coming_and_resets_when_quiet(store, server):
    clock = SimClock(T0)
    n = notes(store, server, clock, min_frequency=timedelta(minutes=5),
              max_frequency=timedelta(minutes=20))
    minutes = lambda m: T0 + timedelta(minutes=m)  # noqa: E731
    seen = []

    async def main():
        loops = [asyncio.create_task(n.run_summaries()), asyncio.create_task(n.run_delivery())]
        await clock.advance_to(T0)
        assert n.frequency == timedelta(minutes=5) and n.next_tick == minutes(5)  # quiet at start
        for alert_at, tick, frequency in (
                (1, 5, 10),   # alerts: doubled
                (6, 15, 20),
                (16, 35, 20),  # capped at the max
                (36, 55, 20),
                (None, 75, 5),  # a quiet tick: back to the min
                (76, 80, 10)):
            if alert_at is not None:
                await clock.advance_to(minutes(alert_at))
                store.record_alert(task(alert_at), at=clock.now())
            await clock.advance_to(minutes(tick) - timedelta(seconds=1))
            assert n.next_tick == minutes(tick)
            await clock.advance_to(minutes(tick))
            assert n.frequency == timedelta(minutes=frequency), tick
            assert n.status()["frequency"] == f"{frequency}m"
            seen.append(n.last_summary)
        await until(lambda: len(server.bodies) == 5)
        n.stop()
        await asyncio.gather(*loops)

    asyncio.run(main())
    summaries = [note.created for note in reversed(store.notifications()) if note.kind == "summary"]
    assert summaries == [minutes(m) for m in (5, 15, 35, 55, 80)]
    assert len(server.bodies) == 5


def test_default_max_frequency_is_16_times_the_min(store, server):
    n = notes(store, server, min_frequency=timedelta(minutes=5))
    assert n.max_frequency == timedelta(minutes=80)
    assert notes(store, server, min_frequency=timedelta(0)).min_frequency == timedelta(minutes=5)
    frequencies = []
    for i in range(7):
        store.record_alert(task(i), at=T0)
        n.summary_tick(T0 + timedelta(minutes=i))
        frequencies.append(int(n.frequency.total_seconds() // 60))
    assert frequencies == [10, 20, 40, 80, 80, 80, 80]


def test_no_alert_is_lost_when_alerts_arrive_during_a_send(store, server):
    for i in range(3):
        store.record_alert(task(i), at=T0)
    arrived = []

    def during_the_send(body):  # in the server's thread, while the summary is being posted
        if not arrived:
            for i in (10, 11):
                arrived.append(store.record_alert(task(i, type="late"), at=T0 + timedelta(seconds=1)))

    server.on_request = during_the_send
    n = notes(store, server)

    async def main():
        assert n.queue_summary() == 3
        await n.deliver_due()
        assert [a.id for a in store.unsent_alerts()] == arrived
        assert n.queue_summary() == 2
        await n.deliver_due()
        assert n.queue_summary() == 0

    asyncio.run(main())
    first, second = server.texts()
    assert "task1:t2:" in first and "late" not in first
    assert "late:t2:" in second and "task1" not in second


def test_every_alert_is_carried_exactly_once_under_a_concurrent_writer(store, server):
    n = notes(store, server)
    stop = threading.Event()
    written: list[int] = []

    def writer():
        i = 0
        while not stop.is_set() and i < 400:
            written.append(store.record_alert(task(i), at=T0))
            i += 1
            time.sleep(0.0005)

    async def main():
        thread = threading.Thread(target=writer)
        thread.start()
        while thread.is_alive():
            n.queue_summary()
            await n.deliver_due()
            await asyncio.sleep(0.003)
        stop.set()
        thread.join()
        n.queue_summary()
        await n.deliver_due()

    asyncio.run(main())
    carried = [i for note in store.notifications(limit=1000) for i in note.alert_ids]
    assert sorted(carried) == sorted(written) and len(carried) == len(set(carried))
    assert len(server.bodies) == len(store.notifications(limit=1000)) > 1


def test_a_restart_does_not_resend_and_delivers_what_was_queued(tmp_path, server):
    path = tmp_path / "flowlord.db"
    with Store.open(path) as store:
        store.record_alert(task(1), at=T0)
        store.record_alert(task(2), at=T0)
        n = notes(store, server)
        n.queue_summary()
        asyncio.run(n.deliver_due())
        store.record_alert(task(3), at=T0)
        n.queue_summary()  # queued, not yet posted: the process stops here
    assert len(server.bodies) == 1
    with Store.open(path) as store:  # a new process
        n = notes(store, server)

        async def main():
            assert n.summary_tick() == 0  # nothing unsent: nothing again
            assert n.flush_immediate() == 0
            await n.deliver_due()  # the message queued before the stop

        asyncio.run(main())
    texts = server.texts()
    assert len(texts) == 2 and texts[1].count("\n") == 1 and pad("task1:t2", 1, "2024/01/15T00") in texts[1]


# --- delivery failures ------------------------------------------------------------------------


def test_a_failing_delivery_is_retried_with_backoff_and_recorded(store, server):
    clock = SimClock(T0)
    n = notes(store, server, clock, retry_backoff=timedelta(seconds=1))
    server.statuses = [500, 500]
    store.record_alert(task(1), at=T0)

    async def main():
        n.queue_summary()
        assert await n.deliver_due() == 0
        (note,) = store.notifications()
        assert (note.status, note.attempts, note.next_at) == ("pending", 1, T0 + timedelta(seconds=1))
        assert note.error == "HTTP 500: server trouble"
        store.record_alert(task(2), at=T0)
        n.queue_summary()  # a second message waits behind the first
        assert await n.deliver_due() == 0 and len(server.requests) == 1  # nothing due yet
        assert store.notifications()[0].next_at == T0 + timedelta(seconds=1)
        clock.set(T0 + timedelta(seconds=1))
        assert await n.deliver_due() == 0
        first = store.notifications()[1]
        assert (first.attempts, first.next_at) == (2, T0 + timedelta(seconds=3))  # doubled
        clock.set(T0 + timedelta(seconds=3))
        assert await n.deliver_due() == 2  # the server is back: both, in order

    asyncio.run(main())
    assert [r["status"] for r in server.requests] == [500, 500, 200, 200]
    second, first = store.notifications()
    assert (first.status, first.attempts, first.error) == ("sent", 3, "HTTP 500: server trouble")
    assert (second.status, second.attempts) == ("sent", 1)
    assert first.alert_ids == (1,) and second.alert_ids == (2,) and first.done_at <= second.done_at
    assert n.status()["last_error"] == "slack: HTTP 500: server trouble"


def test_delivery_gives_up_after_a_day_and_never_raises(store):
    clock = SimClock(T0)
    dead = "http://127.0.0.1:9/nobody"  # the discard port: refused
    n = Notifications(store, [SlackChannel(dead)], clock, spacing=0, timeout=2,
                      retry_backoff=timedelta(minutes=10), give_up_after=timedelta(hours=1))
    store.record_alert(task(1), at=T0)

    async def main():
        n.queue_summary()
        while store.notifications()[0].status == "pending":
            await n.deliver_due()
            clock.set(max(clock.now(), store.notifications()[0].next_at))

    asyncio.run(main())
    (note,) = store.notifications()
    assert note.status == "failed" and note.attempts >= 4 and note.error
    assert n.status()["last_failed"]["error"] == note.error


def test_retry_after_is_respected(store, server):
    clock = SimClock(T0)
    n = notes(store, server, clock, retry_backoff=timedelta(seconds=1))
    server.statuses = [429]
    store.record_alert(task(1), at=T0)
    n.queue_summary()
    asyncio.run(n.deliver_due())
    assert store.notifications()[0].next_at == T0 + timedelta(seconds=7)


def test_post_json_reports_errors_instead_of_raising(server):
    assert post_json(server.url, b"{}") == (None, None)
    server.statuses = [503]
    error, _ = post_json(server.url, b"{}")
    assert error.startswith("HTTP 503")
    error, _ = post_json("http://127.0.0.1:9/x", b"{}", timeout=2)
    assert error and "refused" in error.lower()
    assert post_json("not a url", b"{}")[0]


# --- the generic webhook, the test message, the status ---------------------------------------


def test_generic_webhook_posts_kind_text_and_alerts(store, server):
    a1 = store.record_alert(task(1, result="error", msg="boom"), workflow="f1.toml", phase="task1",
                            at=T0)
    n = notes(store, server, channels=[WebhookChannel(server.url)])

    async def main():
        n.queue_summary()
        await n.deliver_due()

    asyncio.run(main())
    (body,) = server.bodies
    assert body["kind"] == "summary" and body["count"] == 1
    assert body["text"].startswith("see report at http://dash:8080/web/alert?date=2024-01-15\n")
    assert body["alerts"] == [{
        "id": a1, "task_id": "id-1", "type": "task1", "job": "t2", "workflow": "f1.toml",
        "phase": "task1", "result": "error", "msg": "boom", "task_time": "2024-01-15T00:00:00Z",
        "created": "2024-01-15T00:00:00Z"}]


def test_both_channels_each_get_every_message(store, server):
    n = notes(store, server, channels=[SlackChannel(server.url, prefix="p"), WebhookChannel(server.url)])
    store.record_alert(task(1), at=T0)
    store.record_alert(task(2, result="alert"), at=T0)

    async def main():
        n.flush_immediate()
        n.queue_summary()
        await n.deliver_due()

    asyncio.run(main())
    kinds = sorted(("attachments" in b, b.get("kind")) for b in server.bodies)
    assert kinds == [(False, "alert"), (False, "summary"), (True, None), (True, None)]


def test_send_test_and_status(store, server):
    async def main():
        ops = Operations(store, OpsConfig(slack_url=server.url, webhook_url=server.url + "/w",
                                          spacing=0), SimClock(T0))
        server.statuses = [200, 500]
        assert await ops.send_test() == {"channels": {"slack": "sent",
                                                      "webhook": "HTTP 500: server trouble"}}
        assert server.bodies[0]["attachments"][0]["color"] == "#00FF00"
        assert [n.status for n in store.notifications()] == ["failed", "sent"]  # not retried
        status = ops.status()
        assert status["notifications"]["frequency"] == "5m"
        assert status["notifications"]["channels"] == ["slack", "webhook"]
        assert status["backup"]["path"] is None
        nothing = Operations(store, OpsConfig(), SimClock(T0))
        assert (await nothing.send_test())["channels"] == {}

    asyncio.run(main())


def test_without_channels_alerts_stay_unsent(store, server):
    n = Notifications(store, [], SimClock(T0))
    store.record_alert(task(1), at=T0)
    assert n.summary_tick() == 0 and n.flush_immediate() == 0
    assert len(store.unsent_alerts()) == 1 and store.notifications() == []


def test_config_from_settings():
    class Slack:
        url, prefix, channel, title = "https://hooks.example/x", "prod", "#ops", ""
        min_frequency, max_frequency = timedelta(minutes=2), timedelta(minutes=32)

    class Sqlite:
        task_ttl, retention, backup_path = timedelta(hours=6), timedelta(days=30), "/b/f.db"

    class Settings_:
        slack, sqlite, host, http_port = Slack, Sqlite, "flow.example", 8080

    config = OpsConfig.from_settings(Settings_, spacing=0)
    assert (config.slack_url, config.slack_prefix, config.min_frequency, config.task_ttl,
            config.retention, config.backup_path, config.dashboard_url, config.spacing) == (
        "https://hooks.example/x", "prod", timedelta(minutes=2), timedelta(hours=6),
        timedelta(days=30), "/b/f.db", "http://flow.example:8080", 0)
    assert [c.name for c in config.channels()] == ["slack"]


# --- incomplete tasks -------------------------------------------------------------------------


def sent(store, t: Task, at: datetime, *, topic=None) -> None:
    store.record_sent(t, workflow="f1.toml", phase=t.type, topic=topic, at=at)


def test_an_incomplete_task_raises_one_alert_once(store):
    ttl = timedelta(hours=4)
    sent(store, task(1), T0)  # never done
    sent(store, task(2), T0)
    store.record_done(task(2, result="complete"), at=T0 + timedelta(hours=1))
    sent(store, task(3), T0, topic="retry-failed")  # a copy to the failed topic: no worker
    sent(store, task(4), T0)  # done with another job and created: still done
    store.record_done(task(4, job="other", created="2024-01-15T00:00:09Z", result="complete"),
                      at=T0 + timedelta(minutes=5))
    sent(store, task(5), T0)  # failed, retried: the retry is never done
    store.record_done(task(5, result="error"), at=T0 + timedelta(minutes=1))
    sent(store, task(5, created="2024-01-15T00:01:01Z", meta="retry=1"), T0 + timedelta(minutes=1))

    assert check_incomplete(store, T0 + timedelta(hours=3, minutes=59), ttl) == []
    raised = check_incomplete(store, T0 + timedelta(hours=4, seconds=1), ttl)
    assert len(raised) == 1  # task 1; the retry of task 5 is not 4h old yet
    (alert,) = store.alerts()
    assert (alert.task_id, alert.type, alert.job, alert.msg, alert.workflow) == (
        "id-1", "task1", "t2", INCOMPLETE_MSG, "f1.toml")
    assert alert.task_time == "2024-01-15T00:00:00Z"
    assert check_incomplete(store, T0 + timedelta(hours=4, minutes=2), ttl) == [raised[0] + 1]  # 5
    assert store.alerts()[0].task_id == "id-5"
    for hours_later in (5, 24, 100):  # once: never again
        assert check_incomplete(store, T0 + timedelta(hours=hours_later), ttl) == []
    sent(store, task(6), T0 + timedelta(hours=10))
    assert check_incomplete(store, T0 + timedelta(hours=14, seconds=1), ttl) != []
    assert len(store.alerts()) == 3


def test_incomplete_check_compares_instants_in_any_time_zone(store):
    sent(store, task(1), T0 + timedelta(hours=20))  # 2024-01-15T20:00Z
    paris = timezone(timedelta(hours=1))
    la = timezone(timedelta(hours=-8))
    # 2024-01-15T23:59:59-08:00 is 2024-01-16T07:59:59Z: 11h59m59s later, with a 12h TTL: not yet
    assert check_incomplete(store, datetime(2024, 1, 15, 23, 59, 59, tzinfo=la), timedelta(hours=12)) == []
    # 2024-01-16T09:00:01+01:00 is 08:00:01Z: 12h and a second later
    assert len(check_incomplete(store, datetime(2024, 1, 16, 9, 0, 1, tzinfo=paris),
                                timedelta(hours=12))) == 1


def test_task_ttl_is_at_least_an_hour():
    assert task_ttl(timedelta(minutes=10)) == timedelta(hours=1)
    assert task_ttl(None) == task_ttl(timedelta(0)) == timedelta(hours=4)
    assert task_ttl(timedelta(hours=6)) == timedelta(hours=6)


def test_incomplete_alerts_go_with_the_next_summary_and_survive_a_restart(tmp_path, server):
    path = tmp_path / "flowlord.db"
    with Store.open(path) as store:
        sent(store, task(1), T0)
        ops = Operations(store, OpsConfig(slack_url=server.url, spacing=0, task_ttl=timedelta(hours=1)),
                         SimClock(T0 + timedelta(hours=2)))

        async def main():
            await ops.start()
            await until(lambda: len(server.bodies) == 1)
            await ops.stop()

        asyncio.run(main())
        assert ops.status()["incomplete"]["last"]["raised"] == 1
    with Store.open(path) as store:  # restarted: the watermark is in the store
        assert check_incomplete(store, T0 + timedelta(hours=5), timedelta(hours=1)) == []
    assert pad("task1:t2", 1, "2024/01/15T00") in server.texts()[0]


# --- the dashboard: GET /notify and the About page ----------------------------------------------


def test_dashboard_notify_route_and_about_card(store, server):
    webtest = pytest.importorskip("webtest")
    from flowlord.runtime.web import WebContext, make_app

    ops = Operations(store, OpsConfig(slack_url=server.url, spacing=0), SimClock(T0))
    app = webtest.TestApp(make_app(WebContext(store=store, notify=ops.send_test,
                                              operations=ops.status)))
    answer = app.get("/notify")
    assert answer.status_int == 200 and answer.json == {"channels": {"slack": "sent"}}
    assert server.texts() == ["flowlord test message"]
    about = app.get("/web/about")
    assert "Operations" in about.text and "every 5m" in about.text
    server.statuses = [500]
    assert app.get("/notify", status=502).json["channels"]["slack"].startswith("HTTP 500")
    bare = webtest.TestApp(make_app(WebContext(store=store)))
    bare.get("/notify", status=503)
    assert "Operations" not in bare.get("/web/about").text
    exposed = webtest.TestApp(make_app(WebContext(store=store, notify=ops.send_test, host="0.0.0.0",
                                                  token="s3cret")))
    exposed.get("/notify", status=405)  # off loopback: POST with the token
    exposed.post_json("/notify", {}, headers={"Authorization": "Bearer s3cret"}, status=200)


def test_the_service_runs_the_operations(tmp_path, server):
    """runtime/service.py: started with the service, its listener on the engine, stopped
    after the engine with a last backup, before the store closes."""
    from types import SimpleNamespace

    from flowlord.runtime.service import Service

    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / "f1.toml").write_text(ALERTING, encoding="utf-8")
    plan = compile_paths([str(folder)]).plan
    backup = tmp_path / "backup" / "flowlord.db"

    async def main():
        store = Store.open(tmp_path / "flowlord.db")
        ops = Operations(store, OpsConfig(slack_url=server.url, spacing=0, backup_path=str(backup)))
        service = Service(plan, SimpleNamespace(file_topic="-"), store, MemoryBus(), operations=ops)
        running = asyncio.create_task(service.run())
        await asyncio.wait_for(service.ready.wait(), 10)
        assert ops.started
        store.record_done(task(1, result="alert", msg="now"), at=T0)
        store.record_alert(task(1, result="alert", msg="now"), at=T0)
        service._on_event(SimpleNamespace(kind="alert", result="alert", task=None))
        await until(lambda: len(server.bodies) == 1)
        service.stop()
        await asyncio.wait_for(running, 20)
        assert not ops.started and ops.last_backup is not None

    asyncio.run(main())
    assert json.loads(server.texts()[0])["msg"] == "now"
    with Store.open(backup) as restored:
        assert [a.sent_at is not None for a in restored.alerts()] == [True]
