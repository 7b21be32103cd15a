"""The report's plots, drawn with matplotlib (Agg, imported here only) and inlined as base64 PNG.

Per target: top-1 against latency with the Pareto front marked, and each artifact's latency
spread; for emulated targets, the logit difference to the host instead of speed (and for boards
beside it). Once: the artifact size per precision.
"""
from __future__ import annotations

from pipeline.report import comparison, compression_plots, metrics, op_profiles
from pipeline.report.figure import STYLE, Plot, png, pyplot
from pipeline.report.schema import Report

MARKERS = {"fp32": "o", "fp16": "s", "dynamic-int8": "D", "int8-ptq": "^", "int8-qat": "v"}


def _colors(report: Report) -> dict[str, tuple]:
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    return {m.name: palette(i % 10) for i, m in enumerate(report.models)}


def accuracy_vs_latency(report: Report, target: str) -> Plot:
    """One panel per model (architectures differ too much to share an axis), its own Pareto front."""
    plt = pyplot()
    models = [m for m in report.models
              if any(a.model == m.name and metrics.reference_benchmark(a, target) for a in report.artifacts)]
    cols = 1 if len(models) == 1 else 2
    rows = -(-len(models) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7.5 if cols == 1 else 11, 0.6 + 3.0 * rows), squeeze=False)
    shipped = {r.artifact for r in report.recommendations if r.target == target}
    precision_colors = {p: f"C{i}" for i, p in enumerate(MARKERS)}
    for ax, model in zip(axes.flat, models):
        artifacts = [a for a in report.artifacts if a.model == model.name and metrics.reference_benchmark(a, target)]
        points = [(metrics.reference_benchmark(a, target).latency_ms.p50, 100 * a.accuracy.top1) for a in artifacts]
        front = metrics.pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], "--", color="0.4", zorder=2,
                drawstyle="steps-post")
        for i, (a, point) in enumerate(zip(artifacts, points)):
            ax.scatter(*point, marker=MARKERS.get(a.precision, "o"), color=precision_colors.get(a.precision, "C9"),
                       s=46, zorder=3, edgecolors="black" if i in front else "none", linewidths=1.0)
            if a.id in shipped:
                ax.scatter(*point, marker="o", s=260, facecolors="none", edgecolors="#1f883d", linewidths=2.0, zorder=4)
            # alternate above and below: precisions of one model often sit on the same spot
            ax.annotate(a.precision, point, textcoords="offset points", xytext=(5, 5 if i % 2 else -11), fontsize=7)
        ax.axhline(100 * model.float_accuracy.top1, color="0.6", linewidth=0.8, linestyle=":")
        ax.margins(x=0.15, y=0.25)
        low, high = ax.get_ylim()
        ax.set_ylim(max(low, -1), min(high, 101))  # a top-1 axis past 0..100 % only wastes room
        ax.set_title(model.name, fontsize=9)
    for ax in list(axes.flat)[len(models):]:
        ax.set_visible(False)
    fig.supxlabel("latency p50, ms (fewest threads measured)", fontsize=9)
    fig.supylabel("top-1 %", fontsize=9)
    fig.suptitle(f"Top-1 against latency on {target}")
    fig.tight_layout()
    return Plot(f"accuracy-latency-{target}", f"Top-1 against latency on {target}",
                "Dashed, and outlined in black: the Pareto front of each model (no other artifact is both faster and "
                "more accurate). Green ring: the recommended artifact. Dotted: the float model's top-1.", png(fig))


