"""Benchmark targets by name: `host`, `arm64-emu`, `armv7-emu`, `adb[:SERIAL]`, `ssh:USER@HOST[:PORT]`.

`parse_target` turns one `--targets` value into a typed target whose `name` is what the report
records. Names are checked strictly here because they later reach ssh and adb: a user or host
that could be read as an option (leading '-') or holds spaces is refused with a one-line error.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import UserInputError

SYNTAX = "host, arm64-emu, armv7-emu, adb[:SERIAL] or ssh:USER@HOST[:PORT]"
DEFAULT_SSH_PORT = 22
# POSIX portable user names, and DNS names / IPv4 (IPv6 goes in brackets and is checked apart).
_USER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_HOST = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]*")
_IPV6 = re.compile(r"[0-9A-Fa-f:.]+")


@dataclass(frozen=True)
class HostTarget:
    name: str = "host"


@dataclass(frozen=True)
class EmulatedTarget:
    """An ARM root filesystem run through QEMU user mode on this machine."""
    arch: str  # "arm64" or "armv7"

    @property
    def name(self) -> str:
        return f"{self.arch}-emu"


@dataclass(frozen=True)
class AdbTarget:
    serial: str | None = None  # None: the only device attached

    @property
    def name(self) -> str:
        return "adb" if self.serial is None else f"adb:{self.serial}"


@dataclass(frozen=True)
class SshTarget:
    user: str
    host: str
    port: int = DEFAULT_SSH_PORT

    @property
    def name(self) -> str:
        return f"ssh:{self.user}@{self.address}:{self.port}"

    @property
    def address(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host


Target = HostTarget | EmulatedTarget | AdbTarget | SshTarget

# The artifact formats a kind of target has a runtime for: the emulators' root filesystems hold what
# scripts/setup-arm-emu.sh installs (no onnxruntime; MNN has no armv7 wheel), phones run LiteRT's
# benchmark_model and benchncnn; the host and ssh boards run every format (a board lacking a
# runtime fails that artifact alone).
EMULATED_FORMATS = {"arm64": ("tflite", "ncnn", "mnn"), "armv7": ("tflite", "ncnn")}
ADB_FORMATS = ("tflite", "ncnn")


def runs_format(target: Target, fmt: str) -> bool:
    if isinstance(target, EmulatedTarget):
        return fmt in EMULATED_FORMATS[target.arch]
    if isinstance(target, AdbTarget):
        return fmt in ADB_FORMATS
    return True


def parse_target(text: str) -> Target:
    """One `--targets` value -> its target; UserInputError naming the value otherwise."""
    if text == "host":
        return HostTarget()
    if text in ("arm64-emu", "armv7-emu"):
        return EmulatedTarget(text.removesuffix("-emu"))
    if text == "adb":
        return AdbTarget()
    if text.startswith("adb:"):
        serial = text[4:]
        if not serial.strip() or serial.startswith("-"):
            raise _bad(text, "the serial after 'adb:' is empty or starts with '-' (see `adb devices`)")
        return AdbTarget(serial)
    if text.startswith("ssh:"):
        return _parse_ssh(text)
    raise _bad(text, f"unknown target (expected {SYNTAX})")


def parse_targets(texts: list[str]) -> list[Target]:
    """Several values, duplicates dropped (a name given twice would be benchmarked twice)."""
    targets: list[Target] = []
    for text in texts:
        target = parse_target(text)
        if target not in targets:
            targets.append(target)
    return targets


def _parse_ssh(text: str) -> SshTarget:
    user, at, rest = text[4:].partition("@")
    if not at:
        raise _bad(text, "expected ssh:USER@HOST[:PORT]")
    if not _USER.fullmatch(user):
        raise _bad(text, f"user {user!r} is not a plain user name (letters, digits, '.', '_', '-'; not starting with '-')")
    port_text = ""
    if rest.startswith("["):  # [IPv6]:port
        host, bracket, after = rest[1:].partition("]")
        if not bracket or not _IPV6.fullmatch(host) or (after and not after.startswith(":")):
            raise _bad(text, "an IPv6 host goes in brackets: ssh:USER@[ADDRESS]:PORT")
        port_text = after[1:]
        has_port = bool(after)
    else:
        host, colon, port_text = rest.partition(":")
        has_port = bool(colon)
        if not _HOST.fullmatch(host):
            raise _bad(text, f"host {host!r} is not a host name or IPv4 address")
    port = DEFAULT_SSH_PORT
    if has_port:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise _bad(text, f"port {port_text!r} is not a number from 1 to 65535")
        port = int(port_text)
    return SshTarget(user, host, port)


class TargetNameError(UserInputError):
    def __init__(self, value: str, why: str):
        self.value, self.why = value, why
        super().__init__(f"--targets {value!r}: {why}")


def _bad(text: str, why: str) -> TargetNameError:
    return TargetNameError(text, why)
