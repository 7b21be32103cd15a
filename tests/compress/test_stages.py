"""The sparsity and clustering stages on a tiny model and image folder: a plain float model in the
train stage's format (QAT and conversion take it), and a result with the figures the report needs."""
import numpy as np
import pytest

from pipeline.stages.base import StageOutput
from tests.compress.tiny import pointwise_model

@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from pipeline.stages.data import DataConfig, DataStage
    from tests.conftest import make_image_folder

    image_folder = make_image_folder(tmp_path_factory.mktemp("images"), per_class=30)  # 10 % of each class held out: 2
    data_dir = tmp_path_factory.mktemp("data-stage")
    data = DataStage().run(DataConfig(source=str(image_folder), height=16, width=16, val_fraction=0.25, seed=0), {}, data_dir)
    model_dir = tmp_path_factory.mktemp("model-stage")
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)
    pointwise_model(stem_padding="same").save(model_dir / "model.keras")
    return {"data": StageOutput("data", "d", data_dir, data, False, 0.0),
            "model": StageOutput("train", "m", model_dir, {"model_file": "model.keras", "trusted": False}, False, 0.0)}


def _prep():
    from pipeline.data import Preprocessing

    return Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3).to_dict()


@pytest.mark.slow
def test_sparsity_stage_writes_a_sparse_plain_model_that_prune_preserving_qat_takes(inputs, tmp_path):
    from pipeline.stages.model import load_float_model
    from pipeline.stages.qat import QatConfig, QatStage, load_qat_model
    from pipeline.stages.sparsity import SparsityConfig, SparsityStage

    out = tmp_path / "sparsity"
    out.mkdir()
    result = SparsityStage().run(SparsityConfig(preprocessing=_prep(), sparsity=0.8, epochs=3, batch_size=8, learning_rate=1e-3,
                                                seed=0, gzip_sizes=True, min_steps=0), inputs, out)
    assert result["epochs_run"] == 3
    assert len(result["xnnpack"]["repadded_layers"]) == 1 and result["xnnpack"]["tfmot_policy_check"] == "ok"  # the stem
    assert len(result["pruned_layers"]) == 2 and result["sparsity"]["pruned_layers"] >= 0.79
    assert result["held_out_images"] > 0 and 0 <= result["top1_after"] <= 1
    assert result["gzip_bytes"]["compressed"]["fp32"] < result["gzip_bytes"]["dense"]["fp32"]
    # What report.json's compression recipe takes from this result (schema 1.5).
    from pipeline.report.assemble import _measured_compression
    from pipeline.report.schema import Compression

    recipe = Compression(method="magnitude", sparsity=0.8, **_measured_compression(result))
    assert recipe.zeros_in_pruned_kernels == result["sparsity"]["pruned_layers"] and 0 < recipe.zeros_in_all_kernels <= recipe.zeros_in_pruned_kernels
    assert recipe.gzip_bytes == result["gzip_bytes"] and recipe.max_distinct_values is None
    sparse = StageOutput("sparsity", "s", out, result, False, 0.0)
    model = load_float_model(sparse)
    assert model.count_params() == result["params"]
    qat_dir = tmp_path / "qat"
    qat_dir.mkdir()
    qat = QatStage().run(QatConfig(calibration_images=200, preprocessing=_prep(), epochs=1, batch_size=8, learning_rate=1e-4, seed=0, scheme="prune-preserve"),
                         {"model": sparse, "data": inputs["data"]}, qat_dir)
    assert qat["status"] == "ok" and qat["scheme"] == "prune-preserve"
    loaded = load_qat_model(StageOutput("qat", "q", qat_dir, qat, False, 0.0))
    from converters import tflite
    from pipeline.compress.sparsity import tflite_weights

    int8 = tflite.convert(loaded, "int8-qat", calibration=np.zeros((2, 16, 16, 3), np.float32))
    pointwise = [w for w in tflite_weights(int8).values() if w.ndim == 4 and w.shape[1:3] == (1, 1)]
    assert len(pointwise) == 2 and all(float((w == 0).mean()) >= 0.79 for w in pointwise), [float((w == 0).mean()) for w in pointwise]


@pytest.mark.slow
def test_clustering_stage_writes_a_clustered_plain_model(inputs, tmp_path):
    from pipeline.stages.clustering import ClusteringConfig, ClusteringStage
    from pipeline.stages.model import load_float_model

    result = ClusteringStage().run(ClusteringConfig(preprocessing=_prep(), clusters=8, epochs=1, batch_size=8, learning_rate=1e-4,
                                                    seed=0, gzip_sizes=False), inputs, tmp_path)
    assert set(result["distinct_values"]) == set(result["clustered_layers"]) and len(result["clustered_layers"]) == 4
    assert all(n <= 8 for n in result["distinct_values"].values())
    model = load_float_model(StageOutput("clustering", "c", tmp_path, result, False, 0.0))
    kernel = model.get_layer(result["clustered_layers"][-1]).get_weights()[0]
    assert len(np.unique(kernel)) <= 8 and result["gzip_bytes"] is None
    from pipeline.report.assemble import _measured_compression

    assert _measured_compression(result) == {"max_distinct_values": max(result["distinct_values"].values())}
