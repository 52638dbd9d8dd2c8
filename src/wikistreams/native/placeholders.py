"""{placeholders} in native/services.toml: what they stand for, and their expansion.

{root} the checkout, {var} var/ (or $WIKISTREAMS_VAR_DIR), {log} {var}/log, {run} {var}/run,
{name} and {data} of the service, {lib} its lib's folder, {lib_<libname>} any lib's folder,
{random_id} a fresh Kafka cluster id, every KEY of native/versions.env and every [vars] entry.
A command element that is exactly "{<var>}" with a list value is spliced in as several arguments.

Only [A-Za-z0-9_] names count, so JSON such as [{"path":...}] passes through untouched. An
unknown name is an error, never left as is: a typo must not reach a JVM's command line.
"""

from __future__ import annotations

import base64
import re
import uuid
from typing import TYPE_CHECKING, Any

from wikistreams.native.paths import ROOT

if TYPE_CHECKING:
    from wikistreams.native.config import Config, Service

PLACEHOLDER = re.compile(r"\{([A-Za-z0-9_]+)\}")


def context(cfg: Config, svc: Service | None) -> dict[str, Any]:
    """Every name a placeholder may use, for `svc` (or for none: libs, [vars])."""
    paths = cfg.paths
    names: dict[str, Any] = dict(cfg.versions)
    names.update(cfg.variables)
    names.update(root=str(ROOT), var=str(paths.var), log=str(paths.log), run=str(paths.run))
    names.update({f"lib_{name}": str(cfg.lib_dir(name)) for name in cfg.libs})
    names["random_id"] = random_kafka_id()
    if svc is not None:
        names["name"] = svc.name
        if svc.lib:
            names["lib"] = str(cfg.lib_dir(svc.lib))
        names["data"] = svc.data  # expanded where it is used, like any placeholder's value
    return names


def expand(value: str, names: dict[str, Any], service: str | None = None) -> str:
    """`value` with every placeholder replaced, recursively (a [vars] entry may hold more)."""

    from wikistreams.native.config import NativeError  # config imports this module

    def repl(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in names:
            where = f" (service {service})" if service else ""
            raise NativeError(f"unknown placeholder {{{key}}} in {value!r}{where}")
        found = names[key]
        if isinstance(found, list):
            raise NativeError(f"list variable {{{key}}} must be a whole command element")
        return expand(str(found), names, service)

    return PLACEHOLDER.sub(repl, value)


def expand_argv(argv: list[str], names: dict[str, Any], service: str) -> list[str]:
    """Expand a command; an element that is exactly a list variable is spliced in."""
    out: list[str] = []
    for item in argv:
        whole = PLACEHOLDER.fullmatch(item)
        listed = names.get(whole.group(1)) if whole else None
        if isinstance(listed, list):
            out.extend(expand(str(x), names, service) for x in listed)
        else:
            out.append(expand(item, names, service))
    return out


def random_kafka_id() -> str:
    """Kafka cluster ids are a random UUID in unpadded URL-safe base64 (22 characters).

    Like Kafka's own `Uuid.randomUuid`, never one that starts with `-`: a command line would
    take it for an option (`kafka-storage format -t -u7I...` fails, about 1 start in 64)."""
    while True:
        kafka_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not kafka_id.startswith("-"):
            return kafka_id
