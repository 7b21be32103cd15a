"""`deploy bench --target adb --app`: the adb side, with Debian's real adb (1.0.41) and no phone.

What needs a phone (am start, the app benchmarking and writing its record, cat, rm) cannot run
here. Everything else does: the real adb server lists no device and every way the command can
stop before the phone is checked through it; the argument lists, `adb devices -l` parsing,
`am start` output checks and the result record checks are pure functions, tested on output
recorded from adb 1.0.41 and on the formats adb and Android document.
"""
import json
import os
import re
import shlex
import shutil
import socket

import pytest

from pipeline.errors import ToolError, UserInputError
from pipeline.targets import android_app
from pipeline.targets.android_app import Device
from tests.test_cli import assert_one_line_error, deploy

# `adb devices -l` of Debian's adb 1.0.41 with nothing attached (its server's start-up lines go to stderr).
ADB_1_0_41_NO_DEVICES = "List of devices attached\n\n"

# Long listings as adb prints them (`%-22s %s`, then key:value details): a current emulator (the
# line Android's documentation shows), an older adb without transport_id, the states a phone can be in.
ADB_DEVICES_L = """List of devices attached
emulator-5554          device product:sdk_gphone64_x86_64 model:sdk_gphone64_x86_64 device:emu64xa transport_id:1
BY900FBH2G             device usb:1-6 product:D6643 model:D6643 device:D6643
0123456789ABCDEF       unauthorized usb:1-1 transport_id:2
192.168.1.20:5555      offline transport_id:3
R58M12345AB            no permissions (missing udev rules? user is in the plugdev group); see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:4
my phone               device transport_id:5

"""

WEIRD_SERIAL = "my phone; touch $(echo pwned) `id` 'x\""


# Pure parts -------------------------------------------------------------------------------------

def test_parse_devices_on_recorded_and_documented_listings():
    assert android_app.parse_devices(ADB_1_0_41_NO_DEVICES) == []
    devices = android_app.parse_devices(ADB_DEVICES_L)
    assert devices[0] == Device("emulator-5554", "device", {
        "product": "sdk_gphone64_x86_64", "model": "sdk_gphone64_x86_64", "device": "emu64xa", "transport_id": "1"})
    assert devices[1] == Device("BY900FBH2G", "device", {"usb": "1-6", "product": "D6643", "model": "D6643", "device": "D6643"})
    assert [(d.serial, d.state) for d in devices[2:]] == [
        ("0123456789ABCDEF", "unauthorized"),
        ("192.168.1.20:5555", "offline"),
        ("R58M12345AB", "no permissions (missing udev rules? user is in the plugdev group); "
                        "see [http://developer.android.com/tools/device.html]"),
        ("my phone", "device"),
    ]
    assert devices[4].details == {"usb": "1-2", "transport_id": "4"}
    # The short listing (`adb devices`) is serial TAB state.
    assert android_app.parse_devices("List of devices attached\nmy phone\tdevice\nX\toffline\n") == [
        Device("my phone", "device"), Device("X", "offline")]


def test_output_without_a_device_list_is_a_tool_error():
    with pytest.raises(ToolError, match=r"gave no device list: adb server version \(40\) doesn't match this client"):
        android_app.parse_devices("adb server version (40) doesn't match this client (41); killing...\n")


def test_choose_serial():
    devices = android_app.parse_devices(ADB_DEVICES_L)
    assert android_app.choose_serial(devices, "my phone") == "my phone"
    with pytest.raises(UserInputError, match=r"several devices attached \(emulator-5554, BY900FBH2G, my phone\): choose one with --serial"):
        android_app.choose_serial(devices, None)
    assert android_app.choose_serial(devices[1:3], None) == "BY900FBH2G"  # the only ready one
    with pytest.raises(ToolError, match="--serial 0123456789ABCDEF: device is unauthorized; unlock the phone and accept"):
        android_app.choose_serial(devices, "0123456789ABCDEF")
    with pytest.raises(ToolError, match="--serial R58M12345AB: device is no permissions .* fix the USB permissions"):
        android_app.choose_serial(devices, "R58M12345AB")
    with pytest.raises(ToolError, match=r"--serial NOPE: no such device attached \(adb devices: emulator-5554 \(device\), "):
        android_app.choose_serial(devices, "NOPE")
    with pytest.raises(ToolError, match=r"no Android device ready \(adb devices: 0123456789ABCDEF \(unauthorized\)\)"):
        android_app.choose_serial(devices[2:3], None)


def test_argument_lists_keep_every_value_one_argv_item():
    assert android_app.adb_args("/usr/bin/adb", WEIRD_SERIAL, "devices") == ["/usr/bin/adb", "-s", WEIRD_SERIAL, "devices"]
    start = android_app.start_args("0f" * 16, threads=4, warmup=5, runs=20, gpu=True)
    assert start == ["shell", "am start -W -n com.mobiledeploy.demo/.BenchmarkActivity --ei threads 4 --ei warmup 5 "
                              "--ei runs 20 --ez gpu true --es run_id " + "0f" * 16]
    # The device's shell parses the one shell string: each word must come back unchanged.
    words = ["cat", "/sdcard/a b.json", WEIRD_SERIAL, ""]
    [shell, command] = android_app.shell_args(*words)
    assert shell == "shell" and shlex.split(command) == words


