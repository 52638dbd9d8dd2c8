"""What both benchmarks share: throw-away Kafka topics, the producer as a subprocess, statistics.

The producer is measured black-box, as production runs it (`python -m wikistreams.producer`
configured by environment), so the benchmarks keep working while its internals are rewritten.
Timings come
from Kafka record timestamps (CreateTime, set when the producer calls `produce()`), not from the
producer's logs, and the process's peak RSS from its own high-water mark (`VmHWM`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.kafka_support import read_to_end
from tests.standins import TEST_CONTACT

ROOT = Path(__file__).resolve().parents[1]
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PARTITIONS = 3  # the producer's KAFKA_TOPIC_PARTITIONS default
CONTACT = TEST_CONTACT
# log_level 4: keep librdkafka's informational "Purging ... background queue" lines off stderr.
ADMIN_CONFIG = {"bootstrap.servers": KAFKA, "log_level": 4}


# --- Kafka -------------------------------------------------------------------------------------


def new_topic_name(prefix: str) -> str:
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def create_topics(*topics: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient(ADMIN_CONFIG)
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics],
        operation_timeout=30,
    )
    for future in futures.values():
        future.result(timeout=30)
    deadline = time.monotonic() + 30  # metadata reaches every client a moment later
    while time.monotonic() < deadline:
        known = admin.list_topics(timeout=10).topics
        if all(t in known and len(known[t].partitions) == partitions for t in topics):
            return
        time.sleep(0.2)
    raise RuntimeError(f"topics {topics} did not appear in Kafka's metadata")


def delete_topics(*topics: str) -> None:
    admin = AdminClient(ADMIN_CONFIG)
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        try:
            future.result(timeout=30)
        except KafkaException:
            pass  # never created (the run failed before): nothing to tidy


def _consumer() -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": KAFKA,
            "group.id": f"bench-reader-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )


class TopicCounter:
    """Records in topics so far, from the high watermarks: cheap enough to poll during a run.

    An upper bound under transactions: commit markers and aborted records take offsets too.
    """

    def __init__(self, *topics: str) -> None:
        self._consumer = _consumer()
        self._topics = topics
        self._partitions = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]

    def count(self) -> int:
        total = 0
        for tp in self._partitions:
            _low, high = self._consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            total += max(high, 0)
        return total

    def committed(self) -> int:
        """The committed records themselves, read to the end: exact, and costlier."""
        return sum(len(read_topic(topic)) for topic in self._topics)

    def close(self) -> None:
        self._consumer.close()


@dataclass(frozen=True)
class Record:
    timestamp_ms: int
    value: bytes


def read_topic(topic: str, timeout: float = 120.0) -> list[Record]:
    """Every record of `topic` (all partitions, from the start to the current end)."""
    return [
        Record(msg.timestamp()[1], msg.value() or b"")
        for msg in read_to_end(KAFKA, topic, timeout=timeout)
    ]


# --- the producer as a process ------------------------------------------------------------------


def _producer_setting_names() -> set[str]:
    from wikistreams.producer.config import Settings

    return {name.upper() for name in Settings.model_fields}


def settings_default(name: str, fallback):
    """A setting's default from the producer's settings model (fallback if it has no such one)."""
    from wikistreams.producer.config import Settings

    field = Settings.model_fields.get(name)
    return fallback if field is None else field.default


class ProducerProcess:
    """`python -m wikistreams.producer` in its own working directory, with every setting from `env`.

    Producer settings inherited from the caller's environment (e.g. `make ... SSE_URL=`) are
    dropped, so a run is configured only by what the benchmark passes. Output goes to a log file.
    """

    def __init__(
        self,
        workdir: Path,
        topic: str,
        sse_url: str,
        module: str = "wikistreams.producer",
        **settings: str,
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.module = module  # benchmarks.asyncio_producer runs the asyncio design instead
        self.log_path = workdir / "producer.log"
        inherited = {
            k: v for k, v in os.environ.items() if k.upper() not in _producer_setting_names()
        }
        self.env = {
            **inherited,
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), inherited.get("PYTHONPATH")) if p),
            "USER_AGENT_CONTACT": CONTACT,
            "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
            "KAFKA_TOPIC": topic,
            "KAFKA_DLQ_TOPIC": f"{topic}.dlq",
            "SSE_URL": sse_url,
            "HEALTH_PORT": "0",
            "CACHE_DB_PATH": str(workdir / "labels.sqlite3"),
            **settings,
        }
        self.proc: subprocess.Popen | None = None
        self.exit_code: int | None = None
        self.peak_rss_mb: float | None = None
        self.killed = False
        self._sampler: threading.Thread | None = None

    def start(self) -> ProducerProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", self.module],
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._sampler = threading.Thread(target=self._sample_rss, daemon=True)
        self._sampler.start()
        return self

    def _sample_rss(self, interval: float = 0.1) -> None:
        """Peak RSS = the largest `VmHWM` seen in /proc/<pid>/status while the process lives.

        Not `wait4()`'s ru_maxrss: Linux carries the parent's high-water mark over fork and exec
        into the child's, so it would report this benchmark's own memory, not the producer's.
        """
        path = Path(f"/proc/{self.proc.pid}/status")
        while self.exit_code is None:
            try:
                for line in path.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        mb = int(line.split()[1]) * 1024 / 1e6  # kB
                        self.peak_rss_mb = max(self.peak_rss_mb or 0.0, mb)
            except (OSError, ValueError):
                return  # gone (or a zombie without memory): the last sample stands
            time.sleep(interval)

    def running(self) -> bool:
        if self.proc is None:
            return False
        return self.exit_code is None and self._reap(block=False) is None

    def wait(self, timeout: float) -> int | None:
        """Exit code, or None if it is still running after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.exit_code is None and time.monotonic() < deadline:
            if self._reap(block=False) is None:
                time.sleep(0.1)
        return self.exit_code

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM (the producer flushes and exits 0), SIGKILL if it has not exited in time."""
        if self.exit_code is None and self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self.killed = True
                self.proc.kill()
                self._reap(block=True)
        return self.exit_code if self.exit_code is not None else -1

    def _reap(self, block: bool) -> int | None:
        assert self.proc is not None
        if block:
            self.exit_code = self.proc.wait()
        else:
            self.exit_code = self.proc.poll()
        if self.exit_code is not None and self._sampler is not None:
            self._sampler.join(timeout=1)
        return self.exit_code

    def stats_max(self, field: str) -> int | None:
        """The largest value of `field` in the producer's `stats` log lines (None: never logged)."""
        values = []
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("{") and '"stats"' in line:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("msg") == "stats" and isinstance(record.get(field), int):
                    values.append(record[field])
        return max(values, default=None)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text("utf-8", "replace").splitlines()[-lines:])
        except OSError:
            return ""


# --- statistics ---------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None if empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summarise(values: list[float]) -> dict:
    values = sorted(values)
    return {
        "n": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": values[-1] if values else None,
    }


def rate_between(timestamps_ms: list[int]) -> float | None:
    """Records per second between the first and the last record timestamp."""
    if len(timestamps_ms) < 2:
        return None
    span = (max(timestamps_ms) - min(timestamps_ms)) / 1000
    return len(timestamps_ms) / span if span > 0 else None


def event_id_of_dead_letter(value: bytes) -> str | None:
    """A dead letter holds the original frame bytes; its meta.id if they still parse."""
    try:
        return json.loads(value)["meta"]["id"]
    except (ValueError, KeyError, TypeError):
        return None
