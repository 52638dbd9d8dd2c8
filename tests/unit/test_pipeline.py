"""`Pipeline.run` through its seams, with fakes of `Source`, `Sink` and the label workers:
ordering, the position watermark, resuming, dead-lettering and how a run ends. Real recorded
events; Kafka itself is exercised by tests/integration (test_exactly_once, test_producer_kafka)."""

from __future__ import annotations

import inspect
import threading
from datetime import datetime, timedelta, timezone

import orjson
import pytest

import wikistreams.producer.position as position_module
from tests.conftest import recorded_events
from tests.fakes import (
    FrameSource,
    LateWorkers,
    RecordingSink,
    SilentWorkers,
    pipeline_settings,
    run_until_done,
)
from tests.standins import recentchange_dir
from wikistreams.producer.config import Settings
from wikistreams.producer.decode import decode_event
from wikistreams.producer.pipeline import Outcome, Pipeline
from wikistreams.producer.position import new_position
from wikistreams.producer.sink import TransactionAborted
from wikistreams.producer.source import RawEvent

EVENTS = recorded_events(
    next(recentchange_dir().rglob("polars-book_wikimedia_enwiki_2023-07-29.jsonl"))
)[:40]
ENTITY_EDIT = recorded_events(
    next(recentchange_dir().rglob("editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"))
)[0]


def frames(count: int = len(EVENTS)) -> list[RawEvent]:
    return [RawEvent(data, f"sse-{i}") for i, data in enumerate(EVENTS[:count])]


def ids_of(values: list[bytes]) -> list[str]:
    return [orjson.loads(value)["event_id"] for value in values]


def frame_ids(raws: list[RawEvent]) -> list[str]:
    return [decode_event(raw.data).meta.id for raw in raws]


def pipeline(sink: RecordingSink, **options) -> Pipeline:
    return Pipeline(sink, **pipeline_settings(dedupe_window=100, **options))


# --- ordering and the watermark --------------------------------------------------------------


def test_events_leave_in_frame_order_and_the_last_commit_covers_the_last_frame():
    sink, source = RecordingSink(), FrameSource(frames())
    assert run_until_done(pipeline(sink), source) is Outcome.OK
    assert sink.started, "older copies are fenced before anything is read"
    assert ids_of(sink.committed_values()) == frame_ids(source.frames) and not sink.open
    final = sink.committed[-1][1]
    assert final.last_event_id == "sse-39"
    assert len(final.ids) == len(EVENTS), "the newest ids travel with the position"
    assert source.closed is True, "read to its end and committed: the source is told so"


def test_a_parked_entity_edit_is_overtaken_and_holds_the_watermark_until_it_leaves():
    """Events without an entity never wait for labels; the position's watermark stays below the
    waiting edit, and the ids published past it are named instead, so a crash meanwhile resumes
    exactly: from before the edit, dropping what was already published."""
    source = FrameSource([RawEvent(ENTITY_EDIT, "sse-entity"), *frames(10)], pace_seconds=0.02)
    sink = RecordingSink()
    run = pipeline(
        sink, workers=SilentWorkers(), enrich_max_delay_seconds=1.0, commit_interval_seconds=0.01
    )
    assert run_until_done(run, source) is Outcome.OK

    published = ids_of(sink.published)
    edit_id = decode_event(ENTITY_EDIT).meta.id
    assert published == frame_ids(source.frames[1:]) + [edit_id], "overtaken, then released"
    assert orjson.loads(sink.published[-1])["enrichment_status"] == "unavailable"
    while_parked = [position for batch, position in sink.committed if edit_id not in ids_of(batch)]
    assert while_parked, "commits went on while the edit waited"
    for position in while_parked:
        assert position.last_event_id is None, "the watermark never passes a waiting frame"
        assert set(position.ids) <= set(published[:-1])
    assert sink.committed[-1][1].last_event_id == "sse-9"


def test_reading_waits_while_too_many_events_are_past_a_parked_one(monkeypatch):
    """The position names every event published past the oldest parked entity edit; that list
    is bounded, so a slow API holds the read instead of growing a record Kafka would refuse."""
    monkeypatch.setattr(position_module, "RECENT_BELOW", 2)
    monkeypatch.setattr(position_module, "IDS_MAX_BYTES", 300)  # seven 36-character ids
    source = FrameSource([RawEvent(ENTITY_EDIT, "sse-entity"), *frames()])
    sink = RecordingSink()
    run = pipeline(sink, workers=SilentWorkers(), enrich_max_delay_seconds=0.3)
    assert run_until_done(run, source) is Outcome.OK
    assert run.stats.totals["position_full_waits"] > 0, "the read waited for the deadline"
    assert len(sink.committed_values()) == len(source.frames), "and nothing was lost meanwhile"
    assert sink.committed[-1][1].last_event_id == source.frames[-1].sse_id


# --- the label deadline: live, or catching up --------------------------------------------------

