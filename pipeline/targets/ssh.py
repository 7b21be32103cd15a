"""ARM boards over ssh: copy device_runner.py and the artifact, run them with the board's python3,
fetch the outputs and compare them with the host's on the same inputs (output_check.py).

Every local command is an argument list. The command a board runs is one string, because ssh
hands it to the remote user's shell; each word is quoted with shlex so paths with spaces or
shell metacharacters arrive unchanged. Files are copied as `cat > PATH` over ssh rather than
with scp, whose remote paths some servers still expand in a shell.

Host keys: BatchMode (never a prompt) and StrictHostKeyChecking=yes, so an unknown or changed
board key is an error, never silently accepted. `known_hosts` points ssh at a file of your own
(default: ~/.ssh/known_hosts); add a board with `ssh-keyscan -p PORT HOST >> FILE` once.

Connections are shared (ControlMaster, kept 60 s after the last use): a key exchange costs seconds
on a slow board, and one benchmark makes about ten ssh calls. The control socket is named after
everything that decides how ssh authenticates (user, host, port, key, known_hosts), so another key
never rides on a connection it did not open. Keep-alives every 5 s end a connection to a board that
went away within about 15 s instead of hanging until the command's timeout.

The board's Python: `SshOptions.python`, else the virtual environment `deploy devices --setup` made
(~/PROVISIONED_VENV, provision.py), else the board's python3.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shlex
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.targets import output_check
from pipeline.targets.host import RUNNER, TABLE_RUNNER, BenchError, artifact_files, parse_result, tail
from pipeline.targets.spec import SshTarget

log = logging.getLogger(__name__)
CONNECT_TIMEOUT_S = 10
PROVISIONED_VENV = ".mobile-deploy/venv"  # under the board user's home; made by provision.py
# ssh's own exit status for "could not connect or authenticate"; the runner uses 0, 2 and 3.
SSH_FAILED = 255


@dataclass(frozen=True)
class SshOptions:
    python: str | None = None  # the board's interpreter with numpy and a runtime (None: module docstring)
    key: Path | None = None  # identity file (default: ssh's own choice, an agent, ~/.ssh/config)
    known_hosts: Path | None = None
    dir: str | None = None  # board folder where the per-run temp folder is made (default: the board's $TMPDIR or /tmp)


def ssh_args(target: SshTarget, options: SshOptions, command: list[str]) -> list[str]:
    """argv of `ssh` running `command` (words, quoted here) on the board."""
    args = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
            "-o", "ControlMaster=auto", "-o", "ControlPersist=60", "-o", f"ControlPath={_control_path(target, options)}",
            "-p", str(target.port), "-l", target.user]
    if options.known_hosts is not None:
        args += ["-o", f"UserKnownHostsFile={options.known_hosts}"]
    if options.key is not None:
        args += ["-i", str(options.key), "-o", "IdentitiesOnly=yes"]
    return args + ["--", target.host, shlex.join(command)]


def _control_path(target: SshTarget, options: SshOptions) -> Path:
    """This user's socket for connections authenticated like this one (short: sockets allow ~100 bytes)."""
    folder = Path(tempfile.gettempdir()) / f"deploy-ssh-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    how = repr((target.user, target.host, target.port, str(options.key), str(options.known_hosts)))
    return folder / hashlib.sha256(how.encode()).hexdigest()[:20]


def python_command(options: SshOptions) -> list[str]:
    """The words that start the board's Python (module docstring)."""
    if options.python:
        return [options.python]
    script = f'p="$HOME/{PROVISIONED_VENV}/bin/python"; [ -x "$p" ] || p=python3; exec "$p" "$@"'
    return ["sh", "-c", script, "python"]


def python_name(options: SshOptions) -> str:
    return options.python or f"~/{PROVISIONED_VENV}/bin/python (or python3)"


