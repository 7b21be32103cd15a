"""The emulated arm64 board (QEMU full-system; scripts/setup-arm-board.sh builds its image) as an ssh target.

One board boots for the module (about a minute), starts with no numpy and no runtime, is provisioned
by `deploy devices --setup` with its network restricted to the host's forwarded ssh port, then runs
builds' benchmarks and ARM-kernel accuracy on its own aarch64 kernels, and is cut off and killed mid-build.
Marked `board`: `pytest -m 'not board'` skips these locally.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import cli
from pipeline.targets import qemu_board

pytestmark = [pytest.mark.board, pytest.mark.slow]
RUNTIMES = ("numpy", "ai-edge-litert", "ncnn", "mnn", "onnxruntime")


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    if not qemu_board.is_set_up():
        pytest.fail(f"no board image in {qemu_board.board_home()}: run scripts/setup-arm-board.sh")
    started = qemu_board.start(tmp_path_factory.mktemp("board"))
    yield started
    last = qemu_board.attach(started.folder)  # a test may have killed it and started it again
    qemu_board.stop(last)
    assert not last.running()


def _flags(board) -> list[str]:
    return ["--ssh-key", str(board.key), "--ssh-known-hosts", str(board.known_hosts)]


def _row(output: str, name: str) -> str:
    return next(line for line in output.splitlines() if line.startswith(name + " "))


@pytest.fixture(scope="module")
def provisioned(board):
    """`deploy devices` before and after `deploy devices --setup` (its output)."""
    before = CliRunner().invoke(cli, ["devices", "--board", board.target.name, *_flags(board)])
    setup = CliRunner().invoke(cli, ["devices", "--setup", board.target.name, *_flags(board)])
    assert setup.exit_code == 0, setup.output
    return before.output, setup.output


def test_the_board_is_an_arm64_linux_system_without_internet(board):
    proc = qemu_board.ssh_command(board, ["sh", "-c", "uname -m; uname -r; grep -m1 'CPU part' /proc/cpuinfo; "
                                                      "tr -d '\\0' < /proc/device-tree/compatible"])
    machine, kernel, part, compatible = proc.stdout.splitlines()
    assert (machine, part.split(":")[1].strip()) == ("aarch64", "0xd0b")  # a Cortex-A76
    assert kernel.startswith("6.") and compatible == "linux,dummy-virt"
    # restrict=on: nothing outside the board answers (PyPI's address, by number: no DNS either).
    out = qemu_board.ssh_command(board, ["python3", "-c", "import socket; socket.create_connection(('151.101.0.223', 443), 5)"])
    assert out.returncode != 0 and ("unreachable" in out.stderr or "timed out" in out.stderr), out.stderr


def test_setup_installs_the_hosts_runtime_versions_offline(board, provisioned):
    import importlib.metadata

    before, setup = provisioned
    assert "no runtime" in _row(before, board.target.name) and "deploy devices --setup" in before
    row = _row(setup, board.target.name)
    assert "ready (aarch64, Python 3.11" in row, row
    for name in RUNTIMES:  # the host's versions, so board and host outputs compare
        assert f"{name} {importlib.metadata.version(name)}" in row, row
    # The default board Python is now the provisioned environment.
    proc = qemu_board.ssh_command(board, [".mobile-deploy/venv/bin/python", "-c", "import ncnn, MNN, numpy, onnxruntime"])
    assert proc.returncode == 0, proc.stderr
    assert qemu_board.ssh_command(board, ["test", "-e", ".mobile-deploy/venv.partial"]).returncode == 1


def _build_command(board, model: Path, data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", "build", "--model", str(model), "--data", str(data), "--out", str(out),
            "--formats", "tflite,ncnn,onnx", "--precisions", "fp32,int8-ptq", "--ncnn-precisions", "fp32,int8",
            "--targets", f"host,{board.target.name}", "--threads", "1", "--warmup", "1", "--runs", "3",
            "--arm-val-images", "12", "--val-fraction", "0.25", *_flags(board)]


def test_a_latency_table_is_refused_on_the_emulated_board_before_any_conversion(board, provisioned, tmp_path, monkeypatch):
    from pipeline.compress import filter_pruning
    from pipeline.errors import ToolError
    from pipeline.stages.prune_choice import PruneChoiceConfig, measure
    from pipeline.targets.ssh import SshOptions
    from tests.compress.tiny import pointwise_model

    monkeypatch.setenv("DEPLOY_LATENCY_CACHE", str(tmp_path / "cache"))
    config = PruneChoiceConfig(speedup=1.5, target=board.target.name, target_identity=board.target.name,
                               ssh=SshOptions(key=board.key, known_hosts=board.known_hosts))
    with pytest.raises(ToolError, match=r"the board is emulated \(QEMU's virt machine\): its timing means nothing"):
        measure(filter_pruning.read_graph(pointwise_model(size=16)), config, tmp_path)
    assert not (tmp_path / "cache").exists() and not list(tmp_path.glob("*.npz"))  # nothing timed, nothing kept


def test_build_benchmarks_and_scores_every_artifact_on_the_board(board, provisioned, trained_model_file, image_folder, tmp_path):
    from pipeline import report as report_files

    out = tmp_path / "run"
    proc = subprocess.run(_build_command(board, trained_model_file, image_folder, out), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = report_files.load(out)
    assert not report.failures and len(report.artifacts) == 5
    for artifact in report.artifacts:
        on_board = [b for b in artifact.benchmarks if b.target == board.target.name]
        assert len(on_board) == 1, artifact.id
        bench = on_board[0]
        # Timed on the board's own aarch64 Python and wheels, and marked emulated (QEMU's virt board).
        assert bench.emulated and "aarch64" in bench.cpu and "board linux,dummy-virt" in bench.cpu, bench.cpu
        diff = bench.output_diff
        assert (diff.compared, diff.inputs) == ("logits", "validation") and diff.top1_agreement == 1.0, artifact.id
        accuracy = [t for t in artifact.target_accuracy if t.target == board.target.name]
        assert len(accuracy) == 1 and accuracy[0].n == min(12, report.data.val), artifact.id
        assert accuracy[0].host_agreement == 1.0 and accuracy[0].top1 == accuracy[0].host_top1, artifact.id
    markdown = (out / "report.md").read_text()
    assert f"{board.target.name} (emulated)" in markdown  # every board row says its timing is emulated
    assert f"on {board.target.name} (emulated: timings prove it runs, not device speed)" in markdown


def _finished_on(out: Path, target: str) -> list[Path]:
    return [lineage for lineage in (out / "cache" / "bench").glob("*/lineage.json")
            if target in json.loads(lineage.read_text()).get("label", "")]


def _build_and_fail_the_board(command: list[str], out: Path, target: str, fault) -> str:
    """Run the build, call `fault()` once one more benchmark finished on the board, and return the
    build's stderr after checking what a failed board costs: its own records only, exit 3."""
    from pipeline import report as report_files

    done_before = len(_finished_on(out, target))
    build = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 900
        while len(_finished_on(out, target)) == done_before:
            assert build.poll() is None and time.monotonic() < deadline, "no benchmark finished on the board"
            time.sleep(0.5)
        fault()
        _, stderr = build.communicate(timeout=1800)
    finally:
        build.kill()
    assert build.returncode == 3, stderr[-3000:]
    last_line = stderr.strip().splitlines()[-1]
    assert "failed" in last_line and target in last_line, last_line
    report = report_files.load(out)
    assert report.failures and all(f.target == target and target in f.error for f in report.failures), report.failures
    for artifact in report.artifacts:  # the host finished everything
        assert any(b.target == "host" for b in artifact.benchmarks), artifact.id
    return stderr


def test_a_board_cut_off_or_killed_mid_build_costs_its_records_only_and_a_rerun_completes(
        board, provisioned, trained_model_file, image_folder, tmp_path):
    from pipeline import report as report_files

    out, name = tmp_path / "run", board.target.name
    command = _build_command(board, trained_model_file, image_folder, out)
    # The cable pulled after a benchmark finished on the board; plugged back once the build ended.
    _build_and_fail_the_board(command, out, name, lambda: board.set_network(False))
    board.set_network(True)
    # The rerun loses the board again, to a power cut this time (QEMU killed); it boots again on the same port.
    _build_and_fail_the_board(command, out, name, lambda: os.kill(board.pid, signal.SIGKILL))
    restarted = qemu_board.start(board.folder)
    assert restarted.target == board.target

    first_done = _finished_on(out, name)
    mtimes = {path: path.stat().st_mtime for path in first_done}
    proc = subprocess.run(command, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = report_files.load(out)
    assert not report.failures
    for artifact in report.artifacts:
        assert {b.target for b in artifact.benchmarks} == {"host", name}, artifact.id
        assert [t.target for t in artifact.target_accuracy] == [name], artifact.id
    assert {path: path.stat().st_mtime for path in first_done} == mtimes  # what the board had finished was reused
