"""How late events reach Kafka, measured the way production meets the producer.

Per scenario: fresh topics, the Wikidata stand-in answering after `delay_seconds` (or in an
outage), the paced load stand-in (`benchmarks/load.py`) and `python -m wikistreams.producer` as a
process.
Latency of an event = its Kafka record timestamp (CreateTime, set at `produce()`) minus the time
the load stand-in wrote its frame, joined on `event_id` (= `meta.id`). Events without an entity
id and entity edits are reported apart: the first must not wait for the API, the second may.
Each scenario ends with SIGTERM, and the producer must exit 0 with every sent event delivered
or dead-lettered exactly once.

    python -m benchmarks.latency_bench [--quick] [--report docs/benchmarks.md] [--json out.json]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import harness
from benchmarks.load import ENTITY_SHARE, EventMix, LoadStandIn
from tests.standins.wikidata_api import Behaviour, WikidataStandIn, load_recorded


@dataclass(frozen=True)
class Scenario:
    key: str  # stable name the report's targets refer to
    title: str
    rate: float | None  # events/s; None = catch-up (as fast as the producer reads)
    events: int
    api_delay: float
    enrichment: bool = True
    outage_start: float | None = None  # seconds after the stream started
    outage_seconds: float = 0.0
    outage_hang: float = 15.0
    history_seconds: float = 0.0  # > 0: events dated over that much of the past (a backfill)


def outage_supported() -> bool:
    """The stand-in's outage mode is being added alongside this benchmark."""
    return {"outage", "outage_hang_seconds"} <= {f.name for f in dataclasses.fields(Behaviour)}


def scenarios(args: argparse.Namespace) -> list[Scenario]:
    paced = int(args.rate * args.duration)
    out = [
        Scenario(f"paced-{d:g}", f"{args.rate:g} ev/s, API {d:g} s", args.rate, paced, d)
        for d in args.delays
    ]
    out.append(
        Scenario(
            "outage",
            f"{args.rate:g} ev/s, API {args.outage_api_delay:g} s, "
            f"{args.outage_seconds:g} s outage from {args.outage_start:g} s",
            args.rate,
            int(args.rate * args.outage_run),
            args.outage_api_delay,
            outage_start=args.outage_start,
            outage_seconds=args.outage_seconds,
            outage_hang=args.outage_hang,
        )
    )
    for d in args.catchup_delays:
        out.append(
            Scenario(f"catchup-{d:g}", f"catch-up, API {d:g} s", None, args.catchup_events, d)
        )
    out.append(
        Scenario(
            "backfill-0.3",
            f"backfill: {args.backfill_events:,} events (an hour of live traffic), API 0.3 s",
            None,
            args.backfill_events,
            0.3,
            history_seconds=3600.0,
        )
    )
    out.append(
        Scenario(
            "catchup-off",
            "catch-up, ENRICHMENT_ENABLED=false",
            None,
            args.catchup_events,
            0.0,
            enrichment=False,
        )
    )
    return out


def run_scenario(sc: Scenario, args: argparse.Namespace, workroot: Path, recorded) -> dict:
    result: dict = {"scenario": dataclasses.asdict(sc), "notes": []}
    if sc.outage_start is not None and not outage_supported():
        result["skipped"] = "the Wikidata stand-in has no outage mode (Behaviour.outage) yet"
        return result
    events = EventMix(args.entity_share, seed=args.seed).build(sc.events)
    entity_ids = {e.event_id for e in events if e.entity}
    topic = harness.new_topic_name(sc.key)
    harness.create_topics(topic, f"{topic}.dlq")
    try:
        api = WikidataStandIn(recorded=recorded).start()
        api.behaviour.delay_seconds = sc.api_delay
        load = LoadStandIn(events, sc.rate, history_seconds=sc.history_seconds).start()
        try:
            producer = _run_producer(sc, args, workroot, topic, api, load, result)
        finally:
            api.behaviour.outage = False
            load.stop()
            api.stop()
        result["peak_rss_mb"] = producer.peak_rss_mb
        result["position_bytes_max"] = producer.stats_max("position_bytes_max")
        result["connections"] = load.connections
        result["api_calls"] = len(api.behaviour.requests)
        _tally(result, topic, load.sent_at, entity_ids, sc, result.pop("_window"))
    finally:
        harness.delete_topics(topic, f"{topic}.dlq")
    if result.get("exit_code") != 0:
        result["log_tail"] = producer.log_tail()
    return result


