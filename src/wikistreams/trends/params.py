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
        0.5, ge=0, description="edits/hour assumed for a page never seen (the prior's mean)"
    )
    prior_span: float = Field(
        3_600.0, gt=0, description="weight (s of history) of the prior against what was seen"
    )
    ttl: float = Field(
        259_200.0, gt=0, description="state of a page idle this long (s) is dropped (3 tau)"
    )
    # Per page: the cheap first threshold (candidates are resolved to Wikidata).
    candidate_edits: float = Field(3.0, description="effective edits in the window")
    candidate_editors: int = Field(2, description="distinct editors in the window")
    candidate_z: float = Field(2.0, description="Poisson z of the window against the baseline")
    # Per story: the trend.
    story_edits: float = Field(5.0, description="effective edits over the story's pages")
    story_editors: int = Field(3, description="distinct editors over the story's pages")
    story_z: float = Field(3.0, description="z of the story's strongest page")
    max_top_share: float = Field(0.5, description="one editor's share of the story's edits")
    max_anon_share: float = Field(0.8, description="logged-out share of the story's edits")
    max_revert_share: float = Field(0.34, description="share of the edits that are reverts")
    language_bonus: float = Field(0.5, description="score added per language beyond the first")
    # Per story: when to re-emit.
    cooling_share: float = Field(0.5, description="score below this share of the peak: cooling")
    emit_interval: float = Field(30.0, description="min event-time seconds between re-emits")
