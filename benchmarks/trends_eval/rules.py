"""The two published rules, written from their descriptions, run on the same stream.

- Wikipedia Live Monitor (Steiner et al. 2013; tomayac/wikipedia-live-monitor): an article
  cluster (one article across languages, through language links; here the same `StoryRef` the
  detector uses) stays monitored while its last edit is <= 240 s old. It is a breaking-news
  candidate when it has >= 5 edits since monitored, its last 4 gaps are each <= 60 s, and >= 2
  distinct editors edited it. Bots: the bot flag and names with `bot` at a word edge.
- Wikimedia's edit-based trending service (2016-17; evaluator thresholds in
  jdlrobson/wikipedia-trending-endpoint tests/evaluator.js), per page: >= 6 edits, >= 4
  contributors, >= 1 anonymous edit, anonymous share <= 0.51, top editor's share ("bias")
  <= 0.52, page age (since first seen) 5-300 min, speed >= 0.1 edits/min; a page is purged
  when its speed falls under 0.1/min or it is older than a day. Bots: the bot flag.

Both see main-namespace `edit`/`new` events of article wikis. Each flag carries a rank score
for the hourly top 10: Live Monitor the cluster's edits, Wikimedia the speed (edits/min).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from wikistreams.trends.edits import NON_ARTICLE_WIKIS, is_anonymous

Flag = tuple[str, float, float]  # story id, event time, rank score
LM_BOT = re.compile(r"(?i)(\bbot|bot\b)")


def article_edit(event: dict) -> bool:
    return (
        event["type"] in ("edit", "new")
        and event["namespace"] == 0
        and event["wiki"] not in NON_ARTICLE_WIKIS
        and not event["bot"]
    )


@dataclass
class _Cluster:
    last: float
    edits: int = 1
    gaps: list[float] = field(default_factory=list)
    editors: set[str] = field(default_factory=set)


class LiveMonitor:
    def __init__(self, story_of: Callable[[str], str]) -> None:
        self.story_of = story_of
        self.clusters: dict[str, _Cluster] = {}

    def process(self, ts: float, event: dict) -> list[Flag]:
        if not article_edit(event) or LM_BOT.search(event["user"]):
            return []
        story = self.story_of(f"{event['wiki']}:{event['title']}")
        cluster = self.clusters.get(story)
        if cluster is None or ts - cluster.last > 240:
            self.clusters[story] = _Cluster(last=ts, editors={event["user"]})
            return []
        cluster.edits += 1
        cluster.gaps = (cluster.gaps + [ts - cluster.last])[-4:]
        cluster.last = ts
        cluster.editors.add(event["user"])
        if cluster.edits >= 5 and all(g <= 60 for g in cluster.gaps) and len(cluster.editors) >= 2:
            return [(story, ts, float(cluster.edits))]
        return []

    def expire(self, now: float) -> None:
        self.clusters = {k: c for k, c in self.clusters.items() if now - c.last <= 240}


@dataclass
class _Page:
    start: float
    edits: int = 0
    anon: int = 0
    by_user: dict[str, int] = field(default_factory=dict)


class WikimediaTrending:
    def __init__(self, story_of: Callable[[str], str]) -> None:
        self.story_of = story_of
        self.pages: dict[str, _Page] = {}

    def process(self, ts: float, event: dict) -> list[Flag]:
        if not article_edit(event):
            return []
        key = f"{event['wiki']}:{event['title']}"
        page = self.pages.get(key)
        if page is None or self._purged(page, ts):
            page = self.pages[key] = _Page(start=ts)
        page.edits += 1
        page.anon += is_anonymous(event["user"])
        page.by_user[event["user"]] = page.by_user.get(event["user"], 0) + 1
        age_min = (ts - page.start) / 60
        speed = page.edits / max(age_min, 1.0)
        if (
            page.edits >= 6
            and len(page.by_user) >= 4
            and page.anon >= 1
            and page.anon / page.edits <= 0.51
            and max(page.by_user.values()) / page.edits <= 0.52
            and 5 <= age_min <= 300
            and speed >= 0.1
        ):
            return [(self.story_of(key), ts, speed)]
        return []

    @staticmethod
    def _purged(page: _Page, now: float) -> bool:
        age_min = (now - page.start) / 60
        return age_min > 1440 or (age_min > 10 and page.edits / age_min < 0.1)

    def expire(self, now: float) -> None:
        self.pages = {k: p for k, p in self.pages.items() if not self._purged(p, now)}
