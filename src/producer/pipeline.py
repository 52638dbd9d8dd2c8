"""The producer's data path: source -> decode -> drop canaries/replays -> enrich -> Kafka.

A reader thread pulls frames from the source into a bounded queue (so a slow Kafka or API pushes
back on the network read instead of growing memory); this thread does everything else. Every
frame gets a sequence number, and it is finished exactly once: delivered, dead-lettered or
dropped on purpose. The checkpoint only ever moves over finished frames.
"""

from __future__ import annotations

import queue
from collections import deque
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import structlog

from producer.checkpoint import CheckpointStore, DeliveryTracker
from producer.decode import StageError, decode_event
from producer.dedupe import RecentIds
from producer.enrich import Enricher
from producer.health import Heartbeat
from producer.events import EnrichedEvent, RecentChange
from producer.sink import KafkaSink, dead_letter_headers
from producer.source import RawEvent
from producer.stats import Stats

log = structlog.get_logger("producer.pipeline")

_END = object()
IDLE_POLL_SECONDS = 0.2


@dataclass(frozen=True)
class _InFlight:
    seq: int
    raw: RawEvent


class Pipeline:
    def __init__(
        self,
        sink: KafkaSink,
        enricher: Enricher,
        checkpoints: CheckpointStore,
        source_name: str,
        dedupe_window: int,
        checkpoint_interval: float = 1.0,
        stats_interval: float = 10.0,
        queue_size: int = 10_000,
    ) -> None:
        self.sink = sink
        self.enricher = enricher
        self.checkpoints = checkpoints
        self.source_name = source_name
        self.tracker = DeliveryTracker()
        self.recent = RecentIds(dedupe_window)
        # Delivered ids persisted with the checkpoint (see CheckpointStore), newest last.
        self.delivered_ids: deque[str] = deque(maxlen=min(dedupe_window, 2000))
        self.stats = Stats()
        self._checkpoint_interval = checkpoint_interval
        self._stats_interval = stats_interval
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._saved_position: str | None = None
        self._saved_at = time.monotonic()
        self._failed: str | None = None
        self._source: Iterable[RawEvent] | None = None
        self.heartbeat = Heartbeat()

    # --- running ---------------------------------------------------------------------------

    def run(self, source: Iterable[RawEvent], stop: threading.Event) -> int:
        """Consume `source` until it ends or `stop` is set; returns a process exit code."""
        self._source = source
        reader = threading.Thread(target=self._read, args=(source, stop), daemon=True)
        reader.start()
        next_stats = time.monotonic() + self._stats_interval
        while not stop.is_set() and self._failed is None:
            item = self._next(self.enricher.seconds_until_due())
            if item is _END:
                break
            if isinstance(item, BaseException):
                self._failed = f"source failed: {type(item).__name__}: {item}"
                log.error("source_failed", error_class=type(item).__name__, error=str(item))
                break
            if item is not None:
                self.accept(item)
            if self.enricher.due():
                self.publish_ready()
            self.sink.poll(0)
            self._maybe_checkpoint()
            self.heartbeat.beat(source_state=getattr(self._source, "state", None))
            if time.monotonic() >= next_stats:
                self.log_stats()
                next_stats = time.monotonic() + self._stats_interval
        return self.close()

    def _read(self, source: Iterable[RawEvent], stop: threading.Event) -> None:
        try:
            for raw in source:
                while not stop.is_set():
                    try:
                        self._queue.put(raw, timeout=IDLE_POLL_SECONDS)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            self._queue.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread to report
            self._queue.put(exc)

    def _next(self, wait: float | None):
        timeout = IDLE_POLL_SECONDS if wait is None else min(wait, IDLE_POLL_SECONDS)
        try:
            return self._queue.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return None

    def close(self) -> int:
        """Publish what is batched, wait for Kafka, persist the position. 0 if all is well."""
        if len(self.enricher):
            self.publish_ready()
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
        )
        return 1 if (self._failed or undelivered) else 0

    # --- stages ------------------------------------------------------------------------------

    def accept(self, raw: RawEvent) -> None:
        """Decode one frame and queue it for enrichment, or finish it here."""
        flight = _InFlight(self.tracker.begin(raw.sse_id), raw)
        self.stats.add("events_in")
        try:
            change = decode_event(raw.data, raw.event_type)
        except StageError as err:
            self.dead_letter(flight, err)
            return
        if change.is_canary:
            self._drop(flight, "canary_dropped")
        elif self.recent.seen(change.meta.id):
            self._drop(flight, "duplicates_dropped")
        else:
            self.enricher.add(flight, change)

    def publish_ready(self) -> None:
        for flight, change, event in self.enricher.flush():
            self.publish(flight, change, event)

    def publish(self, flight: _InFlight, change: RecentChange, event: EnrichedEvent) -> None:
        event_epoch = change.meta.dt.timestamp()

        def delivered(err) -> None:
            if err is None:
                self.stats.delivered(event.type, event_epoch)
                self.delivered_ids.append(event.event_id)
                self.tracker.done(flight.seq)
                return
            self.stats.add("delivery_errors")
            log.error("delivery_failed", error=str(err), topic=self.sink.topic)
            self.dead_letter(flight, StageError("produce", "KafkaError", str(err)))

        try:
            value = event.model_dump_json().encode("utf-8")
        except ValueError as exc:
            self.dead_letter(flight, StageError.from_exception("enrich", exc))
            return
        self.sink.publish(f"{event.wiki}:{event.title}", value, delivered)

    def dead_letter(self, flight: _InFlight, err: StageError) -> None:
        log.warning(
            "dead_letter",
            stage=err.stage,
            error_class=err.error_class,
            error=str(err)[:500],
            sse_id=flight.raw.sse_id,
        )
        headers = dead_letter_headers(
            err.stage, err.error_class, str(err), flight.raw.sse_id, self.source_name
        )

        def delivered(dlq_err) -> None:
            if dlq_err is None:
                self.stats.add("dlq")
                self.tracker.done(flight.seq)
            else:
                # Neither topic took it: stop here, so a restart replays it from the checkpoint.
                self._failed = f"dead-letter delivery failed: {dlq_err}"
                log.error("delivery_failed", error=str(dlq_err), topic=self.sink.dlq_topic)

        self.sink.dead_letter(flight.raw.data, headers, delivered)

    def _drop(self, flight: _InFlight, counter: str) -> None:
        self.stats.add(counter)
        self.tracker.done(flight.seq)

    # --- bookkeeping -------------------------------------------------------------------------

    def _maybe_checkpoint(self, force: bool = False) -> None:
        position = self.tracker.position
        if position is None or position == self._saved_position:
            return
        if not force and time.monotonic() - self._saved_at < self._checkpoint_interval:
            return
        self.checkpoints.save(position, list(self.delivered_ids))
        self._saved_position = position
        self._saved_at = time.monotonic()

    def log_stats(self) -> None:
        extra = {
            **self.enricher.take_stats(),
            "source_state": getattr(self._source, "state", None),
            "source_reconnects": getattr(self._source, "reconnects", None),
            "breaker_state": self.enricher.breaker_state,
            "breaker_open": int(self.enricher.breaker_state != "closed"),
            "in_flight": self.tracker.in_flight,
            "checkpoint_age_seconds": round(time.monotonic() - self._saved_at, 3),
            "checkpoint": self._saved_position,
        }
        line = self.stats.report(extra)
        keys = ("source_state", "total_events_out", "event_lag_seconds", "breaker_state")
        self.heartbeat.beat(**{k: line[k] for k in keys})
        log.info("stats", **line)
