"""Per int8 artifact: its worst layers (table and plot) and what the float fallback decided and
cost, for report.md, report.html and `deploy explain` (docs/int8.md)."""
from __future__ import annotations

from dataclasses import dataclass

from pipeline.report import figure, metrics
from pipeline.report.schema import Artifact, Report
from pipeline.report.tables import Table, pct

TOP_LAYERS = 10  # in the report; `deploy explain` prints every layer


@dataclass(frozen=True)
class Int8Section:
    artifact: str
    lines: list[str]  # the fallback's decision and cost, or why no per-layer figure exists
    table: Table | None


def short(layer: str) -> str:
    """A fused op's tensor is named after every op it fused ('a/conv/Relu;a/conv/BiasAdd;...'): the first says it."""
    return layer.split(";")[0]


def layer_table(a: Artifact, top: int | None = TOP_LAYERS) -> Table | None:
    if not a.layer_errors:
        return None
    kept = set(a.fallback.float_layers) if a.fallback else set()
    shown = a.layer_errors if top is None else a.layer_errors[:top]
    rows = [[short(e.layer), e.op, f"{e.nrmse:.3g}", f"{e.max_abs:.3g}", "" if e.cosine is None else f"{e.cosine:.4f}",
             "float" if e.layer in kept else "int8"] for e in shown]
    more = len(a.layer_errors) - len(shown)
    title = f"{a.id}: int8 error per layer, worst first" + (f" ({more} more in report.json)" if more > 0 else "")
    return Table(f"int8-layers-{a.id}", title, ["layer", "op", "nrmse (rmse / int8 step)", "max abs error", "cosine", "shipped as"],
                 rows, [False, False, True, True, True, False])


def fallback_lines(report: Report | None, a: Artifact) -> list[str]:
    """The fallback's decision in words, and its cost in size and (when benchmarked) host latency."""
    lines = [] if a.layer_errors or not a.layer_errors_note else [f"Per-layer error: {a.layer_errors_note}."]
    f = a.fallback
    if f is None:
        return lines
    measured = (f"top-1 on {f.n or ''} held-out training images: float {pct(f.top1_float)} %, int8 {pct(f.top1_int8)} %"
                + (f", shipped {pct(f.top1_after)} %" if f.float_layers else ""))
    if f.agreement_int8 is not None:  # 1.7: the decision's first signal
        measured = (f"agreement with the float model on {f.decision_images} training images: int8 {pct(f.agreement_int8)} %"
                    + (f", shipped {pct(f.agreement_after)} %" if f.float_layers else "") + "; " + measured
                    + ("" if f.top1_decides else " (too few to decide on)"))
    decision = {
        "off": "Float fallback off (--int8-fallback off)",
        "not-needed": f"Float fallback not needed: int8 is within the {f.budget_points:g}-point budget",
        "no-broken-layer": f"int8 is over the {f.budget_points:g}-point budget but no layer is broken (nrmse < 1): the loss is "
                           "spread over layers or is noise on the decision images; float layers would not buy it back "
                           "(try int8-qat or more calibration images)",
        "met": f"Float fallback met the {f.budget_points:g}-point budget with {len(f.float_layers)} layer(s) in float: "
               + ", ".join(short(name) for name in f.float_layers),
        "cap-reached": f"Float fallback reached its cap without meeting the {f.budget_points:g}-point budget; shipped "
                       + (f"with {len(f.float_layers)} layer(s) in float: " + ", ".join(short(n) for n in f.float_layers)
                          if f.float_layers else "the plain int8 model (no round did better)"),
    }[f.status]
    lines.append(f"{decision} ({measured}).")
    if f.float_layers:
        plain = f.rounds[0].size_bytes
        lines.append(f"Cost: size {plain / 1e6:.3f} -> {a.size_bytes / 1e6:.3f} MB ({100 * (a.size_bytes - plain) / plain:+.1f} %)"
                     + _latency_cost(report, a) + ".")
    if len(f.rounds) > 1:
        lines.append("Rounds: " + "; ".join(f"{len(r.float_layers)} float: "
                                            + ("" if r.agreement is None else f"agreement {pct(r.agreement)} %, ")
                                            + f"top-1 {pct(r.top1)} %, {r.size_bytes / 1e6:.3f} MB" for r in f.rounds) + ".")
    return lines


def _latency_cost(report: Report | None, a: Artifact) -> str:
    """Host p50 of the shipped artifact beside the fp32 one (the plain int8 model is not benchmarked)."""
    bench = metrics.reference_benchmark(a, "host")
    if bench is None:
        return ""
    text = f"; host p50 {metrics.fixed(bench.latency_ms.p50)} ms at {bench.threads} thread(s)"
    baseline = metrics.fp32_baseline(a, report.artifacts) if report else None
    base = metrics.benchmark_at(baseline, "host", bench.threads) if baseline else None
    return text + (f" (fp32: {metrics.fixed(base.latency_ms.p50)} ms)" if base else "")


def sections(report: Report, model: str) -> list[Int8Section]:
    return [Int8Section(a.id, fallback_lines(report, a), layer_table(a)) for a in report.artifacts
            if a.model == model and (a.layer_errors or a.layer_errors_note or a.fallback)]


def plot(a: Artifact, top: int = TOP_LAYERS):
    """Horizontal bars of nrmse, worst layer on top, float-kept layers marked; None without figures."""
    if not a.layer_errors:
        return None
    with figure.pyplot().rc_context(figure.STYLE):
        return _bars(a, a.layer_errors[:top])


def _bars(a: Artifact, shown):
    plt = figure.pyplot()
    kept = set(a.fallback.float_layers) if a.fallback else set()
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.28 * len(shown)))
    ax.barh(range(len(shown))[::-1], [e.nrmse for e in shown],
            color=["#d62728" if e.layer in kept else "#1f77b4" for e in shown])
    ax.set_yticks(range(len(shown))[::-1], [f"{short(e.layer)[-40:]} ({e.op})" for e in shown], fontsize=7)
    values = [e.nrmse for e in shown if e.nrmse > 0]
    if values and max(values) > 30 * min(values):  # one broken layer would flatten the healthy ones to nothing
        ax.set_xscale("log")
    ax.set_xlabel("nrmse: RMSE of the int8 output / its int8 step")
    ax.set_title(f"{a.id}: worst layers first")
    return figure.Plot(f"int8-layers-plot-{a.id}", f"{a.id}: int8 error per layer",
                       "Measured by TensorFlow's QuantizationDebugger on held-out training images; red: kept in float by "
                       "the fallback. About 0.3 is rounding alone.", figure.png(fig))
