"""`deploy build` to every format at once: TFLite, ONNX and ncnn side by side in one report."""
import json

import pytest

from pipeline.build import build
from pipeline.config import load_config

FAST = {"calibration_images": 24, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}


@pytest.fixture(scope="module")
def run(trained_model_file, image_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("formats")
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": out,
                                    "precisions": ["fp32"], "ncnn_float_layers": ["last"], **FAST})
    return build(config), out


@pytest.mark.slow
def test_every_format_is_verified_in_its_own_runtime_and_benchmarked(run):
    report, out = run
    by_key = {(a.format, a.precision): a for a in report.artifacts}
    assert list(by_key) == [("tflite", "fp32"), ("onnx", "fp32"), ("ncnn", "fp32"), ("ncnn", "fp16"), ("ncnn", "int8")]
    runtimes = {a.format: a.benchmarks[0].runtime for a in report.artifacts}
    assert runtimes == {"tflite": "ai-edge-litert", "onnx": "onnxruntime", "ncnn": "ncnn"}
    assert by_key[("onnx", "fp32")].accuracy.max_abs_diff < 1e-4
    assert by_key[("ncnn", "fp32")].accuracy.agreement == 1.0
    assert by_key[("ncnn", "fp16")].benchmarks[0].options["use_fp16_storage"] is True
    assert by_key[("ncnn", "fp32")].benchmarks[0].options["use_fp16_storage"] is False
    int8 = by_key[("ncnn", "int8")]
    assert int8.int8_check.fully_int8 and int8.calibration_images == 24
    meta = json.loads((out / int8.metadata_path).read_text())
    assert meta["calibration_method"] == "mse"  # the default
    # The fallback's float layers (if it needed any) count as requested: verify accepts them.
    fallback = meta["fallback"]
    assert fallback["status"] in ("not-needed", "met", "cap-reached") and fallback["budget_points"] == 1.0
    assert len(meta["float_layers_requested"]) == 1 + len(fallback["float_layers"])
    assert meta["int8_evaluation"]["held_out"] and meta["int8_evaluation"]["images"] > 0
    errors = meta["layer_errors"]
    assert errors and [e["nrmse"] for e in errors] == sorted((e["nrmse"] for e in errors), reverse=True)
    assert {e["op"] for e in errors} >= {"Convolution", "InnerProduct"}
    assert meta["preprocessing"]["layout"] == "NCHW" and meta["labels"] == ["blue", "green", "red"]
    for a in report.artifacts:
        assert (out / a.path).is_file() and a.size_bytes > 0
    assert (out / int8.path.replace(".param", ".bin")).is_file()
    md = (out / "report.md").read_text()
    assert "tiny_int8.ncnn" in md and "onnxruntime" in md and "fp16 on" in md


@pytest.mark.slow
def test_onnx_model_with_an_op_no_converter_has_is_named(run, tmp_path):
    """A valid ONNX file (onnxruntime runs it) with an op pnnx and onnx2tf cannot convert: each
    failure names the op and the node, the ONNX artifact is still built, the build exits 3."""
    import onnx

    from pipeline.errors import ToolError

    report, out = run
    onnx_artifact = next(a for a in report.artifacts if a.format == "onnx")
    proto = onnx.load(str(out / onnx_artifact.path))
    proto.graph.node.append(onnx.helper.make_node("Hardmax", [proto.graph.output[0].name], ["picked"], name="pick_top"))
    proto.graph.output[0].name = "picked"
    path = tmp_path / "hardmax.onnx"
    onnx.save(proto, str(path))
    config = load_config(overrides={"models": [str(path)], "data": str(report.data.source), "out": tmp_path / "out",
                                    "precisions": ["fp32"], "ncnn_precisions": ["fp32"], "formats": ["onnx", "ncnn"], **FAST})
    with pytest.raises(ToolError, match="1 artifact\\(s\\) or benchmark\\(s\\) failed"):
        build(config)
    written = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [a["format"] for a in written["artifacts"]] == ["onnx"]
    [failure] = written["failures"]
    assert "op Hardmax (node 'pick_top')" in failure["error"]


@pytest.mark.slow
def test_int8_fallback_off_measures_nothing_and_auto_calibration_names_each_layers_method(run, trained_model_file, image_folder):
    _, out = run
    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": out,
                                    "formats": ["ncnn"], "ncnn_precisions": ["int8"], "int8_fallback": "off",
                                    "ncnn_calibration": "auto", **FAST})
    [int8] = build(config).artifacts
    meta = json.loads((out / int8.metadata_path).read_text())
    assert meta["fallback"] is None and int8.fallback is None
    assert meta["float_layers_requested"] == [] and int8.int8_check.fully_int8
    assert meta["layer_errors"]  # still measured: the report shows them
    # auto calibration: each int8 layer's method, chosen among the candidates by its measured error
    assert set(meta["calibration_methods"]) == set(meta["int8_layers"])
    assert set(meta["calibration_methods"].values()) <= {"kl", "percentile", "mse"}
