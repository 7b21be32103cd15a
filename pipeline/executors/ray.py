"""The Ray backend: each stage a Ray task on an existing cluster (`--executor ray`).

No shared filesystem is assumed. A stage's input folders travel to the worker as tar bytes,
the stage runs there through pipeline.runner.execute into a private cache, and its finished
output folder travels back; the driver unpacks it next to the cache and renames it in, so a
task lost half-way (its node died, its worker was killed) leaves nothing in the driver's cache,
and Ray runs it again elsewhere (max_retries).

Placement:
- stages that read the user's files (data, import: they have `external` content) and benchmarks
  on this machine's `host` or emulators run on the driver's node;
- a benchmark on a phone or board asks for the custom resource `device:<target>` (one unit:
  one measurement at a time per device), which the node it is plugged into advertises
  (`deploy worker --device ...` or `ray start --resources`); `device:host` on a node makes
  that node take the `host` benchmarks instead;
- training and QAT ask for a GPU when the cluster has one.
Every node needs the same mobile-deploy installed: a task checks its code digest against the
driver's and fails (ToolError) rather than run other code under the driver's cache keys.
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import tarfile
import tempfile
from concurrent.futures import Future
from pathlib import Path

from pipeline.errors import ToolError, UserInputError
from pipeline.executors.local_ray import RUNTIME_ENV, import_ray, start_local
from pipeline.resources import release_memory
from pipeline.plan import MACHINE, device_lease
from pipeline.runner import LINEAGE, cache_folder, code_digest, execute, load_output
from pipeline.stages.base import StageOutput

log = logging.getLogger("deploy")

RETRIES = 2


def pack(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(folder, arcname=".")
    return buffer.getvalue()


def unpack(data: bytes, folder: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(folder, filter="data")


def run_task(stage, config, inputs: dict, key: str, title: str, external: dict, extra: dict, code: str):
    """Runs on a Ray worker: unpack the inputs, run the stage, return (result, seconds, packed output, Ray node id)."""
    import platform

    mine = code_digest(type(stage).__module__, *stage.scripts)
    if mine != code:
        raise ToolError(f"{title}: this Ray node ({platform.node()}) has other mobile-deploy code than the driver; "
                        f"install the same version on every node")
    with tempfile.TemporaryDirectory(prefix="deploy-task-") as tmp:
        cache = Path(tmp) / "cache"
        local = {}
        for name, (stage_name, input_key, data) in inputs.items():
            folder = cache_folder(cache, stage_name, input_key)
            folder.mkdir(parents=True)
            unpack(data, folder)
            local[name] = load_output(stage_name, input_key, folder)
        import ray

        node = ray.get_runtime_context().get_node_id()
        try:
            output = execute(cache, stage, config, local, key, title, external, {**extra, "ray_node": node})
            return output.result, output.seconds, pack(output.dir), node
        finally:
            release_memory()


def connect(address: str | None):
    """ray.init on `address` (or RAY_ADDRESS), a user's cluster; without either, `start_local`.
    Returns (ray, the temp folder of a local instance deploy started, else None)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        return start_local()
    ray = import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True, runtime_env=RUNTIME_ENV)
        except ConnectionError as e:
            raise UserInputError(f"--ray-address {address}: no Ray cluster answers there ({e}); start one with `ray start --head`") from e
    return ray, None


class RayBackend:
    name = "ray"

    def __init__(self, cache: Path, address: str | None):
        self.cache = cache
        self.ray, self._local_temp = connect(address)
        self._task = self.ray.remote(run_task)
        self.driver_node = self.ray.get_runtime_context().get_node_id()
        self.resources = self.ray.cluster_resources()
        self.slots = self.cores = max(1, int(self.resources.get("CPU", 1)))
        self.tasks: list[dict] = []  # what ran where, for the record and the tests

    def lineage(self) -> dict:
        return {"executor": "ray"}

    def _options(self, node) -> dict:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        options: dict = {"max_retries": RETRIES, "retry_exceptions": False}
        wanted = {k: v for k, v in node.resources.items() if k != "GPU"}
        if "GPU" in node.resources and self.resources.get("GPU"):
            options["num_gpus"] = node.resources["GPU"]
        if node.lease == MACHINE and self.resources.get(device_lease("host")):
            wanted[device_lease("host")] = 1  # a node that advertises itself as the benchmark host
        elif node.lease == MACHINE or node.external:
            # This machine's files and this machine's CPU: the driver's node.
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(self.driver_node, soft=False)
        if wanted:
            missing = [k for k in wanted if not self.resources.get(k)]
            if missing:
                raise UserInputError(f"{node.title}: no Ray node advertises {', '.join(missing)} "
                                     f"(start the device's node with `deploy worker --device ...`)")
            options["resources"] = wanted
        return options

    def submit(self, node, inputs: dict[str, StageOutput], extra: dict) -> Future:
        packed = {name: (o.stage, o.key, pack(o.dir)) for name, o in inputs.items()}
        code = code_digest(type(node.stage).__module__, *node.stage.scripts)
        ref = self._task.options(**self._options(node)).remote(
            node.stage, node.config, packed, node.key, node.title, node.external, extra, code)
        done: Future = Future()
        ref.future().add_done_callback(lambda f: self._arrived(node, f, done))
        return done

    def _arrived(self, node, ray_future: Future, done: Future) -> None:
        """Unpack a finished task's folder beside the cache and rename it in (atomic, as on one machine)."""
        from ray.exceptions import RayTaskError

        try:
            result, seconds, data, where = ray_future.result()
            final = cache_folder(self.cache, node.stage.name, node.key)
            final.parent.mkdir(parents=True, exist_ok=True)
            work = final.parent / f".tmp-{node.key[:20]}-{os.getpid()}-ray"
            shutil.rmtree(work, ignore_errors=True)
            unpack(data, work)
            if not (work / LINEAGE).exists():
                raise ToolError(f"{node.title}: the Ray task returned an incomplete folder")
            shutil.rmtree(final, ignore_errors=True)
            os.rename(work, final)
            self.tasks.append({"stage": node.stage.name, "key": node.key, "node_id": where})
            done.set_result(StageOutput(node.stage.name, node.key, final, result, False, seconds))
        except RayTaskError as e:
            done.set_exception(e.as_instanceof_cause())
        except BaseException as e:  # noqa: BLE001  (worker or node lost after every retry, unpack failure)
            done.set_exception(e if isinstance(e, ToolError) else ToolError(f"{node.title}: Ray task failed: {type(e).__name__}: {e}"))

    def restart(self) -> None:
        pass  # Ray replaces lost workers itself

    def close(self, abort: bool = False) -> None:
        if self._local_temp is not None:  # deploy started it: nothing of it outlives the build
            self.ray.shutdown()
            shutil.rmtree(self._local_temp, ignore_errors=True)
        # a user's cluster belongs to whoever started it


def worker_command(address: str, devices: list[str], num_cpus: int | None, num_gpus: int | None, extra: list[str]) -> list[str]:
    """`ray start` joining `address` as a node that advertises these phones/boards (see `deploy worker`)."""
    import json
    import sys

    from pipeline.targets.spec import parse_targets

    resources = {device_lease(t.name): 1 for t in parse_targets(devices)} if devices else {}
    ray_bin = Path(sys.executable).with_name("ray")
    command = [str(ray_bin) if ray_bin.exists() else "ray", "start", "--address", address, "--block"]
    if resources:
        command += ["--resources", json.dumps(resources)]
    if num_cpus is not None:
        command += ["--num-cpus", str(num_cpus)]
    if num_gpus is not None:
        command += ["--num-gpus", str(num_gpus)]
    return command + extra
