"""sensitivity and prune: L1-norm filter pruning (pipeline/compress/filter_pruning.py).

`sensitivity` measures each group's curve (pipeline/compress/sensitivity.py); `prune` chooses the
ratios that keep a share of the MACs from it, or takes those `prune_choice` chose for a speed-up
measured on a device (input `choice`, stages/prune_choice.py), prunes, and fine-tunes, distilled from the
unpruned model with --distill. The result is a float model like train's (model_file, params, MACs),
so every later stage takes it as it takes any float model.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Literal

import numpy as np

from pipeline.compress.distill import DistillConfig
from pipeline.data import Preprocessing
from pipeline.errors import UserInputError
from pipeline.models import training
from pipeline.stages.base import FitConfig, Stage, StageConfig, StageOutput
from pipeline.stages.data import open_split
from pipeline.stages.model import TF_TOOLS, load_float_model, model_facts

log = logging.getLogger("deploy")

SENSITIVITY_MAX_IMAGES = 1000  # held-out training images each sensitivity point is measured on (at most)


class PruneConfig(FitConfig):  # epochs: of the fine-tuning
    method: Literal["l1-filter"] = "l1-filter"
    keep_macs: float | None = None  # share of the unpruned model's MACs to keep at most
    speedup: float | None = None  # or: the speed-up over the unpruned model on latency_on, by its latency table
    latency_on: str | None = None
    ratios: dict[str, float] | None = None  # or: these group ratios, from another build (ratios_from)
    ratios_from: str | None = None
    patience: int = 0
    distill: DistillConfig | None = None  # None: fine-tuned on the labels only


def recipe(config: PruneConfig) -> dict:
    """The compression recipe the report records for the variant and its artifacts."""
    goal = ({"speedup": config.speedup, "latency_on": config.latency_on} if config.speedup
            else {"ratios_from": config.ratios_from} if config.ratios else {"keep_macs": config.keep_macs})
    return {"method": config.method, **goal, "distilled": config.distill is not None,
            **({"distill_temperature": config.distill.temperature, "distill_alpha": config.distill.alpha} if config.distill else {})}


def _held_out(train, seed: int, prep: Preprocessing) -> tuple[np.ndarray, np.ndarray, str]:
    """The images early stopping holds out of the training split (training.holdout): the float
    training and the fine-tuning never fit them."""
    parts = training.holdout(train, seed)
    held, where = (parts[1], "held-out training images") if parts is not None else (train, "training images (a class is too small to hold any out)")
    held = held.sample(SENSITIVITY_MAX_IMAGES, seed)
    images, labels = held.read(np.arange(len(held)))
    return prep.apply(images), labels, where


def _top1(net, x: np.ndarray, y: np.ndarray) -> float:
    probs = np.concatenate([net(x[i:i + 256], training=False).numpy() for i in range(0, len(x), 256)])
    return float(np.mean(probs.argmax(1) == y))


class SensitivityConfig(StageConfig):
    preprocessing: dict
    seed: int


class SensitivityStage(Stage):
    """Each group's top-1 pruned alone at each ratio (sensitivity.curves), for the chooser."""

    name = "sensitivity"
    tools = TF_TOOLS
    Config = SensitivityConfig

    def run(self, config: SensitivityConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.compress import filter_pruning, sensitivity

        model = load_float_model(inputs["model"])
        x, y, where = _held_out(open_split(inputs["data"], "train"), config.seed, Preprocessing.from_dict(config.preprocessing))
        graph = filter_pruning.read_graph(model)
        log.info("prune %s: %d groups, sensitivity on %d %s", model.name, len(graph.groups), len(x), where)
        return {"sensitivity": {**sensitivity.curves(graph, lambda: _top1(model, x, y)), "images": int(len(x)), "measured_on": where}}


class PruneStage(Stage):
    name = "prune"
    tools = TF_TOOLS
    Config = PruneConfig

    def run(self, config: PruneConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.compress import filter_pruning, sensitivity

        teacher = load_float_model(inputs["model"])
        model = load_float_model(inputs["model"])  # pruned through a copy: the teacher stays whole
        prep = Preprocessing.from_dict(config.preprocessing)
        train = open_split(inputs["data"], "train")
        x, y, _ = _held_out(train, config.seed, prep)
        top1 = functools.partial(_top1, x=x, y=y)
        graph = filter_pruning.read_graph(model)
        curves = inputs["sensitivity"].result["sensitivity"]
        if config.speedup:  # chosen on the device (stages/prune_choice.py)
            choice = inputs["choice"].result
            ratios, chosen = choice["group_ratios"], {k: choice[k] for k in ("predicted_speedup", "speedup_checks", "latency_table")}
        elif config.ratios:
            unknown = sorted(set(config.ratios) - {g.name for g in graph.groups})
            if unknown:
                raise UserInputError(f"--prune-ratios-from {config.ratios_from}: group '{unknown[0]}' is not in {model.name} "
                                     f"(its groups: {', '.join(g.name for g in graph.groups[:5])}, ...): another architecture")
            ratios, chosen = config.ratios, {}
        else:
            ratios, chosen = sensitivity.choose(graph, curves, config.keep_macs), {}
        pruned = filter_pruning.prune(graph, graph.keep_mask(ratios))
        before = top1(pruned)
        training.use_fast_batchnorm(pruned)
        history, stopping = training.fit(
            pruned, train, prep, epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
            seed=config.seed, augment=config.augment, what="prune fine-tune", patience=config.patience,
            teacher=teacher if config.distill else None, distill=config.distill,
        )
        pruned.save(workdir / "model.keras")
        facts = model_facts(pruned)
        unpruned = graph.macs()
        log.info("prune %s: %.1f %% of the MACs kept, held-out top-1 %.3f unpruned, %.3f pruned, %.3f fine-tuned",
                 model.name, 100 * facts["macs"] / unpruned, curves["baseline_top1"], before, top1(pruned))
        return {
            "model_file": "model.keras", "trusted": False, "history": history, "augment": config.augment,
            "images": len(train), "early_stopping": stopping, **facts,
            "compression": {**recipe(config), "macs_kept": facts["macs"] / unpruned, "unpruned_macs": unpruned,
                            "unpruned_params": int(model.count_params()), "group_ratios": ratios, **chosen},
            "sensitivity": {**curves, "top1_pruned_before_fine_tuning": before, "top1_after_fine_tuning": top1(pruned)},
        }
