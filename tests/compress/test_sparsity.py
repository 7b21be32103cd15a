"""Magnitude sparsity with tfmot: the schedule, XNNPACK's padding rewrite, and zeros that survive
strip_pruning, pruning-preserving QAT and int8 conversion."""
import numpy as np
import pytest

from pipeline.compress import common, sparsity
from tests.compress.tiny import colour_split, pointwise_model, preprocessing


def test_schedule_reaches_the_target_on_a_step_where_tfmot_prunes():
    for total in (1, 7, 30, 1000):
        s = sparsity.schedule(0.8, total)
        end, frequency = s.get_config()["config"]["end_step"], s.get_config()["config"]["frequency"]
        assert end <= max(total, 1) and end % frequency == 0
        should_prune, target = s(end)
        assert bool(should_prune) and float(target) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sparsity.schedule(1.0, 10)


def test_small_data_sets_get_enough_schedule_steps():
    from pipeline.compress.finetune import epochs_for

    assert epochs_for(1298, 64, 5, min_steps=600) == 29  # the demo digits: 21 steps an epoch
    assert epochs_for(64_000, 64, 5, min_steps=600) == 5  # 1000 steps an epoch: the flag's epochs
    assert epochs_for(10, 64, 3, min_steps=0) == 3


def test_symmetric_padding_makes_a_same_padded_stem_acceptable_to_tfmots_xnnpack_check():
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    model = pointwise_model(stem_padding="same")
    assert "Could not find `Conv2D 3x3`" in sparsity.xnnpack_policy_check(model)
    rebuilt, rewritten = sparsity.symmetric_stride2_padding(model)
    assert rewritten == [model.layers[1].name]
    assert sparsity.xnnpack_policy_check(rebuilt) is None
    assert rebuilt.output_shape == model.output_shape and rebuilt.count_params() == model.count_params()
    x = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype(np.float32)
    for old, new in zip(model.weights, rebuilt.weights):
        assert np.array_equal(old.numpy(), new.numpy())
    already = pointwise_model()
    unchanged, none = sparsity.symmetric_stride2_padding(already)
    assert none == []
    assert np.array_equal(unchanged.predict(x, verbose=0), already.predict(x, verbose=0))


def test_pointwise_scope_prunes_only_1x1_convolutions_and_the_report_counts_their_zeros():
    model = pointwise_model()
    wrapped, callbacks = sparsity.prune(model, 0.8, 20, scope="pointwise")
    names = sparsity.pruned_layer_names(wrapped)
    assert names == [layer.name for layer in model.layers if type(layer).__name__ == "Conv2D" and layer.kernel_size == (1, 1)]
    assert type(callbacks[0]).__name__ == "UpdatePruningStep"
    everything = sparsity.pruned_layer_names(sparsity.prune(pointwise_model(), 0.8, 20, scope="all")[0])
    assert len(everything) == 4  # stem conv, two 1x1 convs, dense; tfmot prunes no depthwise or BatchNorm weight
    layer = model.get_layer(names[0])
    kernel = layer.get_weights()[0]
    kernel.flat[: kernel.size // 2] = 0
    layer.set_weights([kernel])
    report = sparsity.sparsity_report(model, names)
    assert report["per_layer"][names[0]] == pytest.approx(0.5, abs=1e-3)
    assert report["pruned_layers"] == pytest.approx(128 / (8 * 32 + 32 * 32), abs=1e-3)  # over both 1x1 kernels


def test_gzip_size_shrinks_zeros():
    dense = np.random.default_rng(0).normal(size=4096).astype(np.float32)
    sparse = dense.copy()
    sparse[np.abs(sparse) < 1.3] = 0  # ~80 % zeros
    assert common.gzip_size(sparse.tobytes()) < 0.5 * common.gzip_size(dense.tobytes())


def test_an_unknown_qat_scheme_is_named():
    with pytest.raises(ValueError, match="prune-preserve"):
        common.quantize_with_scheme(pointwise_model(), "bogus")


@pytest.mark.slow
def test_zeros_survive_strip_pruning_preserving_qat_and_int8_conversion(tmp_path):
    from converters import tflite
    from pipeline.models import training
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    split, prep = colour_split(tmp_path), preprocessing()
    model = pointwise_model()
    dense_fp32 = tflite.convert(model, "fp32")
    wrapped, callbacks = sparsity.prune(model, 0.8, total_steps=3 * 12)
    training.fit(wrapped, split, prep, epochs=3, batch_size=8, learning_rate=1e-3, seed=0, augment="none", what="t",
                 callbacks=callbacks)
    stripped = sparsity.strip(wrapped)
    pruned = sparsity.pruned_layer_names(wrapped)
    report = sparsity.sparsity_report(stripped, pruned)
    assert all(report["per_layer"][name] >= 0.79 for name in pruned)

    qat = common.quantize_with_scheme(stripped, "prune-preserve")
    training.fit(qat, split, prep, epochs=1, batch_size=8, learning_rate=1e-4, seed=0, augment="none", what="t")
    int8 = tflite.convert(qat, "int8-qat", calibration=prep.apply(split.read(np.arange(8))[0]))
    weights = sparsity.tflite_weights(int8)
    pointwise = [w for w in weights.values() if w.dtype == np.int8 and w.shape[1:3] == (1, 1)]
    assert len(pointwise) == 2
    assert all(float((w == 0).mean()) >= 0.79 for w in pointwise)  # int8 zero (symmetric weights: zero point 0)

    sparse_fp32 = tflite.convert(stripped, "fp32")
    assert common.gzip_size(sparse_fp32) < common.gzip_size(dense_fp32)
    stored_sparse = tflite.convert(stripped, "fp32", sparse=True)
    assert sparsity.op_counts(stored_sparse).get("DENSIFY", 0) >= 1


@pytest.mark.slow
def test_a_prune_preserving_qat_model_saves_and_loads(tmp_path):
    from pipeline.stages.qat import QAT_MODEL_FILE, load_qat_model
    from pipeline.stages.base import StageOutput

    qat = common.quantize_with_scheme(pointwise_model(), "prune-preserve")
    with common.quantize_scope():
        qat.save(tmp_path / QAT_MODEL_FILE)
    loaded = load_qat_model(StageOutput("qat", "k", tmp_path, {}, False, 0.0))
    x = np.zeros((1, 16, 16, 3), np.float32)
    assert np.allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)


def test_sparsifying_leaves_the_given_model_dense():
    """tfmot wraps the model's own layers: without a copy, the caller's dense model would be pruned too."""
    model = pointwise_model()
    before = [w.copy() for w in model.get_weights()]
    sparse = sparsity.sparsify_untrained(model, 0.8)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    names = sparsity.pointwise_layer_names(sparse)
    assert len(names) == 2 and sparsity.sparsity_report(sparse, names)["pruned_layers"] == pytest.approx(0.8, abs=0.01)
