"""The four Grafana dashboards and the alert rules, defined once as data and written as files.

Why generated: every panel and every alert is a LogsQL query over the same few log shapes (the
producer's ``stats``/``dead_letter`` lines, Druid's logged metric events, docker-stats-logger's
``container_stats`` lines). Building them from the helpers below keeps the parsing of each shape
in one place, gives every panel a stable id and layout, and lets the tests prove each query
against a real VictoriaLogs. The JSON/YAML under grafana/ is the output; edit this module and run
``python -m wikistreams.grafana.provisioning`` from the checkout's root, or ``wikistreams-grafana
--out DIR`` to write DIR/grafana/... (a unit test fails when the checkout's files are stale).

Log shapes and field names: docs/contracts.md (producer) and docs/observability.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Below the output folder (--out, by default the working directory: a checkout's root). Never
# found from this file's location, which an installed package has inside its virtualenv.
DASHBOARD_DIR = Path("grafana/dashboards")
ALERTING_DIR = Path("grafana/provisioning/alerting")

DATASOURCE = {"type": "victoriametrics-logs-datasource", "uid": "victorialogs"}
FOLDER_TITLE = "WikiStreams"
FOLDER_UID = "wikistreams"

# Query types of the VictoriaLogs datasource: a time series of `| stats` results per step
# (/select/logsql/stats_query_range) or raw log lines (/select/logsql/query).
STATS_RANGE = "statsRange"
LOGS = "instant"


# ── LogsQL building blocks: one per log shape ───────────────────────────────────────────────────


def producer_event(msg: str, fields: tuple[str, ...], pipe: str, service: str = "producer") -> str:
    """Lines of the producer (or `service`) with ``"msg": <msg>``, parsed at query time (raw
    lines are stored)."""
    unpacked = ", ".join(("msg",) + fields)
    return f'{{service="{service}"}} | unpack_json fields ({unpacked}) | filter msg:={msg} | {pipe}'


def trends_stats(*fields: str, pipe: str) -> str:
    """The trends processor's ``stats`` line (src/wikistreams/trends/stats.py)."""
    return producer_event("stats", fields, pipe, service="trends")


def producer_stats(*fields: str, pipe: str) -> str:
    """The periodic ``stats`` line (docs/contracts.md): per-interval counters and gauges."""
    return producer_event("stats", fields, pipe)


def druid_metric(*metrics: str, pipe: str, dims: tuple[str, ...] = ()) -> str:
    """Druid metric events from the logging emitter: ``... LoggingEmitter - [metrics] {json}``.

    Only the named JSON keys are unpacked, so Druid's own ``service`` key (``druid/broker``) never
    shadows the ``service`` label (``druid-broker``).
    """
    names = ", ".join(f'"{m}"' for m in metrics)
    keys = ", ".join(("metric", "value") + dims)
    return (
        '{service=~"druid-.*"} "[metrics]" | extract "[metrics] <metric_event>" '
        f"| unpack_json from metric_event fields ({keys}) | filter metric:in({names}) | {pipe}"
    )


def container_stats(*fields: str, pipe: str) -> str:
    """``container_stats`` lines (src/wikistreams/resources): docker-stats-logger in compose,
    stats-logger (the native launcher's process trees) natively; same fields, one query."""
    unpacked = ", ".join(("msg", "container") + fields)
    return (
        f'{{service=~"docker-stats-logger|stats-logger"}} | unpack_json fields ({unpacked}) '
        f"| filter msg:=container_stats | {pipe}"
    )


ERRORS_AND_WARNINGS = '{level=~"error|warning"}'


# ── Dashboards ──────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Panel:
    """One panel: a title, one query and how to show it."""

    title: str
    expr: str
    description: str
    kind: str = "timeseries"  # timeseries | logs | stat
    unit: str = "short"
    legend: str = ""
    width: int = 12
    height: int = 8
    step: str = "1m"  # per-step counts are "per minute" on every panel that counts lines

    @property
    def query_type(self) -> str:
        return LOGS if self.kind == "logs" else STATS_RANGE


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("wikistreams",))


