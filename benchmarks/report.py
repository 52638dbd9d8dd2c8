"""One markdown report (docs/benchmarks.md) from the latency and throughput results.

The issue's targets sit next to the measured figures with a pass/fail column, so a rerun after a
change answers "did it get better" without reading every table. The "Thread worker vs asyncio"
section is written by hand; a rerun keeps whatever is there.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from importlib import metadata
from datetime import datetime, timezone
from pathlib import Path

from benchmarks import harness
from wikistreams.producer.position import POSITION_MAX_BYTES

HAND_SECTION = "## Thread worker vs asyncio"
PLACEHOLDER = (
    "_To be filled in by hand: the enrichment worker on a thread against an asyncio design, "
    "measured with this harness (kept as is when `make bench` rewrites the report)._"
)
RSS_LIMIT_MB = 150.0


def context() -> dict:
    """When and on what the figures were measured (stored with them, so a re-render keeps it)."""
    return {
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="minutes"),
        "checkout": _checkout(),
    }


def standalone(key: str, parser, run, argv: list[str] | None) -> dict:
    """`python -m benchmarks.<one>`: run one benchmark, then its JSON and/or report."""
    args = parser().parse_args(argv)
    results = {**context(), key: run(args)}
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if args.report:
        write(args.report, results)
    return results


def write(path: Path, results: dict) -> str:
    previous = path.read_text("utf-8") if path.is_file() else ""
    text = render(results, _hand_section(previous))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    print(f"[report] written to {path}", flush=True)
    return text


def _hand_section(previous: str) -> str:
    match = re.search(rf"^{re.escape(HAND_SECTION)}\n(.*?)(?=^## |\Z)", previous, re.M | re.S)
    body = match.group(1).strip() if match else ""
    return body or PLACEHOLDER


def render(results: dict, hand_section: str = PLACEHOLDER) -> str:
    latency = results.get("latency")
    throughput = results.get("throughput")
    parts = [
        _header(results),
        _how_to_read(),
        _targets(latency, throughput),
        _latency(latency),
        _catchup(latency),
        _throughput(throughput),
        f"{HAND_SECTION}\n\n{hand_section}\n",
    ]
    return "\n".join(parts)


# --- header -----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _checkout() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=harness.ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--", "src/wikistreams/producer")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"`{commit}`" + (
        " with uncommitted changes in src/wikistreams/producer" if dirty else ""
    )


def _header(results: dict) -> str:
    import confluent_kafka

    versions = (
        f"Python {platform.python_version()}, confluent-kafka {metadata.version('confluent-kafka')}"
        f" (librdkafka {confluent_kafka.libversion()[0]})"
    )
    measured_at = results.get("measured_at")
    when = datetime.fromisoformat(measured_at) if measured_at else datetime.now(timezone.utc)
    return f"""# Producer benchmarks

- Measured: {when:%Y-%m-%d %H:%M} UTC by `make bench` (`python -m benchmarks`)
- Machine: {os.cpu_count()} cores ({_cpu_model()}), Linux {platform.release()}
- Software: {versions}; Kafka: the native broker at {harness.KAFKA}
- Producer: checkout {results.get("checkout") or _checkout()}

The producer runs as `python -m wikistreams.producer` (a subprocess configured by environment, as in
production) against local stand-ins for EventStreams (`benchmarks/load.py`: a paced, real-shaped
mix built from the recordings in `tests/data/recorded/recentchange`) and the Wikidata API
(`tests/standins/wikidata_api.py`, with an added answer delay), and the real Kafka.
"""


def _how_to_read() -> str:
    return """## How to read this

- **Latency** = Kafka record timestamp (CreateTime, stamped at `produce()`) minus the moment the
  stand-in wrote the event's SSE frame, joined on `event_id`. It covers the network read, parsing,
  enrichment and the producer's own queues, not Kafka's replication (acks) or linger. Record
  timestamps have millisecond resolution, so 0.000 means "within a millisecond".
- **Non-entity** events (no `wikidata_id`: other wikis, ~82 % of the mix) should never wait for
  the Wikidata API; **entity** edits (~18 %) wait for at most one API call. Their ids are fresh
  (the label cache always misses) and unknown to the stand-in, so they end as `not_found` after a
  real round trip; `unavailable` means the producer gave up waiting (or the API was down).
