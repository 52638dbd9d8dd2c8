"""The producer's data path: source -> decode -> drop canaries/replays -> enrich -> Kafka.

`Pipeline.run(source, stop)` is the whole of a run: fence older copies (`Sink.start`), read the
committed position, open the source after it, stream, commit, close. Its two ends are the
`stages.Source` and `stages.Sink` protocols, so the live stream and a dead-letter replay go
through the same code, and unit tests drive it with fakes.

One thread does all the per-event work, fed by one inbox: a reader thread puts the source's
frames there (and stops reading while the inbox is full, so a slow Kafka pushes back on the
network read instead of growing memory). The enrichment workers' answers bypass the frames
(a deque read at every batch), so a backlog of frames never makes labels late.
Nothing on this thread waits for the network except `produce()` when Kafka's own queue is full.

Every frame gets a sequence number and is finished exactly once: handed to Kafka, dead-lettered
or dropped on purpose. Whatever goes wrong with one frame (bad bytes, a bug, a record too big for
Kafka) dead-letters that frame with its stage and reason, and the stream goes on. Every commit
interval (or `commit_max_events`) the open Kafka transaction is committed together with the
position record (`producer.position`): the watermark over a contiguous run of finished frames
plus the ids finished beyond it. A crash at any point resumes from the last commit, exactly.
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import datetime, timezone
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from enum import IntEnum
from typing import NamedTuple

import structlog
from confluent_kafka import KafkaError, KafkaException, Message

from wikistreams.producer.backfill import CAUGHT_UP_LAG_SECONDS, CatchUp
from wikistreams.producer.cache import CachedLabels
from wikistreams.producer.decode import StageError, decode_event
from wikistreams.producer.dedupe import RecentIds
from wikistreams.producer.enrich import Answer, Enricher, LabelWorkers
from wikistreams.producer.events import (
    EnrichmentStatus,
    EventTimeBounds,
    Meta,
    RecentChange,
    encode_record,
    enriched_record,
)
from wikistreams.producer.health import Heartbeat
from wikistreams.producer.position import (
    DeliveryTracker,
    Position,
    new_position,
    this_producer,
)
from wikistreams.producer.sink import (
    Fenced,
    RecordTooLarge,
    TransactionAborted,
    dead_letter_headers,
    oversize_stub,
)
from wikistreams.producer.source import RawEvent
from wikistreams.producer.stages import Lease, Sink, Source
from wikistreams.producer.stats import Stats

log = structlog.get_logger("producer.pipeline")

IDLE_POLL_SECONDS = 0.1
# Inbox items handled between two rounds of housekeeping (Kafka poll, expiry, commit).
BATCH = 500


# Delivery reports of records an abort took back: not failures, the batch is read again.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


class Outcome(IntEnum):
    """How a run ended; also the process exit code of a producer that stops there."""

    OK = 0
    FAILED = 1
    REWIND = 75  # the transaction was aborted: start again from the committed position
    STEPPED_DOWN = 76  # fenced or lease lost: another copy is active now


class _End:
    """The source is exhausted (a file replay ended, a dead-letter replay reached the end)."""


class _Wake:
    """A nudge for a loop blocked on the inbox: `stop` was set, or an enrichment answer waits.

    For `stop` not only for speed: CPython 3.11's `SimpleQueue.get(timeout=...)` can block for
    ever once a signal handler ran during the wait and outlasted the timeout (seen here: SIGTERM
    during a catch-up hung the producer); a `put` always releases it.
    """


@dataclass(frozen=True, slots=True)
class _SourceFailed:
    error: BaseException


# What the reader thread and the enrichment workers put into the inbox.
_InboxItem = RawEvent | type[_End] | type[_Wake] | _SourceFailed


class _InFlight(NamedTuple):
    """One frame on its way: its sequence number (for the position) and its bytes."""

    seq: int
    raw: RawEvent


class Pipeline:
    def __init__(
        self,
        sink: Sink,
        *,
        dedupe_window: int,
        enrich_max_delay_seconds: float,
        enrich_catchup_max_delay_seconds: float,
        commit_interval_seconds: float,
        commit_max_events: int,
        stats_interval_seconds: float,
        workers: LabelWorkers | None = None,
        queue_size: int = 2000,
        heartbeat: Heartbeat | None = None,
        lease: Lease | None = None,
        event_times: EventTimeBounds | None = None,
    ) -> None:
        """The keyword arguments named like settings are those settings (`config.Settings`,
        passed by `main.build_pipeline`): required here, so that they have one default.

        `lease`: checked before every commit, None when this copy is always active.
        `event_times`: events outside them are dead-lettered; None accepts any time."""
        self.sink = sink
        self.enricher = Enricher(workers, self._publish, enrich_max_delay_seconds)
        self.tracker = DeliveryTracker(position=None)
        self.recent = RecentIds(dedupe_window)
        self.stats = Stats()
        self.heartbeat = heartbeat or Heartbeat()
        self.lease = lease
        self.event_times = event_times
        self.catch_up = CatchUp(None)
        self._enrich_max_delay = enrich_max_delay_seconds
        self._enrich_catchup_max_delay = max(
            enrich_catchup_max_delay_seconds, enrich_max_delay_seconds
        )
        # A backfill, or a resume far behind now: entity edits may wait for their labels up to
        # the catch-up deadline, until an event read is within a minute of now.
        self._catching_up = False
        self._commit_interval = commit_interval_seconds
        self._commit_max_events = commit_max_events
        self._stats_interval = stats_interval_seconds
        self._queue_size = queue_size
        self._inbox: queue.SimpleQueue[_InboxItem] = queue.SimpleQueue()
        # Enrichment answers skip the queue of frames: during a backlog the inbox holds up to
        # `queue_size` frames, and an answer behind them would arrive after its events' deadline.
        self._answers: deque[Answer] = deque()
        self._committed_position = self.tracker.position
        self._committed_at = time.monotonic()
        self._next_commit = self._committed_at + commit_interval_seconds
        self._uncommitted = 0  # frames finished since the last commit
        self._commits = 0
        self._next_stats = 0.0
        self._commit_seconds_max = 0.0
        self._position_bytes_max = 0  # the largest position record since the last stats line
        self._failed: str | None = None
        self._outcome = Outcome.OK
        self._rollback = False  # end without committing (see `_fail`)
        self._is_fenced = False
        self._ended = False  # the source was read to its end
        self._source: Source | None = None

    # --- running ---------------------------------------------------------------------------

    def run(self, source: Source, stop: threading.Event) -> Outcome:
        """Fence, resume, then consume `source` until it ends or `stop` is set.

        Raises `position.PositionUnavailable` / `PositionError` when the committed position
        cannot be read (before anything was read or written); every other ending is an Outcome.
        """
        try:
            self.sink.start()  # from here on no older copy can commit; the position is final
        except KafkaException as exc:
            log.error("transactions_init_failed", error=str(exc)[:300])
            return Outcome.REWIND
        resume = self.sink.read_position() if source.resumes else None
        self._resume_from(resume)
        self._source = source
        frames = source.open(resume, stop)
        self.catch_up = CatchUp(source.since)
        self._catching_up = source.since is not None or _far_behind(resume)
        self._set_label_deadline()
        outcome = self._stream(frames, stop)
        source.close(complete=self._ended and outcome is Outcome.OK)
        return outcome

    def _resume_from(self, resume: Position | None) -> None:
        """Start after `resume`: its ids are already published (dropped if read again)."""
        log.info(
            "active",
            stream=self.sink.position_key,
            transactional_id=self.sink.transactional_id,
            last_event_id=resume.last_event_id if resume else None,
            previous_producer=resume.producer if resume else None,
            position_committed_at=(
                resume.committed_at.isoformat() if resume and resume.committed_at else None
            ),
            takeover=bool(resume and resume.producer != this_producer()),
        )
        if resume is None:
            return
        self.tracker = DeliveryTracker(position=resume.last_event_id)
        self.tracker.carry(resume.ids)
        self.recent.remember(resume.ids)
        self._committed_position = self.tracker.position

    def _stream(self, source: Iterable[RawEvent], stop: threading.Event) -> Outcome:
        self.sink.on_wait = self._waiting
        if self.enricher.workers is not None:
            started = time.monotonic()
            warmed = self.enricher.warm_up()
            log.info("labels_warmed", entries=warmed, seconds=round(time.monotonic() - started, 3))
            self.enricher.workers.start(self._deliver_answer)
        reader = threading.Thread(target=self._read, args=(source, stop), daemon=True)
        reader.start()
        threading.Thread(target=self._wake_on, args=(stop,), daemon=True, name="wake").start()
        self._next_stats = time.monotonic() + self._stats_interval
        while not stop.is_set() and self._failed is None:
            if not self._handle_inbox():
                break
            self._housekeeping()
            self._maybe_log_stats()
        return self.close()

    def _waiting(self) -> None:
        """While a produce or commit waits for Kafka: keep /health and the stats line going."""
        self._beat()
        self._maybe_log_stats()

    def _maybe_log_stats(self) -> None:
        if time.monotonic() >= self._next_stats:
            self.log_stats()
            self._next_stats = time.monotonic() + self._stats_interval

    def _deliver_answer(self, answer: Answer) -> None:
        """Called by the enrichment workers: keep the answer, wake the loop if it is idle."""
        self._answers.append(answer)
        self._inbox.put(_Wake)

    def _take_answers(self) -> None:
        answers = self._answers
        while answers:
            self.enricher.answered(answers.popleft())

    def _wake_on(self, stop: threading.Event) -> None:
        stop.wait()
        self._inbox.put(_Wake)

    def _read(self, source: Iterable[RawEvent], stop: threading.Event) -> None:
        inbox, limit = self._inbox, self._queue_size
        try:
            for raw in source:
                while inbox.qsize() >= limit:
                    if stop.wait(0.005):
                        return
                inbox.put(raw)
                if stop.is_set():
                    return
            if not stop.is_set():  # a source cut short by `stop` has not reached its end
                inbox.put(_End)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread to report
            inbox.put(_SourceFailed(exc))

    def _handle_inbox(self) -> bool:
        """Handle up to BATCH inbox items; False once the source has ended or failed."""
        wait = self.enricher.seconds_to_next_deadline()
        timeout = IDLE_POLL_SECONDS if wait is None else min(wait, IDLE_POLL_SECONDS)
        if self.tracker.full:
            # The position names every event published past the oldest parked one; a record
            # over Kafka's limit could never commit. Read no further until labels (or their
            # deadline) release it: the reader thread and the network wait meanwhile.
            self.stats.add("position_full_waits")
            time.sleep(max(timeout, 0.001))
            return True
        try:
            item = self._inbox.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return True
        self._take_answers()
        handled = 0
        while True:
            if type(item) is RawEvent:
                self.accept(item)
            elif item is _End:
                self._ended = True
                return False
            elif isinstance(item, _SourceFailed):
                error = item.error
                self._failed = f"source failed: {type(error).__name__}: {error}"
                self._outcome = Outcome.FAILED
                log.error("source_failed", error_class=type(error).__name__, error=str(error))
                return False
            handled += 1
            if handled >= BATCH or self.tracker.full:
                return True
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _set_label_deadline(self) -> None:
        """The catch-up deadline while catching up (the API paces entity edits then, and they
        arrive labelled); the live one from the first event read that is live."""
        live = not self._catching_up
        self.enricher.max_delay = self._enrich_max_delay if live else self._enrich_catchup_max_delay

    def _caught_up(self, event_time: datetime) -> None:
        if _age_seconds(event_time) <= CAUGHT_UP_LAG_SECONDS:
            self._catching_up = False
            self._set_label_deadline()
            log.info("labels_live_deadline", enrich_max_delay_seconds=self._enrich_max_delay)

    def _housekeeping(self) -> None:
        self._take_answers()
        self.enricher.expire()
        self._poll()
        self._maybe_commit()
        self._beat()

    def close(self) -> Outcome:
        """Let parked events leave, commit them with the position, wait for Kafka.

        After a failed run (aborted transaction, fenced, lease lost) nothing more is committed:
        the open transaction is rolled back and the next active run resumes from the position.
        """
        started = time.monotonic()
        if not self._rollback:
            # A source read to its end lets parked edits wait their deadline (a replay catching
            # up gets its labels); a stop waits the live one at most, so shutdown stays short.
            wait = self.enricher.max_delay if self._ended else self._enrich_max_delay
            deadline = started + wait
            while len(self.enricher) and time.monotonic() < deadline and not self._rollback:
                try:
                    self._inbox.get(timeout=0.05)
                except queue.Empty:
                    pass
                self._take_answers()
                self.enricher.expire()
                self._poll()
            if not self._rollback:
                self.enricher.release_all()
        if self.enricher.workers is not None:
            self.enricher.workers.stop()
        if not self._rollback:
            self._maybe_commit(force=True)
        if self._rollback:
            if not self._is_fenced:  # a fenced producer may not even abort: the new one did
                self.sink.abort()
            undelivered = 0
        else:
            try:
                undelivered = self.sink.flush(30.0)
            except Fenced as exc:  # only without transactions: nothing committed is at risk
                self._fenced(exc)
                undelivered = 0
        self.log_stats()
        log.info(
            "shutdown",
            total_events_in=self.stats.totals["events_in"],
            total_events_out=self.stats.totals["events_out"],
            total_dlq=self.stats.totals["dlq"],
            undelivered=undelivered,
            checkpoint=self._committed_position,
            outcome=self._outcome.name.lower(),
            error=self._failed,
            shutdown_seconds=round(time.monotonic() - started, 3),
        )
        if undelivered and self._outcome is Outcome.OK:
            return Outcome.FAILED
        return self._outcome

    # --- stages ------------------------------------------------------------------------------

    def accept(self, raw: RawEvent) -> None:
        """Decode one frame and hand it to enrichment, or finish it here. Never raises."""
        flight = _InFlight(self.tracker.begin(raw.sse_id), raw)
        self.stats.received += 1
        try:
            if raw.oversize_bytes is not None:
                self._dead_letter_oversize_frame(flight)
                return
            change = decode_event(raw.data, raw.event_type)
            if change.is_canary:
                self._drop(flight, "canary_dropped")
            elif self.event_times and (late := self.event_times.problem(change.meta.dt)):
                self.dead_letter(flight, StageError("validate", "EventTimeOutOfRange", late))
            elif self.recent.seen(change.meta.id):
                # Named again in the position: a later resume may replay it once more.
                self._drop(flight, "duplicates_dropped", change.meta.id)
            else:
                if self._catching_up:
                    self._caught_up(change.meta.dt)
                self.tracker.expect(flight.seq, change.meta.id)
                self.enricher.add(flight, change)
        except StageError as err:
            self.dead_letter(flight, err)
        except Exception as exc:  # noqa: BLE001 - one event's bug must not stop the stream
            self._internal_error(flight, exc)

    def _publish(
        self,
        flight: _InFlight,
        change: RecentChange,
        entity_id: str | None,
        labels: CachedLabels,
        status: EnrichmentStatus,
    ) -> None:
        """Send one event to the enriched topic (the enricher calls this when it may leave)."""
        try:
            value = encode_record(enriched_record(change, entity_id, labels, status))
            on_delivery = partial(self._delivered, flight, change.type, change.meta)
            self.sink.publish(f"{change.wiki}:{change.title}", value, on_delivery)
        except RecordTooLarge as exc:
            self.dead_letter(flight, StageError("produce", "RecordTooLarge", str(exc)))
        except Fenced as exc:
            self._fenced(exc)
        except Exception as exc:  # noqa: BLE001
            self._internal_error(flight, exc)
        else:
            # Handed over: the next commit makes it visible with a position that covers it.
            self.tracker.done(flight.seq, change.meta.id)
            self._uncommitted += 1

    def _delivered(
        self,
        flight: _InFlight,
        event_type: str,
        meta: Meta,
        err: KafkaError | None,
        _msg: Message,
    ) -> None:
        if err is None:
            self.stats.delivered(event_type, meta.dt)
            if self.sink.state != "ok":
                self.sink.reachable()
            return
        if err.code() in _PURGED:  # our own abort (rollback) took it back: expected, quiet
            return
        self.stats.add("delivery_errors")
        log.error("delivery_failed", error=str(err), topic=self.sink.topic, event_id=meta.id)
        if not self.sink.transactional:
            # Already counted as finished: flushed before the position that covers it.
            self.dead_letter(flight, StageError("produce", "KafkaError", str(err)), finish=False)
        # In a transaction the failed record makes the commit fail: the whole batch is rolled
        # back and read again from the committed position (Outcome.REWIND).

    def dead_letter(
        self,
        flight: _InFlight,
        err: StageError,
        extra: dict[str, str] | None = None,
        finish: bool = True,
    ) -> None:
        """Send the frame's original bytes to the dead-letter topic with the reason.

        `finish=False` for a frame already counted as finished (a failed delivery)."""
        value, stub = oversize_stub(flight.raw.data)
        log.warning(
            "dead_letter",
            stage=err.stage,
            error_class=err.error_class,
            error=str(err)[:500],
            sse_id=flight.raw.sse_id,
        )
        headers = dead_letter_headers(
            err.stage,
            err.error_class,
            str(err),
            flight.raw.sse_id,
            self._source.name if self._source is not None else "",
            extra={**stub, **(extra or {})},
        )
        try:
            self.sink.dead_letter(value, headers, self._dead_lettered)
        except Fenced as exc:
            self._fenced(exc)
            return
        except Exception as exc:  # noqa: BLE001 - neither topic takes it: stop, replay later
            self._fail(f"dead-letter produce failed: {type(exc).__name__}: {exc}")
            return
        if finish:
            self.tracker.done(flight.seq)
            self._uncommitted += 1

    def _dead_lettered(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self.stats.add("dlq")
        elif not self.sink.transactional:
            # Neither topic took it: stop before a position covers it; a restart replays it.
            self._fail(f"dead-letter delivery failed: {err}")

    def _dead_letter_oversize_frame(self, flight: _InFlight) -> None:
        raw = flight.raw
        size = raw.oversize_bytes or 0
        err = StageError("source", "FrameTooLarge", f"SSE frame of {size} bytes over the limit")
        extra = {"original.size": str(size), "original.sha256": raw.sha256 or ""}
        self.dead_letter(flight, err, extra)

    def _internal_error(self, flight: _InFlight, exc: Exception) -> None:
        log.error(
            "internal_error",
            error_class=type(exc).__name__,
            error=str(exc)[:500],
            sse_id=flight.raw.sse_id,
            exc_info=exc,
        )
        self.dead_letter(flight, StageError.from_exception("internal", exc))

    def _drop(self, flight: _InFlight, counter: str, event_id: str | None = None) -> None:
        self.stats.add(counter)
        self.tracker.done(flight.seq, event_id)

    def _fail(self, reason: str, outcome: Outcome = Outcome.FAILED) -> None:
        """End the run without committing what the open transaction holds."""
        if self._failed is None:
            self._failed, self._outcome, self._rollback = reason, outcome, True
        log.error("pipeline_failed", error=reason, outcome=outcome.name.lower())

    def _fenced(self, exc: Exception) -> None:
        self._is_fenced = True
        self._fail(f"fenced by a newer copy of this producer: {exc}", Outcome.STEPPED_DOWN)

    # --- bookkeeping -------------------------------------------------------------------------

    def _maybe_commit(self, force: bool = False) -> None:
        """Commit the open transaction with the position, on the interval or event count.

        A commit waits for Kafka (the heartbeat goes on meanwhile); while the broker is away it
        retries, and `checkpoint_age_seconds` grows. What cannot be committed ends the run.
        """
        now = time.monotonic()
        if not force and now < self._next_commit and self._uncommitted < self._commit_max_events:
            return
        self._next_commit = now + self._commit_interval
        position = self.tracker.position
        if not self._uncommitted and position == self._committed_position:
            return
        if self.lease is not None and not self.lease.held:
            self._fail("lease lost: another copy of this producer is active", Outcome.STEPPED_DOWN)
            return
        trimmed = self.tracker.trimmed
        record = new_position(position, self.tracker.position_ids()).encode()
        if self.tracker.trimmed > trimmed:
            log.warning(
                "position_trimmed",
                dropped_ids=self.tracker.trimmed - trimmed,
                reason="the resumed position's ids not read again would outgrow the record",
            )
        self._position_bytes_max = max(self._position_bytes_max, len(record))
        try:
            self.sink.commit(record)
        except Fenced as exc:
            self._fenced(exc)
            return
        except TransactionAborted as exc:
            self._fail(f"transaction aborted: {exc}", Outcome.REWIND)
            return
        except Exception as exc:  # noqa: BLE001 - e.g. a non-retriable KafkaException
            self._fail(f"commit failed: {type(exc).__name__}: {exc}", Outcome.REWIND)
            return
        finished = time.monotonic()
        self._commits += 1
        self._commit_seconds_max = max(self._commit_seconds_max, finished - now)
        self._committed_position = position
        self._committed_at = finished
        self._uncommitted = 0

    def _poll(self) -> None:
        """Serve Kafka's delivery reports; a fenced or aborted producer ends the run."""
        try:
            self.sink.poll(0)
        except Fenced as exc:
            self._fenced(exc)
        except TransactionAborted as exc:
            self._fail(f"transaction aborted: {exc}", Outcome.REWIND)

    def _beat(self) -> None:
        problems = self.heartbeat.problems
        if self.sink.state != "ok":
            problems["kafka"] = f"Kafka {self.sink.state}"
        else:
            problems.pop("kafka", None)
        if self.sink.commit_retries:
            problems["checkpoint"] = f"commit waiting for Kafka ({self.sink.commit_retries} tries)"
        else:
            problems.pop("checkpoint", None)
        if (cache_problem := self.enricher.cache_problem) is not None:
            problems["label_cache"] = cache_problem
        else:
            problems.pop("label_cache", None)
        self.heartbeat.beat(
            source_state=self._source.state if self._source is not None else None,
            kafka_state=self.sink.state,
            breaker_state=self.enricher.breaker_state,
            label_cache=self.enricher.cache_state,
            lease=self.lease.state if self.lease is not None else None,
        )

    def log_stats(self) -> None:
        extra = {
            **self.enricher.take_stats(),
            "source_state": self._source.state if self._source is not None else None,
            "source_reconnects": self._source.reconnects if self._source is not None else None,
            "breaker_state": self.enricher.breaker_state,
            "breaker_open": int(self.enricher.breaker_state != "closed"),
            "kafka_state": self.sink.state,
            "kafka_unreachable": int(self.sink.state != "ok"),
            "in_flight": self.tracker.in_flight,
            "checkpoint_age_seconds": round(time.monotonic() - self._committed_at, 3),
            "checkpoint": self._committed_position,
            "checkpoint_failures": self.sink.commit_retries,
            "transactional": self.sink.transactional,
            "commits": self._commits,
            "commit_seconds_max": round(self._commit_seconds_max, 3),
            "position_bytes_max": self._position_bytes_max,
            "position_long_watermarks": self.tracker.long_watermarks,
        }
        self._commit_seconds_max = 0.0
        self._position_bytes_max = 0
        line = self.stats.report(extra)
        line.update(self.catch_up.observe(line["event_lag_seconds"], line["events_out"]))
        keys = (
            "source_state",
            "total_events_out",
            "event_lag_seconds",
            "event_time",
            "breaker_state",
        )
        self.heartbeat.beat(
            **{k: v for k, v in line.items() if k in keys or k.startswith("backfill")}
        )
        log.info("stats", **line)


def _age_seconds(moment: datetime) -> float:
    return (datetime.now(timezone.utc) - moment).total_seconds()


def _far_behind(resume: Position | None) -> bool:
    """The resumed position was committed longer ago than a live stream lags: catching up."""
    committed = resume.committed_at if resume is not None else None
    return committed is not None and _age_seconds(committed) > CAUGHT_UP_LAG_SECONDS
