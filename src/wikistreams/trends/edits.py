"""Which enriched events count as human edits of an article, and what the detector keeps of them.

A trend is people writing about something, so the detector counts only main-namespace `edit`
and `new` events of content wikis by accounts that do not look automated:
- flagged bots (`bot`), and accounts whose *name* says bot (`ClueBot NG`, `InternetArchiveBot`:
  Wikimedia's bot policy asks bots to be named so; flags are often missing on smaller wikis);
- edits whose summary names a mass-editing tool (AWB, JWB, HotCat, Cat-a-lot, IABot,
  QuickStatements, Pywikibot, `Bot:` prefixes): a template or category sweep, not news;
- Wikidata, Commons and other non-article wikis, whose main namespace is not articles.
Behaviour that only shows over several edits (one account making most of a page's edits at a
machine's pace) is judged per page in `page.py` (the top editor's share).

Temporary accounts (`~2025-12345-67`, replacing IP editing on English Wikipedia since Nov 2025)
and IP addresses are logged-out editors.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

# Wikis whose namespace 0 is not encyclopaedic articles (or is a test wiki).
NON_ARTICLE_WIKIS = frozenset(
    {
        "wikidatawiki",
        "testwikidatawiki",
        "commonswiki",
        "metawiki",
        "mediawikiwiki",
        "specieswiki",
        "testwiki",
        "test2wiki",
        "loginwiki",
        "foundationwiki",
        "outreachwiki",
        "incubatorwiki",
        "sourceswiki",
    }
)
COUNTED_TYPES = frozenset({"edit", "new"})

# "Bot" as its own word or as the last CamelCase part: `ClueBot NG`, `AnomieBOT`, `Bot1058`,
# `Some-bot`; not `Talbot` or `Abbott`.
BOT_NAME = re.compile(r"(?:(?<![A-Za-z])[Bb][Oo][Tt]|(?<=[a-z0-9])(?:Bot|BOT))(?![a-z])")
# Edit summaries of semi-automated mass-editing tools (as they write them on Wikimedia wikis).
AUTOMATION = re.compile(
    r"(?i)(\bAWB\b|\bJWB\b|HotCat|Cat-a-lot|#IABot|QuickStatements|Pywikibot|"
    r"^\s*\[?\[?bot\b\]?\]?\s*:|\bmass[ -]?edit)"
)
# Revert summaries: English defaults (undo, rollback, Twinkle, Huggle, ClueBot) and the
# rollback/undo defaults of the largest other wikis (de, fr, es, ja, ru, ko, it, pt, zh).
REVERT = re.compile(
    r"(?i)(\brevert|\breverted\b|\bundid revision|\bundo\b|^\s*rvv?\b|\brollback|"
    r"\brestored revision|\bvandalism\b|rückgängig|zurückgesetzt|\bannulation|\brévocation|"
    r"\brevertid|\bdeshecha|差し戻|取り消|отмен|откат|되돌|\bannullat|\brestaurad|回退|撤销|還原)"
)
IP_ADDRESS = re.compile(r"^(\d{1,3}(\.\d{1,3}){3}|[0-9A-Fa-f]*:[0-9A-Fa-f:]+)$")
TEMPORARY_ACCOUNT = re.compile(r"^~\d{4}-")
# What an edit summary says beyond its section link (`/* History */`) and numbers.
_SECTION = re.compile(r"/\*.*?\*/")
_NOISE = re.compile(r"[\d\W_]+")


class Edit(BaseModel):
    """One countable human edit of an article, with what the detector needs of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wiki: str
    title: str
    server_name: str
    user: str
    anonymous: bool
    ts: float  # event time, epoch seconds
    length_delta: int = 0
    length_new: int | None = None
    created: bool = False  # a `new` event: the page was created
    revert: bool = False  # the summary says revert/undo/rollback
    summary: int = 0  # `summary_key` of the edit summary (0: nothing beyond a section link)
    counted: bool = True  # False: a bot's revert, which only marks what it undid

    @property
    def page(self) -> str:
        """The page key (the processor's Kafka key): `wiki:title`."""
        return f"{self.wiki}:{self.title}"


def is_anonymous(user: str) -> bool:
    """IP addresses, temporary accounts and missing names are logged-out editors."""
    return not user or bool(IP_ADDRESS.match(user) or TEMPORARY_ACCOUNT.match(user))


def is_bot_name(user: str) -> bool:
    return bool(BOT_NAME.search(user))


def summary_key(comment: str) -> int:
    """A stable 32-bit key of what a summary says, so identical summaries can be counted.

    A sweep (template replacement, tagging drive) writes the same summary on every page, by
    every editor taking part; people reacting to news write their own. Section links and
    numbers are dropped, so `/* Death */ date` and `/* Career */ date` count as the same.
    """
    text = _NOISE.sub(" ", _SECTION.sub(" ", comment)).strip().lower()
    return zlib.crc32(text.encode()) or 1 if text else 0


def parse_time(value: str) -> float:
    """`event_time` (ISO-8601 UTC, `Z`) as epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def edit_from_event(event: Mapping[str, Any]) -> Edit | None:
    """The edit an `EnrichedEvent` dict is for the detector, or None when it does not count.

    One kind of automated edit is kept, uncounted (`counted=False`): a bot's revert (ClueBot
    NG, flagged on some wikis). It counts no edit and no editor, but tells the page that the
    edits it undid were vandalism.

    Raises ValueError on an event without a parseable `event_time` (the enriched topic's
    contract says it always has one).
    """
    if event.get("type") not in COUNTED_TYPES or event.get("namespace") != 0:
        return None
    wiki = str(event.get("wiki") or "")
    if not wiki or wiki in NON_ARTICLE_WIKIS:
        return None
    user = str(event.get("user") or "")
    comment = str(event.get("comment") or "")
    revert = bool(REVERT.search(comment))
    automated = bool(event.get("bot") or is_bot_name(user) or AUTOMATION.search(comment))
    if automated and not revert:
        return None
    delta = event.get("length_delta")
    return Edit(
        wiki=wiki,
        title=str(event.get("title") or ""),
        server_name=str(event.get("server_name") or ""),
        user=user,
        anonymous=is_anonymous(user),
        ts=parse_time(str(event["event_time"])),
        length_delta=int(delta) if delta is not None else 0,
        length_new=event.get("length_new"),
        created=event.get("type") == "new",
        revert=revert,
        summary=summary_key(comment),
        counted=not automated,
    )
