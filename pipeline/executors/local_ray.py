"""The one-machine Ray deploy starts for `--executor ray` without an address: fresh, on loopback
only, reporting to no one (docs/scale-out.md; tests/test_network.py traces it). A user's cluster is
theirs to configure: executors/ray.py only connects to it."""
from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import tempfile

from pipeline import no_telemetry
from pipeline.errors import ToolError, UserInputError

# What deploy sets for the Ray processes it starts itself. Ray has no authentication of its own by
# default (the ShadowRay reports, CVE-2023-48022), so:
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
RUNTIME_ENV = {"env_vars": no_telemetry.ENVIRONMENT}
LOCAL_OBJECT_STORE_BYTES = 512 * 2**20  # Ray would take 30 % of the memory (14 GB of these 24 GB machines)


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserInputError("--executor ray: Ray is not installed; pip install 'mobile-deploy[ray]'") from None
    return ray


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
    /tmp/ray/ray_current_cluster (address "local"), listening on loopback only, token authentication
    with a token of its own, its session files in a temp folder of its own (nothing in the user's
    home), no usage statistics unless the user asked, no cloud probes."""
    environment = {USAGE_STATS: os.environ.get(USAGE_STATS, "0"), **LOCAL_RAY_ENVIRONMENT,
                   # Ray 2.60's token authentication, with a token of this instance's own given in the
                   # environment: left to itself, ray.init() writes one into ~/.ray/auth_token, and every
                   # later `ray start` on the machine then turns token mode on.
                   "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    with _environment(environment):
        ray = import_ray()
        if ray.is_initialized():
            return ray, None
        temp = tempfile.mkdtemp(prefix="deploy-ray-")  # short: Ray's socket paths must stay under 108 bytes
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, log_to_driver=True,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, _temp_dir=temp, runtime_env=RUNTIME_ENV)
    addresses = {node["NodeManagerAddress"] for node in ray.nodes()}
    if addresses != {"127.0.0.1"}:  # Ray was imported before the switch above could apply
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
        raise ToolError(f"the local Ray instance would listen on {', '.join(sorted(addresses))}, not only on loopback: "
                        f"Ray was imported before deploy started it; run `deploy build --executor ray` in a fresh process")
    return ray, temp
