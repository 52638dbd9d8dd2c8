"""The producer's data path: source -> decode -> drop canaries/replays -> enrich -> Kafka.

One thread does all the per-event work, fed by one inbox: a reader thread puts the source's
frames there (and stops reading while the inbox is full, so a slow Kafka pushes back on the
network read instead of growing memory). The enrichment workers' answers bypass the frames
(a deque read at every batch), so a backlog of frames never makes labels late.
Nothing on this thread waits for the network except `produce()` when Kafka's own queue is full.

Every frame gets a sequence number and is finished exactly once: delivered, dead-lettered or
dropped on purpose. Whatever goes wrong with one frame (bad bytes, a bug, a record too big for
Kafka) dead-letters that frame with its stage and reason, and the stream goes on. The checkpoint
only ever moves over a contiguous run of finished frames.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import structlog

from producer.cache import CachedLabels
from producer.checkpoint import CheckpointStore, DeliveryTracker
from producer.decode import StageError, decode_event
from producer.dedupe import RecentIds
from producer.enrich import Answer, Enricher, LabelWorkers
from producer.events import (
    EnrichmentStatus,
    Meta,
    RecentChange,
    encode_record,
    enriched_record,
)
from producer.health import Heartbeat
from producer.sink import KafkaSink, RecordTooLarge, dead_letter_headers, oversize_stub
from producer.source import RawEvent
from producer.stats import Stats

log = structlog.get_logger("producer.pipeline")

IDLE_POLL_SECONDS = 0.1
# Inbox items handled between two rounds of housekeeping (Kafka poll, expiry, checkpoint).
BATCH = 500
CHECKPOINT_RETRY_MAX_SECONDS = 60.0


class _End:
    """The source is exhausted (a file replay ended)."""


class _Wake:
    """A nudge for a loop blocked on the inbox: `stop` was set, or an enrichment answer waits.

    For `stop` not only for speed: CPython 3.11's `SimpleQueue.get(timeout=...)` can block for
    ever once a signal handler ran during the wait and outlasted the timeout (seen here: SIGTERM
    during a catch-up hung the producer); a `put` always releases it.
    """


@dataclass(frozen=True, slots=True)
class _SourceFailed:
    error: BaseException


class _InFlight(NamedTuple):
    """One frame on its way: its sequence number (for the checkpoint) and its bytes."""

    seq: int
    raw: RawEvent


class Pipeline:
    def __init__(
        self,
        sink: KafkaSink,
        checkpoints: CheckpointStore,
        source_name: str,
        dedupe_window: int,
        workers: LabelWorkers | None = None,
        enrich_max_delay: float = 2.0,
        checkpoint_interval: float = 1.0,
        stats_interval: float = 10.0,
        queue_size: int = 2000,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self.sink = sink
        self.checkpoints = checkpoints
        self.source_name = source_name
        self.enricher = Enricher(workers, self._publish, enrich_max_delay)
        self.tracker = DeliveryTracker()
        self.recent = RecentIds(dedupe_window)
        # Delivered ids persisted with the checkpoint (see CheckpointStore), newest last.
        self.delivered_ids: deque[str] = deque(maxlen=min(dedupe_window, 2000))
        self.stats = Stats()
        self.heartbeat = heartbeat or Heartbeat()
        self._enrich_max_delay = enrich_max_delay
        self._checkpoint_interval = checkpoint_interval
        self._stats_interval = stats_interval
        self._queue_size = queue_size
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        # Enrichment answers skip the queue of frames: during a backlog the inbox holds up to
        # `queue_size` frames, and an answer behind them would arrive after its events' deadline.
        self._answers: deque[Answer] = deque()
        self._saved_position: str | None = None
        self._saved_at = time.monotonic()
        self._next_save = 0.0
        self._save_failures = 0
        self._failed: str | None = None
        self._source: Iterable[RawEvent] | None = None

    # --- running ---------------------------------------------------------------------------

    def run(self, source: Iterable[RawEvent], stop: threading.Event) -> int:
        """Consume `source` until it ends or `stop` is set; returns a process exit code."""
        self._source = source
        self.sink.on_wait = self._beat
        if self.enricher.workers is not None:
            started = time.monotonic()
            warmed = self.enricher.warm_up()
            log.info("labels_warmed", entries=warmed, seconds=round(time.monotonic() - started, 3))
            self.enricher.workers.start(self._deliver_answer)
        reader = threading.Thread(target=self._read, args=(source, stop), daemon=True)
        reader.start()
        threading.Thread(target=self._wake_on, args=(stop,), daemon=True, name="wake").start()
        next_stats = time.monotonic() + self._stats_interval
        while not stop.is_set() and self._failed is None:
            if not self._handle_inbox():
                break
            self._housekeeping()
            if time.monotonic() >= next_stats:
                self.log_stats()
                next_stats = time.monotonic() + self._stats_interval
        return self.close()

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
            inbox.put(_End)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread to report
            inbox.put(_SourceFailed(exc))

    def _handle_inbox(self) -> bool:
        """Handle up to BATCH inbox items; False once the source has ended or failed."""
        wait = self.enricher.seconds_to_next_deadline()
        timeout = IDLE_POLL_SECONDS if wait is None else min(wait, IDLE_POLL_SECONDS)
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
                return False
            elif item is _Wake:
                pass
            else:
                self._failed = f"source failed: {type(item.error).__name__}: {item.error}"
                log.error(
                    "source_failed", error_class=type(item.error).__name__, error=str(item.error)
                )
                return False
            handled += 1
            if handled >= BATCH:
                return True
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _housekeeping(self) -> None:
        self._take_answers()
        self.enricher.expire()
        self.sink.poll(0)
        self._maybe_checkpoint()
        self._beat()

    def close(self) -> int:
        """Let parked events leave, wait for Kafka, persist the position. 0 if all is well."""
        started = time.monotonic()
        deadline = started + self._enrich_max_delay
        while len(self.enricher) and time.monotonic() < deadline:
            try:
                self._inbox.get(timeout=0.05)
            except queue.Empty:
                pass
            self._take_answers()
            self.enricher.expire()
            self.sink.poll(0)
        self.enricher.release_all()
        if self.enricher.workers is not None:
            self.enricher.workers.stop()
        undelivered = self.sink.flush(30.0)
        self._maybe_checkpoint(force=True)
        self.log_stats()
        log.info(
            "shutdown",
            total_events_in=self.stats.totals["events_in"],
            total_events_out=self.stats.totals["events_out"],
            total_dlq=self.stats.totals["dlq"],
            undelivered=undelivered,
            checkpoint=self.tracker.position,
            error=self._failed,
            shutdown_seconds=round(time.monotonic() - started, 3),
        )
        return 1 if (self._failed or undelivered) else 0

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
            elif self.recent.seen(change.meta.id):
                self._drop(flight, "duplicates_dropped")
            else:
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
        except Exception as exc:  # noqa: BLE001
            self._internal_error(flight, exc)

    def _delivered(self, flight: _InFlight, event_type: str, meta: Meta, err, _msg) -> None:
        if err is None:
            self.stats.delivered(event_type, meta.dt)
            self.delivered_ids.append(meta.id)
            self.tracker.done(flight.seq)
            if self.sink.state != "ok":
                self.sink.reachable()
            return
        self.stats.add("delivery_errors")
        log.error("delivery_failed", error=str(err), topic=self.sink.topic)
        self.dead_letter(flight, StageError("produce", "KafkaError", str(err)))

    def dead_letter(
        self, flight: _InFlight, err: StageError, extra: dict[str, str] | None = None
    ) -> None:
        """Send the frame's original bytes to the dead-letter topic with the reason."""
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
            self.source_name,
            extra={**stub, **(extra or {})},
        )
        try:
            self.sink.dead_letter(value, headers, partial(self._dead_lettered, flight))
        except Exception as exc:  # noqa: BLE001 - neither topic takes it: stop, replay later
            self._fail(f"dead-letter produce failed: {type(exc).__name__}: {exc}")

    def _dead_lettered(self, flight: _InFlight, err, _msg) -> None:
        if err is None:
            self.stats.add("dlq")
            self.tracker.done(flight.seq)
        else:
            # Neither topic took it: stop here, so a restart replays it from the checkpoint.
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

    def _drop(self, flight: _InFlight, counter: str) -> None:
        self.stats.add(counter)
        self.tracker.done(flight.seq)

    def _fail(self, reason: str) -> None:
        self._failed = reason
        log.error("pipeline_failed", error=reason, topic=self.sink.dlq_topic)

    # --- bookkeeping -------------------------------------------------------------------------

    def _maybe_checkpoint(self, force: bool = False) -> None:
        """Persist the position; a failed save (full disk) is retried, never fatal."""
        position = self.tracker.position
        if position is None or position == self._saved_position:
            return
        now = time.monotonic()
        if not force and now < self._next_save:
            return
        try:
            self.checkpoints.save(position, list(self.delivered_ids))
        except Exception as exc:  # noqa: BLE001 - OSError, CheckpointError: all retried
            self._save_failures += 1
            retry_in = min(
                CHECKPOINT_RETRY_MAX_SECONDS, self._checkpoint_interval * 2**self._save_failures
            )
            self._next_save = now + retry_in
            self.heartbeat.problems["checkpoint"] = f"{type(exc).__name__}: {exc}"[:300]
            log.error(
                "checkpoint_save_failed",
                error_class=type(exc).__name__,
                error=str(exc)[:300],
                failures=self._save_failures,
                retry_in_seconds=retry_in,
            )
            return
        if self._save_failures:
            log.info("checkpoint_save_recovered", failures=self._save_failures)
            self._save_failures = 0
            self.heartbeat.problems.pop("checkpoint", None)
        self._saved_position = position
        self._saved_at = now
        self._next_save = now + self._checkpoint_interval

    def _beat(self) -> None:
        problems = self.heartbeat.problems
        if self.sink.state != "ok":
            problems["kafka"] = f"Kafka {self.sink.state}"
        else:
            problems.pop("kafka", None)
        self.heartbeat.beat(
            source_state=getattr(self._source, "state", None),
            kafka_state=self.sink.state,
            breaker_state=self.enricher.breaker_state,
        )

    def log_stats(self) -> None:
        extra = {
            **self.enricher.take_stats(),
            "source_state": getattr(self._source, "state", None),
            "source_reconnects": getattr(self._source, "reconnects", None),
            "breaker_state": self.enricher.breaker_state,
            "breaker_open": int(self.enricher.breaker_state != "closed"),
            "kafka_state": self.sink.state,
            "kafka_unreachable": int(self.sink.state != "ok"),
            "in_flight": self.tracker.in_flight,
            "checkpoint_age_seconds": round(time.monotonic() - self._saved_at, 3),
            "checkpoint": self._saved_position,
            "checkpoint_failures": self._save_failures,
        }
        line = self.stats.report(extra)
        keys = ("source_state", "total_events_out", "event_lag_seconds", "breaker_state")
        self.heartbeat.beat(**{k: line[k] for k in keys})
        log.info("stats", **line)
