"""A build talks to nothing but this machine: every socket call of a real build, traced with strace
across all its processes (workers, runners, converters, Ray's daemons), goes to loopback or to a
Unix socket. A local Ray started by deploy also listens on loopback only, and starts fresh even
where an earlier `ray start` left its address file behind."""
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

STRACE = shutil.which("strace")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(STRACE is None, reason="strace not installed: run scripts/setup-system.sh")]

# connect/bind/sendto/sendmsg with an internet address, as strace prints them.
INET_CALL = re.compile(r"^(?P<pid>\d+)\s+(?P<call>connect|bind|sendto|sendmsg)\(.*?sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\)"
                       r".*?(?:inet_addr\(\"(?P<v4>[^\"]+)\"\)|inet_pton\(AF_INET6, \"(?P<v6>[^\"]+)\")")
SMALL_BUILD = ["--precisions", "fp32,int8-ptq", "--threads", "1", "--runs", "3", "--warmup", "1",
               "--calibration-images", "10", "--val-fraction", "0.25"]


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def inet_calls(trace: str) -> list[tuple[str, str, int]]:
    """(call, address, port) of every internet-address socket call in an `strace -f` log."""
    calls = []
    for line in trace.splitlines():
        m = INET_CALL.match(line)
        if m:
            calls.append((m["call"], m["v4"] or m["v6"], int(m["port"])))
    return calls


# execve("/path/to/program", ["argv0", "argv1", ...
EXECVE = re.compile(r'^\d+\s+execve\("(?P<program>[^"]+)", \[(?P<argv>[^\]]*)')


def executed(trace: str) -> list[str]:
    """Every program an `strace -f` log saw started, with its arguments, as one line each."""
    return [f"{m['program']} {m['argv']}" for m in map(EXECVE.match, trace.splitlines()) if m]


def traced_deploy(tmp_path: Path, *args, env: dict | None = None) -> tuple[subprocess.CompletedProcess, list]:
    result, trace = traced_deploy_log(tmp_path, *args, env=env)
    return result, inet_calls(trace)


def traced_deploy_log(tmp_path: Path, *args, env: dict | None = None) -> tuple[subprocess.CompletedProcess, str]:
    log = tmp_path / "strace.log"
    command = [STRACE, "-f", "-qq", "-e", "trace=connect,bind,sendto,sendmsg,execve", "-o", str(log),
               sys.executable, "-m", "pipeline.cli", *map(str, args)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1200, env={**os.environ, **(env or {})})
    return result, log.read_text()


def test_the_parser_sees_what_leaves_the_machine():
    trace = "\n".join([
        '7 connect(16, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.255.255.53")}, 16) = 0',
        '8 bind(44, {sa_family=AF_INET6, sin6_port=htons(0), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '9 connect(3, {sa_family=AF_INET6, sin6_port=htons(41), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6_addr), sin6_scope_id=0}, 28) = 0',
        '9 connect(4, {sa_family=AF_UNIX, sun_path="/tmp/x"}, 110) = 0',
    ])
    calls = inet_calls(trace)
    assert calls == [("connect", "10.255.255.53", 53), ("bind", "::", 0), ("connect", "::ffff:127.0.0.1", 41)]
    assert [c for c in calls if not _loopback(c[1])] == calls[:2]
    started = executed('12 execve("/usr/bin/sh", ["sh", "-c", "pip install -U aliyun-log-python"...], 0x7ff /* 30 vars */) = 0\n'
                       '13 +++ exited with 0 +++')
    assert started == ['/usr/bin/sh "sh", "-c", "pip install -U aliyun-log-python"...']


def test_a_local_build_makes_no_network_call_and_installs_nothing(trained_model_file, image_folder, tmp_path):
    """MNN's console scripts would `pip install` a logging SDK and send usage records (converters/mnn.py)."""
    result, trace = traced_deploy_log(tmp_path, "build", "--model", trained_model_file, "--data", image_folder,
                                      "--out", tmp_path / "out", "--formats", "tflite,onnx,ncnn,mnn", *SMALL_BUILD)
    assert result.returncode == 0, result.stderr[-2000:]
    calls = inet_calls(trace)
    assert [c for c in calls if not _loopback(c[1])] == []  # onnxruntime's telemetry asked DNS before no_telemetry
    programs = executed(trace)
    assert any("_tools" in p and "mnnquant" in p for p in programs)  # MNN's tools did run, in their child
    assert [p for p in programs if "pip" in p.split()[0].rsplit("/", 1)[-1] or "pip install" in p] == []


def test_a_local_ray_build_starts_fresh_and_stays_on_loopback(trained_model_file, image_folder, tmp_path):
    pytest.importorskip("ray")
    token_file = Path.home() / ".ray" / "auth_token"
    had_token = token_file.exists()
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt"))  # short: Ray's socket paths
    try:
        # What a `ray start` killed by process group leaves: the address of a cluster that is gone.
        (ray_tmp / "ray_current_cluster").write_text("127.0.0.1:9\n")
        result, calls = traced_deploy(tmp_path, "build", "--model", trained_model_file, "--data", image_folder,
                                      "--out", tmp_path / "out", "--formats", "tflite", "--executor", "ray", *SMALL_BUILD,
                                      env={"RAY_TMPDIR": str(ray_tmp), "RAY_ADDRESS": ""})
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "out" / "report.json").is_file()
    assert calls, "Ray's processes talk over TCP: an empty trace means strace saw nothing"
    assert [c for c in calls if not _loopback(c[1])] == []  # no 0.0.0.0/:: listener, no DNS, no metadata address
    assert not list(Path(tempfile.gettempdir()).glob("deploy-ray-*"))  # its session folder went with it
    assert token_file.exists() == had_token  # its token lived in its environment, not in the user's home
