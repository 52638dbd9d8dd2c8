"""The one way this project waits before trying again: doubling, jittered, bounded, logged.

Every retry outside the Wikidata client (whose tenacity policy also spends a time budget and obeys
the circuit breaker) goes through `Backoff`: the SSE reconnect, the wait for Kafka at start, a
Kafka commit the broker asks to retry, the producer's rewinds and the native keeper's restarts.

Why "equal jitter" (a random delay in the upper half of the doubled step): like full jitter, many
clients that failed together do not retry in step; unlike full jitter it never retries at once, so
a failing server sees at most one attempt per `base / 2` seconds. Bounded: no delay exceeds `cap`
(a server's own Retry-After, passed as `floor`, is capped by the caller), and the exponent stops
growing, so a week-long outage does not overflow a float.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Any

_MAX_EXPONENT = 64  # 2.0**64 * base exceeds any sensible cap; 2.0**1100 would overflow


@dataclass
class Backoff:
    """Delays for consecutive failures: `base`, doubled per failure up to `cap`, jittered."""

    base: float = 1.0
    cap: float = 60.0
    attempt: int = 0  # failures since the last success (or reset)

    def delay(self, floor: float = 0.0) -> float:
        """The delay before the next attempt (at least `floor`), and count this failure."""
        ceiling = min(self.cap, self.base * 2.0 ** min(self.attempt, _MAX_EXPONENT))
        self.attempt += 1
        return max(floor, random.uniform(ceiling / 2, ceiling))

    def reset(self) -> None:
        """A success: the next failure waits `base` again."""
        self.attempt = 0

    def wait(
        self, stop: threading.Event | None, log: Any, event: str, floor: float = 0.0, **fields: Any
    ) -> float:
        """Log one `event` line (warning, with `attempt` and `retry_in_seconds`), then sleep
        until the next attempt, or until `stop` is set. Returns the delay."""
        seconds = self.delay(floor)
        log.warning(event, attempt=self.attempt, retry_in_seconds=round(seconds, 2), **fields)
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)
        return seconds
