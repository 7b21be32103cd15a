"""ONNX -> ncnn (.ncnn.param / .ncnn.bin) with pnnx, in fp32 or fp16 weight storage.

pnnx comes from its wheel installed without its torch dependency: the wheel ships a
standalone executable, called here by path (importing the `pnnx` package would import torch).
`DEPLOY_PNNX` points at another pnnx executable when set.

Keras graphs exported by tf2onnx need fixes before pnnx; each is a small function below,
applied to every graph (a graph that does not need it is left unchanged).
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

from pipeline.errors import ToolError, UserInputError

PNNX_TIMEOUT_S = 600
STDERR_TAIL_LINES = 5


# ---- graph fixes applied before pnnx -------------------------------------------------------

def fuse_pad_into_conv(proto):
    """Keras' ZeroPadding2D (MobileNet V1/V2 before strided depthwise convolutions) becomes
    an ONNX Pad that pnnx leaves as a `Pad` layer ncnn cannot run; folded into the following
    Conv's own padding, it disappears."""
    import onnxoptimizer

    if not any(node.op_type == "Pad" for node in proto.graph.node):
        return proto
    return onnxoptimizer.optimize(proto, ["fuse_pad_into_conv", "eliminate_unused_initializer"])


def explicit_split_sizes(proto):
    """tf2onnx exports `tf.split(x, 2)` (a Keras ShuffleNet's channel split) as a Split without
    sizes; pnnx turns it into a Slice without sizes, which crashes ncnn. Write the equal sizes
    into the graph."""
    import onnx
    from onnx import numpy_helper

    shapes = _inferred_shapes(proto)
    opset = max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=13)
    for node in proto.graph.node:
        if node.op_type != "Split" or (len(node.input) > 1 and node.input[1]):
            continue
        if opset < 13 and any(a.name == "split" for a in node.attribute):
            continue
        shape = shapes.get(node.input[0])
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if shape is None or not isinstance(shape[axis], int):
            continue
        parts = len(node.output)
        sizes = [shape[axis] // parts] * parts
        if opset >= 13:
            name = f"{node.name or node.output[0]}_split_sizes"
            proto.graph.initializer.append(numpy_helper.from_array(np.asarray(sizes, np.int64), name))
            if len(node.input) == 1:
                node.input.append(name)
            else:
                node.input[1] = name
            for attr in [a for a in node.attribute if a.name == "num_outputs"]:
                node.attribute.remove(attr)
        else:
            node.attribute.append(onnx.helper.make_attribute("split", sizes))
    return proto


GRAPH_FIXES = (fuse_pad_into_conv, explicit_split_sizes)


def _inferred_shapes(proto) -> dict[str, list]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(proto)
    shapes = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    return shapes


def prepare_for_pnnx(proto):
    for fix in GRAPH_FIXES:
        proto = fix(proto)
    return proto


# ---- running pnnx ----------------------------------------------------------------------------

def pnnx_executable() -> Path:
    override = os.environ.get("DEPLOY_PNNX")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("pnnx")  # locates the package without importing it (and torch)
    if spec is None or not spec.submodule_search_locations:
        raise ToolError("pnnx is not installed: run scripts/setup.sh (it installs `pnnx` with --no-deps)")
    exe = Path(list(spec.submodule_search_locations)[0]) / "pnnx"
    if not exe.is_file():
        raise ToolError(f"pnnx executable missing at {exe}: reinstall with `pip install --no-deps pnnx`")
    return exe


def convert(onnx_path: Path, input_shape: list[int], fp16: bool, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Run pnnx on an ONNX file (already fixed with prepare_for_pnnx); return (param, bin) in out_dir.

    pnnx writes several side files next to its input, so it runs in a scratch folder.
    """
    scratch = out_dir / f".pnnx-{stem}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    model = scratch / "model.onnx"
    shutil.copyfile(onnx_path, model)
    shape = ",".join(str(d) for d in input_shape)
    command = [str(pnnx_executable()), model.name, f"inputshape=[{shape}]", f"fp16={int(fp16)}"]
    try:
        proc = subprocess.run(command, cwd=scratch, capture_output=True, text=True, timeout=PNNX_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolError(f"pnnx timed out after {PNNX_TIMEOUT_S} s on {onnx_path.name}") from None
    except OSError as e:
        raise ToolError(f"pnnx could not start ({e.strerror or e}): {command[0]}") from e
    param, weights = scratch / "model.ncnn.param", scratch / "model.ncnn.bin"
    if proc.returncode != 0 or not param.is_file() or not weights.is_file():
        raise ToolError(f"pnnx failed on {onnx_path.name} ({_exit_status(proc.returncode)}): {_tail(proc)}")
    unsupported_ops(param, onnx_path)
    _record_input_shape(param, input_shape)
    own_input_before_inplace(param, weights)
    final_param, final_bin = out_dir / f"{stem}.ncnn.param", out_dir / f"{stem}.ncnn.bin"
    shutil.move(param, final_param)
    shutil.move(weights, final_bin)
    shutil.rmtree(scratch, ignore_errors=True)
    return final_param, final_bin


def _exit_status(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def _tail(proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (proc.stderr or proc.stdout or "").splitlines() if line.strip()]
    return " | ".join(lines[-STDERR_TAIL_LINES:]) or "no output"


def _record_input_shape(param_path: Path, input_shape: list[int]) -> None:
    """Write (w, h, c) into the Input layer, so a runner can make an input without other files."""
    param = read_param(param_path)
    _, c, h, w = input_shape
    for layer in param.layers:
        if layer.type == "Input":
            layer.params.update({"0": str(w), "1": str(h), "2": str(c)})
    param_path.write_text(param.text())


# Layers whose output can be their input Mat itself or a view of it (a Split's tops; Reshape,
# Flatten ... when no copy is needed; the no-op cases of Crop, Padding, Permute, Interp).
PASS_THROUGH = ("Split", "Reshape", "Flatten", "Squeeze", "ExpandDims", "Crop", "Padding", "Permute", "Interp", "Noop")


def own_input_before_inplace(param_path: Path, bin_path: Path) -> list[str]:
    """Keep in-place layers off the caller's input memory; returns the names of the layers changed.

    In light mode (an extractor's default) ncnn copies a shared blob before an in-place layer
    overwrites it, testing `*refcount != 1` without a NULL check (src/net.cpp,
    NetPrivate::do_forward_layer). A Mat made on caller memory (`ncnn.Mat(numpy_array)`, C++
    `Mat(w, h, c, data)`) has no refcount, so an in-place layer reading the input blob segfaults.
    Keras' Rescaling (MobileNetV3's include_preprocessing) is one: tf2onnx's Mul/Add by scalars
    become scalar BinaryOps, in place, right after Input.

    A scalar BinaryOp there becomes the two-operand BinaryOp with the scalar in a MemoryData (it
    writes a new Mat, same arithmetic); any other in-place layer gets a copy (x + 0) in front.
    The new MemoryData layers go right after the Input layers, so their weights lead the .bin.
    """
    param = read_param(param_path)
    aliases = {top for layer in param.layers if layer.type == "Input" for top in layer.tops}
    for layer in param.layers:  # .param order is topological
        if layer.type in PASS_THROUGH and any(b in aliases for b in layer.bottoms):
            aliases.update(layer.tops)
    names = {layer.name for layer in param.layers} | {b for layer in param.layers for b in (*layer.bottoms, *layer.tops)}

    def fresh(base: str) -> str:
        name, n = base, 0
        while name in names:
            n += 1
            name = f"{base}_{n}"
        names.add(name)
        return name

    constants: list[ParamLayer] = []
    values: list[float] = []

    def scalar(base: str, value: float) -> str:
        blob = fresh(base)
        constants.append(ParamLayer(f"MemoryData {blob} 0 1 {blob} 0=1"))
        values.append(value)
        return blob

    layers, changed = [], []
    for layer in param.layers:
        shared = [i for i, b in enumerate(layer.bottoms) if b in aliases]
        if not shared or layer.type == "Input" or not _in_place(layer):
            layers.append(layer)
            continue
        changed.append(layer.name)
        if layer.type == "BinaryOp" and layer.int_param(1):
            value = float(layer.params.pop("2", "0"))
            layer.params.pop("1")
            layer.bottoms.append(scalar(f"{layer.name}_scalar", value))
            layers.append(layer)
            continue
        for i in shared:
            copy = fresh(f"{layer.bottoms[i]}_owned")
            zero = scalar(f"{copy}_zero", 0.0)
            layers.append(ParamLayer(f"BinaryOp {copy} 2 1 {layer.bottoms[i]} {zero} {copy} 0=0"))
            layer.bottoms[i] = copy
        layers.append(layer)
    if not changed:
        return []
    first = next(i for i, layer in enumerate(layers) if layer.type != "Input")
    param.layers = layers[:first] + constants + layers[first:]
    param_path.write_text(param.text())
    bin_path.write_bytes(np.asarray(values, "<f4").tobytes() + bin_path.read_bytes())
    return changed


def _in_place(layer: ParamLayer) -> bool:
    """Whether ncnn runs this layer in place: the flag its constructor sets, except for BinaryOp,
    in place only with a scalar operand (the one layer whose load_param changes the flag)."""
    import ncnn

    if layer.type == "BinaryOp":
        return bool(layer.int_param(1))
    instance = ncnn.create_layer(layer.type)
    if instance is None:
        raise ToolError(f"layer '{layer.name}': ncnn has no layer type {layer.type}")
    return bool(instance.support_inplace)


def unsupported_ops(param: Path, onnx_path: Path) -> None:
    """Raise naming the ONNX op and node(s) pnnx passed through as a layer ncnn does not have."""
    import ncnn

    from converters.onnx import describe_op

    unknown = [t for t in dict.fromkeys(layer.type for layer in read_param(param).layers) if ncnn.layer_to_index(t) == -1]
    if not unknown:
        return
    described = [describe_op(onnx_path, op.split(".")[-1]) for op in unknown]
    raise ToolError(f"pnnx cannot convert {onnx_path.name} to ncnn: {'; '.join(described)} has no ncnn layer; "
                    "replace it in the model or skip ncnn with --formats")


# ---- the .param text format ----------------------------------------------------------------

class ParamLayer:
    """One line of a .ncnn.param file: type, name, bottoms, tops and `key=value` params (as text)."""

    def __init__(self, line: str):
        parts = line.split()
        self.type, self.name = parts[0], parts[1]
        n_bottom, n_top = int(parts[2]), int(parts[3])
        self.bottoms = parts[4 : 4 + n_bottom]
        self.tops = parts[4 + n_bottom : 4 + n_bottom + n_top]
        self.params: dict[str, str] = {}
        for item in parts[4 + n_bottom + n_top :]:
            key, _, value = item.partition("=")
            self.params[key] = value

    def int_param(self, key: int, default: int = 0) -> int:
        return int(self.params.get(str(key), default))

    def line(self) -> str:
        params = " ".join(f"{k}={v}" for k, v in self.params.items())
        head = f"{self.type:<24} {self.name:<24} {len(self.bottoms)} {len(self.tops)}"
        return " ".join(filter(None, [head, *self.bottoms, *self.tops, params]))


class Param:
    def __init__(self, magic: str, layers: list[ParamLayer]):
        self.magic = magic
        self.layers = layers

    def text(self) -> str:
        blobs = len({blob for layer in self.layers for blob in layer.tops})
        return "\n".join([self.magic, f"{len(self.layers)} {blobs}", *(layer.line() for layer in self.layers)]) + "\n"


def param_problem(text: str) -> str | None:
    """What makes this text no ncnn .param (the loader's grammar: magic, "layers blobs", then per
    layer "type name n_in n_out inputs... outputs... key=value..."), or None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "7767517":
        return "its first line is not 7767517"
    counts = lines[1].split() if len(lines) > 1 else []
    if len(counts) != 2 or not all(c.isdigit() for c in counts):
        return "its second line is not '<layer count> <blob count>'"
    layers = lines[2:]
    if len(layers) != int(counts[0]):
        return f"it declares {counts[0]} layers and holds {len(layers)}"
    for number, line in enumerate(layers, start=3):
        parts = line.split()
        try:
            n_bottom, n_top = int(parts[2]), int(parts[3])
            params = parts[4 + n_bottom + n_top:]
            if len(parts) < 4 + n_bottom + n_top or not all(k.lstrip("-").isdigit() and v for k, _, v in (p.partition("=") for p in params)):
                raise ValueError
        except (IndexError, ValueError):
            return f"line {number} is not 'type name inputs outputs blobs... key=value...'"
    return None


def read_param(path: Path) -> Param:
    text = path.read_text()
    problem = param_problem(text)
    if problem:
        raise ToolError(f"{path.name}: not an ncnn .param file ({problem})")
    lines = [line for line in text.splitlines() if line.strip()]
    return Param(lines[0].strip(), [ParamLayer(line) for line in lines[2:]])


# ---- int8: ncnn's own int8 format, written from fp32 weights and calibrated scales ------------
#
# What ncnn's loader reads (src/layer/convolution.cpp & co, load_param/load_model): param 8 is
# `int8_scale_term`; after a layer's weight and bias come its weight scales (one per output
# channel; per group for ConvolutionDepthWise with term 1) and the bottom blob scale. Weights
# stored with the int8 tag are used as they are, like ncnn2int8's output.

QUANTIZABLE = ("Convolution", "ConvolutionDepthWise", "InnerProduct")
INT8_SCALE_TERM = {"Convolution": 2, "ConvolutionDepthWise": 1, "InnerProduct": 2}  # as ncnn2int8 writes
TAG_FP16, TAG_INT8, TAG_RAW_SCALED = 0x01306B47, 0x000D4B38, 0x0002C056


def _align4(n: int) -> int:
    return (n + 3) // 4 * 4


def _weight_chunks(layer: ParamLayer) -> list[tuple[str, int]]:
    """The arrays a layer loads from the .bin, in order: ('tagged'|'raw', element count)."""
    p = layer.int_param
    t = layer.type
    if t in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise"):
        chunks = [("tagged", p(6))] + ([("raw", p(0))] if p(5) else [])
        term = p(8)
        if term and t == "Convolution":
            chunks += [("raw", p(0)), ("raw", 1)]
        elif term and t == "ConvolutionDepthWise":
            chunks += [("raw", p(7, 1) if term in (1, 101) else 1), ("raw", 1)]
        return chunks + ([("raw", 1)] if term > 100 else [])
    if t == "InnerProduct":
        chunks = [("tagged", p(2))] + ([("raw", p(0))] if p(1) else [])
        return chunks + ([("raw", p(0)), ("raw", 1)] if p(8) else [])
    if t == "BatchNorm":
        return [("raw", p(0))] * 4
    if t == "Scale":
        size = p(0)
        return ([] if size == -233 else [("raw", size)]) + ([("raw", size)] if p(1) else [])
    if t == "PReLU":
        return [("raw", p(0))]
    if t == "MemoryData":
        return [("raw", max(p(0), 1) * max(p(1), 1) * max(p(11), 1) * max(p(2), 1))]
    if t == "Padding" and p(6) > 0:
        return [("raw", p(6))]
    return []


def _chunk_bytes(data: bytes, offset: int, kind: str, count: int) -> int:
    if kind == "raw":
        return count * 4
    tag = int.from_bytes(data[offset : offset + 4], "little")
    if tag == TAG_FP16:
        return 4 + _align4(count * 2)
    if tag == TAG_INT8:
        return 4 + _align4(count)
    if tag == TAG_RAW_SCALED or tag == 0:
        return 4 + count * 4
    return 4 + 256 * 4 + _align4(count)  # ncnn's old 256-entry table quantization


def split_bin(param: Param, data: bytes, what: str) -> list[list[bytes]]:
    """The .bin cut into each layer's arrays; the lengths must add up to the file exactly."""
    offset, per_layer = 0, []
    for layer in param.layers:
        arrays = []
        for kind, count in _weight_chunks(layer):
            size = _chunk_bytes(data, offset, kind, count)
            arrays.append(data[offset : offset + size])
            offset += size
        per_layer.append(arrays)
    if offset != len(data):
        raise ToolError(f"{what}: the .bin holds {len(data)} bytes but its layers account for {offset}; "
                        "a layer type with weights is not known to the int8 writer")
    return per_layer


def _float_weights(array: bytes, what: str) -> np.ndarray:
    if int.from_bytes(array[:4], "little") != 0:
        raise ToolError(f"{what}: int8 needs fp32 weights (pnnx fp16=0) to start from")
    return np.frombuffer(array[4:], np.float32)


def _quantize_weights(weights: np.ndarray, groups: int, max_level: int) -> tuple[np.ndarray, np.ndarray]:
    """Per output channel (or group) scale = max_level / absmax; int8 = round half away from zero."""
    rows = weights.reshape(groups, -1)
    absmax = np.abs(rows).max(axis=1)
    scales = np.where(absmax > 0, max_level / np.where(absmax > 0, absmax, 1), 1.0).astype(np.float32)
    scaled = rows * scales[:, None]
    q = np.clip(np.sign(scaled) * np.floor(np.abs(scaled) + 0.5), -127, 127).astype(np.int8)
    return q.reshape(-1), scales


def _int8_array(q: np.ndarray) -> bytes:
    body = q.tobytes()
    return TAG_INT8.to_bytes(4, "little") + body + b"\0" * (_align4(len(body)) - len(body))


def quantization_groups(layer: ParamLayer) -> int:
    """How many weight scales ncnn reads for the layer (see INT8_SCALE_TERM)."""
    return layer.int_param(7, 1) if layer.type == "ConvolutionDepthWise" else layer.int_param(0)


def _weight_levels(layer: ParamLayer) -> int:
    # ncnn2table quantizes 3x3 stride-1 convolutions to 6 bits: ncnn's int8 Winograd F(4,3)
    # transform would overflow int16 with full 8-bit weights.
    p = layer.int_param
    winograd = layer.type == "Convolution" and p(1) == 3 and p(11, p(1)) == 3 and p(2, 1) == 1 \
        and p(12, p(2, 1)) == 1 and p(3, 1) == 1 and p(13, p(3, 1)) == 1
    return 31 if winograd else 127


def write_int8(param_path: Path, bin_path: Path, activation_scales: dict[str, float],
               out_param: Path, out_bin: Path) -> list[str]:
    """Mark each layer in `activation_scales` int8 and write its weights as int8 with per-channel
    scales; every other layer is copied unchanged. Returns the names of the int8 layers."""
    param = read_param(param_path)
    arrays = split_bin(param, bin_path.read_bytes(), bin_path.name)
    requantize = requantize_scales(param, activation_scales)
    out, quantized = [], []
    for layer, layer_arrays in zip(param.layers, arrays):
        if layer.name not in activation_scales:
            out.extend(layer_arrays)
            continue
        if layer.type not in QUANTIZABLE or layer.int_param(8):
            raise ToolError(f"{param_path.name}: layer '{layer.name}' ({layer.type}) cannot be quantized again")
        weights = _float_weights(layer_arrays[0], f"{param_path.name} layer '{layer.name}'")
        q, weight_scales = _quantize_weights(weights, quantization_groups(layer), _weight_levels(layer))
        term = INT8_SCALE_TERM[layer.type] + (100 if layer.name in requantize else 0)
        layer.params["8"] = str(term)
        out.append(_int8_array(q))
        out.extend(layer_arrays[1:])  # bias stays float
        out.append(weight_scales.astype("<f4").tobytes())
        out.append(np.float32(activation_scales[layer.name]).astype("<f4").tobytes())
        if layer.name in requantize:
            out.append(np.float32(requantize[layer.name]).astype("<f4").tobytes())
        quantized.append(layer.name)
    out_param.write_text(param.text())
    out_bin.write_bytes(b"".join(out))
    return quantized


def requantize_scales(param: Param, activation_scales: dict[str, float]) -> dict[str, float]:
    """Layers whose int8 output can feed the next int8 layers directly, with the scale to requantize to.

    As ncnn2int8's fuse_requantize: an int8 convolution whose output goes to an int8 convolution,
    or through a Split only to int8 convolutions, writes int8 (int8_scale_term + 100) instead of
    dequantizing to float for the next layer to quantize again. In a .param every blob has one
    consumer (ncnn inserts Split layers), and all Split outputs carry the same values.
    """
    convs = ("Convolution", "ConvolutionDepthWise")
    consumer = {blob: layer for layer in param.layers for blob in layer.bottoms}

    def int8_conv(layer) -> bool:
        return layer is not None and layer.type in convs and len(layer.bottoms) == 1 and layer.name in activation_scales

    fused = {}
    for layer in param.layers:
        if layer.type not in convs or layer.name not in activation_scales or len(layer.tops) != 1:
            continue
        nxt = consumer.get(layer.tops[0])
        if nxt is not None and nxt.type == "Split":
            branches = [consumer.get(top) for top in nxt.tops]
            if branches and all(int8_conv(b) for b in branches):
                fused[layer.name] = activation_scales[branches[0].name]
        elif int8_conv(nxt):
            fused[layer.name] = activation_scales[nxt.name]
    return fused


def int8_layers(param_path: Path) -> tuple[list[str], list[str]]:
    """(int8 layers, float layers) among the convolution / fully connected layers of a .param."""
    layers = [l for l in read_param(param_path).layers if l.type in QUANTIZABLE]
    return [l.name for l in layers if l.int_param(8)], [l.name for l in layers if not l.int_param(8)]


def resolve_float_layers(param: Param, requested: list[str], what: str) -> set[str]:
    """Layer names to keep in float; 'first' and 'last' name the first/last quantizable layer."""
    candidates = [l.name for l in param.layers if l.type in QUANTIZABLE]
    chosen = set()
    for name in requested:
        if name == "first" and candidates:
            chosen.add(candidates[0])
        elif name == "last" and candidates:
            chosen.add(candidates[-1])
        elif name in candidates:
            chosen.add(name)
        else:
            raise UserInputError(
                f"--ncnn-float-layers: {what} has no convolution or dense layer '{name}' "
                f"(use first, last or one of: {', '.join(candidates[:12])}{' ...' if len(candidates) > 12 else ''})"
            )
    return chosen


def calibrate(param_path: Path, bin_path: Path, x_nchw: np.ndarray, method: str, percentile: float,
              float_layers: set[str]) -> dict[str, float]:
    """Activation scale of each quantizable layer's input, measured in the fp32 ncnn model itself
    (as ncnn2table does): two passes, absmax then histogram."""
    return calibrate_methods(param_path, bin_path, x_nchw, [method], percentile, float_layers)[method]


def calibrate_methods(param_path: Path, bin_path: Path, x_nchw: np.ndarray, methods: list[str], percentile: float,
                      float_layers: set[str]) -> dict[str, dict[str, float]]:
    """calibrate() for several methods from one pass of statistics: {method: {layer: scale}}."""
    from pipeline import calibration
    from pipeline.runtimes import ncnn as ncnn_runtime

    param = read_param(param_path)
    targets = {l.name: l.bottoms[0] for l in param.layers if l.type in QUANTIZABLE and l.name not in float_layers}
    blob_names = sorted(set(targets.values()))
    stats = {blob: calibration.BlobStatistics() for blob in blob_names}
    net = ncnn_runtime.open_net(param_path, bin_path, "fp32")
    for values in ncnn_runtime.blobs(net, x_nchw, blob_names):
        for blob, v in values.items():
            stats[blob].add_absmax(v)
    for values in ncnn_runtime.blobs(net, x_nchw, blob_names):
        for blob, v in values.items():
            stats[blob].add_histogram(v)
    out = {}
    for method in methods:
        thresholds = {blob: calibration.threshold(s, method, percentile) for blob, s in stats.items()}
        out[method] = {layer: calibration.scale(thresholds[blob]) for layer, blob in targets.items()}
    return out
