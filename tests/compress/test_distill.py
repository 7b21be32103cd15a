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


def _split_and_teacher(image_folder, tmp_path):
    """The image folder at 16x16 as a training split, and a tiny model trained on it."""
    from tests.conftest import tiny_model
    from pipeline.data import Preprocessing
    from pipeline.datastore import Split, ImageStore, write_store
    from pipeline.models import training
    from pipeline import data as datasets

    images = datasets.load_image_folder(image_folder, 16, 16)
    path = tmp_path / "store.npy"
    write_store(path, len(images.labels), iter(images.images))
    split = Split(ImageStore(path), np.arange(len(images.labels)), np.asarray(images.labels))
    prep = Preprocessing(16, 16, "RGB", (127.5,) * 3, (127.5,) * 3)
    teacher = tiny_model()
    training.fit(teacher, split, prep, epochs=8, batch_size=8, learning_rate=1e-2, seed=0, augment="none", what="teacher")
    return split, prep, teacher


@pytest.mark.slow
def test_distilled_fit_trains_a_quantize_model_student(image_folder, tmp_path):
    """training.fit with a teacher: the QAT wrapper model learns (loss falls) and stays a QAT model."""
    from tests.conftest import tiny_model
    from pipeline.compress.distill import DistillConfig
    from pipeline.models import training
    from pipeline.stages.qat import quantize

    split, prep, teacher = _split_and_teacher(image_folder, tmp_path)
    student = quantize(tiny_model(name="student"))
    before = [w.numpy().copy() for w in student.trainable_weights]
    history, _ = training.fit(student, split, prep, epochs=3, batch_size=8, learning_rate=5e-3, seed=0, augment="none",
                              what="qat", teacher=teacher, distill=DistillConfig(temperature=4, alpha=0.7), patience=3)
    assert history[-1]["loss"] < history[0]["loss"] and history[-1]["loss"] > 0  # the distillation loss, as logged
    assert all("held_out_accuracy" in row and "held_out_agreement" in row for row in history)  # the student alone, and beside its teacher
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, student.trainable_weights))
    assert any(type(layer).__name__ == "QuantizeWrapperV2" for layer in student.layers)


@pytest.mark.slow
def test_a_fine_tuning_that_beats_no_epoch_of_its_start_keeps_the_start(image_folder, tmp_path):
    """start_is_candidate (QAT's setting): the student before fine-tuning agrees with its teacher on
    every held-out image (it is a copy); a learning rate that ruins it loses to that, and the start's
    weights come back, recorded as epoch 0."""
    from pipeline.compress.distill import DistillConfig
    from pipeline.models import training
    from pipeline.tf_import import keras

    split, prep, teacher = _split_and_teacher(image_folder, tmp_path)
    student = keras().models.clone_model(teacher)
    student.set_weights(teacher.get_weights())
    before = [w.copy() for w in student.get_weights()]
    history, stopping = training.fit(student, split, prep, epochs=2, batch_size=8, learning_rate=1.0, seed=0, augment="none",
                                     what="qat", teacher=teacher, distill=DistillConfig(), patience=2,
                                     watch_from=0, monitor="agreement", start_is_candidate=True)
    assert stopping["start"]["held_out_agreement"] == 1.0 and stopping["monitor"] == "agreement"
    assert min(row["held_out_agreement"] for row in history) < 1.0, history  # the rate did ruin it
    assert stopping["best_epoch"] == 0 and stopping["best_held_out_agreement"] == 1.0
    assert all(np.array_equal(b, w) for b, w in zip(before, student.get_weights()))
