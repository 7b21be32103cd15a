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

import contextlib
import io
import logging
import os
import shutil
import tarfile
import tempfile
from concurrent.futures import Future
from pathlib import Path

from pipeline import no_telemetry
from pipeline.errors import ToolError, UserInputError
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


# What deploy sets for the Ray processes it starts itself (a local instance; a user's cluster is
# theirs to configure, docs/scale-out.md). Ray has no authentication of its own by default, so:
LOCAL_RAY_ENVIRONMENT = {
    # Ray's switch for a one-machine Ray (as on macOS and Windows): the node address is 127.0.0.1,
    # so GCS, raylet and workers listen on loopback only, and no UDP probe of 8.8.8.8 finds a
    # "reachable" address. Read when `ray` is imported.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray's default; kept so that the proxy below can never reach Ray's own gRPC traffic.
    "RAY_grpc_enable_http_proxy": "0",
    # Ray's dashboard process asks the cloud metadata addresses (169.254.169.254 and, through DNS,
    # metadata.google.internal) when it starts, usage statistics or not (usage_stats_head.run ->
    # get_cluster_config_to_report), with `requests`. Ray has no switch for it: a proxy of a scheme
    # nothing speaks makes every HTTP request outside loopback fail before a socket opens.
    **{name: "no-network://deploy-local-ray" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")},
    **{name: "127.0.0.1,localhost,::1" for name in ("no_proxy", "NO_PROXY")},
}
# Usage statistics: off unless the user turned them on.
USAGE_STATS = "RAY_USAGE_STATS_ENABLED"
# Every task's worker, on any node: the libraries a stage calls report to no one.
_RUNTIME_ENV = {"env_vars": no_telemetry.ENVIRONMENT}
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # Ray would take 30 % of the memory (14 GB of these 24 GB machines)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserInputError("--executor ray: Ray is not installed; pip install 'mobile-deploy[ray]'") from None
    return ray


def connect(address: str | None):
    """ray.init on `address` (or RAY_ADDRESS), a user's cluster; without either, `start_local`.
    Returns (ray, the temp folder of a local instance deploy started, else None)."""
    address = address or os.environ.get("RAY_ADDRESS")
    if not address:
        return start_local()
    ray = _import_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=True, runtime_env=_RUNTIME_ENV)
        except ConnectionError as e:
            raise UserInputError(f"--ray-address {address}: no Ray cluster answers there ({e}); start one with `ray start --head`") from e
    return ray, None


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """os.environ with these values while Ray starts its processes (they inherit it), restored after."""
    before = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_local():
    """A fresh one-machine Ray for this build: never a cluster some earlier `ray start` left in
    /tmp/ray/ray_current_cluster (address "local"), listening on loopback only, with its session
    files in a temp folder of its own, no usage statistics unless the user asked, no cloud probes."""
    environment = {USAGE_STATS: os.environ.get(USAGE_STATS, "0"), **LOCAL_RAY_ENVIRONMENT}
    with _environment(environment):
        ray = _import_ray()
        if ray.is_initialized():
            return ray, None
        temp = tempfile.mkdtemp(prefix="deploy-ray-")  # short: Ray's socket paths must stay under 108 bytes
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, _temp_dir=temp, runtime_env=_RUNTIME_ENV)
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if addresses != {"127.0.0.1"}:  # Ray was imported before the switch above could apply
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        raise ToolError(f"the local Ray instance would listen on {', '.join(sorted(addresses))}, not only on loopback: "
                        f"Ray was imported before deploy started it; run `deploy build --executor ray` in a fresh process")
    return ray, temp


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
