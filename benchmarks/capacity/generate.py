"""Days of live-like *enriched* records for capacity tests (Druid, an embedded database).

Each record is one message of the enriched topic: exactly the fields of
`producer.events.EnrichedEvent`, `event_time` in `format_event_time`'s form
(`YYYY-MM-DDTHH:MM:SS.mmmZ`). Records come in time order, spread evenly over the period with a
random offset inside each slot (no diurnal cycle). Same arguments, same records.

    records(start, days, rate=30.0, seed=1) -> Iterator[dict]
    write_kafka(bootstrap, topic, start, days, rate=30.0, seed=1, partitions=3) -> dict
    write_parquet(path, start, days, rate=30.0, seed=1) -> dict

    python -m benchmarks.capacity.generate --days 1 --kafka 127.0.0.1:9092 --topic T
    python -m benchmarks.capacity.generate --days 1 --parquet out.parquet
    python -m benchmarks.capacity.generate --days 0.1 [--summary]   (generate only: rate, counts)

Figures and where they come from. "Recordings" are `tests/data/recorded/recentchange`, read by
`benchmarks.load._recorded_events()` (origins in `tests/data/recorded/SOURCES.md`). Every one of
them was filtered to one wiki by whoever recorded it (enwiki edits: polars-book; wikidatawiki:
editgroups); the only unfiltered sample, 10 live frames of 2025, had no licence and was removed
(issue 13). `recorded_figures()` recomputes the recorded figures; a unit test keeps them equal
to these.

- Rate: 30 events/s by default (`rate=`), one day = 2,592,000 records. The issue and
  docs/deploy.md give 21-34 events/s for the live stream.
- Entity edits: 18 % of records (`benchmarks.load.ENTITY_SHARE`, the issue's figure; the
  recordings cannot tell, see benchmarks/load.py). They are wikidatawiki item pages (ns 0,
  `Q<n>`, exactly what `producer.wikidata.entity_id_for` enriches; the recordings have no
  Property: or Lexeme: titles). Type, bot flag, minor/patrolled, lengths, revision gap, comment
  and log type come together from one of the 5,690 recorded wikidatawiki entity events: edit
  98.1 %, new 1.3 %, log 0.6 %, bot 80.4 %. Created items (`new`) get fresh ids above
  `QID_RANGE`, the others ids spread over Q1..Q130,000,000 (an estimate of today's range).
- Enrichment of entity edits: `not_found` for 1.3 % of the items (2 missing of the 158 ids of
  the recorded wbgetentities answers: wptools' labels_* and the DERIVED ko/en file),
  `unavailable` for 0.5 % of the edits (an assumption: nothing recorded shows how many lookups
  fail), else `enriched`. The en label is one of the 147 recorded en labels (wptools; every
  recorded found entity has one); ko label and descriptions are those of one of the 10 found
  entities of the DERIVED ko/en file, of which 8 have a ko label, 8 an en and 4 a ko
  description. Those are famous items chosen for their Korean labels, so ko is overrepresented:
  conservative for row sizes. Labels get a number of the item's, so their distinct count
  follows the Q-ids. Every other record is `not_applicable` with null wikidata fields.
- Other records (82 %): the types and bot share of the 100 recorded events of other wikis
  (all enwiki edits, 2 of them by bots: 2 %) with the log share of the 5,705 wikidatawiki
  recordings (34 events): edit 99.4 %, log 0.6 %. A known gap: the live stream also carries
  `categorize` and `new` events of other wikis and more bots, which no licensed recording
  shows; edits carry lengths, revisions and comments, so rows are, if anything, larger.
  Namespace, minor, patrolled, lengths, revision gap and comment come together from a recorded
  event of that type on another wiki than wikidatawiki (edit: 100 events), or on any wiki where
  there are fewer than 3 (log: 34).
- Wikis: 920 in all ("over 900 wikis", issue): wikidatawiki with the entity edits only (99.7 %
  of the recorded wikidatawiki events are entity edits) and 919 for the rest with a Zipf share
  (exponent 1): first the recorded wikis in the order of their recorded counts (enwiki only),
  then a synthetic tail of two-letter codes
  (`aawiki`, `abwiki`, ..., then `aawiktionary`, ...).
- Repetition: titles, Q-ids and editors follow Zipf-like ranks over a stable head and a tail
  that drifts with time (new pages, items and accounts every day, hot first, then fading), see
  `Popularity`. Daily distinct counts at 30/s are estimates for the issue's "hundreds of
  thousands of distinct titles and editors a day", split as we chose: ~400k titles a day
  (~250k pages of the other wikis + the Q-ids), ~150k Q-ids, ~90k editors (300 bot accounts,
  the rest people and IPs). Measured for one day from 2026-11-01 (seed 1, 2026-11-30, after
  issue 13's change of the recordings): 397,571 titles, 154,906 Q-ids, 89,546 editors; for seven
  days 1,656,462 titles (4.2x), 755,125 Q-ids and 269,698 editors: yesterday's partly come back.
  `--summary` measures them; the constants `TITLES`, `QIDS`, `HUMANS`, `BOTS` were set with it.
  Title texts are recorded titles (of other wikis) and the recorded en labels, with a number
  that makes each page's title its own; editor names are the recorded ones, then numbered
  variants, and 13.5 % IP addresses for human editors (as among the recorded non-bot editors).
- Speed (2 cores, 2026-11-30): ~100k records/s generated on one core (7 days in ~3-4 min),
  `write_kafka` ~44k records/s into the local broker, `write_parquet` ~50k records/s.
- Ids: `event_id` uuid4-shaped; `rc_id` and `revision_new` count up from the highest recorded
  ones at `EPOCH` (so periods generated separately continue each other), `revision_old` is
  `revision_new` minus the recorded gap.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import orjson

from benchmarks.load import ENTITY_SHARE, WIKIDATA, _recorded_events
from wikistreams.producer.events import EnrichedEvent
from wikistreams.producer.wikidata import entity_id_for
from tests.standins import data_dir

DEFAULT_RATE = 30.0
FIELDS = tuple(EnrichedEvent.model_fields)
DAY_MS = 86_400_000
# Drift and counters count from this fixed day: rc_id, revision and creation ids of a period
# start where those of the period before it, at the same rate, ended.
EPOCH = datetime(2025, 8, 29, tzinfo=timezone.utc)
CHUNK = 4096  # records per batch of categorical draws

WIKI_COUNT = 920  # with wikidatawiki
WIKI_EXPONENT = 1.0
MIN_TEMPLATES = 3  # fewer recorded events of a type on other wikis: use all wikis' events
UNAVAILABLE_SHARE = 0.005
QID_RANGE = 130_000_000
SERVER = {WIKIDATA: "www.wikidata.org"}
TAIL_PROJECTS = (("wiki", "wikipedia.org"), ("wiktionary", "wiktionary.org"))


@dataclass(frozen=True)
class Popularity:
    """Zipf-like ranks 1..universe (`exponent` != 1); ranks above `head` drift with time.

    The rank is drawn by the inverse of the continuous Zipf CDF (one `**` per draw). A tail
    rank r at day t (since `EPOCH`) names the page
    `head + 1 + (universe - r + int(t * drift)) % cycle`: every day `drift` new pages enter at
    the top of the tail and as many leave at its bottom; names come round again after a year.
    Time counts from a fixed epoch, so separately generated periods continue each other.
    """

    universe: int
    exponent: float
    head: int
    drift: float  # new tail entries per day

    def scaled(self, share: float) -> Popularity:
        return Popularity(
            max(2, round(self.universe * share)),
            self.exponent,
            round(self.head * share),
            self.drift * share,
        )

    @property
    def params(self) -> tuple[float, float, int, int, float, int]:
        """(c, e, head, universe, drift, cycle) for the hot loop's `int((1 + u * c) ** e)`."""
        one_minus = 1.0 - self.exponent
        c = self.universe**one_minus - 1.0
        cycle = self.universe + int(365 * self.drift)
        return c, 1.0 / one_minus, self.head, self.universe, self.drift, cycle


