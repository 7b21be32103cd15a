"""Running ONNX files in onnxruntime on the CPU: the reference for ONNX input and the desktop baseline."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline import no_telemetry


def session(path: Path, threads: int | None = None):
    """An onnxruntime CPU session; raises whatever onnxruntime raises for a file it cannot load."""
    no_telemetry.apply()  # also when the library is used without the CLI
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # warnings about unused initializers are not the user's concern
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def predictor(path: Path, threads: int | None = None):
    """A function: float NCHW inputs -> (N, classes) outputs, one image per call (the model's batch
    is 1), with one session for every call; onnxruntime's failures become ToolError."""
    from pipeline.errors import ToolError

    def failed(e: Exception) -> ToolError:
        return ToolError(f"onnxruntime failed on {path.name}: {str(e).splitlines()[0][:300]}")

    try:
        sess = session(path, threads)
    except Exception as e:  # onnxruntime's exception types are its own
        raise failed(e) from e
    name = sess.get_inputs()[0].name

    def run(x_nchw: np.ndarray) -> np.ndarray:
        try:
            return np.concatenate([sess.run(None, {name: image[None].astype(np.float32)})[0].reshape(1, -1) for image in x_nchw])
        except Exception as e:
            raise failed(e) from e

    return run


def predict(path: Path, x_nchw: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Float NCHW inputs -> (N, classes) outputs."""
    return predictor(path, threads)(x_nchw)