def _run_producer(sc, args, workroot, topic, api, load, result) -> harness.ProducerProcess:
    """Start the producer, let the load run, SIGTERM it; always leaves it stopped."""
    producer = harness.ProducerProcess(
        workroot / sc.key,
        topic,
        load.url,
        module=args.producer_module,
        WIKIDATA_API_URL=api.url,
        ENRICHMENT_ENABLED=str(sc.enrichment).lower(),
    )
    counter = harness.TopicCounter(topic, f"{topic}.dlq")
    timers: list[threading.Timer] = []
    result["_window"] = window = []  # outage on/off, wall-clock
    try:
        producer.start()
        if not load.started.wait(args.connect_timeout):
            result["notes"].append(f"the producer did not connect in {args.connect_timeout:g} s")
        else:
            if sc.outage_start is not None:
                timers = _schedule_outage(api, sc, load.started_at or time.time(), window)
            _wait_for_delivery(load, counter, producer, args, result)
        result["exit_code"] = producer.stop(args.stop_timeout)
        result["killed"] = producer.killed
        if producer.killed:
            result["notes"].append(f"SIGKILL: no exit {args.stop_timeout:g} s after SIGTERM")
    finally:
        for timer in timers:
            timer.cancel()
        counter.close()
        if producer.running():
            producer.stop(5)
    return producer


def _schedule_outage(
    api: WikidataStandIn, sc: Scenario, started_at: float, window: list[float]
) -> list[threading.Timer]:
    def begin() -> None:
        api.behaviour.outage_hang_seconds = sc.outage_hang
        api.behaviour.outage = True
        window.append(time.time())

    def end() -> None:
        api.behaviour.outage = False
        window.append(time.time())

    start_in = max(0.0, started_at + (sc.outage_start or 0.0) - time.time())
    timers = [
        threading.Timer(start_in, begin),
        threading.Timer(start_in + sc.outage_seconds, end),
    ]
    for timer in timers:
        timer.daemon = True
        timer.start()
    return timers


def _wait_for_delivery(load, counter, producer, args, result) -> None:
    """Until Kafka holds a record for every sent event, or nothing moved for `stall_timeout`."""
    deadline = time.monotonic() + args.max_seconds
    last_progress, last_seen = time.monotonic(), (-1, -1)
    while True:
        time.sleep(0.5)
        seen = (load.cursor, counter.count())
        if load.finished.is_set() and seen[1] >= len(load.sent_at):
            # Offsets include transaction markers: count the committed records themselves.
            if counter.committed() >= len(load.sent_at):
                return
        now = time.monotonic()
        if seen != last_seen:
            last_progress, last_seen = now, seen
        if not producer.running():
            result["notes"].append(f"the producer exited on its own (code {producer.exit_code})")
            return
        if now - last_progress > args.stall_timeout:
            result["notes"].append(
                f"stalled: no progress for {args.stall_timeout:g} s "
                f"({seen[1]} records for {len(load.sent_at)} sent); stopped"
            )
            return
        if now > deadline:
            result["notes"].append(f"gave up after {args.max_seconds:g} s; stopped")
            return


def _tally(result, topic, sent_at, entity_ids, sc, window) -> None:
    """Join Kafka's records with the send times: counts, latencies, rates."""
    delivered = harness.read_topic(topic)
    dead = harness.read_topic(f"{topic}.dlq")
    seen: collections.Counter[str] = collections.Counter()
    latency: dict[str, list[float]] = {"non_entity": [], "entity": []}
    in_window: dict[str, list[float]] = {"non_entity": [], "entity": []}
    timestamps: dict[str, list[int]] = {"non_entity": [], "entity": []}
    statuses: collections.Counter[str] = collections.Counter()
    mismatched = unknown = 0
    for rec in delivered:
        event = json.loads(rec.value)
        event_id = event.get("event_id")
        seen[event_id] += 1
        if event_id not in sent_at:
            unknown += 1
            continue
        kind = "entity" if event_id in entity_ids else "non_entity"
        if sc.enrichment and (event.get("wikidata_id") is not None) != (kind == "entity"):
            mismatched += 1
        statuses[event.get("enrichment_status", "?")] += 1
        delay = rec.timestamp_ms / 1000 - sent_at[event_id]
        latency[kind].append(delay)
        timestamps[kind].append(rec.timestamp_ms)
        if len(window) == 2 and window[0] <= sent_at[event_id] < window[1]:
            in_window[kind].append(delay)
    for rec in dead:
        seen[harness.event_id_of_dead_letter(rec.value)] += 1
    result.update(
        sent=len(sent_at),
        entity_sent=sum(1 for e in sent_at if e in entity_ids),
        delivered=len(delivered),
        dead_lettered=len(dead),
        lost=sum(1 for e in sent_at if seen[e] == 0),
        # Send positions of the first lost events: at the end = held back, spread = dropped.
        lost_positions=[i for i, e in enumerate(sent_at) if seen[e] == 0][:10],
        duplicates=sum(n - 1 for e, n in seen.items() if n > 1),
        unknown=unknown,
        entity_mismatch=mismatched,
        status_counts=dict(statuses),
        latency={k: harness.summarise(v) for k, v in latency.items()},
        rates={k: harness.rate_between(v) for k, v in timestamps.items()},
        rate_all=harness.rate_between(timestamps["non_entity"] + timestamps["entity"]),
        # From the first frame sent to the newest record of each kind: a backfill's duration.
        span_seconds={
            k: round(max(v) / 1000 - min(sent_at.values()), 3) if v and sent_at else None
            for k, v in timestamps.items()
        },
    )
    if len(window) == 2:
        result["outage_window"] = {k: harness.summarise(v) for k, v in in_window.items()}