def _target(panel: Panel) -> dict[str, Any]:
    target: dict[str, Any] = {
        "refId": "A",
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": panel.expr,
        "queryType": panel.query_type,
    }
    if panel.query_type == STATS_RANGE:
        target["step"] = panel.step
        if panel.legend:
            target["legendFormat"] = panel.legend
    else:
        target["maxLines"] = 200
    return target


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "targets": [_target(panel)],
    }
    if panel.kind == "logs":
        body["options"] = {
            "showTime": True,
            "wrapLogMessage": True,
            "sortOrder": "Descending",
            "enableLogDetails": True,
            "dedupStrategy": "none",
        }
    else:
        body["fieldConfig"] = {"defaults": {"unit": panel.unit}, "overrides": []}
        if panel.kind == "timeseries":
            body["options"] = {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }
        else:
            body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "values": False}}
    return body


def dashboard_json(dashboard: Dashboard) -> dict[str, Any]:
    """Grafana dashboard model; panels flow left to right, 24 grid units per row."""
    panels, x, y, row_height = [], 0, 0, 0
    for number, panel in enumerate(dashboard.panels, start=1):
        if x + panel.width > 24:
            x, y, row_height = 0, y + row_height, 0
        panels.append(_panel_json(panel, number, x, y))
        x += panel.width
        row_height = max(row_height, panel.height)
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


ERROR_MONITOR = Dashboard(
    uid="ws-error-monitor",
    title="Error Monitor",
    description="Errors and warnings of every service, and the producer's dead letters.",
    panels=(
        Panel(
            "Errors and warnings per minute by service",
            f"{ERRORS_AND_WARNINGS} | stats by (service, level) count() as lines",
            "Log lines at level error or warning, per service (labels from the collector).",
            legend="{{service}} {{level}}",
        ),
        Panel(
            "Dead letters per minute by stage",
            producer_event("dead_letter", ("stage",), "stats by (stage) count() as dead_letters"),
            "Events sent to the DLQ topic, by the pipeline stage that rejected them.",
            legend="{{stage}}",
        ),
        Panel(
            "Errors per minute (all services)",
            '{level="error"} | stats count() as errors',
            "The series the 'Error spike' alert evaluates.",
            kind="stat",
            width=6,
            height=6,
        ),
        Panel(
            "Dead letters by error class",
            producer_event(
                "dead_letter", ("error_class",), "stats by (error_class) count() as dead_letters"
            ),
            "Which exception classes send events to the DLQ.",
            legend="{{error_class}}",
            width=18,
            height=6,
        ),
        Panel(
            "Latest errors and warnings",
            ERRORS_AND_WARNINGS,
            "Newest first; open a line and use 'Show context' for the lines around it.",
            kind="logs",
            width=24,
            height=12,
        ),
        Panel(
            "Latest dead letters",
            producer_event("dead_letter", (), "fields _time, service, level, _msg"),
            "The dead_letter lines themselves: stage, error_class, error and sse_id.",
            kind="logs",
            width=24,
            height=10,
        ),
    ),
)

