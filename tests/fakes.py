"""Fakes of the pipeline's own seams (`stages.Source`, `stages.Sink`, the label workers), so its
ordering, watermark and failure paths are tested without servers. Kafka itself is never faked
for a behaviour claim: tests/integration runs the same pipeline against the real broker."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from types import SimpleNamespace

from confluent_kafka import KafkaError

from wikistreams.producer.config import Settings
from wikistreams.producer.enrich import Answer
from wikistreams.producer.events import WikidataLabels
from wikistreams.producer.position import Position
from wikistreams.producer.sink import decode_headers
from wikistreams.producer.source import RawEvent

# The settings `Pipeline` takes as keyword arguments of the same name (required there).
PIPELINE_SETTINGS = (
    "dedupe_window",
    "enrich_max_delay_seconds",
    "enrich_catchup_max_delay_seconds",
    "commit_interval_seconds",
    "commit_max_events",
    "stats_interval_seconds",
)


def pipeline_settings(**overrides: object) -> dict[str, object]:
    """`Pipeline`'s settings at their one default (`config.Settings`), then `overrides`."""
    return {
        **{name: Settings.model_fields[name].default for name in PIPELINE_SETTINGS},
        **overrides,
    }


class FrameSource:
    """A `Source` over given frames: optionally paced, optionally failing after some frames.

    `resumes`: whether the sink's position applies (a live stream) or not (a replay)."""

    def __init__(
        self,
        frames: Iterable[RawEvent],
        *,
        resumes: bool = True,
        pace_seconds: float = 0.0,
        fail_after: int | None = None,
        name: str = "test",
    ) -> None:
        self.frames = list(frames)
        self.resumes = resumes
        self.name = name
        self.since = None
        self.reconnects = 0
        self.state = "new"
        self.opened_at: Position | None = None
        self.closed: bool | None = None  # the `complete` flag `close` was given
        self._pace = pace_seconds
        self._fail_after = fail_after

    def open(self, resume: Position | None, stop: threading.Event) -> Iterator[RawEvent]:
        self.opened_at, self.state = resume, "reading"
        for index, raw in enumerate(self.frames):
            if self._fail_after is not None and index == self._fail_after:
                raise ConnectionError("the stream broke")
            if self._pace and stop.wait(self._pace):
                return
            yield raw
        self.state = "finished"

    def close(self, complete: bool) -> None:
        self.closed = complete


class RecordingSink:
    """What `Pipeline` asks of a `Sink`, kept in lists.

    Transactional by default: records handed over since the last commit are `open` and become
    one committed batch with the position. `fail_commit` makes every commit raise;
    `failed_deliveries` names publishes (0-based) whose delivery report is an error;
    `refuse_dead_letters` makes `dead_letter` raise as a broker that refuses it would."""

    topic, dlq_topic = "enriched", "enriched.dlq"
    position_key = "enriched <- test"

    def __init__(
        self,
        *,
        transactional: bool = True,
        position: Position | None = None,
        fail_commit: Exception | None = None,
        failed_deliveries: Iterable[int] = (),
        refuse_dead_letters: bool = False,
    ) -> None:
        self.transactional = transactional
        self.transactional_id = "wikistreams-producer-test" if transactional else None
        self.state = "ok"
        self.on_wait: Callable[[], None] = lambda: None
        self.commit_retries = 0
        self.started = False
        self.position = position
        self.open: list[bytes] = []  # handed over since the last commit
        self.committed: list[tuple[list[bytes], Position]] = []
        self.published: list[bytes] = []  # every publish, in order
        self.dead_letters: list[tuple[bytes, dict[str, str]]] = []
        self.aborted = 0
        self.fail_commit = fail_commit
        self.failed_deliveries = set(failed_deliveries)
        self.refuse_dead_letters = refuse_dead_letters
        self._reports: list[tuple[Callable[..., None], KafkaError | None]] = []

    def start(self) -> None:
        self.started = True

    def read_position(self) -> Position | None:
        return self.position

    def publish(self, key: str, value: bytes, on_delivery: Callable[..., None]) -> None:
        failed = len(self.published) in self.failed_deliveries
        self.published.append(value)
        self.open.append(value)
        self._reports.append(
            (on_delivery, KafkaError(KafkaError._MSG_TIMED_OUT) if failed else None)
        )

    def dead_letter(
        self,
        value: bytes,
        headers: list[tuple[str, bytes]],
        on_delivery: Callable[..., None],
        key: bytes | None = None,
    ) -> None:
        if self.refuse_dead_letters:
            raise BufferError("the dead-letter topic refuses records")
        self.dead_letters.append((value, decode_headers(headers)))
        self.open.append(value)
        self._reports.append((on_delivery, None))

    def commit(self, position: bytes) -> None:
        self.poll()
        if self.fail_commit is not None:
            raise self.fail_commit
        self.committed.append((self.open, Position.model_validate_json(position)))
        self.open = []

    def abort(self) -> None:
        self.aborted += 1
        self.open = []

    def poll(self, timeout: float = 0.0) -> None:
        """Delivery reports, as librdkafka serves them from `poll`."""
        reports, self._reports = self._reports, []
        for callback, error in reports:
            callback(error, None)

    def flush(self, timeout: float = 30.0) -> int:
        self.poll()
        return 0

    def reachable(self) -> None:
        self.state = "ok"

    def committed_values(self) -> list[bytes]:
        return [value for batch, _position in self.committed for value in batch]


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

    def start(self, callback: Callable[..., None]) -> None:
        pass

    def stop(self) -> None:
        pass


class LateWorkers(SilentWorkers):
    """Label workers that answer every id with labels, `seconds` after it was asked: later
    than a short live deadline, well within a catch-up one."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._deliver: Callable[..., None] | None = None
        self._timers: list[threading.Timer] = []

    def request(self, entity_id: str) -> None:
        answer = Answer(labels={entity_id: WikidataLabels(label_en=f"label of {entity_id}")})
        timer = threading.Timer(self.seconds, lambda: self._deliver and self._deliver(answer))
        self._timers.append(timer)
        timer.start()

    def start(self, callback: Callable[..., None]) -> None:
        self._deliver = callback

    def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()


def run_until_done(pipeline, source: FrameSource, seconds: float = 30.0):
    """Run the pipeline on `source`; `stop` is set only after `seconds`, as a guard: a run that
    should end by itself and does not fails its test instead of hanging the suite."""
    stop = threading.Event()
    guard = threading.Timer(seconds, stop.set)
    guard.start()
    try:
        outcome = pipeline.run(source, stop)
    finally:
        guard.cancel()
    assert not stop.is_set(), "the run did not end by itself"
    return outcome
