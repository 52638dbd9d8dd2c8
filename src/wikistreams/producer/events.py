"""The recentchange event as it arrives (validation) and as it leaves (the output contract).

Input follows the official schema (`mediawiki/recentchange/1.0.x`): only what the pipeline
depends on is required. Extra fields are accepted but not kept (the dead-letter topic keeps
the original bytes), and optional ones may be missing: real events from 2018 have no `$schema`
or `meta.stream`.

Output (`EnrichedEvent`) is the one flat object per Kafka message that Druid ingests as is. Its
field names are the contract that `druid/ingestion-spec.json` and the dashboards are built on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal, NamedTuple

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Druid stores these as 64-bit longs: a bigger number is bad input, not something to truncate.
Long = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
# Page lengths (bytes) and revision ids are never negative; bounding them so also keeps the
# derived `length_delta` (new - old) inside a long.
Count = Annotated[int, Field(ge=0, le=2**63 - 1)]
# Event times whose conversion to UTC cannot overflow `datetime` (offsets are under a day).
_EARLIEST = datetime(1, 1, 2, tzinfo=timezone.utc)
_LATEST = datetime(9999, 12, 30, tzinfo=timezone.utc)
# `meta.id` is a UUID (36 characters) in every real event. Each published id travels in the
# position record (`producer.position`), which must stay under Kafka's record limit: a longer id
# is bad input, dead-lettered with its reason.
MAX_EVENT_ID_CHARS = 128


class Meta(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=MAX_EVENT_ID_CHARS)
    # Bounded so that every accepted time has a UTC form (`format_event_time` converts it):
    # checked inside pydantic-core, cheaper than a Python validator on every event.
    dt: AwareDatetime = Field(gt=_EARLIEST, lt=_LATEST)
    domain: str | None = None
    stream: str | None = None


# No recentchange event can predate Wikipedia (launched 2001-01-15): a floor that holds for
# recordings too, whose age no clock can judge.
FIRST_EDIT_TIME = datetime(2001, 1, 15, tzinfo=timezone.utc)


class EventTimeBounds:
    """Which `meta.dt` may reach Druid, which makes a segment per hour of event time and keeps
    future ones for ever: not more than `max_future_seconds` ahead of this host's clock, not
    older than `max_age_seconds` (None: no age bound, for a recording replayed with its own
    times), and never before `FIRST_EDIT_TIME`. The bounds move with the clock once a second,
    so a check costs two datetime comparisons."""

    def __init__(
        self,
        max_age_seconds: float | None,
        max_future_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._max_age = max_age_seconds
        self._max_future = max_future_seconds
        self._clock = clock
        self._refresh_at = float("-inf")
        self._earliest = self._latest = FIRST_EDIT_TIME

    def problem(self, dt: datetime) -> str | None:
        """Why `dt` is refused (the dead letter's reason), or None when it may go on."""
        now = self._clock()
        if now >= self._refresh_at:
            self._refresh(now)
        if dt < self._earliest:
            if self._earliest == FIRST_EDIT_TIME:
                return f"meta.dt {dt.isoformat()} is before the first wiki edit (2001-01-15)"
            hours = (self._max_age or 0) / 3600
            return f"meta.dt {dt.isoformat()} is more than {hours:g} h old (EVENT_MAX_AGE_HOURS)"
        if dt > self._latest:
            return (
                f"meta.dt {dt.isoformat()} is more than {self._max_future:g} s in the future"
                " (EVENT_MAX_FUTURE_SECONDS)"
            )
        return None

    def _refresh(self, now: float) -> None:
        utc_now = datetime.fromtimestamp(now, timezone.utc)
        self._latest = utc_now + timedelta(seconds=self._max_future)
        self._earliest = FIRST_EDIT_TIME
        if self._max_age is not None:
            self._earliest = max(FIRST_EDIT_TIME, utc_now - timedelta(seconds=self._max_age))
        self._refresh_at = now + 1.0


class OldNew(BaseModel):
    """`length` and `revision`: `old` is absent on new pages."""

    model_config = ConfigDict(extra="ignore")

    old: Count | None = None
    new: Count | None = None


class RecentChange(BaseModel):
    """A validated `mediawiki.recentchange` event."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    meta: Meta
    id: Long | None = None
    type: str = Field(min_length=1)
    namespace: Long
    title: str
    wiki: str = Field(min_length=1)
    server_name: str = Field(min_length=1)
    user: str = ""
    bot: bool = False
    minor: bool | None = None
    patrolled: bool | None = None
    comment: str = ""
    length: OldNew | None = None
    revision: OldNew | None = None
    log_type: str | None = None
    log_action: str | None = None

    @property
    def is_canary(self) -> bool:
        """Wikimedia injects synthetic canary events several times an hour."""
        return self.meta.domain == "canary"


EnrichmentStatus = Literal["not_applicable", "enriched", "not_found", "unavailable"]


class WikidataLabels(BaseModel):
    """Korean and English label and description of one Wikidata entity."""

    label_ko: str | None = None
    label_en: str | None = None
    description_ko: str | None = None
    description_en: str | None = None


class EnrichedEvent(BaseModel):
    """One message on the enriched topic. Every field becomes a Druid column of the same name.

    The descriptions and examples are the contract's documentation: docs/contracts.md's table is
    generated from them (`python -m wikistreams.producer.contract_doc`).
    """

    event_id: str = Field(
        description="`meta.id` (a UUID), unique per event",
        examples=["dd8c5690-2222-11e8-a2ad-1418776134f3"],
    )
    event_time: str = Field(
        description="`meta.dt` as ISO-8601 UTC with milliseconds; Druid's `__time`",
        examples=["2018-03-07T16:16:17.000Z"],
    )
    rc_id: int | None = Field(description="recentchange `id`", examples=[680514367])
    wiki: str = Field(description="database name of the wiki", examples=["enwiki", "wikidatawiki"])
    server_name: str = Field(
        description="host name of the wiki", examples=["en.wikipedia.org", "www.wikidata.org"]
    )
    type: str = Field(
        description="kind of change", examples=["edit", "new", "log", "categorize", "external"]
    )
    namespace: int = Field(description="namespace number of the page", examples=[0, 1, 14])
    title: str = Field(
        description="page title, with its namespace prefix",
        examples=["Douglas Adams", "Talk:Douglas Adams", "Q42"],
    )
    user: str = Field(
        description="user name, or IP address for anonymous edits", examples=["MisterSynergy"]
    )
    bot: bool = Field(description='edit flagged as bot; Druid keeps the string `"true"`/`"false"`')
    minor: bool | None = Field(description="minor edit (edits only)")
    patrolled: bool | None = Field(description="patrolled (wikis with patrolling only)")
    length_old: int | None = Field(description="page length in bytes before (null: new page)")
    length_new: int | None = Field(description="page length in bytes after")
    length_delta: int | None = Field(
        description="`length_new - length_old` (new pages: `length_new`)", examples=[431, -12]
    )
    revision_old: int | None = Field(description="revision id before (null: new page)")
    revision_new: int | None = Field(description="revision id after")
    comment: str = Field(description="edit summary (wikitext)")
    log_type: str | None = Field(
        description="kind of log (log events only)", examples=["block", "delete", "newusers"]
    )
    log_action: str | None = Field(
        description="what was logged (log events only)", examples=["block", "restore", "create"]
    )
    wikidata_id: str | None = Field(
        default=None,
        description="the entity a wikidatawiki entity page is about; null elsewhere",
        examples=["Q42", "P31", "L1"],
    )
    wikidata_label_ko: str | None = Field(
        default=None, description="Korean label of the entity", examples=["더글러스 애덤스"]
    )
    wikidata_label_en: str | None = Field(
        default=None, description="English label of the entity", examples=["Douglas Adams"]
    )
    wikidata_description_ko: str | None = Field(
        default=None, description="Korean description of the entity"
    )
    wikidata_description_en: str | None = Field(
        default=None, description="English description of the entity"
    )
    enrichment_status: EnrichmentStatus = Field(
        default="not_applicable",
        description="whether the labels were looked up, and what came of it",
    )

    @classmethod
    def from_change(
        cls,
        change: RecentChange,
        wikidata_id: str | None = None,
        labels: WikidataLabels | None = None,
        status: EnrichmentStatus = "not_applicable",
    ) -> EnrichedEvent:
        return cls.model_validate(enriched_record(change, wikidata_id, labels, status))


def enriched_record(
    change: RecentChange,
    wikidata_id: str | None = None,
    labels: WikidataLabels | None = None,
    status: EnrichmentStatus = "not_applicable",
) -> dict[str, Any]:
    """The `EnrichedEvent` fields as a plain dict.

    The hot path serialises this dict directly (`encode_record`): building and dumping a
    validated model per event cost more than the rest of the pipeline together. A test checks
    that every recorded event gives exactly what `EnrichedEvent` would.
    """
    length = change.length
    revision = change.revision
    length_old, length_new = (length.old, length.new) if length else (None, None)
    return {
        "event_id": change.meta.id,
        "event_time": format_event_time(change.meta.dt),
        "rc_id": change.id,
        "wiki": change.wiki,
        "server_name": change.server_name,
        "type": change.type,
        "namespace": change.namespace,
        "title": change.title,
        "user": change.user,
        "bot": change.bot,
        "minor": change.minor,
        "patrolled": change.patrolled,
        "length_old": length_old,
        "length_new": length_new,
        "length_delta": None if length_new is None else length_new - (length_old or 0),
        "revision_old": revision.old if revision else None,
        "revision_new": revision.new if revision else None,
        "comment": change.comment,
        "log_type": change.log_type,
        "log_action": change.log_action,
        "wikidata_id": wikidata_id,
        "wikidata_label_ko": labels.label_ko if labels else None,
        "wikidata_label_en": labels.label_en if labels else None,
        "wikidata_description_ko": labels.description_ko if labels else None,
        "wikidata_description_en": labels.description_en if labels else None,
        "enrichment_status": status,
    }


def encode_record(record: dict[str, Any]) -> bytes:
    """The Kafka message value: compact UTF-8 JSON, the same document `EnrichedEvent` dumps."""
    return orjson.dumps(record)


def format_event_time(dt: datetime) -> str:
    """UTC with milliseconds and a `Z`, one format whatever the input precision.

    %-formatting of the fields: twice as fast as `isoformat` on pydantic's tz-aware values, and
    this runs once per event.
    """
    if dt.utcoffset():
        dt = dt.astimezone(timezone.utc)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (
        dt.year,
        dt.month,
        dt.day,
        dt.hour,
        dt.minute,
        dt.second,
        dt.microsecond // 1000,
    )


TIMESTAMP_FIELD = "event_time"
LONG_FIELDS = (
    "rc_id",
    "namespace",
    "length_old",
    "length_new",
    "length_delta",
    "revision_old",
    "revision_new",
)


class DerivedDimension(NamedTuple):
    """A string column Druid computes at ingestion from the message's fields."""

    expression: str  # a Druid expression
    nullable: bool
    description: str  # for docs/contracts.md


# Columns Druid derives at ingestion (`transformSpec`), not sent by the producer. Each lets a
# "top N" chart group by one dictionary-encoded column, which Druid runs as a topN instead of a
# multi-column groupBy (docs/capacity.md measured both on a day of live-shaped data):
# - `page` is the Kafka key, `wiki:title` ("Most edited pages": 16 s -> 0.45 s at p50);
# - `wikidata_entity` is what "Top Wikidata entities" shows, `label (Q42)` with the Korean label,
#   else the English one, else the bare id (2.4 s -> 0.2 s against GROUP BY id and its labels).
DERIVED_DIMENSIONS = {
    "page": DerivedDimension(
        'concat("wiki", \':\', "title")',
        nullable=False,
        description='`wiki:title` (the message key), so that "Most edited pages" is a topN over '
        "one column",
    ),
    "wikidata_entity": DerivedDimension(
        'case_searched(isnull("wikidata_id"), null, '
        "strlen(nvl(\"wikidata_label_ko\", '')) > 0, "
        "concat(\"wikidata_label_ko\", ' (', \"wikidata_id\", ')'), "
        "strlen(nvl(\"wikidata_label_en\", '')) > 0, "
        "concat(\"wikidata_label_en\", ' (', \"wikidata_id\", ')'), "
        '"wikidata_id")',
        nullable=True,
        description="`label (Q42)` with the Korean label, else the English one, else the bare "
        'id; null for non-entity events. So that "Top Wikidata entities" is a topN over one '
        "column",
    ),
}


def druid_dimensions() -> list[dict[str, str]]:
    """The Druid dimensionsSpec that the contract implies (the spec file must equal it)."""
    dims = []
    for name in EnrichedEvent.model_fields:
        if name == TIMESTAMP_FIELD:
            continue
        dims.append({"type": "long" if name in LONG_FIELDS else "string", "name": name})
    dims += [{"type": "string", "name": name} for name in DERIVED_DIMENSIONS]
    return dims


def druid_transforms() -> list[dict[str, str]]:
    """The Druid transformSpec transforms that compute `DERIVED_DIMENSIONS`."""
    return [
        {"type": "expression", "name": name, "expression": derived.expression}
        for name, derived in DERIVED_DIMENSIONS.items()
    ]