PRODUCER_PERFORMANCE = Dashboard(
    uid="ws-producer-performance",
    title="Producer Performance",
    description="Throughput, enrichment and delivery health from the producer's 'stats' lines.",
    panels=(
        Panel(
            "Events per second in / out",
            producer_stats(
                "events_per_sec_in",
                "events_per_sec_out",
                pipe="stats avg(events_per_sec_in) as in, avg(events_per_sec_out) as out",
            ),
            "Read from EventStreams vs. delivered to Kafka (average of the stats lines).",
            unit="ops",
        ),
        Panel(
            "Events per minute by type",
            producer_stats(
                "by_type_edit",
                "by_type_new",
                "by_type_log",
                "by_type_categorize",
                "by_type_other",
                pipe="stats sum(by_type_edit) as edit, sum(by_type_new) as new, "
                "sum(by_type_log) as log, sum(by_type_categorize) as categorize, "
                "sum(by_type_other) as other",
            ),
            "recentchange event types counted by the producer.",
        ),
        Panel(
            "Enrichment cache hit rate",
            producer_stats(
                "cache_hits",
                "cache_misses",
                pipe="stats sum(cache_hits) as hits, sum(cache_misses) as misses "
                "| math hits / max(hits + misses, 1) * 100 as hit_rate "
                "| fields hit_rate",
            ),
            "Wikidata label lookups answered from the cache, in percent of all lookups.",
            unit="percent",
        ),
        Panel(
            "Wikidata API calls and errors per minute",
            producer_stats(
                "api_calls",
                "api_errors",
                pipe="stats sum(api_calls) as calls, sum(api_errors) as errors",
            ),
            "wbgetentities calls (batched) and the failed ones.",
        ),
        Panel(
            "Wikidata API latency",
            producer_stats(
                "api_latency_ms_avg",
                "api_latency_ms_max",
                pipe="stats avg(api_latency_ms_avg) as avg, max(api_latency_ms_max) as max",
            ),
            "Per stats interval: average and worst call latency.",
            unit="ms",
        ),
        Panel(
            "Entity edits published without labels",
            producer_stats(
                "enrich_timed_out",
                "enrich_unavailable",
                "enrich_parked",
                pipe="stats sum(enrich_timed_out) as timed_out, "
                "sum(enrich_unavailable) as unavailable, max(enrich_parked) as parked",
            ),
            "Entity edits that waited ENRICH_MAX_DELAY_SECONDS (timed_out) or were published "
            "unavailable; parked: edits waiting for labels now. Other events never wait.",
        ),
        Panel(
            "Producer degraded: Kafka away, position not committed",
            producer_stats(
                "kafka_unreachable",
                "checkpoint_failures",
                pipe="stats max(kafka_unreachable) as kafka_unreachable, "
                "max(checkpoint_failures) as checkpoint_failures",
            ),
            "kafka_unreachable is 1 while records wait for Kafka; checkpoint_failures counts "
            "commit attempts (events + position, one transaction) Kafka refused or left "
            "unanswered since the last commit. The producer keeps running in both cases.",
        ),
        Panel(
            "Wikidata circuit breaker open",
            producer_stats("breaker_open", pipe="stats max(breaker_open) as breaker_open"),
            "1 while the breaker is open (enrichment skipped, events marked unavailable).",
        ),
        Panel(
            "Event-time lag",
            producer_stats(
                "event_lag_seconds", pipe="stats max(event_lag_seconds) as event_lag_seconds"
            ),
            "Now minus the newest event's meta.dt (large when replaying recordings).",
            unit="s",
        ),
        Panel(
            "Checkpoint age",
            producer_stats(
                "checkpoint_age_seconds",
                pipe="stats max(checkpoint_age_seconds) as checkpoint_age_seconds",
            ),
            "Seconds since the last commit of events and SSE position (one Kafka transaction).",
            unit="s",
        ),
        Panel(
            "Delivery errors and dead letters per minute",
            producer_stats(
                "delivery_errors",
                "dlq",
                pipe="stats sum(delivery_errors) as delivery_errors, sum(dlq) as dlq",
            ),
            "Kafka delivery failures and events routed to the DLQ.",
        ),
        Panel(
            "Duplicates and canaries dropped per minute",
            producer_stats(
                "duplicates_dropped",
                "canary_dropped",
                pipe="stats sum(duplicates_dropped) as duplicates, sum(canary_dropped) as canary",
            ),
            "Replayed meta.id values and Wikimedia canary events, dropped on purpose.",
        ),
        Panel(
            "Trends: edits, candidates, trends out per minute",
            trends_stats(
                "edits",
                "candidates",
                "trends_out",
                "resolutions",
                pipe="stats sum(edits) as edits, sum(candidates) as candidates, "
                "sum(trends_out) as trends_out, sum(resolutions) as wikidata_lookups",
            ),
            "The trends processor: human article edits counted, candidate-page signals, trend "
            "records written, and candidate pages resolved to their Wikidata item.",
        ),
        Panel(
            "Trends: input lag",
            trends_stats("lag", pipe="stats max(lag) as lag"),
            "Committed records of the enriched topic the trends processor has not read yet.",
        ),
    ),
)

