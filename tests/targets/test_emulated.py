"""Emulated ARM: the runner inside the Debian root filesystems under QEMU, compared with the host.

The QEMU runs need `scripts/setup-arm-emu.sh all` (about 3 minutes once, then cached; `make test`
runs it), so those tests skip, saying why, only where a root filesystem is not set up.
Everything else (status, the runner's --inputs/--outputs, the output comparison) always runs.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

from pipeline.targets import emulated, host
from pipeline.targets.bench import run_benchmark
from pipeline.targets.output_check import output_diff
from pipeline.targets.spec import EmulatedTarget
from tests.targets.test_host_bench import _tiny_classifier, models  # noqa: F401  (fixture: tiny float32 and int8 .tflite)


def rootfs_missing(arch):
    # CI sets the emulators up (make test), so there a missing root filesystem fails instead of skipping.
    return not emulated.is_set_up(arch) and not os.environ.get("CI")


def why_skipped(arch):
    return f"{arch} root filesystem not set up: run scripts/setup-arm-emu.sh {arch}"


def needs_rootfs(arch):
    return pytest.mark.skipif(rootfs_missing(arch), reason=why_skipped(arch))


# What each emulator runs TFLite with: LiteRT with XNNPACK on arm64; tflite-runtime 2.14 on armv7,
# whose armv7 wheel is built without XNNPACK (no xnn_ symbols in it), so its own NEON kernels run.
TFLITE_ON = {"arm64": ("ai-edge-litert", "xnnpack", "aarch64", "0xd0b"),
             "armv7": ("tflite-runtime", "none", "armv7l", "0xc07")}


def _npz(path, **arrays):
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    return path


@pytest.fixture(scope="module")
def ncnn_model(tmp_path_factory):
    """The tiny classifier as an ncnn fp32 artifact (.param with its .bin)."""
    from converters import ncnn as ncnn_converter
    from converters import onnx as onnx_converter

    folder = tmp_path_factory.mktemp("ncnn")
    onnx_path = onnx_converter.from_keras(_tiny_classifier(), folder / "m.onnx")
    param, _ = ncnn_converter.convert(onnx_path, [1, 3, 16, 16], False, folder, "tiny")
    return param


def test_status_follows_the_ready_mark(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    assert emulated.status("arm64") == f"not set up (no root filesystem at {tmp_path / 'arm64'}): run scripts/setup-arm-emu.sh arm64"
    for arch, cpu in (("arm64", "cortex-a76"), ("armv7", "cortex-a7")):
        (tmp_path / arch).mkdir()
        (tmp_path / arch / emulated.READY_MARK).write_text("ncnn==1.0\n")
        assert emulated.status(arch) == f"ready (root filesystem {tmp_path / arch / 'rootfs'}, QEMU CPU {cpu}; ncnn==1.0)"
        assert emulated.installed(arch) == "ncnn==1.0"


@pytest.mark.parametrize("arch, qemu, cpu", [("arm64", "qemu-aarch64-static", "cortex-a76"), ("armv7", "qemu-arm-static", "cortex-a7")])
def test_qemu_command_uses_a_real_cpu_model_never_max(tmp_path, monkeypatch, arch, qemu, cpu):
    monkeypatch.setenv("DEPLOY_EMU_HOME", str(tmp_path))
    command, env = emulated.runner_command(arch, tmp_path / "m m.tflite", 2, 1, 3, tmp_path / "o.npz", fp16=True)
    assert command[:3] == [qemu, "-L", str(tmp_path / arch / "rootfs")]
    assert str(tmp_path / "m m.tflite") in command and command[-1] == "--fp16" and env["QEMU_CPU"] == cpu


def test_output_diff_in_real_units_and_quantization_steps(tmp_path):
    quant = np.asarray([0.5, -128.0])
    ours = _npz(tmp_path / "a.npz", output_0=np.int8([[1, 5, -3]]), output_0_quant=quant,
                output_1=np.float32([0.25, 1.0]), output_1_quant=np.zeros(2))
    theirs = _npz(tmp_path / "b.npz", output_0=np.int8([[1, 7, -3]]), output_0_quant=quant,
                  output_1=np.float32([0.25, 0.5]), output_1_quant=np.zeros(2))
    assert output_diff(ours, theirs) == {"max_abs": 1.0, "max_lsb": 2}
    assert output_diff(ours, ours) == {"max_abs": 0.0, "max_lsb": 0}
    floats = _npz(tmp_path / "c.npz", output_0=np.float32([1.0]), output_0_quant=np.zeros(2))
    assert output_diff(floats, floats) == {"max_abs": 0.0, "max_lsb": None}
    other_shape = _npz(tmp_path / "d.npz", output_0=np.float32([1.0, 2.0]), output_0_quant=np.zeros(2))
    with pytest.raises(Exception, match="output_0 has shape"):
        output_diff(floats, other_shape)


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


def test_ncnn_and_onnx_runners_feed_given_inputs_and_save_outputs(ncnn_model, tmp_path):
    from converters import onnx as onnx_converter

    onnx_path = onnx_converter.from_keras(_tiny_classifier(), tmp_path / "m.onnx")
    for model in (ncnn_model, onnx_path):
        first, second = tmp_path / f"{model.name}.1.npz", tmp_path / f"{model.name}.2.npz"
        host.run_benchmark(model, 1, 0, 1, extra_args=["--seed", "3", "--outputs", str(first)])
        host.run_benchmark(model, 1, 0, 1, extra_args=["--inputs", str(first), "--outputs", str(second)])
        with np.load(first) as a, np.load(second) as b:
            assert a["input_0"].size == 3 * 16 * 16 and a["output_0"].size == 10
            assert (a["input_0"] == b["input_0"]).all()
            assert (a["output_0"] == b["output_0"]).all() and list(a["output_0_quant"]) == [0.0, 0.0]
        assert output_diff(first, second) == {"max_abs": 0.0, "max_lsb": None}


@pytest.mark.parametrize("arch", ["arm64", "armv7"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_tflite_artifact_runs_on_emulated_arm_like_on_the_host(models, arch, dtype):  # noqa: F811
    if rootfs_missing(arch):
        pytest.skip(why_skipped(arch))
    record = run_benchmark(EmulatedTarget(arch), None, models[dtype], threads=1, warmup=0, runs=2)
    runtime, delegate, machine, cpu_part = TFLITE_ON[arch]
    assert record["target"] == f"{arch}-emu" and record["emulated"] is True and record["runtime"] == runtime
    assert record["cpu"]["machine"] == machine and cpu_part in record["cpu"]["model"]  # our cpuinfo was read
    assert record["delegate"] == delegate and record["latency_ms"]["n"] == 2
    # int8 through XNNPACK is bit-identical to the host; float kernels may differ in the last bits
    # (NEON vs AVX summation order), and so may armv7's non-XNNPACK int8 kernels by a rounding step.
    if dtype == "int8":
        assert record["output_diff"]["max_lsb"] <= (0 if delegate == "xnnpack" else 1)
    else:
        assert record["output_diff"]["max_abs"] < 1e-6 and record["output_diff"]["max_lsb"] is None


@pytest.mark.parametrize("arch", ["arm64", "armv7"])
def test_ncnn_artifact_runs_on_emulated_arm_with_neon(ncnn_model, arch):
    if rootfs_missing(arch):
        pytest.skip(why_skipped(arch))
    record = run_benchmark(EmulatedTarget(arch), None, ncnn_model, threads=1, warmup=0, runs=2)
    assert record["runtime"] == "ncnn" and record["cpu"]["machine"] == TFLITE_ON[arch][2]
    assert record["options"]["cpu_support_arm_neon"] is True  # ncnn's ARM kernels are the ones that ran
    assert record["output_diff"]["max_abs"] < 1e-5


@pytest.fixture(scope="module")
def four_class_model(tmp_path_factory):
    """A tiny trained model with 4 classes and its image folder: with 3 classes the int8 head is too
    narrow for tflite-runtime 2.14 on armv7 (see test_host_bench._tiny_classifier)."""
    from tests.conftest import COLORS, make_image_folder, tiny_model
    from pipeline.data import load_image_folder

    root = tmp_path_factory.mktemp("four")
    folder = make_image_folder(root / "images", classes={**COLORS, "yellow": (200, 200, 40)})
    images = load_image_folder(folder, 16, 16)
    model = tiny_model(classes=4)
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit((images.images.astype(np.float32) - 127.5) / 127.5, images.labels, epochs=30, batch_size=8, verbose=0)
    model.save(root / "four.keras")
    return root / "four.keras", folder


@needs_rootfs("arm64")
@needs_rootfs("armv7")
@pytest.mark.slow
def test_build_verifies_tflite_and_ncnn_artifacts_on_both_emulators(four_class_model, tmp_path):
    from pipeline import report as report_files
    from pipeline.build import build
    from pipeline.config import load_config

    model_file, images = four_class_model
    build(load_config(overrides={
        "models": [str(model_file)], "data": str(images), "out": tmp_path, "precisions": ["fp32", "int8-ptq"],
        "io": "int8", "warmup": 0, "runs": 2, "threads": [1], "val_fraction": 0.25,
        "targets": ["host", "arm64-emu", "armv7-emu"],
    }))
    report = report_files.load(tmp_path)
    assert not report.failures
    assert {(a.format, a.precision) for a in report.artifacts} >= {("tflite", "int8-ptq"), ("ncnn", "int8"), ("ncnn", "fp16")}
    for artifact in report.artifacts:
        by_target = {b.target: b for b in artifact.benchmarks}
        if artifact.format == "onnx":  # no onnxruntime in the root filesystems
            assert set(by_target) == {"host"}
            continue
        assert set(by_target) == {"host", "arm64-emu", "armv7-emu"}, artifact.id
        for arch in ("arm64", "armv7"):
            emu = by_target[f"{arch}-emu"]
            diff = emu.output_diff
            assert emu.emulated and diff is not None, artifact.id
            # Compared on the logits (every model here ends in a softmax) of the validation images.
            assert (diff.compared, diff.inputs, diff.n) == ("logits", "validation", min(64, report.data.val)), artifact.id
            assert diff.logits_max_abs is not None and diff.top1_agreement is not None
            if artifact.format == "tflite":
                # Compared with the host running the same kernels: XNNPACK on arm64, built-in on armv7.
                assert emu.delegate == diff.host_delegate == TFLITE_ON[arch][1]
            if artifact.precision == "int8-ptq":  # int8 in, int8 out (io=int8)
                # Every layer before the softmax agrees exactly; the int8 softmax itself may round one
                # step apart on ARM (arm64 with XNNPACK, also on real photographs: docs/output-check.md).
                assert diff.logits_max_steps == 0 and diff.max_lsb <= 1, (artifact.id, arch, diff)
            elif artifact.format == "ncnn" and artifact.precision == "fp16" and arch == "arm64":
                # The A76 has fp16 arithmetic (asimdhp) and ncnn uses it; the x86 host computes in fp32.
                assert emu.options["use_fp16_arithmetic"] and emu.options["cpu_support_arm_asimdhp"]
                assert diff.max_abs < 1e-2
            elif artifact.format == "ncnn" and artifact.precision == "int8":
                # ncnn's ARM int8 kernels do not reproduce its x86 ones (0.18 on a digits softmax, 1.23 on
                # photographs' logits: docs/output-check.md; issue 13): close, not exact.
                assert diff.top1_agreement >= 0.9 and diff.logits_max_rel < 0.05, (artifact.id, arch, diff)
            else:
                assert diff.max_abs < 1e-5, (artifact.id, arch)


@needs_rootfs("arm64")
@pytest.mark.slow
def test_mnn_artifacts_run_on_arm64_kernels_and_armv7_is_skipped(four_class_model, tmp_path):
    """MNN's aarch64 wheel in the arm64 root filesystem: each MNN artifact benchmarked there, compared
    with the host on validation images, and scored by MNN's ARM kernels; armv7 has no MNN wheel."""
    from pipeline import report as report_files
    from pipeline.build import build
    from pipeline.config import load_config

    model_file, images = four_class_model
    build(load_config(overrides={
        "models": [str(model_file)], "data": str(images), "out": tmp_path, "formats": ["mnn"], "precisions": ["fp32"],
        "calibration_images": 24, "warmup": 0, "runs": 2, "threads": [1], "val_fraction": 0.25,
        "targets": ["host", "arm64-emu", "armv7-emu"], "arm_val_images": 16,
    }))
    report = report_files.load(tmp_path)
    assert not report.failures and {a.precision for a in report.artifacts} == {"fp32", "fp16", "int8"}
    for artifact in report.artifacts:
        by_target = {b.target: b for b in artifact.benchmarks}
        assert set(by_target) == {"host", "arm64-emu"}, artifact.id  # no MNN wheel for armv7
        emu = by_target["arm64-emu"]
        assert emu.runtime == "mnn" and emu.emulated and "0xd0b" in emu.cpu  # the A76 QEMU emulates
        diff = emu.output_diff
        assert diff.inputs == "validation" and diff.compared == "logits" and diff.logits_max_abs is not None  # the final Softmax's input
        [on_arm] = artifact.target_accuracy
        assert on_arm.target == "arm64-emu" and on_arm.n == min(16, report.data.val)
        if artifact.precision == "fp32":
            assert diff.max_abs < 1e-5 and on_arm.host_agreement == 1.0
        elif artifact.precision == "fp16":  # low precision: the A76 computes in fp16, the x86 host in fp32
            assert emu.arithmetic == "fp16" and diff.max_abs < 2e-2 and diff.top1_agreement >= 0.9
        else:
            assert diff.top1_agreement >= 0.9 and on_arm.host_agreement >= 0.9, (artifact.id, diff)


@needs_rootfs("arm64")
def test_deploy_bench_marks_emulated_results(models):  # noqa: F811
    from tests.test_cli import deploy

    result = deploy("bench", models["int8"], "--target", "arm64-emu", "--threads", "1", "--warmup", "0", "--runs", "2")
    assert result.returncode == 0, result.stderr
    assert "arm64-emu threads=1 delegate=xnnpack" in result.stdout
    assert "EMULATED, compared with the host on logits, 1 random input: max |logit - host| 0 (0 steps)" in result.stdout
