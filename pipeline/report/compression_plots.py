"""The compression plots of report.html (docs/compression.md): each pruned variant's sensitivity
curves (Li et al. 2017, Figure 2), top-1 against MACs across a model's variants, and a --prune-speedup
variant's per-layer time on its latency target before and after pruning."""
from __future__ import annotations

from pipeline.report import tables
from pipeline.report.figure import Plot, png, pyplot
from pipeline.report.schema import Report


def sensitivity(report: Report) -> list[Plot]:
    plots = []
    for model in report.models:
        s = model.pruning_sensitivity
        if s is None:
            continue
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 4.0))
        chosen = (model.compression.group_ratios if model.compression else None) or {}
        for curve in s.groups:
            xs = [0.0] + [p.ratio for p in curve.points]
            ys = [100 * s.baseline_top1] + [100 * p.top1 for p in curve.points]
            line, = ax.plot(xs, ys, lw=1, alpha=0.8)
            if curve.group in chosen:
                ratio = chosen[curve.group]
                ax.plot([ratio], [ys[xs.index(ratio)]] if ratio in xs else [], "o", color=line.get_color(), ms=4)
        ax.set_xlabel("share of the group's filters removed (smallest L1 first)")
        ax.set_ylabel("top-1, % (no fine-tuning)")
        ax.set_title(f"{model.name}: sensitivity of {len(s.groups)} channel groups")
        plots.append(Plot(f"sensitivity-{model.name}", f"Pruning sensitivity of {model.parent or model.name}",
                          f"Each line is one channel group pruned alone, measured on {s.images} {s.measured_on} without "
                          f"fine-tuning; dots: the ratios chosen. Pruned to {100 * (model.compression.macs_kept or 0):.0f} % of the "
                          f"MACs: top-1 {100 * s.top1_pruned_before_fine_tuning:.1f} % before fine-tuning, "
                          f"{100 * s.top1_after_fine_tuning:.1f} % after (held-out images).", png(fig)))
    return plots


def accuracy_vs_macs(report: Report) -> list[Plot]:
    """Float top-1 of each model and its variants against MACs, with their best int8 artifact's top-1."""
    if not any(m.parent for m in report.models):
        return []
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.0))
    for model in report.models:
        int8 = [a.accuracy.top1 for a in report.artifacts if a.model == model.name and a.precision in ("int8-qat", "int8-ptq", "int8")]
        ax.plot(model.macs / 1e6, 100 * model.float_accuracy.top1, "o" if model.parent is None else "s", label=f"{model.name} float")
        if int8:
            ax.plot(model.macs / 1e6, 100 * max(int8), "v", label=f"{model.name} best int8")
    ax.set_xlabel("MMACs per image")
    ax.set_ylabel("top-1, %")
    ax.set_title("Accuracy against MACs, models and their variants")
    ax.legend(fontsize=7)
    return [Plot("accuracy-macs", "Accuracy against MACs", "Validation top-1 (the report's sample); circles: the models as "
                 "built, squares: their compressed variants, triangles: their best int8 artifact.", png(fig))]


def time_per_layer(report: Report) -> list[Plot]:
    """Each layer's int8 time on the latency target by the table, in network order, unpruned and as
    pruned: which layers cost the time and which the chooser cut."""
    plots = []
    for model in report.models:
        c = model.compression
        if c is None or c.latency_table is None:
            continue
        t = c.latency_table
        names = list(t.layers_ms)
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(7.5, 3.6))
        xs = range(len(names))
        ax.bar(xs, [t.layers_ms[n] for n in names], width=0.9, color="#bbbbbb", label=f"{model.parent} (unpruned)")
        if t.pruned_layers_ms:
            ax.bar(xs, [t.pruned_layers_ms.get(n, 0.0) for n in names], width=0.5, color="#1f77b4", label=model.name)
        ax.set_xticks(list(xs), names, rotation=90, fontsize=5)
        ax.set_ylabel("ms (int8, by the latency table)")
        ax.set_title(f"{model.parent}: time per layer on {c.latency_on}")
        ax.legend(fontsize=7)
        plots.append(Plot(f"time-per-layer-{model.name}", f"Where the time goes: {model.parent} on {c.latency_on}",
                          f"Each conv/depthwise/dense layer's int8 TFLite time ({t.threads} thread(s)), each layer timed alone at "
                          f"several widths on {c.latency_on}; grey: unpruned, blue: as {model.name} pruned it. "
                          f"{tables.rest_label(t.rest_ms).capitalize()}: {t.rest_ms:.3f} ms of {t.predicted_unpruned_ms:.3f} ms.",
                          png(fig)))
    return plots
