"""Runs a plan's nodes on a backend: what may start when, and what a failure costs.

Rules, independent of where stages run:
- a node starts when all its parents finished; a cached node is loaded in the driver, never sent;
- a node whose condition is false, or whose parent was skipped, is skipped;
- a ToolError in a non-fatal node fails it and everything below it (the build records the lost
  artifacts and goes on); any other error, or a fatal node's, stops the build;
- a node leasing the machine (a host benchmark) starts only when nothing else runs and no other
  work is ready, and nothing starts beside it; a node leasing a device runs one at a time per device;
- the nodes running together ask for at most the backend's cores (Node.cpus: a training stage on
  inputs of 128x128 and more asks for every core, so it runs alone on the local pool: two
  TensorFlow processes would share the cores anyway, and their memory peaks would add up);
- a worker that died is replaced and its stage retried once.
"""
from __future__ import annotations

import logging
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Future, wait

from pipeline.errors import ToolError
from pipeline.plan import MACHINE, Failed, Node, Outcome, Skipped
from pipeline.runner import Runner
from pipeline.stages.base import StageOutput

log = logging.getLogger("deploy")

RETRIES = 1


_WAIT = object()
_GO = object()


def isolation(node: Node) -> str | None:
    """What the lineage record says about what ran beside a leased node."""
    if node.lease == MACHINE:
        return "alone: no other stage ran on this machine meanwhile"
    if node.lease:
        return f"one at a time on {node.lease.removeprefix('device:')}; other stages may have run on the host"
    return None


class Scheduler:
    def __init__(self, runner: Runner, backend):
        self.runner, self.backend = runner, backend
        self.outcomes: dict[str, Outcome] = {}
        self.ran: list[Node] = []  # nodes executed (not cached), in completion order

    def close(self, abort: bool = False) -> None:
        self.backend.close(abort)

    def outcome(self, node: Node) -> Outcome:
        return self.outcomes[node.key]

    def state(self, node: Node):
        """_WAIT, _GO, or the Failed/Skipped outcome the node inherits without running."""
        parents = list(node.inputs.values()) + ([node.when.parent] if node.when else [])
        outcomes = [self.outcomes.get(p.key) for p in parents]
        if any(o is None for o in outcomes):
            return _WAIT
        for o in outcomes:
            if isinstance(o, Failed | Skipped):
                return o
        if node.when and not node.when.test(self.outcomes[node.when.parent.key].result):
            return Skipped(f"{node.when.text} does not hold")
        return _GO

    def _may_start(self, node: Node, running: dict[Future, Node], todo: list[Node]) -> bool:
        if len(running) >= self.backend.slots or any(n.lease == MACHINE for n in running.values()):
            return False
        if running and sum(n.cpus for n in running.values()) + node.cpus > self.backend.cores:
            return False
        if node.lease == MACHINE:
            # Alone, and only once no other work is ready: benchmarks wait for a quiet moment.
            return not running and not any(n.lease != MACHINE and self.state(n) is _GO for n in todo)
        return node.lease is None or all(n.lease != node.lease for n in running.values())

    def _settle(self, node: Node, outcome: Outcome) -> None:
        if isinstance(outcome, StageOutput):
            self.runner.outputs.append(outcome)
            for check in node.checks:
                check(outcome)
        self.outcomes[node.key] = outcome

    def _submit(self, node: Node) -> Future:
        inputs = {name: self.outcomes[parent.key] for name, parent in node.inputs.items()}
        extra = {**self.backend.lineage(), **({"isolation": isolation(node)} if node.lease else {})}
        log.info("[run]    %s ...", node.title)
        return self.backend.submit(node, inputs, extra)

    def run(self, nodes: list[Node]) -> dict[str, Outcome]:
        """Run these nodes (parents listed before children; already-settled ones are skipped)."""
        todo = [n for n in nodes if n.key not in self.outcomes]
        running: dict[Future, Node] = {}
        attempts: dict[str, int] = {}
        try:
            while todo or running:
                self._start_ready(todo, running)
                if not running:
                    if todo:
                        raise RuntimeError(f"plan cannot progress at {todo[0].title}: a parent is not in the plan")
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    node = running.pop(future, None)
                    if node is None:  # already sent again after a worker loss broke the pool
                        continue
                    try:
                        output = future.result()
                    except BrokenExecutor as e:  # the worker process died under this stage
                        attempts[node.key] = attempts.get(node.key, 0) + 1
                        self._worker_lost(node, e, attempts[node.key], running, todo)
                        continue
                    except ToolError as e:
                        if node.fatal:
                            raise
                        log.error("%s: %s", node.title, e)
                        self._settle(node, Failed(e, node.title))
                        continue
                    log.info("[done]   %s (%.1f s)", node.title, output.seconds)
                    self.ran.append(node)
                    self._settle(node, output)
        except BaseException:
            self.close(abort=True)
            raise
        return self.outcomes

    def _start_ready(self, todo: list[Node], running: dict[Future, Node]) -> None:
        progressed = True
        while progressed:
            progressed = False
            for node in list(todo):
                state = self.state(node)
                if state is _WAIT:
                    continue
                if state is not _GO:
                    self._settle(node, state)
                    todo.remove(node)
                    progressed = True
                    continue
                cached = self.runner.cached(node.stage, node.key)
                if cached is not None:
                    log.info("[cached] %s", node.title)
                    self._settle(node, cached)
                    todo.remove(node)
                    progressed = True
                elif self._may_start(node, running, todo):
                    running[self._submit(node)] = node
                    todo.remove(node)
                    progressed = True

    def _worker_lost(self, node: Node, error: BaseException, attempt: int, running: dict, todo: list[Node]) -> None:
        """A dead worker breaks the whole local pool: restart it and send its stages again."""
        log.warning("%s: worker lost (%s); %s", node.title, error, "retrying" if attempt <= RETRIES else "giving up")
        lost = [node] + list(running.values())
        running.clear()
        self.backend.restart()
        for n in reversed(lost):
            if n is node and attempt > RETRIES:
                failure = ToolError(f"{node.title}: the worker process died twice running it ({error})")
                if node.fatal:
                    raise failure
                self._settle(node, Failed(failure, node.title))
            else:
                todo.insert(0, n)
