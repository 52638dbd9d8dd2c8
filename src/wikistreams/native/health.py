"""Is a service serving? One check per kind of `health` in services.toml.

    http   any 2xx within 3 s (Druid's /status/health, the producer's /health)
    tcp    the port accepts connections
    kafka  the broker answers a metadata request and lists at least one broker

An open port alone is not enough for Kafka: the answer of the Kafka admin client proves the KRaft
broker has joined its controller and serves requests. The Kafka client and urllib are imported
inside their checks, so a keeper, which never checks health, does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable

from wikistreams.native.config import Config, Service
from wikistreams.native.procinfo import port_open

TIMEOUT = 3.0


def split_hostport(target: str) -> tuple[str, int]:
    host, _, port = target.rpartition(":")
    return host, int(port)


def check_http(url: str) -> bool:
    """Healthy when the URL answers 2xx quickly."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as resp:
            status: int = resp.status
            return 200 <= status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def check_tcp(target: str) -> bool:
    host, port = split_hostport(target)
    return port_open(host, port)


def check_kafka(target: str) -> bool:
    """Healthy when the broker's metadata lists at least one broker.

    A closed port answers at once; only then is the admin client asked, so a broker that is
    still booting costs a poll no more than a refused connection.
    """
    if not check_tcp(target):
        return False
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": target, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=TIMEOUT)
    except KafkaException:
        return False
    return len(metadata.brokers) >= 1


HEALTH_CHECKS: dict[str, Callable[[str], bool]] = {
    "http": check_http,
    "tcp": check_tcp,
    "kafka": check_kafka,
}


def healthy(cfg: Config, svc: Service) -> bool:
    """The service's own check; a one-shot service has none (its exit code tells)."""
    if svc.health is None:
        return False
    return HEALTH_CHECKS[svc.health.kind](cfg.expand(svc.health.target, svc))