- The outage targets are checked over the whole outage run (before, during and after the API is
  down); a second table shows only the events sent while it was down.
- **Rates** are records / (last − first record timestamp), so interpreter start-up and shutdown
  do not count.
- The machine is small and shared: absolute figures move by tens of percent between runs. Compare
  ratios and figures measured in the **same run** (ceiling vs pipeline, API 0.3 s vs 0 s).
"""


# --- targets ------------------------------------------------------------------------------------


def _scenario(latency: dict | None, key: str) -> dict | None:
    for res in (latency or {}).get("scenarios", []):
        if res["scenario"]["key"] == key and "skipped" not in res:
            return res
    return None


def _lat(res: dict | None, kind: str, stat: str, section: str = "latency") -> float | None:
    if res is None:
        return None
    return ((res.get(section) or {}).get(kind) or {}).get(stat)


def _fmt_s(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f} s"


def _verdict(value: float | None, ok: bool | None) -> str:
    if value is None or ok is None:
        return "not measured"
    return "pass" if ok else "**FAIL**"


def _targets(latency: dict | None, throughput: dict | None) -> str:
    max_delay = float(harness.settings_default("enrich_max_delay_seconds", 2.0))
    rows = []

    def row(name: str, value: float | None, shown: str, goal: str, ok: bool | None) -> None:
        rows.append(f"| {name} | {shown} | {goal} | {_verdict(value, ok)} |")

    paced = _scenario(latency, "paced-0.3")
    for kind, stat, limit in (("non_entity", "p95", 0.25), ("entity", "p95", 1.5)):
        v = _lat(paced, kind, stat)
        label = "non-entity" if kind == "non_entity" else "entity"
        row(f"300 ev/s, API 0.3 s: {label} {stat}", v, _fmt_s(v), f"≤ {limit} s", _le(v, limit))
    outage = _scenario(latency, "outage")
    v = _lat(outage, "non_entity", "p95")
    row("outage: non-entity p95", v, _fmt_s(v), "≤ 0.25 s", _le(v, 0.25))
    v = _lat(outage, "entity", "p99")
    row(
        "outage: entity p99",
        v,
        _fmt_s(v),
        f"≤ ENRICH_MAX_DELAY_SECONDS + 1 = {max_delay + 1:g} s",
        _le(v, max_delay + 1),
    )
    runs = [r for r in (latency or {}).get("scenarios", []) if "skipped" not in r]
    if runs:
        lost = sum(r["lost"] + r["duplicates"] for r in runs)
        bad_exit = [r["scenario"]["key"] for r in runs if r.get("exit_code") != 0]
        shown = f"{lost} lost or duplicated in {len(runs)} runs"
        if bad_exit:
            shown += f"; exit ≠ 0: {', '.join(bad_exit)}"
        row("no event lost (sent = delivered + dead-lettered)", 0, shown, "0", not lost)
        row(
            "SIGTERM → exit code 0",
            0,
            f"{len(runs) - len(bad_exit)}/{len(runs)}",
            "all",
            not bad_exit,
        )
    ratio = _catchup_ratio(latency)
    row(
        "catch-up: non-entity rate, API 0.3 s / API 0 s",
        ratio,
        "n/a" if ratio is None else f"{ratio:.0%}",
        "≥ 70 %",
        None if ratio is None else ratio >= 0.7,
    )
    spans = (_scenario(latency, "backfill-0.3") or {}).get("span_seconds") or {}
    newest = max((v for v in spans.values() if v is not None), default=None)
    shown = "n/a"
    if newest is not None:
        shown = (
            f"{newest:.0f} s (events without an entity id: {spans.get('non_entity') or 0:.0f} s)"
        )
    row(
        "backfill of an hour (100k events, 18 % entity edits, new ids), API 0.3 s: newest in Kafka",
        newest,
        shown,
        "≤ 180 s",
        _le(newest, 180.0),
    )
    for key, label in (("ratio", "enrichment off"), ("ratio_warm", "warm label cache")):
        ratio = (throughput or {}).get(key)
        row(
            f"throughput: pipeline ({label}) / ceiling, median of rounds",
            ratio,
            "n/a" if ratio is None else f"{ratio:.1%}",
            "≥ 50 %",
            None if ratio is None else ratio >= 0.5,
        )
    ratio = (throughput or {}).get("ratio_transactions")
    row(
        "cost of exactly once: transactions on / off (enrichment off), median of rounds",
        ratio,
        "n/a" if ratio is None else f"{ratio:.1%} (cost {1 - ratio:.1%})",
        "≥ 80 % (cost ≤ 20 %)",
        None if ratio is None else ratio >= 0.8,
    )
    peak, where = _peak_rss(latency, throughput)
    row(
        "producer peak RSS (max over all runs)",
        peak,
        "n/a" if peak is None else f"{peak:.0f} MB ({where})",
        f"≤ {RSS_LIMIT_MB:.0f} MB",
        _le(peak, RSS_LIMIT_MB),
    )
    largest, where = _largest_position(latency)
    row(
        "largest position record (max over all runs)",
        largest,
        "n/a" if largest is None else f"{largest:,} bytes ({where})",
        f"≤ {POSITION_MAX_BYTES:,} bytes (POSITION_MAX_BYTES)",
        _le(largest, POSITION_MAX_BYTES),
    )
    return (
        "## Targets\n\n| target | measured | goal | result |\n|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )


def _le(value: float | None, limit: float) -> bool | None:
    return None if value is None else value <= limit


def _catchup_ratio(latency: dict | None) -> float | None:
    slow = (_scenario(latency, "catchup-0.3") or {}).get("rates", {}).get("non_entity")
    fast = (_scenario(latency, "catchup-0") or {}).get("rates", {}).get("non_entity")
    return slow / fast if slow and fast else None


def _peak_rss(latency: dict | None, throughput: dict | None) -> tuple[float | None, str]:
    peaks = [
        (r["peak_rss_mb"], r["scenario"]["key"])
        for r in (latency or {}).get("scenarios", [])
        if r.get("peak_rss_mb")
    ]
    peaks += [
        (r["peak_rss_mb"], r["name"])
        for r in (throughput or {}).get("runs", [])
        if r.get("peak_rss_mb")
    ]
    if not peaks:
        return None, ""
    return max(peaks)


def _largest_position(latency: dict | None) -> tuple[int | None, str]:
    """The largest position record any run committed, from the producer's stats lines."""
    sizes = [
        (r["position_bytes_max"], r["scenario"]["key"])
        for r in (latency or {}).get("scenarios", [])
        if r.get("position_bytes_max") is not None
    ]
    return max(sizes) if sizes else (None, "")


