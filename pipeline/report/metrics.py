"""Figures derived from report.json that the tables, plots, recommendation and comparison share.

Latency for rankings, limits and the main tables is the p50 at the fewest threads measured on a
target (1 by default): single-threaded runs are the most repeatable, and an app classifying beside
its UI rarely gets every core. The full benchmarks table lists every thread count.
"""
from __future__ import annotations

import math

from pipeline.report.schema import Artifact, Benchmark, QatVersusPtq, Report

BYTES_PER_MB = 1e6


def fixed(value: float) -> str:
    """3 decimals, more below 0.1 so that tiny models keep 3 significant digits (0.00213)."""
    decimals = 3 if value <= 0 else max(3, 2 - math.floor(math.log10(value)))
    return f"{value:.{decimals}f}"


def points(change: float) -> str:
    """A signed change in percentage points; never "-0.00"."""
    return f"{change if round(change, 2) else 0.0:+.2f}"


def size_mb(artifact: Artifact) -> float:
    return artifact.size_bytes / BYTES_PER_MB


def targets(report: Report) -> list[str]:
    """Every benchmark target in the report: host first, the others in the order they appear."""
    seen = {b.target: None for a in report.artifacts for b in a.benchmarks}
    return sorted(seen, key=lambda t: t != "host")


def is_emulated(report: Report, target: str) -> bool:
    return any(b.emulated for a in report.artifacts for b in a.benchmarks if b.target == target)


def reference_benchmark(artifact: Artifact, target: str) -> Benchmark | None:
    """The benchmark that stands for this artifact on this target: the fewest threads measured."""
    runs = [b for b in artifact.benchmarks if b.target == target]
    return min(runs, key=lambda b: b.threads) if runs else None


def benchmark_at(artifact: Artifact, target: str, threads: int) -> Benchmark | None:
    return next((b for b in artifact.benchmarks if b.target == target and b.threads == threads), None)


def fp32_baseline(artifact: Artifact, artifacts: list[Artifact]) -> Artifact | None:
    """The fp32 artifact of the same model and format: what speedups and size ratios are measured against."""
    return next(
        (a for a in artifacts if a.model == artifact.model and a.format == artifact.format and a.precision == "fp32"),
        None,
    )


def speedup(artifact: Artifact, baseline: Artifact | None, target: str) -> float | None:
    """fp32 p50 / this artifact's p50, same target and thread count."""
    mine = reference_benchmark(artifact, target)
    if baseline is None or mine is None:
        return None
    theirs = benchmark_at(baseline, target, mine.threads)
    if theirs is None or mine.latency_ms.p50 <= 0:
        return None
    return theirs.latency_ms.p50 / mine.latency_ms.p50


def size_ratio(artifact: Artifact, baseline: Artifact | None) -> float | None:
    """This artifact's size / the fp32 artifact's (0.26 = a 3.8x compression)."""
    if baseline is None or baseline.size_bytes <= 0:
        return None
    return artifact.size_bytes / baseline.size_bytes


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points that no other point beats: none is both faster
    (or as fast) and more accurate (or as accurate) with at least one strictly better."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i])


def qat_versus_ptq(v: QatVersusPtq) -> str:
    """int8-qat against int8-ptq in one phrase (the report's QAT column, the recommendation, the log)."""
    verdict = "worse than" if v.worse else "at least as good as"
    return (f"QAT {verdict} int8-ptq on {v.images} held-out images (top-1 {100 * v.qat.top1:.2f} % vs {100 * v.ptq.top1:.2f} %), "
            f"agreement with float {100 * v.qat.agreement:.2f} % vs {100 * v.ptq.agreement:.2f} %")
