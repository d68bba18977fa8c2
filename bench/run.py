"""Run the benchmark suite and print one markdown table (or JSON).

    .venv/bin/python bench/run.py [--scale small|full] [--only NAME] [--repeats N] [--json]

Every `bench/bench_<name>.py` is a bench module (see `harness.py` for the protocol). Each
benchmark is reported as the median of its runs next to the median of its anchor's runs, and
the overhead as the median of the paired ratios lakestack / anchor, minus one.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from harness import Row

BENCH_DIR = Path(__file__).resolve().parent
REPEATS = {"small": 3, "full": 7}


def discover() -> list[str]:
    """Names of the bench modules, `bench_tables.py` -> `tables`."""
    return sorted(p.stem.removeprefix("bench_") for p in BENCH_DIR.glob("bench_*.py"))


def summarize(row: Row) -> dict[str, Any]:
    """Medians of each side; the overhead is the median of the paired ratios.

    The two runs of a pair ran back to back, so they share whatever load the machine had then:
    their ratio cancels slow drift that the ratio of the two medians would not.
    """
    if row.skipped is not None:
        return {"benchmark": row.name, "skipped": row.skipped}
    lakestack, plain = statistics.median(row.lakestack), statistics.median(row.plain)
    overhead = statistics.median(ls / pl for ls, pl in zip(row.lakestack, row.plain, strict=True)) - 1
    p99 = percentile(row.lakestack, 0.99)
    return {
        "benchmark": row.name,
        "lakestack_s": lakestack,
        "plain_s": plain,
        "overhead": overhead,
        "overhead_ms": (lakestack - plain) * 1000,
        "target": row.target,
        "p99_target_s": row.p99_target,
        "lakestack_p99_s": p99,
        "plain_p99_s": percentile(row.plain, 0.99),
        "met": p99 < row.p99_target if row.p99_target is not None else overhead < row.target,
        "lakestack_runs_s": row.lakestack,
        "plain_runs_s": row.plain,
        **memory(row),
    }


def memory(row: Row) -> dict[str, Any]:
    """Peak RSS of each side's fresh process, and how much of it the call added, in MiB."""
    if row.peak_mib is None:
        return {}
    ours, theirs = row.peak_mib
    return {
        "anchor": row.anchor,
        "lakestack_peak_mib": ours.peak,
        "lakestack_added_mib": ours.added,
        "plain_peak_mib": theirs.peak,
        "plain_added_mib": theirs.added,
    }


def memory_markdown(results: list[dict[str, Any]]) -> str:
    """A second table for the benchmarks that measured memory; empty when none did."""
    rows = [r for r in results if "lakestack_peak_mib" in r]
    if not rows:
        return ""
    lines = [
        "| benchmark | lakestack peak RSS (MiB) | anchor peak RSS (MiB) |",
        "|---|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['benchmark']} | {r['lakestack_peak_mib']:,.0f} (+{r['lakestack_added_mib']:,.0f}) "
            f"| {r['plain_peak_mib']:,.0f} (+{r['plain_added_mib']:,.0f}) |"
        )
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The `q` quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def seconds(value: float) -> str:
    """Seconds with three decimals; sub-millisecond latencies in ms, which would print as 0.000."""
    return f"{value:.3f}" if value >= 0.001 else f"{value * 1000:.3f} ms"


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| benchmark | lakestack (s) | anchor (s) | overhead | target |",
        "|---|---:|---:|---:|---|",
    ]
    for r in results:
        if "skipped" in r:
            lines.append(f"| {r['benchmark']} | - | - | - | skipped: {r['skipped']} |")
            continue
        verdict = "✓" if r["met"] else "✗"
        if r.get("p99_target_s") is not None:  # a latency row: medians are p50s, judged on the p99
            ms = {k: f"{r[k] * 1000:.3f} ms" for k in ("lakestack_p99_s", "p99_target_s", "plain_p99_s")}
            target = (
                f"{verdict} p99 {ms['lakestack_p99_s']} < {ms['p99_target_s']} "
                f"(anchor p99 {ms['plain_p99_s']})"
            )
        else:
            target = f"{verdict} < {r['target']:.0%}"
            if r["target"] < 0:  # a speed-up target: "10x faster" is an overhead under -90 %
                target += f" ({1 / (1 + r['target']):.0f}x faster; here {1 / (1 + r['overhead']):.1f}x)"
        lines.append(
            f"| {r['benchmark']} | {seconds(r['lakestack_s'])} | {seconds(r['plain_s'])} "
            f"| {r['overhead']:+.1%} | {target} |"
        )
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    return {
        "load_average": round(os.getloadavg()[0], 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **{package: version(package) for package in ("lakestack", "deltalake", "pyarrow")},
    }


def main(argv: list[str] | None = None) -> int:
    modules = discover()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(REPEATS), default="full", help="data size (default: full)")
    parser.add_argument(
        "--only", choices=modules, metavar="NAME", help=f"one bench module: {', '.join(modules)}"
    )
    parser.add_argument("--repeats", type=int, help="repeats per benchmark (default: 3 small, 7 full)")
    parser.add_argument("--json", action="store_true", help="print JSON (with every run) instead of markdown")
    args = parser.parse_args(argv)
    repeats = args.repeats or REPEATS[args.scale]

    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus / 2:
        print(
            f"warning: load average {load:.1f} on {cpus} CPUs: other work will make the times noisy",
            file=sys.stderr,
        )
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    for name in [args.only] if args.only else modules:
        print(f"{name}: scale={args.scale}, {repeats} repeats", file=sys.stderr)
        module = importlib.import_module(f"bench_{name}")
        results += [summarize(row) for row in module.run(args.scale, repeats)]
    elapsed = time.perf_counter() - started
    print(f"done in {elapsed:.0f} s", file=sys.stderr)

    if args.json:
        report = {"scale": args.scale, "repeats": repeats, "environment": environment(), "results": results}
        print(json.dumps(report, indent=2))
    else:
        env = environment()  # taken after the run: the load average then covers it
        print(markdown(results))
        if memory_markdown(results):
            print(
                "\nPeak memory: one call per side in a fresh process; in brackets what the call "
                "added to the process's RSS just before it.\n"
            )
            print(memory_markdown(results))
        print(
            f"\nMedians over {repeats} repeats, scale {args.scale}; lakestack {env['lakestack']}, deltalake "
            f"{env['deltalake']}, pyarrow {env['pyarrow']}, Python {env['python']}, {env['cpus']} CPUs, "
            f"load average {env['load_average']}. Overhead = median of paired lakestack/anchor ratios; "
            "each module's anchor is named in bench/README.md."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
