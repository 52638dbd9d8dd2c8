"""Entry point: wires settings to the stages and runs the pipeline until told to stop.

SIGTERM and SIGINT stop reading, publish what is batched, commit it with the position and exit 0;
a second signal exits at once (the open transaction is rolled back, so nothing is lost or
doubled). Several copies may run: one is active, the others wait as hot standbys (see `serve`).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import signal
import sys
import threading
from types import FrameType
from typing import TypeVar

import structlog

from wikistreams.backoff import Backoff
from wikistreams.producer.cache import open_cache
from wikistreams.producer.config import PRODUCER_VERSION, Settings, SettingsError, load_settings
from wikistreams.producer.enrich import LabelWorkers, make_breaker
from wikistreams.producer.events import EventTimeBounds
from wikistreams.producer.health import Heartbeat, serve_health
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.lease import KafkaLease
from wikistreams.producer.pipeline import Outcome, Pipeline
from wikistreams.producer.position import (
    LEASE_TOPIC_CONFIG,
    POSITION_TOPIC_CONFIG,
    PositionError,
    PositionUnavailable,
    StreamIdentity,
)
from wikistreams.producer.sink import (
    KafkaSink,
    SameConfig,
    ensure_topics,
    producer_config,
    wait_for_kafka,
)
from wikistreams.producer.source import EventStreamSource, SourceOptions
from wikistreams.producer.wikidata import WikidataClient

log = structlog.get_logger("producer.main")


def build_client(settings: Settings, retry_budget_seconds: float | None = None) -> WikidataClient:
    """The Wikidata API client as the settings configure it (the trends processor passes its
    own, shorter budget: its lookups run on the stream's thread)."""
    return WikidataClient(
        settings.wikidata_api_url,
        settings.user_agent,
        timeout=settings.wikidata_timeout_seconds,
        maxlag=settings.wikidata_maxlag_seconds,
        max_retries=settings.wikidata_max_retries,
        retry_after_cap=settings.wikidata_retry_after_max_seconds,
        retry_budget_seconds=retry_budget_seconds or settings.wikidata_retry_budget_seconds,
    )


def build_label_workers(settings: Settings) -> LabelWorkers | None:
    """The enrichment threads (cache lookup, API calls); None when enrichment is off."""
    if not settings.enrichment_enabled:
        return None
    return LabelWorkers(
        build_client(settings),
        open_cache(settings),
        make_breaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds),
        max_ids=settings.enrich_batch_max_ids,
        batch_wait_seconds=settings.enrich_batch_max_wait_ms / 1000,
    )


def prepare_kafka(settings: Settings, stop: threading.Event, heartbeat: Heartbeat) -> bool:
    """Wait until Kafka answers, then create missing topics; False if stopped meanwhile."""
    heartbeat.problems["kafka"] = "waiting for Kafka"
    heartbeat.beat(kafka_state="connecting")
    if not wait_for_kafka(settings.kafka_bootstrap_servers, stop, on_retry=heartbeat.beat):
        return False
    ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.kafka_topic, settings.kafka_dlq_topic],
        settings.kafka_topic_partitions,
        settings.kafka_topic_replication,
    )
    for topic, config in (
        (settings.kafka_position_topic, POSITION_TOPIC_CONFIG),
        (settings.kafka_lease_topic, LEASE_TOPIC_CONFIG),
    ):
        ensure_topics(
            settings.kafka_bootstrap_servers,
            [topic],
            1,
            settings.kafka_topic_replication,
            retention=SameConfig(config),
        )
    heartbeat.problems.pop("kafka", None)
    heartbeat.beat(kafka_state="ok")
    return True


def stream_identity(settings: Settings) -> StreamIdentity:
    return StreamIdentity.of(settings.kafka_topic, settings.sse_url)


def build_sink(settings: Settings, identity: StreamIdentity) -> KafkaSink:
    """The Kafka producer of one stream; call `start()` before writing (it fences older copies)."""
    config = producer_config(
        settings.kafka_bootstrap_servers,
        settings.kafka_compression,
        settings.kafka_linger_ms,
        identity.transactional_id if settings.kafka_transactions else None,
    )
    return KafkaSink(
        config,
        settings.kafka_topic,
        settings.kafka_dlq_topic,
        settings.kafka_position_topic,
        identity.key,
    )


def event_time_bounds(settings: Settings) -> EventTimeBounds:
    """The age bound applies to the live stream; a file:// recording keeps its own times."""
    replay = settings.sse_url.startswith("file:")
    hours = settings.event_max_age_hours
    max_age = None if replay or hours == 0 else hours * 3600
    return EventTimeBounds(max_age, settings.event_max_future_seconds)


def build_pipeline(
    settings: Settings,
    sink: KafkaSink,
    heartbeat: Heartbeat | None = None,
    lease: KafkaLease | None = None,
) -> Pipeline:
    return Pipeline(
        sink,
        dedupe_window=settings.dedupe_window,
        workers=build_label_workers(settings),
        enrich_max_delay_seconds=settings.enrich_max_delay_seconds,
        enrich_catchup_max_delay_seconds=settings.enrich_catchup_max_delay_seconds,
        commit_interval_seconds=settings.commit_interval_seconds,
        commit_max_events=settings.commit_max_events,
        stats_interval_seconds=settings.stats_interval_seconds,
        event_times=event_time_bounds(settings),
        heartbeat=heartbeat,
        lease=lease,
    )


