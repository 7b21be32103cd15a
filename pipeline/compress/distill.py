"""Knowledge distillation (Hinton et al., 2015): a student fitted to its teacher's softened outputs
and to the hard labels.

loss = alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(y, softmax(z_s))

The T^2 keeps the soft term's gradients the same size whatever T (Hinton, section 2). The
models here end in a softmax, so their logits are recovered as log p: softmax is invariant to a
shift, so softmax(log p / T) is exactly the softened distribution.

`Distiller` wraps the student in a tf_keras Model with its own train_step, so that any student
works, a float model or tensorflow-model-optimization's quantize_model output (QAT), and
`training.fit` stays the one fitting loop (early stopping, logs) with a `teacher=` argument.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

EPSILON = 1e-7  # probabilities are clipped here before the log: a softmax can underflow to 0


class DistillConfig(BaseModel):
    """--distill-temperature and --distill-alpha, part of the cache key of the stages that distill."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=4.0, gt=0)
    alpha: float = Field(default=0.7, ge=0, le=1)  # weight of the soft targets; 1 - alpha on the labels


def distillation_loss(labels, student_probs, teacher_probs, temperature: float, alpha: float):
    """The batch mean of the loss above (tensors; labels are class indices)."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    log_s = tf.math.log(tf.clip_by_value(student_probs, EPSILON, 1.0))
    log_t = tf.math.log(tf.clip_by_value(teacher_probs, EPSILON, 1.0))
    soft_t = tf.nn.softmax(log_t / temperature)
    log_soft_s = tf.nn.log_softmax(log_s / temperature)
    kl = tf.reduce_sum(soft_t * (tf.math.log(tf.clip_by_value(soft_t, EPSILON, 1.0)) - log_soft_s), axis=-1)
    ce = -tf.gather(log_s, tf.cast(labels, tf.int32), axis=-1, batch_dims=1)
    return tf.reduce_mean(alpha * temperature ** 2 * kl + (1.0 - alpha) * ce)


def distiller(student, teacher, config: DistillConfig):
    """A tf_keras Model that trains `student` (in place) against `teacher` (frozen, inference mode)."""
    from pipeline.tf_import import keras, tensorflow

    tf, tf_keras = tensorflow(), keras()
    teacher.trainable = False

    class Distiller(tf_keras.Model):
        def __init__(self):
            super().__init__(name=f"{student.name}_distilled")
            self.student, self.teacher = student, teacher
            # Our own "loss" tracker: Keras reports the trackers in `metrics` at each epoch's end,
            # and the compiled loss's (cross-entropy) is never updated by this train step.
            self.loss_tracker = tf_keras.metrics.Mean(name="loss")
            # Top-1 agreement with the teacher: what early stopping can watch (training.fit(monitor="agreement")).
            self.agreement = tf_keras.metrics.Mean(name="agreement")

        @property
        def metrics(self):
            return [self.loss_tracker, self.agreement, *self.compiled_metrics.metrics]

        def call(self, x, training=False):
            return self.student(x, training=training)

        def train_step(self, data):
            x, y = data
            soft = self.teacher(x, training=False)
            with tf.GradientTape() as tape:
                probs = self.student(x, training=True)
                loss = distillation_loss(y, probs, soft, config.temperature, config.alpha)
            variables = self.student.trainable_variables
            self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return self._track(loss, y, probs, soft)

        def test_step(self, data):
            """Held-out images (early stopping): the student's loss on the labels, its agreement with the teacher."""
            x, y = data
            probs = self.student(x, training=False)
            return self._track(distillation_loss(y, probs, probs, config.temperature, 0.0), y, probs, self.teacher(x, training=False))

        def _track(self, loss, y, probs, soft):
            self.loss_tracker.update_state(loss)
            self.agreement.update_state(tf.cast(tf.equal(tf.argmax(probs, -1), tf.argmax(soft, -1)), tf.float32))
            self.compiled_metrics.update_state(y, probs)
            return {m.name: m.result() for m in self.metrics}

    return Distiller()
