"""Trends processor settings: the producer's (one `.env`, one contact rule, one Wikidata client and
label cache configuration) plus what only the processor reads.

Inheriting `producer.config.Settings` keeps the shared names identical: `KAFKA_TOPIC` is the
producer's output and the processor's input, `USER_AGENT_CONTACT` and `WIKIDATA_*` make both
parts one polite API client, and `CACHE_*` points both at the same label cache. Only
`HEALTH_PORT` gets its own default (both run on one machine natively); the launcher and compose
set it explicitly, since a `.env` copied from `.env.example` holds the producer's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from wikistreams.producer.config import Settings

TRENDS_HEALTH_PORT = 8098


class TrendsSettings(Settings):
    """The producer's settings and the trends processor's own (the `TRENDS_*` block)."""

    trends_topic: str = Field(
        "wikimedia.trends", description="Trends: topic the trend records are written to"
    )
    trends_consumer_group: str = Field(
        "wikistreams-trends",
        description="Trends: consumer group on KAFKA_TOPIC; it also names the state's changelog "
        "and re-keying topics, so a new name starts from scratch",
    )
    trends_state_dir: Path = Field(
        Path("var/data/trends/state"),
        description="Trends: RocksDB state (per-page windows and baselines, per-story state); "
        "a lost directory is rebuilt from the changelog topics",
    )
    trends_auto_offset_reset: Literal["earliest", "latest"] = Field(
        "earliest",
        description="Trends: where a new consumer group starts on KAFKA_TOPIC ('earliest': the "
        "whole retained topic, so a first start finds the trends already in it)",
    )
    trends_resolve_budget_seconds: float = Field(
        3.0,
        gt=0,
        description="Trends: most time one candidate page's Wikidata lookup may hold the stream, "
        "retries included (the producer's WIKIDATA_RETRY_BUDGET_SECONDS is for its own "
        "off-stream lookups); the breaker (BREAKER_*) then skips the API during an outage",
    )
    trends_state_cache_mb: int = Field(
        64, ge=8, description="Trends: RocksDB block cache, MiB, for the whole process"
    )
    health_port: int = Field(
        TRENDS_HEALTH_PORT, ge=0, le=65535, description="Port of /health (0 = off)"
    )
