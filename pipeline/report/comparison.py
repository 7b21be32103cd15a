"""How a target's comparison with the host (Benchmark.output_diff) reads in tables, the CLI and plots.

The logits (the tensor feeding the final softmax) are what the check compares since schema 1.3;
reports before 1.3 only hold the softmax outputs' difference, shown as such.
"""
from __future__ import annotations

from pipeline.report.schema import OutputDiff

HEADERS = ["compared with host", "n", "logits max abs", "logits max rel", "int8 steps", "top-1 agreement %",
           "top-1 % (target / host)", "softmax max abs"]
NUMERIC = [False, True, True, True, True, True, False, True]


def what(diff: OutputDiff) -> str:
    """What was compared, on which inputs: 'logits, 64 validation images'."""
    if diff.compared is None:
        return "softmax outputs (before schema 1.3)"
    tensor = "logits" if diff.compared == "logits" else "outputs (no final softmax)"
    images = f"{diff.n} validation image{'s' * (diff.n != 1)}" if diff.inputs == "validation" else "1 random input"
    return f"{tensor}, {images}"


def cells(diff: OutputDiff | None) -> list[str]:
    """The HEADERS cells for one benchmark; empty when it was not compared."""
    if diff is None:
        return [""] * len(HEADERS)
    steps = "" if diff.logits_max_steps is None else str(diff.logits_max_steps)
    top1 = "" if diff.target_top1 is None else f"{100 * diff.target_top1:.2f} / {100 * diff.host_top1:.2f}"
    return [
        what(diff), _maybe(diff.n, "d"), _maybe(diff.logits_max_abs, ".3g"), _maybe(diff.logits_max_rel, ".3g"), steps,
        _maybe(None if diff.top1_agreement is None else 100 * diff.top1_agreement, ".2f"), top1, f"{diff.max_abs:.3g}",
    ]


def summary(diff: OutputDiff) -> str:
    """One line: the logits difference, agreement and n, then the softmax difference."""
    if diff.compared is None:
        lsb = "" if diff.max_lsb is None else f" ({diff.max_lsb} LSB)"
        return f"max softmax-output difference to the host {diff.max_abs:.3g}{lsb}"
    steps = "" if diff.logits_max_steps is None else f" ({diff.logits_max_steps} steps)"
    text = (f"{what(diff)}: max |logit - host| {diff.logits_max_abs:.3g}{steps}, rel {diff.logits_max_rel:.3g}, "
            f"top-1 agreement {100 * diff.top1_agreement:.1f} %")
    if diff.target_top1 is not None:
        text += f", top-1 {100 * diff.target_top1:.1f} % (host {100 * diff.host_top1:.1f} %)"
    return text + f"; softmax max abs {diff.max_abs:.3g}"


def plotted(diff: OutputDiff) -> float:
    """The value a plot shows: the logits' max abs difference, or the softmax's before schema 1.3."""
    return diff.max_abs if diff.logits_max_abs is None else diff.logits_max_abs


def _maybe(value, spec: str) -> str:
    return "" if value is None else format(value, spec)
