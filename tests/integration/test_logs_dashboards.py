"""Every LogsQL query of the four dashboards and of every alert rule returns data.

A real VictoriaLogs and the real collector (var/bin, built by logs/build.sh) run on a free
loopback port with a temporary directory. Log files appear in the collector's directory the way
the native stack writes them (var/log/<service>.log), the collector ships them, and then each
query read from grafana/ (not from the generator) runs through the same HTTP endpoints the Grafana
datasource uses. A query that returns nothing from representative input is a defect.

Every input comes from a real component (what was used is printed in the test summary):
* docker-stats-logger: the real program polling a stand-in dockerd that serves the recorded
  Docker stats samples, plus one real run against a missing socket (its error line).
* stats-logger: the real native sampler (``wikistreams-stats-logger --native``) sampling real
  process trees this test starts and registers the way the native launcher does. Each Resources
  query is run once per mode, so both compose and native lines are proven.
* producer: the real producer (``python -m wikistreams.producer``) replaying recorded
  recentchange events into the Kafka at KAFKA_BOOTSTRAP_SERVERS (``make test`` starts it); no
  Kafka is a failure, not a reason to make lines up.
* trends: the real trends processor (``python -m wikistreams.trends``) over the recorded enwiki
  sample and a derived burst, on the same Kafka.
* Druid: the real Druid services' logs (<var>/log/druid-*.log; var is WIKISTREAMS_VAR_DIR or
  <repo>/var): their tail, plus the latest lines of every metric a Druid query reads. A metric
  the Druid stack never logged is a failure that names the metric.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.standins import TEST_CONTACT
from tests.ops_support import (
    COLLECTOR,
    ROOT,
    VICTORIA_LOGS,
    FakeDockerd,
    LogStack,
    NativeServices,
    free_port,
    provisioned_queries,
    recorded_docker_stats,
    start_representative_services,
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


# ── stats-logger: the real native sampler on real process trees ─────────────────────────────────


def write_native_stats_logger_log(log_file: Path, services: NativeServices, workdir: Path) -> None:
    """Two polls of ``wikistreams-stats-logger --native`` over the test's own services (so the
    test does not depend on which services the shared stack runs)."""
    ready = start_representative_services(services, workdir)
    services.wait_ready(*ready.values())
    with open(log_file, "ab") as out:
        for _ in range(2):
            subprocess.run(
                [sys.executable, "-m", "wikistreams.resources", "--native", "--once"],
                env={**os.environ, "WIKISTREAMS_VAR_DIR": str(services.var_dir)},
                stdout=out,
                check=True,
                timeout=60,
            )
    INPUT_SOURCES["stats-logger"] = (
        f"real native sampler on {len(services.processes)} real process trees "
        f"({', '.join(sorted(services.processes))})"
    )


# ── producer: the real one against the running Kafka ────────────────────────────────────────────


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


def write_producer_log(log_file: Path, workdir: Path) -> None:
    """Replay recorded events through ``python -m wikistreams.producer``; its stdout is the log
    file.

    The recording gets one truncated JSON line appended so that the run also shows a dead letter
    (stage parse). Without Kafka the producer cannot run, and that fails the test: its lines are
    what four panels and three alerts read.
    """
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if not _kafka_reachable(bootstrap):
        pytest.fail(f"no Kafka at {bootstrap} (KAFKA_BOOTSTRAP_SERVERS): the producer needs one")
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
    assert done.returncode == 0, f"producer exited {done.returncode}: {done.stderr.decode()[-800:]}"
    INPUT_SOURCES["producer"] = f"real producer replaying {recording.name} (400 events + 1 broken)"


def write_trends_log(log_file: Path, workdir: Path) -> None:
    """Run the real trends processor (``python -m wikistreams.trends``) over the recorded enwiki
    sample plus a DERIVED burst on Q42's real pages (tests/trends_support) until it has committed
    all of it; its stdout is the log file, with a stats line a second."""
    from tests.conftest import wait_until
    from tests.integration.trends_run import Run
    from tests.standins.wikidata_api import WikidataStandIn
    from tests.trends_support import burst, by_time, produce, recorded_enriched
    from wikistreams.trends.edits import parse_time

    background = recorded_enriched()
    start = parse_time(max(r["event_time"] for r in background)) + 10
    pages = [("enwiki", "Douglas Adams"), ("dewiki", "Douglas Adams")]
    story = burst(background[0], pages, ["Aquila", "Birch", "Cedar", "Dune"], start, edits=10)
    wikidata = WikidataStandIn().start()
    (workdir / "trends").mkdir()
    run = Run(workdir / "trends", wikidata.url)
    try:
        produce(run.env["KAFKA_BOOTSTRAP_SERVERS"], run.input, by_time(background + story))
        run.start()
        wait_until(run.caught_up, seconds=180, interval=1)
        time.sleep(2)  # one more stats line after the last commit
    finally:
        run.close()
        wikidata.stop()
    log_file.write_bytes((workdir / "trends" / "trends.log").read_bytes())
    INPUT_SOURCES["trends"] = (
        f"real trends processor over the recorded enwiki sample + {len(story)} derived edits"
    )


# ── Druid: the real services' logs ──────────────────────────────────────────────────────────────

VAR_DIR = Path(os.environ.get("WIKISTREAMS_VAR_DIR") or ROOT / "var")
DRUID_LOG_DIR = VAR_DIR / "log"
TAIL_LINES = 3000
# Lines kept per metric beyond the tail: enough for every dimension variant a query filters on
# (jvm/mem/used is logged as heap and nonheap, one line per pool kind and service).
LINES_PER_METRIC = 20
METRIC_FILTER = re.compile(r"\bmetric:in\(([^)]*)\)")


def druid_metrics_queried() -> set[str]:
    """Every metric name a Druid panel or alert filters on (from the provisioned files)."""
    return {
        name.strip().strip('"')
        for query in QUERIES
        for group in METRIC_FILTER.findall(query.expr)
        for name in group.split(",")
    }


def _last_lines(data: bytes, needle: bytes, count: int) -> list[bytes]:
    """The last ``count`` lines of ``data`` containing ``needle`` (searched from the end: the
    logs are large and only their end matters)."""
    lines: list[bytes] = []
    end = len(data)
    while len(lines) < count:
        hit = data.rfind(needle, 0, end)
        if hit < 0:
            break
        start = data.rfind(b"\n", 0, hit) + 1
        stop = data.find(b"\n", hit)
        lines.append(data[start : stop if stop >= 0 else len(data)])
        end = start
    return lines[::-1]


def write_druid_logs(log_dir: Path) -> None:
    """Each druid-*.log's tail plus the latest lines of every queried metric, unchanged."""
    needed = druid_metrics_queried()
    found: set[str] = set()
    paths = sorted(DRUID_LOG_DIR.glob("druid-*.log"))
    for path in paths:
        data = path.read_bytes()
        tail = _last_lines(data, b"\n", TAIL_LINES + 1)
        picked = []
        for metric in sorted(needed):
            lines = _last_lines(data, f'"metric":"{metric}"'.encode(), LINES_PER_METRIC)
            if lines:
                found.add(metric)
                picked += lines
        lines = [line for line in picked + tail if line.strip()]
        if lines:
            (log_dir / path.name).write_bytes(b"\n".join(lines) + b"\n")
    missing = sorted(needed - found)
    assert not missing, (
        f"the Druid services never logged {missing} in {DRUID_LOG_DIR}/druid-*.log "
        f"({len(paths)} files): start the native stack there (or point WIKISTREAMS_VAR_DIR at "
        "one) and check the monitors in druid/conf/*/runtime.properties"
    )
    INPUT_SOURCES["druid"] = (
        f"real {DRUID_LOG_DIR}/druid-*.log lines ({len(paths)} files) for {sorted(found)}"
    )


