"""Every LogsQL query of the four dashboards and of every alert rule returns data.

A real VictoriaLogs and the real collector (var/bin, built by logs/build.sh) run on a free
loopback port with a temporary directory. Log files appear in the collector's directory the way
the native stack writes them (var/log/<service>.log), the collector ships them, and then each
query read from grafana/ (not from the generator) runs through the same HTTP endpoints the Grafana
datasource uses. A query that returns nothing from representative input is a defect.

Inputs, from the most to the least real (which ones were used is printed in the test summary):
* docker-stats-logger: the real program polling a stand-in dockerd that serves the recorded
  Docker stats samples, plus one real run against a missing socket (its error line).
* producer: the real producer (``python -m wikistreams.producer``) replaying recorded
  recentchange events
  when Kafka answers on KAFKA_BOOTSTRAP_SERVERS (``make test`` starts it); otherwise
  ``temporary_contract_producer_lines`` -- lines built from docs/contracts.md, a stop-gap.
* Druid: metric lines from var/log/druid-*.log when the Druid stack has run here; metrics it did
  not log are filled in by ``temporary_druid_metric_lines`` (Druid's documented metric format).
"""

from __future__ import annotations

import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tests.standins import TEST_CONTACT
from tests.ops_support import (
    COLLECTOR,
    ROOT,
    VICTORIA_LOGS,
    FakeDockerd,
    LogStack,
    free_port,
    provisioned_queries,
    recorded_docker_stats,
)

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True, scope="module")
def _binaries_built():
    """`make test` builds them first; a missing binary is a broken setup, not a reason to skip."""
    missing = [str(p) for p in (VICTORIA_LOGS, COLLECTOR) if not p.exists()]
    if missing:
        pytest.fail(f"not built: {', '.join(missing)}; run `make tools` (logs/build.sh)")


QUERIES = provisioned_queries()
INPUT_SOURCES: dict[str, str] = {}


