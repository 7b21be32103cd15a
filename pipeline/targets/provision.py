"""`deploy devices --setup ssh:...`: install the runner's Python packages on a board that has no internet.

The host finds the board's machine and Python over ssh, downloads on the host the wheels of numpy
and the runtimes for that platform (the host's own versions, so that board and host run the same
code and their outputs compare), copies them over and installs them offline into a virtual
environment on the board, ~/.mobile-deploy/venv (ssh.PROVISIONED_VENV), which ssh targets then use
by default. The board never reaches a package index.

    aarch64  numpy, ai-edge-litert, ncnn, mnn, onnxruntime (every format a build makes)
    armv7l   tflite-runtime 2.14 (LiteRT has no armv7 wheel) and ncnn (no MNN or onnxruntime wheel); numpy from the board's own
             python3-numpy (PyPI has no armv7 numpy wheel), seen through --system-site-packages

pip on the board is the pip wheel itself (`python pip.whl/pip install`, as pip's docs allow), so the
board needs neither pip nor Debian's python3-venv. The environment is built as venv.partial and
renamed at the end: an interrupted setup leaves nothing a build would use. Wheels are cached on the
host (~/.cache/mobile-deploy/wheels/PLATFORM); a `wheels` folder of your own is used instead of the
package index (a host without internet). Hand-written: pip's --platform download and --target
install are the maintained parts; no tool installs wheels onto a remote machine over ssh.
"""
from __future__ import annotations

import importlib.metadata
import logging
import subprocess
import sys
from pathlib import Path

from pipeline.errors import ToolError, UserInputError
from pipeline.targets import ssh
from pipeline.targets.spec import SshTarget

log = logging.getLogger("deploy")

TFLITE_RUNTIME_ARMV7 = "tflite-runtime==2.14.0"  # the last release with armv7 wheels
GLIBC_MIN_TAG = 17  # manylinux_2_17 = manylinux2014, the oldest tag the runtimes' wheels use
_PLATFORM_PROBE = "import platform, sys; print(platform.machine(), '%d.%d' % sys.version_info[:2], platform.libc_ver()[1])"
_IMPORT_CHECK = "import sys, numpy\nfor module in sys.argv[1:]:\n    __import__(module)"


def wheel_cache() -> Path:
    return Path.home() / ".cache" / "mobile-deploy" / "wheels"


def packages(machine: str) -> tuple[list[str], list[str]]:
    """(pip requirements pinned to the host's versions, modules the runner imports) for a board's machine."""
    def pin(name: str) -> str:
        return f"{name}=={importlib.metadata.version(name)}"

    if machine == "aarch64":
        return ([pin("numpy"), pin("ai-edge-litert"), pin("ncnn"), pin("mnn"), pin("onnxruntime")],
                ["ai_edge_litert.interpreter", "ncnn", "MNN", "onnxruntime"])
    if machine.startswith("armv7"):
        return [TFLITE_RUNTIME_ARMV7, pin("ncnn")], ["tflite_runtime.interpreter", "ncnn"]
    raise UserInputError(f"cannot set up a {machine} board: wheels are fetched for aarch64 and armv7l boards only")


def platform_args(machine: str, python: str, glibc: str) -> list[str]:
    """pip's options selecting wheels the board can install: its Python, and every manylinux tag its glibc runs."""
    arch = "armv7l" if machine.startswith("armv7") else machine
    try:
        newest = int(glibc.split(".")[1])
    except (IndexError, ValueError):
        raise ToolError(f"the board's C library is not glibc ({glibc or 'unknown'}): manylinux wheels need glibc") from None
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--platform", f"manylinux2014_{arch}"]
    for minor in range(GLIBC_MIN_TAG, newest + 1):
        args += ["--platform", f"manylinux_2_{minor}_{arch}"]
    return args


def download(requirements: list[str], platform: list[str], folder: Path, wheels: Path | None) -> None:
    """The wheels (and pip's own) into `folder`: from `wheels` when given, else the cache, else the index."""
    pip_wheel = f"pip=={importlib.metadata.version('pip')}"
    base = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder)]
    sources = [["--no-index", "--find-links", str(wheels)]] if wheels else [["--no-index", "--find-links", str(folder)], []]
    for source in sources:
        pip = subprocess.run([*base, *source, *platform, *requirements], capture_output=True, text=True)
        if pip.returncode == 0:
            # pip's wheel is for any platform: asked apart, without the board's platform tags.
            pip_self = subprocess.run([*base, *source, "--only-binary=:all:", pip_wheel], capture_output=True, text=True)
            if pip_self.returncode == 0:
                return
            pip = pip_self
    said = " ".join(pip.stderr.split())[-300:]
    where = f"--wheels {wheels}" if wheels else "the package index"
    raise ToolError(f"cannot get the board's wheels ({' '.join(requirements)}) from {where}: {said}")