# Set with `--summary` for the daily distinct counts in the module docstring (at 30/s).
TITLES = Popularity(universe=195_000, exponent=1.0001, head=19_500, drift=110_000)
QIDS = Popularity(universe=200_000, exponent=0.9, head=1_000, drift=100_000)
HUMANS = Popularity(universe=70_000, exponent=1.0001, head=7_000, drift=30_000)
BOTS = Popularity(universe=300, exponent=1.3, head=300, drift=0.0)

_CANONICAL_NS = {
    1: "Talk:",
    2: "User:",
    3: "User talk:",
    4: "Project:",
    5: "Project talk:",
    6: "File:",
    7: "File talk:",
    8: "MediaWiki:",
    9: "MediaWiki talk:",
    10: "Template:",
    11: "Template talk:",
    12: "Help:",
    13: "Help talk:",
    14: "Category:",
    15: "Category talk:",
}
_IP = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]*:[0-9a-fA-F:]+)$")


@dataclass
class Model:
    """Everything taken from the recordings once, in the shapes the hot loop wants."""

    shapes: list[tuple]
    shape_cum: list[float]
    wikis: list[tuple[str, str]]  # (wiki, server_name) of the non-entity wikis, by rank
    wiki_cum: list[float]
    title_bases: list[str]
    ns_prefix: dict[int, str]
    bot_names: list[str]
    human_names: list[str]
    ip_permille: int
    labels_en: list[str]
    entities: list[tuple[str | None, str | None, str | None]]  # (ko label, en/ko description)
    permille: dict[str, int]  # not_found, label_en
    rc_base: int
    revision_base: int
    max_gap: int
    ns_shares: dict[int, float]  # of the non-entity records
    figures: dict


