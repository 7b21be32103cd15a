"""--profile-ops in the report: per model and real target, where each TFLite artifact's time goes
(benchmarks[].op_profile): a table of the slowest layers in report.md / report.html, and a plot of
every layer's time, one line per artifact, in report.html."""
from __future__ import annotations

from pipeline.report.figure import Plot, png, pyplot
from pipeline.report.schema import Artifact, Benchmark, Report
from pipeline.report.tables import Table, ms

SLOWEST_SHOWN = 3


def _profiled(report: Report, model: str) -> dict[str, list[tuple[Artifact, Benchmark]]]:
    """{target: [(artifact, its profiled benchmark)]} for the model, in report order."""
    found: dict[str, list] = {}
    for a in report.artifacts:
        for b in a.benchmarks:
            if a.model == model and b.op_profile is not None:
                found.setdefault(b.target, []).append((a, b))
    return found


def by_layer(b: Benchmark) -> dict[str, float]:
    """The profile's ops summed per layer (an op's fused neighbours share its layer), in execution order."""
    layers: dict[str, float] = {}
    for op in b.op_profile.ops:
        layers[op.layer] = layers.get(op.layer, 0.0) + op.ms
    return layers


def tables(report: Report, model: str) -> list[Table]:
    result = []
    for target, pairs in _profiled(report, model).items():
        rows = []
        for a, b in pairs:
            layers = sorted(by_layer(b).items(), key=lambda item: -item[1])
            total = sum(op.ms for op in b.op_profile.ops)
            rows.append([a.precision, ms(b.op_profile.whole_ms), ms(total), str(len(b.op_profile.ops)),
                         ", ".join(f"{name} {ms(t)} ({100 * t / total:.0f} %)" for name, t in layers[:SLOWEST_SHOWN])])
        result.append(Table(f"ops-{model}-{target}", f"{model}: where the time goes on {target} ({pairs[0][1].threads} thread(s), "
                            "each op timed alone)", ["artifact", "whole ms", "ops alone, sum ms", "ops", "slowest layers"],
                            rows, [False, True, True, True, False]))
    return result


def plots(report: Report) -> list[Plot]:
    result = []
    for model in report.models:
        for target, pairs in _profiled(report, model.name).items():
            plt = pyplot()
            fig, ax = plt.subplots(figsize=(7.5, 3.8))
            profiles = [(a, by_layer(b)) for a, b in pairs]
            names = list(dict.fromkeys(name for _, layers in profiles for name in layers))
            for a, layers in profiles:
                ax.plot(range(len(names)), [layers.get(n, 0.0) for n in names], lw=1, marker=".", ms=3, label=a.precision)
            step = max(1, len(names) // 60)  # at most ~60 names under the axis
            ax.set_xticks(range(0, len(names), step), names[::step], rotation=90, fontsize=5)
            ax.set_ylabel("ms, the layer's ops alone")
            ax.set_title(f"{model.name}: time per layer on {target}")
            ax.legend(fontsize=7)
            result.append(Plot(f"op-time-{model.name}-{target}", f"Where the time goes: {model.name} on {target}",
                               f"Each TFLite artifact's ops timed alone on {target} ({pairs[0][1].threads} thread(s), XNNPACK, "
                               "real weights and quantization), summed per layer, in execution order. The layers a line "
                               "peaks at are the ones worth pruning, or keeping out of a slow precision.", png(fig)))
    return result
