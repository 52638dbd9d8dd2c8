"""Labelled scenarios: true stories and decoys, drawn from a seeded generator with variants.

Each kind follows published cases (`SOURCES`); every number below is drawn from a range per
instance, so no two instances are alike and several seeds give different ones. Nothing here
reads the detector's parameters. Titles, editor names and edit summaries are built from the
real recordings (recorded enwiki summaries and size changes, recorded editor names); revert
summaries are MediaWiki's default undo/rollback messages.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from benchmarks.capacity.generate import model
from benchmarks.trends_eval.background import recorded_enwiki, retime
from benchmarks.trends_eval.rules import LM_BOT
from wikistreams.trends.detector import StoryRef

Timed = tuple[float, dict]

TRUE_KINDS = ("multi_language", "single_wiki")
DECOY_KINDS = (
    "edit_war",
    "one_editor",
    "vandalism",
    "bot_flood",
    "template_sweep",
    "busy_page",
)
SOURCES = {
    "multi_language": "Wikipedia Live Monitor (arXiv 1303.4702): breaking news edited in several "
    "languages within minutes (Pope Benedict XVI's resignation). Wikimedia trending evaluator "
    "cases: Battle of Mosul, October 2016 Dyn cyberattack (a new article), Pete Burns (a death), "
    'Trump (an already busy page: variant `busy_before`), Pukhrayan train derailment ("may need '
    '5 hours": variant `slow`).',
    "single_wiki": "Wikimedia trending evaluator cases edited mostly on one wiki: Iceland "
    "election, Rupee (demonetisation), Nintendo Switch, Jeff Sessions, David Hamilton, Henderson.",
    "edit_war": 'Wikimedia evaluator: Maximiliano, Pierrepont Place ("editing dominated by two '
    "users\"); Live Monitor's rule needs only 2 concurrent editors.",
    "one_editor": "Wikimedia evaluator's maxBias (one editor's share <= 0.52); tool users ask to "
    "exclude pages one editor dominates (FACTS.md).",
    "vandalism": 'Wikimedia evaluator: Atta ur Rehman Khan ("has a vandalism flag"), Keijo and '
    'Notre Dame ("too many anons").',
    "bot_flood": "Bot flags are unreliable (FACTS.md: tool users ask for bot toggles); the "
    "Wikimedia service drops flagged bots only. Variant `cross_wiki`: one account editing one "
    "item's pages on many wikis (cross-wiki link spam, FACTS.md).",
    "template_sweep": "No published case: a maintenance sweep (several editors running the same "
    "replacement over a category, with AWB/JWB or one shared summary).",
    "busy_page": 'Wikimedia evaluator: Deaths in 2016 ("has lived long enough"); per-page '
    "baselines asked for by tool users (FACTS.md).",
}
BIG_WIKIS = [
    ("enwiki", "en.wikipedia.org"),
    ("dewiki", "de.wikipedia.org"),
    ("frwiki", "fr.wikipedia.org"),
    ("eswiki", "es.wikipedia.org"),
    ("jawiki", "ja.wikipedia.org"),
    ("kowiki", "ko.wikipedia.org"),
    ("itwiki", "it.wikipedia.org"),
    ("ruwiki", "ru.wikipedia.org"),
    ("ptwiki", "pt.wikipedia.org"),
    ("zhwiki", "zh.wikipedia.org"),
    ("plwiki", "pl.wikipedia.org"),
    ("nlwiki", "nl.wikipedia.org"),
    ("arwiki", "ar.wikipedia.org"),
    ("svwiki", "sv.wikipedia.org"),
]


@dataclass
class Scenario:
    """One labelled unit: a true story or a decoy, its events and its pages' stories."""

    unit: str
    kind: str
    variant: str
    true: bool
    start: float = 0.0  # onset: the story's 5th edit is counted from here
    events: list[Timed] = field(default_factory=list)
    refs: dict[str, StoryRef] = field(default_factory=dict)  # page key -> story

    @property
    def story_ids(self) -> set[str]:
        pages = {f"{e['wiki']}:{e['title']}" for _, e in self.events}
        return {self.refs[p].story_id if p in self.refs else p for p in pages}


class Material:
    """Names, summaries and size changes taken from the recordings."""

    def __init__(self) -> None:
        m = model()
        self.titles = m.title_bases
        # Recorded unflagged accounts include bots (ClueBot NG runs unflagged): people's
        # names here leave out names with "bot" at a word edge (Live Monitor's test).
        self.names = [
            n for n in m.human_names if "." not in n and ":" not in n and not LM_BOT.search(n)
        ]
        human = [e for e in recorded_enwiki() if not e["bot"] and e["namespace"] == 0]
        self.summaries = [e["comment"] for e in human]
        self.deltas = [e["length_delta"] or 1 for e in human]


