"""Emulated ARM targets: where their root filesystems live and whether they are set up.

One Debian root filesystem per architecture under EMU_HOME/<arch> (default
~/.cache/mobile-deploy/emu, or $DEPLOY_EMU_HOME); a finished setup leaves EMU_HOME/<arch>/READY.
The setup script and the QEMU runner are not part of this version yet.
"""
from __future__ import annotations

import os
from pathlib import Path

ARCHES = ("arm64", "armv7")
READY_MARK = "READY"


def emu_home() -> Path:
    return Path(os.environ.get("DEPLOY_EMU_HOME") or Path.home() / ".cache" / "mobile-deploy" / "emu")


def is_set_up(arch: str) -> bool:
    return (emu_home() / arch / READY_MARK).is_file()


def status(arch: str) -> str:
    if is_set_up(arch):
        return f"root filesystem ready at {emu_home() / arch}, but running it under QEMU is not implemented yet"
    return f"not set up (no root filesystem at {emu_home() / arch}); emulated ARM is not implemented in this version yet"
