"""Running ncnn artifacts in ncnn's Python runtime (the `ncnn` wheel), on the CPU.

ncnn takes one CHW image per call. On x86, int8 artifacts run with the packed layout off, so the
accuracy measured here is the one ARM's kernels give (device_runner.ncnn_int8_on_x86). The numpy
array behind an `ncnn.Mat`, and the Mat itself, must stay alive while the extractor uses them (a temporary gives garbage or a crash).
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError
from pipeline.targets.device_runner import ncnn_int8_on_x86

INPUT_BLOB = "in0"
OUTPUT_BLOB = "out0"


def options(precision: str) -> dict[str, bool]:
    """Runtime options per artifact precision: fp16 storage/packing/arithmetic only for the fp16
    artifact (ncnn enables them wherever the CPU supports them), int8 inference for int8 layers."""
    fp16 = precision == "fp16"
    return {
        "use_fp16_storage": fp16,
        "use_fp16_packed": fp16,
        "use_fp16_arithmetic": fp16,
        "use_packing_layout": True,
        "use_int8_inference": True,
    }


def open_net(param: Path, weights: Path, precision: str = "fp32", threads: int = 1):
    import ncnn

    net = ncnn.Net()
    net.opt.use_vulkan_compute = False
    net.opt.num_threads = threads
    chosen = options(precision)
    if ncnn_int8_on_x86(param):  # x86's packed int8 depthwise kernel rounds its scale; unpacked, x86 gives ARM's numbers
        chosen["use_packing_layout"] = False
    for name, value in chosen.items():
        setattr(net.opt, name, value)
    if net.load_param(str(param)) != 0:
        raise ToolError(f"ncnn cannot load {param.name}: not a valid .param, or a layer type ncnn does not have")
    if net.load_model(str(weights)) != 0:
        raise ToolError(f"ncnn cannot load {weights.name}: its size does not match {param.name}")
    return net


def blobs(net, x_nchw: np.ndarray, names: list[str]) -> Iterator[dict[str, np.ndarray]]:
    """For each image, the named blobs' values (one extractor per image, blobs computed once)."""
    import ncnn

    for image in x_nchw:
        chw = np.ascontiguousarray(image, dtype=np.float32)
        mat = ncnn.Mat(chw)  # both must outlive the extraction
        extractor = net.create_extractor()
        # Light mode frees a blob once consumed; a later extract of it would return an empty Mat.
        extractor.set_light_mode(len(names) == 1)
        extractor.input(INPUT_BLOB, mat)
        values = {}
        for name in names:
            if name == INPUT_BLOB:
                values[name] = chw.copy()
                continue
            ret, out = extractor.extract(name)
            if ret != 0 or out.w == 0:  # numpy on an empty Mat would crash
                raise ToolError(f"ncnn failed to compute blob {name!r} (code {ret})")
            values[name] = np.array(out)
        yield values


def predictor(param: Path, weights: Path, precision: str = "fp32", threads: int = 1):
    """A function: float NCHW inputs -> (N, classes) outputs, with one loaded net for every call."""
    net = open_net(param, weights, precision, threads)
    return lambda x_nchw: np.stack([v[OUTPUT_BLOB].reshape(-1) for v in blobs(net, x_nchw, [OUTPUT_BLOB])])


def predict(param: Path, weights: Path, x_nchw: np.ndarray, precision: str = "fp32", threads: int = 1) -> np.ndarray:
    """Float NCHW inputs -> (N, classes) outputs."""
    return predictor(param, weights, precision, threads)(x_nchw)