def build_source(settings: Settings) -> EventStreamSource:
    """EventStreams (or the recording SSE_URL names), opened by the pipeline at its position."""
    return EventStreamSource(settings.sse_url, SourceOptions.from_settings(settings))


def run_active(
    settings: Settings,
    identity: StreamIdentity,
    stop: threading.Event,
    heartbeat: Heartbeat,
    lease: KafkaLease,
) -> Outcome:
    """One term as the active copy: fence, read the committed position, stream from it.

    Ends when `stop` is set, the source ends, the lease is lost or Kafka rolls the transaction
    back; the caller decides what comes next from the outcome.
    """
    run_stop = threading.Event()  # this term only: set by `stop` or by losing the lease

    def watch() -> None:
        while not run_stop.wait(0.1):
            if stop.is_set() or not lease.held:
                run_stop.set()

    threading.Thread(target=watch, daemon=True, name="term").start()
    try:
        return _stream_from_position(settings, identity, heartbeat, lease, run_stop)
    finally:
        run_stop.set()


def _stream_from_position(
    settings: Settings,
    identity: StreamIdentity,
    heartbeat: Heartbeat,
    lease: KafkaLease,
    run_stop: threading.Event,
) -> Outcome:
    heartbeat.beat(role="active", lease=lease.state)
    pipeline = build_pipeline(settings, build_sink(settings, identity), heartbeat, lease)
    source = build_source(settings)
    heartbeat.checks["source"] = source.health  # a standby reads no stream: nothing to check
    try:
        return pipeline.run(source, run_stop)
    finally:
        heartbeat.checks.pop("source", None)


def serve(settings: Settings, stop: threading.Event, heartbeat: Heartbeat) -> int:
    """Standby until this copy holds the lease, active until it ends; again after a rewind or
    a step-down. Returns the exit code once the stream ends, fails or `stop` is set."""
    identity = stream_identity(settings)
    lease = KafkaLease(
        settings.kafka_bootstrap_servers,
        settings.kafka_lease_topic,
        identity.lease_group,
        settings.lease_session_timeout_ms,
    ).start()
    rewinds = Backoff(base=0.5, cap=30.0)  # Kafka slow or away while (re)starting: back off
    try:
        while not stop.is_set():
            heartbeat.beat(role="standby", lease=lease.state)
            log.info("standby", stream=identity.key, lease_group=identity.lease_group)
            if not lease.wait(stop, lambda: heartbeat.beat(role="standby", lease=lease.state)):
                break
            try:
                outcome = run_active(settings, identity, stop, heartbeat, lease)
            except PositionUnavailable as err:  # Kafka slow or away: try again
                log.warning("position_unavailable", error=str(err)[:300])
                outcome = Outcome.REWIND
            except PositionError as err:  # guessing a position would skip or repeat events
                print(f"wikistreams-producer: {err}", file=sys.stderr)
                return 2
            if outcome in (Outcome.OK, Outcome.FAILED):
                return int(outcome)
            if outcome is Outcome.REWIND:
                rewinds.wait(stop, log, "rewinding")
            else:
                rewinds.reset()
                log.warning("stepped_down", lease=lease.state)
        return 0
    finally:
        lease.close()


SHUTDOWN_LIMIT_SECONDS = 45.0


def _shutdown_watchdog(stop: threading.Event, limit: float) -> None:
    stop.wait()
    faulthandler.dump_traceback_later(limit, exit=True)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            sys.exit(130)
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


AnySettings = TypeVar("AnySettings", bound=Settings)


def settings_for_run(
    prog: str, description: str | None, model: type[AnySettings], argv: list[str] | None
) -> AnySettings | None:
    """The settings of a long-running part, or None after `--check-config` found them usable.
    Invalid settings exit 2 with one line per bad setting."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the settings (environment and .env) and exit: 0 when they are usable",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(model)
    except SettingsError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(2)
    return None if args.check_config else settings


def run(argv: list[str] | None = None) -> None:
    settings = settings_for_run("wikistreams-producer", __doc__, Settings, argv)
    if settings is None:
        return
    configure_logging(settings.log_level)
    log.info("startup", version=PRODUCER_VERSION, config=settings.masked())
    stop = threading.Event()
    install_signal_handlers(stop)
    heartbeat = Heartbeat()
    if settings.health_port:
        serve_health(heartbeat, settings.health_bind, settings.health_port)
    if not prepare_kafka(settings, stop, heartbeat):
        sys.exit(0)
    # Every event allocates a few short-lived objects; with the default threshold (700) the
    # collector runs every ~100 events and rescans the long-lived ones. Freeze what start-up
    # built and collect the young generation less often (measured in docs/benchmarks.md).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    # A source that cannot go on (e.g. StreamRejected: 403 on the User-Agent) ends the run with
    # a `source_failed` error line and exit code 1, after committing what was read.
    # Shutdown is bounded: if stopping ever takes longer (a bug), every thread's stack is
    # written to stderr and the process exits; what was committed is in Kafka.
    stop_watchdog = threading.Thread(
        target=_shutdown_watchdog, args=(stop, SHUTDOWN_LIMIT_SECONDS), daemon=True
    )
    stop_watchdog.start()
    code = serve(settings, stop, heartbeat)
    # Everything is committed: leave now. Interpreter teardown would wait on daemon threads
    # blocked in network calls and on librdkafka's destructor.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