# Labels come 1 s after they are asked: past the live deadline, well within the catch-up one.
LATE_LABELS = {"enrich_max_delay_seconds": 0.1, "enrich_catchup_max_delay_seconds": 60.0}
HOUR_AGO = datetime.now(timezone.utc) - timedelta(hours=1)


def entity_edit_run(sink: RecordingSink, source: FrameSource) -> Pipeline:
    run = pipeline(sink, workers=LateWorkers(1.0), commit_interval_seconds=0.01, **LATE_LABELS)
    assert run_until_done(run, source) is Outcome.OK
    return run


def edit_then_others(since: str | None = None) -> FrameSource:
    source = FrameSource([RawEvent(ENTITY_EDIT, "sse-entity"), *frames(10)], pace_seconds=0.02)
    source.since = since
    return source


@pytest.mark.parametrize(
    "source, position",
    [
        (lambda: edit_then_others(since="2018-03-07T00:00:00Z"), None),
        (
            edit_then_others,
            new_position("sse-old", []).model_copy(update={"committed_at": HOUR_AGO}),
        ),
    ],
    ids=["backfill", "resume-an-hour-behind"],
)
def test_while_catching_up_an_entity_edit_waits_past_the_live_deadline_for_its_labels(
    source, position
):
    """A backfill (or a resume far behind now) has the API pace entity edits, not the live 2 s:
    the edit leaves labelled; events without an entity id overtake it, never held back."""
    sink, frames_in = RecordingSink(position=position), source()
    entity_edit_run(sink, frames_in)
    published = [orjson.loads(value) for value in sink.committed_values()]
    assert [p["event_id"] for p in published] == frame_ids(frames_in.frames[1:]) + [
        decode_event(ENTITY_EDIT).meta.id
    ]
    assert {p["enrichment_status"] for p in published[:-1]} == {"not_applicable"}
    assert published[-1]["enrichment_status"] == "enriched"
    assert published[-1]["wikidata_label_en"].startswith("label of Q")


def live_dated(data: bytes) -> bytes:
    event = orjson.loads(data)
    event["meta"]["dt"] = datetime.now(timezone.utc).isoformat()
    return orjson.dumps(event)


@pytest.mark.parametrize(
    "since", [None, "2026-12-08T00:00:00Z"], ids=["no-backfill", "backfill-at-the-live-edge"]
)
def test_a_live_entity_edit_keeps_the_live_deadline(since):
    """Live edits wait the live deadline; a backfill that reached now (its events are a
    minute old or newer) is live again."""
    data = live_dated(ENTITY_EDIT) if since else ENTITY_EDIT
    frames_in = FrameSource([RawEvent(data, "sse-entity"), *frames(10)], pace_seconds=0.02)
    frames_in.since = since
    sink = RecordingSink()
    entity_edit_run(sink, frames_in)
    published = {p["event_id"]: p for p in map(orjson.loads, sink.committed_values())}
    edit = published[decode_event(ENTITY_EDIT).meta.id]
    assert len(published) == 11
    assert edit["enrichment_status"] == "unavailable", "it left at the live deadline"


def test_a_catch_up_wait_keeps_the_position_record_bounded(monkeypatch):
    """The longer wait lets more events overtake the parked edit; the record that names them
    stays within its budget: reading waits until the labels release the edit."""
    monkeypatch.setattr(position_module, "RECENT_BELOW", 2)
    monkeypatch.setattr(position_module, "IDS_MAX_BYTES", 300)  # seven 36-character ids
    sink = RecordingSink()
    source = FrameSource([RawEvent(ENTITY_EDIT, "sse-entity"), *frames()])
    source.since = "2018-03-07T00:00:00Z"
    run = entity_edit_run(sink, source)
    assert run.stats.totals["position_full_waits"] > 0, "the read waited for the labels"
    assert all(len(orjson.dumps(p.ids)) <= 300 for _batch, p in sink.committed)
    statuses = [orjson.loads(v)["enrichment_status"] for v in sink.committed_values()]
    assert statuses.count("enriched") == 1 and len(statuses) == len(source.frames)


# --- resuming ---------------------------------------------------------------------------------


def test_a_resumed_run_opens_the_source_at_the_position_and_drops_what_it_names():
    first = RecordingSink()
    run_until_done(pipeline(first), FrameSource(frames(10)))
    position = first.committed[-1][1]
    sink, source = RecordingSink(position=position), FrameSource(frames())
    run = pipeline(sink)
    # The stream replays the last instant: the ten events come again, then the rest.
    assert run_until_done(run, source) is Outcome.OK
    assert source.opened_at == position
    assert ids_of(sink.committed_values()) == frame_ids(frames())[10:]
    assert run.stats.totals["duplicates_dropped"] == 10


def test_a_replay_source_ignores_the_stream_position():
    """A source that does not resume: the sink's position neither opens it nor seeds the
    dedupe window."""
    first = RecordingSink()
    run_until_done(pipeline(first), FrameSource(frames(10)))
    sink = RecordingSink(position=first.committed[-1][1])
    source = FrameSource(frames(10), resumes=False)
    assert run_until_done(pipeline(sink), source) is Outcome.OK
    assert source.opened_at is None
    assert len(sink.committed_values()) == 10


