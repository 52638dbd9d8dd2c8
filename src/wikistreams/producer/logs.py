"""Structured JSON logs on stdout, one object per line, with the stable field names that the
Grafana dashboards and alert rules query (see docs/contracts.md)."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

SERVICE = "producer"
# The fields of one log line (or of the /health body): JSON, so each value may be any JSON type.
LogFields = dict[str, Any]


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    """Every line carries `ts`, `level`, `logger`, `msg` and `service`."""
    logging.basicConfig(level=level, stream=stream or sys.stdout, format="%(message)s", force=True)
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
            _add_service,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=False,
    )


def _add_service(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("service", SERVICE)
    return event_dict
