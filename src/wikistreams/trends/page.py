"""Per page (`wiki:title`): the short window of edits, the page's own baseline, its signal.

The baseline is what makes a burst news: a page edited 20 times an hour every day is not
trending at 20 edits an hour, a page edited twice a month is. It is an exponentially decayed
edit count (time constant `baseline_tau`), so it costs two floats and forgets smoothly, with a
prior (`prior_rate` over `prior_span` seconds) for pages never seen. The window's own edits are
taken out of it before comparing, so a burst does not hide itself.

The window's surprise is a z-score against the baseline's expected count `mu` with
negative-binomial variance `mu + mu^2 / 4` (edits come in sessions: wider than Poisson), so a
busy page needs a far larger burst than a quiet one to stand out.

State is JSON-serialisable (the processor keeps it in a Quix state store) and bounded: at most
`max_recent` edits of the last `window` seconds, and dropped after `ttl` idle seconds.
"""

from __future__ import annotations

import math
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from wikistreams.trends.edits import Edit
from wikistreams.trends.params import DetectorParams

DISPERSION = 4.0  # negative binomial shape: variance mu + mu^2 / DISPERSION
SIZE_REVERT_DEPTH = 6  # earlier versions a size revert may go back to


class RecentEdit(BaseModel):
    """One edit of the window, as little as the signals need."""

    model_config = ConfigDict(extra="forbid")

    ts: float
    user: str
    anonymous: bool = False
    delta: int = 0
    length: int | None = None  # page length after the edit
    revert: bool = False
    created: bool = False


class PageState(BaseModel):
    """What one page keeps between edits: its window and its decayed history."""

    model_config = ConfigDict(extra="forbid")

    first_ts: float  # first edit seen: how much history the baseline stands on
    last_ts: float  # newest event time seen
    decayed: float = 0.0  # edits, each weighted exp(-(last_ts - t) / tau)
    recent: list[RecentEdit] = Field(default_factory=list)
    candidate: bool = False


class PageSignal(BaseModel):
    """A candidate page: its window's figures, re-keyed by story in the processor."""

    model_config = ConfigDict(extra="forbid")

    page: str  # wiki:title
    wiki: str
    title: str
    server_name: str
    ts: float  # event time of the edit that produced the signal
    first_ts: float  # oldest edit in the window
    edits: int
    effective_edits: float  # edits minus reverts and what they reverted
    reverts: int
    editor_count: int  # distinct editors in the window (not capped)
    editors: list[str]  # most active first, at most `max_editors`
    editor_edits: list[int]  # edits of each of `editors`
    anon_edits: int
    top_share: float
    created: bool
    baseline: float  # edits/hour before the window
    rate: float  # edits/hour in the window
    score: float  # z of the window against the baseline
    candidate: bool  # False: the last signal after the page stopped passing


def page_expired(state: PageState, now: float, params: DetectorParams) -> bool:
    """Whether a page's state can be dropped (idle for `ttl` event-time seconds)."""
    return now - state.last_ts > params.ttl


def _is_size_revert(edit: Edit, recent: list[RecentEdit]) -> bool:
    """The edit puts the page back to a length it had before another editor's edit."""
    if not edit.length_delta or edit.length_new is None:
        return False
    for earlier in recent[-SIZE_REVERT_DEPTH:]:
        if earlier.length is None or earlier.user == edit.user or not earlier.delta:
            continue
        if earlier.length - earlier.delta == edit.length_new:
            return True
    return False


def _baseline_rate(state: PageState, ts: float, in_window: float, p: DetectorParams) -> float:
    """Edits per second before the window, with the prior for the history not seen."""
    before = max(0.0, state.decayed - in_window)
    start = ts - p.window
    if start > state.first_ts:
        span = p.baseline_tau * (
            math.exp(-p.window / p.baseline_tau) - math.exp(-(ts - state.first_ts) / p.baseline_tau)
        )
    else:
        span = 0.0
    return (before + p.prior_rate / 3600.0 * p.prior_span) / (span + p.prior_span)


def observe_page(
    state: PageState | None, edit: Edit, params: DetectorParams
) -> tuple[PageState, PageSignal | None]:
    """Count one edit; return the new state and a signal while the page is a candidate."""
    if state is None or page_expired(state, edit.ts, params):
        state = PageState(first_ts=edit.ts, last_ts=edit.ts)
    now = max(state.last_ts, edit.ts)
    tau = params.baseline_tau
    decayed = state.decayed * math.exp(-(now - state.last_ts) / tau)
    decayed += math.exp(-(now - edit.ts) / tau)
    revert = edit.revert or _is_size_revert(edit, state.recent)
    recent = [e for e in state.recent if e.ts > now - params.window]
    recent.append(
        RecentEdit(
            ts=edit.ts,
            user=edit.user,
            anonymous=edit.anonymous,
            delta=edit.length_delta,
            length=edit.length_new,
            revert=revert,
            created=edit.created,
        )
    )
    recent = recent[-params.max_recent :]
    new_state = PageState(
        first_ts=min(state.first_ts, edit.ts),
        last_ts=now,
        decayed=decayed,
        recent=recent,
        candidate=state.candidate,
    )
    signal = _signal(new_state, edit, params)
    was = state.candidate
    new_state.candidate = signal.candidate
    return new_state, signal if (signal.candidate or was) else None


def _signal(state: PageState, edit: Edit, p: DetectorParams) -> PageSignal:
    now = state.last_ts
    recent = state.recent
    counts = Counter(e.user for e in recent)
    ranked = counts.most_common()
    edits = len(recent)
    reverts = sum(e.revert for e in recent)
    effective = max(0.0, edits - 2.0 * reverts)
    in_window = sum(math.exp(-(now - e.ts) / p.baseline_tau) for e in recent)
    baseline = _baseline_rate(state, now, in_window, p)
    mu = baseline * p.window
    score = (effective - mu) / math.sqrt(mu + mu * mu / DISPERSION + 1.0)
    candidate = (
        effective >= p.candidate_edits
        and len(counts) >= p.candidate_editors
        and score >= p.candidate_z
    )
    return PageSignal(
        page=edit.page,
        wiki=edit.wiki,
        title=edit.title,
        server_name=edit.server_name,
        ts=now,
        first_ts=recent[0].ts,
        edits=edits,
        effective_edits=effective,
        reverts=reverts,
        editor_count=len(counts),
        editors=[user for user, _ in ranked[: p.max_editors]],
        editor_edits=[n for _, n in ranked[: p.max_editors]],
        anon_edits=sum(e.anonymous for e in recent),
        top_share=ranked[0][1] / edits,
        created=any(e.created for e in recent),
        baseline=baseline * 3600.0,
        rate=edits / p.window * 3600.0,
        score=round(score, 3),
        candidate=candidate,
    )
