"""One evaluation run: background + scenarios through the detector and both rules, scored."""

from __future__ import annotations

import heapq
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from benchmarks.trends_eval.background import background
from benchmarks.trends_eval.rules import Flag, LiveMonitor, WikimediaTrending, article_edit
from benchmarks.trends_eval.scenarios import Scenario, Timed, draw
from wikistreams.trends.detector import Detector, DetectorParams, PageSignal, StoryRef

METHODS = ("detector", "live_monitor", "wikimedia")
START = datetime(2026, 11, 2, tzinfo=timezone.utc)
EXPIRE_EVERY = 600.0


class DetectorMethod:
    """The detector as a method: every record that is not `cooling` is a flag."""

    def __init__(self, params: DetectorParams, resolve: Callable[[PageSignal], StoryRef]):
        self.detector = Detector(params, resolve)
        self.seconds = 0.0
        self.edits = 0

    def process(self, ts: float, event: dict) -> list[Flag]:
        began = time.perf_counter()
        records = self.detector.process(event)
        self.seconds += time.perf_counter() - began
        self.edits += 1
        return [(r.story_id, ts, r.score) for r in records if r.state != "cooling"]

    def expire(self, now: float) -> None:
        self.detector.expire(now)


@dataclass
class Stream:
    """What happened in one run, per method: flags in the measured period."""

    measure_from: float
    measure_to: float
    flags: dict[str, list[Flag]] = field(default_factory=lambda: defaultdict(list))
    fifth_edit: dict[str, float] = field(default_factory=dict)  # unit -> event time
    detector: DetectorMethod | None = None
    candidates_per_hour: float = 0.0


def _merge(scenarios: list[Scenario], bg: Iterator[Timed]) -> Iterator[Timed]:
    injected = sorted((e for s in scenarios for e in s.events), key=lambda x: x[0])
    return heapq.merge(bg, injected, key=lambda x: x[0])


def run(
    seed: int,
    warmup_h: float,
    hours: float,
    per_kind: dict[str, int],
    params: DetectorParams,
    session: float | None = None,
) -> tuple[Stream, list[Scenario]]:
    t0 = START.timestamp()
    measure_from = t0 + warmup_h * 3600
    end = measure_from + hours * 3600
    scenarios = draw(seed, t0, measure_from, end, per_kind) if per_kind else []
    refs = {page: ref for s in scenarios for page, ref in s.refs.items()}
    unit_of = {}
    onset = {s.unit: s.start for s in scenarios}
    for s in scenarios:
        for _, e in s.events:
            unit_of[f"{e['wiki']}:{e['title']}"] = s.unit

    def story_of(page: str) -> str:
        return refs[page].story_id if page in refs else page

    candidates: set[str] = set()

    def resolve(signal: PageSignal) -> StoryRef:
        if signal.ts >= measure_from:
            candidates.add(signal.page)
        return refs.get(signal.page) or StoryRef.of_page(signal)

    det = DetectorMethod(params, resolve)
    methods = {
        "detector": det,
        "live_monitor": LiveMonitor(story_of),
        "wikimedia": (WikimediaTrending(story_of)),
    }
    kwargs = {} if session is None else {"session": session}
    bg = background(START, warmup_h + hours, seed, **kwargs)
    out = Stream(measure_from, end, detector=det)
    counted: Counter[str] = Counter()
    next_expire = t0 + EXPIRE_EVERY
    for ts, event in _merge(scenarios, bg):
        if ts >= end:
            break
        if ts >= next_expire:
            for m in methods.values():
                m.expire(ts)
            next_expire = ts + EXPIRE_EVERY
        unit = unit_of.get(f"{event['wiki']}:{event['title']}")
        if unit and article_edit(event) and ts >= onset[unit]:
            counted[unit] += 1
            if counted[unit] == 5:
                out.fifth_edit[unit] = ts
        for name, method in methods.items():
            for flag in method.process(ts, event):
                if ts >= measure_from:
                    out.flags[name].append(flag)
    out.candidates_per_hour = len(candidates) / hours  # pages to resolve (cached after)
    return out, scenarios