def _shape(event: dict, entity: bool, bot: bool) -> tuple:
    length = event.get("length") or {}
    revision = event.get("revision") or {}
    old, new = length.get("old"), length.get("new")
    rev_old, rev_new = revision.get("old"), revision.get("new")
    if rev_new is None:
        rev_kind, gap = 0, 0
    elif rev_old is None:
        rev_kind, gap = 1, 0
    else:
        rev_kind, gap = 2, rev_new - rev_old
    return (
        entity,
        event["type"],
        0 if entity else event["namespace"],
        bot,
        event.get("minor"),
        event.get("patrolled"),
        old,
        new,
        None if new is None else new - (old or 0),
        rev_kind,
        gap,
        event.get("comment") or "",
        event.get("log_type"),
        event.get("log_action"),
    )


def _labels() -> tuple[dict, list[str], int, int]:
    """(DERIVED ko/en entities, wptools en labels, missing ids, all ids) of the recordings."""
    wikidata = data_dir() / "wikidata"
    derived = json.loads(
        (wikidata / "DERIVED_wbgetentities_labels_descriptions_ko_en.json").read_text()
    )["entities"]
    en, ids, missing = [], set(), 0
    for path in sorted((wikidata / "wptools").glob("labels_*.response.json")):
        for key, entity in json.loads(path.read_text())["entities"].items():
            ids.add(key)
            missing += "missing" in entity
            label = entity.get("labels", {}).get("en")
            if label:
                en.append(label["value"])
    for key, entity in derived.items():
        if key not in ids:
            ids.add(key)
            missing += "missing" in entity
    return derived, sorted(set(en)), missing, len(ids)


