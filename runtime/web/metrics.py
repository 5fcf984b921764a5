"""`GET /metrics`: Prometheus text, with the official client and a registry per app.

Counters come from the engine's events (tasks sent, done messages, alerts, rejected input) since
this app started; gauges are read at each scrape (retries pending, bus lag when the bus tells,
the latest reload's errors and warnings, uptime, workflows and phases)."""

from __future__ import annotations

from collections.abc import Iterator

import bottle
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ..engine import EngineEvent
from .context import WebContext


class _Scrape(Collector):
    def __init__(self, ctx: WebContext) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        ctx = self.ctx
        yield GaugeMetricFamily("flowlord_retries_pending", "Retries and resends waiting in the store",
                                value=ctx.store.count_rows("pending_retries"))
        problems = ctx.diagnostics()
        reload = GaugeMetricFamily("flowlord_reload_problems",
                                   "Problems of the workflow files (the latest reload)",
                                   labels=["severity"])
        for severity in ("error", "warning"):
            reload.add_metric([severity], sum(p.get("severity") == severity for p in problems))
        yield reload
        uptime = (ctx.current_time() - ctx.started_at).total_seconds()
        yield GaugeMetricFamily("flowlord_uptime_seconds", "Seconds since flowlord started",
                                value=max(0.0, uptime))
        plan = ctx.current_plan()
        yield GaugeMetricFamily("flowlord_workflows", "Workflow files in the running plan",
                                value=len(plan.workflows) if plan else 0)
        yield GaugeMetricFamily("flowlord_phases", "Phases in the running plan",
                                value=sum(len(w.phases) for w in plan.workflows) if plan else 0)
        try:
            bus = ctx.bus_status()
        except Exception:
            bus = {}
        lag = bus.get("lag") if isinstance(bus, dict) else None
        if isinstance(lag, dict):
            family = GaugeMetricFamily("flowlord_bus_lag_messages",
                                       "Messages waiting on the bus, by topic", labels=["topic"])
            for topic, value in sorted(lag.items()):
                family.add_metric([str(topic)], float(value))
            yield family
        elif isinstance(lag, (int, float)):
            yield GaugeMetricFamily("flowlord_bus_lag_messages", "Messages waiting on the bus",
                                    value=float(lag))


class Metrics:
    def __init__(self, ctx: WebContext) -> None:
        self.registry = CollectorRegistry()
        self.sent = Counter("flowlord_tasks_sent", "Tasks sent, by topic", ["topic"],
                            registry=self.registry)
        self.done = Counter("flowlord_tasks_done", "Done messages recorded, by topic and result",
                            ["topic", "result"], registry=self.registry)
        self.alerts = Counter("flowlord_alerts", "Alerts raised", ["workflow"],
                              registry=self.registry)
        self.rejected = Counter("flowlord_rejected", "Messages rejected, by topic and reason",
                                ["topic", "reason"], registry=self.registry)
        self.registry.register(_Scrape(ctx))

    def observe(self, event: EngineEvent) -> None:
        if event.kind == "sent":
            self.sent.labels(event.topic).inc()
        elif event.kind == "done":
            self.done.labels(event.topic, event.result or "none").inc()
        elif event.kind == "alert":
            self.alerts.labels(event.workflow).inc()
        elif event.kind == "rejected":
            self.rejected.labels(event.topic, event.reason).inc()

    def text(self) -> bytes:
        bottle.response.content_type = CONTENT_TYPE_LATEST
        return generate_latest(self.registry)
