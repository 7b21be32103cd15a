"""The models users bring (issue 10): Keras 3 files, preprocessing layers, grayscale, preprocessing
found by measurement. Tiny models, trained here in seconds."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from pipeline.build import build
from pipeline.config import load_config
from pipeline.data import Preprocessing, demo_digits, load_image_file
from pipeline.errors import UserInputError
from pipeline.models import loading
from pipeline.stages.probe import candidates, flags

FAST = {"qat_epochs": 1, "calibration_images": 24, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25}


def _keras3():
    from pipeline.tf_import import tensorflow

    tensorflow()
    import keras

    return keras


def _config(model, data, out, **extra):
    return load_config(overrides={"models": [str(model)], "data": str(data), "out": out, **FAST, **extra})


# ---- fast: preprocessing arithmetic, config, data, file detection ------------------------------

def test_folded_preprocessing_equals_preprocessing_then_the_layer():
    prep = Preprocessing(4, 4, "RGB", (127.5, 100.0, 0.0), (127.5, 50.0, 1.0))
    scale, offset = np.array([1 / 255, 2.0, 0.5]), np.array([0.0, -1.0, 3.0])
    pixels = np.random.default_rng(0).integers(0, 256, (2, 4, 4, 3)).astype(np.uint8)
    np.testing.assert_allclose(prep.folded(scale, offset).apply(pixels), prep.apply(pixels) * scale + offset, rtol=1e-5, atol=1e-5)


def test_one_mean_value_is_accepted_and_two_are_refused():
    assert load_config(overrides={"mean": [0.0], "std": [255.0]}).mean == [0.0]
    with pytest.raises(UserInputError, match="--mean: .*3 values .* or 1"):
        load_config(overrides={"mean": [1.0, 2.0]})


def test_gray_data_loads_as_one_channel(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((8, 8, 3), (200, 100, 50), np.uint8)).save(tmp_path / "a.png")
    gray = load_image_file(tmp_path / "a.png", 4, 4, channels=1)
    assert gray.shape == (4, 4, 1) and gray[0, 0, 0] == round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)
    assert demo_digits(16, 16, 1).images.shape[1:] == (16, 16, 1)


def test_probe_candidates_and_their_flags():
    assert len(candidates(8, 8, 3)) == 8 and len(candidates(8, 8, 1)) == 4
    zero_one = dict(candidates(8, 8, 3))["[0,1] RGB"]
    assert flags(zero_one.to_dict()) == "--mean 0,0,0 --std 255,255,255 --channel-order RGB"
    assert flags(dict(candidates(8, 8, 1))["[0,1]"].to_dict()) == "--mean 0 --std 255"


def test_keras_version_is_read_from_the_file(tmp_path):
    k = _keras3()
    model = k.Sequential([k.Input((8, 8, 3)), k.layers.Conv2D(2, 3), k.layers.GlobalAveragePooling2D(), k.layers.Dense(2)])
    model.save(tmp_path / "k3.keras")
    model.save(tmp_path / "k3.h5")
    model.export(tmp_path / "k3_export", verbose=False)
    from tests.conftest import tiny_model

    tiny_model().save(tmp_path / "k2.keras")
    assert [loading.keras_generation(tmp_path / f) for f in ("k3.keras", "k3.h5", "k3_export", "k2.keras")] == [3, 3, 3, 2]
    for f in ("k3.keras", "k3.h5", "k3_export"):
        loaded = loading.load_keras_model(tmp_path / f)
        assert loading.is_keras3_model(loaded) and loading.image_model_shape(loaded, f).channels == 3


def test_keras3_lambda_needs_trust(tmp_path):
    k = _keras3()
    inputs = k.Input((8, 8, 3))
    x = k.layers.Lambda(lambda t: t * 2.0, name="double")(inputs)
    model = k.Model(inputs, k.layers.Dense(2)(k.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "l.keras")
    with pytest.raises(UserInputError, match="Lambda layer 'double'.*--trust-model"):
        loading.load_keras_model(tmp_path / "l.keras")


# ---- slow: whole builds -------------------------------------------------------------------------

def _gray_keras3_model(path: Path, front=None) -> Path:
    """A Keras 3 Sequential grayscale CNN behind Rescaling(1/255) and an augmentation layer, trained on raw digits."""
    k = _keras3()
    k.utils.set_random_seed(0)
    digits = demo_digits(16, 16, 1)
    layers = k.layers
    model = k.Sequential([
        k.Input((16, 16, 1)), *(front or [layers.Rescaling(1 / 255, name="scale_in"), layers.RandomFlip("horizontal", name="flip")]),
        layers.Conv2D(8, 3, strides=2, padding="same"), layers.BatchNormalization(momentum=0.9), layers.ReLU(),
        layers.Conv2D(16, 3, strides=2, padding="same"), layers.ReLU(),
        layers.GlobalAveragePooling2D(), layers.Dense(10, activation="softmax"),
    ])
    model.compile(k.optimizers.Adam(5e-3), "sparse_categorical_crossentropy")
    model.fit(digits.images.astype(np.float32), digits.labels, epochs=10, batch_size=32, verbose=0)
    model.save(path)
    return path


@pytest.mark.slow
def test_keras3_grayscale_model_with_rescaling_builds_with_qat_everywhere(tmp_path):
    path = _gray_keras3_model(tmp_path / "gray.keras")
    out = tmp_path / "out"
    report = build(_config(path, "demo", out, precisions=["fp32", "int8-qat"], formats=["tflite", "onnx", "ncnn"],
                           ncnn_precisions=["fp32", "int8"], require_qat=True))
    model = report.models[0]
    assert model.keras_twin.status == "ok" and model.keras_twin.max_abs_diff <= 1e-5
    assert model.keras_twin.folded == ["'scale_in' (Rescaling)"] and model.keras_twin.removed == ["'flip' (RandomFlip)"]
    assert model.preprocessing_probe.chosen == "raw [0,255]" and model.qat.status == "ok"
    # The artifact takes what the twin takes: raw pixels / 255, one channel.
    assert model.preprocessing["channels"] == 1 and model.preprocessing["mean"] == [0.0]
    assert model.preprocessing["std"] == pytest.approx([255.0])
    assert model.float_accuracy.top1 > 0.6
    ids = {a.id for a in report.artifacts}
    assert {"gray_fp32", "gray_int8-qat", "gray_fp32.onnx", "gray_fp32.ncnn", "gray_int8.ncnn"} <= ids
    for a in report.artifacts:
        metadata = json.loads((out / a.metadata_path).read_text())
        assert metadata["preprocessing"]["channels"] == 1
        if a.precision in ("fp32",):
            assert a.accuracy.agreement >= 0.99, a.id
        if a.int8_check is not None:
            assert a.int8_check.fully_int8, a.id


@pytest.mark.slow
def test_keras3_model_without_twin_falls_back_to_ptq_or_fails_when_qat_is_required(tmp_path):
    k = _keras3()
    front = [k.layers.UpSampling2D(name="up"), k.layers.AveragePooling2D(2)]  # no tf_keras twin in this version
    path = _gray_keras3_model(tmp_path / "up.keras", front=[k.layers.Rescaling(1 / 255), *front])
    with pytest.raises(UserInputError, match=r"layer 'up' \(UpSampling2D\).*--require-qat"):
        build(_config(path, "demo", tmp_path / "strict", precisions=["int8-qat"], formats=["tflite"], require_qat=True))
    report = build(_config(path, "demo", tmp_path / "out", precisions=["fp32", "int8-qat"], formats=["tflite", "onnx"]))
    assert report.models[0].qat.status == "unsupported" and "'up' (UpSampling2D)" in report.models[0].qat.reason
    assert {a.precision for a in report.artifacts} == {"fp32", "int8-ptq"}
    fp32 = [a for a in report.artifacts if a.precision == "fp32"]
    assert all(a.accuracy.agreement >= 0.99 for a in fp32)  # TFLite and ONNX made from the Keras 3 model itself


def _torch_onnx_on_pixels_over_255(path: Path) -> Path:
    """A 1-channel PyTorch CNN trained on the digits as pixel / 255 (solid-colour images would
    classify under any affine preprocessing: the digits' strokes do not)."""
    import torch

    torch.manual_seed(0)
    digits = demo_digits(16, 16, 1)
    x = torch.from_numpy(digits.images / 255.0).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(digits.labels)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    optimizer = torch.optim.Adam(model.parameters(), 0.01)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    torch.onnx.export(model.eval(), torch.zeros(1, 1, 16, 16), str(path), dynamo=False)
    return path


@pytest.mark.slow
def test_onnx_model_trained_on_pixels_over_255_gets_its_preprocessing_found(tmp_path, caplog):
    path = _torch_onnx_on_pixels_over_255(tmp_path / "torch.onnx")
    caplog.set_level(logging.INFO, logger="deploy")
    report = build(_config(path, "demo", tmp_path / "out", formats=["onnx", "ncnn"], ncnn_precisions=["int8"]))
    model = report.models[0]
    assert model.preprocessing_probe.chosen == "[0,1]"
    assert model.preprocessing["mean"] == [0.0] and model.preprocessing["std"] == [255.0]
    scores = {c.name: c.top1 for c in model.preprocessing_probe.candidates}
    assert model.float_accuracy.top1 == scores["[0,1]"] > 0.8 and scores["[-1,1]"] < scores["[0,1]"] - 0.2
    assert any("measured float top-1" in r.message and "--mean 0 --std 255" in r.message for r in caplog.records)
    int8 = next(a for a in report.artifacts if a.precision == "int8")
    assert int8.accuracy.agreement >= 0.9  # calibrated on pixel/255 inputs, not on [-1, 1]
    # Given the wrong preprocessing, the build warns with the flags to pass.
    caplog.clear()
    build(_config(path, "demo", tmp_path / "wrong", formats=["onnx"], mean=[255.0], std=[1.0]))
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING and "pass --mean" in r.message]
    assert warnings and "--mean 0 --std 255" in warnings[0]
