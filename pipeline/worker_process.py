"""Spawned worker processes with a thread budget: the local pool's workers, and the fresh process a
stage that pins TensorFlow's thread count runs in (runner). Below the runner and the executors."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor


def die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver process dies (prctl PR_SET_PDEATHSIG)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except OSError:
        pass


def init_worker(threads: int, level: int) -> None:
    die_with_parent()
    for var in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(threads)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1" if threads == 1 else "2"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=level, format=f"  [worker {os.getpid()}] %(message)s", stream=sys.stderr, force=True)
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)


def run_with_threads(threads: int, function, *args):
    """function(*args) in a fresh spawned process whose TensorFlow has exactly `threads` intra-op
    threads (a worker's TensorFlow cannot change its thread count once loaded)."""
    level = logging.getLogger("deploy").getEffectiveLevel()
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                             initializer=init_worker, initargs=(threads, level)) as pool:
        return pool.submit(function, *args).result()
