"""Manage the Druid Kafka supervisors through the overlord's own API.

`submit` POSTs `druid/ingestion-spec.json` (with overrides) to `/druid/indexer/v1/supervisor`,
then the same for the trends stage's `druid/trends-ingestion-spec.json` (datasource
`wikimedia_trends` on `TRENDS_TOPIC`). Druid keys supervisors by datasource, so re-submitting the
same spec is an update, never a duplicate. For each it also creates the topic with its retention
(or corrects an existing topic's), sets auto-compaction and the retention rules
(`druid/retention-rules.json`), each a replace, so every run leaves the same state. It then waits
for the supervisors to be RUNNING and reports parse errors from the ingestion tasks. `drop`
removes a supervisor and its datasource completely (tests use it).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Annotated, Any

import requests
import typer

from wikistreams.producer.config import TopicSettings, load_settings
from wikistreams.producer.sink import TopicRetention, ensure_topics

DEFAULT_SPEC = Path("druid/ingestion-spec.json")
# Kafka ingestion writes HOUR segments; auto-compaction merges them into DAY segments once they
# are older than `skipOffsetFromLatest` (period granularities other than HOUR/DAY are not honoured
# by streaming ingestion, so compaction is how segments grow).
DEFAULT_COMPACTION = Path("druid/compaction-config.json")
DEFAULT_DATASOURCE = "wikimedia_recentchange"  # the spec's; a unit test keeps them equal
# The trends stage's records (wikistreams.trends.record.TrendRecord), a datasource of their own.
TRENDS_SPEC = Path("druid/trends-ingestion-spec.json")
TRENDS_DATASOURCE = "wikimedia_trends"  # the spec's; a unit test keeps them equal
TRENDS_TOPIC = "wikimedia.trends"  # the spec's and the processor's default
# Retention: load the last `period` (and future-dated rows), then drop everything older. Rules
# apply to whole segments, so a DAY segment (after compaction) leaves once all of its day is
# older than the period. Drop rules only mark segments unused; the coordinator's kill duty
# (druid/conf/coordinator-overlord/runtime.properties) deletes them from deep storage.
DEFAULT_RULES = Path("druid/retention-rules.json")
DEFAULT_RETENTION_PERIOD = "P30D"
# ISO-8601 periods as Druid's rules take them (Joda's standard format): P30D, P1Y, PT12H, P1DT6H.
_PERIOD = re.compile(r"P(?=\d|T\d)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?")
HEALTHY_STATES = {"RUNNING"}
FAILED_STATES = {"UNHEALTHY_SUPERVISOR", "UNHEALTHY_TASKS", "LOST_CONTACT_WITH_STREAM"}


class DruidError(RuntimeError):
    """The overlord or coordinator answered with an error."""


def render_spec(
    path: Path = DEFAULT_SPEC,
    topic: str | None = None,
    datasource: str | None = None,
    bootstrap: str | None = None,
    task_duration: str | None = None,
) -> dict[str, Any]:
    """The committed spec with environment-specific values replaced."""
    spec = _as_object(json.loads(path.read_text("utf-8")), str(path))
    inner = spec["spec"]
    if topic:
        inner["ioConfig"]["topic"] = topic
    if datasource:
        inner["dataSchema"]["dataSource"] = datasource
    if bootstrap:
        inner["ioConfig"]["consumerProperties"]["bootstrap.servers"] = bootstrap
    if task_duration:
        inner["ioConfig"]["taskDuration"] = task_duration
    return spec


def render_rules(path: Path = DEFAULT_RULES, period: str | None = None) -> list[dict[str, Any]]:
    """The committed retention rules with the load period replaced (None keeps the file's)."""
    rules: list[dict[str, Any]] = _as_list(json.loads(path.read_text("utf-8")), str(path))
    if period is None:
        return rules
    if not _PERIOD.fullmatch(period):
        raise ValueError(f"retention period {period!r} is not an ISO-8601 period such as P30D")
    by_period = [rule for rule in rules if rule.get("type") == "loadByPeriod"]
    if not by_period:
        raise ValueError(f"{path} has no loadByPeriod rule to take the period {period}")
    for rule in by_period:
        rule["period"] = period
    return rules


def _as_object(value: Any, source: str) -> dict[str, Any]:
    """Druid's JSON (or a spec file) where an object must be: checked once, here, so the
    callers index it as typed, and a wrong answer names its source instead of failing later."""
    if not isinstance(value, dict):
        raise DruidError(f"{source}: expected a JSON object, got {type(value).__name__}")
    return value


def _as_list(value: Any, source: str) -> list[Any]:
    """As `_as_object`, for a JSON array."""
    if not isinstance(value, list):
        raise DruidError(f"{source}: expected a JSON array, got {type(value).__name__}")
    return value


class DruidClient:
    def __init__(self, overlord: str, coordinator: str | None = None, timeout: float = 30.0):
        self.overlord = overlord.rstrip("/")
        self.coordinator = (coordinator or overlord).rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()

    def _call(self, method: str, url: str, **kw: Any) -> Any:
        resp = self._http.request(method, url, timeout=self._timeout, **kw)
        if resp.status_code >= 400:
            raise DruidError(f"{method} {url}: HTTP {resp.status_code}: {resp.text[:500]}")
        return resp.json() if resp.content else None

    def submit(self, spec: dict[str, Any]) -> str:
        """Create or update; returns the supervisor id (= datasource)."""
        url = f"{self.overlord}/druid/indexer/v1/supervisor"
        return str(_as_object(self._call("POST", url, json=spec), url)["id"])

    def set_compaction(self, config: dict[str, Any]) -> None:
        """Create or replace the datasource's auto-compaction config (idempotent)."""
        self._call(
            "POST", f"{self.coordinator}/druid/coordinator/v1/config/compaction", json=config
        )

    def compaction(self, datasource: str) -> dict[str, Any] | None:
        url = f"{self.coordinator}/druid/coordinator/v1/config/compaction/{datasource}"
        resp = self._http.get(url, timeout=self._timeout)
        return resp.json() if resp.status_code == 200 else None

    def set_rules(self, datasource: str, rules: list[dict[str, Any]]) -> None:
        """Replace the datasource's retention rules (Druid keeps the old ones in its audit log)."""
        self._call(
            "POST",
            f"{self.coordinator}/druid/coordinator/v1/rules/{datasource}",
            json=rules,
            headers={"X-Druid-Author": "wikistreams-druid", "X-Druid-Comment": "retention"},
        )

    def rules(self, datasource: str) -> list[dict[str, Any]]:
        """The datasource's own rules, without the cluster default ([] when it has none)."""
        url = f"{self.coordinator}/druid/coordinator/v1/rules/{datasource}"
        return _as_list(self._call("GET", url), url)

    def spec(self, supervisor_id: str) -> dict[str, Any]:
        url = f"{self.overlord}/druid/indexer/v1/supervisor/{supervisor_id}"
        return _as_object(self._call("GET", url), url)

    def supervisors(self) -> list[str]:
        url = f"{self.overlord}/druid/indexer/v1/supervisor"
        return _as_list(self._call("GET", url), url)

    def status(self, supervisor_id: str) -> dict[str, Any]:
        url = f"{self.overlord}/druid/indexer/v1/supervisor/{supervisor_id}/status"
        return _as_object(_as_object(self._call("GET", url), url)["payload"], url)

    def wait_running(self, supervisor_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll until RUNNING; fail early on an unhealthy state."""
        deadline = time.monotonic() + timeout
        while True:
            payload = self.status(supervisor_id)
            state = payload.get("state")
            if state in HEALTHY_STATES and payload.get("activeTasks"):
                return payload
            if state in FAILED_STATES:
                raise DruidError(
                    f"supervisor {supervisor_id} is {state}: {payload.get('recentErrors')}"
                )
            if time.monotonic() > deadline:
                raise DruidError(
                    f"supervisor {supervisor_id} not RUNNING after {timeout}s: {state}"
                )
            time.sleep(2)

    def parse_errors(self, supervisor_id: str) -> list[str]:
        """Unparseable rows the running tasks saw (Druid keeps the most recent ones)."""
        errors: list[str] = []
        for task in self.status(supervisor_id).get("activeTasks") or []:
            url = f"{self.overlord}/druid/indexer/v1/task/{task['id']}/reports"
            try:
                report = self._call("GET", url)
            except DruidError:
                continue
            payload = (report or {}).get("ingestionStatsAndErrors", {}).get("payload", {})
            for phase in (payload.get("unparseableEvents") or {}).values():
                errors.extend(str(e.get("details", e)) for e in phase)
        return errors

    def reset(self, supervisor_id: str) -> None:
        self._call("POST", f"{self.overlord}/druid/indexer/v1/supervisor/{supervisor_id}/reset")

    def used_datasources(self) -> list[str]:
        """Datasources that still have used segments (the coordinator's metadata view)."""
        url = f"{self.coordinator}/druid/coordinator/v1/metadata/datasources"
        return _as_list(self._call("GET", url), url)

    def running_tasks(self, datasource: str) -> list[str]:
        url = f"{self.overlord}/druid/indexer/v1/tasks"
        tasks = self._call("GET", url, params={"datasource": datasource}) or []
        return [
            t["id"]
            for t in tasks
            if t.get("statusCode") == "RUNNING" or t.get("status") == "RUNNING"
        ]

    def drop(self, datasource: str) -> None:
        """Terminate the supervisor, kill its tasks, drop compaction, mark every segment unused."""
        if datasource in self.supervisors():
            self._call(
                "POST", f"{self.overlord}/druid/indexer/v1/supervisor/{datasource}/terminate"
            )
        for task_id in self.running_tasks(datasource):
            self._call("POST", f"{self.overlord}/druid/indexer/v1/task/{task_id}/shutdown")
        base = f"{self.coordinator}/druid/coordinator/v1"
        for url in (f"{base}/config/compaction/{datasource}", f"{base}/datasources/{datasource}"):
            resp = self._http.delete(url, timeout=self._timeout)
            if resp.status_code not in (200, 202, 204, 404):
                raise DruidError(f"DELETE {url}: HTTP {resp.status_code}: {resp.text[:300]}")

    def sql(
        self, broker: str, query: str, parameters: list[Any] | None = None
    ) -> list[dict[str, Any]]:
        body: dict[str, Any] = {"query": query, "resultFormat": "object"}
        if parameters:
            body["parameters"] = parameters
        url = f"{broker.rstrip('/')}/druid/v2/sql"
        return _as_list(self._call("POST", url, json=body), url)


app = typer.Typer(help=__doc__.splitlines()[0], no_args_is_help=True)

Overlord = Annotated[
    str, typer.Option(envvar="DRUID_OVERLORD_URL", help="Overlord (coordinator-overlord) URL")
]


@app.command()
def submit(
    spec: Annotated[Path, typer.Option(help="Supervisor spec file")] = DEFAULT_SPEC,
    topic: Annotated[str | None, typer.Option(envvar="KAFKA_TOPIC")] = None,
    datasource: Annotated[str | None, typer.Option(envvar="DRUID_DATASOURCE")] = None,
    bootstrap: Annotated[
        str | None,
        typer.Option(envvar="DRUID_KAFKA_BOOTSTRAP_SERVERS", help="Kafka as Druid reaches it"),
    ] = None,
    task_duration: Annotated[str | None, typer.Option(help="ISO-8601 period, e.g. PT10M")] = None,
    compaction: Annotated[Path, typer.Option(help="Auto-compaction config")] = DEFAULT_COMPACTION,
    auto_compaction: Annotated[bool, typer.Option(help="Also set auto-compaction")] = True,
    rules: Annotated[Path, typer.Option(help="Retention rules file")] = DEFAULT_RULES,
    retention_period: Annotated[
        str,
        typer.Option(
            envvar="DRUID_RETENTION_PERIOD",
            help="ISO-8601 period of data kept queryable; older segments are dropped",
        ),
    ] = DEFAULT_RETENTION_PERIOD,
    retention: Annotated[bool, typer.Option(help="Also set the retention rules")] = True,
    partitions: Annotated[
        int, typer.Option(envvar="KAFKA_TOPIC_PARTITIONS", help="When creating the topic")
    ] = 3,
    create_topic: Annotated[
        bool, typer.Option(help="Create the topic first, so Kafka does not auto-create it")
    ] = True,
    trends: Annotated[
        bool, typer.Option(help="Also the trends supervisor (datasource wikimedia_trends)")
    ] = True,
    trends_spec: Annotated[Path, typer.Option(help="Trends supervisor spec file")] = TRENDS_SPEC,
    trends_topic: Annotated[
        str | None, typer.Option(envvar="TRENDS_TOPIC", help="Topic of the trend records")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Wait until RUNNING")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait")] = 180.0,
    overlord: Overlord = "http://127.0.0.1:8081",
) -> None:
    """Create or update the supervisors (idempotent) and wait until they run."""
    client = DruidClient(overlord)
    rendered = [render_spec(spec, topic, datasource, bootstrap, task_duration)]
    if trends:
        rendered.append(render_spec(trends_spec, trends_topic, None, bootstrap, task_duration))
    try:  # every input checked before anything is changed
        period = retention_period or DEFAULT_RETENTION_PERIOD  # an empty variable = default
        retention_rules = render_rules(rules, period) if retention else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--retention-period") from None
    if create_topic:
        io = rendered[0]["spec"]["ioConfig"]
        topic_retention = TopicRetention.from_settings(load_settings(TopicSettings))
        corrected = ensure_topics(
            io["consumerProperties"]["bootstrap.servers"],
            [each["spec"]["ioConfig"]["topic"] for each in rendered],
            partitions,
            1,
            retention=topic_retention,
        )
        for name, was in corrected.items():
            typer.echo(f"topic {name}: {was} set to {topic_retention.config(name)}")
    compaction_config = json.loads(compaction.read_text("utf-8")) if auto_compaction else None
    for each in rendered:
        _apply(client, each, compaction_config, retention_rules, period)
    for supervisor_id in [each["spec"]["dataSchema"]["dataSource"] for each in rendered]:
        if wait:
            payload = client.wait_running(supervisor_id, timeout)
            typer.echo(f"supervisor {supervisor_id} {payload['state']}")
        for error in client.parse_errors(supervisor_id):
            typer.echo(f"parse error: {error}", err=True)


def _apply(
    client: DruidClient,
    spec: dict[str, Any],
    compaction: dict[str, Any] | None,
    rules: list[dict[str, Any]] | None,
    period: str,
) -> None:
    """Submit one supervisor, then its datasource's auto-compaction and retention rules."""
    supervisor_id = client.submit(spec)
    typer.echo(f"supervisor {supervisor_id} submitted")
    if compaction is not None:
        config = compaction | {"dataSource": supervisor_id}
        client.set_compaction(config)
        typer.echo(f"auto-compaction for {supervisor_id}: {config['skipOffsetFromLatest']} behind")
    if rules is not None:
        client.set_rules(supervisor_id, rules)
        typer.echo(f"retention for {supervisor_id}: load {period}, then drop")


@app.command()
def status(
    datasource: Annotated[str, typer.Argument()] = DEFAULT_DATASOURCE,
    overlord: Overlord = "http://127.0.0.1:8081",
) -> None:
    """Supervisor state, lag and recent parse errors."""
    client = DruidClient(overlord)
    payload = client.status(datasource)
    keys = ("state", "detailedState", "aggregateLag", "minimumLag", "recentErrors")
    typer.echo(json.dumps({k: payload.get(k) for k in keys}, indent=2))
    for error in client.parse_errors(datasource):
        typer.echo(f"parse error: {error}")


@app.command()
def reset(
    datasource: Annotated[str, typer.Argument()] = DEFAULT_DATASOURCE,
    overlord: Overlord = "http://127.0.0.1:8081",
) -> None:
    """Forget stored offsets (e.g. after OffsetOutOfRange); resumes per useEarliestOffset."""
    DruidClient(overlord).reset(datasource)
    typer.echo(f"supervisor {datasource} reset")


@app.command()
def drop(
    datasource: Annotated[str, typer.Argument()],
    overlord: Overlord = "http://127.0.0.1:8081",
) -> None:
    """Terminate the supervisor and remove the datasource's data (irreversible)."""
    DruidClient(overlord).drop(datasource)
    typer.echo(f"datasource {datasource} dropped")


if __name__ == "__main__":
    app()