# ── the stack and the queries ───────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def loaded_stack(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("logstack")
    started = int(time.time()) - 3600
    stack = LogStack.start(workdir)
    services = NativeServices(workdir / "native-var")
    try:
        write_docker_stats_logger_log(stack.log_dir / "docker-stats-logger.log", workdir)
        write_native_stats_logger_log(stack.log_dir / "stats-logger.log", services, workdir)
        services.stop_all()
        write_druid_logs(stack.log_dir)
        write_producer_log(stack.log_dir / "producer.log", workdir)
        write_trends_log(stack.log_dir / "trends.log", workdir)
        counts = stack.wait_ingested(
            {"docker-stats-logger", "stats-logger", "producer", "trends", "druid-broker"}, started
        )
        print(f"\nlog lines stored per service: {counts}")
        for name, source in sorted(INPUT_SOURCES.items()):
            print(f"input {name}: {source}")
        yield stack, started
    finally:
        services.stop_all()
        stack.stop()


def test_queries_were_found():
    dashboards = {q.where.split(" / ")[0] for q in QUERIES if not q.where.startswith("alert")}
    assert dashboards == {
        "ws-error-monitor",
        "ws-producer-performance",
        "ws-druid-monitor",
        "ws-resources-monitor",
    }
    assert sum(q.where.startswith("alert") for q in QUERIES) == 8


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


BOTH_STATS_LOGGERS = '{service=~"docker-stats-logger|stats-logger"}'
RESOURCE_QUERIES = [q for q in QUERIES if q.expr.startswith(BOTH_STATS_LOGGERS)]


def test_resource_queries_read_both_stats_loggers():
    """Every Resources panel and the memory alert select both samplers' lines; the per-mode test
    below depends on that selector."""
    assert {q.where for q in QUERIES if "container_stats" in q.expr} == {
        q.where for q in RESOURCE_QUERIES
    }
    assert len([q for q in RESOURCE_QUERIES if not q.where.startswith("alert")]) == 6


@pytest.mark.parametrize("logger", ["docker-stats-logger", "stats-logger"])
@pytest.mark.parametrize("query", RESOURCE_QUERIES, ids=[q.where for q in RESOURCE_QUERIES])
def test_resource_query_returns_data_in_each_mode(loaded_stack, query, logger):
    """The same query on compose lines alone and on native lines alone: a field one sampler
    misses would otherwise hide behind the other sampler's rows."""
    stack, start = loaded_stack
    end = int(time.time()) + 60
    expr = query.expr.replace(BOTH_STATS_LOGGERS, f'{{service="{logger}"}}')
    series = stack.stats_range(expr, start, end, query.step)
    values = [float(v) for s in series for _, v in s["values"] if v not in ("NaN", "")]
    containers = sorted({s["metric"].get("container", "") for s in series})
    print(f"\n{query.where} [{logger}]: {len(series)} series, {len(values)} values, {containers}")
    assert series and values, f"{query.where}: no data from {logger}: {expr}"
    missing = unpacked_fields_missing(stack, expr, start, end)
    assert not missing, f"{query.where}: no {logger} line has {missing}"
