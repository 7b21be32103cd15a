"""Accuracy computed by an emulated target's own kernels: the verify_target stage, its rule, the report
and the recommendation. The QEMU run needs `scripts/setup-arm-emu.sh arm64` (skips otherwise)."""
import numpy as np
import pytest

from pipeline.build import dry_run
from pipeline.config import load_config
from pipeline.report import markdown, on_target, schema
from pipeline.report.recommend import recommend
from pipeline.stages.verify_target import summarize
from tests.report import fakes
from tests.targets.test_emulated import four_class_model, needs_rootfs  # noqa: F401  (fixture)


def _record(target_classes, host_classes, labels):
    target, host, labels = (np.asarray(x) for x in (target_classes, host_classes, labels))
    return {
        "target": "arm64-emu", "runtime": "ncnn", "runtime_version": "1.0", "delegate": "none", "options": {},
        "output_diff": {"target_top1": float(np.mean(target == labels)), "host_top1": float(np.mean(host == labels)),
                        "top1_agreement": float(np.mean(target == host)), "logits_max_abs": 0.5, "logits_max_steps": None},
        "check_predictions": {"target": target.tolist(), "host": host.tolist(), "labels": labels.tolist()},
    }


def test_summary_counts_agreement_with_host_and_float_on_the_same_images():
    labels, host, target, reference = [0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 1, 0], np.array([0, 1, 2, 3])
    result = summarize(_record(target, host, labels), reference, 4)
    assert (result["top1"], result["host_top1"], result["host_agreement"], result["float_agreement"]) == (0.5, 0.75, 0.75, 0.5)
    with pytest.raises(ValueError, match="4 images sent, 3 classes back"):
        summarize(_record(target[:3], host[:3], labels[:3]), reference, 4)


def _accuracy(top1, host_top1, target="arm64-emu"):
    return on_target.from_result({"target": target, "runtime": "ncnn 1.0", "delegate": "none", "n": 96, "top1": top1,
                                  "host_top1": host_top1, "host_agreement": 0.9, "float_agreement": 0.9})


def test_more_than_a_point_below_the_host_is_flagged():
    assert not _accuracy(0.90, 0.91).flagged  # exactly one point: within the tolerance
    assert _accuracy(0.889, 0.90).flagged
    assert not _accuracy(0.95, 0.90).flagged  # better on ARM is no fault


def test_a_flagged_artifact_is_not_recommended_on_that_target_only():
    small = fakes.artifact("int8-ptq", 1.0, 0.0, [fakes.bench("host", 1.0), fakes.bench("arm64-emu", 50.0, emulated=True)])
    large = fakes.artifact("fp32", 4.0, 0.0, [fakes.bench("host", 2.0), fakes.bench("arm64-emu", 90.0, emulated=True)])
    small.target_accuracy = [_accuracy(0.80, 0.90)]
    large.target_accuracy = [_accuracy(0.90, 0.90)]
    report = fakes.report([small, large])
    by_target = {r.target: r for r in recommend(report, schema.Constraints())}
    assert by_target["host"].artifact == small.id  # the host's own figures are fine
    assert by_target["arm64-emu"].artifact == large.id and "1 other(s) miss them" in by_target["arm64-emu"].reason
    report.recommendations = list(by_target.values())
    text = markdown.render(report)
    assert "accuracy computed by the targets' own kernels" in text
    assert "| m_int8-ptq | arm64-emu | ncnn 1.0, none | 96 | 80.00 | 90.00 | -10.00 |" in text
    # Reports before 1.4 have no target_accuracy and still load.
    old = report.model_dump(mode="json")
    for a in old["artifacts"]:
        del a["target_accuracy"]
    old["schema_version"] = "1.3"
    assert schema.Report.model_validate(old).artifacts[0].target_accuracy == []


def test_plan_verifies_every_artifact_on_each_emulator_untimed(tmp_path, monkeypatch):
    (tmp_path / "emu" / "arm64").mkdir(parents=True)
    (tmp_path / "emu" / "arm64" / "READY").write_text("ai-edge-litert==2.3.0")
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path / "emu"))
    base = {"models": ["mobilenet_v1"], "data": "demo", "out": tmp_path / "b", "formats": ["tflite", "onnx"],
            "precisions": ["fp32", "int8-ptq"], "threads": [1], "targets": ["host", "arm64-emu"]}
    lines = [x for x in dry_run(load_config(overrides=base)) if " verify_target " in x]
    # One per TFLite artifact on the emulator (no onnxruntime there); no lease: it may run beside other work.
    assert len(lines) == 2 and all(x.rstrip().endswith("arm64-emu") for x in lines), lines
    assert not [x for x in dry_run(load_config(overrides={**base, "arm_val_images": 0})) if " verify_target " in x]


@needs_rootfs("arm64")
@pytest.mark.slow
def test_build_measures_accuracy_on_arm64_kernels(four_class_model, tmp_path):  # noqa: F811
    from pipeline import report as report_files
    from pipeline.build import build

    model_file, images = four_class_model
    build(load_config(overrides={
        "models": [str(model_file)], "data": str(images), "out": tmp_path, "precisions": ["fp32", "int8-ptq"],
        "formats": ["tflite", "ncnn"], "ncnn_precisions": ["int8"], "warmup": 0, "runs": 1, "threads": [1],
        "val_fraction": 0.25, "targets": ["host", "arm64-emu"], "arm_val_images": 10,
    }))
    report = report_files.load(tmp_path)
    assert not report.failures and report.schema_version == "1.12"
    assert {(a.format, a.precision) for a in report.artifacts} == {("tflite", "fp32"), ("tflite", "int8-ptq"), ("ncnn", "int8")}
    for artifact in report.artifacts:
        [measured] = artifact.target_accuracy
        assert measured.target == "arm64-emu" and measured.n == min(10, report.data.val), artifact.id
        if artifact.format == "tflite":  # XNNPACK on the emulated A76 gives the host's classes (field notes)
            assert measured.delegate == "xnnpack" and measured.host_agreement == 1.0 and measured.top1 == measured.host_top1
        assert measured.float_agreement >= 0.8 and not measured.flagged, artifact.id
    assert "accuracy computed by the targets' own kernels" in (tmp_path / "report.md").read_text()