AM_START_OK = """Starting: Intent { cmp=com.mobiledeploy.demo/.BenchmarkActivity (has extras) }
Status: ok
LaunchState: COLD
Activity: com.mobiledeploy.demo/.BenchmarkActivity
TotalTime: 412
WaitTime: 415
Complete
"""
AM_START_NOT_INSTALLED = """Starting: Intent { cmp=com.mobiledeploy.demo/.BenchmarkActivity (has extras) }
Error type 3
Error: Activity class {com.mobiledeploy.demo/.BenchmarkActivity} does not exist.
"""


def _proc(stdout="", stderr="", code=0):
    import subprocess

    return subprocess.CompletedProcess([], code, stdout, stderr)


def test_am_start_output_is_read_not_its_exit_code():
    android_app.check_started("S", _proc(AM_START_OK))
    with pytest.raises(ToolError, match=r"S: cannot start .*Error: Activity class .* does not exist\.\); build and install android-demo"):
        android_app.check_started("S", _proc(AM_START_NOT_INSTALLED))  # exit 0, like the real am
    with pytest.raises(ToolError, match="S: cannot start .*error: device offline"):
        android_app.check_started("S", _proc(stderr="error: device offline\n", code=1))


RECORD = {
    "runner_version": 1, "target": "android-app", "artifact": "tiny_int8-ptq", "runtime": "litert",
    "runtime_version": "1.4.0", "delegate": "xnnpack", "threads": 4, "warmup": 5,
    "latency_ms": {"p50": 1.5, "p90": 1.7, "p99": 2.0, "mean": 1.55, "std": 0.1, "n": 20},
    "init_ms": 12.0, "peak_rss_mb": 80.0, "cpu": {"machine": "aarch64", "model": "Hardware X", "count": 8},
    "input": {"shape": [1, 16, 16, 3], "dtype": "int8"}, "device": "Google Pixel 7", "run_id": "R1",
}


def test_result_record_checks():
    assert android_app.check_record(json.dumps(RECORD), "R1", "S:f") == RECORD
    assert android_app.check_record(json.dumps({**RECORD, "target": "x"}), "R1", "S:f")["target"] == "android-app"
    cases = {
        json.dumps({**RECORD, "run_id": "R0"}): "S:f: run id 'R0' is not this run's (R1): a stale result",
        json.dumps({"run_id": "R1", "error": "IOException: no model.tflite"}): "the app's benchmark failed: IOException: no model.tflite",
        json.dumps({k: v for k, v in RECORD.items() if k not in ("cpu", "artifact")}): "the app's record lacks artifact, cpu",
        '{"run_id": "R1", ': "S:f: not JSON",
        "[1]": "expected one JSON object",
    }
    for text, message in cases.items():
        with pytest.raises(ToolError, match=re.escape(message)):
            android_app.check_record(text, "R1", "S:f")


# The real adb ------------------------------------------------------------------------------------

def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def adb(tmp_path_factory):
    """Debian's adb with a server of its own (free port, own HOME for its key), killed at the end."""
    path = shutil.which("adb")
    if path is None:
        pytest.fail("adb not found: run ./scripts/setup-system.sh (make test does)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ANDROID_ADB_SERVER_PORT", str(port))
        env.setenv("HOME", str(tmp_path_factory.mktemp("adb-home")))
        try:
            yield path
        finally:
            android_app.run_adb([path, "kill-server"])
            assert not _listening(port), f"the adb server on port {port} is still running"


def test_real_adb_lists_no_device(adb):
    proc = android_app.run_adb([adb, "devices", "-l"])
    assert proc.returncode == 0 and proc.stdout == ADB_1_0_41_NO_DEVICES
    assert android_app.list_devices(adb) == []
    assert _listening(int(os.environ["ANDROID_ADB_SERVER_PORT"]))  # this test's own server, not a shared one


def test_no_device_and_an_absent_serial_stop_before_any_device_command(adb):
    with pytest.raises(ToolError, match=r"^no Android device ready \(adb devices: none\): connect one with USB debugging on"):
        android_app.run_app_benchmark(None, 1, 1, 1)
    with pytest.raises(ToolError, match="^" + re.escape(f"--serial {WEIRD_SERIAL}: no such device attached (adb devices: none)")):
        android_app.run_app_benchmark(WEIRD_SERIAL, 1, 1, 1)


def test_a_serial_reaches_adb_as_one_argument_never_through_a_shell(adb, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = android_app.run_adb(android_app.adb_args(adb, WEIRD_SERIAL, *android_app.shell_args("true")))
    assert proc.returncode == 1 and f"device '{WEIRD_SERIAL}' not found" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing ran `touch pwned`


@pytest.mark.slow
def test_cli_errors_without_a_phone_are_one_line_with_exit_3(adb, app_run, tmp_path, monkeypatch):
    assert_one_line_error(deploy("bench", app_run, "--target", "adb", "--app"), 3, "no Android device ready (adb devices: none)")
    assert_one_line_error(deploy("bench", app_run, "--target", "adb", "--app", "--serial", "R58M12345AB"), 3,
                          "--serial R58M12345AB: no such device attached")
    # A wrong RUN_DIR is bad input, found before adb is asked anything.
    assert_one_line_error(deploy("bench", tmp_path, "--target", "adb", "--app"), 2, "report.json: cannot read report")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert_one_line_error(deploy("bench", app_run, "--target", "adb", "--app"), 3,
                          "adb not found on PATH: install it (Debian/Ubuntu: apt-get install adb")


def test_no_adb_on_path(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolError, match=r"adb not found on PATH: install it \(Debian/Ubuntu: apt-get install adb"):
        android_app.run_app_benchmark(None, 1, 1, 1)
