"""The report's tables as plain rows of formatted text, built once for report.md and report.html.

Number formats (the browser test reads them back): sizes in MB (10^6 bytes) and latencies in ms
as metrics.fixed; accuracies in % with 2 decimals; changes in points with a sign; ratios with 2
decimals and an 'x'.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from pipeline.report import comparison, metrics, on_target
from pipeline.report.recommend import describe
from pipeline.report.schema import Artifact, Constraints, ModelInfo, Report

MAX_LABELS_SHOWN = 12
CHANCE_MARGIN = 0.05  # top-1 within 5 points of 1/classes counts as guessing


@dataclass(frozen=True)
class Table:
    key: str  # stable identifier: the HTML table's id
    title: str
    headers: list[str]
    rows: list[list[str]]
    numeric: list[bool]  # right-aligned columns
    highlight: list[int] = field(default_factory=list)  # rows of recommended artifacts


@dataclass(frozen=True)
class Headline:
    """One line of 'what to ship': a model's recommendation on a target and what it costs."""

    model: str
    target: str
    artifact: str | None
    what: str  # format and precision, or why nothing qualifies
    costs: list[str]
    warning: str | None = None


def pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}"


def mb(artifact: Artifact) -> str:
    return metrics.fixed(metrics.size_mb(artifact))


def ms(value: float) -> str:
    return metrics.fixed(value)