def _now_iso(offset_seconds: float = 0) -> str:
    moment = datetime.fromtimestamp(time.time() + offset_seconds, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ── docker-stats-logger: the real program ───────────────────────────────────────────────────────


def write_docker_stats_logger_log(log_file: Path, workdir: Path) -> None:
    env = {**os.environ, "DOCKER_STATS_ONCE": "1", "PYTHONPATH": str(ROOT)}
    sock = str(workdir / "docker.sock")
    with open(log_file, "ab") as out:
        with FakeDockerd(sock, recorded_docker_stats()):
            subprocess.run(
                [sys.executable, "-m", "wikistreams.resources"],
                env={**env, "DOCKER_SOCKET": sock},
                stdout=out,
                check=True,
                timeout=60,
            )
        subprocess.run(  # dockerd gone: the logger reports it as an error line and goes on
            [sys.executable, "-m", "wikistreams.resources"],
            env={**env, "DOCKER_SOCKET": str(workdir / "no-such.sock")},
            stdout=out,
            check=True,
            timeout=60,
        )
    INPUT_SOURCES["docker-stats-logger"] = "real program on recorded Docker stats samples"


# ── producer: the real one if Kafka is up, else a temporary stand-in ───────────────────────────


def _kafka_reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    """The run's throw-away topics; best effort (a leftover topic harms nothing)."""
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the futures end
        for future in admin.delete_topics(topics).values():
            future.result(timeout=10)
    except Exception:  # noqa: BLE001 - cleanup must not mask the test's outcome
        pass


def run_real_producer(log_file: Path, workdir: Path) -> str | None:
    """Replay recorded events through ``python -m wikistreams.producer``; its stdout is the log
    file.

    The recording gets one truncated JSON line appended so that the run also shows a dead letter
    (stage parse). Returns the reason when the producer cannot run here (no Kafka, no producer
    package); with Kafka up, a failing producer fails the test.
    """
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if not (ROOT / "src" / "producer" / "__main__.py").exists():
        return "src/producer is absent"
    if not _kafka_reachable(bootstrap):
        return f"no Kafka at {bootstrap}"
    from tests.standins import recentchange_dir
    from tests.standins.wikidata_api import WikidataStandIn

    recording = (
        recentchange_dir() / "editgroups_qs_batch_with_reverts_wikidatawiki_2018-03-07.jsonl"
    )
    replay = workdir / "replay.jsonl"
    lines = recording.read_text().splitlines()[:400]
    replay.write_text("\n".join(lines + [lines[0][: len(lines[0]) // 2]]) + "\n")
    suffix = f"{os.getpid()}-{random.randrange(1 << 30)}"
    topic, dlq_topic = f"test.observability.{suffix}", f"test.observability.dlq.{suffix}"
    wikidata = WikidataStandIn().start()
    try:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "SSE_URL": replay.as_uri(),
            "REPLAY_SPEED": "fast",
            "USER_AGENT_CONTACT": TEST_CONTACT,
            "WIKIDATA_API_URL": wikidata.url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "KAFKA_TOPIC": topic,
            "KAFKA_DLQ_TOPIC": dlq_topic,
            "CACHE_DB_PATH": str(workdir / "labels.sqlite3"),
            "STATS_INTERVAL_SECONDS": "1",
            # its /health endpoint: a free port, the stack's own producer may hold the default
            "HEALTH_BIND": "127.0.0.1",
            "HEALTH_PORT": str(free_port()),
        }
        with open(log_file, "ab") as out:
            done = subprocess.run(
                [sys.executable, "-m", "wikistreams.producer"],
                env=env,
                cwd=workdir,
                stdout=out,
                stderr=subprocess.PIPE,
                timeout=180,
            )
    finally:
        wikidata.stop()
        _delete_topics(bootstrap, [topic, dlq_topic])
    # Kafka is up, so a failing producer is a failure, not a reason to fall back.
    assert done.returncode == 0, f"producer exited {done.returncode}: {done.stderr.decode()[-800:]}"
    INPUT_SOURCES["producer"] = f"real producer replaying {recording.name} (400 events + 1 broken)"
    return None


def temporary_contract_producer_lines() -> list[dict]:
    """TEMPORARY stand-in for producer output, built from docs/contracts.md's field list only.

    Used only when the real producer cannot run (no Kafka). The producer engineer: once
    ``run_real_producer`` works in CI, delete this function and make its fallback a failure.
    """
    envelope = {"level": "info", "logger": "producer.pipeline", "service": "producer"}
    stats = {
        "msg": "stats",
        "interval_seconds": 10,
        "events_in": 120,
        "events_out": 118,
        "events_per_sec_in": 12.0,
        "events_per_sec_out": 11.8,
        "by_type_edit": 100,
        "by_type_new": 10,
        "by_type_log": 5,
        "by_type_categorize": 3,
        "by_type_other": 2,
        "dlq": 1,
        "delivery_errors": 0,
        "duplicates_dropped": 1,
        "canary_dropped": 0,
        "cache_hits": 80,
        "cache_misses": 20,
        "api_calls": 2,
        "api_errors": 0,
        "api_latency_ms_avg": 85.5,
        "api_latency_ms_max": 130.0,
        "breaker_state": "closed",
        "breaker_open": 0,
        "event_lag_seconds": 1.4,
        "checkpoint_age_seconds": 0.6,
        "total_events_in": 120,
        "total_events_out": 118,
        "total_dlq": 1,
    }
    dead_letter = {
        "msg": "dead_letter",
        "level": "warning",
        "stage": "parse",
        "error_class": "JSONDecodeError",
        "error": "Unterminated string starting at: line 1 column 2 (char 1)",
        "sse_id": '[{"topic":"file","partition":0,"offset":400}]',
    }
    lines = [{**envelope, "ts": _now_iso(-60), "msg": "startup", "version": "0.1.0"}]
    lines += [{**envelope, "ts": _now_iso(-50 + 10 * i), **stats} for i in range(4)]
    lines.append({**envelope, "ts": _now_iso(-30), **dead_letter})
    return lines


def write_producer_log(log_file: Path, workdir: Path) -> None:
    reason = run_real_producer(log_file, workdir)
    if reason is None:
        return
    with open(log_file, "a") as out:
        for line in temporary_contract_producer_lines():
            out.write(json.dumps(line) + "\n")
    INPUT_SOURCES["producer"] = f"TEMPORARY contract-derived lines ({reason})"


# ── Druid: real metric lines when the stack has run, documented format for the rest ───────────

DRUID_LOG_DIR = ROOT / "var" / "log"


def _druid_line(service: str, metric: str, value: float, **dims) -> str:
    """One logging-emitter line in the layout of druid/conf/_common/log4j2.xml."""
    event = {
        "feed": "metrics",
        "timestamp": _now_iso(),
        "service": service,
        "host": "127.0.0.1:8091",
        "version": "33.0.0",
        "metric": metric,
        "value": value,
        **dims,
    }
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S,%f")[:-3]
    return (
        f"{stamp} INFO [MonitorScheduler-0] org.apache.druid.java.util.emitter.core."
        f"LoggingEmitter - [metrics] {json.dumps(event, separators=(',', ':'))}"
    )


def temporary_druid_metric_lines() -> dict[str, list[str]]:
    """TEMPORARY: service log -> lines, in Druid's documented metric-event format, for metrics
    the Druid stack has not logged on this machine yet. Real lines replace them automatically."""
    ds = {"dataSource": "wikimedia_recentchange"}
    task = {**ds, "taskId": "index_kafka_wikimedia_recentchange_0", "taskType": "index_kafka"}
    return {
        "druid-coordinator": [
            _druid_line("druid/overlord", "ingest/kafka/lag", 1234, **ds, stream="x"),
            _druid_line("druid/overlord", "task/success/count", 1, **ds),
            _druid_line("druid/overlord", "task/failed/count", 0, **ds),
        ],
        "druid-indexer": [
            _druid_line("druid/indexer", "ingest/events/processed", 400, **task),
            _druid_line("druid/indexer", "ingest/events/unparseable", 0, **task),
            _druid_line("druid/indexer", "ingest/events/thrownAway", 2, **task),
            _druid_line("druid/indexer", "ingest/handoff/count", 1, **task),
            _druid_line("druid/indexer", "ingest/handoff/failed", 0, **task),
            _druid_line("druid/indexer", "jvm/mem/used", 123456789, memKind="heap"),
        ],
        "druid-broker": [
            _druid_line("druid/broker", "query/time", 42, **ds, type="timeseries"),
        ],
    }


def write_druid_logs(log_dir: Path) -> None:
    real_metrics: set[str] = set()
    for path in sorted(DRUID_LOG_DIR.glob("druid-*.log")):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line]
        if not lines:
            continue
        (log_dir / path.name).write_text("\n".join(lines[-3000:]) + "\n")
        for line in lines:
            if "[metrics] " in line:
                try:
                    real_metrics.add(json.loads(line.split("[metrics] ", 1)[1])["metric"])
                except (ValueError, KeyError):
                    pass
    filled = []
    for service, lines in temporary_druid_metric_lines().items():
        missing = [line for line in lines if _metric_of(line) not in real_metrics]
        filled += [_metric_of(line) for line in missing]
        if missing:
            with open(log_dir / f"{service}.log", "a") as out:
                out.write("\n".join(missing) + "\n")
    needed = {
        _metric_of(line) for lines in temporary_druid_metric_lines().values() for line in lines
    }
    INPUT_SOURCES["druid"] = (
        f"real var/log/druid-*.log lines for {sorted(needed & real_metrics) or 'no metric'}; "
        f"TEMPORARY documented-format lines for {filled or 'none'}"
    )


def _metric_of(line: str) -> str:
    return json.loads(line.split("[metrics] ", 1)[1])["metric"]


# ── the stack and the queries ───────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def loaded_stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("logstack")
    started = int(time.time()) - 3600
    stack = LogStack.start(workdir)
    try:
        write_docker_stats_logger_log(stack.log_dir / "docker-stats-logger.log", workdir)
        write_druid_logs(stack.log_dir)
        write_producer_log(stack.log_dir / "producer.log", workdir)
        counts = stack.wait_ingested({"docker-stats-logger", "producer", "druid-broker"}, started)
        print(f"\nlog lines stored per service: {counts}")
        for name, source in sorted(INPUT_SOURCES.items()):
            print(f"input {name}: {source}")
        yield stack, started
    finally:
        stack.stop()


def test_queries_were_found():
    dashboards = {q.where.split(" / ")[0] for q in QUERIES if not q.where.startswith("alert")}
    assert dashboards == {
        "ws-error-monitor",
        "ws-producer-performance",
        "ws-druid-monitor",
        "ws-resources-monitor",
    }
    assert sum(q.where.startswith("alert") for q in QUERIES) == 7


def test_labels_are_exactly_service_and_level(loaded_stack):
    stack, start = loaded_stack
    rows = stack.logs("* | stats by (_stream) count() as n", start, int(time.time()) + 60, 1000)
    for row in rows:
        labels = {pair.split("=")[0] for pair in row["_stream"].strip("{}").split(",")}
        assert labels == {"service", "level"}, row["_stream"]
    levels = {
        row["level"]
        for row in stack.logs("* | stats by (level) count() as n", start, int(time.time()) + 60)
    }
    assert levels <= {"debug", "info", "warning", "error", "unknown"}
    assert {"info", "warning", "error"} <= levels


UNPACKED_FIELDS = re.compile(r"\bunpack_json\b[^|]*?\bfields \(([^)]*)\)")


def unpacked_fields_missing(stack: LogStack, expr: str, start: int, end: int) -> list[str]:
    """Fields a query unpacks that no matching line carries (a typo or a renamed contract field).

    Needed because ``sum(x)`` of an absent field is 0, not "no data": without this check a panel
    on a misspelt field would look fine.
    """
    base = re.split(r" \| (?:stats|fields|sort|limit) ", expr, maxsplit=1)[0]
    missing = []
    for group in UNPACKED_FIELDS.findall(base):
        for name in (f.strip() for f in group.split(",")):
            rows = stack.logs(f"{base} | filter {name}:* | stats count() as n", start, end)
            if not rows or int(rows[0]["n"]) == 0:
                missing.append(name)
    return missing


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.where}" for q in QUERIES])
def test_every_provisioned_query_returns_data(loaded_stack, query):
    stack, start = loaded_stack
    end = int(time.time()) + 60
    if query.query_type == "statsRange":
        series = stack.stats_range(query.expr, start, end, query.step)
        values = [
            float(value) for s in series for _, value in s["values"] if value not in ("NaN", "")
        ]
        assert series and values, f"{query.where}: no data for {query.expr}"
    else:
        assert stack.logs(query.expr, start, end), f"{query.where}: no lines for {query.expr}"
    missing = unpacked_fields_missing(stack, query.expr, start, end)
    assert not missing, f"{query.where}: no input line has {missing}: {query.expr}"
