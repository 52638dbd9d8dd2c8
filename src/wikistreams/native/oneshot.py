"""One-shot services (`oneshot = true`): a step that runs once per `up`, after what it `needs`
is healthy, like compose's `restart: "no"` jobs with `service_completed_successfully`.

Success is exit 0. Its output goes to var/log/<name>.log like any service's, it has a pid record
while it runs (so `down` and `status` see it), it is never restarted, and how it ended is kept in
var/run/<name>.result for `status`. A run that takes longer than `start_timeout` is stopped and
counts as failed. Example: `druid-supervisor` submits the Druid Kafka supervisor once Druid is
up, so the producer, which needs only Kafka, never waits for Druid.
"""

from __future__ import annotations

import time

from wikistreams.native.config import Config, Service
from wikistreams.native.processes import describe_exit, start_process, terminate
from wikistreams.native.records import OneshotResult, write_result


class OneshotRun:
    """One run of a one-shot service, started at once, polled by `up` until it ends."""

    def __init__(self, cfg: Config, svc: Service):
        self.cfg, self.svc = cfg, svc
        self.proc, self.record = start_process(cfg, svc, cfg.expand_argv(svc.command, svc))
        self.began = time.monotonic()
        self.timed_out = False

    @property
    def pid(self) -> int:
        return self.record.pid

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.began

    def poll(self) -> OneshotResult | None:
        """None while it runs; how it ended once it has (stopping it when it ran too long)."""
        code = self.proc.poll()
        if code is None and self.elapsed > self.svc.start_timeout:
            self.timed_out = True
            terminate(self.svc, self.record)
            code = self.proc.wait()
        return None if code is None else self._finish(code)

    def stop(self) -> OneshotResult:
        """Stop it before it ended (`up` was interrupted)."""
        terminate(self.svc, self.record)
        return self._finish(self.proc.wait())

    def _finish(self, code: int) -> OneshotResult:
        exit_text = describe_exit(code)
        if self.timed_out:
            exit_text += f", stopped after {self.svc.start_timeout:.0f}s"
        ok = code == 0 and not self.timed_out
        result = OneshotResult(ok, exit_text, code, round(self.elapsed, 1), time.time())
        write_result(self.cfg.paths, self.svc.name, result)
        self.cfg.paths.pid_file(self.svc.name).unlink(missing_ok=True)
        return result
