"""Entry point of the trends processor (`wikistreams-trends`, `python -m wikistreams.trends`).

Settings first (a bad one exits 2 with one readable message), then JSON logs, `/health` and the
Quix Streams application, which runs until SIGTERM/SIGINT: Quix then finishes the message in
hand, commits its checkpoint (offsets, output, state, in one transaction) and returns. A
`kill -9` loses nothing either: the next start resumes from the last commit.
"""

from __future__ import annotations

import logging

import structlog

from wikistreams.producer.cache import open_cache
from wikistreams.producer.config import PRODUCER_VERSION
from wikistreams.producer.enrich import make_breaker
from wikistreams.producer.health import Heartbeat, serve_health
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.main import build_client, settings_for_run
from wikistreams.trends.config import TrendsSettings
from wikistreams.trends.detector import DetectorParams
from wikistreams.trends.resolve import StoryResolver
from wikistreams.trends.stats import StatsReporter
from wikistreams.trends.steps import StepCounts

log = structlog.get_logger("trends.main")


def build_resolver(settings: TrendsSettings) -> StoryResolver | None:
    """Candidate page -> Wikidata item; None when ENRICHMENT_ENABLED=false (pages are stories)."""
    if not settings.enrichment_enabled:
        return None
    return StoryResolver(
        build_client(settings, retry_budget_seconds=settings.trends_resolve_budget_seconds),
        open_cache(settings),
        make_breaker(settings.breaker_failure_threshold, settings.breaker_reset_seconds),
    )


def run(argv: list[str] | None = None) -> None:
    settings = settings_for_run("wikistreams-trends", __doc__, TrendsSettings, argv)
    if settings is None:
        return
    configure_logging(settings.log_level, service="trends")
    # Libraries' warnings (e.g. a deprecation printed at import) become JSON lines too.
    logging.captureWarnings(True)
    from wikistreams.trends.app import build_app  # after logging: Quix logs at import

    params = DetectorParams()
    log.info(
        "startup",
        version=PRODUCER_VERSION,
        config=settings.masked(),
        detector=params.model_dump(mode="json"),
    )
    heartbeat = Heartbeat()
    resolver = build_resolver(settings)
    counts = StepCounts()
    reporter = StatsReporter(settings.kafka_topic, counts, resolver, heartbeat)
    app = build_app(
        settings,
        params,
        resolver,
        counts,
        stats_cb=reporter,
        stats_interval_ms=int(settings.stats_interval_seconds * 1000),
    )
    if settings.health_port:
        serve_health(heartbeat, settings.health_bind, settings.health_port)
    app.run()
    log.info("stopped", **reporter.line(None))
