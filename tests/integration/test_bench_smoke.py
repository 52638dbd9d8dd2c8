"""The latency benchmark's harness, run for a few seconds per scenario against the real Kafka.

Only structural facts are asserted (timings on a shared machine are not test material): every
event the load stand-in sent reached Kafka or the dead-letter topic exactly once, the producer
stopped cleanly on SIGTERM, and the report has its sections.
"""

from __future__ import annotations

import json

import pytest

from benchmarks import latency_bench

pytestmark = pytest.mark.integration

SECTIONS = (
    "# Producer benchmarks",
    "## How to read this",
    "## Targets",
    "## Latency: SSE frame sent → Kafka record (seconds)",
    "### Delivery, enrichment and shutdown",
    "## Catch-up: delivery rate when the stream is ahead of the producer",
    "## Throughput vs ceiling",
    "## Thread worker vs asyncio",
)


def test_quick_latency_bench_accounts_for_every_event(tmp_path):
    report, raw = tmp_path / "benchmarks.md", tmp_path / "latency.json"
    latency_bench.main(["--quick", "--report", str(report), "--json", str(raw)])

    scenarios = json.loads(raw.read_text())["latency"]["scenarios"]
    keys = {s["scenario"]["key"] for s in scenarios}
    assert {"paced-0", "paced-0.3", "paced-1", "outage", "catchup-0.3", "catchup-0"} <= keys
    assert "catchup-off" in keys
    for s in scenarios:
        name = s["scenario"]["key"]
        assert "skipped" not in s, f"{name}: {s.get('skipped')}"
        assert s["sent"] == s["scenario"]["events"], f"{name}: the stand-in did not send all"
        assert s["lost"] == 0, f"{name}: lost at send positions {s['lost_positions']}"
        assert s["duplicates"] == 0 and s["unknown"] == 0, name
        assert s["delivered"] + s["dead_lettered"] == s["sent"], name
        assert s["entity_mismatch"] == 0, f"{name}: wikidata_id set on the wrong events"
        assert s["exit_code"] == 0, f"{name}: exit {s['exit_code']}\n{s.get('log_tail', '')}"
        assert s["connections"] == 1, f"{name}: the producer reconnected"

    text = report.read_text()
    for heading in SECTIONS:
        assert heading in text, heading