DRUID_MONITOR = Dashboard(
    uid="ws-druid-monitor",
    title="Druid Monitor",
    description="Druid's own metrics, as logged by its logging emitter (druid.emitter=logging).",
    panels=(
        Panel(
            "Kafka ingestion lag",
            druid_metric(
                "ingest/kafka/lag",
                dims=("dataSource",),
                pipe="stats by (dataSource) max(value) as lag",
            ),
            "Messages the supervisor is behind the topic's end (all partitions).",
            legend="{{dataSource}}",
        ),
        Panel(
            "Events processed / unparseable / thrown away per minute",
            druid_metric(
                "ingest/events/processed",
                "ingest/events/unparseable",
                "ingest/events/thrownAway",
                pipe="stats by (metric) sum(value) as events",
            ),
            "Rows the ingestion tasks indexed, could not parse, or dropped (filters, late data).",
            legend="{{metric}}",
        ),
        Panel(
            "Query latency",
            druid_metric(
                "query/time",
                pipe="stats by (service) avg(value) as avg, max(value) as max",
            ),
            "Milliseconds per query, per Druid service (broker: whole query).",
            unit="ms",
        ),
        Panel(
            "Segment handoff per minute",
            druid_metric(
                "ingest/handoff/count",
                "ingest/handoff/failed",
                pipe="stats by (metric) sum(value) as segments",
            ),
            "Segments handed off from the ingestion tasks to historicals, and failed handoffs.",
            legend="{{metric}}",
        ),
        Panel(
            "Task successes and failures",
            druid_metric(
                "task/success/count",
                "task/failed/count",
                pipe="stats by (metric) sum(value) as tasks",
            ),
            "Ingestion tasks that finished per emission period (overlord TaskCountStatsMonitor).",
            legend="{{metric}}",
        ),
        Panel(
            "JVM heap used",
            druid_metric(
                "jvm/mem/used",
                dims=("memKind",),
                pipe="filter memKind:=heap | stats by (service) max(value) as heap",
            ),
            "Heap in use per Druid service (JvmMonitor).",
            unit="bytes",
        ),
    ),
)

RESOURCES_MONITOR = Dashboard(
    uid="ws-resources-monitor",
    title="Resources Monitor",
    description="CPU and memory per container (compose: docker-stats-logger) or per native "
    "service (stats-logger: the launcher's process trees).",
    panels=(
        Panel(
            "CPU per container",
            container_stats("cpu_percent", pipe="stats by (container) avg(cpu_percent) as cpu"),
            "Percent of one CPU, as `docker stats` shows it (200 = two busy cores).",
            unit="percent",
            legend="{{container}}",
        ),
        Panel(
            "Memory used per container",
            container_stats(
                "mem_usage_bytes", pipe="stats by (container) max(mem_usage_bytes) as mem"
            ),
            "Usage without the inactive page cache (docker CLI definition).",
            unit="bytes",
            legend="{{container}}",
        ),
        Panel(
            "Memory in percent of the limit",
            container_stats("mem_percent", pipe="stats by (container) max(mem_percent) as mem_pct"),
            "The series the 'Container memory near limit' alert evaluates.",
            unit="percent",
            legend="{{container}}",
        ),
        Panel(
            "Memory limit per container",
            container_stats(
                "mem_limit_bytes", pipe="stats by (container) max(mem_limit_bytes) as limit"
            ),
            "The cgroup limit (the host's memory when a container has none).",
            unit="bytes",
            legend="{{container}}",
        ),
        Panel(
            "Network received / sent (cumulative)",
            container_stats(
                "net_rx_bytes",
                "net_tx_bytes",
                pipe="stats by (container) max(net_rx_bytes) as rx, max(net_tx_bytes) as tx",
            ),
            "Bytes since the container started, summed over its interfaces. Native services "
            "share the host network: 0 there (net_scope host, docs/observability.md).",
            unit="bytes",
        ),
        Panel(
            "Block I/O read / written (cumulative)",
            container_stats(
                "block_read_bytes",
                "block_write_bytes",
                pipe="stats by (container) max(block_read_bytes) as read, "
                "max(block_write_bytes) as written",
            ),
            "Bytes since the container started.",
            unit="bytes",
        ),
    ),
)