def run_ssh(target: SshTarget, options: SshOptions, command: list[str], stdin: Path | None = None,
            stdout: Path | None = None, timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Run one command on the board, feeding it the file `stdin` and saving its output to the file
    `stdout` when given (else returned as text); a connection or authentication failure is a ToolError."""
    args = ssh_args(target, options, command)
    try:
        with contextlib.ExitStack() as files:
            source = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
            sink = files.enter_context(open(stdout, "wb")) if stdout else subprocess.PIPE
            proc = subprocess.run(args, stdin=source, stdout=sink, stderr=subprocess.PIPE, timeout=timeout_s)
        proc.stdout = (proc.stdout or b"").decode("utf-8", "replace")
        proc.stderr = proc.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        raise ToolError(f"{target.name}: `{shlex.join(command)}` timed out after {timeout_s:.0f} s") from None
    except OSError as e:
        raise ToolError(f"cannot run ssh ({e.strerror or e}): install the OpenSSH client") from e
    if proc.returncode == SSH_FAILED:
        said = " ".join(proc.stderr.split()) or "no message"
        raise ToolError(f"{target.name}: ssh failed ({said}); {_hint(proc.stderr)}")
    return proc


def make_remote_dir(target: SshTarget, options: SshOptions) -> str:
    template = "mobile-deploy.XXXXXXXX"
    command = ["mktemp", "-d", f"{options.dir}/{template}"] if options.dir else ["mktemp", "-d", "-t", template]
    proc = run_ssh(target, options, command)
    path = proc.stdout.strip()
    if proc.returncode != 0 or not path:
        raise ToolError(f"{target.name}: cannot make a temp folder ({' '.join(proc.stderr.split()) or proc.returncode}); "
                        f"check --ssh-dir")
    return path


def copy_to(target: SshTarget, options: SshOptions, local: Path, remote: str) -> None:
    proc = run_ssh(target, options, ["sh", "-c", 'cat > "$1"', "sh", remote], stdin=local)
    if proc.returncode != 0:
        raise ToolError(f"{target.name}: cannot copy {local} to {remote} ({' '.join(proc.stderr.split())})")


def copy_from(target: SshTarget, options: SshOptions, remote: str, local: Path) -> None:
    proc = run_ssh(target, options, ["cat", "--", remote], stdout=local)
    if proc.returncode != 0:
        raise ToolError(f"{target.name}: cannot copy {remote} back ({' '.join(proc.stderr.split())})")


def run_benchmark(target: SshTarget, options: SshOptions, model_path: Path, threads: int, warmup: int, runs: int,
                  timeout_s: float = 600, fp16: bool = False, inputs: Path | None = None) -> dict:
    """Benchmark model_path on the board with device_runner.py; its JSON record plus `target`, and
    `output_diff`: the board's outputs and logits compared with the host's on the same inputs
    (`inputs`: the check images, check_inputs.py; None: one random input)."""
    runner_args = ["--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs)] + (["--fp16"] if fp16 else [])
    with tempfile.TemporaryDirectory(prefix="deploy-ssh-") as local:
        outputs = Path(local) / "board.npz"
        check = output_check.prepare(Path(model_path), Path(local), inputs)
        proc = _run_on_board(target, options, Path(model_path), runner_args, outputs, timeout_s, check)
        if proc.returncode != 0:
            raise BenchError(model_path, f"on {target.name}: runner exited with {proc.returncode} (is {python_name(options)} on the "
                                         f"board with numpy and its runtimes? `deploy devices --setup {target.name}` installs them)", tail(proc.stderr))
        result = parse_result(proc.stdout)
        if result is None:
            raise BenchError(model_path, f"on {target.name}: runner printed no JSON result", tail(proc.stderr))
        result["output_diff"], result["check_predictions"] = output_check.against_host(model_path, outputs, result, fp16, check)
    result["target"] = target.name
    return result


def run_table(target: SshTarget, options: SshOptions, models: Path, threads: int, warmup: int, runs: int, rounds: int,
              timeout_s: float = 3600) -> dict:
    """Run table_runner.py on the board on the models in `models` (an npz); its JSON result."""
    remote_dir = make_remote_dir(target, options)
    try:
        for file in (RUNNER, TABLE_RUNNER, models):
            copy_to(target, options, file, f"{remote_dir}/{file.name}")
        command = [*python_command(options), f"{remote_dir}/{TABLE_RUNNER.name}", f"{remote_dir}/{models.name}",
                   "--threads", str(threads), "--warmup", str(warmup), "--runs", str(runs), "--rounds", str(rounds)]
        proc = run_ssh(target, options, command, timeout_s=timeout_s)
    finally:
        _remove(target, options, remote_dir)
    result = parse_result(proc.stdout) if proc.returncode == 0 else None
    if result is None:
        raise BenchError(models, f"on {target.name}: table runner exited with {proc.returncode} (is {python_name(options)} "
                                 f"on the board with numpy and a TFLite runtime? `deploy devices --setup {target.name}` "
                                 f"installs them)", tail(proc.stderr))
    return result


def _remove(target: SshTarget, options: SshOptions, remote_dir: str) -> None:
    try:
        run_ssh(target, options, ["rm", "-rf", "--", remote_dir])
    except ToolError as e:  # keep the error that got us here; a leftover temp folder is only a warning
        log.warning("%s: could not remove %s: %s", target.name, remote_dir, e)


def _run_on_board(target: SshTarget, options: SshOptions, model_path: Path, runner_args: list[str], outputs: Path,
                  timeout_s: float, check: output_check.Check) -> subprocess.CompletedProcess:
    """Copy the runner, the artifact and the check's files into a fresh board folder, run, fetch the
    outputs, remove the folder."""
    remote_dir = make_remote_dir(target, options)
    try:
        runner, model = f"{remote_dir}/device_runner.py", f"{remote_dir}/{model_path.name}"
        copy_to(target, options, RUNNER, runner)
        for file in artifact_files(model_path):
            copy_to(target, options, file, f"{remote_dir}/{file.name}")
        remote_inputs, remote_probe = f"{remote_dir}/check_inputs.npz", f"{remote_dir}/probe{check.probe.path.suffix}"
        if check.inputs is not None:
            copy_to(target, options, check.inputs, remote_inputs)
        if check.probe.path != model_path:
            copy_to(target, options, check.probe.path, remote_probe)
        runner_args = [*runner_args, *check.runner_args(model_path, remote_inputs, remote_probe)]
        command = [*python_command(options), runner, model, *runner_args, "--outputs", f"{remote_dir}/outputs.npz"]
        proc = run_ssh(target, options, command, timeout_s=timeout_s)
        if proc.returncode == 0:
            copy_from(target, options, f"{remote_dir}/outputs.npz", outputs)
        return proc
    finally:
        _remove(target, options, remote_dir)


RUNTIME_PACKAGES = ("numpy", "ai-edge-litert", "tflite-runtime", "ncnn", "mnn", "onnxruntime")
_PROBE = f"""import importlib.metadata as m, platform
found = []
for name in {RUNTIME_PACKAGES!r}:
    try:
        found.append(name + " " + m.version(name))
    except m.PackageNotFoundError:
        pass
print(platform.machine(), platform.python_version(), *found, sep=";")
"""


def probe(target: SshTarget, options: SshOptions) -> str:
    """One line on what the board offers: its machine, Python and runtimes, or why it is not usable."""
    try:
        proc = run_ssh(target, options, [*python_command(options), "-c", _PROBE], timeout_s=60)
    except ToolError as e:
        return f"not reachable: {e}"
    if proc.returncode != 0:
        return f"reachable, but {python_name(options)} failed: {' '.join(proc.stderr.split())[:200]}"
    machine, python, *found = proc.stdout.strip().split(";")
    names = {item.split()[0] for item in found}
    if "numpy" not in names or not names & set(RUNTIME_PACKAGES) - {"numpy"}:
        return (f"reachable ({machine}, Python {python}), but no runtime ({', '.join(found) or 'no numpy'}): "
                f"run `deploy devices --setup {target.name}`")
    return f"ready ({machine}, Python {python}; {', '.join(found)})"


def _hint(stderr: str) -> str:
    if "Host key verification failed" in stderr or "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr:
        return "the board's host key is unknown or changed: add it with ssh-keyscan to your known_hosts (or --ssh-known-hosts FILE)"
    if "Permission denied" in stderr:
        return "key authentication failed: install your public key on the board, or pass --ssh-key"
    return "check that the board is up, the port is right and sshd is running"
