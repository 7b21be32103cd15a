"""Running MNN artifacts in MNN's Python runtime (the `mnn` wheel), on the CPU.

The session API (Interpreter, createSession, runSession): the path MNN's own benchmark tool times,
and steady here where the expression Module API measured 1-110 ms per call of the same 0.3 ms model.
MNN's precision mode "low" lets fp16 artifacts compute in fp16 where the CPU has fp16 arithmetic
(ARMv8.2); x86 computes in fp32 in every mode. Importing MNN prints the CPU features it found.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import ToolError


def precision_mode(precision: str) -> str:
    """MNN's session precision for an artifact precision."""
    return "low" if precision == "fp16" else "normal"


def open_session(path: Path, precision: str = "fp32", threads: int = 1):
    """(interpreter, session) for a .mnn file; ToolError when MNN cannot load it."""
    import MNN

    if not path.is_file() or path.stat().st_size == 0:
        raise ToolError(f"MNN cannot load {path.name}: the file is missing or empty")
    try:
        interpreter = MNN.Interpreter(str(path))
    except Exception as e:  # MNN raises a bare Exception for a file it cannot parse
        raise ToolError(f"MNN cannot load {path.name}: not a valid .mnn model ({e})") from e
    session = interpreter.createSession({"numThread": threads, "precision": precision_mode(precision)})
    if session is None or interpreter.getSessionInput(session) is None:
        raise ToolError(f"MNN cannot load {path.name}: not a valid .mnn model")
    return interpreter, session


def feed(interpreter, session, image_nchw: np.ndarray) -> None:
    """Copy one (1, C, H, W) float image into the session's input."""
    import MNN

    image = np.ascontiguousarray(image_nchw, dtype=np.float32)
    interpreter.getSessionInput(session).copyFrom(
        MNN.Tensor(image.shape, MNN.Halide_Type_Float, image, MNN.Tensor_DimensionType_Caffe))


def predictor(path: Path, precision: str = "fp32", threads: int = 1):
    """A function: float NCHW inputs -> (N, classes) outputs, one loaded session for every call."""
    import MNN

    interpreter, session = open_session(path, precision, threads)
    shape = tuple(interpreter.getSessionInput(session).getShape())

    def run(x_nchw: np.ndarray) -> np.ndarray:
        rows = []
        for image in x_nchw:
            if image[None].shape != shape:
                raise ValueError(f"MNN model {path.name} takes {shape}, given {image[None].shape}")
            feed(interpreter, session, image[None])
            interpreter.runSession(session)
            output = interpreter.getSessionOutput(session)
            host = MNN.Tensor(output, MNN.Tensor_DimensionType_Caffe)  # a host copy in plain NCHW order
            output.copyToHostTensor(host)
            rows.append(np.array(host.getNumpyData(), dtype=np.float32).reshape(-1))
        return np.stack(rows)

    return run
