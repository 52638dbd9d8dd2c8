"""Per page (`wiki:title`): the short window of edits, the page's own baseline, its signal.

The baseline is what makes a burst news: a page edited 20 times an hour every day is not
trending at 20 edits an hour, a page edited twice a month is. It is an exponentially decayed
edit count (time constant `baseline_tau`), so it costs two floats and forgets smoothly, with a
floor (`prior_rate`) and a minimum history (`min_history`) for pages never seen. The window's
own edits are taken out of it before comparing, so a burst does not hide itself.

The window's score is its *surprise*: -log10 of the chance of at least that many effective
edits in the window if the page kept to its baseline (expected count `mu`). The count is taken
as negative binomial (mean `mu`, shape `dispersion`: edits come in sessions, so wider than
Poisson), so a busy page needs a far larger burst than a quiet one to stand out, and a score
of 6 means "one in a million windows of this page". A z-score was tried first: its tail is
too thin for small counts (5 edits on a page with 1 edit an hour scored like 5 edits on a page
never edited), and the live-shaped background flagged several chance bursts an hour.

State is JSON-serialisable (the processor keeps it in a Quix state store) and bounded: at most
`max_recent` edits of the last `window` seconds, and dropped after `ttl` idle seconds.
"""

from __future__ import annotations

import math
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from wikistreams.trends.edits import Edit
from wikistreams.trends.params import DetectorParams

MAX_SURPRISE = 30.0  # scores are capped: beyond 1e-30 the difference means nothing


class RecentEdit(BaseModel):
    """One edit of the window, as little as the signals need."""

    model_config = ConfigDict(extra="forbid")

    ts: float
    user: str
    anonymous: bool = False
    delta: int = 0
    length: int | None = None  # page length after the edit
    revert: bool = False  # a revert, or an edit a bot reverted
    created: bool = False
    summary: int = 0


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
    same_summary: int  # edits sharing the most common summary, if 2+ editors wrote it
    created: bool
    baseline: float  # edits/hour before the window
    rate: float  # edits/hour in the window
    score: float  # surprise: -log10 P(at least these edits | baseline), capped at 30
    candidate: bool  # False: the last signal after the page stopped passing


def page_expired(state: PageState, now: float, params: DetectorParams) -> bool:
    """Whether a page's state can be dropped (idle for `ttl` event-time seconds)."""
    return now - state.last_ts > params.ttl


def _is_size_revert(edit: Edit, recent: list[RecentEdit]) -> bool:
    """The edit puts the page back to its length before the last editor's run of edits.

    That is what undo (the last edit) and rollback (all the last editor's consecutive edits)
    do. Comparing with older versions too matched chance sums of small edits.
    """
    if not edit.length_delta or edit.length_new is None or not recent:
        return False
    last = recent[-1].user
    if last == edit.user:
        return False
    first = len(recent) - 1
    while first > 0 and recent[first - 1].user == last:
        first -= 1
    run = recent[first]
    return run.length is not None and run.length - run.delta == edit.length_new


def _baseline_rate(state: PageState, ts: float, in_window: float, p: DetectorParams) -> float:
    """Edits per second before the window: the decayed count over the history it stands for.

    The history is what was watched (since the page's first edit, tau-weighted) but at least
    `min_history`: a page first edited a minute ago was not edited in the hours before (or
    its state would exist), so two edits in its first minutes are not a rate of 120 an hour.
    `prior_rate` is the floor: no page is assumed never to be edited.
    """
    before = max(0.0, state.decayed - in_window)
    tau = p.baseline_tau
    watched = tau * (math.exp(-p.window / tau) - math.exp(-max(0.0, ts - state.first_ts) / tau))
    span = max(watched, p.min_history)
    return max(p.prior_rate / 3600.0, before / span)


