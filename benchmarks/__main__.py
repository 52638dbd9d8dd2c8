"""`make bench`: the latency and the throughput benchmark, then one report (docs/benchmarks.md).

python -m benchmarks [--quick] [--report docs/benchmarks.md] [--json results.json]
    [--latency-args "--duration 30"] [--throughput-args "--events 50000"] [--only latency]
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path

from benchmarks import latency_bench, producer_bench, report


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--report", type=Path, default=Path("docs/benchmarks.md"))
    p.add_argument("--json", type=Path, help="also write the raw results here")
    p.add_argument("--quick", action="store_true", help="smoke run: seconds, not minutes")
    p.add_argument("--only", choices=["latency", "throughput"], help="run one benchmark")
    p.add_argument("--latency-args", default="", help="flags for benchmarks.latency_bench")
    p.add_argument("--throughput-args", default="", help="flags for benchmarks.producer_bench")
    p.add_argument("--from-json", type=Path, help="only write the report from saved results")
    args = p.parse_args(argv)
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        report.write(args.report, results)
        return results
    quick = ["--quick"] if args.quick else []
    results: dict = report.context()
    if args.only in (None, "latency"):
        lat = latency_bench.parser().parse_args(quick + shlex.split(args.latency_args))
        results["latency"] = latency_bench.run(lat)
    if args.only in (None, "throughput"):
        tp = producer_bench.parser().parse_args(quick + shlex.split(args.throughput_args))
        results["throughput"] = producer_bench.run(tp)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    report.write(args.report, results)
    return results


if __name__ == "__main__":
    main()
