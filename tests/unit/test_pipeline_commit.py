"""The pipeline's commit decisions with a recording sink: what goes into the transaction with the
position, and what a lost lease or an aborted transaction does to the run. Real recorded events;
Kafka itself is exercised by tests/integration/test_exactly_once.py."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import wikistreams.producer.pipeline as pipeline_module
from wikistreams.producer.pipeline import Outcome, Pipeline
from wikistreams.producer.position import Position, new_position
from wikistreams.producer.sink import TransactionAborted
from wikistreams.producer.source import RawEvent
from tests.conftest import recorded_events
from tests.standins import recentchange_dir

EVENTS = recorded_events(
    next(recentchange_dir().rglob("polars-book_wikimedia_enwiki_2023-07-29.jsonl"))
)[:40]


class RecordingSink:
    """What `Pipeline` asks of `KafkaSink`, kept in lists; `fail_commit` makes commits fail."""

    topic, dlq_topic = "enriched", "enriched.dlq"
    transactional = True

    def __init__(self, fail_commit: Exception | None = None) -> None:
        self.state = "ok"
        self.on_wait = lambda: None
        self.commit_retries = 0
        self.open: list[bytes] = []  # published since the last commit
        self.committed: list[tuple[list[bytes], Position]] = []
        self.aborted = 0
        self.fail_commit = fail_commit

    def publish(self, key, value, on_delivery) -> None:
        self.open.append(value)

    def dead_letter(self, value, headers, on_delivery, key=None) -> None:
        self.open.append(value)

    def commit(self, position: bytes) -> None:
        if self.fail_commit is not None:
            raise self.fail_commit
        self.committed.append((self.open, Position.model_validate_json(position)))
        self.open = []

    def abort(self) -> None:
        self.aborted += 1
        self.open = []

    def poll(self, timeout: float = 0.0) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> int:
        return 0


class Lease:
    def __init__(self) -> None:
        self.held, self.state = True, "active"


def frames(count: int = len(EVENTS)) -> list[RawEvent]:
    return [RawEvent(data, f"sse-{i}") for i, data in enumerate(EVENTS[:count])]


def run(pipeline: Pipeline, source) -> Outcome:
    return pipeline.run(iter(source), threading.Event())


def test_the_last_commit_holds_every_event_and_the_position_of_the_last_frame():
    sink = RecordingSink()
    assert run(Pipeline(sink, "test", dedupe_window=100), frames()) is Outcome.OK
    published = [value for batch, _position in sink.committed for value in batch]
    assert len(published) == len(EVENTS) and not sink.open
    final = sink.committed[-1][1]
    assert final.last_event_id == f"sse-{len(EVENTS) - 1}"
    assert len(final.ids) == len(EVENTS), "the newest ids travel with the position"


def test_a_resumed_run_drops_what_the_position_names_and_keeps_its_watermark():
    first = RecordingSink()
    run(Pipeline(first, "test", dedupe_window=100), frames(10))
    resume = first.committed[-1][1]
    sink = RecordingSink()
    pipeline = Pipeline(sink, "test", dedupe_window=100, resume=resume)
    assert pipeline.tracker.position == resume.last_event_id
    # The stream replays the last instant: the ten events come again, then the rest.
    run(pipeline, frames())
    published = [value for batch, _position in sink.committed for value in batch]
    assert len(published) == len(EVENTS) - 10
    assert pipeline.stats.totals["duplicates_dropped"] == 10


def test_a_lost_lease_commits_nothing_and_rolls_back():
    sink, lease = RecordingSink(), Lease()
    pipeline = Pipeline(sink, "test", dedupe_window=100, lease=lease)
    lease.held = False  # another copy took over before the first commit
    assert run(pipeline, frames()) is Outcome.STEPPED_DOWN
    assert sink.committed == [] and sink.aborted == 1


def test_an_aborted_transaction_ends_the_run_for_a_rewind():
    sink = RecordingSink(fail_commit=TransactionAborted("coordinator gave up"))
    assert run(Pipeline(sink, "test", dedupe_window=100), frames()) is Outcome.REWIND
    assert sink.committed == [] and sink.aborted == 1


def test_nothing_new_means_no_commit():
    sink = RecordingSink()
    resume = new_position("sse-3", [])
    assert run(Pipeline(sink, "test", dedupe_window=100, resume=resume), []) is Outcome.OK
    assert sink.committed == []


class SilentWorkers:
    """Label workers that never answer: every entity edit waits for its deadline."""

    cache = None
    client = SimpleNamespace(
        stats=SimpleNamespace(calls=0, errors=0, latency_ms_total=0.0, latency_ms_max=0.0)
    )
    paused_seconds = 0.0
    breaker_state = "closed"

    def request(self, entity_id: str) -> None:
        pass

    def start(self, callback) -> None:
        pass

    def stop(self) -> None:
        pass


def test_reading_waits_while_too_many_events_are_past_a_parked_one(monkeypatch):
    """The position names every event published past the oldest parked entity edit; that list
    is bounded, so a slow API holds the read instead of growing a record Kafka would refuse."""
    monkeypatch.setattr(pipeline_module, "MAX_IDS_BEYOND", 5)
    entity_edit = recorded_events(
        next(recentchange_dir().rglob("editgroups_one_qs_batch_wikidatawiki_2018-03-07.jsonl"))
    )[0]
    source = [RawEvent(entity_edit, "sse-entity"), *frames()]
    sink = RecordingSink()
    pipeline = Pipeline(
        sink, "test", dedupe_window=100, workers=SilentWorkers(), enrich_max_delay=0.3
    )
    assert run(pipeline, source) is Outcome.OK
    assert pipeline.stats.totals["position_full_waits"] > 0, "the read waited for the deadline"
    published = [value for batch, _position in sink.committed for value in batch]
    assert len(published) == len(source), "and nothing was lost meanwhile"
    assert sink.committed[-1][1].last_event_id == source[-1].sse_id
