"""clustering: weight clustering (tfmot cluster_weights) of a float model.

Fine-tunes the centroids on the training split minus a held-out tenth, strips the clustering
wrappers, and writes a plain float model in the train stage's format for QAT (scheme
"cluster-preserve"), conversion, verification and benchmarks. The result gives the distinct
values per clustered kernel, the held-out top-1 before and after, and gzip sizes.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field

from pipeline.compress import clustering, finetune
from pipeline.errors import UserInputError
from pipeline.models import training
from pipeline.stages.base import FitConfig, Stage, StageOutput
from pipeline.stages.model import TF_TOOLS

log = logging.getLogger("deploy")


class ClusteringConfig(FitConfig):
    clusters: int = Field(ge=2)
    init: Literal["kmeans++", "linear"] = "kmeans++"  # pipeline.compress.clustering.INITS
    gzip_sizes: bool = True


class ClusteringStage(Stage):
    name = "clustering"
    tools = (*TF_TOOLS, "tensorflow-model-optimization")
    Config = ClusteringConfig

    def run(self, config: ClusteringConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        begun = finetune.start(inputs, config.preprocessing, config.seed)
        try:
            wrapped = clustering.cluster(begun.dense, config.clusters, config.init)
        except ValueError as e:  # tfmot names the layer it cannot cluster
            raise UserInputError(f"--cluster {config.clusters}: {begun.dense.name}: {str(e).splitlines()[0]}") from e
        clustered = clustering.clustered_layer_names(wrapped)
        history, _ = training.fit(
            wrapped, begun.fit, begun.prep, epochs=config.epochs, batch_size=config.batch_size, learning_rate=config.learning_rate,
            seed=config.seed, augment=config.augment, what="clustering")
        model = clustering.strip(wrapped)
        result = finetune.finish(
            begun, model, workdir, history, config,
            compression={"method": "clustering", "clusters": config.clusters, "init": config.init},
            distinct_values=clustering.clusters_report(model, clustered), clustered_layers=clustered)
        log.info("  clustering: %d kernels at <= %d values, held-out top-1 %s -> %s",
                 len(clustered), config.clusters, result["top1_before"], result["top1_after"])
        return result
