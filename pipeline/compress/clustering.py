"""Weight clustering (weight sharing, as in Deep Compression) with tensorflow-model-optimization.

cluster_weights replaces each clusterable kernel by N shared values (centroids) and an index per
weight; fine-tuning moves the centroids; strip_clustering leaves a plain model whose kernels hold
at most N distinct values. Which layers: tfmot's registry (Conv2D and Dense kernels;
DepthwiseConv2D and BatchNormalization are wrapped but keep their weights unclustered).
Cluster-preserving QAT (pipeline.compress.common) keeps the sharing through int8: after
per-channel int8 conversion each output channel of a clustered kernel holds at most N values.
"""
from __future__ import annotations

import numpy as np

from pipeline.compress.common import copy_model

INITS = ("kmeans++", "linear")  # tfmot's CentroidInitialization.KMEANS_PLUS_PLUS / LINEAR


def cluster(model, clusters: int, init: str = "kmeans++"):
    """The model wrapped for clustering with `clusters` centroids per kernel."""
    from pipeline.tf_import import tfmot

    if init not in INITS:
        raise ValueError(f"unknown centroid initialisation {init!r} (choose from {', '.join(INITS)})")
    if clusters < 2:
        raise ValueError(f"clusters must be at least 2 (got {clusters})")
    keras_clustering = tfmot().clustering.keras
    method = {"kmeans++": keras_clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
              "linear": keras_clustering.CentroidInitialization.LINEAR}[init]
    return keras_clustering.cluster_weights(copy_model(model), number_of_clusters=clusters, cluster_centroids_init=method)


def strip(model):
    from pipeline.tf_import import tfmot

    return tfmot().clustering.keras.strip_clustering(model)


def clustered_layer_names(wrapped) -> list[str]:
    """Layers tfmot clusters: wrapped, with at least one clusterable weight."""
    return [layer.layer.name for layer in wrapped.layers
            if type(layer).__name__ == "ClusterWeights" and len(layer.clustering_algorithms) > 0]


def clusters_report(model, layers: list[str]) -> dict[str, int]:
    """Distinct values in each named layer's kernel of a plain (stripped) model."""
    from pipeline.compress.common import kernels

    return {name: int(len(np.unique(kernel))) for name, kernel in kernels(model) if name in layers}


def max_values_per_channel(weights: np.ndarray) -> int:
    """Most distinct values in any output channel of a TFLite filter (output channels first for
    CONV_2D / FULLY_CONNECTED, last for DEPTHWISE_CONV_2D: the caller passes channels first)."""
    flat = weights.reshape(weights.shape[0], -1)
    return max(len(np.unique(row)) for row in flat)
