"""`wikistreams-dlq`: list dead letters, and replay them through the pipeline after a fix.

Replay reads the dead-letter topic with the consumer group `wikistreams-dlq-replay` and commits
the offsets once the replay's own transactions are committed: records that now pass go to the
enriched topic, records that still fail are dead-lettered anew with their new reason, and a
second replay starts after them. Nothing is lost. A crash between the last transaction and the
offset commit replays those records once more (the group offset is not part of the transaction).
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from wikistreams.producer.config import KafkaSettings, load_settings
from wikistreams.producer.health import Heartbeat
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.main import build_pipeline, build_sink, prepare_kafka
from wikistreams.producer.position import StreamIdentity
from wikistreams.producer.sink import decode_headers
from wikistreams.producer.source import RawEvent

REPLAY_GROUP = "wikistreams-dlq-replay"
app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True)


def _consumer(bootstrap: str, group: str | None) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group or "wikistreams-dlq-list",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            # The end of a partition is where committed records stop: transaction markers
            # take offsets too, so "offset + 1 == high watermark" may never be seen.
            "enable.partition.eof": True,
        }
    )


def _records(consumer: Consumer, topic: str, from_committed: bool):
    """Records from the group's position (or the start) up to the end the topic had at start.

    Stopping at the starting high watermarks matters for replay: records that fail again are
    appended to this same topic and must wait for the next replay, not loop for ever.
    """
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    tps = [TopicPartition(topic, p) for p in partitions]
    starts = consumer.committed(tps, timeout=10) if from_committed else tps
    ends = {}
    for tp in starts:
        if tp.offset < 0:
            tp.offset = OFFSET_BEGINNING
        low, high = consumer.get_watermark_offsets(tp, timeout=10)
        if high > max(tp.offset, low):
            ends[tp.partition] = high
    consumer.assign([tp for tp in starts if tp.partition in ends])
    while ends:
        msg = consumer.poll(10.0)
        if msg is None:
            raise typer.BadParameter(f"no record from {topic} within 10 s; is Kafka up?")
        error = msg.error()
        if error is not None and error.code() == KafkaError._PARTITION_EOF:
            ends.pop(msg.partition(), None)
            continue
        if error is not None:
            raise typer.BadParameter(str(error))
        if msg.offset() >= ends.get(msg.partition(), 0):  # written after we started
            ends.pop(msg.partition(), None)
            continue
        if msg.offset() + 1 >= ends[msg.partition()]:
            ends.pop(msg.partition(), None)
        yield msg


@app.command("list")
def list_dead_letters(
    limit: Annotated[int, typer.Option(help="Show at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Dead letters with stage, error and a preview of the original bytes."""
    settings = load_settings(KafkaSettings)
    consumer = _consumer(settings.kafka_bootstrap_servers, None)
    shown = 0
    for msg in _records(consumer, settings.kafka_dlq_topic, from_committed=False):
        if shown >= limit:
            break
        headers = decode_headers(msg.headers())
        record = {
            "partition": msg.partition(),
            "offset": msg.offset(),
            **headers,
            "value": msg.value().decode("utf-8", "replace")[:200],
        }
        if as_json:
            typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            reason = headers.get("exception.message", "")[:120]
            typer.echo(
                f"{record['partition']}:{record['offset']} [{headers.get('stage')}] "
                f"{headers.get('exception.class.name')}: {reason}"
            )
        shown += 1
    consumer.close()
    if not as_json:
        typer.echo(f"{shown} dead letter(s) shown from {settings.kafka_dlq_topic}", err=True)


class DeadLetterSource:
    """The dead letters as a pipeline source; remembers each record's offset once handed on."""

    def __init__(self, consumer: Consumer, topic: str) -> None:
        self._consumer = consumer
        self._topic = topic
        self.offsets: list[TopicPartition] = []
        self.state = "replaying"
        self.reconnects = 0

    def __iter__(self):
        for msg in _records(self._consumer, self._topic, from_committed=True):
            headers = decode_headers(msg.headers())
            yield RawEvent(msg.value(), headers.get("sse.id") or None)
            self.offsets.append(TopicPartition(msg.topic(), msg.partition(), msg.offset() + 1))
        self.state = "finished"


@app.command()
def replay(
    group: Annotated[
        str, typer.Option(help="Consumer group that remembers replays")
    ] = REPLAY_GROUP,
) -> None:
    """Send dead letters through validate -> enrich -> publish again."""
    settings = load_settings()
    configure_logging(settings.log_level)
    stop = threading.Event()
    heartbeat = Heartbeat()
    if not prepare_kafka(settings, stop, heartbeat):
        raise typer.Exit(1)
    # A stream of its own: its own transactional id (never fencing the live producer) and
    # position key (replays are not positions of the live stream).
    sink = build_sink(settings, StreamIdentity.of(settings.kafka_topic, f"replay:{group}"))
    sink.start()
    pipeline = build_pipeline(settings, sink, heartbeat)
    consumer = _consumer(settings.kafka_bootstrap_servers, group)
    source = DeadLetterSource(consumer, settings.kafka_dlq_topic)
    code = pipeline.run(source, stop)
    if code == 0 and source.offsets:
        consumer.commit(offsets=_latest(source.offsets), asynchronous=False)
    consumer.close()
    totals = pipeline.stats.totals
    typer.echo(
        f"replayed {len(source.offsets)}: {totals['events_out']} delivered, "
        f"{totals['dlq']} dead-lettered again, {totals['duplicates_dropped']} duplicates dropped"
    )
    raise typer.Exit(code)


def _latest(offsets: list[TopicPartition]) -> list[TopicPartition]:
    best: dict[tuple[str, int], TopicPartition] = {}
    for tp in offsets:
        key = (tp.topic, tp.partition)
        if key not in best or tp.offset > best[key].offset:
            best[key] = tp
    return list(best.values())


if __name__ == "__main__":
    app()
