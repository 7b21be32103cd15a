"""ncnn int8 on x86 vs ARM: x86's packed int8 depthwise kernel approximates its dequantize scale
(_mm_rcp_ps), so the host computes int8 artifacts with the packed layout off, which gives ARM's
numbers (device_runner.ncnn_int8_on_x86, docs/accuracy-on-arm.md)."""
import json
import platform
import subprocess
import sys

import numpy as np
import pytest

from pipeline.runtimes import ncnn as ncnn_runtime
from pipeline.targets import device_runner, emulated
from pipeline.targets.host import RUNNER
from tests.targets.test_emulated import _npz, rootfs_missing, why_skipped

X86 = platform.machine().lower() in ("x86_64", "amd64")


@pytest.fixture(scope="module")
def int8_depthwise(tmp_path_factory):
    """A MobileNet-shaped tiny net (conv, 8-channel depthwise with ReLU6, dense) as ncnn int8, and inputs."""
    from converters import ncnn as ncnn_converter
    from converters import onnx as onnx_converter
    from tests.conftest import tiny_model

    folder = tmp_path_factory.mktemp("int8dw")
    onnx_path = onnx_converter.from_keras(tiny_model(classes=4), folder / "m.onnx")
    param, weights = ncnn_converter.convert(onnx_path, [1, 3, 16, 16], False, folder, "dw")
    x = np.random.default_rng(0).uniform(-1, 1, (24, 3, 16, 16)).astype(np.float32)
    scales = ncnn_converter.calibrate(param, weights, x[:16], "kl", 99.99, set())
    q_param, q_bin = folder / "dw_int8.ncnn.param", folder / "dw_int8.ncnn.bin"
    ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
    return q_param, q_bin, x[8:], param


def test_only_int8_models_on_x86_run_unpacked(int8_depthwise):
    q_param, _, _, fp32_param = int8_depthwise
    assert device_runner.ncnn_int8_on_x86(str(q_param)) == X86
    assert not device_runner.ncnn_int8_on_x86(str(fp32_param))


def test_host_runner_saves_the_unpacked_outputs_and_times_the_packed_net(int8_depthwise, tmp_path):
    q_param, q_bin, x, _ = int8_depthwise
    out = tmp_path / "out.npz"
    proc = subprocess.run([sys.executable, str(RUNNER), str(q_param), "--threads", "1", "--warmup", "0", "--runs", "1",
                           "--inputs", str(_npz(tmp_path / "in.npz", input_0=x)), "--outputs", str(out)],
                          capture_output=True, text=True, check=True)
    options = json.loads(proc.stdout)["options"]
    assert options["use_packing_layout"] is True  # what is timed
    assert options.get("outputs_use_packing_layout", True) is (not X86)
    # The saved outputs are the accuracy figures' numbers (verify runs pipeline.runtimes.ncnn).
    verify = ncnn_runtime.predict(q_param, q_bin, x, "int8")
    with np.load(out) as saved:
        assert np.array_equal(saved["output_0"].reshape(len(x), -1), verify)


def test_host_ncnn_int8_equals_arm64_kernels(int8_depthwise, tmp_path):
    if rootfs_missing("arm64"):
        pytest.skip(why_skipped("arm64"))
    q_param, q_bin, x, _ = int8_depthwise
    inputs = _npz(tmp_path / "in.npz", input_0=x, labels=np.zeros(len(x), np.int64))
    record = emulated.run_benchmark("arm64", q_param, 1, 0, 1, inputs=inputs)
    diff = record["output_diff"]
    assert record["options"]["use_packing_layout"] and "outputs_use_packing_layout" not in record["options"]
    assert diff["n"] == len(x) and diff["top1_agreement"] == 1.0
    assert diff["logits_max_abs"] < 1e-5 and diff["max_abs"] < 1e-5, diff  # before: one requantize step apart here and there
