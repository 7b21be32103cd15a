"""The one place TensorFlow is imported, lazily, with the environment it needs.

TF_USE_LEGACY_KERAS makes `tf.keras` resolve to tf_keras (Keras 2), which
tensorflow-model-optimization requires; it must be set before the first import.
"""
import os


def tensorflow():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def keras():
    tensorflow()
    import tf_keras

    return tf_keras


def tfmot():
    tensorflow()
    import tensorflow_model_optimization as tfmot

    return tfmot