def _tail_wikis(count: int, taken: set[str]) -> list[tuple[str, str]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    codes = [a + b for a in letters for b in letters]
    out = []
    for suffix, domain in TAIL_PROJECTS:
        for code in codes:
            if len(out) == count:
                return out
            if code + suffix not in taken:
                out.append((code + suffix, f"{code}.{domain}"))
    raise ValueError(f"cannot name {count} synthetic wikis")


def _permille(part: int, whole: int) -> int:
    return round(1000 * part / whole) if whole else 0


@lru_cache(maxsize=1)
def model() -> Model:
    events = _recorded_events()
    entity = [e for e in events if entity_id_for(e["wiki"], e["namespace"], e["title"])]
    others = [e for e in events if e["wiki"] != WIKIDATA]
    wikidata = [e for e in events if e["wiki"] == WIKIDATA]

    # Types and bots of the non-entity records: the recorded events of the other wikis (+ the
    # log share of wikidatawiki). No licensed recording is unfiltered (SOURCES.md).
    other_types = Counter(e["type"] for e in others)
    log_share = sum(e["type"] == "log" for e in wikidata) / len(wikidata)
    type_share = {t: (1 - log_share) * n / len(others) for t, n in other_types.items()}
    type_share.setdefault("log", log_share)
    bot_share = sum(bool(e.get("bot")) for e in others) / len(others)

    shapes, weights, pools = [], [], {}
    for event in entity:
        shapes.append(_shape(event, True, bool(event.get("bot"))))
        weights.append(ENTITY_SHARE / len(entity))
    for kind, share in sorted(type_share.items()):
        pool = [e for e in others if e["type"] == kind]
        if len(pool) < MIN_TEMPLATES:
            pool = [e for e in events if e["type"] == kind]
        pools[kind] = len(pool)
        for event in pool:
            for bot, bot_weight in ((True, bot_share), (False, 1 - bot_share)):
                shapes.append(_shape(event, False, bot))
                weights.append((1 - ENTITY_SHARE) * share * bot_weight / len(pool))

    counts = Counter(e["wiki"] for e in others)
    head = sorted(counts, key=lambda w: (-counts[w], w))
    servers = {e["wiki"]: e["server_name"] for e in events}
    wikis = [(w, servers[w]) for w in head]
    wikis += _tail_wikis(WIKI_COUNT - 1 - len(wikis), set(servers))

    prefixes = dict(_CANONICAL_NS)
    for e in sorted(events, key=lambda e: e["title"]):
        if e["namespace"] and e["namespace"] not in prefixes and ":" in e["title"]:
            prefixes[e["namespace"]] = e["title"].split(":", 1)[0] + ":"
    derived, labels_en, missing, ids = _labels()
    bases = set(labels_en)
    for e in others:
        title = e["title"]
        if e["namespace"] and ":" in title:
            title = title.split(":", 1)[1]
        bases.add(title)

    users = Counter((e["user"], bool(e.get("bot"))) for e in events if e.get("user"))
    by_count = sorted(users, key=lambda u: (-users[u], u[0]))
    bots = [name for name, bot in by_count if bot]
    humans = [name for name, bot in by_count if not bot]
    found = [e for e in derived.values() if "missing" not in e]

    def text(entity: dict, kind: str, lang: str) -> str | None:
        value = entity.get(kind, {}).get(lang)
        return value["value"] if value else None

    entities = [
        (text(e, "labels", "ko"), text(e, "descriptions", "en"), text(e, "descriptions", "ko"))
        for _, e in sorted(derived.items())
        if "missing" not in e
    ]
    permille = {
        "not_found": _permille(missing, ids),
        "label_en": _permille(sum(bool(text(e, "labels", "en")) for e in found), len(found)),
    }
    entity_types = Counter(e["type"] for e in entity)
    figures = {
        "recorded_events": len(events),
        "entity_templates": len(entity),
        "entity_types": {t: round(n / len(entity), 3) for t, n in entity_types.items()},
        "entity_bot_share": round(sum(bool(e.get("bot")) for e in entity) / len(entity), 3),
        "wikidatawiki_events": len(wikidata),
        "wikidatawiki_log_events": round(log_share * len(wikidata)),
        "other_events": len(others),
        "other_types": dict(other_types),
        "other_bots": round(bot_share * len(others)),
        "other_type_shares": {t: round(s, 3) for t, s in sorted(type_share.items())},
        "templates_per_type": pools,
        "head_wikis": head,
        "wikis": len(wikis) + 1,
        "label_ids": ids,
        "label_ids_missing": missing,
        "permille": permille,
        "found_entities": len(entities),
        "with": {
            name: sum(e[i] is not None for e in entities)
            for i, name in enumerate(("label_ko", "description_en", "description_ko"))
        },
        "labels_en": len(labels_en),
        "ip_permille": _permille(sum(bool(_IP.match(u)) for u in humans), len(humans)),
    }
    return Model(
        shapes=shapes,
        shape_cum=list(itertools.accumulate(weights)),
        wikis=wikis,
        wiki_cum=list(
            itertools.accumulate(1 / (r**WIKI_EXPONENT) for r in range(1, len(wikis) + 1))
        ),
        title_bases=sorted(bases),
        ns_prefix=prefixes,
        bot_names=bots,
        human_names=humans,
        ip_permille=figures["ip_permille"],
        labels_en=labels_en,
        entities=entities,
        permille=permille,
        rc_base=max(e["id"] for e in events if e.get("id")) + 1,
        revision_base=max((e.get("revision") or {}).get("new") or 0 for e in events) + 1,
        max_gap=max(shape[10] for shape in shapes),
        ns_shares=_ns_shares(shapes, weights),
        figures=figures,
    )


def _ns_shares(shapes: list[tuple], weights: list[float]) -> dict[int, float]:
    shares: Counter = Counter()
    for shape, weight in zip(shapes, weights):
        if not shape[0]:
            shares[shape[2]] += weight
    total = sum(shares.values())
    return {ns: weight / total for ns, weight in sorted(shares.items())}


def recorded_figures() -> dict:
    """The figures the generator takes from the recordings (see the module docstring)."""
    return model().figures


def _epoch_ms(start: datetime) -> int:
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    return round(start.timestamp() * 1000)


def records(
    start: datetime, days: float, rate: float = DEFAULT_RATE, seed: int = 1
) -> Iterator[dict]:
    """`round(days * 86400 * rate)` enriched records from `start` (UTC if naive), in time order.

    Streams: memory does not grow with `days`. The i-th record falls at a random time inside
    the i-th of as many equal slots of the period. The random draws depend on `seed` and
    `start`; `rc_id`, revision and new-item ids continue from the period before `start`.
    """
    if days < 0 or rate <= 0:
        raise ValueError("days must be >= 0 and rate > 0")
    return _generate(model(), _epoch_ms(start), days, rate, seed)


def _generate(m: Model, start_ms: int, days: float, rate: float, seed: int) -> Iterator[dict]:
    total = round(days * 86_400 * rate)
    if total == 0:
        return
    rng = random.Random(f"{seed}:{start_ms}")
    rand, bits, choices = rng.random, rng.getrandbits, rng.choices
    slot_ms = days * DAY_MS / total
    epoch_ms = _epoch_ms(EPOCH)
    before = round((start_ms - epoch_ms) / 1000 * rate)  # records since EPOCH

    wiki_names = [w for w, _ in m.wikis]
    servers = [s for _, s in m.wikis]
    n_wikis = len(m.wikis)
    wiki_ids = range(n_wikis)
    # A page is (wiki, namespace, rank): each wiki's namespace has its own share of the ranks.
    wiki_shares = _shares(m.wiki_cum)
    title_params = {
        ns: [TITLES.scaled(share * ns_share).params for share in wiki_shares]
        for ns, ns_share in m.ns_shares.items()
    }
    bases = m.title_bases
    n_bases = len(bases)
    prefix = m.ns_prefix
    qc, qe, qh, qu, qdrift, qcycle = QIDS.params
    hc, he, hh, hu, hdrift, hcycle = HUMANS.params
    bc, be = BOTS.params[:2]
    bot_names = _extend(m.bot_names, BOTS.universe, "{} {}")
    humans = m.human_names
    n_humans = len(humans)
    named = [u for u in humans if not _IP.match(u)]  # bases of the numbered account names
    n_named = len(named)
    ip_permille = m.ip_permille
    user_cache: dict[int, str] = {}
    labels_en, n_labels = m.labels_en, len(m.labels_en)
    entities, n_entities = m.entities, len(m.entities)
    nf, p_len = m.permille["not_found"], m.permille["label_en"]
    unavailable = UNAVAILABLE_SHARE
    next_new_q = QID_RANGE + 1 + max(0, before)
    rc = max(0, m.rc_base - 1 + before)
    rev = max(m.max_gap, m.revision_base - 1 + before)
    mask64 = (1 << 64) - 1
    uuid_clear = ~((0xF << 76) | (0x3 << 62))
    uuid_set = (0x4 << 76) | (0x2 << 62)
    last_second, stamp = None, ""

    for lo in range(0, total, CHUNK):
        k = min(CHUNK, total - lo)
        shapes = choices(m.shapes, cum_weights=m.shape_cum, k=k)
        wikis = choices(wiki_ids, cum_weights=m.wiki_cum, k=k)
        for i in range(k):
            t_ms = start_ms + int((lo + i + rand()) * slot_ms)
            second, ms = divmod(t_ms, 1000)
            if second != last_second:
                last_second = second
                stamp = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            t_days = (t_ms - epoch_ms) / DAY_MS
            (
                entity,
                kind,
                ns,
                bot,
                minor,
                patrolled,
                length_old,
                length_new,
                length_delta,
                rev_kind,
                gap,
                comment,
                log_type,
                log_action,
            ) = shapes[i]
            h = "%032x" % ((bits(128) & uuid_clear) | uuid_set)
            rc += 1
            if rev_kind:
                rev += 1
                rev_new, rev_old = rev, (rev - gap if rev_kind == 2 else None)
            else:
                rev_new = rev_old = None

            if bot:
                user = bot_names[int((1.0 + rand() * bc) ** be) - 1]
            else:
                r = int((1.0 + rand() * hc) ** he)
                if r > hh:
                    r = hh + 1 + (hu - r + int(t_days * hdrift)) % hcycle
                user = user_cache.get(r)
                if user is None:
                    if r <= n_humans:
                        user = humans[r - 1]
                    elif (r * 2654435761 >> 7) % 1000 < ip_permille:
                        x = (r * 2246822519) & 0xFFFFFFFF
                        user = "%d.%d.%d.%d" % (x >> 24, (x >> 16) & 255, (x >> 8) & 255, x & 255)
                    else:
                        user = "%s %d" % (named[r % n_named], r // n_named)
                    if len(user_cache) > 1_000_000:
                        user_cache.clear()
                    user_cache[r] = user

            if entity:
                if kind == "new":
                    qnum = next_new_q
                    next_new_q += 1
                else:
                    r = int((1.0 + rand() * qc) ** qe)
                    if r > qh:
                        r = qh + 1 + (qu - r + int(t_days * qdrift)) % qcycle
                    qnum = (r * 2654435761) % QID_RANGE + 1
                title = qid = "Q%d" % qnum
                wiki, server = WIKIDATA, SERVER[WIKIDATA]
                x = (qnum * 0x9E3779B97F4A7C15) & mask64
                if (x >> 40) % 1000 < nf:
                    status, l_en, l_ko, d_en, d_ko = "not_found", None, None, None, None
                elif rand() < unavailable:
                    status, l_en, l_ko, d_en, d_ko = "unavailable", None, None, None, None
                else:
                    # The item's en label, and ko label and descriptions of a recorded entity,
                    # each label made the item's own by a number.
                    status, suffix = "enriched", x % 100_000
                    y = (qnum * 0xC2B2AE3D27D4EB4F) & mask64
                    l_ko, d_en, d_ko = entities[(y >> 40) % n_entities]
                    if l_ko is not None:
                        l_ko = "%s %d" % (l_ko, suffix)
                    l_en = None
                    if (y >> 5) % 1000 < p_len:
                        l_en = "%s %d" % (labels_en[(y >> 17) % n_labels], suffix)
            else:
                w = wikis[i]
                wiki, server = wiki_names[w], servers[w]
                c, e, head, universe, drift, cycle = title_params[ns][w]
                r = int((1.0 + rand() * c) ** e)
                if r > head:
                    r = head + 1 + (universe - r + int(t_days * drift)) % cycle
                g = r * n_wikis + w
                title = "%s%s %d" % (prefix.get(ns, ""), bases[g % n_bases], g // n_bases)
                qid = l_en = l_ko = d_en = d_ko = None
                status = "not_applicable"

            yield {
                "event_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",
                "event_time": "%s%03dZ" % (stamp, ms),
                "rc_id": rc,
                "wiki": wiki,
                "server_name": server,
                "type": kind,
                "namespace": ns,
                "title": title,
                "user": user,
                "bot": bot,
                "minor": minor,
                "patrolled": patrolled,
                "length_old": length_old,
                "length_new": length_new,
                "length_delta": length_delta,
                "revision_old": rev_old,
                "revision_new": rev_new,
                "comment": comment,
                "log_type": log_type,
                "log_action": log_action,
                "wikidata_id": qid,
                "wikidata_label_ko": l_ko,
                "wikidata_label_en": l_en,
                "wikidata_description_ko": d_ko,
                "wikidata_description_en": d_en,
                "enrichment_status": status,
            }


def _shares(cum: list[float]) -> list[float]:
    return [(b - a) / cum[-1] for a, b in zip([0.0, *cum], cum)]


def _extend(names: list[str], count: int, pattern: str) -> list[str]:
    """`names`, then numbered variants of them, up to `count` entries."""
    out = list(names[:count])
    for i in range(len(out), count):
        out.append(pattern.format(names[i % len(names)], i // len(names) + 1))
    return out


def write_kafka(
    bootstrap: str,
    topic: str,
    start: datetime,
    days: float,
    rate: float = DEFAULT_RATE,
    seed: int = 1,
    partitions: int = 3,
) -> dict:
    """Produce the records to `topic` (created with `partitions` if missing) as fast as possible.

    The producer's settings (`producer_config(bootstrap, "zstd", 50)`), key `wiki:title`, value
    `orjson.dumps(record)`. Raises if any record was not delivered.
    """
    from confluent_kafka import Producer

    from wikistreams.producer.sink import ensure_topics, producer_config

    ensure_topics(bootstrap, [topic], partitions, replication=1)
    failed: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            failed.append(str(err))

    producer = Producer({**producer_config(bootstrap, "zstd", 50), "on_delivery": delivered})
    produce, poll, dumps = producer.produce, producer.poll, orjson.dumps
    count = size = 0
    began = time.perf_counter()
    for record in records(start, days, rate, seed):
        value = dumps(record)
        key = f"{record['wiki']}:{record['title']}".encode()
        try:
            produce(topic, value, key)
        except BufferError:
            while True:
                poll(0.05)
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    continue
        count += 1
        size += len(value)
        if not count % 20_000:
            poll(0)
    while producer.flush(10.0):
        pass
    seconds = time.perf_counter() - began
    if failed:
        raise RuntimeError(f"{len(failed)} records not delivered, first: {failed[0]}")
    return {"records": count, "bytes": size, "seconds": round(seconds, 3)}


def parquet_schema():
    """The contract's columns: strings, int64 for the Druid longs, bools; all nullable."""
    import pyarrow as pa

    hints = EnrichedEvent.model_fields
    types = []
    for name in FIELDS:
        annotation = str(hints[name].annotation)
        if "int" in annotation:
            types.append(pa.field(name, pa.int64()))
        elif "bool" in annotation:
            types.append(pa.field(name, pa.bool_()))
        else:
            types.append(pa.field(name, pa.string()))
    return pa.schema(types)


def write_parquet(
    path: str | os.PathLike,
    start: datetime,
    days: float,
    rate: float = DEFAULT_RATE,
    seed: int = 1,
    row_group: int = 262_144,
) -> dict:
    """The same records in a zstd Parquet file, `row_group` rows per row group."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    count = 0
    began = time.perf_counter()
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        columns: list[list] = [[] for _ in FIELDS]
        appends = [column.append for column in columns]

        def flush() -> None:
            arrays = [pa.array(column, f.type) for column, f in zip(columns, schema)]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            for column in columns:
                column.clear()

        for record in records(start, days, rate, seed):
            for append, value in zip(appends, record.values()):
                append(value)
            count += 1
            if not count % row_group:
                flush()
        if columns[0]:
            flush()
    seconds = time.perf_counter() - began
    return {"records": count, "bytes": Path(path).stat().st_size, "seconds": round(seconds, 3)}


def summary(start: datetime, days: float, rate: float = DEFAULT_RATE, seed: int = 1) -> dict:
    """Generate and count: rate, shares and distinct values (memory grows with the distinct)."""
    count = entity = bots = 0
    titles, pages, users, qids, wikis = set(), set(), set(), set(), Counter()
    types, status = Counter(), Counter()
    began = time.process_time()
    for r in records(start, days, rate, seed):
        count += 1
        titles.add(r["title"])
        pages.add((r["wiki"], r["title"]))
        users.add(r["user"])
        wikis[r["wiki"]] += 1
        types[r["type"]] += 1
        status[r["enrichment_status"]] += 1
        bots += r["bot"]
        if r["wikidata_id"]:
            entity += 1
            qids.add(r["wikidata_id"])
    seconds = time.process_time() - began
    return {
        "records": count,
        "cpu_seconds": round(seconds, 2),
        "distinct_titles": len(titles),
        "distinct_pages": len(pages),
        "distinct_users": len(users),
        "distinct_qids": len(qids),
        "wikis": len(wikis),
        "top_wikis": {w: round(n / max(count, 1), 4) for w, n in wikis.most_common(6)},
        "entity_share": round(entity / max(count, 1), 4),
        "bot_share": round(bots / max(count, 1), 4),
        "types": {t: round(n / max(count, 1), 4) for t, n in types.most_common()},
        "status": {t: round(n / max(count, 1), 4) for t, n in status.most_common()},
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=1.0)
    p.add_argument("--rate", type=float, default=DEFAULT_RATE, help="events per second")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        help="ISO time, UTC if no offset (default: today 00:00 UTC minus --days)",
    )
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="produce to this Kafka")
    p.add_argument("--topic", help="the topic for --kafka")
    p.add_argument("--partitions", type=int, default=3, help="for a topic that is created")
    p.add_argument("--parquet", type=Path, help="write this Parquet file")
    p.add_argument("--summary", action="store_true", help="count distinct values and shares")
    args = p.parse_args(argv)
    start = args.start
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    if start is None:
        today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        start = today - timedelta(days=args.days)
    if args.kafka:
        if not args.topic:
            p.error("--kafka needs --topic")
        result = write_kafka(
            args.kafka, args.topic, start, args.days, args.rate, args.seed, args.partitions
        )
    elif args.parquet:
        result = write_parquet(args.parquet, start, args.days, args.rate, args.seed)
    elif args.summary:
        result = summary(start, args.days, args.rate, args.seed)
    else:
        began = time.perf_counter()
        count = sum(1 for _ in records(start, args.days, args.rate, args.seed))
        result = {"records": count, "seconds": round(time.perf_counter() - began, 3)}
    if result.get("seconds"):
        result["records_per_second"] = round(result["records"] / result["seconds"])
    result["start"] = start.isoformat()
    json.dump(result, sys.stdout, indent=1)
    print()
    return result


if __name__ == "__main__":
    main()
