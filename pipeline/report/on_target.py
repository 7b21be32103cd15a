"""Accuracy on a target's own kernels (verify_target results) in the report, and when it disqualifies.

An artifact whose top-1 computed by a target's kernels is more than TOLERANCE_POINTS below the
host's top-1 for the same artifact on the same images is flagged, and not recommended for that
target (recommend.py). Same images on both sides, so the sample cannot make the gap.
"""
from __future__ import annotations

from pipeline.report.schema import Artifact, TargetAccuracy

TOLERANCE_POINTS = 1.0


def from_result(result: dict) -> TargetAccuracy:
    accuracy = TargetAccuracy(**{k: result[k] for k in TargetAccuracy.model_fields if k in result and k != "flagged"})
    accuracy.flagged = gap_points(accuracy) > TOLERANCE_POINTS
    return accuracy


def gap_points(accuracy: TargetAccuracy) -> float:
    """Host top-1 minus the target's, in points (positive: the target is worse)."""
    return round(100 * (accuracy.host_top1 - accuracy.top1), 4)


def on(artifact: Artifact, target: str) -> TargetAccuracy | None:
    return next((t for t in artifact.target_accuracy if t.target == target), None)
