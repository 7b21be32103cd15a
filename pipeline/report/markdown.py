"""report.md: the report.json tables, for pull requests and CI logs."""
from __future__ import annotations

from pipeline.report.schema import Report


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def _delegate(b) -> str:
    """LiteRT's delegate, or the ncnn options that change speed (fp16 storage/arithmetic, packing)."""
    if b.runtime != "ncnn":
        return b.delegate
    fp16 = "fp16 on" if b.options.get("use_fp16_arithmetic") else "fp16 off"
    return f"{fp16}, packing {'on' if b.options.get('use_packing_layout') else 'off'}"


def render(report: Report) -> str:
    lines = [
        "# Device benchmark report",
        "",
        f"Created {report.created} by `{report.command}`; report.json schema {report.schema_version}.",
        f"Data: {report.data.source}: {report.data.train} training and {report.data.val} validation images"
        + (f"; skipped {report.data.skipped}" if any(report.data.skipped.values()) else "") + ".",
        "",
    ]
    for model in report.models:
        lines += [
            f"## {model.name}",
            "",
            f"Source `{model.source}`, input {'x'.join(map(str, model.input_shape))}, {model.num_classes} classes, "
            f"{model.params:,} parameters, {model.macs / 1e6:.1f} M MACs. "
            f"Float reference ({model.reference_runtime}) top-1 {_pct(model.float_accuracy.top1)} % on {model.float_accuracy.n} images. "
            f"QAT: {model.qat.status}" + (f" ({model.qat.reason})" if model.qat.reason else "") + ".",
            "",
            "| artifact | format | precision | size MB | top-1 % | drop (points) | agreement % | max abs diff | fully int8 |",
            "|---|---|---|---:|---:|---:|---:|---:|---|",
        ]
        # TFLite, ncnn and ONNX side by side: one row per artifact, grouped by precision.
        order = {"fp32": 0, "fp16": 1, "dynamic-int8": 2, "int8-ptq": 3, "int8-qat": 4, "int8": 5}
        artifacts = sorted((a for a in report.artifacts if a.model == model.name), key=lambda a: order.get(a.precision, 9))
        for a in artifacts:
            int8 = "" if a.int8_check is None else ("yes" if a.int8_check.fully_int8 else f"no: {', '.join(a.int8_check.float_ops[:3])}")
            lines.append(
                f"| `{a.path}` | {a.format} | {a.precision} | {_mb(a.size_bytes)} | {_pct(a.accuracy.top1)} | "
                f"{a.accuracy_drop_points:+.2f} | {_pct(a.accuracy.agreement)} | "
                f"{'' if a.accuracy.max_abs_diff is None else f'{a.accuracy.max_abs_diff:.2e}'} | {int8} |"
            )
        lines += [
            "",
            "| artifact | target | runtime | delegate / options | threads | p50 ms | p90 ms | p99 ms | mean ms | std ms | n | init ms | peak RSS MB |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in artifacts:
            for b in a.benchmarks:
                l = b.latency_ms
                lines.append(
                    f"| {a.id} | {b.target}{' (emulated)' if b.emulated else ''} | {b.runtime} {b.runtime_version} | "
                    f"{_delegate(b)} | {b.threads} | {l.p50:.3f} | {l.p90:.3f} | {l.p99:.3f} | {l.mean:.3f} | "
                    f"{l.std:.3f} | {l.n} | {b.init_ms:.1f} | {b.peak_rss_mb:.1f} |"
                )
        lines.append("")
    if report.failures:
        lines += ["## Artifacts that could not be built", ""]
        lines += [f"- {f.model} {f.format} {f.precision}: {f.error}" for f in report.failures]
        lines.append("")
    cpus = sorted({b.cpu for a in report.artifacts for b in a.benchmarks})
    gate = report.quality_gate
    lines += [
        "## Quality gate",
        "",
        "No gate was set (`--max-accuracy-drop`)." if gate.max_accuracy_drop_points is None and not gate.failures
        else f"Max accuracy drop {gate.max_accuracy_drop_points} points: "
        + ("all artifacts pass." if not gate.failures else f"{len(gate.failures)} failure(s):"),
    ]
    lines += [f"- {f.artifact}: {f.reason}" for f in gate.failures]
    lines += [
        "",
        "## Provenance",
        "",
        f"CPU: {'; '.join(cpus) or 'no benchmarks'}. Tools: "
        + ", ".join(f"{k} {v}" for k, v in sorted(report.tools.items())) + ".",
        "",
    ]
    return "\n".join(lines)