def ratio(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def constraints_used(report: Report) -> Constraints:
    return report.recommendations[0].constraints if report.recommendations else Constraints()


def constraints_sentence(report: Report) -> str:
    limits = describe(constraints_used(report))
    base = "the fastest artifact per target (the smallest on emulated targets) that is verified and fully int8 where int8"
    return f"Recommended: {base}, under {limits}." if limits else f"Recommended: {base}; no constraints were set."


def recommended_ids(report: Report, target: str | None = None) -> set[str]:
    return {r.artifact for r in report.recommendations if r.artifact and (target is None or r.target == target)}


def chance_warning(model: ModelInfo) -> str | None:
    """A float model no better than guessing makes every artifact of it worthless, however fast."""
    chance = 1 / max(model.num_classes, 1)
    if model.float_accuracy.top1 > chance + CHANCE_MARGIN:
        return None
    return (f"the float model itself is at chance level ({pct(model.float_accuracy.top1)} % top-1 for "
            f"{model.num_classes} classes): it did not learn; fix training before shipping")


def headlines(report: Report) -> list[Headline]:
    by_id = {a.id: a for a in report.artifacts}
    models = {m.name: m for m in report.models}
    lines = []
    for rec in report.recommendations:
        warning = chance_warning(models[rec.model]) if rec.model in models else None
        artifact = by_id.get(rec.artifact) if rec.artifact else None
        if artifact is None:
            lines.append(Headline(rec.model, rec.target, None, "nothing qualifies", [rec.reason], warning))
            continue
        model = models[artifact.model]
        baseline = metrics.fp32_baseline(artifact, report.artifacts)
        costs = [
            f"top-1 {pct(artifact.accuracy.top1)} % vs {pct(model.float_accuracy.top1)} % float "
            f"({metrics.points(-artifact.accuracy_drop_points)} points)",
            f"{mb(artifact)} MB",
        ]
        size_ratio = metrics.size_ratio(artifact, baseline)
        if size_ratio and artifact.precision != "fp32":
            costs[-1] += f", {1 / size_ratio:.1f}x smaller than fp32" if size_ratio < 1 else f", {size_ratio:.2f}x the fp32 size"
        bench = metrics.reference_benchmark(artifact, rec.target)
        if bench is not None and not bench.emulated:
            speed = f"p50 {ms(bench.latency_ms.p50)} ms at {bench.threads} thread(s)"
            gain = metrics.speedup(artifact, baseline, rec.target)
            if gain is not None and artifact.precision != "fp32":
                speed += f", {gain:.2f}x fp32 speed"
            costs.append(speed)
        lines.append(Headline(rec.model, rec.target, artifact.id, f"{artifact.format} {artifact.precision}", costs, warning))
    return lines


def recommendations_table(report: Report) -> Table:
    rows = [[r.target, r.model, r.artifact or "none", r.reason] for r in report.recommendations]
    return Table("recommendations", "What to ship", ["target", "model", "artifact", "why"], rows, [False] * 4)


def _qat(qat) -> str:
    """The QAT column: its status, why not, or how it did against int8-ptq on held-out images."""
    text = qat.status + (f" ({qat.reason})" if qat.reason else "")
    v = qat.versus_ptq
    if v is not None and v.qat is not None:
        text += "; " + metrics.qat_versus_ptq(v)
    return text


def _labels(labels: list[str]) -> str:
    shown = ", ".join(labels[:MAX_LABELS_SHOWN])
    return f"{len(labels)}: {shown}" + (", ..." if len(labels) > MAX_LABELS_SHOWN else "")


def model_facts_table(report: Report) -> Table:
    """What the compression literature reports, for the artifact recommended on the first target."""
    first = {r.model: r for r in reversed(report.recommendations)}  # recommendations are target-major
    by_id = {a.id: a for a in report.artifacts}
    rows = []
    for m in report.models:
        rec = first.get(m.name)
        shipped = by_id.get(rec.artifact) if rec and rec.artifact else None
        baseline = metrics.fp32_baseline(shipped, report.artifacts) if shipped else None
        size_ratio = metrics.size_ratio(shipped, baseline) if shipped else None
        gain = metrics.speedup(shipped, baseline, rec.target) if shipped else None
        rows.append([
            m.name, m.source, "x".join(map(str, m.input_shape)), _labels(m.labels), f"{m.params:,}",
            f"{m.macs / 1e6:.2f}", pct(m.float_accuracy.top1), _qat(m.qat),
            shipped.id if shipped else "none",
            "" if not size_ratio else f"{1 / size_ratio:.2f}x",
            ratio(gain),
            metrics.points(-shipped.accuracy_drop_points) if shipped else "",
        ])
    headers = ["model", "source", "input", "classes", "parameters", "MMACs", "float top-1 %", "QAT",
               "shipped artifact", "compression (fp32 bytes / bytes)", "measured speedup", "top-1 change (points)"]
    numeric = [False, False, False, False, True, True, True, False, False, True, True, True]
    return Table("model-facts", "Models", headers, rows, numeric)


def artifacts_table(report: Report, model: str, target: str) -> Table | None:
    artifacts = [a for a in report.artifacts if a.model == model and metrics.reference_benchmark(a, target)]
    if not artifacts:
        return None
    emulated = metrics.is_emulated(report, target)
    compared = any(metrics.reference_benchmark(a, target).output_diff for a in artifacts)
    threads = sorted({metrics.reference_benchmark(a, target).threads for a in artifacts})
    headers = ["artifact", "format", "precision", "size MB", "top-1 %", "top-1 change (points)", "agreement %",
               "p50 ms", "p90 ms"]
    headers += [] if emulated else ["speedup vs fp32", "size vs fp32"]
    headers += comparison.HEADERS if compared else []
    headers += ["int8 check", "file"]
    rows, highlight = [], []
    shipped = recommended_ids(report, target)
    for i, a in enumerate(artifacts):
        bench = metrics.reference_benchmark(a, target)
        baseline = metrics.fp32_baseline(a, report.artifacts)
        row = [a.id, a.format, a.precision, mb(a), pct(a.accuracy.top1), metrics.points(-a.accuracy_drop_points),
               pct(a.accuracy.agreement), ms(bench.latency_ms.p50), ms(bench.latency_ms.p90)]
        if not emulated:
            row += [ratio(metrics.speedup(a, baseline, target)), ratio(metrics.size_ratio(a, baseline))]
        row += comparison.cells(bench.output_diff) if compared else []
        row += [_int8(a), a.path]
        rows.append(row)
        if a.id in shipped:
            highlight.append(i)
    title = f"{model} on {target}" + (" (emulated: timings prove it runs, not device speed)" if emulated else "")
    title += f"; latency at {', '.join(map(str, threads))} thread(s)"
    numeric = [False, False, False] + [True] * (6 + 2 * (not emulated)) + (comparison.NUMERIC if compared else []) + [False, False]
    return Table(f"artifacts-{model}-{target}", title, headers, rows, numeric, highlight)


# The precision an artifact is compared at across runtimes (TFLite's dynamic-range int8 has no counterpart).
PRECISION_CLASS = {"fp32": "fp32", "fp16": "fp16", "int8-ptq": "int8", "int8-qat": "int8", "int8": "int8"}
RUNTIME_FORMATS = {"tflite": "TFLite (LiteRT)", "ncnn": "ncnn", "mnn": "MNN", "onnx": "ONNX (onnxruntime)"}


def runtimes_table(report: Report, model: str, target: str) -> Table | None:
    """One row per precision, one column per runtime: p50, size and top-1 of each artifact there,
    so the runtimes compare at equal precision. None with fewer than two runtimes."""
    artifacts = [a for a in report.artifacts if a.model == model and a.precision in PRECISION_CLASS
                 and metrics.reference_benchmark(a, target)]
    formats = [f for f in RUNTIME_FORMATS if any(a.format == f for a in artifacts)]
    if len(formats) < 2:
        return None
    rows = []
    for precision in dict.fromkeys(PRECISION_CLASS.values()):
        cells = [" / ".join(f"{a.precision}: {ms(metrics.reference_benchmark(a, target).latency_ms.p50)} ms, {mb(a)} MB, "
                            f"{pct(a.accuracy.top1)} %" for a in artifacts if a.format == fmt and PRECISION_CLASS[a.precision] == precision)
                 for fmt in formats]
        if any(cells):
            rows.append([precision, *cells])
    threads = sorted({metrics.reference_benchmark(a, target).threads for a in artifacts})
    return Table(f"runtimes-{model}-{target}", f"{model} on {target}: the runtimes side by side (p50 at "
                 f"{', '.join(map(str, threads))} thread(s), size, top-1)", ["precision", *(RUNTIME_FORMATS[f] for f in formats)],
                 rows, [False] * (1 + len(formats)))


def target_accuracy_table(report: Report, model: str) -> Table | None:
    """Top-1 computed by each emulated target's own kernels beside the host's on the same images."""
    rows = [[a.id, t.target, t.runtime + ("" if a.format == "ncnn" else f", {t.delegate}")
             + (f", {t.arithmetic} arithmetic" if t.arithmetic else ""), str(t.n), pct(t.top1), pct(t.host_top1),
             metrics.points(-on_target.gap_points(t)), pct(t.host_agreement), pct(t.float_agreement),
             "flagged: not recommended there" if t.flagged else ""]
            for a in report.artifacts if a.model == model for t in a.target_accuracy]
    if not rows:
        return None
    headers = ["artifact", "target", "runtime", "images", "top-1 % on target", "top-1 % on host (same images)",
               "change (points)", "agreement with host %", "agreement with float %", ""]
    return Table(f"target-accuracy-{model}", f"{model}: accuracy computed by the targets' own kernels", headers, rows,
                 [False, False, False] + [True] * 6 + [False])


TIME_LAYERS_SHOWN = 12


def rest_label(rest_ms: float) -> str:
    """What the latency table's rest is: the whole model's time beyond its layers timed alone. It can
    be negative: a layer timed alone pays for memory traffic the whole model keeps in cache."""
    if rest_ms >= 0:
        return "everything else (additions, pooling, shuffles, call cost)"
    return "less what the layers timed alone overcount (in the whole model they share caches)"


def speedup_tables(report: Report, model: str) -> list[Table]:
    """A --prune-speedup variant: the speed-up asked, predicted and achieved, and where the unpruned
    int8 model's time goes on that target by the latency table (the layers worth pruning)."""
    info = next(m for m in report.models if m.name == model)
    c = info.compression
    if c is None or c.latency_table is None:
        return []
    t = c.latency_table
    asked = Table(f"speedup-{model}", f"{model}: speed-up asked on {c.latency_on} ({t.threads} thread(s), int8 TFLite)",
                  ["asked", "predicted by the latency table", "achieved (this build's benchmarks)", "table entries (timed now)",
                   f"{info.parent} measured / predicted ms", "rounds' spread %"],
                  [[ratio(c.speedup), ratio(c.predicted_speedup), ratio(c.achieved_speedup), f"{t.entries} ({t.timed})",
                    f"{ms(t.unpruned_ms)} / {ms(t.predicted_unpruned_ms)}", f"{100 * t.spread:.1f}"]], [True] * 6)
    total = t.predicted_unpruned_ms
    layers = sorted(t.layers_ms.items(), key=lambda item: -item[1])
    rows = [[name, ms(time), f"{100 * time / total:.1f}"] for name, time in layers[:TIME_LAYERS_SHOWN]]
    if len(layers) > TIME_LAYERS_SHOWN:
        rest = sum(time for _, time in layers[TIME_LAYERS_SHOWN:])
        rows.append([f"{len(layers) - TIME_LAYERS_SHOWN} other conv/depthwise/dense layers", ms(rest), f"{100 * rest / total:.1f}"])
    rows.append([rest_label(t.rest_ms), ms(t.rest_ms), f"{100 * t.rest_ms / total:.1f}"])
    where = Table(f"time-{model}", f"{info.parent}: where the int8 model's time goes on {c.latency_on} (latency table)",
                  ["layer", "ms", "share %"], rows, [False, True, True])
    return [asked, where]


def _int8(a: Artifact) -> str:
    if a.int8_check is None:
        return ""
    return "fully int8" if a.int8_check.fully_int8 else f"float ops: {', '.join(a.int8_check.float_ops[:3])}"


def delegate(b) -> str:
    """LiteRT's delegate, or the ncnn options that change speed (fp16 storage/arithmetic, packing);
    for fp16 artifacts, the arithmetic the target really used (x86 has no fp16 arithmetic)."""
    arithmetic = f", {b.arithmetic} arithmetic" if b.arithmetic else ""
    if b.runtime == "mnn":
        return f"precision {b.options.get('precision_mode', 'normal')}{arithmetic}"
    if b.runtime != "ncnn":
        return b.delegate + arithmetic
    fp16 = "fp16 on" if b.options.get("use_fp16_arithmetic") else "fp16 off"
    return f"{fp16}, packing {'on' if b.options.get('use_packing_layout') else 'off'}{arithmetic}"


def failure_lines(report: Report) -> list[str]:
    """Artifacts that could not be built, or not benchmarked on a target: which, and the tool's one-line error."""
    return [f"{f.model} {f.format} {f.precision}{f' on {f.target}' if f.target else ''}: {f.error}" for f in report.failures]


def benchmarks_table(report: Report, model: str) -> Table:
    headers = ["artifact", "target", "runtime", "delegate", "threads", "p50 ms", "p90 ms", "p99 ms", "mean ms",
               "std ms", "n", "init ms", "peak RSS MB"]
    rows = []
    for a in report.artifacts:
        if a.model != model:
            continue
        for b in a.benchmarks:
            l = b.latency_ms
            rows.append([
                a.id, b.target + (" (emulated)" if b.emulated else "") + (" (partial)" if b.partial else ""), f"{b.runtime} {b.runtime_version}", delegate(b),
                str(b.threads), ms(l.p50), ms(l.p90), ms(l.p99), ms(l.mean), ms(l.std), str(l.n),
                _optional(b.init_ms), _optional(b.peak_rss_mb),
            ])
    numeric = [False, False, False, False] + [True] * 9
    return Table(f"benchmarks-{model}", f"{model}: every benchmark", headers, rows, numeric)


def tools_table(report: Report) -> Table:
    rows = [[name, version] for name, version in sorted(report.tools.items())]
    return Table("tools", "Tool versions", ["tool", "version"], rows, [False, False])


def cpus(report: Report) -> list[str]:
    return sorted({b.cpu for a in report.artifacts for b in a.benchmarks})


def gate_lines(report: Report) -> list[str]:
    gate = report.quality_gate
    if gate.max_accuracy_drop_points is None and not gate.failures:
        return ["No accuracy gate was set (--max-accuracy-drop)."]
    head = f"Max accuracy drop {gate.max_accuracy_drop_points} points: " if gate.max_accuracy_drop_points is not None else ""
    head += "all artifacts pass." if not gate.failures else f"{len(gate.failures)} failure(s):"
    return [head] + [f"{f.artifact}: {f.reason}" for f in gate.failures]


def _optional(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"
