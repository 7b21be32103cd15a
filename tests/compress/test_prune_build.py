"""`deploy build --prune l1-filter --distill` end to end on the tiny user model: the pruned variant
is its own model in the report, its artifacts carry the recipe, the recommendation weighs them all."""
from __future__ import annotations

import pytest

from pipeline.config import load_config

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
        "formats": ["tflite"], "precisions": ["fp32", "int8-qat"], "prune": "l1-filter", "prune_keep_macs": 0.5,
        "prune_epochs": 2, "distill": True}


@pytest.mark.slow
def test_pruned_variant_is_reported_beside_its_model(trained_model_file, image_folder, tmp_path):
    from pipeline.build import build

    out = tmp_path / "out"
    report = build(load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": out, **FAST}))
    parent, variant = report.models
    assert (parent.name, variant.name, variant.parent) == ("tiny", "tiny-p50", "tiny")
    assert variant.macs <= 0.5 * parent.macs and variant.params < parent.params
    recipe = variant.compression
    assert recipe.method == "l1-filter" and recipe.keep_macs == 0.5 and recipe.distilled
    assert recipe.macs_kept == pytest.approx(variant.macs / parent.macs)
    assert recipe.group_ratios and all(0 < r < 1 for r in recipe.group_ratios.values())
    sensitivity = variant.pruning_sensitivity
    assert "training images" in sensitivity.measured_on and sensitivity.images > 0  # too few here to hold any out
    assert [len(g.points) for g in sensitivity.groups] == [9] * len(sensitivity.groups)
    assert parent.pruning_sensitivity is None and parent.compression is None
    by_model = {(a.model, a.precision): a for a in report.artifacts}
    assert set(by_model) == {("tiny", "fp32"), ("tiny", "int8-qat"), ("tiny-p50", "fp32"), ("tiny-p50", "int8-qat")}
    for precision in ("fp32", "int8-qat"):
        a = by_model["tiny-p50", precision]
        assert a.compression.method == "l1-filter" and a.compression.distilled
        assert "tiny-p50" in a.path and (out / a.path).exists()
        # Drops are measured from the unpruned model's float top-1.
        assert a.accuracy_drop_points == pytest.approx(100 * (parent.float_accuracy.top1 - a.accuracy.top1), abs=1e-3)
    assert by_model["tiny", "int8-qat"].compression.qat_distilled and by_model["tiny-p50", "int8-qat"].compression.qat_distilled
    assert by_model["tiny", "fp32"].compression is None
    [recommendation] = report.recommendations  # one for the model and its variant together
    assert recommendation.model == "tiny"
    html = (out / "report.html").read_text()
    assert "Pruning sensitivity of tiny" in html and "Accuracy against MACs" in html
