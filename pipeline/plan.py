"""The build plan: a graph of stage nodes (stage, config, inputs, key) made before anything runs.

A node's key is the runner's content address (pipeline.runner.stage_key) computed from its
inputs' keys, so the whole graph has keys before any stage ran, and they are the keys a stage run
directly through `Runner.run` gets. Two requests for the same work are one node.

Two things are only known once a stage ran, and the plan says so:
- a probe: a cheap stage whose result shapes the rest of the plan (a user model's input size
  comes from its import). The planner runs it (or takes it from the cache) while planning and
  records that it did, for --dry-run to say.
- a condition: a node that runs only if a parent's result allows it (the int8-qat conversion
  runs only if QAT was possible, the PTQ fallback only if it was not). Its key is known; whether
  it runs is decided by the executor once the parent finished.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.runner import stage_key
from pipeline.stages.base import FitConfig, Stage, StageConfig, StageOutput

# What a node may hold while it runs. "machine": nothing else runs beside it (host benchmarks,
# emulators); "device:NAME": one at a time on that phone or board, other work may run.
MACHINE = "machine"


def device_lease(target_name: str) -> str:
    """The lease of a phone or board, and the Ray custom resource a node advertises for it (docs/scale-out.md)."""
    return "device:" + target_name


# What became of a node once the executor is done with it: its output, or one of these.
@dataclass(frozen=True)
class Failed:
    error: BaseException
    where: str  # the node that failed (itself or a parent)


@dataclass(frozen=True)
class Skipped:
    reason: str


Outcome = StageOutput | Failed | Skipped


@dataclass(frozen=True)
class When:
    """Run a node only if `test(parent's result)` holds; `text` says so in the dry-run."""

    parent: "Node"
    test: Callable[[dict[str, Any]], bool]
    text: str


@dataclass(eq=False)
class Node:
    stage: Stage
    config: StageConfig
    inputs: dict[str, "Node"]
    label: str
    external: dict[str, str]
    key: str
    when: When | None = None
    # A tool failure in a fatal node stops the build (the model itself is missing); in any other
    # node it costs the artifacts that depend on it, recorded in report.failures.
    fatal: bool = False
    lease: str | None = None
    # Checks run in the driver once the result is known (cached or not); they may raise UserInputError.
    checks: list[Callable[[StageOutput], None]] = field(default_factory=list)
    # What the node needs from the machine it runs on (Ray: {"GPU": 1} for training; a device resource for benchmarks).
    resources: dict[str, float] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.stage.name} {self.label}".strip()

    @property
    def cpus(self) -> int:
        """Cores the stage keeps busy: a training stage pins TensorFlow's threads (tf_threads), any other one."""
        return max(1, getattr(self.config, "tf_threads", 0))

    def ancestors(self) -> list["Node"]:
        """This node's inputs and condition parents, transitively, parents before children."""
        seen: dict[int, Node] = {}

        def visit(node: Node) -> None:
            parents = list(node.inputs.values()) + ([node.when.parent] if node.when else [])
            for parent in parents:
                if id(parent) not in seen:
                    visit(parent)
                    seen[id(parent)] = parent

        visit(self)
        return list(seen.values())


class Plan:
    """Nodes in the order they were planned (parents always first), one per key."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []
        self._by_key: dict[str, Node] = {}
        self.probes: list[Node] = []  # nodes run while planning, for the dry-run to say
        self.ran_while_planning: set[str] = set()  # keys of the nodes run (not cached) to resolve probes

    def node(
        self,
        stage: Stage,
        config: StageConfig,
        inputs: dict[str, Node] | None = None,
        label: str = "",
        external: dict[str, str] | None = None,
        when: When | None = None,
        fatal: bool = False,
        lease: str | None = None,
        resources: dict[str, float] | None = None,
    ) -> Node:
        inputs, external = inputs or {}, external or {}
        key = stage_key(stage, config, {name: n.key for name, n in inputs.items()}, external)
        existing = self._by_key.get(key)
        if existing is not None:
            # The same work asked for twice: one node; it runs unconditionally if either request was.
            if existing.when is not None and when is None:
                existing.when = None
            existing.fatal = existing.fatal or fatal
            return existing
        node = Node(stage, config, inputs, label, external, key, when, fatal, lease, resources=dict(resources or {}))
        self.nodes.append(node)
        self._by_key[key] = node
        return node

    def __len__(self) -> int:
        return len(self.nodes)


def describe(plan: Plan, cached: Callable[[Node], StageOutput | None]) -> list[str]:
    """The dry-run's lines: every stage with its key (its cache folder's name) and whether it is
    cached, will run, or will be skipped (a condition already decided by a cached parent)."""
    by_key: dict[str, str] = {}
    for node in plan.nodes:  # parents first: a node below a skipped one is skipped too
        parent = cached(node.when.parent) if node.when else None
        if cached(node) is not None:
            by_key[node.key] = "cached"
        elif (parent is not None and not node.when.test(parent.result)) or any(
                by_key.get(n.key) == "skip" for n in node.inputs.values()):
            by_key[node.key] = "skip"
        else:
            by_key[node.key] = "run"
    states = [by_key[n.key] for n in plan.nodes]
    counts = {s: states.count(s) for s in ("cached", "run", "skip")}
    lines = [f"plan: {len(plan)} stages, {counts['cached']} cached, {counts['run']} to run"
             + (f", {counts['skip']} skipped" if counts["skip"] else "")]
    probes = {n.key for n in plan.probes}
    needed = [n for n in plan.nodes if n.key in probes or n.key in plan.ran_while_planning]
    if needed:
        lines.append("needed while planning (their results shape the plan): " + ", ".join(
            f"{n.title} [{'ran' if n.key in plan.ran_while_planning else 'cached'}]" for n in needed))
    width = max((len(n.stage.name) for n in plan.nodes), default=0)
    for node, state in zip(plan.nodes, states):
        notes = []
        if node.when:
            notes.append(f"if {node.when.text}")
        if node.lease:
            notes.append("runs alone" if node.lease == MACHINE else f"leases {node.lease}")
        if node.cpus > 1:
            notes.append(f"{node.cpus} cores")
        if isinstance(node.config, FitConfig):
            notes.append(node.config.recipe())
        note = f"  ({'; '.join(notes)})" if notes else ""
        lines.append(f"  {state:<6}  {node.key[:20]}  {node.stage.name:<{width}}  {node.label}{note}")
    return lines
