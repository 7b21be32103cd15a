"""ONNX: Keras -> ONNX with tf2onnx, and the checks every ONNX file gets before a converter sees it.

The exported graph takes NCHW input (`inputs_as_nchw`), like PyTorch exports and like ncnn,
so the same preprocessing code feeds ONNX files from either source. Batch is fixed to 1, as
apps run it. onnx-tf (ONNX -> TF) is not used: it no longer imports with onnx >= 1.19.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ToolError, UserInputError
from pipeline.native_stderr import capture_native_stderr

OPSET = 13
INPUT_NAME = "input"


@dataclass(frozen=True)
class OnnxSignature:
    """What the pipeline needs to know about an ONNX classifier."""

    input_name: str
    input_shape: list[int]  # NCHW, static
    output_name: str
    num_classes: int


def from_keras(model, path: Path) -> Path:
    """Export an in-memory tf_keras or Keras 3 model to ONNX (opset 13, NCHW input, batch 1)."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    import tf2onnx

    height, width, channels = (int(d) for d in model.inputs[0].shape[1:])
    spec = (tf.TensorSpec([1, height, width, channels], tf.float32, name=INPUT_NAME),)
    with capture_native_stderr() as native:
        try:
            if type(model).__module__.startswith("keras."):  # Keras 3: from_keras reads tf_keras internals
                function = tf.function(lambda x: model(x, training=False))
                proto, _ = tf2onnx.convert.from_function(function, input_signature=spec, opset=OPSET, inputs_as_nchw=[INPUT_NAME])
            else:
                proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET, inputs_as_nchw=[INPUT_NAME])
        except Exception as e:  # tf2onnx raises whatever its handlers raise
            failure = e
        else:
            failure = None
    if failure is not None:
        first = str(failure).splitlines()[0] if str(failure) else type(failure).__name__
        raise ToolError(f"tf2onnx failed for {model.name}: {first} | {native.tail()}") from failure
    save(proto, path)
    return path


def save(proto, path: Path) -> Path:
    import onnx

    onnx.save(proto, str(path))
    return path


def load(path: Path):
    """Parse and check an ONNX file; a file that is not ONNX or is truncated is the user's to fix."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        proto = onnx.load(str(path))
    except (DecodeError, RuntimeError, ValueError, OSError) as e:
        raise UserInputError(f"{path}: not a readable ONNX file ({_first_line(e)}); export it again") from e
    if not proto.graph.node or not proto.opset_import:
        raise UserInputError(f"{path}: not an ONNX model (no graph or no opset); export it again")
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise UserInputError(f"{path}: invalid ONNX model ({_first_line(e)}); export it again") from e
    return proto


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _initializer_names(proto) -> set[str]:
    return {init.name for init in proto.graph.initializer}


def _dims(value_info) -> list[int | str]:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in value_info.type.tensor_type.shape.dim]


def signature(proto, path: Path, input_shape: list[int] | None) -> OnnxSignature:
    """One NCHW image input and one (1, classes) output; dynamic dims need --input-shape."""
    inputs = [i for i in proto.graph.input if i.name not in _initializer_names(proto)]
    if len(inputs) != 1 or len(proto.graph.output) != 1:
        raise UserInputError(
            f"{path}: expected one input and one output, found {len(inputs)} and {len(proto.graph.output)}; "
            "export the classifier alone"
        )
    dims = _dims(inputs[0])
    if len(dims) != 4:
        raise UserInputError(f"{path}: input '{inputs[0].name}' has shape {dims}; expected an image batch (N, 3, H, W)")
    dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
    if input_shape is None and dynamic:
        raise UserInputError(
            f"{path}: input '{inputs[0].name}' has dynamic dims {dims}; pass --input-shape 1,3,H,W with the size it was trained at"
        )
    shape = list(input_shape) if input_shape is not None else [int(d) for d in dims]
    for i, d in enumerate(dims):
        if i not in dynamic and d != shape[i] and i != 0:
            raise UserInputError(f"{path}: --input-shape {shape} contradicts the model's input shape {dims}")
    shape[0] = 1
    if shape[1] not in (1, 3):
        raise UserInputError(
            f"{path}: input '{inputs[0].name}' shape {dims} is not NCHW with 3 (or 1, grayscale) channels; export the model with NCHW input"
        )
    out_dims = _dims(proto.graph.output[0])
    classes = out_dims[-1] if out_dims and isinstance(out_dims[-1], int) and out_dims[-1] > 0 else None
    return OnnxSignature(inputs[0].name, shape, proto.graph.output[0].name, classes or 0)


def with_static_shape(proto, sig: OnnxSignature):
    """A copy whose input is fixed to sig.input_shape, with shapes inferred through the graph.

    pnnx, onnx2tf and the runtimes then see one concrete shape; the output's class count
    follows from inference when the file left it dynamic.
    """
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    for inp in fixed.graph.input:
        if inp.name == sig.input_name:
            for dim, size in zip(inp.type.tensor_type.shape.dim, sig.input_shape):
                dim.Clear()
                dim.dim_value = size
    for out in fixed.graph.output:
        for dim in out.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.Clear()
    del fixed.graph.value_info[:]
    return onnx.shape_inference.infer_shapes(fixed)


def num_classes(proto) -> int:
    dims = _dims(proto.graph.output[0])
    return int(dims[-1]) if dims and isinstance(dims[-1], int) else 0


def count_params(proto) -> int:
    import numpy as np

    return int(sum(int(np.prod(init.dims)) for init in proto.graph.initializer))


def count_macs(proto) -> int:
    """Multiply-accumulates of Conv, Gemm and MatMul nodes, from inferred shapes (batch 1)."""
    import numpy as np

    shapes = {vi.name: _dims(vi) for vi in [*proto.graph.value_info, *proto.graph.input, *proto.graph.output]}
    weights = {init.name: list(init.dims) for init in proto.graph.initializer}
    macs = 0
    for node in proto.graph.node:
        out = shapes.get(node.output[0]) if node.output else None
        if not out or not all(isinstance(d, int) for d in out):
            continue
        if node.op_type == "Conv" and node.input[1] in weights:
            kernel = weights[node.input[1]]  # (out_channels, in_channels / group, kh, kw)
            macs += int(np.prod(out)) * int(np.prod(kernel[1:]))
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in weights:
            transposed = any(a.name == "transB" and a.i == 1 for a in node.attribute)
            macs += int(np.prod(out)) * int(weights[node.input[1]][1 if transposed else 0])
    return macs


def describe_op(onnx_path: Path, op_type: str) -> str:
    """'op X (node 'a')' naming the graph's nodes of that type, for converter errors."""
    import onnx

    proto = onnx.load(str(onnx_path))
    nodes = [n.name or n.output[0] for n in proto.graph.node if n.op_type == op_type]
    if not nodes:
        return f"op {op_type}"
    listed = ", ".join(repr(n) for n in nodes[:3]) + (" ..." if len(nodes) > 3 else "")
    return f"op {op_type} (node{'s' if len(nodes) > 1 else ''} {listed})"