DASHBOARDS = (ERROR_MONITOR, PRODUCER_PERFORMANCE, DRUID_MONITOR, RESOURCES_MONITOR)


# ── Alert rules (Grafana unified alerting file provisioning, apiVersion 1) ───────────────────


@dataclass(frozen=True)
class Alert:
    """Fire when ``reducer`` over ``window_seconds`` of ``expr`` crosses ``threshold``."""

    uid: str
    title: str
    expr: str
    reducer: str  # max | sum | last ...
    comparison: str  # gt | lt
    threshold: float
    window_seconds: int
    pending: str
    summary: str
    dashboard_uid: str
    severity: str = "warning"
    no_data: str = "OK"  # what an empty query means: OK, or Alerting (silence is the problem)


ALERTS = (
    Alert(
        uid="ws-error-spike",
        title="Error spike",
        expr='{level="error"} | stats count() as errors',
        reducer="max",
        comparison="gt",
        threshold=20,
        window_seconds=600,
        pending="2m",
        summary="More than 20 error lines in one minute across the services.",
        dashboard_uid=ERROR_MONITOR.uid,
    ),
    Alert(
        uid="ws-producer-stalled",
        title="Producer stalled",
        expr=producer_stats("events_out", pipe="stats sum(events_out) as events_out"),
        reducer="sum",
        comparison="lt",
        threshold=1,
        window_seconds=300,
        pending="0s",
        summary="No event delivered to Kafka in 5 minutes (stats.events_out), or no stats lines.",
        dashboard_uid=PRODUCER_PERFORMANCE.uid,
        severity="critical",
        no_data="Alerting",
    ),
    Alert(
        uid="ws-ingestion-lag-high",
        title="Druid ingestion lag high",
        expr=druid_metric("ingest/kafka/lag", pipe="stats max(value) as lag"),
        reducer="max",
        comparison="gt",
        threshold=10000,
        window_seconds=600,
        pending="5m",
        summary="Druid's Kafka supervisor is more than 10k messages behind.",
        dashboard_uid=DRUID_MONITOR.uid,
    ),
    Alert(
        uid="ws-dlq-rate-high",
        title="Dead-letter rate high",
        expr=producer_event("dead_letter", (), "stats count() as dead_letters"),
        reducer="max",
        comparison="gt",
        threshold=50,
        window_seconds=600,
        pending="2m",
        summary="More than 50 events per minute go to the dead-letter topic.",
        dashboard_uid=ERROR_MONITOR.uid,
    ),
    Alert(
        uid="ws-producer-kafka-unreachable",
        title="Producer cannot reach Kafka",
        expr=producer_stats(
            "kafka_unreachable", pipe="stats max(kafka_unreachable) as kafka_unreachable"
        ),
        reducer="max",
        comparison="gt",
        threshold=0,
        window_seconds=300,
        pending="2m",
        summary="Records wait in the producer for Kafka; the stream read stops when its queue "
        "is full (nothing is lost, but nothing reaches Druid).",
        dashboard_uid=PRODUCER_PERFORMANCE.uid,
        severity="critical",
    ),
    Alert(
        uid="ws-producer-checkpoint-failing",
        title="Producer cannot save its checkpoint",
        expr=producer_stats(
            "checkpoint_failures", pipe="stats max(checkpoint_failures) as checkpoint_failures"
        ),
        reducer="max",
        comparison="gt",
        threshold=2,
        window_seconds=300,
        pending="2m",
        summary="Committing the Kafka transaction with the resume position keeps failing "
        "(broker away or refusing it): nothing new reaches Druid; past 60 s Kafka aborts the "
        "transaction and the producer rewinds to the last committed position.",
        dashboard_uid=PRODUCER_PERFORMANCE.uid,
    ),
    Alert(
        uid="ws-trends-behind",
        title="Trends processor behind",
        expr=trends_stats("lag", pipe="stats max(lag) as lag"),
        reducer="min",
        comparison="gt",
        threshold=10000,
        window_seconds=600,
        pending="5m",
        summary="The trends processor has been more than 10k enriched records behind for 10 "
        "minutes: 'Trending now' is late (a 10x-live burst clears in about a minute).",
        dashboard_uid=PRODUCER_PERFORMANCE.uid,
    ),
    Alert(
        uid="ws-container-memory-high",
        title="Container memory near limit",
        expr=container_stats(
            "mem_percent", pipe="stats by (container) max(mem_percent) as mem_pct"
        ),
        reducer="max",
        comparison="gt",
        threshold=90,
        window_seconds=600,
        pending="5m",
        summary="A container uses more than 90% of its memory limit.",
        dashboard_uid=RESOURCES_MONITOR.uid,
    ),
)


