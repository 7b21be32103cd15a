"""Emulated arm64: the runner inside the Debian root filesystem under QEMU, compared with the host.

The QEMU runs need `scripts/setup-arm-emu.sh arm64` (about 5 minutes once, then cached); CI does
not run it yet, so those tests skip with that reason when the root filesystem is not set up.
Everything else (status, the runner's --inputs/--outputs, the output comparison) always runs.
"""
import subprocess
import sys

import numpy as np
import pytest

from pipeline.targets import emulated, host
from pipeline.targets.bench import run_benchmark
from pipeline.targets.spec import EmulatedTarget
from tests.targets.test_host_bench import models  # noqa: F401  (fixture: tiny float32 and int8 .tflite)

needs_rootfs = pytest.mark.skipif(not emulated.is_set_up("arm64"),
                                  reason="arm64 root filesystem not set up: run scripts/setup-arm-emu.sh arm64")


def _npz(path, **arrays):
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    return path


def test_status_follows_the_ready_mark(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    assert emulated.status("arm64") == f"not set up (no root filesystem at {tmp_path / 'arm64'}): run scripts/setup-arm-emu.sh arm64"
    (tmp_path / "arm64").mkdir()
    (tmp_path / "arm64" / emulated.READY_MARK).write_text("")
    assert emulated.status("arm64").startswith(f"ready (root filesystem {tmp_path / 'arm64' / 'rootfs'}, QEMU CPU cortex-a76)")
    assert emulated.status("armv7").startswith("not supported")


def test_qemu_command_uses_a_real_cpu_model_never_max(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    command, env = emulated.runner_command("arm64", tmp_path / "m m.tflite", 2, 1, 3, tmp_path / "o.npz")
    assert command[:3] == ["qemu-aarch64-static", "-L", str(tmp_path / "arm64" / "rootfs")]
    assert str(tmp_path / "m m.tflite") in command and env["QEMU_CPU"] == "cortex-a76"


def test_output_diff_in_real_units_and_quantization_steps(tmp_path):
    quant = np.asarray([0.5, -128.0])
    ours = _npz(tmp_path / "a.npz", output_0=np.int8([[1, 5, -3]]), output_0_quant=quant,
                output_1=np.float32([0.25, 1.0]), output_1_quant=np.zeros(2))
    theirs = _npz(tmp_path / "b.npz", output_0=np.int8([[1, 7, -3]]), output_0_quant=quant,
                  output_1=np.float32([0.25, 0.5]), output_1_quant=np.zeros(2))
    assert emulated.output_diff(ours, theirs) == {"max_abs": 1.0, "max_lsb": 2}
    assert emulated.output_diff(ours, ours) == {"max_abs": 0.0, "max_lsb": 0}
    floats = _npz(tmp_path / "c.npz", output_0=np.float32([1.0]), output_0_quant=np.zeros(2))
    assert emulated.output_diff(floats, floats) == {"max_abs": 0.0, "max_lsb": None}


def test_runner_feeds_given_inputs_and_saves_outputs(models, tmp_path):  # noqa: F811
    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    host.run_benchmark(models["int8"], 1, 0, 1, extra_args=["--seed", "7", "--outputs", str(first)])
    host.run_benchmark(models["int8"], 1, 0, 1, extra_args=["--inputs", str(first), "--outputs", str(second)])
    with np.load(first) as a, np.load(second) as b:
        assert a["input_0"].dtype == np.int8 and (a["input_0"] == b["input_0"]).all()
        assert (a["output_0"] == b["output_0"]).all() and a["output_0_quant"][0] > 0
    wrong = _npz(tmp_path / "wrong.npz", input_0=np.zeros((1, 2), np.float32))
    proc = subprocess.run([sys.executable, str(host.RUNNER), str(models["int8"]), "--threads", "1", "--warmup", "0",
                           "--runs", "1", "--inputs", str(wrong)], capture_output=True, text=True)
    assert proc.returncode == 2 and "--inputs input_0 is float32[1, 2]" in proc.stderr


@needs_rootfs
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_artifact_runs_on_emulated_arm64_like_on_the_host(models, dtype):  # noqa: F811
    record = run_benchmark(EmulatedTarget("arm64"), None, models[dtype], threads=1, warmup=0, runs=2)
    assert record["target"] == "arm64-emu" and record["emulated"] is True
    assert record["cpu"]["machine"] == "aarch64" and "0xd0b" in record["cpu"]["model"]  # the A76 cpuinfo was read
    assert record["delegate"] == "xnnpack" and record["latency_ms"]["n"] == 2
    # int8 through XNNPACK is bit-identical to the host; float kernels may differ in the last bits
    # (NEON vs AVX summation order).
    if dtype == "int8":
        assert record["output_diff"] == {"max_abs": 0.0, "max_lsb": 0}
    else:
        assert record["output_diff"]["max_abs"] < 1e-6 and record["output_diff"]["max_lsb"] is None


@needs_rootfs
@pytest.mark.slow
def test_build_verifies_artifacts_on_emulated_arm64(trained_model_file, image_folder, tmp_path):
    from pipeline import report as report_files
    from pipeline.build import build
    from pipeline.config import load_config

    build(load_config(overrides={
        "models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path, "precisions": ["fp32", "int8-ptq"],
        "io": "int8", "warmup": 0, "runs": 2, "threads": [1], "val_fraction": 0.25, "targets": ["host", "arm64-emu"],
    }))
    report = report_files.load(tmp_path)
    assert not report.failures
    # The emulator's root filesystem holds LiteRT only: ncnn and ONNX artifacts are benchmarked on the host alone.
    for artifact in report.artifacts:
        if artifact.format != "tflite":
            assert [b.target for b in artifact.benchmarks] == ["host"]
    assert {a.format for a in report.artifacts} >= {"tflite", "ncnn"}
    for artifact in [a for a in report.artifacts if a.format == "tflite"]:
        (emu,) = [b for b in artifact.benchmarks if b.target == "arm64-emu"]
        assert emu.emulated and emu.delegate == "xnnpack"
        if artifact.precision == "int8-ptq":  # int8 in, int8 out (io=int8): exact
            assert (emu.output_diff.max_abs, emu.output_diff.max_lsb) == (0.0, 0)
        else:
            assert emu.output_diff.max_abs < 1e-6 and emu.output_diff.max_lsb is None


@needs_rootfs
def test_deploy_bench_marks_emulated_results(models):  # noqa: F811
    from tests.test_cli import deploy

    result = deploy("bench", models["int8"], "--target", "arm64-emu", "--threads", "1", "--warmup", "0", "--runs", "2")
    assert result.returncode == 0, result.stderr
    assert "arm64-emu threads=1 delegate=xnnpack" in result.stdout
    assert "EMULATED, max output difference to the host 0 (0 LSB)" in result.stdout
