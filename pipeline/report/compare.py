"""`deploy compare RUN_A RUN_B`: per artifact and target, what changed from A to B, and which changes are regressions.

Rules (defaults in Thresholds, flags of the same names):
- top-1: a fall of more than `accuracy_points` points is a regression (it is deterministic for a
  given artifact and validation split, so any change is a real one).
- size: a growth of more than `size_pct` percent is a regression.
- latency: p50 at the same target and thread count. The rise must exceed BOTH `latency_pct`
  percent of A's p50 AND `latency_k` times the combined spread of the two runs, so noise alone
  does not fail a build. Spread per run = (p90 - p50) / 1.2816, the standard deviation a normal
  distribution with that p50 and p90 would have: unlike the std, one slow outlier cannot inflate it.
  Only the fewest threads measured on a target are judged unless `all_threads`: runs on every core
  swing with whatever else the machine does (measured: scripts/bench_compare_noise.py, docs/report-and-compare.md).
  Emulated timings are shown, not judged.
- an artifact of A missing from B, or an int8 artifact that now computes in float, is a regression;
  a benchmark (target, threads) measured in only one run is listed but not judged.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pipeline.report import metrics
from pipeline.report.markdown import table_lines
from pipeline.report.schema import Artifact, Latency, Report
from pipeline.report.tables import Table

REGRESSION = "REGRESSION"
IMPROVED = "improved"
UNCHANGED = ""
Z90 = 1.2816  # p90 - p50 of a normal distribution, in standard deviations


@dataclass(frozen=True)
class Thresholds:
    accuracy_points: float = 1.0
    size_pct: float = 5.0
    latency_pct: float = 15.0
    latency_k: float = 2.0
    all_threads: bool = False


@dataclass(frozen=True)
class Change:
    artifact: str
    metric: str
    before: float | None
    after: float | None
    change: str
    limit: str
    verdict: str
    note: str = ""


def spread(latency: Latency) -> float:
    return max(latency.p90 - latency.p50, 0.0) / Z90


def latency_limit(before: Latency, after: Latency, t: Thresholds) -> float:
    """How far p50 must move before it counts: past the relative threshold and past the noise."""
    noise = t.latency_k * math.hypot(spread(before), spread(after))
    return max(t.latency_pct / 100 * before.p50, noise)


def _verdict(worse_by: float, limit: float) -> str:
    if worse_by > limit:
        return REGRESSION
    if -worse_by > limit:
        return IMPROVED
    return UNCHANGED


def _artifact_changes(a: Artifact, b: Artifact, t: Thresholds) -> list[Change]:
    drop = 100 * (a.accuracy.top1 - b.accuracy.top1)
    changes = [Change(
        a.id, "top-1 %", round(100 * a.accuracy.top1, 4), round(100 * b.accuracy.top1, 4), f"{-drop:+.2f} points",
        f"{t.accuracy_points:g} points", _verdict(drop, t.accuracy_points),
    )]
    growth = 100 * (b.size_bytes - a.size_bytes) / a.size_bytes if a.size_bytes else 0.0
    changes.append(Change(
        a.id, "size MB", metrics.size_mb(a), metrics.size_mb(b), f"{growth:+.1f} %", f"{t.size_pct:g} %",
        _verdict(growth, t.size_pct),
    ))
    if a.int8_check is not None and a.int8_check.fully_int8 and b.int8_check is not None and not b.int8_check.fully_int8:
        changes.append(Change(a.id, "int8 check", None, None, "fully int8 -> float ops", "", REGRESSION,
                              f"computes in float: {', '.join(b.int8_check.float_ops[:3])}"))
    for bench in a.benchmarks:
        metric = f"p50 ms on {bench.target}, {bench.threads} thread(s)"
        other = metrics.benchmark_at(b, bench.target, bench.threads)
        if other is None:
            changes.append(Change(a.id, metric, bench.latency_ms.p50, None, "", "", UNCHANGED, "not measured in RUN_B"))
            continue
        before, after = bench.latency_ms, other.latency_ms
        delta = after.p50 - before.p50
        limit = latency_limit(before, after, t)
        relative = f" ({100 * delta / before.p50:+.1f} %)" if before.p50 else ""
        if bench.emulated or other.emulated:
            verdict, note = UNCHANGED, "emulated: not judged"
        elif not t.all_threads and bench.threads != metrics.reference_benchmark(a, bench.target).threads:
            verdict, note = UNCHANGED, "more threads: not judged (--all-threads)"
        else:
            verdict, note = _verdict(delta, limit), ""
        changes.append(Change(
            a.id, metric, before.p50, after.p50, f"{'+' if delta >= 0 else '-'}{metrics.fixed(abs(delta))} ms{relative}",
            f"{metrics.fixed(limit)} ms", verdict, note,
        ))
    return changes


def compare(before: Report, after: Report, t: Thresholds = Thresholds()) -> list[Change]:
    by_id = {a.id: a for a in after.artifacts}
    changes = []
    for a in before.artifacts:
        b = by_id.get(a.id)
        if b is None:
            changes.append(Change(a.id, "artifact", None, None, "missing", "", REGRESSION, "missing in RUN_B"))
        else:
            changes += _artifact_changes(a, b, t)
    known = {a.id for a in before.artifacts}
    changes += [Change(b.id, "artifact", None, None, "new", "", UNCHANGED, "new in RUN_B")
                for b in after.artifacts if b.id not in known]
    return changes


def _value(x: float | None) -> str:
    return "" if x is None else metrics.fixed(x)


def render(changes: list[Change], run_a: Path, run_b: Path) -> str:
    rows = [[c.artifact, c.metric, _value(c.before), _value(c.after), c.change, c.limit, c.verdict, c.note] for c in changes]
    headers = ["artifact", "metric", "RUN_A", "RUN_B", "change", "limit", "verdict", "note"]
    table = Table("compare", "comparison", headers, rows, [False, False, True, True, True, True, False, False])
    regressions = sum(c.verdict == REGRESSION for c in changes)
    improved = sum(c.verdict == IMPROVED for c in changes)
    artifacts = len({c.artifact for c in changes})
    summary = (f"{len(changes)} figures of {artifacts} artifacts compared, RUN_A {run_a} -> RUN_B {run_b}: "
               f"{regressions} regression(s), {improved} improvement(s).")
    return "\n".join(table_lines(table) + [summary])
