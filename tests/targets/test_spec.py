"""Target names: every kind parses to its typed target; a bad value is one line naming it."""
import pytest

from pipeline.config import load_config
from pipeline.errors import UserInputError
from pipeline.targets.spec import AdbTarget, EmulatedTarget, HostTarget, SshTarget, parse_target, parse_targets


@pytest.mark.parametrize("text, expected, name", [
    ("host", HostTarget(), "host"),
    ("arm64-emu", EmulatedTarget("arm64"), "arm64-emu"),
    ("armv7-emu", EmulatedTarget("armv7"), "armv7-emu"),
    ("adb", AdbTarget(), "adb"),
    ("adb:192.168.1.7:5555", AdbTarget("192.168.1.7:5555"), "adb:192.168.1.7:5555"),
    ("adb:emulator-5554", AdbTarget("emulator-5554"), "adb:emulator-5554"),
    ("ssh:pi@raspberrypi.local", SshTarget("pi", "raspberrypi.local", 22), "ssh:pi@raspberrypi.local:22"),
    ("ssh:pi@10.0.0.2:2222", SshTarget("pi", "10.0.0.2", 2222), "ssh:pi@10.0.0.2:2222"),
    ("ssh:ci_user@[::1]:2200", SshTarget("ci_user", "::1", 2200), "ssh:ci_user@[::1]:2200"),
])
def test_each_kind_parses_to_its_target(text, expected, name):
    target = parse_target(text)
    assert target == expected
    assert target.name == name
    assert parse_target(target.name) == target  # the recorded name reads back as the same target


@pytest.mark.parametrize("text, names", [
    ("arm65-emu", "unknown target"),
    ("ssh:pi", "expected ssh:USER@HOST[:PORT]"),
    ("ssh:a b@host", "user 'a b'"),
    ("ssh:-oProxyCommand=touch@host", "user '-oProxyCommand=touch'"),
    ("ssh:pi@-oProxyCommand=x", "host '-oProxyCommand=x'"),
    ("ssh:pi@host;rm -rf", "host 'host;rm -rf'"),
    ("ssh:pi@$(reboot)", "host '$(reboot)'"),
    ("ssh:pi@host:0", "port '0'"),
    ("ssh:pi@host:22x", "port '22x'"),
    ("ssh:pi@[::1", "IPv6"),
    ("adb:", "serial"),
    ("adb:-d", "serial"),
])
def test_bad_values_are_one_line_errors_naming_them(text, names):
    with pytest.raises(UserInputError) as caught:
        parse_target(text)
    message = str(caught.value)
    assert message.startswith(f"--targets {text!r}: ") and names in message and "\n" not in message


def test_duplicates_are_dropped_in_order():
    assert parse_targets(["ssh:pi@b", "host", "ssh:pi@b:22"]) == [SshTarget("pi", "b"), HostTarget()]


def test_config_keeps_canonical_names_and_names_the_bad_flag_value():
    assert load_config(overrides={"targets": ["host", "ssh:pi@board"]}).targets == ["host", "ssh:pi@board:22"]
    with pytest.raises(UserInputError, match=r"^--targets: 'x86-emu': unknown target"):
        load_config(overrides={"targets": ["host", "x86-emu"]})
