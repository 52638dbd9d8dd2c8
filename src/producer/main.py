"""Entry point: wires settings to the stages and runs the pipeline until told to stop.

SIGTERM and SIGINT stop reading, publish what is batched, wait for Kafka, persist the checkpoint
and exit 0; a second signal exits at once (the checkpoint still holds, so nothing is lost).
"""

from __future__ import annotations

import argparse
import faulthandler
import gc
import os
import signal
import sys
import threading

import structlog

from producer.cache import open_cache
from producer.checkpoint import CheckpointStore
from producer.config import PRODUCER_VERSION, Settings, SettingsError, load_settings
from producer.enrich import LabelWorkers, make_breaker
from producer.health import Heartbeat, serve_health
from producer.logs import configure_logging
from producer.pipeline import Pipeline
from producer.sink import KafkaSink, ensure_topics, producer_config, wait_for_kafka
from producer.source import open_source
from producer.wikidata import WikidataClient

log = structlog.get_logger("producer.main")


def build_label_workers(settings: Settings) -> LabelWorkers | None:
    """The enrichment threads (cache lookup, API calls); None when enrichment is off."""
    if not settings.enrichment_enabled:
        return None
    client = WikidataClient(
        settings.wikidata_api_url,
        settings.user_agent,
        timeout=settings.wikidata_timeout_seconds,
        maxlag=settings.wikidata_maxlag_seconds,
        max_retries=settings.wikidata_max_retries,
        retry_after_cap=settings.wikidata_retry_after_max_seconds,
        retry_budget_seconds=settings.wikidata_retry_budget_seconds,
    )
    return LabelWorkers(
        client,
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
    heartbeat.problems.pop("kafka", None)
    heartbeat.beat(kafka_state="ok")
    return True


def build_pipeline(
    settings: Settings, heartbeat: Heartbeat | None = None, checkpoint_path=None
) -> Pipeline:
    sink = KafkaSink(
        producer_config(
            settings.kafka_bootstrap_servers, settings.kafka_compression, settings.kafka_linger_ms
        ),
        settings.kafka_topic,
        settings.kafka_dlq_topic,
    )
    return Pipeline(
        sink,
        CheckpointStore(checkpoint_path or settings.checkpoint_path),
        source_name=settings.sse_url,
        dedupe_window=settings.dedupe_window,
        workers=build_label_workers(settings),
        enrich_max_delay=settings.enrich_max_delay_seconds,
        checkpoint_interval=settings.checkpoint_interval_seconds,
        stats_interval=settings.stats_interval_seconds,
        heartbeat=heartbeat,
    )


SHUTDOWN_LIMIT_SECONDS = 45.0


def _shutdown_watchdog(stop: threading.Event, limit: float) -> None:
    stop.wait()
    faulthandler.dump_traceback_later(limit, exit=True)


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum, _frame) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            sys.exit(130)
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wikistreams-producer", description=__doc__)
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the settings (environment and .env) and exit: 0 when they are usable",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"wikistreams-producer: {err}", file=sys.stderr)
        sys.exit(2)
    if args.check_config:
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
    pipeline = build_pipeline(settings, heartbeat)
    try:
        last_event_id = pipeline.checkpoints.load()
        pipeline.recent.remember(pipeline.checkpoints.load_delivered_ids())
    except (ValueError, OSError) as err:  # guessing a position would skip or repeat events
        print(f"wikistreams-producer: {err}", file=sys.stderr)
        sys.exit(2)
    # Every event allocates a few short-lived objects; with the default threshold (700) the
    # collector runs every ~100 events and rescans the long-lived ones. Freeze what start-up
    # built and collect the young generation less often (measured in docs/benchmarks.md).
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    source = open_source(
        settings.sse_url,
        settings.user_agent,
        last_event_id,
        stop,
        speed=settings.replay_speed,
        connect_timeout=settings.sse_connect_timeout_seconds,
        read_timeout=settings.sse_read_timeout_seconds,
        backoff_cap=settings.reconnect_backoff_max_seconds,
        max_frame_bytes=settings.sse_max_frame_bytes,
        wait_at_end=settings.replay_at_end == "wait",
    )
    log.info("resuming", last_event_id=last_event_id, source=settings.sse_url)
    # A source that cannot go on (e.g. StreamRejected: 403 on the User-Agent) ends the run with
    # a `source_failed` error line and exit code 1, after delivering what was read.
    # Shutdown is bounded: if stopping ever takes longer (a bug), every thread's stack is
    # written to stderr and the process exits; what was delivered is in the checkpoint.
    stop_watchdog = threading.Thread(
        target=_shutdown_watchdog, args=(stop, SHUTDOWN_LIMIT_SECONDS), daemon=True
    )
    stop_watchdog.start()
    code = pipeline.run(source, stop)
    # Everything is delivered and the position saved: leave now. Interpreter teardown would
    # wait on daemon threads blocked in network calls and on librdkafka's destructor.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
