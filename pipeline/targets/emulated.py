"""Emulated ARM targets: the device runner inside a Debian root filesystem, through QEMU user mode.

    scripts/setup-arm-emu.sh all    # once: debootstrap, wheels downloaded here, installed offline

Root filesystems live in EMU_HOME/<arch> (default ~/.cache/mobile-deploy/emu, or $DEPLOY_EMU_HOME);
a finished setup leaves EMU_HOME/<arch>/READY. arm64 has LiteRT (XNNPACK) and ncnn; armv7 has
tflite-runtime 2.14, whose armv7 wheel is built without XNNPACK (its built-in NEON kernels run),
and ncnn. The runner's Python is the root filesystem's, started by `qemu-ARCH-static -L ROOTFS`:
QEMU looks paths up in ROOTFS first, so the runner reads ROOTFS/proc/cpuinfo, an ARM cpuinfo
matching the emulated CPU (LiteRT crashes on the host's x86 one), while the host's /sys and the
runner and artifact paths need no chroot or mounts. The CPU model is a real core (cortex-a76,
cortex-a7), never `max`: its SME emulation gives wrong int8 results through XNNPACK.

What an emulator proves is correctness, not speed: each run times the artifact, then runs the
check images (validation images, or one random input without data) and saves the outputs and
logits; the host's runner runs the same artifact on the same inputs, and the record carries the
differences (`output_diff`, output_check.py) and the per-image top-1 classes (`check_predictions`,
for accuracy measured by the ARM kernels). Latencies are kept but marked emulated.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.targets import output_check
from pipeline.targets.host import RUNNER, BenchError, parse_result, tail

ARCHES = ("arm64", "armv7")
READY_MARK = "READY"
SETUP = "scripts/setup-arm-emu.sh"
# QEMU binary and CPU model per architecture: real cores whose cpuinfo the setup script writes.
QEMU = {"arm64": ("qemu-aarch64-static", "cortex-a76"), "armv7": ("qemu-arm-static", "cortex-a7")}


def emu_home() -> Path:
    return Path(os.environ.get("DEPLOY_EMU_HOME") or Path.home() / ".cache" / "mobile-deploy" / "emu")


def rootfs(arch: str) -> Path:
    return emu_home() / arch / "rootfs"


def is_set_up(arch: str) -> bool:
    return (emu_home() / arch / READY_MARK).is_file()


def installed(arch: str) -> str:
    """The wheel versions the setup installed (the READY mark holds them)."""
    try:
        return (emu_home() / arch / READY_MARK).read_text().strip()
    except OSError:
        return ""


def status(arch: str) -> str:
    if is_set_up(arch):
        return f"ready (root filesystem {rootfs(arch)}, QEMU CPU {QEMU[arch][1]}; {installed(arch)})"
    return f"not set up (no root filesystem at {emu_home() / arch}): run {SETUP} {arch}"


def runner_command(arch: str, model: Path, threads: int, warmup: int, runs: int, outputs: Path,
                   fp16: bool = False, extra_args: list[str] = ()) -> tuple[list[str], dict]:
    """argv and environment of the runner under QEMU; the CPU model goes in QEMU_CPU."""
    qemu, cpu = QEMU[arch]
    root = rootfs(arch)
    command = [qemu, "-L", str(root), str(root / "usr" / "bin" / "python3"), str(RUNNER), str(model),
               "--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs), "--outputs", str(outputs), *extra_args]
    command += ["--fp16"] if fp16 else []
    return command, {**os.environ, "QEMU_CPU": cpu}


def run_benchmark(arch: str, model_path: Path, threads: int, warmup: int, runs: int, timeout_s: float = 1800,
                  fp16: bool = False, inputs: Path | None = None) -> dict:
    """The runner's record on emulated `arch`, with output_diff against the host on the same inputs
    (`inputs`: the check images, check_inputs.py; None: one random input)."""
    if not is_set_up(arch):
        raise ToolError(f"{arch}-emu: {status(arch)}")
    name = f"{arch}-emu"
    with tempfile.TemporaryDirectory(prefix="deploy-emu-") as tmp:
        emu_out = Path(tmp) / "emu.npz"
        check = output_check.prepare(model_path, Path(tmp), inputs)
        command, env = runner_command(arch, model_path, threads, warmup, runs, emu_out, fp16, check.runner_args(model_path))
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
        except subprocess.TimeoutExpired as expired:
            raise BenchError(model_path, f"on {name}: timed out after {timeout_s:.0f} s", tail(expired.stderr)) from None
        except OSError as e:
            raise ToolError(f"{name}: cannot run {command[0]} ({e.strerror or e}): run {SETUP} {arch}") from e
        if proc.returncode != 0:
            raise BenchError(model_path, f"on {name}: runner exited with {proc.returncode}", tail(proc.stderr))
        result = parse_result(proc.stdout)
        if result is None:
            raise BenchError(model_path, f"on {name}: runner printed no JSON result", tail(proc.stderr))
        result["output_diff"], result["check_predictions"] = output_check.against_host(model_path, emu_out, result, fp16, check)
    result["target"] = name
    result["emulated"] = True
    return result
