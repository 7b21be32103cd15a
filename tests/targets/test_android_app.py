"""`deploy bench --target adb --app` orchestration, against a scripted stand-in for adb.

No phone exists here: the stand-in plays the device side (adb devices, am start, the app writing
its record, cat, rm) so the command sequence, the run-id check and the errors are tested. What the
real app writes is tested through the Kotlin core (tests/report/test_ingest.py).
"""
import json
import os
import stat
import sys

import pytest

from pipeline.errors import ToolError, UserInputError
from pipeline.targets import android_app

FAKE_ADB = r'''#!PYTHON
import json, os, sys
state = os.environ["FAKE_ADB_STATE"]
args = sys.argv[1:]
with open(os.path.join(state, "calls.log"), "a") as log:
    log.write(" ".join(args) + "\n")
if args == ["devices"]:
    print("List of devices attached")
    for serial in os.environ["FAKE_ADB_DEVICES"].split():
        print(serial + "\tdevice")
    print("emulator-5556\toffline")
    sys.exit(0)
serial, command = args[1], args[3:]
if command[:2] == ["am", "start"]:
    if os.environ.get("FAKE_ADB_NOT_INSTALLED"):
        print("Error: Activity class {com.mobiledeploy.demo/.BenchmarkActivity} does not exist.")
        sys.exit(0)  # am start exits 0 on this error, like the real one
    extras = dict(zip(command[command.index("-n") + 3::3], command[command.index("-n") + 4::3]))
    record = json.load(open(os.environ["FAKE_ADB_RECORD"]))
    record.update(threads=int(extras["threads"]), warmup=int(extras["warmup"]))
    record["run_id"] = os.environ.get("FAKE_ADB_RUN_ID", extras["run_id"])
    name = extras["run_id"] + ".json"
    json.dump(record, open(os.path.join(state, name), "w"))
    print("Status: ok")
elif command[0] == "cat":
    path = os.path.join(state, os.path.basename(command[1]))
    if not os.path.exists(path):
        print("cat: " + command[1] + ": No such file or directory", file=sys.stderr)
        sys.exit(1)
    print(open(path).read())
elif command[:2] == ["rm", "-f"]:
    path = os.path.join(state, os.path.basename(command[2]))
    if os.path.exists(path):
        os.remove(path)
'''

RECORD = {
    "runner_version": 1, "target": "android-app", "artifact": "tiny_int8-ptq", "runtime": "litert",
    "runtime_version": "1.4.0", "delegate": "xnnpack", "threads": 0, "warmup": 0,
    "latency_ms": {"p50": 1.5, "p90": 1.7, "p99": 2.0, "mean": 1.55, "std": 0.1, "n": 20},
    "init_ms": 12.0, "peak_rss_mb": 80.0, "cpu": {"machine": "aarch64", "model": "Hardware X", "count": 8},
    "input": {"shape": [1, 16, 16, 3], "dtype": "int8"}, "device": "Google Pixel 7", "run_id": None,
}


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    bin_dir, state = tmp_path / "bin", tmp_path / "state"
    bin_dir.mkdir()
    state.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(FAKE_ADB.replace("PYTHON", sys.executable))
    adb.chmod(adb.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "record.json").write_text(json.dumps(RECORD))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    monkeypatch.setenv("FAKE_ADB_RECORD", str(tmp_path / "record.json"))
    monkeypatch.setenv("FAKE_ADB_DEVICES", "SERIAL1")
    return state


def test_runs_the_benchmark_screen_and_reads_this_runs_record(fake_adb):
    record = android_app.run_app_benchmark(None, threads=4, warmup=5, runs=20, poll_s=0.01)
    assert record["target"] == "android-app" and record["threads"] == 4 and record["warmup"] == 5
    calls = (fake_adb / "calls.log").read_text().splitlines()
    start = next(c for c in calls if " am start " in c)
    assert start.startswith("-s SERIAL1 shell am start -W -n com.mobiledeploy.demo/.BenchmarkActivity")
    assert "--ei threads 4 --ei warmup 5 --ei runs 20 --ez gpu false --es run_id " in start
    assert any(c.startswith("-s SERIAL1 shell rm -f /sdcard/Android/data/com.mobiledeploy.demo/files/benchmarks/") for c in calls)
    assert not list(fake_adb.glob("*.json"))  # the result file was removed from the device


def test_device_choice(fake_adb, monkeypatch):
    with pytest.raises(UserInputError, match=r"--serial NOPE: no such device attached \(adb devices: SERIAL1\)"):
        android_app.device_serial("NOPE")
    monkeypatch.setenv("FAKE_ADB_DEVICES", "A B")
    with pytest.raises(UserInputError, match="several devices attached \\(A, B\\): choose one with --serial"):
        android_app.device_serial(None)
    assert android_app.device_serial("B") == "B"
    monkeypatch.setenv("FAKE_ADB_DEVICES", "")
    with pytest.raises(UserInputError, match="no Android device attached"):
        android_app.device_serial(None)


def test_app_not_installed_is_named(fake_adb, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_NOT_INSTALLED", "1")
    with pytest.raises(ToolError, match="cannot start com.mobiledeploy.demo/.BenchmarkActivity .*install android-demo"):
        android_app.run_app_benchmark(None, 1, 1, 1, poll_s=0.01)


def test_a_stale_record_is_refused(fake_adb, monkeypatch):
    monkeypatch.setenv("FAKE_ADB_RUN_ID", "an-older-run")
    with pytest.raises(ToolError, match="run id 'an-older-run' is not this run's"):
        android_app.run_app_benchmark(None, 1, 1, 1, poll_s=0.01)


def test_no_adb_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match="adb not found: install it"):
        android_app.run_app_benchmark(None, 1, 1, 1)
