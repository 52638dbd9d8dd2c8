"""`wikistreams-dlq`: list dead letters, and replay them through the pipeline after a fix.

A replay is one more run of the producer's pipeline, with the dead-letter topic as its source
(`replay.DeadLetterSource`): records that now pass go to the enriched topic, records that still
fail are dead-lettered anew with their new reason, and a second replay starts after them.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer

from wikistreams.producer.config import KafkaSettings, load_settings
from wikistreams.producer.health import Heartbeat
from wikistreams.producer.logs import configure_logging
from wikistreams.producer.main import build_pipeline, build_sink, prepare_kafka
from wikistreams.producer.position import StreamIdentity
from wikistreams.producer.replay import REPLAY_GROUP, DeadLetterSource, dead_letter_consumer
from wikistreams.producer.sink import decode_headers
from wikistreams.producer.topic_reader import TopicUnreadable, read_to_end

app = typer.Typer(help=__doc__.splitlines()[0] if __doc__ else None, no_args_is_help=True)


@app.command("list")
def list_dead_letters(
    limit: Annotated[int, typer.Option(help="Show at most this many")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Dead letters with stage, error and a preview of the original bytes."""
    settings = load_settings(KafkaSettings)
    consumer = dead_letter_consumer(settings.kafka_bootstrap_servers, None)
    shown = 0
    try:
        for msg in read_to_end(consumer, settings.kafka_dlq_topic, from_committed=False):
            if shown >= limit:
                break
            headers = decode_headers(msg.headers())
            record = {
                "partition": msg.partition(),
                "offset": msg.offset(),
                **headers,
                "value": (msg.value() or b"").decode("utf-8", "replace")[:200],
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
    except TopicUnreadable as err:
        raise typer.BadParameter(str(err)) from err
    finally:
        consumer.close()
    if not as_json:
        typer.echo(f"{shown} dead letter(s) shown from {settings.kafka_dlq_topic}", err=True)


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
    source = DeadLetterSource(settings.kafka_bootstrap_servers, settings.kafka_dlq_topic, group)
    # A stream of its own: its own transactional id (never fencing the live producer) and
    # position key (replays are not positions of the live stream).
    sink = build_sink(settings, StreamIdentity.of(settings.kafka_topic, source.name))
    pipeline = build_pipeline(settings, sink, heartbeat)
    if sink.transactional:  # the group's offsets commit with the records they cover
        sink.consumer_offsets = source.commit_within(lambda: pipeline.tracker.finished_frames)
    code = pipeline.run(source, stop)
    totals = pipeline.stats.totals
    typer.echo(
        f"replayed {source.replayed}: {totals['events_out']} delivered, "
        f"{totals['dlq']} dead-lettered again, {totals['duplicates_dropped']} duplicates dropped"
    )
    raise typer.Exit(int(code))


if __name__ == "__main__":
    app()