class Page:
    """A page being edited: keeps its length and revision so sizes and reverts add up."""

    def __init__(self, wiki: tuple[str, str], title: str, rng: random.Random) -> None:
        self.wiki, self.server = wiki
        self.title = title
        self.length = rng.randint(2_000, 80_000)
        self.revision = rng.randint(10**9, 2 * 10**9)
        self.history: list[tuple[str, int]] = []  # (user, delta)

    @property
    def key(self) -> str:
        return f"{self.wiki}:{self.title}"

    def edit(self, ts: float, user: str, delta: int, comment: str = "", new: bool = False) -> Timed:
        old, rev_old = (None if new else self.length), (None if new else self.revision)
        self.length = max(0, self.length + delta) if not new else max(1, delta)
        self.revision += 1
        self.history.append((user, delta))
        event = {
            "event_id": f"scenario-{self.revision}",
            "event_time": "",
            "rc_id": self.revision,
            "wiki": self.wiki,
            "server_name": self.server,
            "type": "new" if new else "edit",
            "namespace": 0,
            "title": self.title,
            "user": user,
            "bot": False,
            "minor": False,
            "patrolled": None,
            "length_old": old,
            "length_new": self.length,
            "length_delta": self.length - (old or 0),
            "revision_old": rev_old,
            "revision_new": self.revision,
            "comment": comment,
            "log_type": None,
            "log_action": None,
            "wikidata_id": None,
            "wikidata_label_ko": None,
            "wikidata_label_en": None,
            "wikidata_description_ko": None,
            "wikidata_description_en": None,
            "enrichment_status": "not_applicable",
        }
        return ts, retime(event, ts)

    def revert(self, ts: float, user: str, silent: bool = False) -> Timed:
        """Undo the last edit (by size); summary as MediaWiki's undo writes it, or none."""
        victim, delta = self.history[-1]
        comment = "" if silent else f"Undid revision {self.revision} by [[Special:Contributions/"
        comment += "" if silent else f"{victim}|{victim}]] ([[User talk:{victim}|talk]])"
        return self.edit(ts, user, -delta, comment)