def observe_page(
    state: PageState | None, edit: Edit, params: DetectorParams
) -> tuple[PageState, PageSignal | None]:
    """Count one edit; return the new state and a signal while the page is a candidate."""
    if not edit.counted:
        return _reverted_by_bot(state, edit), None
    if state is None or page_expired(state, edit.ts, params):
        state = _empty(edit.ts)
    now = max(state.last_ts, edit.ts)
    tau = params.baseline_tau
    decayed = state.decayed * math.exp(-(now - state.last_ts) / tau)
    decayed += math.exp(-(now - edit.ts) / tau)
    revert = edit.revert or _is_size_revert(edit, state.recent)
    recent = [e for e in state.recent if e.ts > now - params.window]
    # model_construct: the values are already typed, and validating the window again on
    # every edit was a third of the detector's time.
    recent.append(
        RecentEdit.model_construct(
            ts=edit.ts,
            user=edit.user,
            anonymous=edit.anonymous,
            delta=edit.length_delta,
            length=edit.length_new,
            revert=revert,
            created=edit.created,
            summary=edit.summary,
        )
    )
    recent = recent[-params.max_recent :]
    new_state = PageState.model_construct(
        first_ts=min(state.first_ts, edit.ts),
        last_ts=now,
        decayed=decayed,
        recent=recent,
        candidate=state.candidate,
    )
    if not state.candidate and not _may_be_candidate(recent, params):
        new_state.candidate = False
        return new_state, None  # the common case: no signal to compute
    signal = _signal(new_state, edit, params)
    was = state.candidate
    new_state.candidate = signal.candidate
    return new_state, signal if (signal.candidate or was) else None


def _empty(ts: float) -> PageState:
    return PageState.model_construct(
        first_ts=ts, last_ts=ts, decayed=0.0, recent=[], candidate=False
    )


def _reverted_by_bot(state: PageState | None, edit: Edit) -> PageState:
    """Mark the last editor's run of edits as reverted (rollback's reach); count nothing."""
    if state is None:
        return _empty(edit.ts)
    if not state.recent:
        return state
    recent = [e.model_copy() for e in state.recent]
    last = recent[-1].user
    for e in reversed(recent):
        if e.user != last:
            break
        e.revert = True
    return state.model_copy(update={"recent": recent, "last_ts": max(state.last_ts, edit.ts)})


def _may_be_candidate(recent: list[RecentEdit], p: DetectorParams) -> bool:
    reverts = sum(e.revert for e in recent)
    if len(recent) - p.revert_weight * reverts < p.candidate_edits:
        return False
    return len({e.user for e in recent}) >= p.candidate_editors


def _signal(state: PageState, edit: Edit, p: DetectorParams) -> PageSignal:
    now = state.last_ts
    recent = state.recent
    counts = Counter(e.user for e in recent)
    ranked = counts.most_common()
    edits = len(recent)
    reverts = sum(e.revert for e in recent)
    effective = max(0.0, edits - p.revert_weight * reverts)
    in_window = sum(math.exp(-(now - e.ts) / p.baseline_tau) for e in recent)
    baseline = _baseline_rate(state, now, in_window, p)
    score = surprise(effective, baseline * p.window, p.dispersion)
    candidate = (
        effective >= p.candidate_edits
        and len(counts) >= p.candidate_editors
        and score >= p.candidate_surprise
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
        same_summary=_same_summary(recent),
        created=any(e.created for e in recent),
        baseline=baseline * 3600.0,
        rate=edits / p.window * 3600.0,
        score=round(score, 3),
        candidate=candidate,
    )


def surprise(count: float, mu: float, shape: float) -> float:
    """-log10 P(N >= count) for N negative binomial with mean `mu` and shape `shape`.

    Summed from the tail's first term upwards (no `1 - head`, which loses tiny tails).
    """
    n = math.ceil(count)
    if n <= 0:
        return 0.0
    mu = max(mu, 1e-9)
    q = mu / (shape + mu)
    log_term = (
        math.lgamma(n + shape)
        - math.lgamma(n + 1)
        - math.lgamma(shape)
        + shape * math.log(shape / (shape + mu))
        + n * math.log(q)
    )
    term, total, k = 1.0, 1.0, n
    while k < n + 2000:
        term *= (k + shape) / (k + 1) * q
        total += term
        k += 1
        if term < 1e-12 * total:
            break
    log10_tail = (log_term + math.log(total)) / math.log(10)
    return round(min(MAX_SURPRISE, max(0.0, -log10_tail)), 3)


def _same_summary(recent: list[RecentEdit]) -> int:
    """Edits (not reverts) with the most common summary, counted only if several wrote it."""
    writers: dict[int, set[str]] = {}
    counts: Counter[int] = Counter()
    for e in recent:
        if e.summary and not e.revert:
            counts[e.summary] += 1
            writers.setdefault(e.summary, set()).add(e.user)
    return max((n for key, n in counts.items() if len(writers[key]) > 1), default=0)