def test_nothing_new_means_no_commit():
    sink = RecordingSink(position=new_position("sse-3", []))
    assert run_until_done(pipeline(sink), FrameSource([])) is Outcome.OK
    assert sink.committed == []


# --- dead letters and failures ----------------------------------------------------------------


def test_an_event_id_too_long_for_the_position_is_a_dead_letter_and_the_record_stays_small():
    """Three 450 KB `meta.id`s once made a 1.35 MB position record that Kafka refused."""
    huge = []
    for i in range(3):
        event = orjson.loads(EVENTS[i])
        event["meta"]["id"] = f"{i}-" + "i" * 450_000
        huge.append(RawEvent(orjson.dumps(event), f"sse-huge-{i}"))
    source = FrameSource([*frames(10), *huge, *frames()[10:]])
    sink = RecordingSink()
    assert run_until_done(pipeline(sink), source) is Outcome.OK
    assert [h["stage"] for _value, h in sink.dead_letters] == ["validate"] * 3
    assert all("meta.id" in h["exception.message"] for _value, h in sink.dead_letters)
    assert ids_of(sink.published) == frame_ids(frames())
    assert max(len(p.encode()) for _batch, p in sink.committed) < 10_000


def test_every_pipeline_setting_comes_from_the_settings_default_only():
    """`Pipeline(commit_max_events=5000)` had drifted from the setting's 50,000: a parameter
    named like a setting has no default of its own."""
    params = inspect.signature(Pipeline).parameters
    settings = [p for name, p in params.items() if name in Settings.model_fields]
    assert {p.name for p in settings} >= {"commit_max_events", "commit_interval_seconds"}
    assert [p.name for p in settings if p.default is not inspect.Parameter.empty] == []


def test_a_bad_frame_is_dead_lettered_with_its_reason_and_the_stream_goes_on():
    bad = RawEvent(b'{"not": "an event"', "sse-bad")
    source = FrameSource([*frames(5), bad, *frames(10)[5:]])
    sink = RecordingSink()
    assert run_until_done(pipeline(sink), source) is Outcome.OK
    [(value, headers)] = sink.dead_letters
    assert value == bad.data
    assert headers["stage"] == "parse" and headers["sse.id"] == "sse-bad"
    assert headers["source"] == "test"
    assert len(sink.published) == 10
    assert sink.committed[-1][1].last_event_id == "sse-9", "the bad frame is finished too"


def test_a_failed_delivery_without_transactions_is_dead_lettered_with_the_kafka_error():
    sink = RecordingSink(transactional=False, failed_deliveries={3})
    run = pipeline(sink)
    assert run_until_done(run, FrameSource(frames(10))) is Outcome.OK
    [(value, headers)] = sink.dead_letters
    assert value == EVENTS[3]
    assert (headers["stage"], headers["exception.class.name"]) == ("produce", "KafkaError")
    assert run.stats.totals["dlq"] == 1 and run.stats.totals["delivery_errors"] == 1


def test_a_source_that_breaks_ends_the_run_failed_after_committing_what_it_read():
    source = FrameSource(frames(10), fail_after=6)
    sink = RecordingSink()
    assert run_until_done(pipeline(sink), source) is Outcome.FAILED
    assert len(sink.committed_values()) == 6
    assert sink.committed[-1][1].last_event_id == "sse-5"
    assert source.closed is False, "a replay must not record progress after a failed run"


def test_a_dead_letter_kafka_refuses_ends_the_run_and_commits_nothing():
    """Neither topic takes the frame: committing a position past it would lose it."""
    source = FrameSource([*frames(3), RawEvent(b"garbage", "sse-bad"), *frames(6)[3:]])
    sink = RecordingSink(refuse_dead_letters=True)
    assert run_until_done(pipeline(sink), source) is Outcome.FAILED
    assert sink.committed == [] and sink.aborted == 1


def test_a_lost_lease_commits_nothing_and_rolls_back():
    class Lease:
        held, state = False, "lost"  # another copy took over before the first commit

    sink = RecordingSink()
    assert run_until_done(pipeline(sink, lease=Lease()), FrameSource(frames())) is (
        Outcome.STEPPED_DOWN
    )
    assert sink.committed == [] and sink.aborted == 1


def test_an_aborted_transaction_ends_the_run_for_a_rewind():
    sink = RecordingSink(fail_commit=TransactionAborted("coordinator gave up"))
    assert run_until_done(pipeline(sink), FrameSource(frames())) is Outcome.REWIND
    assert sink.committed == [] and sink.aborted == 1


@pytest.mark.timeout(20)
def test_stop_ends_a_live_run_and_the_source_is_not_complete():
    source = FrameSource(frames(), pace_seconds=0.5)
    sink, stop = RecordingSink(), threading.Event()
    threading.Timer(1.2, stop.set).start()
    assert pipeline(sink).run(source, stop) is Outcome.OK
    assert 0 < len(sink.committed_values()) < len(EVENTS)
    assert source.closed is False
