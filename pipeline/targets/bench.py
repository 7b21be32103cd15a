"""Run one benchmark on any target `deploy build` and `deploy bench` support; refuse the others early."""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import ToolError
from pipeline.targets import emulated
from pipeline.targets.spec import AdbTarget, EmulatedTarget, HostTarget, SshTarget, Target
from pipeline.targets.adb import AdbOptions


def require_benchmarkable(target: Target) -> None:
    """Fail before any work when a target cannot run the device runner in this version."""
    if isinstance(target, EmulatedTarget) and not emulated.is_set_up(target.arch):
        raise ToolError(f"--targets {target.name}: {emulated.status(target.arch)}")


def run_benchmark(target: Target, ssh_options, model_path: Path, threads: int, warmup: int, runs: int,
                  fp16: bool = False, adb_options: AdbOptions | None = None, check_inputs: Path | None = None) -> dict:
    """The device runner's record (+ target) for model_path on target; `fp16`: ncnn's fp16 arithmetic;
    `check_inputs`: the images emulators and boards are compared with the host on (check_inputs.py)."""
    from pipeline.targets import adb, host, ssh

    require_benchmarkable(target)
    if isinstance(target, EmulatedTarget):
        return emulated.run_benchmark(target.arch, model_path, threads, warmup, runs, fp16=fp16, inputs=check_inputs)
    if isinstance(target, AdbTarget):  # benchncnn sets its own fp16 options from the CPU
        return adb.run_benchmark(target, adb_options or AdbOptions(), model_path, threads, warmup, runs)
    if isinstance(target, SshTarget):
        return ssh.run_benchmark(target, ssh_options or ssh.SshOptions(), model_path, threads, warmup, runs, fp16=fp16,
                                 inputs=check_inputs)
    assert isinstance(target, HostTarget)
    return host.run_benchmark(model_path, threads, warmup, runs, fp16=fp16)


def run_table(target: Target, ssh_options, models: dict[str, bytes], threads: int, warmup: int, runs: int, rounds: int,
              workdir: Path) -> dict:
    """table_runner.py's result for the TFLite `models` ({name: file bytes}) on a real device: the
    host or an ssh board. Emulators are refused (their timing says nothing about a CPU); so are
    phones, until the adb target has a runner that times many models. The models travel as one npz
    in `workdir` (one file to copy to a board), removed afterwards."""
    import numpy as np

    from pipeline.targets import host, ssh

    if isinstance(target, EmulatedTarget):
        raise ToolError(f"{target.name} is emulated: its timing means nothing; measure latency on the host, a board or a phone")
    if isinstance(target, AdbTarget):
        raise ToolError(f"{target.name}: latency tables on adb devices are not supported yet; use the host or an ssh board")
    packed = workdir / "models.npz"
    np.savez(packed, **{name: np.frombuffer(data, np.uint8) for name, data in models.items()})
    try:
        if isinstance(target, SshTarget):
            return ssh.run_table(target, ssh_options or ssh.SshOptions(), packed, threads, warmup, runs, rounds)
        assert isinstance(target, HostTarget)
        return host.run_table(packed, threads, warmup, runs, rounds)
    finally:
        packed.unlink()