# --- latency -------------------------------------------------------------------------------------


def _stat_cells(summary: dict | None) -> str:
    s = summary or {}
    if not s.get("n"):
        return "0 | – | – | – | –"
    return f"{s['n']:,} | " + " | ".join(f"{s[k]:.3f}" for k in ("p50", "p95", "p99", "max"))


def _latency(latency: dict | None) -> str:
    if latency is None:
        return "## Latency\n\nNot run in this invocation (`python -m benchmarks.latency_bench`).\n"
    runs = latency["scenarios"]
    out = ["## Latency: SSE frame sent → Kafka record (seconds)\n"]
    if latency.get("quick"):
        out.append("**Quick (smoke) run: a few seconds per scenario; the figures mean little.**\n")
    out.append(
        "| scenario | events | n | p50 | p95 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|"
    )
    for res in runs:
        title = res["scenario"]["title"]
        if "skipped" in res:
            out.append(f"| {title} | – | – | – | – | – | skipped: {res['skipped']} |")
            continue
        for kind, label in (("non_entity", "non-entity"), ("entity", "entity")):
            out.append(f"| {title} | {label} | {_stat_cells(res['latency'].get(kind))} |")
    windows = [r for r in runs if r.get("outage_window")]
    if windows:
        out.append(
            "\nOnly the events sent while the API was down (the table above counts the whole run,"
            " including the recovery):\n"
        )
        out.append(
            "| scenario | events | n | p50 | p95 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|"
        )
        for res in windows:
            for kind, label in (("non_entity", "non-entity"), ("entity", "entity")):
                cells = _stat_cells(res["outage_window"].get(kind))
                out.append(f"| {res['scenario']['title']} | {label} | {cells} |")
    out.append("\n### Delivery, enrichment and shutdown\n")
    out.append(
        "| scenario | sent | delivered | dead-lettered | lost | duplicates | `enrichment_status` |"
        " API calls | exit | peak RSS | largest position |"
        "\n|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    )
    notes = []
    for res in runs:
        if "skipped" in res:
            continue
        statuses = ", ".join(f"{k} {v:,}" for k, v in sorted(res["status_counts"].items()))
        rss = f"{res['peak_rss_mb']:.0f} MB" if res.get("peak_rss_mb") else "n/a"
        exit_code = res.get("exit_code")
        exit_text = "killed" if res.get("killed") else str(exit_code)
        out.append(
            f"| {res['scenario']['title']} | {res['sent']:,} | {res['delivered']:,} |"
            f" {res['dead_lettered']:,} | {res['lost']:,} | {res['duplicates']:,} | {statuses} |"
            f" {res.get('api_calls', 0):,} | {exit_text} | {rss} | {_kb(res)} |"
        )
        extra = list(res.get("notes", []))
        if res["lost"]:
            positions = ", ".join(map(str, res.get("lost_positions", [])))
            extra.append(
                f"{res['lost']} never reached Kafka; the first at send positions {positions}"
            )
        if res.get("connections", 1) > 1:
            extra.append(f"{res['connections']} SSE connections (the producer reconnected)")
        if res.get("entity_mismatch"):
            extra.append(f"{res['entity_mismatch']} records with an unexpected `wikidata_id`")
        if res.get("unknown"):
            extra.append(f"{res['unknown']} records with an unknown `event_id`")
        notes += [f"- {res['scenario']['title']}: {n}" for n in extra]
    if notes:
        out.append("\nNotes:\n\n" + "\n".join(notes))
    return "\n".join(out) + "\n"


def _kb(res: dict) -> str:
    size = res.get("position_bytes_max")
    return "n/a" if size is None else f"{size / 1000:,.0f} KB"


def _catchup(latency: dict | None) -> str:
    runs = [
        r
        for r in (latency or {}).get("scenarios", [])
        if r["scenario"]["rate"] is None and "skipped" not in r
    ]
    if not runs:
        return ""
    fast = (_scenario(latency, "catchup-0") or {}).get("rates", {}).get("non_entity")
    out = [
        "## Catch-up: delivery rate when the stream is ahead of the producer\n",
        "The load stand-in sends every event as fast as the producer reads (a backlog after a"
        " restart or a bot burst). Rates in records/s between the first and the last record.\n",
        "| scenario | events | non-entity ev/s | entity ev/s | all ev/s | non-entity vs API 0 s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for res in runs:
        rates = res["rates"]
        cells = [_rate(rates.get("non_entity")), _rate(rates.get("entity")), _rate(res["rate_all"])]
        ratio = rates.get("non_entity")
        rel = f"{ratio / fast:.0%}" if ratio and fast else "–"
        out.append(
            f"| {res['scenario']['title']} | {res['sent']:,} | {' | '.join(cells)} | {rel} |"
        )
    out.append(
        "\nWith ENRICHMENT_ENABLED=false entity edits are plain events (no API, no cache); the"
        " row is the reference for what the stream alone costs."
    )
    return "\n".join(out) + "\n"


def _rate(value: float | None) -> str:
    return "–" if not value else f"{value:,.0f}"


# --- throughput ------------------------------------------------------------------------------


def _throughput(throughput: dict | None) -> str:
    if throughput is None:
        return (
            "## Throughput vs ceiling\n\nNot run in this invocation "
            "(`python -m benchmarks.producer_bench`).\n"
        )
    t = throughput
    ceiling = t.get("ceiling")
    out = [
        "## Throughput vs ceiling\n",
        f"Input: {t['events']:,} real-shaped events (`.{t['format']}`, {t['entity_share']:.0%}"
        " Wikidata entity edits with their recorded ids, unique `meta.id`s), replayed flat out."
        " The ceiling is this stream through the source's frame parser, `json.loads` and"
        " `produce()` (the producer's Kafka settings) in one process; the pipeline is"
        " `python -m wikistreams.producer` replaying the same file. Medians of"
        f" {t['repeat']} round(s); records/s between the first and the last record timestamp.\n",
        "| run | records/s | vs ceiling | peak RSS | notes |",
        "|---|---:|---:|---:|---|",
    ]
    rows = (
        ("ceiling (one process, no validation)", "ceiling", None),
        ("producer, ENRICHMENT_ENABLED=false", "enrichment-off", "enrichment_off"),
        (
            "producer, ENRICHMENT_ENABLED=false, KAFKA_TRANSACTIONS=false",
            "no-transactions",
            "no_transactions",
        ),
        ("producer, warm label cache", "warm-cache", "warm_cache"),
        ("producer, cold cache (first run, API stand-in answering at once)", "cache-fill", None),
    )
    for label, name, key in rows:
        runs = [r for r in t["runs"] if r["name"] == name]
        rate = t.get(key) if key else (t.get("ceiling") if name == "ceiling" else None)
        if name == "cache-fill":
            rate = t.get("cold_cache")
        rel = f"{rate / ceiling:.0%}" if rate and ceiling else "–"
        rss = [r["peak_rss_mb"] for r in runs if r.get("peak_rss_mb")]
        notes = _run_notes(runs, t["events"])
        rss_text = f"{max(rss):.0f} MB" if rss else "–"
        out.append(f"| {label} | {_rate(rate)} | {rel} | {rss_text} | {notes} |")
    rounds = t.get("rounds") or []
    if rounds:
        out.append(
            "\nPer round (the ceiling and both pipeline runs measured back to back; the targets"
            " use the median of these ratios, because the machine's speed drifts between"
            ' rounds; "transactions" is enrichment off with transactions over the same without):'
            "\n\n| round | ceiling | enrichment off | ratio | warm cache | ratio"
            " | no transactions | transactions |\n|---:|---:|---:|---:|---:|---:|---:|---:|"
        )
        for i, r in enumerate(rounds, 1):
            out.append(
                f"| {i} | {_rate(r.get('ceiling'))} | {_rate(r.get('enrichment-off'))} |"
                f" {_pct(r.get('ratio'))} | {_rate(r.get('warm-cache'))} |"
                f" {_pct(r.get('ratio_warm'))} | {_rate(r.get('no-transactions'))} |"
                f" {_pct(r.get('ratio_transactions'))} |"
            )
        out.append(
            f"| median | | | **{_pct(t.get('ratio'))}** | | **{_pct(t.get('ratio_warm'))}** |"
            f" | **{_pct(t.get('ratio_transactions'))}** |"
        )
    stages = t.get("stages") or {}
    if stages:
        out.append(
            "\nIn-process stage costs on the same input (events/s, one thread, no Kafka), to see"
            " where the time goes:\n\n| stage | events/s |\n|---|---:|"
        )
        out += [f"| {name} | {_rate(rate)} |" for name, rate in stages.items()]
    return "\n".join(out) + "\n"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _run_notes(runs: list[dict], events: int) -> str:
    """What went wrong in which round; the ceiling's wall-clock rate for comparison."""
    if runs and runs[0]["name"] == "ceiling":
        walls = sorted(r["rate_wall"] for r in runs if r.get("rate_wall"))
        return (
            f"wall clock incl. connect and flush: {walls[len(walls) // 2]:,.0f}/s" if walls else ""
        )
    notes = []
    for n, r in enumerate(runs, 1):
        where = f"run {n}: " if len(runs) > 1 else ""
        got = r["delivered"] + r.get("dead_lettered", 0)
        if got != events:
            notes.append(f"{where}{got:,} of {events:,} events in Kafka")
        if r.get("exit_code") not in (0, None):
            notes.append(f"{where}exit {r['exit_code']}")
        notes += [where + note for note in r.get("notes", [])]
    calls = [r["api_calls"] for r in runs if "api_calls" in r]
    if calls:
        notes.append(f"API calls: {', '.join(map(str, calls))}")
    return "; ".join(notes)
