"""Turn one Docker Engine ``/containers/<id>/stats?stream=false`` response into a flat record.

The arithmetic mirrors the docker CLI (``docker stats``) so that the dashboard shows the numbers
an operator sees in a terminal:

* CPU %: (container CPU delta / host CPU delta) x online CPUs x 100, both deltas between
  ``precpu_stats`` and ``cpu_stats``; 0 when either delta is not positive (first sample, or a
  daemon that did not advance the system counter).
* memory used: ``usage`` minus the inactive page cache (``total_inactive_file`` on cgroup v1,
  ``inactive_file`` on cgroup v2), as long as that is smaller than ``usage``; the cache is
  reclaimable, so counting it would make every container look close to its limit.
* memory %: used / limit x 100 (limit 0 means unknown: no percentage).
* network: rx/tx bytes summed over all interfaces.
* block I/O: ``io_service_bytes_recursive`` entries summed by operation (``Read``/``read`` and
  ``Write``/``write``; cgroup v1 capitalises, v2 does not; entries without a value count 0).
"""

from __future__ import annotations

from typing import Any, Mapping

Stats = Mapping[str, Any]


def _num(value: Any) -> float:
    """Numbers in stats JSON may be missing or null on some daemons/cgroup versions."""
    return float(value) if isinstance(value, (int, float)) else 0.0


def cpu_percent(stats: Stats) -> float:
    """CPU usage in percent of one CPU (so 2 busy cores read 200), as ``docker stats`` prints."""
    cpu = stats.get("cpu_stats") or {}
    pre = stats.get("precpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    cpu_delta = _num(usage.get("total_usage")) - _num(
        (pre.get("cpu_usage") or {}).get("total_usage")
    )
    system_delta = _num(cpu.get("system_cpu_usage")) - _num(pre.get("system_cpu_usage"))
    online = _num(cpu.get("online_cpus")) or float(len(usage.get("percpu_usage") or []))
    if system_delta > 0 and cpu_delta > 0:
        return cpu_delta / system_delta * online * 100.0
    return 0.0


def memory_used_bytes(stats: Stats) -> int:
    """Memory in use without the reclaimable inactive file cache (docker CLI's definition)."""
    mem = stats.get("memory_stats") or {}
    usage = int(_num(mem.get("usage")))
    detail = mem.get("stats") or {}
    inactive = detail.get("total_inactive_file")  # cgroup v1
    if inactive is None:
        inactive = detail.get("inactive_file")  # cgroup v2
    if isinstance(inactive, (int, float)) and inactive < usage:
        return usage - int(inactive)
    return usage


def memory_limit_bytes(stats: Stats) -> int:
    """The cgroup limit; without one, Docker reports the host's memory here."""
    return int(_num((stats.get("memory_stats") or {}).get("limit")))


def network_bytes(stats: Stats) -> tuple[int, int]:
    """(rx, tx) summed over every interface; containers on host networking report none."""
    rx = tx = 0
    for iface in (stats.get("networks") or {}).values():
        rx += int(_num(iface.get("rx_bytes")))
        tx += int(_num(iface.get("tx_bytes")))
    return rx, tx


def block_io_bytes(stats: Stats) -> tuple[int, int]:
    """(read, write) bytes from ``io_service_bytes_recursive``."""
    read = write = 0
    entries = (stats.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    for entry in entries:
        op = str(entry.get("op") or "")[:1].lower()
        if op == "r":
            read += int(_num(entry.get("value")))
        elif op == "w":
            write += int(_num(entry.get("value")))
    return read, write


def resource_record(
    *,
    container: str,
    container_id: str,
    cpu_percent: float,
    mem_usage_bytes: int,
    mem_limit_bytes: int,
    net_rx_bytes: int,
    net_tx_bytes: int,
    block_read_bytes: int,
    block_write_bytes: int,
    pids: int | None,
) -> dict[str, Any]:
    """The fields of one ``container_stats`` log line (see docs/observability.md).

    Both samplers (Docker containers here, native process trees in ``processes.py``) build their
    lines with this one function, so the field names, their order, the rounding and the
    ``mem_percent`` rule cannot drift apart: the Resources dashboard and the memory alert read
    both modes with the same queries.
    """
    return {
        "container": container,
        "container_id": container_id,
        "cpu_percent": round(cpu_percent, 3),
        "mem_usage_bytes": mem_usage_bytes,
        "mem_limit_bytes": mem_limit_bytes,
        "mem_percent": (
            round(mem_usage_bytes / mem_limit_bytes * 100.0, 3) if mem_limit_bytes else None
        ),
        "net_rx_bytes": net_rx_bytes,
        "net_tx_bytes": net_tx_bytes,
        "block_read_bytes": block_read_bytes,
        "block_write_bytes": block_write_bytes,
        "pids": pids,
    }


def container_record(
    stats: Stats, name: str | None = None, container_id: str | None = None
) -> dict[str, Any]:
    """One Docker stats response as the fields of a ``container_stats`` line.

    ``name``/``container_id`` come from ``/containers/json`` when polling; older daemons omit
    them from the stats body itself.
    """
    rx, tx = network_bytes(stats)
    blk_read, blk_write = block_io_bytes(stats)
    container = name or str(stats.get("name") or "").lstrip("/") or str(stats.get("id", ""))[:12]
    return resource_record(
        container=container,
        container_id=str(container_id or stats.get("id") or "")[:12],
        cpu_percent=cpu_percent(stats),
        mem_usage_bytes=memory_used_bytes(stats),
        mem_limit_bytes=memory_limit_bytes(stats),
        net_rx_bytes=rx,
        net_tx_bytes=tx,
        block_read_bytes=blk_read,
        block_write_bytes=blk_write,
        pids=(stats.get("pids_stats") or {}).get("current"),
    )
