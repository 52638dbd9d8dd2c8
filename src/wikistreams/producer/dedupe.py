"""Drops events seen recently: a timestamp-based resume replays a few events, by design."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    """The last `capacity` event ids, oldest evicted first (O(1) per event)."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def remember(self, event_ids: Iterable[str]) -> None:
        """Seed the window, e.g. with the ids delivered before a restart."""
        for event_id in event_ids:
            self.seen(event_id)

    def seen(self, event_id: str) -> bool:
        """True if `event_id` is in the window; otherwise remembers it and returns False."""
        if self.capacity <= 0:
            return False
        if event_id in self._ids:
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False
