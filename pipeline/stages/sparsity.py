"""sparsity: magnitude pruning (tfmot prune_low_magnitude, PolynomialDecay) of a float model.

Fine-tunes on the training split minus a held-out tenth, strips the pruning wrappers, and writes
a plain float model in the train stage's format: QAT (scheme "prune-preserve"), conversion,
verification and benchmarks take it like any model. The result says how sparse each kernel is,
the held-out top-1 before and after, and gzip sizes (pipeline.compress.finetune).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.compress import finetune, sparsity
from pipeline.compress.sparsity import MIN_STEPS
from pipeline.errors import UserInputError
from pipeline.models import training
from pipeline.stages.base import FitConfig, Stage, StageOutput
from pipeline.stages.model import TF_TOOLS

log = logging.getLogger("deploy")


class SparsityConfig(FitConfig):
    sparsity: float = Field(gt=0, lt=1)
    scope: Literal["pointwise", "all"] = "pointwise"  # pipeline.compress.sparsity.SCOPES
    xnnpack_padding: bool = True  # re-pad 3x3 stride-2 convs (1, 1) so XNNPACK's sparse path can apply
    gzip_sizes: bool = True  # convert the dense and the sparse model to measure gzip sizes (4 conversions)
    min_steps: int = Field(default=MIN_STEPS, ge=0)  # more epochs than `epochs` if these need it


class SparsityStage(Stage):
    name = "sparsity"
    tools = (*TF_TOOLS, "tensorflow-model-optimization")
    Config = SparsityConfig

    def run(self, config: SparsityConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        begun = finetune.start(inputs, config.preprocessing, config.seed)
        model, repadded, why_not = begun.dense, [], None
        if config.xnnpack_padding:
            try:
                model, repadded = sparsity.symmetric_stride2_padding(begun.dense)
            except ValueError as e:
                why_not = str(e)
        epochs = finetune.epochs_for(len(begun.fit), config.batch_size, config.epochs, config.min_steps)
        if epochs > config.epochs:
            log.info("  sparsity: %d epochs instead of %d, so the schedule gets at least %d steps on %d images",
                     epochs, config.epochs, config.min_steps, len(begun.fit))
        steps = finetune.steps(len(begun.fit), config.batch_size, epochs)
        wrapped, callbacks = sparsity.prune(model, config.sparsity, steps, config.scope)
        pruned = sparsity.pruned_layer_names(wrapped)
        if not pruned:
            raise UserInputError(f"--sparsity: {begun.dense.name} has no layer tfmot prunes in scope '{config.scope}'"
                                 + (" (1x1 Conv2D); use sparsity_scope: all" if config.scope == "pointwise" else ""))
        history, _ = training.fit(
            wrapped, begun.fit, begun.prep, epochs=epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
            seed=config.seed, augment=config.augment, what="sparsity", callbacks=callbacks)
        model = sparsity.strip(wrapped)
        report = sparsity.sparsity_report(model, pruned)
        result = finetune.finish(
            begun, model, workdir, history, config,
            compression={"method": "magnitude", "sparsity": config.sparsity, "scope": config.scope},
            sparsity=report, pruned_layers=pruned, epochs_run=epochs,
            xnnpack={"repadded_layers": repadded, "repad_refused": why_not,
                     "tfmot_policy_check": sparsity.xnnpack_policy_check(model) or "ok"})
        log.info("  sparsity: %.1f %% of the pruned kernels zero (%.1f %% of all), held-out top-1 %s -> %s",
                 100 * report["pruned_layers"], 100 * report["overall"], result["top1_before"], result["top1_after"])
        return result