# --- command line ------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few seconds per scenario (smoke run)")
    p.add_argument("--rate", type=float, default=300.0, help="events/s of the paced scenarios")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of each paced scenario")
    p.add_argument("--delays", type=_floats, default=[0.0, 0.3, 1.0], help="API latencies, s")
    p.add_argument("--outage-api-delay", type=float, default=0.3)
    p.add_argument("--outage-run", type=float, default=90.0, help="seconds of the outage run")
    p.add_argument("--outage-start", type=float, default=30.0)
    p.add_argument("--outage-seconds", type=float, default=30.0)
    p.add_argument("--outage-hang", type=float, default=15.0, help="seconds each call hangs")
    p.add_argument("--catchup-events", type=int, default=30_000)
    p.add_argument("--catchup-delays", type=_floats, default=[0.3, 0.0])
    p.add_argument(
        "--backfill-events",
        type=int,
        default=100_000,
        help="events of the backfill scenario: an hour of EventStreams at ~28 events/s",
    )
    p.add_argument("--entity-share", type=float, default=ENTITY_SHARE)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--only", default="", help="comma-separated scenario keys to run")
    p.add_argument(
        "--producer-module",
        default="wikistreams.producer",
        help="module run as the producer; benchmarks.asyncio_producer is the asyncio design",
    )
    p.add_argument("--connect-timeout", type=float, default=60.0)
    p.add_argument("--stall-timeout", type=float, help="give up after no progress (60 s)")
    p.add_argument("--stop-timeout", type=float, help="SIGKILL this long after SIGTERM (120 s)")
    p.add_argument("--max-seconds", type=float, default=900.0, help="cap per scenario")
    p.add_argument("--workdir", type=Path, help="keep producer logs here (default: a temp dir)")
    p.add_argument("--report", type=Path, help="write the markdown report here")
    p.add_argument("--json", type=Path, help="write the raw results here")
    return p


def apply_quick(args: argparse.Namespace) -> None:
    args.duration, args.outage_run = 3.0, 8.0
    args.outage_start, args.outage_seconds, args.outage_hang = 2.0, 3.0, 2.0
    args.catchup_events = args.backfill_events = 2000


def run(args: argparse.Namespace) -> dict:
    if args.quick:
        apply_quick(args)
    timeout = 30.0 if args.quick else 60.0
    args.stall_timeout = args.stall_timeout or timeout
    args.stop_timeout = args.stop_timeout or timeout
    only = {k for k in args.only.split(",") if k}
    recorded = load_recorded()
    results = []
    with tempfile.TemporaryDirectory(prefix="wikistreams-latency-") as tmp:
        workroot = args.workdir or Path(tmp)
        for sc in scenarios(args):
            if only and sc.key not in only:
                continue
            print(f"[latency] {sc.key}: {sc.title}", flush=True)
            res = run_scenario(sc, args, workroot, recorded)
            print(f"[latency] {sc.key}: {_one_line(res)}", flush=True)
            results.append(res)
    return {"quick": args.quick, "scenarios": results}


def _one_line(res: dict) -> str:
    if "skipped" in res:
        return "skipped: " + res["skipped"]
    lat = res.get("latency", {})
    parts = [
        f"sent {res['sent']} delivered {res['delivered']} dlq {res['dead_lettered']} "
        f"lost {res['lost']} dup {res['duplicates']} exit {res.get('exit_code')}"
    ]
    for kind in ("non_entity", "entity"):
        s = lat.get(kind) or {}
        if s.get("n"):
            parts.append(f"{kind} p95 {s['p95']:.3f} s max {s['max']:.3f} s")
    parts += res["notes"]
    return "; ".join(parts)


def main(argv: list[str] | None = None) -> dict:
    from benchmarks import report

    return report.standalone("latency", parser, run, argv)


if __name__ == "__main__":
    main()
