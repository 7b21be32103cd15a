"""The one place TensorFlow is imported, lazily, with the environment it needs.

TF_USE_LEGACY_KERAS makes `tf.keras` resolve to tf_keras (Keras 2), which
tensorflow-model-optimization requires; it must be set before the first import.
"""
import logging
import os
import sys

log = logging.getLogger("deploy")


def tensorflow():
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from pipeline.native_stderr import capture_native_stderr

    # At import and device discovery TensorFlow prints oneDNN notes and a CUDA "error" on
    # machines without a GPU, before its log level applies; keep them for --debug only.
    with capture_native_stderr() as native:
        import tensorflow as tf

        tf.config.list_physical_devices()
    if native.text.strip():
        log.debug("tensorflow import: %s", native.tail(10))
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def keras():
    tensorflow()
    import tf_keras

    return tf_keras


def tfmot():
    tensorflow()
    import tensorflow_model_optimization as tfmot

    return tfmot
