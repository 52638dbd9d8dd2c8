"""The trend record: one message on `TRENDS_TOPIC`, one Druid row of `wikimedia_trends`.

It is the contract between the trends processor, the Druid supervisor spec and the Superset
"Trending now" charts. A story is re-emitted whenever it changes, so readers take the newest
record per `story_id` (Druid: `LATEST_BY(..., __time)` or the last row in a window).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TrendState = Literal["rising", "steady", "cooling"]


class TrendRecord(BaseModel):
    """A story (one Wikidata item, or one page without an item) edited far above its baseline."""

    model_config = ConfigDict(extra="forbid")

    story_id: str = Field(
        description="the Wikidata item id, or `wiki:title` when the page has no item",
        examples=["Q42", "enwiki:Douglas Adams"],
    )
    wikidata_id: str | None = Field(
        description="Wikidata item the story's pages belong to (null: no item)",
        examples=["Q42"],
    )
    label_ko: str | None = Field(
        description="Korean label of the item", examples=["더글러스 애덤스"]
    )
    label_en: str | None = Field(
        description="English label of the item", examples=["Douglas Adams"]
    )
    name: str = Field(
        description="what the dashboard shows: Korean label, else English label, else page title",
        examples=["더글러스 애덤스"],
    )
    wikis: list[str] = Field(
        description="database names of the wikis whose pages trend, most edited first",
        examples=[["enwiki", "eswiki", "jawiki"]],
    )
    titles: list[str] = Field(
        description="page titles, in the order of `wikis`", examples=[["Douglas Adams"]]
    )
    urls: list[str] = Field(
        description="page URLs, in the order of `wikis`",
        examples=[["https://en.wikipedia.org/wiki/Douglas_Adams"]],
    )
    languages: int = Field(description="number of wikis in `wikis`", examples=[3])
    edits: int = Field(
        description="human main-namespace edits in the story's window", examples=[14]
    )
    editors: int = Field(description="distinct editors among those edits", examples=[6])
    score: float = Field(
        description="how far above their own baselines the pages are edited (higher: stronger)",
        examples=[12.5],
    )
    state: TrendState = Field(description="rising, steady or cooling", examples=["rising"])
    flagged_at: str = Field(
        description="event time (ISO-8601 UTC) the story first became a trend",
        examples=["2023-07-29T07:52:10.000Z"],
    )
    window_end: str = Field(
        description="event time (ISO-8601 UTC) of the newest edit counted; Druid's `__time`",
        examples=["2023-07-29T07:53:59.000Z"],
    )
