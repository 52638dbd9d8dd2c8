"""Druid's side of a capacity run: ingest through the project's supervisor, then measure.

The data goes in the way production data does: `druid/ingestion-spec.json` rendered by
`wikistreams.druid.supervisor.render_spec` (only the topic differs) and auto-compaction from
`druid/compaction-config.json`. What is measured:

- the ingestion rate and the lag while catching up (supervisor status, every few seconds);
- segments (count, bytes, rows) from `sys.segments`, before and after auto-compaction;
- bytes on disk under the native stack's data directories (Druid deep storage, the historical's
  segment cache, the Derby metadata store, the Kafka topic's log directories);
- the resident memory of every service, from `nativectl status`'s process table.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.capacity.storage_eval import dir_bytes as tree_bytes
from wikistreams.druid.supervisor import (
    DEFAULT_COMPACTION,
    DruidClient,
    DruidError,
    render_spec,
)

ROOT = Path(__file__).resolve().parents[2]
VAR = ROOT / "var"
OVERLORD = os.environ.get("DRUID_OVERLORD_URL", "http://127.0.0.1:8081")
BROKER = os.environ.get("DRUID_BROKER_URL", "http://127.0.0.1:8082")
DISK = {
    "druid deep storage": VAR / "data/druid/segments",
    "druid segment cache (historical)": VAR / "data/druid/segment-cache",
    "druid metadata (Derby)": VAR / "data/druid/metadata.db",
}


def dir_bytes(path: Path, prefix: str | None = None) -> int:
    """Bytes under `path` (only the entries whose name starts with `prefix`, if given)."""
    if not prefix:
        return tree_bytes(path)
    if not path.exists():
        return 0
    entries = [e for e in path.iterdir() if e.name.startswith(prefix)]
    return sum(tree_bytes(e) if e.is_dir() else e.stat().st_size for e in entries)


def disk_usage(topic: str) -> dict[str, int]:
    usage = {name: dir_bytes(path) for name, path in DISK.items()}
    usage[f"kafka topic {topic}"] = dir_bytes(VAR / "data/kafka", prefix=f"{topic}-")
    return usage


@dataclass
class Ingestion:
    """One supervisor over one topic, and what it did."""

    datasource: str
    topic: str
    client: DruidClient = field(default_factory=lambda: DruidClient(OVERLORD))
    samples: list[dict[str, Any]] = field(default_factory=list)

    def submit(self, task_duration: str = "PT1H") -> None:
        spec = render_spec(
            topic=self.topic, datasource=self.datasource, task_duration=task_duration
        )
        self.client.submit(spec)
        compaction = json.loads(DEFAULT_COMPACTION.read_text("utf-8"))
        self.client.set_compaction(compaction | {"dataSource": self.datasource})
        self.client.wait_running(self.datasource, timeout=300)
        # Offsets stored by an earlier run of the same datasource would skip the new topic's
        # first records (the topic was recreated): start over from its earliest offset.
        self.client.reset(self.datasource)
        self.client.wait_running(self.datasource, timeout=300)

    def rows(self) -> int:
        try:
            query = f'SELECT COUNT(*) AS n FROM "{self.datasource}"'
            return int(self.client.sql(BROKER, query)[0]["n"])
        except (DruidError, IndexError, KeyError):
            return 0

    def wait_caught_up(self, expected: int, timeout: float, every: float = 5.0) -> dict:
        """Until Druid answers `expected` rows; samples rows and lag meanwhile."""
        started = time.monotonic()
        first_rows_at = None
        while True:
            now = time.monotonic() - started
            status = self.client.status(self.datasource)
            rows = self.rows()
            if rows and first_rows_at is None:
                first_rows_at = now
            self.samples.append(
                {"t": round(now, 1), "rows": rows, "lag": status.get("aggregateLag")}
            )
            if rows >= expected:
                break
            if now > timeout:
                raise TimeoutError(f"{rows:,} of {expected:,} rows after {timeout:g} s")
            time.sleep(every)
        elapsed = time.monotonic() - started
        lags = [s["lag"] for s in self.samples if s["lag"] is not None]
        return {
            "rows": rows,
            "seconds": round(elapsed, 1),
            "rows_per_second": round(rows / elapsed) if elapsed else None,
            "max_lag": max(lags) if lags else None,
        }

    def segments(self) -> dict[str, Any]:
        """Published, visible segments: count, bytes and rows."""
        query = (
            'SELECT COUNT(*) AS segments, SUM("size") AS bytes, SUM(num_rows) AS num_rows '
            "FROM sys.segments WHERE datasource = ? AND is_published = 1 "
            "AND is_overshadowed = 0"
        )
        row = self.client.sql(BROKER, query, [{"type": "VARCHAR", "value": self.datasource}])
        return {k: int(v or 0) for k, v in (row[0] if row else {}).items()}

    def hand_off(self, rows: int, timeout: float, every: float = 5.0) -> dict[str, Any]:
        """Ask the running task to publish now (the supervisor's early hand-off API) and wait
        until published segments hold `rows`, instead of waiting out the task duration."""
        url = f"{self.client.overlord}/druid/indexer/v1/supervisor/{self.datasource}"
        self.client._call("POST", f"{url}/taskGroups/handoff", json={"taskGroupIds": [0]})
        started = time.monotonic()
        while True:
            published = self.segments()
            if published.get("num_rows", 0) >= rows:
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"published {published} of {rows:,} rows after {timeout:g} s")
            time.sleep(every)
        published["seconds"] = round(time.monotonic() - started, 1)
        return published

    def wait_compacted(self, timeout: float, every: float = 10.0) -> dict[str, Any]:
        """Until the coordinator's compaction status shows nothing awaiting compaction.

        The status appears after the coordinator's next compaction duty (404 until then), and
        says 0 bytes awaiting both when all is compacted and when nothing is old enough
        (`skipOffsetFromLatest`); with nothing eligible at all it stays 404. Two settled
        readings in a row (or 404 for over two duty periods) end the wait.
        """
        url = f"{self.client.coordinator}/druid/coordinator/v1/compaction/status"
        started = time.monotonic()
        status: dict[str, Any] = {}
        settled = 0
        while time.monotonic() - started < timeout:
            resp = self.client._http.get(url, params={"dataSource": self.datasource}, timeout=30)
            latest = resp.json().get("latestStatus") if resp.status_code == 200 else None
            status = latest[0] if latest else {}
            elapsed = time.monotonic() - started
            # A status computed before the hand-off says "nothing awaiting" about old segments:
            # trust none until two duty periods (PT60S, coordinator runtime.properties) passed.
            fresh = elapsed > 150
            done = fresh and (not status.get("bytesAwaitingCompaction") if status else True)
            settled = settled + 1 if done else 0
            compacting = [t for t in self.client.running_tasks(self.datasource) if "compact" in t]
            if settled >= 2 and not compacting:
                break
            time.sleep(every)
        status["seconds"] = round(time.monotonic() - started, 1)
        return status


def service_memory() -> dict[str, int]:
    """RSS in MiB of each running native service (and what it forked), as `make status` sums it."""
    from wikistreams.native.config import load_config
    from wikistreams.native.paths import Paths
    from wikistreams.native.procinfo import group_pids, rss_kib
    from wikistreams.native.records import read_pid

    paths = Paths.from_env()
    out = {}
    for name in load_config(paths=paths).services:
        record = read_pid(paths, name)
        if record is not None:
            out[name] = rss_kib(group_pids(record.pgid)) // 1024
    return out
