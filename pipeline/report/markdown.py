"""report.md: the report.json tables, for pull requests and CI logs."""
from __future__ import annotations

from pipeline.report.schema import Report


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


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
            f"Float reference top-1 {_pct(model.float_accuracy.top1)} % on {model.float_accuracy.n} images. "
            f"QAT: {model.qat.status}" + (f" ({model.qat.reason})" if model.qat.reason else "") + ".",
            "",
            "| artifact | format | precision | size MB | top-1 % | drop (points) | agreement % | fully int8 |",
            "|---|---|---|---:|---:|---:|---:|---|",
        ]
        artifacts = [a for a in report.artifacts if a.model == model.name]
        for a in artifacts:
            int8 = "" if a.int8_check is None else ("yes" if a.int8_check.fully_int8 else f"no: {', '.join(a.int8_check.float_ops[:3])}")
            lines.append(
                f"| `{a.path}` | {a.format} | {a.precision} | {_mb(a.size_bytes)} | {_pct(a.accuracy.top1)} | "
                f"{a.accuracy_drop_points:+.2f} | {_pct(a.accuracy.agreement)} | {int8} |"
            )
        lines += [
            "",
            "| artifact | target | runtime | delegate | threads | p50 ms | p90 ms | p99 ms | mean ms | std ms | n | init ms | peak RSS MB |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for a in artifacts:
            for b in a.benchmarks:
                l = b.latency_ms
                lines.append(
                    f"| {a.id} | {b.target}{' (emulated)' if b.emulated else ''} | {b.runtime} {b.runtime_version} | "
                    f"{b.delegate} | {b.threads} | {l.p50:.3f} | {l.p90:.3f} | {l.p99:.3f} | {l.mean:.3f} | "
                    f"{l.std:.3f} | {l.n} | {b.init_ms:.1f} | {b.peak_rss_mb:.1f} |"
                )
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