class Maker:
    """Draws scenario instances for one seed."""

    def __init__(self, seed: int, material: Material) -> None:
        self.rng = random.Random(f"scenarios:{seed}")
        self.m = material
        self.serial = 0

    # -- material ---------------------------------------------------------------------------
    def title(self) -> str:
        self.serial += 1
        return f"{self.rng.choice(self.m.titles)} ({self.serial})"

    def person(self, wiki: str, anon_share: float = 0.0) -> str:
        r = self.rng
        if r.random() < anon_share:
            if wiki == "enwiki":  # temporary accounts since Nov 2025
                return f"~2026-{r.randint(10000, 99999)}-{r.randint(10, 99)}"
            return ".".join(str(r.randint(1, 254)) for _ in range(4))
        return f"{r.choice(self.m.names)} {r.randint(1, 99999)}"

    def summary(self) -> str:
        return self.rng.choice(self.m.summaries)

    def delta(self) -> int:
        return self.rng.choice(self.m.deltas) + self.rng.randint(-20, 20)

    def arrivals(self, start: float, n: int, duration: float, shape: float = 1.5) -> list[float]:
        """n times in [start, start + duration], front-loaded (edits follow the news)."""
        return sorted(start + duration * self.rng.random() ** shape for _ in range(n))

    def poisson(self, start: float, end: float, per_hour: float) -> list[float]:
        out, t = [], start
        while True:
            t += self.rng.expovariate(per_hour / 3600)
            if t >= end:
                return out
            out.append(t)

    def crowd_edits(
        self, page: Page, times: list[float], editors: int, anon_share: float, revert_p: float
    ) -> list[Timed]:
        """Edits by a crowd: a few heavy contributors, sessions, some anon edits reverted."""
        r = self.rng
        pool = [self.person(page.wiki, anon_share) for _ in range(editors)]
        weights = [1 / (i + 1) ** 0.7 for i in range(editors)]
        out: list[Timed] = []
        user = ""
        unused = list(pool)
        for i, ts in enumerate(times):
            if unused and (len(times) - i <= len(unused) or r.random() < 0.5):
                user = unused.pop(0)
            elif not user or r.random() > 0.3:
                user = r.choices(pool, weights)[0]
            if user in unused:
                unused.remove(user)
            if out and page.history and out[-1][0] < ts and r.random() < revert_p:
                victim = page.history[-1][0]
                if victim[0] in "~0123456789" and victim != user:
                    out.append(page.revert(ts, user))
                    continue
            new = not out and page.history == [] and self._new
            out.append(page.edit(ts, user, self.delta(), self.summary(), new=new))
        return out

    _new = False

    # -- true stories -----------------------------------------------------------------------
    def multi_language(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        variant = r.choices(["fast", "medium", "slow"], [0.45, 0.35, 0.2])[0]
        busy_before = r.random() < 0.15
        n, duration = {
            "fast": (r.randint(15, 40), r.uniform(20, 45)),
            "medium": (r.randint(10, 20), r.uniform(45, 90)),
            "slow": (r.randint(8, 12), r.uniform(120, 240)),
        }[variant]
        main_wiki = BIG_WIKIS[0] if r.random() < 0.7 else r.choice(BIG_WIKIS[1:])
        others = r.sample([w for w in BIG_WIKIS if w != main_wiki], r.randint(1, 5))
        item = f"Q{990_000_000 + self.serial}"
        base = self.title()
        ref = StoryRef(story_id=item, wikidata_id=item, label_en=base)
        s = Scenario(
            unit, "multi_language", variant + ("+busy_before" if busy_before else ""), True
        )
        created = r.random() < 0.35 and not busy_before
        main = Page(main_wiki, base, r)
        if busy_before:
            s.events += self.regulars(main, t0, start, r.uniform(5, 15))
        self._new = created
        times = self.arrivals(start, n, duration * 60)
        anon = r.uniform(0.05, 0.45)
        s.events += self.crowd_edits(main, times, max(3, round(n * r.uniform(0.3, 0.6))), anon, 0.2)
        for wiki in others:
            page = Page(wiki, f"{base} [{wiki[0][:2]}]", r)
            self._new = r.random() < 0.3
            lag = r.uniform(2, 20) * 60
            k = r.randint(2, 10)
            times = self.arrivals(start + lag, k, r.uniform(15, 60) * 60)
            s.events += self.crowd_edits(page, times, r.randint(2, min(5, k)), anon, 0.1)
            s.refs[page.key] = ref
        self._new = False
        s.refs[main.key] = ref
        return s

    def single_wiki(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        variant = r.choices(["fast", "slow"], [0.85, 0.15])[0]
        wiki = BIG_WIKIS[0] if r.random() < 0.4 else r.choice(BIG_WIKIS[1:])
        page = Page(wiki, self.title(), r)
        n, duration = (
            (r.randint(6, 20), r.uniform(10, 40))
            if variant == "fast"
            else (r.randint(8, 12), r.uniform(90, 180))
        )
        self._new = r.random() < 0.25
        times = self.arrivals(start, n, duration * 60)
        s = Scenario(unit, "single_wiki", variant, True)
        s.events = self.crowd_edits(page, times, r.randint(3, min(8, n)), r.uniform(0.05, 0.4), 0.1)
        self._new = False
        return s

    def regulars(self, page: Page, start: float, end: float, per_hour: float) -> list[Timed]:
        """A page's usual editing: regulars in sessions at a steady rate."""
        r = self.rng
        pool = [self.person(page.wiki, 0.15) for _ in range(r.randint(8, 30))]
        out, user = [], r.choice(pool)
        for ts in self.poisson(start, end, per_hour):
            if r.random() > 0.5:
                user = r.choice(pool)
            out.append(page.edit(ts, user, self.delta(), self.summary()))
        return out

    # -- decoys -----------------------------------------------------------------------------
    def decoy_page(self) -> tuple[tuple[str, str], Page]:
        """A page of one of the six largest wikis, where decoys happen most."""
        wiki = self.rng.choice(BIG_WIKIS[:6])
        return wiki, Page(wiki, self.title(), self.rng)

    def edit_war(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        silent = r.random() < 0.4
        third = r.random() < 0.3
        wiki, page = self.decoy_page()
        a = self.person(wiki[0], 0.2)
        b = self.person(wiki[0])
        s = Scenario(
            unit, "edit_war", ("silent" if silent else "undo") + ("+third" if third else ""), False
        )
        times = self.arrivals(start, r.randint(8, 30), r.uniform(15, 60) * 60, 1.0)
        s.events.append(page.edit(times[0], a, abs(self.delta()) + 10, self.summary()))
        for i, ts in enumerate(times[1:]):
            s.events.append(page.revert(ts, b if i % 2 == 0 else a, silent))
        if third:
            s.events.append(page.edit(r.choice(times) + 5, self.person(wiki[0]), 12, "typo"))
        return s

    def one_editor(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        wiki, page = self.decoy_page()
        anon = r.random() < 0.2
        user = self.person(wiki[0], 1.0 if anon else 0.0)
        times = self.arrivals(start, r.randint(30, 60), r.uniform(30, 120) * 60, 1.0)
        s = Scenario(unit, "one_editor", "anon" if anon else "account", False)
        s.events = [page.edit(ts, user, self.delta(), self.summary()) for ts in times]
        for _ in range(r.randint(0, 2)):
            s.events.append(page.edit(r.choice(times) + 3, self.person(wiki[0]), 4, "typo"))
        return s

    def vandalism(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        wiki, page = self.decoy_page()
        vandals = [self.person(wiki[0], 0.75) for _ in range(r.randint(1, 3))]
        patrollers = [self.person(wiki[0]) for _ in range(r.randint(2, 4))]
        variant = r.choices(["undo", "silent", "cluebot"], [0.5, 0.25, 0.25])[0]
        s = Scenario(unit, "vandalism", variant, False)
        back = start
        for ts in self.arrivals(start, r.randint(4, 10), r.uniform(20, 60) * 60, 1.0):
            # After the previous revert: page lengths must follow event time.
            ts = max(ts, back + r.uniform(5, 60))
            s.events.append(page.edit(ts, r.choice(vandals), r.randint(-3000, 400)))
            back = ts + r.uniform(20, 180)
            if variant == "cluebot":
                t, e = page.revert(back, "ClueBot NG")
                e["bot"] = True
                e["comment"] = f"Reverting possible vandalism by {page.history[-2][0]}"
                s.events.append((t, e))
            else:
                s.events.append(page.revert(back, r.choice(patrollers), variant == "silent"))
        return s

    def bot_flood(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        cross = r.random() < 0.3
        accounts = [self.person("x") for _ in range(r.randint(1, 2))]
        summary = self.summary() or "update"
        if cross:
            item = f"Q{980_000_000 + self.serial}"
            ref = StoryRef(story_id=item, wikidata_id=item)
            base = self.title()
            wikis = BIG_WIKIS + [(f"{c}wiki", f"{c}.wikipedia.org") for c in ("cs", "fi", "he")]
            pages = [Page(w, f"{base} [{w[0][:2]}]", r) for w in r.sample(wikis, r.randint(10, 17))]
            s = Scenario(unit, "bot_flood", f"cross_wiki x{len(accounts)}", False)
            ts = start
            for page in pages:
                s.refs[page.key] = ref
                for user in accounts:
                    ts += r.uniform(5, 20)
                    s.events.append(page.edit(ts, user, r.randint(20, 200), summary))
            return s
        wiki = r.choice(BIG_WIKIS[:6])
        pages = [Page(wiki, self.title(), r) for _ in range(r.randint(60, 250))]
        s = Scenario(unit, "bot_flood", f"one_wiki x{len(accounts)}", False)
        ts = start
        for _ in range(r.randint(100, 300)):
            ts += r.uniform(3, 10)
            s.events.append(page_edit(r.choice(pages), ts, r.choice(accounts), r, summary))
        return s

    def template_sweep(self, unit: str, start: float, t0: float) -> Scenario:
        r = self.rng
        tool = r.random() < 0.5
        wiki = r.choice(BIG_WIKIS[:6])
        editors = [self.person(wiki[0]) for _ in range(r.randint(2, 4))]
        summary = (
            "Replace deprecated parameter (using [[Project:AWB|AWB]])"
            if tool
            else "Replace deprecated infobox parameter per template discussion"
        )
        s = Scenario(unit, "template_sweep", "tool" if tool else "shared_summary", False)
        for i in range(r.randint(30, 100)):
            page = Page(wiki, self.title(), r)
            ts = start + i * r.uniform(20, 60)
            for _ in range(r.randint(3, 6)):
                ts += r.uniform(10, 120)
                s.events.append(page_edit(page, ts, r.choice(editors), r, summary))
        return s

    def busy_page(self, unit: str, start: float, t0: float, end: float = 0.0) -> Scenario:
        r = self.rng
        wiki, page = self.decoy_page()
        per_hour = r.uniform(15, 60)
        s = Scenario(unit, "busy_page", f"{per_hour:.0f}/h", False)
        s.events = self.regulars(page, t0, end, per_hour)
        return s


def page_edit(page: Page, ts: float, user: str, r: random.Random, summary: str) -> Timed:
    return page.edit(ts, user, r.randint(-40, 120), summary)


Kind = Callable[[str, float, float], Scenario]


def draw(
    seed: int, t0: float, start: float, end: float, per_kind: dict[str, int]
) -> list[Scenario]:
    """Scenario instances starting in [start, end - 1 h); busy pages run from t0 to end."""
    maker = Maker(seed, Material())
    out = []
    for kind, count in per_kind.items():
        for i in range(count):
            at = maker.rng.uniform(start, end - 3600)
            if kind == "busy_page":
                out.append(maker.busy_page(f"{kind}#{i}", at, t0, end))
            else:
                out.append(getattr(maker, kind)(f"{kind}#{i}", at, t0))
            out[-1].start = at
    return out
