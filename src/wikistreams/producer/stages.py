"""The seams of the data path, as protocols: where frames come from (`Source`), where events go
(`Sink`), and whether this copy may write (`Lease`).

`Pipeline` (validate -> enrich -> publish) knows only these. The production implementations
are `source.EventStreamSource` (EventStreams, or a recording), `replay.DeadLetterSource` (the
dead-letter topic, for `wikistreams-dlq replay`) and `sink.KafkaSink`; unit tests drive the
pipeline with small fakes of the same shape (tests/unit/fakes.py), so its ordering, watermark
and failure paths are tested without servers, and real Kafka is left to the integration tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from wikistreams.producer.position import Position
    from wikistreams.producer.sink import DeliveryCallback, KafkaHeaders
    from wikistreams.producer.source import RawEvent


class Source(Protocol):
    """Frames in arrival order, with a lifecycle: opened at a position, closed with the outcome.

    `resumes`: whether the stream's committed position applies: the run drops the ids it names
    as already published. A live stream reads on after its watermark; a dead-letter replay reads
    on from its consumer group's offsets, committed in the same transactions.
    """

    @property
    def name(self) -> str:
        """Named in every dead-letter record this source's frames cause (`source` header)."""
        ...

    @property
    def resumes(self) -> bool: ...

    def open(self, resume: Position | None, stop: threading.Event) -> Iterable[RawEvent]:
        """Start reading after `resume` (None: from the source's own start) until `stop`."""
        ...

    @property
    def state(self) -> str:
        """For /health and the stats line: e.g. connecting, connected, retrying, finished."""
        ...

    @property
    def reconnects(self) -> int: ...

    @property
    def since(self) -> str | None:
        """The start of a backfill this opening asked for (ISO 8601), None when none."""
        ...

    def close(self, complete: bool) -> None:
        """The run is over; `complete`: the source was read to its end and everything read
        was handled and committed (a replay may then record its progress)."""
        ...


class Sink(Protocol):
    """Kafka as the pipeline sees it: records in, a transaction committed with the position.

    `start` fences older copies; `read_position` is then final. Records handed over between two
    `commit` calls become visible together, with the position, or not at all (`abort`).
    """

    topic: str
    transactional: bool
    transactional_id: str | None
    position_key: str
    state: str
    commit_retries: int
    on_wait: Callable[[], None]

    def start(self) -> None: ...

    def read_position(self) -> Position | None: ...

    def publish(self, key: str, value: bytes, on_delivery: DeliveryCallback) -> None: ...

    def dead_letter(
        self,
        value: bytes,
        headers: KafkaHeaders,
        on_delivery: DeliveryCallback,
        key: bytes | None = None,
    ) -> None: ...

    def commit(self, position: bytes) -> None: ...

    def abort(self) -> None: ...

    def poll(self, timeout: float = 0.0) -> None: ...

    def flush(self, timeout: float = 30.0) -> int: ...

    def reachable(self) -> None: ...


class Lease(Protocol):
    """Whether this copy may still write (checked before every commit), and the lease's state
    for /health. `lease.KafkaLease` in production; None when a copy is always active."""

    @property
    def held(self) -> bool: ...

    @property
    def state(self) -> str: ...
