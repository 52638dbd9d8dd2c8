"""`make capacity`: a day and a week of live-shaped data through Kafka and Druid, then measured.

    python -m benchmarks.capacity [--days 1,7] [--rate 30] [--report docs/capacity.md]
        [--json results.json] [--skip-storage] [--locust-seconds 60]

It needs the native stack (`make capacity` starts what is missing) and **replaces the
`wikimedia_recentchange` datasource** (the one the dashboard reads) with generated data: run it
on a machine kept for measuring, not on one that holds data you want. Steps:

1. Drop the datasource, submit the project's supervisor spec on a fresh topic.
2. For each size (1 day, then 6 older days for 7 in all): write the generated records into the
   topic (`benchmarks.capacity.generate`), measure Druid catching up, segments before and after
   auto-compaction, disk, memory; then every chart through Superset's chart data API for the
   windows a user picks, and a Locust load test with 1, 10 and 50 viewers.
3. The same 7 days in ClickHouse (chdb) and DuckDB with the same 9 queries, and Druid's answer
   times for them over its SQL API (`benchmarks.capacity.storage_eval`).

The report (`docs/capacity.md`) is written from one run's results; its hand-written sections
(sizing, outgrowing one machine) are kept when it is re-rendered.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from benchmarks import harness
from benchmarks.capacity import generate, ingest
from benchmarks.capacity.report import git_commit, write_report

DATASOURCE = "wikimedia_recentchange"  # what the dashboard's dataset reads
TOPIC = "capacity.recentchange.enriched"


def log(message: str) -> None:
    print(f"[capacity {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_days(
    druid: ingest.Ingestion, start: datetime, days: float, args, seed: int, before: int
) -> dict:
    """Write `days` of records starting at `start` into the topic while Druid ingests them."""
    written: dict = {}

    def produce() -> None:
        written.update(
            generate.write_kafka(harness.KAFKA, TOPIC, start, days, rate=args.rate, seed=seed)
        )

    writer = threading.Thread(target=produce, daemon=True)
    started = time.monotonic()
    writer.start()
    expected = before + int(days * 86400 * args.rate * 0.98)  # the generator's rate is nominal
    caught_up = druid.wait_caught_up(expected, timeout=args.ingest_timeout)
    writer.join()
    caught_up["rows"] = druid.rows()
    caught_up["produce"] = written
    caught_up["wall_seconds"] = round(time.monotonic() - started, 1)
    return caught_up


def measure_size(druid: ingest.Ingestion, label: str, end: datetime, args) -> dict:
    """Every measurement of one size; a failed step is recorded with its error, not fatal."""
    from benchmarks.capacity import dashboard_speed

    out: dict = {"label": label, "errors": {}}

    def step(key: str, fn, *a, **kw) -> None:
        started = time.monotonic()
        try:
            out[key] = fn(*a, **kw)
        except Exception as exc:  # noqa: BLE001 - reported in the results and the report
            out["errors"][key] = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"{label}: {key} failed: {out['errors'][key]}")
        log(f"{label}: {key} done in {time.monotonic() - started:,.0f} s")

    step("segments_before_compaction", druid.hand_off, druid.rows(), args.compaction_timeout)
    step("compaction", druid.wait_compacted, timeout=args.compaction_timeout)
    step("segments_after_compaction", druid.segments)
    out["disk"] = ingest.disk_usage(TOPIC)
    out["memory_mib"] = ingest.service_memory()
    step(
        "charts",
        dashboard_speed.measure,
        runs=args.chart_runs,
        windows=args.windows,
        end=end.isoformat(),
    )
    out["locust"] = {}
    for users in args.users:
        log(f"{label}: Locust, {users} viewers, {args.locust_seconds} s")
        try:
            out["locust"][users] = dashboard_speed.run_locust(
                users,
                args.locust_seconds,
                window=args.locust_window,
                end=end.isoformat(),
                force=False,  # viewers get what Superset cached, as browsers do
            )
        except Exception as exc:  # noqa: BLE001
            out["errors"][f"locust {users}"] = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"{label}: Locust {users} failed: {exc}")
    out["memory_mib_after_load"] = ingest.service_memory()
    return out


def run(args: argparse.Namespace) -> dict:
    end = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    results: dict = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rate": args.rate,
        "end": end.isoformat(),
        "commit": git_commit(),
        "sizes": [],
    }
    druid = ingest.Ingestion(DATASOURCE, TOPIC)
    log(f"dropping {DATASOURCE} and topic {TOPIC}, then submitting the supervisor")
    druid.client.drop(DATASOURCE)
    harness.delete_topics(TOPIC)
    time.sleep(5)
    harness.create_topics(TOPIC)
    druid.submit()
    loaded, rows, pieces = 0.0, 0, []
    for seed, days in enumerate(args.days, start=1):
        more = days - loaded
        start = end - timedelta(days=days)
        log(f"{days} day(s): writing {more:g} day(s) from {start:%Y-%m-%d %H:%M}")
        ingestion = load_days(druid, start, more, args, seed, rows)
        rows = ingestion["rows"]
        pieces.append({"start": start, "days": more, "seed": seed})
        log(f"{days} day(s): {rows:,} rows, {ingestion['rows_per_second']:,} rows/s")
        size = measure_size(druid, f"{days:g} day(s)", end, args)
        size.update({"days": days, "ingestion": ingestion, "rows": rows})
        results["sizes"].append(size)
        loaded = days
        _save(args, results)
    if not args.skip_storage:
        results["storage"] = storage(pieces, end, args)
    _save(args, results)
    return results


def storage(pieces: list[dict], end: datetime, args) -> dict:
    """The same records (same generator calls) in chdb and DuckDB, and Druid on the same SQL."""
    from benchmarks.capacity import storage_eval

    with tempfile.TemporaryDirectory(prefix="wikistreams-capacity-") as tmp:
        files = []
        for i, piece in enumerate(pieces):
            path = Path(tmp) / f"part-{i}.parquet"
            generate.write_parquet(path, piece["start"], piece["days"], args.rate, piece["seed"])
            files.append(path)
        log("storage evaluation: chdb, DuckDB and Druid on the same queries")
        return storage_eval.evaluate(
            files,
            windows=args.windows,
            runs=args.storage_runs,
            druid=ingest.BROKER,
            datasource=DATASOURCE,
        )


def _save(args, results: dict) -> None:
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", default="1,7", help="cumulative sizes to measure, e.g. 1,7")
    p.add_argument("--rate", type=float, default=30.0, help="events/s of the generated data")
    p.add_argument("--windows", default="1h,24h,7d", help="dashboard time windows to time")
    p.add_argument("--chart-runs", type=int, default=10, help="timed runs per chart and window")
    p.add_argument("--users", default="1,10,50", help="Locust viewer counts")
    p.add_argument("--locust-seconds", type=int, default=60)
    p.add_argument("--locust-window", default="6h", help="the dashboard's default window")
    p.add_argument("--ingest-timeout", type=float, default=3600)
    p.add_argument("--compaction-timeout", type=float, default=1800)
    p.add_argument("--skip-storage", action="store_true", help="no chdb/DuckDB comparison")
    p.add_argument("--storage-runs", type=int, default=10, help="timed runs per engine query")
    p.add_argument("--report", type=Path, default=Path("docs/capacity.md"))
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--from-json", type=Path, help="only render the report from saved results")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
    else:
        args.days = [float(d) for d in args.days.split(",")]
        args.users = [int(u) for u in args.users.split(",")]
        args.windows = args.windows.split(",")
        results = run(args)
    write_report(args.report, results)
    return results


if __name__ == "__main__":
    main()
