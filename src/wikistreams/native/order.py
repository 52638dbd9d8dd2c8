"""Which services a command means, and in which order they start and stop.

Users name services or groups (`up druid`); a service brings what it `needs` (`up druid-broker`
is useless without ZooKeeper), stopping one takes down what needs it, and starting follows the
dependency order, checked for cycles.
"""

from __future__ import annotations

from wikistreams.native.config import Config, NativeError


def resolve_names(cfg: Config, names: list[str] | None) -> list[str]:
    """Map user words (service names or group names) to services; none = the default set."""
    if not names:
        return [n for n, s in cfg.services.items() if s.default]
    chosen: list[str] = []
    for word in names:
        for part in word.replace(",", " ").split():
            members = [n for n, s in cfg.services.items() if s.group == part]
            if part in cfg.services:
                members = [part]
            if not members:
                groups = sorted({s.group for s in cfg.services.values() if s.group})
                raise NativeError(
                    f"unknown service or group {part!r}; known: "
                    f"{', '.join(list(cfg.services) + groups)}"
                )
            chosen.extend(m for m in members if m not in chosen)
    return chosen


def with_needs(cfg: Config, names: list[str]) -> list[str]:
    """Add every transitive dependency, because `up druid` is useless without ZooKeeper."""
    result: list[str] = []

    def visit(name: str) -> None:
        if name in result:
            return
        for need in cfg.services[name].needs:
            visit(need)
        result.append(name)

    for name in names:
        visit(name)
    return result


def with_dependents(cfg: Config, names: list[str]) -> list[str]:
    """Add services that need the given ones: stopping ZooKeeper under Druid breaks Druid."""
    result = list(names)
    changed = True
    while changed:
        changed = False
        for svc in cfg.services.values():
            if svc.name not in result and any(n in result for n in svc.needs):
                result.append(svc.name)
                changed = True
    return result


def topo_order(cfg: Config, names: list[str]) -> list[str]:
    """Order names so that every service comes after what it needs (stable, cycle-checked)."""
    ordered: list[str] = []
    state: dict[str, str] = {}

    def visit(name: str, path: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise NativeError(f"dependency cycle: {' -> '.join(path + (name,))}")
        state[name] = "visiting"
        for need in cfg.services[name].needs:
            if need in names:
                visit(need, path + (name,))
        state[name] = "done"
        ordered.append(name)

    for name in names:
        visit(name, ())
    return ordered
