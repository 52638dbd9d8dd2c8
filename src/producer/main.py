"""Entry point: wires settings to the stages and runs the pipeline until told to stop.

SIGTERM and SIGINT stop reading, publish what is batched, wait for Kafka, persist the checkpoint
and exit 0; a second signal exits at once (the checkpoint still holds, so nothing is lost).
"""

from __future__ import annotations

import signal
import sys
import threading

import structlog

from producer.cache import open_cache
from producer.checkpoint import CheckpointStore
from producer.config import PRODUCER_VERSION, Settings, SettingsError, load_settings
from producer.enrich import Enricher, make_breaker
from producer.health import serve_health
from producer.logs import configure_logging
from producer.pipeline import Pipeline
from producer.sink import KafkaSink, ensure_topics, producer_config
from producer.source import open_source
from producer.wikidata import WikidataClient

log = structlog.get_logger("producer.main")


def build_enricher(settings: Settings) -> Enricher:
    breaker = make_breaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds)
    if not settings.enrichment_enabled:
        return Enricher(None, None, breaker)
    client = WikidataClient(
        settings.wikidata_api_url,
        settings.user_agent,
        timeout=settings.wikidata_timeout_seconds,
        maxlag=settings.wikidata_maxlag_seconds,
        max_retries=settings.wikidata_max_retries,
        retry_after_cap=settings.wikidata_retry_after_max_seconds,
    )
    return Enricher(
        client,
        open_cache(settings),
        breaker,
        max_ids=settings.enrich_batch_max_ids,
        max_wait_seconds=settings.enrich_batch_max_wait_ms / 1000,
    )


def build_pipeline(settings: Settings) -> Pipeline:
    ensure_topics(
        settings.kafka_bootstrap_servers,
        [settings.kafka_topic, settings.kafka_dlq_topic],
        settings.kafka_topic_partitions,
        settings.kafka_topic_replication,
    )
    sink = KafkaSink(
        producer_config(
            settings.kafka_bootstrap_servers, settings.kafka_compression, settings.kafka_linger_ms
        ),
        settings.kafka_topic,
        settings.kafka_dlq_topic,
    )
    return Pipeline(
        sink,
        build_enricher(settings),
        CheckpointStore(settings.checkpoint_path),
        source_name=settings.sse_url,
        dedupe_window=settings.dedupe_window,
        checkpoint_interval=settings.checkpoint_interval_seconds,
        stats_interval=settings.stats_interval_seconds,
    )


def install_signal_handlers(stop: threading.Event) -> None:
    def handle(signum, _frame) -> None:
        if stop.is_set():
            log.warning("forced_exit", signal=signal.Signals(signum).name)
            sys.exit(130)
        log.info("stopping", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run() -> None:
    try:
        settings = load_settings()
    except SettingsError as err:
        print(f"wikistreams-producer: {err}", file=sys.stderr)
        sys.exit(2)
    configure_logging(settings.log_level)
    log.info("startup", version=PRODUCER_VERSION, config=settings.masked())
    stop = threading.Event()
    install_signal_handlers(stop)
    pipeline = build_pipeline(settings)
    last_event_id = pipeline.checkpoints.load()
    pipeline.recent.remember(pipeline.checkpoints.load_delivered_ids())
    source = open_source(
        settings.sse_url,
        settings.user_agent,
        last_event_id,
        stop,
        speed=settings.replay_speed,
        connect_timeout=settings.sse_connect_timeout_seconds,
        read_timeout=settings.sse_read_timeout_seconds,
        backoff_cap=settings.reconnect_backoff_max_seconds,
        wait_at_end=settings.replay_at_end == "wait",
    )
    log.info("resuming", last_event_id=last_event_id, source=settings.sse_url)
    if settings.health_port:
        serve_health(pipeline.heartbeat, settings.health_bind, settings.health_port)
    # A source that cannot go on (e.g. StreamRejected: 403 on the User-Agent) ends the run with
    # a `source_failed` error line and exit code 1, after delivering what was read.
    sys.exit(pipeline.run(source, stop))
