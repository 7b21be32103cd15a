"""Tensor layouts: TFLite takes NHWC, ncnn and ONNX models take NCHW."""
from __future__ import annotations

import numpy as np


def to_nchw(x_nhwc: np.ndarray) -> np.ndarray:
    """Preprocessed NHWC images as the NCHW layout ncnn and ONNX models take."""
    return np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))
