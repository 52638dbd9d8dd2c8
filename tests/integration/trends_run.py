"""One trends processor run on the real Kafka: its own topics, state directory and process.

Shared by the processor's tests (test_trends.py) and the log dashboards' test, which needs a
real processor's stats lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.conftest import KAFKA, delete_topics
from tests.kafka_support import read_to_end
from tests.ops_support import free_port
from tests.standins import REPO_ROOT, TEST_CONTACT

PARTITIONS = 3


class Run:
    """One test's topics, state directory and processor process."""

    def __init__(self, workdir: Path, wikidata_url: str) -> None:
        self.id = uuid.uuid4().hex[:10]
        self.input = f"test.trends.in.{self.id}"
        self.output = f"test.trends.out.{self.id}"
        self.group = f"test-trends-{self.id}"
        self.workdir = workdir
        self.health_port = free_port()
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT / "src"),
            "USER_AGENT_CONTACT": TEST_CONTACT,
            "WIKIDATA_API_URL": wikidata_url,
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "KAFKA_TOPIC": self.input,
            "KAFKA_TOPIC_PARTITIONS": str(PARTITIONS),
            "TRENDS_TOPIC": self.output,
            "TRENDS_CONSUMER_GROUP": self.group,
            "TRENDS_STATE_DIR": str(workdir / "state"),
            "CACHE_DB_PATH": str(workdir / "labels.sqlite3"),
            "HEALTH_PORT": str(self.health_port),
            "STATS_INTERVAL_SECONDS": "1",
        }
        self.proc: subprocess.Popen | None = None
        self.log = open(workdir / "trends.log", "ab")
        admin = AdminClient({"bootstrap.servers": KAFKA})
        for future in admin.create_topics([NewTopic(self.input, PARTITIONS, 1)]).values():
            future.result(timeout=30)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wikistreams.trends"],
            env=self.env,
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def offsets(self, topics: list[str]) -> list[TopicPartition]:
        """The group's committed offsets on every partition of `topics` (-1001: none yet)."""
        admin = AdminClient({"bootstrap.servers": KAFKA})
        request = ConsumerGroupTopicPartitions(
            self.group, [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        )
        result = admin.list_consumer_group_offsets([request])[self.group].result(timeout=30)
        return result.topic_partitions

    def committed(self) -> int:
        """Input records the processor has committed (all partitions)."""
        return sum(max(tp.offset, 0) for tp in self.offsets([self.input]))

    def caught_up(self) -> bool:
        """Nothing committed is left to read after the group's committed offsets, on the input
        and on the re-keying topic: a read_committed probe placed there reaches the end of
        every partition without a record (transaction markers and aborted records are not
        records to it, which is why offsets alone cannot tell)."""
        assert self.proc is not None and self.proc.poll() is None, self.tail()
        admin = AdminClient({"bootstrap.servers": KAFKA})
        rekeyed = [t for t in admin.list_topics(timeout=30).topics if t.startswith("repartition__")]
        topics = [self.input] + [t for t in rekeyed if self.group in t]
        probe = Consumer(
            {
                "bootstrap.servers": KAFKA,
                "group.id": f"probe-{self.id}",
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        try:
            partitions = self.offsets(topics)
            probe.assign(
                [TopicPartition(tp.topic, tp.partition, max(tp.offset, 0)) for tp in partitions]
            )
            at_end: set[tuple[str, int]] = set()
            while len(at_end) < len(partitions):
                message = probe.poll(10)
                if message is None:
                    return False
                if message.error() is None:
                    return False
                if message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add((message.topic(), message.partition()))
            return True
        finally:
            probe.close()

    def records(self) -> list[dict]:
        return [json.loads(m.value()) for m in read_to_end(KAFKA, self.output)]

    def tail(self) -> str:
        self.log.flush()
        return (self.workdir / "trends.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        self.stop()
        self.log.close()
        admin = AdminClient({"bootstrap.servers": KAFKA})
        internal = [t for t in admin.list_topics(timeout=30).topics if self.group in t]
        delete_topics(self.input, self.output, *internal)
