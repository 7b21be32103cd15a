"""--profile-ops: each op of a TFLite artifact cut out as a model of its own, timed on the target."""
from __future__ import annotations

import re

import numpy as np
import pytest

from pipeline.targets import op_profile


def _run(model: bytes) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.ones(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    return [interpreter.get_tensor(d["index"]) for d in interpreter.get_output_details()]


@pytest.mark.parametrize("precision", ["int8-ptq", "fp16", "dynamic-int8"])
def test_every_op_becomes_a_runnable_model_of_that_op_alone(precision):
    from converters import tflite
    from tests.conftest import tiny_model

    model = tiny_model(size=16)
    calibration = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    whole = tflite.convert(model, precision, calibration)
    ops = op_profile.single_ops(whole)
    kinds = [entry["op"] for entry in ops]
    assert "CONV_2D" in kinds and "DEPTHWISE_CONV_2D" in kinds and "FULLY_CONNECTED" in kinds
    assert [e["index"] for e in ops] == sorted(e["index"] for e in ops)  # execution order
    if precision != "int8-ptq":  # float input and output; the fp16 weights' DEQUANTIZEs go with the ops that read them
        assert "DEQUANTIZE" not in kinds
    else:
        assert kinds[0] == "QUANTIZE" and kinds[-1] == "DEQUANTIZE"  # the float input and output
    for entry in ops:
        outputs = _run(entry["model"])
        assert outputs and all(np.all(np.isfinite(o.astype(np.float32))) for o in outputs)
        assert len(entry["model"]) < len(whole) + 2048  # holds its own weights, not the whole model's
    assert sum(len(e["model"]) for e in ops) < 3 * len(whole)


def test_the_layer_is_read_from_the_converters_tensor_name():
    name = "model/block_1_expand_relu/Relu6;model/block_1_expand_BN/FusedBatchNormV3;model/block_1_expand/Conv2D"
    assert op_profile.layer_name(name, "CONV_2D") == "block_1_expand"
    assert op_profile.layer_name("StatefulPartitionedCall:0", "SOFTMAX") == "softmax"


def test_the_profile_is_each_ops_median_over_the_rounds():
    ops = [{"index": 0, "op": "QUANTIZE", "layer": "quantize"}, {"index": 2, "op": "CONV_2D", "layer": "conv"}]
    result = {"rounds_ms": {"whole": [1.0, 3.0, 2.0], "op0": [0.1, 0.2, 0.3], "op2": [0.5, 0.9, 0.7]}}
    summary = op_profile.summarize(ops, result)
    assert summary["rounds"] == 3 and summary["whole_ms"] == 2.0
    assert [(o["index"], o["ms"]) for o in summary["ops"]] == [(0, 0.2), (2, 0.7)]


@pytest.mark.slow
def test_a_build_with_profile_ops_reports_where_each_tflite_artifacts_time_goes(trained_model_file, image_folder, tmp_path):
    from pipeline.build import build
    from pipeline.config import load_config

    out = tmp_path / "out"
    settings = {"models": [str(trained_model_file)], "data": str(image_folder), "out": out, "formats": ["tflite", "ncnn"],
                "precisions": ["fp32", "int8-ptq"], "ncnn_precisions": ["fp32"], "calibration_images": 12, "warmup": 1, "runs": 5,
                "threads": [1], "val_fraction": 0.25, "profile_ops": True}
    report = build(load_config(overrides=settings))
    assert not report.failures
    for artifact in report.artifacts:
        [bench] = artifact.benchmarks
        if artifact.format != "tflite":
            assert bench.op_profile is None  # TFLite only
            continue
        profile = bench.op_profile
        assert profile.rounds == 3 and profile.whole_ms > 0
        assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= {op.op for op in profile.ops}
        assert all(op.ms > 0 for op in profile.ops)
    assert "where the time goes on host" in (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    assert 'id="ops-tiny-host"' in html and 'id="op-time-tiny-host"' in html  # the table and the plot
    ids = re.findall(r'id="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # links to a section stay unambiguous


@pytest.mark.slow
def test_only_tflite_artifacts_on_real_targets_are_profiled(trained_model_file, image_folder, tmp_path):
    from pipeline.build import dry_run
    from pipeline.config import load_config

    settings = {"models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path, "formats": ["tflite", "ncnn"],
                "precisions": ["fp32"], "ncnn_precisions": ["fp32"], "threads": [2, 1], "targets": ["host", "arm64-emu"],
                "profile_ops": True}
    profiles = [line for line in dry_run(load_config(overrides=settings)) if " profile " in f" {line} "]
    assert len(profiles) == 1 and "tiny tflite fp32 ops on host" in profiles[0]  # not ncnn, not the emulator, once
    assert not [line for line in dry_run(load_config(overrides={**settings, "profile_ops": False})) if " profile " in f" {line} "]
