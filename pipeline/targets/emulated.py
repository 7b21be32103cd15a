"""Emulated ARM targets: the device runner inside a Debian root filesystem, through QEMU user mode.

    scripts/setup-arm-emu.sh arm64    # once: debootstrap, wheels downloaded here, installed offline

Root filesystems live in EMU_HOME/<arch> (default ~/.cache/mobile-deploy/emu, or $DEPLOY_EMU_HOME);
a finished setup leaves EMU_HOME/<arch>/READY. The runner's Python is the root filesystem's,
started by `qemu-aarch64-static -L ROOTFS`: QEMU looks paths up in ROOTFS first, so the runner
reads ROOTFS/proc/cpuinfo, an ARM cpuinfo matching the emulated CPU (LiteRT crashes on the host's
x86 one), while the host's /sys and the runner and artifact paths need no chroot or mounts.
The CPU model is a real core (cortex-a76), never `max`: its SME emulation gives wrong int8
results through XNNPACK.

What an emulator proves is correctness, not speed: each run saves the outputs for its inputs,
the host's runner runs the same artifact on the same inputs, and the record carries the largest
difference (`output_diff`). Latencies are kept but marked emulated.
"""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError
from pipeline.targets.host import RUNNER, BenchError, parse_result, tail

ARCHES = ("arm64", "armv7")
READY_MARK = "READY"
SETUP = "scripts/setup-arm-emu.sh"
# QEMU binary and CPU model per architecture; only arm64 is set up by this version.
QEMU = {"arm64": ("qemu-aarch64-static", "cortex-a76")}


def emu_home() -> Path:
    return Path(os.environ.get("DEPLOY_EMU_HOME") or Path.home() / ".cache" / "mobile-deploy" / "emu")


def rootfs(arch: str) -> Path:
    return emu_home() / arch / "rootfs"


def is_set_up(arch: str) -> bool:
    return (emu_home() / arch / READY_MARK).is_file()


def status(arch: str) -> str:
    if arch not in QEMU:
        return "not supported in this version (only arm64-emu is)"
    if is_set_up(arch):
        return f"ready (root filesystem {rootfs(arch)}, QEMU CPU {QEMU[arch][1]})"
    return f"not set up (no root filesystem at {emu_home() / arch}): run {SETUP} {arch}"


def runner_command(arch: str, model: Path, threads: int, warmup: int, runs: int, outputs: Path) -> tuple[list[str], dict]:
    """argv and environment of the runner under QEMU; the CPU model goes in QEMU_CPU."""
    qemu, cpu = QEMU[arch]
    root = rootfs(arch)
    command = [qemu, "-L", str(root), str(root / "usr" / "bin" / "python3"), str(RUNNER), str(model),
               "--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs), "--outputs", str(outputs)]
    return command, {**os.environ, "QEMU_CPU": cpu}


def run_benchmark(arch: str, model_path: Path, threads: int, warmup: int, runs: int, timeout_s: float = 1800) -> dict:
    """The runner's record on emulated `arch`, with output_diff against the host on the same inputs."""
    from pipeline.targets import host

    if not is_set_up(arch):
        raise ToolError(f"{arch}-emu: {status(arch)}")
    name = f"{arch}-emu"
    with tempfile.TemporaryDirectory(prefix="deploy-emu-") as tmp:
        emu_out, host_out = Path(tmp) / "emu.npz", Path(tmp) / "host.npz"
        command, env = runner_command(arch, model_path, threads, warmup, runs, emu_out)
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
        host.run_benchmark(model_path, 1, 0, 1, extra_args=["--inputs", str(emu_out), "--outputs", str(host_out)])
        result["output_diff"] = output_diff(host_out, emu_out)
    result["target"] = name
    result["emulated"] = True
    return result


def output_diff(host_npz: Path, target_npz: Path) -> dict:
    """Largest difference over every output: in real units, and in quantization steps for int outputs."""
    with np.load(host_npz) as ours, np.load(target_npz) as theirs:
        names = sorted(k for k in ours.files if k.startswith("output_") and not k.endswith("_quant"))
        if names != sorted(k for k in theirs.files if k.startswith("output_") and not k.endswith("_quant")):
            raise ToolError(f"{target_npz}: the target saved other outputs than the host ({', '.join(names)})")
        max_abs, max_lsb = 0.0, None
        for key in names:
            a, b = ours[key], theirs[key]
            steps = np.abs(a.astype(np.float64) - b.astype(np.float64))
            scale = float(ours[f"{key}_quant"][0])
            if np.issubdtype(a.dtype, np.integer):
                max_lsb = max(max_lsb or 0, int(steps.max(initial=0)))
                steps = steps * (scale or 1.0)
            max_abs = max(max_abs, float(steps.max(initial=0)))
    return {"max_abs": max_abs, "max_lsb": max_lsb}
