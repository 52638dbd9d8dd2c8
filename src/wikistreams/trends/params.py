"""The detector's thresholds in one model, so the processor, the tests and the evaluation agree.

Defaults are the values `make trends-eval` measured (docs/trends.md). All times are event-time
seconds: the detector never reads a clock.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DetectorParams(BaseModel):
    """Windows, baseline and thresholds of the page and story stages."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Per page: the short window the burst is measured in, and how much of it is kept.
    window: float = Field(900.0, gt=0, description="short window (s) of edits kept per page")
    max_recent: int = Field(60, ge=4, description="cap on edits kept per page in the window")
    max_editors: int = Field(20, ge=2, description="cap on editor names a page signal carries")
    # Per page: the baseline, an exponentially decayed edit count.
    baseline_tau: float = Field(
        86_400.0, gt=0, description="time constant (s) of the per-page long-horizon rate"
    )
    prior_rate: float = Field(
        0.1, ge=0, description="edits/hour a page is assumed to have at least (the floor)"
    )
    min_history: float = Field(
        21_600.0,
        gt=0,
        description="the baseline counts at least this much history (s): a page's own burst "
        "cannot become its baseline within minutes",
    )
    dispersion: float = Field(
        4.0, gt=0, description="negative binomial shape of a window's count (lower: wider)"
    )
    ttl: float = Field(
        259_200.0, gt=0, description="state of a page idle this long (s) is dropped (3 tau)"
    )
    revert_weight: float = Field(
        1.0, description="effective edits a revert takes away (itself; 2: also what it undid)"
    )
    # Per page: the cheap first threshold (candidates are resolved to Wikidata).
    candidate_edits: float = Field(2.0, description="effective edits in the window")
    candidate_editors: int = Field(2, description="distinct editors in the window")
    candidate_surprise: float = Field(
        3.0, description="-log10 P(this many edits | the page's baseline) in the window"
    )
    # Per story: the trend.
    story_edits: float = Field(5.0, description="effective edits over the story's pages")
    story_editors: int = Field(3, description="distinct editors over the story's pages")
    story_surprise: float = Field(
        6.0, description="summed surprise of the story's candidate pages (independent pages)"
    )
    max_top_share: float = Field(0.67, description="one editor's share of the story's edits")
    max_anon_share: float = Field(0.8, description="logged-out share of the story's edits")
    max_revert_share: float = Field(0.34, description="share of the edits that are reverts")
    max_same_summary_share: float = Field(
        0.5, description="share of the edits with one summary written by several editors"
    )
    created_bonus: float = Field(1.0, description="score added when a page was just created")
    language_bonus: float = Field(0.5, description="score added per language beyond the first")
    # Per story: when to re-emit.
    cooling_share: float = Field(0.5, description="score below this share of the peak: cooling")
    emit_interval: float = Field(30.0, description="min event-time seconds between re-emits")
