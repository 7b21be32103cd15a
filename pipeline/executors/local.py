"""Local backends: this process (--jobs 1), or a pool of worker processes that keep TensorFlow loaded.

Workers are spawned (TensorFlow is not fork-safe), each with a thread budget set before anything
imports TensorFlow, and die with the driver (a build killed with -9 leaves no worker finishing
stages behind its back). A stage runs through pipeline.runner.execute in the worker: its temp
folder is named after the worker's pid, so a killed worker leaves nothing a later run trusts.
"""
from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from pipeline.resources import release_memory, usable_cores
from pipeline.runner import execute
from pipeline.stages.base import FitConfig
from pipeline.worker_process import init_worker

log = logging.getLogger("deploy")


class InProcessBackend:
    """Runs each node in the driver, one at a time: exactly the pre-plan behaviour. After a training
    stage the driver gives back what it freed, like a pool worker (release_memory); not after every
    stage, as a pool worker does, since a full gc costs ~0.8 s with TensorFlow loaded."""

    name = "local"
    slots = 1

    def __init__(self, cache: Path):
        self.cache = cache
        self.cores = usable_cores()

    def lineage(self) -> dict:
        return {"executor": "in-process"}

    def submit(self, node, inputs, extra) -> Future:
        future: Future = Future()
        try:
            future.set_result(execute(self.cache, node.stage, node.config, inputs, node.key, node.title, node.external, extra))
        except BaseException as e:  # noqa: BLE001  (the scheduler decides what a failure means)
            if isinstance(e, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(e)
        finally:
            if isinstance(node.config, FitConfig):
                release_memory()
        return future

    def restart(self) -> None:
        pass

    def close(self, abort: bool = False) -> None:
        pass


def _execute_and_release(*args):
    """`execute` in a pool worker, then `release_memory`."""
    try:
        return execute(*args)
    finally:
        release_memory()


class PoolBackend:
    """`jobs` spawned worker processes; each keeps TensorFlow loaded between stages."""

    name = "local"

    def __init__(self, cache: Path, jobs: int, threads: int):
        self.cache, self.slots, self.threads = cache, jobs, threads
        self.cores = jobs * threads  # what the workers were given (their thread budgets)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        level = logging.getLogger("deploy").getEffectiveLevel()
        return ProcessPoolExecutor(max_workers=self.slots, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=init_worker, initargs=(self.threads, level))

    def lineage(self) -> dict:
        return {"executor": f"local pool of {self.slots}", "threads": self.threads}

    def submit(self, node, inputs, extra) -> Future:
        return self._pool.submit(_execute_and_release, self.cache, node.stage, node.config, inputs, node.key, node.title,
                                 node.external, extra)

    def restart(self) -> None:
        """After a worker died (the pool is broken): a fresh pool for the retries."""
        self.close(abort=True)
        self._pool = self._start()

    def close(self, abort: bool = False) -> None:
        if abort:
            # Stop stages still running: their temp folders are deleted by the next run.
            for process in list((self._pool._processes or {}).values()):
                process.terminate()
        self._pool.shutdown(wait=True, cancel_futures=True)
