"""An emulated arm64 Linux board: QEMU full-system (`qemu-system-aarch64 -M virt`, a Cortex-A76)
booting the Debian image scripts/setup-arm-board.sh builds, reached over ssh on a loopback port.

Unlike the user-mode emulators (emulated.py), this is a whole ARM system: its own kernel, sshd,
Python and (once `deploy devices --setup` provisioned it) aarch64 wheels, so the ssh target runs on
it exactly as on a Raspberry Pi. Its timings are emulated (TCG) and mean nothing about a real CPU.

Each start writes into its own folder: a copy-on-write overlay of the image (the image itself is
never written), a fresh client key handed to the board through QEMU's fw_cfg (the image installs it
as root's authorized key before sshd starts), known_hosts holding the image's host key, the serial
console's log and a QMP socket (network cut and restore for fault tests). The guest network is
QEMU's user network with `restrict=on`: the board reaches nothing outside, the host reaches its sshd
through the forwarded port. Starting again in a folder that has an overlay continues that board
on the same port (what was provisioned stays, and `--targets ssh:root@127.0.0.1:PORT` still names it).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError
from pipeline.targets.spec import SshTarget

SETUP = "scripts/setup-arm-board.sh"
READY_MARK = "READY"
BOOT_TIMEOUT_S = 300  # ssh answered 46 s after start on an idle host, 65 s on a busy one
KEY_NAME = "opt/mobile-deploy/authorized_keys"  # the fw_cfg file setup-arm-board.sh's unit reads


def board_home() -> Path:
    return Path(os.environ.get("DEPLOY_BOARD_HOME") or Path.home() / ".cache" / "mobile-deploy" / "board")


def is_set_up() -> bool:
    return (board_home() / READY_MARK).is_file()


@dataclass(frozen=True)
class Board:
    folder: Path
    port: int
    pid: int

    @property
    def target(self) -> SshTarget:
        return SshTarget("root", "127.0.0.1", self.port)

    @property
    def key(self) -> Path:
        return self.folder / "key"

    @property
    def known_hosts(self) -> Path:
        return self.folder / "known_hosts"

    @property
    def console(self) -> Path:
        return self.folder / "console.log"

    def running(self) -> bool:
        try:  # a killed QEMU lingers as a zombie until its parent reaps it: it runs nothing
            return Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    def set_network(self, up: bool) -> None:
        """Plug or unplug the board's network cable (QMP set_link): a board cut off mid-build."""
        _qmp(self.folder / "qmp.sock", {"execute": "set_link", "arguments": {"name": "n0", "up": up}})


def start(folder: Path, cpus: int = 2, memory_mb: int = 2048, timeout_s: float = BOOT_TIMEOUT_S) -> Board:
    """Boot a board whose state lives in `folder` and return once its sshd accepts our key."""
    home = board_home()
    if not is_set_up():
        raise ToolError(f"no board image in {home}: run {SETUP}")
    qemu = shutil.which("qemu-system-aarch64")
    if qemu is None:
        raise ToolError(f"qemu-system-aarch64 not found: run {SETUP} (installs qemu-system-arm)")
    folder.mkdir(parents=True, exist_ok=True)
    overlay = folder / "overlay.qcow2"
    if not overlay.exists():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(home / "disk.img"), "-F", "raw",
                        str(overlay)], check=True, capture_output=True)
    key = folder / "key"
    for stale in (key, key.with_suffix(".pub")):
        stale.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "mobile-deploy board", "-f", str(key)],
                   check=True, capture_output=True)
    port = _previous_port(folder) or _free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {(home / 'host_key.pub').read_text()}")
    (folder / "qmp.sock").unlink(missing_ok=True)
    command = [
        qemu, "-M", "virt", "-cpu", "cortex-a76", "-smp", str(cpus), "-m", str(memory_mb),
        "-kernel", str(home / "vmlinuz"), "-initrd", str(home / "initrd.img"),
        "-append", "root=/dev/vda rw console=ttyAMA0 net.ifnames=0",
        "-drive", f"file={overlay},format=qcow2,if=virtio",
        "-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22", "-device", "virtio-net-device,netdev=n0",
        "-fw_cfg", f"name={KEY_NAME},file={key.with_suffix('.pub')}",
        "-display", "none", "-serial", f"file:{folder / 'console.log'}", "-monitor", "none",
        "-qmp", f"unix:{folder / 'qmp.sock'},server=on,wait=off",
    ]
    with open(folder / "qemu.log", "w") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)  # a Ctrl-C in the terminal does not pull the plug
    board = Board(folder, port, proc.pid)
    (folder / "board.json").write_text(json.dumps({"port": port, "pid": proc.pid}))
    try:
        _wait_for_ssh(board, proc, timeout_s)
    except BaseException:
        _kill(board)
        raise
    return board


def attach(folder: Path) -> Board:
    """The board started in `folder` (scripts/arm-board.py stop/status)."""
    try:
        state = json.loads((folder / "board.json").read_text())
    except (OSError, ValueError):
        raise ToolError(f"no board was started in {folder}") from None
    return Board(folder, state["port"], state["pid"])


def ssh_command(board: Board, command: list[str], timeout_s: float = 30) -> subprocess.CompletedProcess:
    from pipeline.targets import ssh

    options = ssh.SshOptions(key=board.key, known_hosts=board.known_hosts)
    return ssh.run_ssh(board.target, options, command, timeout_s=timeout_s)


def stop(board: Board, timeout_s: float = 60) -> None:
    """`poweroff` over ssh, then the QEMU process by its id if it has not ended in time."""
    if board.running():
        try:
            ssh_command(board, ["systemctl", "poweroff"], timeout_s=20)
        except ToolError:
            pass  # the board may be hung or cut off: the process goes below
        deadline = time.monotonic() + timeout_s
        while board.running() and time.monotonic() < deadline:
            time.sleep(0.5)
    _kill(board)


def _kill(board: Board) -> None:
    try:
        os.kill(board.pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(board.pid, 0)  # our child: reap it (a board attached from another process is not)
    except ChildProcessError:
        pass


def _wait_for_ssh(board: Board, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ToolError(f"the board's QEMU exited with {proc.returncode}: {_last_line(board.folder / 'qemu.log')}")
        try:
            if ssh_command(board, ["true"], timeout_s=30).returncode == 0:
                return
        except ToolError:
            pass  # sshd not up yet
        if time.monotonic() > deadline:
            raise ToolError(f"the board did not answer ssh within {timeout_s:.0f} s (console: {board.console})")
        time.sleep(2)


def _qmp(path: Path, command: dict) -> dict:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        stream = sock.makefile("rw")
        json.loads(stream.readline())  # the greeting
        for message in ({"execute": "qmp_capabilities"}, command):
            stream.write(json.dumps(message) + "\n")
            stream.flush()
            while True:
                reply = json.loads(stream.readline())
                if "return" in reply or "error" in reply:
                    break  # events ("event": ...) may come first
            if "error" in reply:
                raise ToolError(f"QEMU refused {command['execute']}: {reply['error'].get('desc')}")
        return reply["return"]


def _previous_port(folder: Path) -> int | None:
    try:
        return int(json.loads((folder / "board.json").read_text())["port"])
    except (OSError, ValueError, KeyError):
        return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1] if lines else "no output"