def latency_spread(report: Report, target: str) -> Plot:
    plt = pyplot()
    colors = _colors(report)
    rows = [(a, metrics.reference_benchmark(a, target)) for a in report.artifacts]
    rows = [(a, b) for a, b in rows if b is not None]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.28 * len(rows)))
    for y, (a, b) in enumerate(rows):
        l, color = b.latency_ms, colors[a.model]
        ax.plot([l.p90, l.p99], [y, y], color=color, linewidth=1.2)
        ax.plot([l.p50, l.p90], [y, y], color=color, linewidth=6, solid_capstyle="butt", alpha=0.6)
        ax.plot(l.p50, y, "|", color="black", markersize=11)
        ax.plot(l.mean, y, "x", color="black", markersize=5)
    ax.set_yticks(range(len(rows)), [a.id for a, _ in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("latency, ms")
    ax.set_title(f"Latency spread per artifact on {target}")
    return Plot(f"latency-spread-{target}", f"Latency spread on {target}",
                "Tick: p50; thick bar: p50 to p90; thin line: p90 to p99; x: mean. Fewest threads measured.", png(fig))


def output_difference(report: Report, target: str) -> Plot | None:
    """The logit difference to the host per artifact, on a symlog axis: 0, 1e-7 and 0.5 all show."""
    rows = [(a, metrics.reference_benchmark(a, target)) for a in report.artifacts]
    rows = [(a, b.output_diff) for a, b in rows if b is not None and b.output_diff is not None]
    if not rows:
        return None
    plt = pyplot()
    colors = _colors(report)
    values = [comparison.plotted(d) for _, d in rows]
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(rows)))
    ax.barh(range(len(rows)), values, color=[colors[a.model] for a, _ in rows])
    ax.set_xscale("symlog", linthresh=1e-7)
    high = max(1.0, 10 * max(values))
    ax.set_xlim(0, high)
    # Plain tick labels: the default symlog ones are math text, which STYLE turns off.
    ticks = [0.0] + [10.0 ** e for e in range(-7, 3, 2) if 10.0 ** e <= high]
    ax.set_xticks(ticks, ["0" if t == 0 else f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_locator(pyplot().NullLocator())
    for y, ((_, d), value) in enumerate(zip(rows, values)):
        note = "softmax" if d.compared is None else f"n={d.n}, agree {100 * d.top1_agreement:.0f} %"
        note += "" if d.logits_max_steps is None else f", {d.logits_max_steps} steps"
        ax.annotate(note, (value, y), textcoords="offset points", xytext=(4, -3), fontsize=7)
    ax.set_yticks(range(len(rows)), [a.id for a, _ in rows], fontsize=7)
    ax.invert_yaxis()
    described = sorted({comparison.what(d) for _, d in rows})
    ax.set_xlabel("max |target logit - host logit|, same inputs, same kernels (symlog; linear below 1e-7)")
    emulated = " (emulated)" if metrics.is_emulated(report, target) else ""
    ax.set_title(f"Logit difference to the host on {target}{emulated}")
    return Plot(f"output-diff-{target}", f"Logit difference to the host on {target}",
                f"Compared: {'; '.join(described)}. The logits are the tensor feeding the final softmax: a trained "
                "model's softmax saturates and hides kernel differences. n: images; agree: top-1 agreement between "
                "target and host; steps: int8 quantization steps. Emulated timings prove an artifact runs, not how "
                "fast a device is.", png(fig))


def size_per_precision(report: Report) -> Plot:
    plt = pyplot()
    colors = _colors(report)
    kinds = list(dict.fromkeys(f"{a.format} {a.precision}" for a in report.artifacts))
    width = 0.8 / max(len(report.models), 1)
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    for i, m in enumerate(report.models):
        sizes = {f"{a.format} {a.precision}": metrics.size_mb(a) for a in report.artifacts if a.model == m.name}
        xs = [k + i * width for k, kind in enumerate(kinds) if kind in sizes]
        ax.bar(xs, [sizes[kind] for kind in kinds if kind in sizes], width, color=colors[m.name], label=m.name)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(kinds))], kinds, fontsize=8)
    ax.set_ylabel("size, MB")
    ax.set_title("Artifact size per precision")
    ax.legend(fontsize=7)
    return Plot("size-precision", "Artifact size per precision", "1 MB = 10^6 bytes.", png(fig))


def all_plots(report: Report) -> list[Plot]:
    if not report.artifacts:
        return []
    with pyplot().rc_context(STYLE):
        plots = []
        for target in metrics.targets(report):
            if not metrics.is_emulated(report, target):
                plots += [accuracy_vs_latency(report, target), latency_spread(report, target)]
            diff = output_difference(report, target)  # emulators, and ssh boards beside their speed
            plots += [diff] if diff else []
        plots.append(size_per_precision(report))
        plots += compression_plots.accuracy_vs_macs(report) + compression_plots.sensitivity(report)
        plots += compression_plots.time_per_layer(report) + op_profiles.plots(report)
    return plots
