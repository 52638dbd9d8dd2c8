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


class CheckpointError(OSError):
    """The checkpoint file could not be written or read (full disk, read-only, permissions).

    An `OSError`, so `except OSError` still catches it; `errno` is the underlying fault's.
    A failed save leaves the previous checkpoint intact: the caller can retry it later.
    """


class CheckpointStore:
    """A small JSON file, replaced atomically (write, fsync, rename): a crash never leaves half.

    Beside the position it keeps the ids of the most recently *delivered* events, so that after a
    restart the replayed ones are recognised as duplicates. Only delivered ids may be kept: an id
    of an event still in flight would make its replay look like a duplicate and lose it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> str | None:
        """The saved position, None when there is no checkpoint yet.

        A corrupt checkpoint raises `ValueError` rather than being set aside: starting without
        a position would resume from the live stream's "now" and skip every event since the
        last run without a trace. The operator decides (see the message).
        """
        value = self._read().get("last_event_id")
        if value is not None and not isinstance(value, str):
            raise self._corrupt("last_event_id is not a string")
        return value

    def load_delivered_ids(self) -> list[str]:
        ids = self._read().get("delivered_ids", [])
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise self._corrupt("delivered_ids is not a list of strings")
        return list(ids)

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (FileNotFoundError, NotADirectoryError):  # no file can be there: no position yet
            return {}
        except ValueError as exc:  # bad JSON or bad UTF-8
            raise self._corrupt(str(exc)) from exc
        except OSError as exc:
            raise _error(exc, f"cannot read checkpoint file {self.path}: {exc.strerror}") from exc
        if not isinstance(data, dict):
            raise self._corrupt("not an object")
        return data

    def _corrupt(self, reason: str) -> ValueError:
        return ValueError(
            f"corrupt checkpoint file {self.path}: {reason}. The producer will not guess where to"
            " resume. Repair the file (JSON with a string 'last_event_id'), or move it away to"
            " start from the stream's current position, skipping the events since the last run."
        )

    def save(self, last_event_id: str, delivered_ids: list[str] | None = None) -> None:
        """Replace the checkpoint atomically; `CheckpointError` (the old one intact) on a fault."""
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        payload = {
            "last_event_id": last_event_id,
            "saved_at": time.time(),
            "delivered_ids": delivered_ids or [],
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(payload, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            _remove_quietly(tmp)
            raise _error(exc, f"cannot save checkpoint {self.path}: {_describe(exc)}") from exc
        try:
            # Makes the rename itself durable; without it a power cut may bring back the old file.
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise _error(
                exc, f"checkpoint {self.path} written but not synced: {_describe(exc)}"
            ) from exc


def _error(exc: OSError, message: str) -> CheckpointError:
    error = CheckpointError(message)
    error.errno = exc.errno
    return error


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def _remove_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass  # the same fault (e.g. a read-only directory) may forbid this; the save is failed


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
