"""What the stream's server may ask of the producer, bounded: how long to wait (`Retry-After`,
the SSE `retry:` field) and what to send back (an event id as `Last-Event-ID`).

Each arrives from outside and would otherwise steer the producer: a `retry:` of 400 digits
overflowed a float, a `Retry-After` of 86,400 slept a day, and an id that is not a valid header
value (a leading space, invalid UTF-8, a control character) broke every reconnect before a
request left. Waits are capped by `SSE_RETRY_AFTER_MAX_SECONDS`; an unsendable id is never made
a resume point, so the last good one is sent instead. Both are logged where they happen.
"""

from __future__ import annotations

import math
import re

from urllib3.exceptions import InvalidHeader
from urllib3.util import Retry

# Real EventStreams ids are ~150 characters (two topic/partition/timestamp objects); servers
# refuse request headers of a few KiB. One KiB leaves room for more data centres.
MAX_RESUME_ID_CHARS = 1024
# An HTTP field value (RFC 9110 5.5) that every layer below us sends unchanged: visible ASCII,
# inner spaces only (requests refuses leading whitespace, http.client non-Latin-1 text, and
# servers trim trailing whitespace, so such an id would not come back as it was sent).
_SENDABLE = re.compile(r"[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?")


def unsendable(event_id: str) -> str | None:
    """Why `event_id` cannot be sent back as `Last-Event-ID`; None when it can."""
    if len(event_id) > MAX_RESUME_ID_CHARS:
        return f"longer than {MAX_RESUME_ID_CHARS} characters ({len(event_id)})"
    if not _SENDABLE.fullmatch(event_id):
        return "not a header value: only visible ASCII with inner spaces can be sent back"
    return None


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` in seconds: delta-seconds (fractions too: the Wikidata API's proxies send
    them) or an HTTP date (parsed by urllib3); None when absent or unreadable. Not capped: see
    `capped_wait`. The one parser for the stream and the Wikidata client."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = float(Retry().parse_retry_after(value))
        except (InvalidHeader, ValueError, OverflowError):
            return None
    # 400 digits read as infinity: a very long wait, which callers cap; only NaN is unreadable.
    return None if math.isnan(seconds) else max(0.0, seconds)


def capped_wait(milliseconds: int, cap_seconds: float) -> float:
    """A server-asked wait in seconds, at most `cap_seconds`; computed on integers first, so a
    `retry:` of any length cannot overflow a float."""
    return min(milliseconds, int(cap_seconds * 1000)) / 1000
