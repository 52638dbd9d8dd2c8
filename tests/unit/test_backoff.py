"""wikistreams.backoff: the one retry delay policy (doubling, equal jitter, capped, logged)."""

from __future__ import annotations

import threading

from wikistreams.backoff import Backoff


class Recorder:
    """A structlog-shaped logger that keeps what it was given."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, object]]] = []

    def warning(self, event: str, **fields: object) -> None:
        self.lines.append((event, fields))


def test_delays_double_within_their_upper_half_up_to_the_cap():
    backoff = Backoff(base=1, cap=10)
    for ceiling in [1, 2, 4, 8, 10, 10, 10]:
        assert ceiling / 2 <= backoff.delay() <= ceiling
    assert backoff.attempt == 7


def test_reset_starts_over_and_floor_wins():
    backoff = Backoff(base=1, cap=10)
    for _ in range(5):
        backoff.delay()
    backoff.reset()
    assert backoff.delay() <= 1
    assert backoff.delay(floor=7.5) == 7.5  # a server's Retry-After beats our shorter delay


def test_a_week_of_failures_stays_at_the_cap():
    backoff = Backoff(base=1, cap=30, attempt=10**6)  # 2.0**1e6 would overflow
    assert 15 <= backoff.delay() <= 30


def test_wait_logs_one_line_with_the_same_fields_and_stops_early():
    log, stop = Recorder(), threading.Event()
    stop.set()  # the wait returns at once: a stop request cuts it short
    waited = Backoff(base=100, cap=100).wait(stop, log, "kafka_unreachable", bootstrap="x")
    assert 50 <= waited <= 100
    [(event, fields)] = log.lines
    assert event == "kafka_unreachable"
    assert fields == {"attempt": 1, "retry_in_seconds": round(waited, 2), "bootstrap": "x"}
