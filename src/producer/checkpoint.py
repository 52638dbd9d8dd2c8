"""The resume position: the SSE id up to which every event is confirmed by Kafka.

Order matters for at-least-once: an id is only persisted once Kafka acknowledged that event *and
every event before it* (delivery callbacks can arrive out of order across partitions). A crash
then replays from a position whose predecessors are all safely in Kafka.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path


class CheckpointStore:
    """A small JSON file, replaced atomically (write, fsync, rename): a crash never leaves half.

    Beside the position it keeps the ids of the most recently *delivered* events, so that after a
    restart the replayed ones are recognised as duplicates. Only delivered ids may be kept: an id
    of an event still in flight would make its replay look like a duplicate and lose it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        return self._read().get("last_event_id")

    def load_delivered_ids(self) -> list[str]:
        return list(self._read().get("delivered_ids", []))

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ValueError(f"corrupt checkpoint file {self.path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"corrupt checkpoint file {self.path}: not an object")
        return data

    def save(self, last_event_id: str, delivered_ids: list[str] | None = None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = {
            "last_event_id": last_event_id,
            "saved_at": time.time(),
            "delivered_ids": delivered_ids or [],
        }
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@dataclass
class DeliveryTracker:
    """Turns out-of-order delivery confirmations into a contiguous watermark.

    Every event read from the source gets a sequence number with `begin()`; `done()` marks it
    finished (delivered, dead-lettered or deliberately dropped). `position` is the SSE id of the
    highest sequence number below which nothing is pending.
    """

    _next_seq: int = 0
    _pending: dict[int, str | None] = field(default_factory=dict)
    _finished: set[int] = field(default_factory=set)
    _low: int = 0
    position: str | None = None
    position_changed_at: float = field(default_factory=time.monotonic)

    def begin(self, sse_id: str | None) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._pending[seq] = sse_id
        return seq

    def done(self, seq: int) -> None:
        self._finished.add(seq)
        while self._low in self._finished:
            self._finished.discard(self._low)
            sse_id = self._pending.pop(self._low)
            if sse_id is not None:
                self.position = sse_id
                self.position_changed_at = time.monotonic()
            self._low += 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)
