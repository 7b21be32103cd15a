"""Running TFLite artifacts in LiteRT (ai-edge-litert), the runtime phones use."""
from __future__ import annotations

from pathlib import Path

import numpy as np

def _interpreter(path: Path, threads: int | None = None, delegates: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or scale == 0:
        return x.astype(detail["dtype"])
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(detail["dtype"])


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.float32 or scale == 0:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def predictor(path: Path, batch_size: int = 64, threads: int | None = None):
    """A function: float model inputs (N, H, W, C) -> float outputs (N, classes), batched when the
    model allows; one interpreter for every call."""
    interpreter = _interpreter(path, threads)
    dynamic_batch = interpreter.get_input_details()[0]["shape_signature"][0] == -1
    step = batch_size if dynamic_batch else 1
    allocated = None

    def run(x: np.ndarray) -> np.ndarray:
        nonlocal allocated
        outputs = []
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            inp = interpreter.get_input_details()[0]
            if dynamic_batch and allocated != len(chunk):
                interpreter.resize_tensor_input(inp["index"], [len(chunk), *inp["shape"][1:]])
                interpreter.allocate_tensors()
                allocated = len(chunk)
            elif allocated is None:
                interpreter.allocate_tensors()
                allocated = 1
            inp = interpreter.get_input_details()[0]
            out = interpreter.get_output_details()[0]
            interpreter.set_tensor(inp["index"], _quantize(chunk, inp))
            interpreter.invoke()
            outputs.append(_dequantize(interpreter.get_tensor(out["index"]), out))
        return np.concatenate(outputs)

    return run


def predict(path: Path, x: np.ndarray, batch_size: int = 64, threads: int | None = None) -> np.ndarray:
    """Float model inputs (N, H, W, C) -> float outputs (N, classes)."""
    return predictor(path, batch_size, threads)(x)


def float_compute_ops(path: Path, requested: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Ops of an int8 model that still compute in float, as 'OP_NAME#index'.

    An op counts as float compute when it reads or writes a float32 tensor, except a
    QUANTIZE reading a model input or a DEQUANTIZE writing a model output (float I/O), and
    except the layers kept in float on purpose (`requested`: output tensor names, as the int8
    fallback's deny list names them) with the DEQUANTIZE feeding them and the QUANTIZE after them.
    """
    interpreter = _interpreter(path, delegates=False)
    inputs = {d["index"] for d in interpreter.get_input_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    ops = interpreter._get_ops_details()
    wanted = {_layer_key(name) for name in requested}
    kept = {op["index"] for op in ops if wanted and any(
        _layer_key(interpreter._get_tensor_details(t, 0)["name"]) in wanted for t in op["outputs"])}
    kept_in = {t for op in ops if op["index"] in kept for t in op["inputs"]}
    kept_out = {t for op in ops if op["index"] in kept for t in op["outputs"]}
    offenders = []
    for op in ops:
        name = op["op_name"]
        if name == "QUANTIZE" and set(op["inputs"]) <= inputs | kept_out:
            continue
        if name == "DEQUANTIZE" and set(op["outputs"]) <= outputs | kept_in:
            continue
        if op["index"] in kept:
            continue
        types = [*op["operand_types"], *op["result_types"]]
        if any(t == np.float32 for t in types):
            offenders.append(f"{name}#{op['index']}")
    return offenders


def _layer_key(tensor_name: str) -> str:
    """A fused op's output tensor is named 'a;b;c' after the ops it fused; the converter and the
    debugger agree on the first name."""
    return tensor_name.split(";")[0]


def io_types(path: Path) -> dict[str, str]:
    interpreter = _interpreter(path, delegates=False)
    return {
        "input": np.dtype(interpreter.get_input_details()[0]["dtype"]).name,
        "output": np.dtype(interpreter.get_output_details()[0]["dtype"]).name,
    }


def run_once(path: Path, x: np.ndarray) -> dict:
    """One float input (1, H, W, C) through the artifact, keeping the raw tensors the app sees.

    Returns the tensor actually fed (float32, or int8 after quantization), the raw output
    tensor, both quantizations ((scale, zero_point), or None for float tensors) and the
    float scores, computed exactly as `predict` does.
    """
    interpreter = _interpreter(path)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    fed = _quantize(x, inp)
    interpreter.set_tensor(inp["index"], fed)
    interpreter.invoke()
    raw = interpreter.get_tensor(out["index"]).copy()

    def quantization(detail):
        scale, zero_point = detail["quantization"]
        return None if detail["dtype"] == np.float32 or scale == 0 else (float(scale), int(zero_point))

    return {
        "input": fed, "input_quantization": quantization(inp),
        "output": raw, "output_quantization": quantization(out),
        "scores": _dequantize(raw, out),
    }
