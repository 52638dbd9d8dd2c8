"""The Quix Streams application: enriched topic -> page state -> story state -> trends topic.

```
KAFKA_TOPIC (key wiki:title, read_committed)
  -> PageStep   state per page: window, baseline; candidates resolved to their Wikidata item
  -> group_by   re-key by story_id (repartition topic; skipped by Quix on a 1-partition input)
  -> StoryStep  state per story: its pages across wikis
  -> TRENDS_TOPIC (key story_id, JSON TrendRecord)
```

`processing_guarantee="exactly-once"`: every checkpoint commits the consumer offsets, the
repartition and output records and the state changelogs in one Kafka transaction, so after a
`kill -9` the state is restored from the changelogs to the last commit and the input is read
again from there: no edit counts twice, no record is lost or doubled.

Two clocks: the detector's windows and baselines run on the events' own time (`event_time`), so a
replay gives the same trends; the state store's TTL and the records written run on the Kafka
timestamps of the input (when the producer wrote it). That keeps state bounded in real time and
keeps replayed history from writing years-old timestamps, which topic retention (`retention.ms`
of the re-keying and trends topics) would delete before anyone read them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import structlog
from quixstreams import Application
from quixstreams.models import RawConfluentKafkaMessageProto, Row, TopicConfig
from quixstreams.models.serializers.exceptions import SerializationError
from quixstreams.state.rocksdb import RocksDBOptions

from wikistreams.trends.config import TrendsSettings
from wikistreams.trends.detector import DetectorParams
from wikistreams.trends.resolve import StoryResolver
from wikistreams.trends.steps import PageStep, StepCounts, StoryStep, story_key

log = structlog.get_logger("trends.app")
MIB = 1024 * 1024
WRITE_BUFFER_MIB = 8


def _bad_input(
    exc: Exception, topic: str | None, partition: int | None, offset: int | None
) -> None:
    log.warning(
        "bad_input",
        error_class=type(exc).__name__,
        error=str(exc)[:300],
        topic=topic,
        partition=partition,
        offset=offset,
    )


def skip_bad_input(exc: Exception, row: Row | None, _logger: logging.Logger) -> bool:
    """A record the steps cannot read is logged with its reason and skipped (its offset is
    committed with the rest): one bad record must not stop the stream."""
    if row is None:
        _bad_input(exc, None, None, None)
    else:
        _bad_input(exc, row.topic, row.partition, row.offset)
    return True


def skip_undecodable(
    exc: Exception, message: RawConfluentKafkaMessageProto | None, _logger: logging.Logger
) -> bool:
    """A record that is not JSON is skipped like `skip_bad_input`; any other consumer error
    (Kafka's own) ends the run, and the supervisor restarts it from the last commit."""
    if not isinstance(exc, SerializationError):
        return False
    if message is None:
        _bad_input(exc, None, None, None)
    else:
        _bad_input(exc, message.topic(), message.partition(), message.offset())
    return True


def build_app(
    settings: TrendsSettings,
    params: DetectorParams,
    resolver: StoryResolver | None,
    counts: StepCounts,
    stats_cb: Callable[[str], None] | None = None,
    stats_interval_ms: int = 10_000,
) -> Application:
    """The application, its topics and the dataframe, ready for `app.run()`."""
    consumer_config: dict[str, Any] = {"isolation.level": "read_committed"}
    if stats_cb is not None:
        consumer_config |= {"stats_cb": stats_cb, "statistics.interval.ms": stats_interval_ms}
    app = Application(
        broker_address=settings.kafka_bootstrap_servers,
        consumer_group=settings.trends_consumer_group,
        auto_offset_reset=settings.trends_auto_offset_reset,
        commit_interval=settings.commit_interval_seconds,
        consumer_extra_config=consumer_config,
        state_dir=settings.trends_state_dir,
        rocksdb_options=RocksDBOptions(
            block_cache_size=settings.trends_state_cache_mb * MIB,
            # One RocksDB per store and partition (2 stores x KAFKA_TOPIC_PARTITIONS): Quix's
            # 3 x 64 MiB memtables each would let RSS grow past 1 GiB; the state is small.
            write_buffer_size=WRITE_BUFFER_MIB * MIB,
            max_write_buffer_number=2,
        ),
        processing_guarantee="exactly-once",
        on_processing_error=skip_bad_input,
        on_consumer_error=skip_undecodable,
        loglevel=None,  # our JSON logging (logs.configure_logging) formats Quix's lines
    )
    topic_config = TopicConfig(
        num_partitions=settings.kafka_topic_partitions,
        replication_factor=settings.kafka_topic_replication,
    )
    source = app.topic(
        settings.kafka_topic,
        key_deserializer="str",
        value_deserializer="json",
        config=topic_config,
    )
    sink = app.topic(
        settings.trends_topic, key_serializer="str", value_serializer="json", config=topic_config
    )
    sdf = app.dataframe(source)
    sdf = sdf.apply(PageStep(params, resolver, counts), stateful=True)
    sdf = sdf.filter(lambda value: value is not None)
    sdf = sdf.group_by(story_key, name="story")
    sdf = sdf.apply(StoryStep(params, counts), stateful=True)
    sdf = sdf.filter(lambda value: value is not None)
    sdf.to_topic(sink, key=lambda record: record["story_id"])
    return app
