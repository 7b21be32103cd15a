"""--executor ray on a real two-node Ray cluster on loopback, started here and ended by pid (never `ray stop`).

The head offers one CPU; the second node offers one CPU and the custom resource `device:host`: a fake
device resource that maps to the `host` target, so the host benchmarks must run on that node.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from pipeline.build import Build  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.executors.ray import RayBackend  # noqa: E402
from pipeline.executors.scheduler import Scheduler  # noqa: E402
from pipeline.plan import Plan  # noqa: E402
from pipeline.runner import Runner  # noqa: E402
from tests.toy_stages import DieOnceConfig, DieOnceStage, SleepConfig, SleepStage  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
STORE = str(100 * 2**20)  # object store bytes per node
SETTINGS = {"calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
            "formats": ["tflite", "onnx"], "precisions": ["fp32", "int8-ptq"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(args: list[str], log: Path, ray_tmp: str) -> subprocess.Popen:
    return _spawn([RAY, "start", "--block", "--disable-usage-stats", *args], log, ray_tmp)


def _spawn(command: list[str], log: Path, ray_tmp: str) -> subprocess.Popen:
    # RAY_TMPDIR: the session and the ray_current_cluster file `ray start` writes stay in this test's
    # folder; in /tmp/ray the file would outlive the cluster and mislead the next `ray.init()`.
    # RAY_AUTH_MODE: Ray 2.60 turns token mode on for `ray start` when ~/.ray/auth_token exists (any
    # earlier ray.init() on the machine writes one); this test's client connects without a token.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_USAGE_STATS_ENABLED": "0", "RAY_TMPDIR": ray_tmp,
           "RAY_AUTH_MODE": "disabled"}
    # Its own process group: ending the group ends the raylet and workers this node started, no one else's.
    return subprocess.Popen(command, env=env, cwd=ROOT,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray")
    ray_tmp = tempfile.mkdtemp(prefix="rt")  # short: Ray's socket paths must stay under 108 bytes
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _start(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                   "--object-store-memory", STORE, "--include-dashboard=false"], tmp / "head.log", ray_tmp)
    nodes = [head]
    try:
        time.sleep(5)
        nodes.append(_start(["--address", address, "--node-ip-address", "127.0.0.1", "--num-cpus", "1",
                             "--object-store-memory", STORE, "--resources", json.dumps({"device:host": 1})], tmp / "node.log", ray_tmp))
        ray.init(address=address, logging_level="WARNING")
        deadline = time.time() + 120
        while len([n for n in ray.nodes() if n["Alive"]]) < 2:
            assert time.time() < deadline, (tmp / "node.log").read_text()[-2000:]
            time.sleep(1)
        device_node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and "device:host" in n["Resources"])
        yield address, device_node, ray_tmp
    finally:
        ray.shutdown()
        for process in reversed(nodes):
            os.killpg(process.pid, signal.SIGTERM)
        for process in nodes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _build(model, data, out, **extra):
    config = load_config(overrides={"models": [str(model)], "data": str(data), "out": out, **SETTINGS, **extra})
    run = Build(config, "test")
    try:
        return run, run.run()
    finally:
        run.close()


@pytest.mark.slow
def test_a_build_on_ray_matches_the_local_build(cluster, trained_model_file, image_folder, tmp_path):
    address, device_node, _ = cluster
    local_run, local = _build(trained_model_file, image_folder, tmp_path / "local", jobs=1)
    run, report = _build(trained_model_file, image_folder, tmp_path / "ray", executor="ray", ray_address=address)

    tasks = run.executor.backend.tasks
    ran = {(t["stage"], t["key"]) for t in tasks}
    every = {(n.stage.name, n.key) for n in run.plan()[0].nodes}
    assert ran == every  # every stage of the plan ran as a Ray task (the cache was empty)
    benches = [t for t in tasks if t["stage"] == "bench"]
    assert benches and all(t["node_id"] == device_node for t in benches)  # where the device is
    assert {t["node_id"] for t in tasks} - {device_node}  # other stages ran elsewhere too

    def keys(out):
        return sorted(p.relative_to(out) for p in out.glob("cache/*/*") if not p.name.startswith("."))

    assert keys(tmp_path / "ray") == keys(tmp_path / "local")
    assert [(a.format, a.precision) for a in report.artifacts] == [(a.format, a.precision) for a in local.artifacts]
    # Deterministic conversions of an imported model give the same bytes wherever they ran. (The
    # ONNX export does not: tf2onnx writes the folder it ran in into the file.)
    for a, b in zip(report.artifacts, local.artifacts):
        if a.format == "tflite":
            assert (tmp_path / "ray" / a.path).read_bytes() == (tmp_path / "local" / b.path).read_bytes()
    lineage = json.loads(next((tmp_path / "ray").glob("cache/bench/*/lineage.json")).read_text())
    assert lineage["executor"] == "ray" and lineage["ray_node"] == device_node and lineage["isolation"].startswith("alone")


@pytest.mark.slow
def test_a_worker_killed_mid_task_leaves_nothing_in_the_cache_and_the_build_completes(cluster, tmp_path):
    address, _, _ = cluster
    plan = Plan()
    doomed = plan.node(DieOnceStage(), DieOnceConfig(marker=str(tmp_path / "attempted")))
    after = plan.node(SleepStage(), SleepConfig(value=2), {"x": doomed})
    runner = Runner(tmp_path / "out")
    scheduler = Scheduler(runner, RayBackend(runner.cache, address))
    outcomes = scheduler.run(plan.nodes)
    killed_pid = int((tmp_path / "attempted").read_text())
    assert outcomes[doomed.key].result["pid"] != killed_pid  # Ray ran it again in another worker
    assert outcomes[after.key].path("value.txt").read_text() == "3"
    assert outcomes[doomed.key].path("out.bin").read_bytes() == b"whole"
    assert not list((tmp_path / "out" / "cache").glob("*/.tmp-*"))  # nothing half-written on the driver's side


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.slow
def test_deploy_worker_advertises_its_board_and_the_boards_work_runs_on_that_node(cluster, sshd, trained_model_file,
                                                                                  image_folder, tmp_path):
    address, _, ray_tmp = cluster
    board, options = sshd  # the loopback sshd stands for a board attached to the worker
    worker = _spawn([sys.executable, "-m", "pipeline.cli", "worker", "--address", address, "--device", board.name,
                     "--num-cpus", "1", "--node-ip-address", "127.0.0.1", "--object-store-memory", STORE],
                    tmp_path / "worker.log", ray_tmp)
    try:
        resource = f"device:{board.name}"
        deadline = time.time() + 120
        while not any(n["Alive"] and resource in n["Resources"] for n in ray.nodes()):
            assert worker.poll() is None and time.time() < deadline, (tmp_path / "worker.log").read_text()[-2000:]
            time.sleep(1)
        board_node = next(n["NodeID"] for n in ray.nodes() if n["Alive"] and resource in n["Resources"])
        run, report = _build(trained_model_file, image_folder, tmp_path / "ray", executor="ray", ray_address=address,
                             targets=[board.name], precisions=["fp32"], formats=["tflite"], arm_val_images=8,
                             ssh_python=options.python, ssh_key=options.key, ssh_known_hosts=options.known_hosts)
        assert not report.failures
        on_board = [t for t in run.executor.backend.tasks if t["stage"] in ("bench", "verify_target")]
        assert {t["stage"] for t in on_board} == {"bench", "verify_target"}
        assert all(t["node_id"] == board_node for t in on_board)  # where the board is attached
        artifact, = report.artifacts
        assert [b.target for b in artifact.benchmarks] == [board.name]
        assert [t.target for t in artifact.target_accuracy] == [board.name]
    finally:
        _stop(worker)
