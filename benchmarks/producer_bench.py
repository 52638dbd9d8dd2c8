"""Throughput: the producer process against the ceiling of one Python process, same input.

The ceiling is the least per-event work any Python producer of this stream must do: parse the
frame with the source's own parser (`producer.source.FileSource`), `json.loads` it, and
`Producer.produce()` its bytes with the producer's own Kafka settings, polling and flushing,
all in one process. The pipeline is `python -m wikistreams.producer` replaying the same file
(`SSE_URL=file://...`, `REPLAY_SPEED=fast`, `REPLAY_AT_END=exit`), once with enrichment off and
once with a warm label cache (a first run fills `CACHE_DB_PATH`). Both rates are records / (last
- first Kafka record timestamp), so start-up does not count; the ratio between them, measured in
the same run, is the figure to watch (the machine is noisy, the ratio much less so).

The input is the real recordings repeated with unique `meta.id`s (`benchmarks/load.py`'s mix,
entity edits keeping their recorded ids so the cache can warm) to ~100k events, so the rates
are stable. Peak RSS of each producer process comes from `wait4()`.

    python -m benchmarks.producer_bench [--events 100000] [--report docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from benchmarks import harness
from wikistreams.producer.sink import producer_config
from wikistreams.producer.source import FileSource
from benchmarks.load import DT_MARK, ENTITY_SHARE, EventMix, frame, iso_ms
from tests.standins.wikidata_api import WikidataStandIn

EXIT_GRACE = 30.0  # seconds a finished replay may take to flush and exit
REPLAY_RATE = 300.0  # events/s of event time in the generated file (only meta.dt depends on it)


def build_input(path: Path, events: int, entity_share: float, seed: int | None) -> None:
    """A recording of `events` real-shaped events as `.jsonl` or `.sse` (by the suffix)."""
    mix = EventMix(entity_share, seed=seed, fresh_entities=False)
    base = time.time() - events / REPLAY_RATE
    with path.open("wb") as fh:
        for i, event in enumerate(mix.iter(events)):
            epoch = base + i / REPLAY_RATE
            if path.suffix == ".sse":
                fh.write(frame(event, epoch))
            else:
                fh.write(event.data.replace(DT_MARK.encode(), iso_ms(epoch).encode()) + b"\n")


def _frames(path: Path) -> FileSource:
    return FileSource(path, "fast", None, threading.Event())


# --- the ceiling ----------------------------------------------------------------------------------


def run_ceiling(path: Path) -> dict:
    """Source parser + json.loads + produce() + poll/flush in this process."""
    config = producer_config(
        harness.KAFKA,
        harness.settings_default("kafka_compression", "zstd"),
        harness.settings_default("kafka_linger_ms", 50),
    )
    topic = harness.new_topic_name("ceiling")
    harness.create_topics(topic)
    try:
        producer = Producer(config)
        sent = 0
        started = time.perf_counter()
        for raw in _frames(path):
            event = json.loads(raw.data)
            key = f"{event['wiki']}:{event['title']}".encode("utf-8")
            while True:
                try:
                    producer.produce(topic, raw.data, key)
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            sent += 1
        undelivered = producer.flush(120)
        wall = time.perf_counter() - started
        stamps = [r.timestamp_ms for r in harness.read_topic(topic)]
    finally:
        harness.delete_topics(topic)
    return {
        "name": "ceiling",
        "sent": sent,
        "delivered": len(stamps),
        "undelivered": undelivered,
        "rate": harness.rate_between(stamps),
        "rate_wall": sent / wall if wall else None,
    }


# --- the producer process -------------------------------------------------------------------------


def run_pipeline(
    name: str, path: Path, workdir: Path, cache: Path, args: argparse.Namespace, **settings: str
) -> dict:
    """One replay of `path` by the producer process, to its own topic; it should exit 0."""
    topic = harness.new_topic_name(name)
    harness.create_topics(topic, f"{topic}.dlq")
    producer = harness.ProducerProcess(
        workdir / topic,  # a new topic, so a new position: a second replay starts over
        topic,
        path.as_uri(),
        REPLAY_SPEED="fast",
        REPLAY_AT_END="exit",
        CACHE_DB_PATH=str(cache),
        **settings,
    )
    notes: list[str] = []
    counter = harness.TopicCounter(topic, f"{topic}.dlq")
    try:
        producer.start()
        _wait_replay(producer, counter, args, notes)
        exit_code = producer.stop(60)
        stamps = [r.timestamp_ms for r in harness.read_topic(topic)]
        dead = len(harness.read_topic(f"{topic}.dlq"))
    finally:
        counter.close()
        if producer.running():
            producer.stop(5)
        harness.delete_topics(topic, f"{topic}.dlq")
    result = {
        "name": name,
        "delivered": len(stamps),
        "dead_lettered": dead,
        "rate": harness.rate_between(stamps),
        "exit_code": exit_code,
        "peak_rss_mb": producer.peak_rss_mb,
        "notes": notes,
    }
    if exit_code != 0:
        result["log_tail"] = producer.log_tail()
    return result


def _wait_replay(producer, counter, args, notes: list[str]) -> None:
    """Until the producer exits at the end of the file; bounded, so a stuck producer is stopped.

    It gets `EXIT_GRACE` seconds after Kafka holds every event, and `args.stall_timeout` without
    any new record.
    """
    deadline = time.monotonic() + args.run_timeout
    last, last_progress, complete_since = -1, time.monotonic(), None
    while producer.wait(0.5) is None:
        now, count = time.monotonic(), counter.count()
        if count != last:
            last, last_progress = count, now
        if count >= args.events:
            complete_since = complete_since or now
            if now - complete_since > EXIT_GRACE:
                notes.append(f"did not exit {EXIT_GRACE:g} s after the last record: stopped")
                return
        elif now - last_progress > args.stall_timeout:
            notes.append(f"stalled at {count:,} records for {args.stall_timeout:g} s: stopped")
            return
        if now > deadline:
            notes.append(f"still running after {args.run_timeout:g} s: stopped")
            return


# --- in-process stage costs (where the time goes) -------------------------------------------------


def stage_rates(path: Path, limit: int) -> dict[str, float | None]:
    """Events/s of the in-process stages (frame parse over the whole input, the rest over the
    first `limit` frames). Decode and serialise call producer internals; their rows are left
    out, with a note, when those functions change shape."""
    started = time.perf_counter()
    total = sum(1 for _ in _frames(path))
    out: dict[str, float | None] = {
        "frame parse (FileSource)": total / (time.perf_counter() - started)
    }
    datas = []
    for raw in _frames(path):
        datas.append(raw.data)
        if len(datas) >= limit:
            break

    def timed(name: str, fn) -> None:
        started = time.perf_counter()
        for data in datas:
            fn(data)
        out[name] = len(datas) / (time.perf_counter() - started)

    timed("json.loads", json.loads)
    try:
        from wikistreams.producer.decode import decode_event
        from wikistreams.producer.events import EnrichedEvent

        timed("decode + validate (producer.decode)", decode_event)
        timed(
            "decode + validate + serialise (EnrichedEvent)",
            lambda d: EnrichedEvent.from_change(decode_event(d)).model_dump_json(),
        )
    except (ImportError, AttributeError, TypeError) as exc:
        out[f"decode/serialise: skipped, {type(exc).__name__}: {exc}"] = None
    return out


# --- command line ---------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=100_000, help="size of the replayed input")
    p.add_argument("--format", choices=["jsonl", "sse"], default="jsonl", help="input file type")
    p.add_argument("--repeat", type=int, default=3, help="rounds of ceiling + pipeline runs")
    p.add_argument("--entity-share", type=float, default=ENTITY_SHARE)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--run-timeout", type=float, default=600.0, help="cap per producer run")
    p.add_argument("--stall-timeout", type=float, default=60.0, help="cap without new records")
    p.add_argument("--quick", action="store_true", help="small input, one round")
    p.add_argument("--report", type=Path, help="write the markdown report here")
    p.add_argument("--json", type=Path, help="write the raw results here")
    return p


def run(args: argparse.Namespace) -> dict:
    if args.quick:
        args.events, args.repeat = 5000, 1
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="wikistreams-throughput-") as tmp:
        tmpdir = Path(tmp)
        path = tmpdir / f"input.{args.format}"
        build_input(path, args.events, args.entity_share, args.seed)
        stages = stage_rates(path, min(args.events, 20_000))
        api = WikidataStandIn().start()
        cache = tmpdir / "labels.sqlite3"
        try:
            print("[throughput] filling the label cache", flush=True)
            fill = run_pipeline(
                "cache-fill",
                path,
                tmpdir,
                cache,
                args,
                WIKIDATA_API_URL=api.url,
            )
            fill["api_calls"] = len(api.behaviour.requests)
            runs.append(fill)
            for round_ in range(args.repeat):
                print(f"[throughput] round {round_ + 1}/{args.repeat}", flush=True)
                runs.append(run_ceiling(path))
                runs.append(
                    run_pipeline(
                        "enrichment-off",
                        path,
                        tmpdir,
                        cache,
                        args,
                        ENRICHMENT_ENABLED="false",
                    )
                )
                # The same run without Kafka transactions (idempotent, position after a flush):
                # what exactly once costs, measured beside its transactional twin.
                runs.append(
                    run_pipeline(
                        "no-transactions",
                        path,
                        tmpdir,
                        cache,
                        args,
                        ENRICHMENT_ENABLED="false",
                        KAFKA_TRANSACTIONS="false",
                    )
                )
                calls = len(api.behaviour.requests)
                warm = run_pipeline(
                    "warm-cache", path, tmpdir, cache, args, WIKIDATA_API_URL=api.url
                )
                warm["api_calls"] = len(api.behaviour.requests) - calls
                runs.append(warm)
                print(f"[throughput] {_one_line(runs[-4:])}", flush=True)
        finally:
            api.stop()
    return summarise(args, runs, stages)


def _median(runs: list[dict], name: str) -> float | None:
    rates = [r["rate"] for r in runs if r["name"] == name and r.get("rate")]
    return statistics.median(rates) if rates else None


def per_round(runs: list[dict]) -> list[dict]:
    """Each round's pipeline rates over the ceiling measured just before them.

    The machine's speed drifts by tens of percent within a run (other tenants, CPU boost), so a
    ratio between neighbouring measurements is steadier than one between separate medians.
    """
    rounds, current = [], None
    for r in runs:
        if r["name"] == "ceiling":
            current = {"ceiling": r.get("rate")}
            rounds.append(current)
        elif current is not None and r["name"] in (
            "enrichment-off",
            "no-transactions",
            "warm-cache",
        ):
            current[r["name"]] = r.get("rate")
    for r in rounds:
        for name, key in (("enrichment-off", "ratio"), ("warm-cache", "ratio_warm")):
            rate, ceiling = r.get(name), r.get("ceiling")
            r[key] = rate / ceiling if rate and ceiling else None
        with_tx, without = r.get("enrichment-off"), r.get("no-transactions")
        r["ratio_transactions"] = with_tx / without if with_tx and without else None
    return rounds


def summarise(args: argparse.Namespace, runs: list[dict], stages: dict) -> dict:
    ceiling = _median(runs, "ceiling")
    off, warm, cold, no_tx = (
        _median(runs, n) for n in ("enrichment-off", "warm-cache", "cache-fill", "no-transactions")
    )
    rounds = per_round(runs)

    def median_ratio(key: str) -> float | None:
        values = [r[key] for r in rounds if r.get(key)]
        return statistics.median(values) if values else None

    return {
        "events": args.events,
        "format": args.format,
        "repeat": args.repeat,
        "entity_share": args.entity_share,
        "ceiling": ceiling,
        "enrichment_off": off,
        "warm_cache": warm,
        "cold_cache": cold,
        "ratio": median_ratio("ratio"),
        "ratio_warm": median_ratio("ratio_warm"),
        "no_transactions": no_tx,
        # enrichment off, with transactions / without: 1 - this is what exactly once costs.
        "ratio_transactions": median_ratio("ratio_transactions"),
        "ratio_of_medians": off / ceiling if off and ceiling else None,
        "ratio_warm_of_medians": warm / ceiling if warm and ceiling else None,
        "rounds": rounds,
        "stages": stages,
        "runs": runs,
    }


def _one_line(runs: list[dict]) -> str:
    return "; ".join(
        f"{r['name']} {r['rate'] or 0:,.0f} ev/s ({r['delivered']:,} records)" for r in runs
    )


def main(argv: list[str] | None = None) -> dict:
    from benchmarks import report

    return report.standalone("throughput", parser, run, argv)


if __name__ == "__main__":
    main()
