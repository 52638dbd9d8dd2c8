"""Which copy of the producer is active: a Kafka consumer group used as a lease.

Every copy joins the stream's group (`StreamIdentity.lease_group`) on a single-partition topic;
the member Kafka assigns that partition to is the active producer, the others are hot standbys.
The group coordinator is the arbiter, so there is no consensus code here: a copy that stops
heartbeating (killed, paused, cut off) loses the partition after `session.timeout.ms` and a
standby is assigned it. `cooperative-sticky` keeps the partition where it is when members come
and go, so a returning former leader does not take it back.

A lease alone cannot stop a paused leader from writing once it wakes: the transactional id does
(`KafkaSink.start` of the new leader fences it). The lease decides who runs; fencing makes sure
nobody else writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from wikistreams.backoff import Backoff
from wikistreams.producer.position import this_producer

log = structlog.get_logger("producer.lease")

POLL_SECONDS = 0.2


class KafkaLease:
    """Group membership on `topic`; `held` while this member owns partition 0."""

    def __init__(self, bootstrap: str, topic: str, group: str, session_timeout_ms: int) -> None:
        self.topic = topic
        self.group = group
        self.state = "joining"  # joining | active | standby | lost | closed
        self._held = threading.Event()
        self._closing = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "client.id": f"wikistreams-lease-{this_producer()}",
                "session.timeout.ms": session_timeout_ms,
                "heartbeat.interval.ms": max(250, session_timeout_ms // 6),
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.auto.commit": False,
                "auto.offset.reset": "latest",
                "log_level": 3,
            }
        )
        self._thread = threading.Thread(target=self._serve, daemon=True, name="lease")

    @property
    def held(self) -> bool:
        return self._held.is_set()

    def start(self) -> KafkaLease:
        self._consumer.subscribe(
            [self.topic], on_assign=self._assigned, on_revoke=self._revoked, on_lost=self._lost
        )
        self._thread.start()
        return self

    def wait(self, stop: threading.Event, on_idle: Callable[[], object] = lambda: None) -> bool:
        """Block until this copy holds the lease (True) or `stop` is set (False)."""
        while not stop.is_set():
            if self._held.wait(POLL_SECONDS):
                return True
            on_idle()
        return False

    def close(self) -> None:
        """Leave the group at once, so a standby takes over without waiting for the timeout."""
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)

    def _serve(self) -> None:
        # Consumer callbacks run inside poll(), on this thread only.
        backoff = Backoff(base=POLL_SECONDS, cap=5.0)
        try:
            while not self._closing.is_set():
                try:
                    self._consumer.poll(POLL_SECONDS)
                    backoff.reset()
                except KafkaException as exc:  # the broker away: membership lapses on its own
                    backoff.wait(self._closing, log, "lease_poll_failed", error=str(exc)[:300])
        finally:
            self._held.clear()
            self._set_state("closed")
            self._consumer.close()

    def _assigned(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if any(tp.partition == 0 for tp in partitions):
            self._held.set()
            self._set_state("active")
        elif not self._held.is_set():
            self._set_state("standby")

    def _revoked(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if any(tp.partition == 0 for tp in partitions):
            self._held.clear()
            self._set_state("standby")

    def _lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # The coordinator expired us (paused, partitioned): someone else may be active already.
        self._held.clear()
        self._set_state("lost")

    def _set_state(self, state: str) -> None:
        if state == self.state or self.state == "closed":
            return
        log.info("lease_changed", lease_state=state, was=self.state, group=self.group)
        self.state = state
