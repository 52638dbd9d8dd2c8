"""docker-stats-logger: one JSON log line per container per poll, from the Docker Engine API.

Why a logger and not a metrics exporter: the observability stack is logs-only (VictoriaLogs +
Grafana), so container CPU and memory travel the same road as every other signal and the
Resources Monitor dashboard reads them with LogsQL like everything else.
"""
