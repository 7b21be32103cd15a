"""Per-layer quantization error of an ncnn int8 model against the fp32 model it was made from.

Both models share one .param graph (the int8 writer only adds scales), so every blob name exists
in both. The error of a blob in a plain int8 run accumulates every layer before it; here each
layer is run **in isolation**: the int8 net's extractor is given the fp32 model's values of the
layer's input blobs and computes only that layer, so the figures are the error the layer itself
adds (its input's and weights' rounding), and a ranking by them names the layers to keep float.
The int8 net used is the artifact with its requantize fusions undone (see without_requantize).

Figures per layer, over all images and output elements:
- `nrmse`: root-mean-square error divided by the standard deviation of the fp32 output blob
  (scale-free, comparable across layers; 0 = exact);
- `max_abs`: largest absolute difference, in the blob's own units;
- `cosine`: cosine similarity of the flattened outputs (None where either is all zeros).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from converters.ncnn import ParamLayer, read_param, split_bin, write_int8
from pipeline.runtimes import ncnn as ncnn_runtime

SKIPPED = ("Input", "Split")  # no computation of their own


def without_requantize(int8_param: Path, int8_bin: Path, out_param: Path, out_bin: Path) -> None:
    """The same int8 model with every requantize fusion undone (int8_scale_term > 100 -> - 100, the
    output scale dropped): each convolution then writes float and its consumer quantizes that
    itself with the same scale, so the numbers match the fused model up to rounding, but each
    layer's own input quantization shows in its own output instead of its producer's."""
    param = read_param(int8_param)
    arrays = split_bin(param, int8_bin.read_bytes(), int8_bin.name)
    out = []
    for layer, layer_arrays in zip(param.layers, arrays):
        if layer.int_param(8) > 100:
            layer.params["8"] = str(layer.int_param(8) - 100)
            layer_arrays = layer_arrays[:-1]
        out.extend(layer_arrays)
    out_param.write_text(param.text())
    out_bin.write_bytes(b"".join(out))


def _extract(net, inputs: dict[str, np.ndarray], name: str) -> np.ndarray:
    import ncnn

    # Owned copies: an in-place layer (Softmax ...) fed a Mat wrapping numpy memory crashes ncnn.
    mats = {blob: ncnn.Mat(np.ascontiguousarray(v, dtype=np.float32)).clone() for blob, v in inputs.items()}
    extractor = net.create_extractor()
    for blob, mat in mats.items():
        extractor.input(blob, mat)
    ret, out = extractor.extract(name)
    if ret != 0 or out.w == 0:
        from pipeline.errors import ToolError

        raise ToolError(f"ncnn failed to compute blob {name!r} (code {ret})")
    return np.array(out)


class _Accumulator:
    def __init__(self) -> None:
        self.sq_err = self.sum_ref = self.sq_ref = self.dot = self.sq_q = 0.0
        self.count, self.max_abs = 0, 0.0

    def add(self, ref: np.ndarray, q: np.ndarray) -> None:
        ref, q = ref.astype(np.float64).ravel(), q.astype(np.float64).ravel()
        diff = q - ref
        self.sq_err += float(diff @ diff)
        self.sum_ref += float(ref.sum())
        self.sq_ref += float(ref @ ref)
        self.sq_q += float(q @ q)
        self.dot += float(ref @ q)
        self.count += ref.size
        self.max_abs = max(self.max_abs, float(np.abs(diff).max()) if diff.size else 0.0)

    def figures(self) -> dict:
        n = max(self.count, 1)
        rmse = (self.sq_err / n) ** 0.5
        std = max(self.sq_ref / n - (self.sum_ref / n) ** 2, 0.0) ** 0.5
        nrmse = rmse / std if std > 0 else (0.0 if rmse == 0 else float("inf"))
        norms = (self.sq_ref * self.sq_q) ** 0.5
        cosine = self.dot / norms if norms > 0 else None
        return {"nrmse": float(nrmse), "max_abs": self.max_abs, "cosine": None if cosine is None else float(min(cosine, 1.0))}


def layer_errors(float_param: Path, float_bin: Path, int8_param: Path, int8_bin: Path,
                 x_nchw: np.ndarray, scratch: Path) -> list[dict]:
    """Each computing layer's isolated int8 error on the images, worst (highest nrmse) first:
    [{"layer", "op", "nrmse", "max_abs", "cosine"}]. `scratch`: a folder for the unfused copy."""
    layers: list[ParamLayer] = [l for l in read_param(int8_param).layers if l.type not in SKIPPED]
    unfused_param, unfused_bin = scratch / "unfused.ncnn.param", scratch / "unfused.ncnn.bin"
    without_requantize(int8_param, int8_bin, unfused_param, unfused_bin)
    fp32 = ncnn_runtime.open_net(float_param, float_bin, "fp32")
    int8 = ncnn_runtime.open_net(unfused_param, unfused_bin, "int8")
    needed = sorted({b for l in layers for b in (*l.bottoms, l.tops[0])})
    acc = {l.name: _Accumulator() for l in layers}
    for reference in ncnn_runtime.blobs(fp32, x_nchw, needed):
        for layer in layers:
            top = layer.tops[0]
            q = _extract(int8, {b: reference[b] for b in layer.bottoms}, top)
            acc[layer.name].add(reference[top], q)
    unfused_param.unlink()
    unfused_bin.unlink()
    rows = [{"layer": l.name, "op": l.type, **acc[l.name].figures()} for l in layers]
    return sorted(rows, key=lambda r: -r["nrmse"])


def best_scales_per_layer(float_param: Path, float_bin: Path, candidates: dict[str, dict[str, float]],
                          x_nchw: np.ndarray, scratch: Path) -> tuple[dict[str, float], dict[str, str]]:
    """Per layer, the candidate scale (one dict per calibration method) with the least isolated
    error. A layer's isolated error depends on its own scale only (its inputs come from fp32), so
    one int8 model per method measures every layer's choice at once. Returns (scales, method per layer)."""
    errors = {}
    for method, scales in candidates.items():
        q_param, q_bin = scratch / f"choose-{method}.ncnn.param", scratch / f"choose-{method}.ncnn.bin"
        write_int8(float_param, float_bin, scales, q_param, q_bin)
        errors[method] = {row["layer"]: row["nrmse"] for row in layer_errors(float_param, float_bin, q_param, q_bin, x_nchw, scratch)}
        q_param.unlink()
        q_bin.unlink()
    layers = next(iter(candidates.values()))
    chosen = {layer: min(candidates, key=lambda m: errors[m].get(layer, 0.0)) for layer in layers}
    return {layer: candidates[m][layer] for layer, m in chosen.items()}, chosen
