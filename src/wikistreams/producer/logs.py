"""Structured JSON logs on stdout, one object per line, with the stable field names that the
Grafana dashboards and alert rules query (see docs/contracts.md)."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

SERVICE = "producer"
# The fields of one log line (or of the /health body): JSON, so each value may be any JSON type.
LogFields = dict[str, Any]


# Loggers of this project: structlog renders their lines; every other logger is a library's.
OWN_LOGGERS = ("producer", "trends")


class _LibraryLinesAsJson(logging.Formatter):
    """Lines of libraries' own stdlib loggers (Quix Streams, librdkafka through confluent-kafka)
    as the same JSON objects, so no plain-text line slips past the log contract."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        if record.name.split(".", 1)[0] in OWN_LOGGERS:
            return record.getMessage()
        line: LogFields = {
            "level": record.levelname.lower().replace("critical", "error"),
            "logger": record.name,
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "msg": record.getMessage(),
            "service": self.service,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure_logging(
    level: str = "INFO", stream: TextIO | None = None, service: str = SERVICE
) -> None:
    """Every line carries `ts`, `level`, `logger`, `msg` and `service`."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_LibraryLinesAsJson(service))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # Third-party loggers (urllib3, kafka) stay quiet unless they warn.
    for noisy in ("urllib3",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.EventRenamer("msg"),
            _service(service),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=False,
    )


def _service(name: str) -> structlog.typing.Processor:
    def add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", name)
        return event_dict

    return add_service
