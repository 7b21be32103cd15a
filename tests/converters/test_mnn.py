"""ONNX -> MNN (converters/mnn.py) and MNN's runtime (pipeline/runtimes/mnn.py): fp32 computes what
onnxruntime computes, fp16 stores half the bytes, int8 is calibrated on the images given, a tool
that fails or crashes costs one ToolError, a broken .mnn file is named, and a build with
--formats mnn verifies and benchmarks every MNN precision in MNN's own runtime."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from converters import mnn as mnn_converter
from converters import onnx as onnx_converter
from pipeline.errors import ToolError
from pipeline.models.loading import load_keras_model
from pipeline.runtimes import mnn as mnn_runtime
from pipeline.runtimes import onnxruntime as ort_runtime
from pipeline.targets import device_runner
from tests.conftest import COLORS, make_image_folder

MEAN, STD = (127.5, 127.5, 127.5), (127.5, 127.5, 127.5)


@pytest.fixture(scope="module")
def onnx_file(trained_model_file, tmp_path_factory):
    return onnx_converter.from_keras(load_keras_model(trained_model_file), tmp_path_factory.mktemp("mnn") / "tiny.onnx")


def _images(folder: Path, count: int, seed: int) -> np.ndarray:
    """uint8 (N, 16, 16, 3) images of the colour classes (other noise than the training images)."""
    from pipeline.data import load_image_folder

    return load_image_folder(make_image_folder(folder, per_class=count, seed=seed), 16, 16).images


def _nchw(images: np.ndarray) -> np.ndarray:
    return ((images.astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)


def test_fp32_computes_what_onnxruntime_computes_and_fp16_stores_smaller_weights(onnx_file, tmp_path):
    fp32 = mnn_converter.convert(onnx_file, tmp_path / "tiny_fp32.mnn")
    fp16 = mnn_converter.convert(onnx_file, tmp_path / "tiny_fp16.mnn", fp16=True)
    x = np.random.default_rng(0).uniform(-1, 1, (8, 3, 16, 16)).astype(np.float32)
    expected = ort_runtime.predictor(onnx_file)(x)
    np.testing.assert_allclose(mnn_runtime.predictor(fp32)(x), expected, atol=1e-5)
    np.testing.assert_allclose(mnn_runtime.predictor(fp16, "fp16")(x), expected, atol=2e-2)
    assert fp16.stat().st_size < fp32.stat().st_size  # a tiny model: the file is mostly structure


def test_int8_is_calibrated_on_the_images_given_and_agrees_with_float(onnx_file, tmp_path):
    fp32 = mnn_converter.convert(onnx_file, tmp_path / "tiny_float.mnn")
    calibration = _images(tmp_path / "calibration", 8, seed=1)
    int8 = mnn_converter.quantize(fp32, tmp_path / "tiny_int8.mnn", calibration, mean=MEAN, std=STD, channel_order="RGB",
                                  method="ema", workdir=tmp_path)
    assert not (tmp_path / "mnn_calibration").exists() and not (tmp_path / "mnn_quantize.json").exists()
    x = _nchw(_images(tmp_path / "check", 10, seed=2))
    float_top1 = mnn_runtime.predictor(fp32)(x).argmax(1)
    int8_out = mnn_runtime.predictor(int8)(x)
    assert np.mean(int8_out.argmax(1) == float_top1) >= 0.9
    assert not np.allclose(int8_out, mnn_runtime.predictor(fp32)(x), atol=1e-6)  # it computes in int8: not the float numbers
    assert mnn_converter.float_ops(int8) == [] and len(mnn_converter.float_ops(fp32)) >= 2  # the conv and the depthwise conv at least
    with pytest.raises(ValueError, match="unknown MNN calibration 'minmax'"):
        mnn_converter.quantize(fp32, tmp_path / "x.mnn", calibration, mean=MEAN, std=STD, channel_order="RGB",
                               method="minmax", workdir=tmp_path)


def test_a_failing_converter_is_one_tool_error_and_leaves_no_file(tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07" + b"not an onnx graph" * 20)
    with pytest.raises(ToolError, match=r"MNN mnnconvert failed converting broken.onnx \(.*no broken.mnn written"):
        mnn_converter.convert(broken, tmp_path / "broken.mnn")
    assert not (tmp_path / "broken.mnn").exists()


def test_a_broken_mnn_file_is_named_by_the_runtime_and_the_runner(tmp_path):
    broken = tmp_path / "noise.mnn"
    broken.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ToolError, match="MNN cannot load noise.mnn: not a valid .mnn model"):
        mnn_runtime.open_session(broken)
    run = subprocess.run([sys.executable, device_runner.__file__, str(broken), "--threads", "1", "--warmup", "0", "--runs", "1"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == device_runner.EXIT_BAD_MODEL and run.stdout == ""
    assert run.stderr.strip().splitlines()[-1].startswith(f"device_runner: invalid model {broken}")  # MNN's own log above it


def test_the_runner_times_an_mnn_model_and_saves_its_outputs(onnx_file, tmp_path):
    fp32 = mnn_converter.convert(onnx_file, tmp_path / "tiny_fp32.mnn")
    x = _nchw(_images(tmp_path / "images", 2, seed=3))
    np.savez(tmp_path / "in.npz", input_0=x[:, None])  # a batch of (1, 3, 16, 16) inputs
    run = subprocess.run([sys.executable, device_runner.__file__, str(fp32), "--threads", "1", "--warmup", "1", "--runs", "5",
                          "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz"), "--fp16"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)
    assert record["runtime"] == "mnn" and record["latency_ms"]["n"] == 5 and record["input"]["shape"] == [1, 3, 16, 16]
    assert record["options"]["precision_mode"] == "low" and record["arithmetic"] == "fp32"  # x86: no fp16 arithmetic
    with np.load(tmp_path / "out.npz") as saved:
        np.testing.assert_allclose(saved["output_0"].reshape(len(x), -1), mnn_runtime.predictor(fp32)(x), atol=1e-6)


@pytest.mark.slow
def test_a_build_verifies_and_benchmarks_every_mnn_precision(trained_model_file, image_folder, tmp_path):
    from pipeline.build import build
    from pipeline.config import load_config

    report = build(load_config(overrides={
        "models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path / "out", "formats": ["mnn"],
        "precisions": ["fp32"], "calibration_images": 24, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}))
    by_precision = {a.precision: a for a in report.artifacts if a.format == "mnn"}
    assert list(by_precision) == ["fp32", "fp16", "int8"] and not report.failures
    assert by_precision["fp32"].accuracy.agreement == 1.0 and by_precision["fp32"].accuracy.max_abs_diff < 1e-4
    assert by_precision["fp16"].accuracy.agreement == 1.0
    assert by_precision["int8"].calibration_images == 24 and by_precision["int8"].accuracy.agreement >= 0.9
    assert by_precision["int8"].int8_check.fully_int8 and by_precision["fp32"].int8_check is None
    for precision, artifact in by_precision.items():
        bench = artifact.benchmarks[0]
        assert bench.runtime == "mnn" and bench.options["precision_mode"] == ("low" if precision == "fp16" else "normal")
        assert (tmp_path / "out" / artifact.path).is_file()
    meta = json.loads((tmp_path / "out" / by_precision["int8"].metadata_path).read_text())
    assert meta["calibration_method"] in ("ema", "kl") and set(meta["calibration_methods"]) == {"ema", "kl"}  # auto: both tried
    assert meta["calibration_methods"][meta["calibration_method"]] == max(meta["calibration_methods"].values())
    assert meta["int8_evaluation"]["held_out"] and meta["preprocessing"]["layout"] == "NCHW"
    assert meta["labels"] == sorted(COLORS)


def test_the_logits_probe_names_the_final_softmax_and_the_runner_reads_its_input(onnx_file, tmp_path):
    from pipeline.targets.logits import make_probe

    fp32 = mnn_converter.convert(onnx_file, tmp_path / "tiny_fp32.mnn")
    probe = make_probe(fp32, tmp_path)
    assert probe.path == fp32 and probe.logits  # the artifact itself runs; the op is named
    x = _nchw(_images(tmp_path / "images", 2, seed=4))
    np.savez(tmp_path / "in.npz", input_0=x[:, None])
    command = [sys.executable, device_runner.__file__, str(fp32), "--threads", "1", "--warmup", "0", "--runs", "1",
               "--inputs", str(tmp_path / "in.npz"), "--outputs", str(tmp_path / "out.npz")]
    run = subprocess.run(command + probe.runner_args(fp32), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with np.load(tmp_path / "out.npz") as saved:
        logits = saved["logits"].reshape(len(x), -1)
        softmax = np.exp(logits - logits.max(1, keepdims=True))
        np.testing.assert_allclose(softmax / softmax.sum(1, keepdims=True), saved["output_0"].reshape(len(x), -1), atol=1e-5)
    wrong = subprocess.run(command + ["--logits", "no_such_op"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == device_runner.EXIT_BAD_MODEL and "--logits 'no_such_op' is no op of" in wrong.stderr