def provision(target: SshTarget, options: ssh.SshOptions, wheels: Path | None = None) -> None:
    """Install the runtimes on the board and check that they import there (`ssh.probe` then lists their versions)."""
    if options.python:
        raise UserInputError("--ssh-python: `deploy devices --setup` makes its own environment on the board; drop the flag")
    proc = ssh.run_ssh(target, options, ["python3", "-c", _PLATFORM_PROBE], timeout_s=60)
    if proc.returncode != 0:
        raise ToolError(f"{target.name}: python3 failed ({' '.join(proc.stderr.split())[:200] or proc.returncode}); "
                        f"the board needs Python 3 (Debian: apt install python3)")
    machine, python, glibc = (proc.stdout.split() + ["", ""])[:3]
    requirements, modules = packages(machine)
    folder = wheel_cache() / f"{machine}-cp{python.replace('.', '')}"
    folder.mkdir(parents=True, exist_ok=True)
    log.info("%s: %s, Python %s, glibc %s; getting %s", target.name, machine, python, glibc, " ".join(requirements))
    download(requirements, platform_args(machine, python, glibc), folder, wheels)
    files = _wanted(folder, requirements)
    remote = ssh.make_remote_dir(target, options)
    venv, partial = ssh.PROVISIONED_VENV, ssh.PROVISIONED_VENV + ".partial"  # relative to the board user's home
    try:
        for file in files:
            log.info("%s: copying %s (%.1f MB)", target.name, file.name, file.stat().st_size / 1e6)
            ssh.copy_to(target, options, file, f"{remote}/{file.name}")
        pip_wheel = next(f.name for f in files if f.name.startswith("pip-"))
        log.info("%s: installing into ~/%s (a minute or more on a slow board)", target.name, venv)
        script = (f'set -e; cd; rm -rf "{partial}"; mkdir -p "$(dirname "{partial}")"; '
                  f'python3 -m venv --without-pip --system-site-packages "{partial}"; '
                  f'"{partial}/bin/python" "$1/{pip_wheel}/pip" install --quiet --no-index --no-deps --no-cache-dir '
                  f'--disable-pip-version-check --find-links "$1" "${{@:2}}"')
        _board_step(target, options, ["bash", "-c", script, "setup", remote, *requirements], "installing the wheels")
    finally:
        ssh.run_ssh(target, options, ["rm", "-rf", "--", remote])
    try:
        _board_step(target, options, [f"{partial}/bin/python", "-c", _IMPORT_CHECK, *modules], "the installed runtimes do not import")
    except ToolError as e:
        hint = " (armv7 boards: apt install python3-numpy on the board)" if "numpy" in str(e) else ""
        raise ToolError(f"{e}{hint}") from None
    _board_step(target, options, ["sh", "-c", f'cd && rm -rf "{venv}" && mv "{partial}" "{venv}"'], "cannot move the environment into place")


def _board_step(target: SshTarget, options: ssh.SshOptions, command: list[str], what: str) -> None:
    proc = ssh.run_ssh(target, options, command, timeout_s=1800)
    if proc.returncode != 0:
        said = " | ".join(proc.stderr.strip().splitlines()[-3:]) or f"exit {proc.returncode}"
        raise ToolError(f"{target.name}: {what}: {said}")


def _wanted(folder: Path, requirements: list[str]) -> list[Path]:
    """The wheel files in the cache that pip download picked for these requirements (and pip)."""
    pip_version = importlib.metadata.version("pip")
    names = {r.split("==")[0].replace("-", "_").lower(): r.split("==")[1] for r in requirements}
    names["pip"] = pip_version
    files = [f for f in folder.glob("*.whl")
             if f.name.split("-")[0].lower() in names and f.name.split("-")[1] == names[f.name.split("-")[0].lower()]]
    missing = set(names) - {f.name.split("-")[0].lower() for f in files}
    if missing:
        raise ToolError(f"no wheel for {', '.join(sorted(missing))} in {folder}")
    return files
