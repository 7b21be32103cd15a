"""Which artifact to ship, per target and model, under the user's constraints.

On a measured target: the fastest artifact (lowest p50 at the fewest threads measured, see
metrics.py) that meets every constraint; artifacts whose interquartile latency ranges overlap the
fastest one's are tied with it (their difference is within what the runs themselves scattered),
and a tie goes to the smallest file, then the smallest top-1 drop. On an emulated target the
timings say nothing about device speed, so the latency limit is not applied and the smallest
artifact that meets the other constraints is named. An int8 artifact that still computes in float
is never recommended, nor one whose top-1 computed by the target's own kernels (an emulator's or a board's) is more
than a point below the host's (on_target.py), nor an int8-qat artifact whose QAT measured worse than
int8-ptq (models[].qat.versus_ptq). When none qualifies, the reason says what each artifact missed.
"""
from __future__ import annotations

from pipeline.report import comparison, metrics, on_target
from pipeline.report.schema import Artifact, Benchmark, Constraints, Recommendation, Report


def recommend(report: Report, constraints: Constraints) -> list[Recommendation]:
    """One recommendation per (target, model) that has benchmarks; target 'host' first. A model's
    compressed variants (models[].parent) compete with it: their artifacts are its candidates."""
    recommendations = []
    family = _families(report)
    vetoes = _vetoes(report)
    for target in metrics.targets(report):
        emulated = metrics.is_emulated(report, target)
        for model in report.models:
            if model.parent is not None:
                continue
            candidates = [
                (a, b) for a in report.artifacts if family.get(a.model) == model.name
                for b in [metrics.reference_benchmark(a, target)] if b is not None
            ]
            if not candidates:
                continue
            artifact, reason = _pick(candidates, report.artifacts, target, constraints, emulated, vetoes)
            recommendations.append(Recommendation(
                target=target, model=model.name, artifact=artifact.id if artifact else None,
                reason=reason, constraints=constraints,
            ))
    return recommendations


def _families(report: Report) -> dict[str, str]:
    """Model name -> the uncompressed model it comes from (itself for one)."""
    parents = {m.name: m.parent for m in report.models}
    root = {}
    for name in parents:
        top = name
        while parents.get(top):
            top = parents[top]
        root[name] = top
    return root


def _vetoes(report: Report) -> dict[str, str]:
    """Artifact id -> why it is never recommended whatever the constraints: an int8-qat artifact whose
    QAT lost to post-training quantization on held-out images."""
    worse = {m.name: metrics.qat_versus_ptq(m.qat.versus_ptq) for m in report.models
             if m.qat.versus_ptq is not None and m.qat.versus_ptq.worse}
    return {a.id: worse[a.model] for a in report.artifacts if a.precision == "int8-qat" and a.model in worse}


def describe(constraints: Constraints, emulated: bool = False) -> str:
    parts = []
    if constraints.max_accuracy_drop is not None:
        parts.append(f"top-1 drop <= {constraints.max_accuracy_drop:g} points")
    if constraints.max_size_mb is not None:
        parts.append(f"size <= {constraints.max_size_mb:g} MB")
    if constraints.max_latency_ms is not None and not emulated:
        parts.append(f"p50 <= {constraints.max_latency_ms:g} ms")
    return ", ".join(parts)


def violations(artifact: Artifact, bench: Benchmark, constraints: Constraints, veto: str | None = None) -> list[str]:
    """What keeps this artifact from being recommended, one short phrase each."""
    missed = [veto] if veto else []
    if artifact.int8_check is not None and not artifact.int8_check.fully_int8:
        missed.append("still computes in float")
    measured = on_target.on(artifact, bench.target)
    if measured is not None and measured.flagged:
        missed.append(f"top-1 on {bench.target}'s kernels {100 * measured.top1:.2f} % is {on_target.gap_points(measured):.2f} "
                      f"points below the host's ({measured.n} images)")
    if constraints.max_accuracy_drop is not None and artifact.accuracy_drop_points > constraints.max_accuracy_drop:
        missed.append(f"drop {artifact.accuracy_drop_points:.2f} points > {constraints.max_accuracy_drop:g}")
    if constraints.max_size_mb is not None and metrics.size_mb(artifact) > constraints.max_size_mb:
        missed.append(f"{metrics.fixed(metrics.size_mb(artifact))} MB > {constraints.max_size_mb:g}")
    if constraints.max_latency_ms is not None and not bench.emulated and bench.latency_ms.p50 > constraints.max_latency_ms:
        missed.append(f"p50 {metrics.fixed(bench.latency_ms.p50)} ms > {constraints.max_latency_ms:g}")
    return missed


def _pick(candidates, all_artifacts, target, constraints, emulated, vetoes) -> tuple[Artifact | None, str]:
    limits = describe(constraints, emulated)
    passing = [(a, b) for a, b in candidates if not violations(a, b, constraints, vetoes.get(a.id))]
    if not passing:
        misses = "; ".join(f"{a.id} {', '.join(violations(a, b, constraints, vetoes.get(a.id)))}" for a, b in candidates)
        return None, f"none of {len(candidates)} artifacts meets {limits or 'the int8 check'}: {misses}"
    if emulated:
        artifact, bench = min(passing, key=lambda ab: (ab[0].size_bytes, ab[0].accuracy_drop_points))
        scope = f"smallest of {len(passing)} artifacts"
    else:
        fastest = min(passing, key=lambda ab: (ab[1].latency_ms.p50, ab[0].size_bytes))
        tied = [ab for ab in passing if ab[1].latency_ms.overlaps(fastest[1].latency_ms)]
        artifact, bench = min(tied, key=lambda ab: (ab[0].size_bytes, ab[0].accuracy_drop_points, ab[1].latency_ms.p50))
        scope = (f"fastest of {len(passing)} artifacts" if len(tied) == 1 else
                 f"smallest of the {len(tied)} tied as fastest (p25-p75 latencies overlap) of {len(passing)} artifacts")
    scope += f" meeting {limits}" if limits else " (no constraints set)"
    if len(passing) < len(candidates):
        scope += f"; {len(candidates) - len(passing)} other(s) miss them"
    return artifact, f"{scope}: {_facts(artifact, bench, all_artifacts, target)}"


def _facts(artifact: Artifact, bench: Benchmark, all_artifacts: list[Artifact], target: str) -> str:
    baseline = metrics.fp32_baseline(artifact, all_artifacts)
    size = f"{metrics.fixed(metrics.size_mb(artifact))} MB"
    ratio = metrics.size_ratio(artifact, baseline)
    if ratio is not None and artifact.precision != "fp32":
        size += f" ({ratio:.2f}x fp32)"
    accuracy = f"top-1 {100 * artifact.accuracy.top1:.2f} % ({metrics.points(-artifact.accuracy_drop_points)} points vs float)"
    if bench.emulated:
        diff = f"; {comparison.summary(bench.output_diff)}" if bench.output_diff else ""
        return f"{size}; {accuracy}{diff}; emulated timings say nothing about device speed"
    speed = f"p50 {metrics.fixed(bench.latency_ms.p50)} ms at {bench.threads} thread(s)"
    gain = metrics.speedup(artifact, baseline, target)
    if gain is not None and artifact.precision != "fp32":
        speed += f" ({gain:.2f}x fp32 speed)"
    return f"{speed}; {size}; {accuracy}"
