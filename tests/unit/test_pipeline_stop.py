"""Stopping the pipeline from a signal handler, the way SIGTERM does in production."""

import os
import signal
import threading
import time

import pytest

from tests.fakes import FrameSource, pipeline_settings
from wikistreams.producer.pipeline import Pipeline
from wikistreams.producer.sink import KafkaSink, producer_config


@pytest.mark.timeout(60)
def test_a_slow_signal_handler_still_stops_an_idle_pipeline(tmp_path):
    """Regression: CPython 3.11's SimpleQueue.get(timeout=...) waits for ever when a signal
    handler outlasts the timeout, and the producer hung on SIGTERM with nothing arriving.
    The handler here sleeps past the pipeline's inbox wait, as a slow log write can."""
    stop = threading.Event()
    never = threading.Event()

    def handler(_signum, _frame):
        time.sleep(0.3)
        stop.set()

    class SilentSource(FrameSource):
        """A live stream with nothing to say: the reader blocks, puts nothing."""

        def open(self, resume, stop):
            never.wait()
            yield from ()

    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        sink = KafkaSink(producer_config("127.0.0.1:1", "zstd", 5), "t", "t.dlq")
        pipeline = Pipeline(sink, **pipeline_settings(dedupe_window=0))
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGUSR1)).start()
        # Without the fix run() never returns and the timeout marker fails the test.
        assert pipeline.run(SilentSource([]), stop) == 0
    finally:
        signal.signal(signal.SIGUSR1, previous)
        never.set()
