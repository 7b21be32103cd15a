"""Weight clustering with tfmot: at most N values per clustered kernel after strip_clustering, and
at most N int8 values per output channel after cluster-preserving QAT and int8 conversion."""
import numpy as np
import pytest

from pipeline.compress import clustering, common
from tests.compress.tiny import colour_split, pointwise_model, preprocessing


def test_tfmot_clusters_conv_and_dense_kernels_not_depthwise_or_batchnorm():
    model = pointwise_model()
    wrapped = clustering.cluster(model, 8)
    expected = [layer.name for layer in model.layers if type(layer).__name__ in ("Conv2D", "Dense")]
    assert clustering.clustered_layer_names(wrapped) == expected
    with pytest.raises(ValueError, match="kmeans"):
        clustering.cluster(model, 8, init="random")


def test_values_per_channel_counts_each_output_channel():
    weights = np.array([[1, 1, 2, 2], [1, 2, 3, 4]], np.int8)
    assert clustering.max_values_per_channel(weights) == 4


@pytest.mark.slow
@pytest.mark.parametrize("init", ["kmeans++", "linear"])
def test_clusters_survive_strip_cluster_preserving_qat_and_int8_conversion(tmp_path, init):
    from converters import tflite
    from pipeline.models import training
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    split, prep = colour_split(tmp_path), preprocessing()
    dense = pointwise_model()
    dense_fp32 = tflite.convert(dense, "fp32")
    wrapped = clustering.cluster(dense, 4, init)
    training.fit(wrapped, split, prep, epochs=2, batch_size=8, learning_rate=1e-3, seed=0, augment="none", what="t")
    names = clustering.clustered_layer_names(wrapped)
    stripped = clustering.strip(wrapped)
    assert all(1 < n <= 4 for n in clustering.clusters_report(stripped, names).values())

    qat = common.quantize_with_scheme(stripped, "cluster-preserve")
    training.fit(qat, split, prep, epochs=1, batch_size=8, learning_rate=1e-4, seed=0, augment="none", what="t")
    int8 = tflite.convert(qat, "int8-qat", calibration=prep.apply(split.read(np.arange(8))[0]))
    from pipeline.compress.sparsity import tflite_weights

    filters = {name: w for name, w in tflite_weights(int8).items() if w.dtype == np.int8 and w.shape[0] > 1}
    assert len(filters) == len(names)  # CONV_2D (O,H,W,I), FULLY_CONNECTED (O,I); depthwise (1,H,W,C) is not clustered
    # What tfmot 0.8 preserves, precisely: kernels its cluster-preserving quantizer wraps (a FakeQuant
    # in the converted op's name: Conv2D followed by BatchNormalization, Dense) keep at most N int8
    # values per output channel (each channel has its own scale). A Conv2D followed directly by an
    # activation gets no preserving quantizer: QAT moves its weights freely (more than N values).
    preserved = {name: w for name, w in filters.items() if "FakeQuant" in name}
    assert all(clustering.max_values_per_channel(w) <= 4 for w in preserved.values())
    last_conv = [layer.name for layer in dense.layers if type(layer).__name__ == "Conv2D"][-1]  # the one without BatchNorm
    assert [name for name in filters if name not in preserved] == [f"pointwise/quant_{last_conv}/Conv2D"]
    assert common.gzip_size(tflite.convert(stripped, "fp32")) < common.gzip_size(dense_fp32)


@pytest.mark.slow
def test_a_cluster_preserving_qat_model_saves_and_loads(tmp_path):
    """tfmot builds the preserving quantizer's variables from the weights it wraps: the QAT stage
    keeps the clustered float model so that loading rebuilds on it (the saved config alone cannot)."""
    from pipeline.stages.base import StageOutput
    from pipeline.stages.qat import QAT_MODEL_FILE, QAT_SOURCE_FILE, load_qat_model
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    stripped = clustering.strip(clustering.cluster(pointwise_model(), 4))
    qat = common.quantize_with_scheme(stripped, "cluster-preserve")
    stripped.save(tmp_path / QAT_SOURCE_FILE)  # as QatStage.run does for this scheme
    with common.quantize_scope():
        qat.save(tmp_path / QAT_MODEL_FILE)
    x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
    loaded = load_qat_model(StageOutput("qat", "k", tmp_path, {"scheme": "cluster-preserve"}, False, 0.0))
    assert np.allclose(loaded.predict(x, verbose=0), qat.predict(x, verbose=0), atol=1e-6)
    (tmp_path / QAT_SOURCE_FILE).unlink()  # what loading did before: the saved file alone
    with pytest.raises(ValueError, match="Weight count mismatch"):
        load_qat_model(StageOutput("qat", "k", tmp_path, {"scheme": "cluster-preserve"}, False, 0.0))
