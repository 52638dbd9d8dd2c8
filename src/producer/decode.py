"""Parse and validate stages: raw bytes -> `RecentChange`, or a `StageError` saying why not."""

from __future__ import annotations

import json

from pydantic import ValidationError

from producer.events import RecentChange


class StageError(Exception):
    """A failure that sends the event to the dead-letter topic, tagged with stage and cause."""

    def __init__(self, stage: str, error_class: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
        self.error_class = error_class

    @classmethod
    def from_exception(cls, stage: str, exc: BaseException) -> StageError:
        return cls(stage, type(exc).__name__, str(exc))


def decode_event(data: bytes, event_type: str = "message") -> RecentChange:
    """One frame's `data` as a validated recentchange event."""
    if event_type != "message":
        raise StageError("parse", "UnexpectedEventType", f"SSE event type {event_type!r}")
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StageError.from_exception("parse", exc) from exc
    if not isinstance(obj, dict):
        raise StageError(
            "parse", "NotAnObject", f"expected a JSON object, got {type(obj).__name__}"
        )
    try:
        return RecentChange.model_validate(obj)
    except ValidationError as exc:
        raise StageError("validate", "ValidationError", _summary(exc)) from exc


def _summary(exc: ValidationError) -> str:
    """A one-line reason naming the failing fields, small enough for a Kafka header."""
    parts = [f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]]
    return f"{exc.error_count()} validation error(s): " + "; ".join(parts)
