"""Trends processor capacity: throughput, RSS, state size, Wikidata requests on live-shaped input.

    python -m benchmarks.trends_bench [--days 0.1] [--page-days 1] [--json out.json]

1. `--days` of live-shaped enriched records (`benchmarks.capacity.generate`, 30 events/s, the
   live rate) are written to a throw-away topic first; then the real `wikistreams-trends`
   process reads them flat out (exactly-once, as production runs it) against the Wikidata
   stand-in. Throughput = records / (time from the first stats line with input to caught up);
   it must exceed 300 events/s (10x live). Peak RSS is the process's `VmHWM`; state size is
   its RocksDB directory at the end, divided by the pages it holds for bytes per page.
2. Pages a day: the distinct pages (`wiki:title`) with a counted edit in `--page-days` of the
   same generator; the state of a day, and of a week (the page TTL keeps at most the last
   3 days: bounded by the generator's measured 7-day/1-day title ratio, 4.2), follow from the
   bytes per page.
3. Wikidata requests per hour at live rate: the stand-in's request count over the event-time
   hours the run covered (every request is one `sites`/`titles` call, <= 50 titles).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

from benchmarks.capacity.generate import records, write_kafka
from benchmarks.harness import KAFKA, ROOT, delete_topics
from wikistreams.trends.edits import edit_from_event
from tests.standins import TEST_CONTACT
from tests.standins.wikidata_api import WikidataStandIn

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
WEEK_OVER_DAY_TITLES = 4.2  # benchmarks/capacity/generate.py: 7-day distinct titles / 1-day


def pages_per_day(days: float) -> dict:
    """Counted edits and distinct pages with a counted edit, per day of generated input."""
    pages: set[str] = set()
    edits = total = 0
    for record in records(START, days):
        total += 1
        edit = edit_from_event(record)
        if edit is not None:
            edits += 1
            pages.add(edit.page)
    return {
        "days": days,
        "records": total,
        "edits_per_day": round(edits / days),
        "pages_per_day": round(len(pages) / days),
    }


def internal_topics(group: str) -> list[str]:
    """Quix's changelog and re-keying topics of a consumer group."""
    from confluent_kafka.admin import AdminClient

    names = AdminClient({"bootstrap.servers": KAFKA}).list_topics(timeout=30).topics
    return [
        name
        for name in names
        if name.startswith(("changelog__", "repartition__")) and group in name
    ]


def dir_bytes(path: Path) -> int:
    """Bytes of the files under `path` (RocksDB deletes files meanwhile: those count 0)."""
    total = 0
    for file in path.rglob("*"):
        try:
            total += file.stat().st_size if file.is_file() else 0
        except FileNotFoundError:
            pass
    return total


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def run(days: float) -> dict:
    run_id = uuid.uuid4().hex[:8]
    topic, out, group = f"bench.trends.in.{run_id}", f"bench.trends.out.{run_id}", f"bench-{run_id}"
    written = write_kafka(KAFKA, topic, START, days)
    n = written.get("records") or written.get("count") or round(days * 86_400 * 30)
    api = WikidataStandIn().start()
    work = Path(tempfile.mkdtemp(prefix="trends-bench-"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "src"),
        "USER_AGENT_CONTACT": TEST_CONTACT,
        "WIKIDATA_API_URL": api.url,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "KAFKA_TOPIC": topic,
        "TRENDS_TOPIC": out,
        "TRENDS_CONSUMER_GROUP": group,
        "TRENDS_STATE_DIR": str(work / "state"),
        "CACHE_DB_PATH": str(work / "labels.sqlite3"),
        "HEALTH_PORT": "0",
        "STATS_INTERVAL_SECONDS": "2",
    }
    log_path = work / "trends.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wikistreams.trends"], env=env, cwd=work, stdout=log, stderr=log
        )
        first = last = None
        events = rss = 0.0
        state_max = 0
        try:
            while proc.poll() is None:
                time.sleep(2)
                rss = max(rss, rss_peak_mib(proc.pid))
                if (work / "state").exists():
                    state_max = max(state_max, dir_bytes(work / "state"))
                stats = [
                    json.loads(line)
                    for line in log_path.read_text(errors="replace").splitlines()
                    if '"msg": "stats"' in line
                ]
                if stats:
                    events = stats[-1]["total_events_in"]
                if first is None and events:
                    first = time.monotonic() - 2
                if events >= n:
                    last = time.monotonic()
                    break
        finally:
            proc.terminate()
            proc.wait(60)
    line = stats[-1] if stats else {}
    requests = len([q for q in api.behaviour.requests if q.get("sites")])
    api.stop()
    state = dir_bytes(work / "state")
    seconds = (last - first) if first and last else None
    delete_topics(topic, out, *internal_topics(group))
    return {
        "records": n,
        "seconds": round(seconds, 1) if seconds else None,
        "events_per_sec": round(n / seconds) if seconds else None,
        "rss_peak_mib": round(rss, 1),
        "state_bytes": state,  # after a clean stop (flushed, compacted)
        "state_bytes_max_running": state_max,  # memtable WAL and uncompacted files included
        "edits": line.get("total_edits"),
        "candidates": line.get("total_candidates"),
        "trends_out": line.get("total_trends_out"),
        "wikidata_requests": requests,
        "wikidata_requests_per_hour": round(requests / (days * 24), 1),
        "event_hours": days * 24,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=0.1, help="input for the throughput run")
    p.add_argument("--page-days", type=float, default=1.0, help="input for the page count")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    result = {"run": run(args.days), "pages": pages_per_day(args.page_days)}
    held = pages_per_day(args.days)["pages_per_day"] * args.days
    per_page = result["run"]["state_bytes"] / max(held, 1)
    day = result["pages"]["pages_per_day"]
    result["state"] = {
        "bytes_per_page": round(per_page),
        "day_mib": round(day * per_page / 2**20, 1),
        "week_mib_at_most": round(day * WEEK_OVER_DAY_TITLES * per_page / 2**20, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return result


if __name__ == "__main__":
    main()
