"""fp16 artifacts compute in fp16 where the CPU has ARMv8.2 FP16 arithmetic (the emulated A76), in fp32
elsewhere (x86), and the benchmark record says which (`arithmetic`)."""
import numpy as np
import pytest

from pipeline.targets import emulated, host
from pipeline.targets.device_runner import REDUCED_PRECISION_KEY
from tests.targets.test_emulated import _npz, rootfs_missing, why_skipped


@pytest.fixture(scope="module")
def tflite_models(tmp_path_factory):
    """The MobileNet-shaped tiny net (random weights) as TFLite fp32 and fp16."""
    from converters import tflite
    from tests.conftest import tiny_model

    folder = tmp_path_factory.mktemp("fp16")
    model = tiny_model(classes=4)
    return {p: tflite.write(tflite.convert(model, p), folder / f"m_{p}.tflite") for p in ("fp32", "fp16")}


def _inputs(tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
    return _npz(tmp_path / "in.npz", input_0=x, labels=np.zeros(4, np.int64))


def test_fp16_artifact_carries_reduced_precision_metadata(tflite_models):
    assert REDUCED_PRECISION_KEY in tflite_models["fp16"].read_bytes()
    assert REDUCED_PRECISION_KEY not in tflite_models["fp32"].read_bytes()


def test_x86_host_computes_the_fp16_artifact_in_fp32(tflite_models):
    assert host.run_benchmark(tflite_models["fp16"], 1, 0, 1)["arithmetic"] == "fp32"
    assert host.run_benchmark(tflite_models["fp32"], 1, 0, 1)["arithmetic"] is None


def test_arm64_xnnpack_computes_the_fp16_artifact_in_fp16(tflite_models, tmp_path):
    if rootfs_missing("arm64"):
        pytest.skip(why_skipped("arm64"))
    fp16 = emulated.run_benchmark("arm64", tflite_models["fp16"], 1, 0, 1, inputs=_inputs(tmp_path))
    assert fp16["delegate"] == "xnnpack" and fp16["arithmetic"] == "fp16"
    # fp16 arithmetic: close to the host's fp32, not equal (weight rounding alone is the same on both sides).
    assert 0 < fp16["output_diff"]["logits_max_abs"] < 0.05
    fp32 = emulated.run_benchmark("arm64", tflite_models["fp32"], 1, 0, 1, inputs=_inputs(tmp_path))
    assert fp32["arithmetic"] is None and fp32["output_diff"]["logits_max_abs"] < 1e-5


def test_ncnn_fp16_arithmetic_only_where_the_cpu_has_it(tmp_path):
    from converters import ncnn as ncnn_converter
    from converters import onnx as onnx_converter
    from tests.conftest import tiny_model

    param, _ = ncnn_converter.convert(onnx_converter.from_keras(tiny_model(classes=4), tmp_path / "m.onnx"),
                                      [1, 3, 16, 16], True, tmp_path, "m16")
    assert host.run_benchmark(param, 1, 0, 1, fp16=True)["arithmetic"] == "fp32"  # x86: fp16 storage at most
    assert host.run_benchmark(param, 1, 0, 1)["arithmetic"] is None
    if rootfs_missing("arm64"):
        pytest.skip(why_skipped("arm64"))
    record = emulated.run_benchmark("arm64", param, 1, 0, 1, fp16=True)
    assert record["arithmetic"] == "fp16" and record["options"]["cpu_support_arm_asimdhp"]