def _alert_rule(alert: Alert) -> dict[str, Any]:
    query = {
        "refId": "A",
        "datasource": dict(DATASOURCE),  # a copy: shared objects would become YAML anchors
        "editorMode": "code",
        "expr": alert.expr,
        "queryType": STATS_RANGE,
        "step": "1m",
        "intervalMs": 60000,
        "maxDataPoints": 43200,
    }
    return {
        "uid": alert.uid,
        "title": alert.title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": alert.window_seconds, "to": 0},
                "datasourceUid": DATASOURCE["uid"],
                "model": query,
            },
            {
                "refId": "B",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "B",
                    "type": "reduce",
                    "expression": "A",
                    "reducer": alert.reducer,
                    "settings": {"mode": "dropNN"},
                },
            },
            {
                "refId": "C",
                "datasourceUid": "__expr__",
                "model": {
                    "refId": "C",
                    "type": "threshold",
                    "expression": "B",
                    "conditions": [
                        {"evaluator": {"type": alert.comparison, "params": [alert.threshold]}}
                    ],
                },
            },
        ],
        "noDataState": alert.no_data,
        "execErrState": "Error",
        "for": alert.pending,
        "labels": {"severity": alert.severity, "project": "wikistreams"},
        "annotations": {"summary": alert.summary, "__dashboardUid__": alert.dashboard_uid},
        "isPaused": False,
    }


def alert_rules() -> dict[str, Any]:
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": "wikistreams",
                "folder": FOLDER_TITLE,
                "interval": "1m",
                "rules": [_alert_rule(a) for a in ALERTS],
            }
        ],
    }


def rendered_files(out: Path = Path(".")) -> dict[Path, str]:
    """Every generated file below `out` and its exact content."""
    files = {
        out / DASHBOARD_DIR / f"{d.uid}.json": json.dumps(dashboard_json(d), indent=2) + "\n"
        for d in DASHBOARDS
    }
    header = (
        "# Generated by `python -m wikistreams.grafana.provisioning`; edit that module, not this"
        " file.\n"
    )
    files[out / ALERTING_DIR / "rules.yaml"] = header + yaml.safe_dump(
        alert_rules(), sort_keys=False, width=100
    )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="wikistreams-grafana",
        description="Write the Grafana dashboards (grafana/dashboards/*.json) and alert rules "
        "(grafana/provisioning/alerting/rules.yaml) below a folder.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="the folder that holds grafana/ (default: the working directory, a checkout's root)",
    )
    args = parser.parse_args(argv)
    for path, text in rendered_files(args.out).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
