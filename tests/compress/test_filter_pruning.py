"""Filter pruning on tiny models: groups read from the graph, a physically smaller model that
computes what the masked one does, the largest-L1 filters kept, MACs counted."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import UserInputError

FAMILIES = [("mobilenet_v1", 0.25), ("mobilenet_v2", 0.35), ("shufflenet_v2", 0.5), ("squeezenet", 0.25)]


def _randomise_batchnorm(model, seed=0):
    """Untrained BatchNorm statistics make every channel alike; random ones make outputs differ by channel."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])


def _outputs_masked(graph, keep, x):
    from pipeline.compress import filter_pruning as fp

    saved = fp.mask_weights(graph, keep)
    try:
        return graph.model(x, training=False).numpy()
    finally:
        fp.restore(saved)


@pytest.mark.parametrize("family,alpha", FAMILIES)
def test_builtin_family_prunes_consistently(family, alpha):
    from pipeline.compress import filter_pruning as fp
    from pipeline.models.architectures import build, count_macs

    model = build(family, 32, 5, alpha)
    _randomise_batchnorm(model)
    graph = fp.read_graph(model)
    assert graph.macs() == count_macs(model)
    assert len(graph.groups) > 3
    keep = graph.keep_mask({g.name: 0.5 for g in graph.groups})
    pruned = fp.prune(graph, keep)
    x = np.random.default_rng(1).normal(size=(4, 32, 32, 3)).astype("float32")
    full = model(x, training=False).numpy()
    masked = _outputs_masked(graph, keep, x)
    small = pruned(x, training=False).numpy()
    assert small.shape == full.shape
    assert np.abs(masked - full).max() > 1e-4  # the pruning changed something, so the next check means something
    np.testing.assert_allclose(small, masked, atol=1e-5)
    assert count_macs(pruned) == graph.macs(keep) < 0.6 * count_macs(model)
    assert pruned.count_params() < model.count_params()


def test_kept_filters_are_the_largest_l1():
    from pipeline.compress import filter_pruning as fp
    from pipeline.models.architectures import build

    model = build("mobilenet_v1", 32, 5, 0.25)
    graph = fp.read_graph(model)
    group = next(g for g in graph.groups if g.name == "conv_pw_3")
    assert group.producers == ["conv_pw_3"]  # a producer and its depthwise successor, no other producer
    pruned = fp.prune(graph, graph.keep_mask({"conv_pw_3": 0.25}))
    kernel = model.get_layer("conv_pw_3").get_weights()[0]
    l1 = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(0)
    kept = np.sort(np.argsort(l1)[::-1][: kernel.shape[-1] - round(0.25 * kernel.shape[-1])])
    np.testing.assert_array_equal(pruned.get_layer("conv_pw_3").get_weights()[0], kernel[..., kept])
    # Its BatchNorm, the depthwise conv after it and the next conv's inputs lose the same channels.
    np.testing.assert_array_equal(pruned.get_layer("conv_pw_3_bn").get_weights()[0],
                                  model.get_layer("conv_pw_3_bn").get_weights()[0][kept])
    np.testing.assert_array_equal(pruned.get_layer("conv_dw_4").get_weights()[0],
                                  model.get_layer("conv_dw_4").get_weights()[0][:, :, kept])
    np.testing.assert_array_equal(pruned.get_layer("conv_pw_4").get_weights()[0],
                                  model.get_layer("conv_pw_4").get_weights()[0][:, :, kept])


def _toy(merge: str):
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((8, 8, 3))
    a = k.layers.BatchNormalization(name="a_bn")(k.layers.Conv2D(6, 3, padding="same", name="a")(inputs))
    b = k.layers.Conv2D(6, 1, name="b")(k.layers.ReLU(name="a_relu")(a))
    joined = getattr(k.layers, merge)(name="merge")([a, b])
    c = k.layers.Conv2D(4, 1, name="c")(joined)
    outputs = k.layers.Dense(3, activation="softmax", name="out")(k.layers.GlobalAveragePooling2D(name="pool")(c))
    model = k.Model(inputs, outputs)
    _randomise_batchnorm(model)
    return model


def test_add_joins_its_producers_channel_by_channel():
    from pipeline.compress import filter_pruning as fp

    model = _toy("Add")
    graph = fp.read_graph(model)
    group = next(g for g in graph.groups if "a" in g.producers)
    assert group.producers == ["a", "b"] and len(group.units) == 6
    a, b = model.get_layer("a").get_weights()[0], model.get_layer("b").get_weights()[0]
    score = np.abs(a).reshape(-1, 6).sum(0) + np.abs(b).reshape(-1, 6).sum(0)  # summed over the group's producers
    np.testing.assert_allclose(np.sort(group.scores), np.sort(score), rtol=1e-6)
    keep = graph.keep_mask({group.name: 0.5})
    pruned = fp.prune(graph, keep)
    kept = np.sort(np.argsort(score)[3:])
    np.testing.assert_array_equal(pruned.get_layer("a").get_weights()[0], a[..., kept])
    np.testing.assert_array_equal(pruned.get_layer("b").get_weights()[0], b[:, :, kept][..., kept])
    np.testing.assert_array_equal(pruned.get_layer("c").get_weights()[0], model.get_layer("c").get_weights()[0][:, :, kept])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(pruned(x).numpy(), _outputs_masked(graph, keep, x), atol=1e-5)


def test_concatenate_offsets_the_second_input():
    from pipeline.compress import filter_pruning as fp

    model = _toy("Concatenate")
    graph = fp.read_graph(model)
    by_name = {g.name: g for g in graph.groups}
    assert set(by_name) == {"a", "b", "c"}  # concatenation joins nothing: each producer is its own group
    keep = graph.keep_mask({"a": 0.5, "b": 0.34})
    pruned = fp.prune(graph, keep)
    l1 = lambda w: np.abs(w).reshape(-1, w.shape[-1]).sum(0)  # noqa: E731
    kept_a = np.sort(np.argsort(l1(model.get_layer("a").get_weights()[0]))[3:])
    kept_b = np.sort(np.argsort(l1(model.get_layer("b").get_weights()[0]))[2:])
    c = model.get_layer("c").get_weights()[0]
    np.testing.assert_array_equal(pruned.get_layer("c").get_weights()[0], c[:, :, np.concatenate([kept_a, 6 + kept_b])])
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(pruned(x).numpy(), _outputs_masked(graph, keep, x), atol=1e-5)


def test_outputs_and_inputs_are_never_pruned():
    from pipeline.compress import filter_pruning as fp

    graph = fp.read_graph(_toy("Add"))
    assert "out" not in [p for g in graph.groups for p in g.producers]  # the classifier's outputs are the classes
    pruned = fp.prune(graph, graph.keep_mask({g.name: 0.9 for g in graph.groups}))
    assert pruned.output_shape == (None, 3) and pruned.input_shape == (None, 8, 8, 3)


def test_unsupported_layer_is_named():
    from pipeline.compress import filter_pruning as fp
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((8, 8, 3))
    x = k.layers.Conv2D(4, 3, name="conv")(inputs)
    x = k.layers.LayerNormalization(name="odd_norm")(x)
    outputs = k.layers.Dense(2)(k.layers.GlobalAveragePooling2D()(x))
    with pytest.raises(UserInputError, match=r"'odd_norm' \(LayerNormalization\)"):
        fp.read_graph(k.Model(inputs, outputs))