@dataclass
class Scores:
    precision_at_10: float
    hours_scored: int
    recall: float
    decoys_flagged: float
    decoys_by_kind: dict[str, str]
    latency_p50: float | None
    latency_p95: float | None
    latencies: list[float]
    latency_by_unit: dict[str, float]
    background_per_hour: float
    missed: list[str]

    @property
    def f1(self) -> float:
        p, r = self.precision_at_10, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(stream: Stream, scenarios: list[Scenario], method: str) -> Scores:
    unit_of_story: dict[str, Scenario] = {}
    for s in scenarios:
        for story in s.story_ids:
            unit_of_story[story] = s
    flags = stream.flags.get(method, [])
    first: dict[str, float] = {}
    hourly: dict[int, dict[str, float]] = defaultdict(dict)
    background: set[str] = set()
    for story, ts, rank in flags:
        hour = int((ts - stream.measure_from) // 3600)
        hourly[hour][story] = max(rank, hourly[hour].get(story, rank))
        s = unit_of_story.get(story)
        if s is None:
            background.add(story)
        else:
            first[s.unit] = min(ts, first.get(s.unit, ts))
    precisions = []
    for stories in hourly.values():
        top = sorted(stories, key=lambda k: -stories[k])[:10]
        true = sum(1 for k in top if k in unit_of_story and unit_of_story[k].true)
        precisions.append(true / len(top))
    trues = [s for s in scenarios if s.true]
    decoys = [s for s in scenarios if not s.true]
    by_unit = {
        s.unit: first[s.unit] - stream.fifth_edit[s.unit]
        for s in trues
        if s.unit in first and s.unit in stream.fifth_edit
    }
    latencies = sorted(by_unit.values())
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in decoys:
        by_kind[s.kind][0] += s.unit in first
        by_kind[s.kind][1] += 1
    hours = (stream.measure_to - stream.measure_from) / 3600
    return Scores(
        precision_at_10=statistics.fmean(precisions) if precisions else 0.0,
        hours_scored=len(precisions),
        recall=sum(s.unit in first for s in trues) / len(trues) if trues else 0.0,
        decoys_flagged=sum(s.unit in first for s in decoys) / len(decoys) if decoys else 0.0,
        decoys_by_kind={k: f"{a}/{n}" for k, (a, n) in sorted(by_kind.items())},
        latency_p50=_quantile(latencies, 0.5),
        latency_p95=_quantile(latencies, 0.95),
        latencies=latencies,
        latency_by_unit=by_unit,
        background_per_hour=len(background) / hours,
        missed=[f"{s.unit} ({s.variant})" for s in trues if s.unit not in first],
    )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def hourly_new_flags(stream: Stream, method: str) -> list[int]:
    """New stories flagged in each hour of the measured period."""
    hours = round((stream.measure_to - stream.measure_from) / 3600)
    seen: set[str] = set()
    counts = [0] * hours
    for story, ts, _ in sorted(stream.flags.get(method, []), key=lambda f: f[1]):
        if story not in seen:
            seen.add(story)
            counts[min(hours - 1, int((ts - stream.measure_from) // 3600))] += 1
    return counts


def pooled(items: Iterable[Scores]) -> dict[str, float | None]:
    items = list(items)
    lat = sorted(x for s in items for x in s.latencies)
    p = statistics.fmean(s.precision_at_10 for s in items)
    r = statistics.fmean(s.recall for s in items)
    return {
        "precision_at_10": p,
        "recall": r,
        "f1": 2 * p * r / (p + r) if p + r else 0.0,
        "decoys_flagged": statistics.fmean(s.decoys_flagged for s in items),
        "latency_p50": _quantile(lat, 0.5),
        "latency_p95": _quantile(lat, 0.95),
        "background_per_hour": statistics.fmean(s.background_per_hour for s in items),
    }
