"""Knowledge distillation: the loss against a hand computation, and a train step on a QAT model."""
from __future__ import annotations

import numpy as np
import pytest


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_loss_is_hintons_kl_plus_cross_entropy_on_one_batch():
    from pipeline.compress.distill import distillation_loss

    rng = np.random.default_rng(0)
    student_logits, teacher_logits = rng.normal(size=(5, 4)) * 2, rng.normal(size=(5, 4)) * 2
    labels = np.array([0, 3, 1, 2, 3])
    t, alpha = 4.0, 0.7
    soft_t, soft_s = _softmax(teacher_logits / t), _softmax(student_logits / t)
    kl = (soft_t * np.log(soft_t / soft_s)).sum(-1)
    ce = -np.log(_softmax(student_logits)[np.arange(5), labels])
    expected = np.mean(alpha * t * t * kl + (1 - alpha) * ce)
    got = distillation_loss(labels, _softmax(student_logits).astype("float32"), _softmax(teacher_logits).astype("float32"), t, alpha)
    assert float(got) == pytest.approx(expected, rel=1e-4)
    # alpha 0: the labels alone, as sparse categorical cross-entropy.
    assert float(distillation_loss(labels, _softmax(student_logits).astype("float32"),
                                   _softmax(teacher_logits).astype("float32"), t, 0.0)) == pytest.approx(ce.mean(), rel=1e-4)


def test_student_copying_its_teacher_pays_only_the_label_term():
    from pipeline.compress.distill import distillation_loss

    probs = _softmax(np.random.default_rng(1).normal(size=(3, 5))).astype("float32")
    labels = np.array([1, 2, 0])
    ce = -np.log(probs[np.arange(3), labels]).mean()
    assert float(distillation_loss(labels, probs, probs, 3.0, 0.5)) == pytest.approx(0.5 * ce, rel=1e-4)


@pytest.mark.slow
def test_distilled_fit_trains_a_quantize_model_student(image_folder, tmp_path):
    """training.fit with a teacher: the QAT wrapper model learns (loss falls) and stays a QAT model."""
    from tests.conftest import tiny_model
    from pipeline.compress.distill import DistillConfig
    from pipeline.data import Preprocessing
    from pipeline.datastore import Split, ImageStore, write_store
    from pipeline.models import training
    from pipeline.stages.qat import quantize
    from pipeline import data as datasets

    images = datasets.load_image_folder(image_folder, 16, 16)
    path = tmp_path / "store.npy"
    write_store(path, len(images.labels), iter(images.images))
    split = Split(ImageStore(path), np.arange(len(images.labels)), np.asarray(images.labels))
    prep = Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3)
    teacher = tiny_model()
    training.fit(teacher, split, prep, epochs=8, batch_size=8, learning_rate=1e-2, seed=0, augment="none", what="teacher")
    student = quantize(tiny_model(name="student"))
    before = [w.numpy().copy() for w in student.trainable_weights]
    history, _ = training.fit(student, split, prep, epochs=3, batch_size=8, learning_rate=5e-3, seed=0, augment="none",
                              what="qat", teacher=teacher, distill=DistillConfig(temperature=4, alpha=0.7), patience=3)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["loss"] > 0  # the distillation loss, as logged
    assert all("held_out_accuracy" in row for row in history)  # early stopping's held-out images: the student alone
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, student.trainable_weights))
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in student.layers)
