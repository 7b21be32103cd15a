"""Executors run a plan's nodes: here, in local worker processes, or as Ray tasks.

The scheduling (what may start, conditions, failures, leases) is one piece (scheduler.py); a
backend only knows how to run one node somewhere and hand back its StageOutput in the driver's
cache. Nothing here imports TensorFlow or Ray at module level.
"""
from __future__ import annotations

from pipeline.resources import default_jobs, thread_budget


def make_executor(runner, kind: str = "local", jobs: int | None = None, ray_address: str | None = None):
    """The scheduler with the chosen backend; close() it when done."""
    from pipeline.executors.scheduler import Scheduler

    if kind == "ray":
        from pipeline.executors.ray import RayBackend

        return Scheduler(runner, RayBackend(runner.cache, ray_address))
    from pipeline.executors.local import InProcessBackend, PoolBackend

    jobs = jobs or default_jobs()
    if jobs == 1:
        return Scheduler(runner, InProcessBackend(runner.cache))
    return Scheduler(runner, PoolBackend(runner.cache, jobs, thread_budget(jobs)))
