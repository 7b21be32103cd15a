"""Start, stop or check the emulated arm64 board (pipeline/targets/qemu_board.py): an ARM Linux board
reached over ssh, for trying the ssh target, `deploy devices --setup` and ARM-kernel accuracy without
a Raspberry Pi. Timings on it are emulated; the report marks them so.

    scripts/setup-arm-board.sh                       # once: the disk image (about 5 minutes)
    .venv/bin/python scripts/arm-board.py start [--dir build/board]
    .venv/bin/deploy devices --setup ssh:root@127.0.0.1:PORT --ssh-key build/board/key --ssh-known-hosts build/board/known_hosts
    .venv/bin/python scripts/arm-board.py stop [--dir build/board]

The board keeps its disk (an overlay in --dir) across stop and start: what --setup installed stays.
Each start makes a fresh key; --fresh also throws the overlay away (a board from nothing).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from pipeline.errors import ToolError
    from pipeline.targets import qemu_board

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=Path("build/board"), help="the board's state folder [build/board]")
    parser.add_argument("--fresh", action="store_true", help="start: discard the board's disk first")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=2048)
    args = parser.parse_args()
    try:
        if args.action == "start":
            if (args.dir / "board.json").exists() and qemu_board.attach(args.dir).running():
                raise ToolError(f"a board is already running from {args.dir}: stop it first")
            if args.fresh:
                shutil.rmtree(args.dir, ignore_errors=True)
            print(f"booting the board from {args.dir} (about a minute) ...", flush=True)
            board = qemu_board.start(args.dir.resolve(), args.cpus, args.memory_mb)
        else:
            board = qemu_board.attach(args.dir.resolve())
            if args.action == "stop":
                qemu_board.stop(board)
                print("stopped")
                return 0
            if not board.running():
                print("not running")
                return 1
        print(f"running (pid {board.pid}): --targets {board.target.name} --ssh-key {board.key} "
              f"--ssh-known-hosts {board.known_hosts}")
        return 0
    except ToolError as e:
        print(f"arm-board: {e}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
