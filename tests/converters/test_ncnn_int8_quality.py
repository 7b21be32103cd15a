"""Per-layer int8 error and the float fallback on a tiny ncnn net written by hand (16x16, run by
ncnn itself), whose second convolution is made hard to quantize on purpose: its input blob holds
one channel of large constant values (no information) beside small informative channels, so a
single per-tensor int8 scale rounds the informative channels away."""
from pathlib import Path

import numpy as np
import pytest

from converters import ncnn as ncnn_converter
from converters import ncnn_fallback
from converters.ncnn_layer_error import best_scales_per_layer, layer_errors, without_requantize
from pipeline.runtimes import ncnn as ncnn_runtime

C, SIZE, CLASSES = 8, 16, 4


def _tiny_net(folder: Path, outlier: float, x: np.ndarray) -> tuple[Path, Path]:
    """in -> conv0 3x3 ReLU -> conv1 1x1 ReLU -> conv2 3x3 -> global average -> fc.
    conv0's channel 0 gets bias `outlier`; conv1 reads that channel with ~zero weights. fc's bias
    centres the logits on the images `x`, so the fp32 model's classes spread over them."""
    rng = np.random.default_rng(0)
    layers = [
        f"Input in0 0 1 in0 0={SIZE} 1={SIZE} 2=3",
        f"Convolution conv0 1 1 in0 b0 0={C} 1=3 4=1 5=1 6={C * 27} 9=1",
        f"Convolution conv1 1 1 b0 b1 0={C} 1=1 5=1 6={C * C} 9=1",
        f"Convolution conv2 1 1 b1 b2 0={C} 1=3 4=1 5=1 6={C * C * 9}",
        "Pooling gap 1 1 b2 b3 0=1 4=1",
        f"InnerProduct fc 1 1 b3 out0 0={CLASSES} 1=1 2={CLASSES * C}",
    ]
    param, weights = folder / "tiny.ncnn.param", folder / "tiny.ncnn.bin"
    param.write_text(f"7767517\n{len(layers)} {len(layers)}\n" + "\n".join(layers) + "\n")

    def tagged(w: np.ndarray) -> bytes:  # fp32 weights: a zero tag, then the values
        return b"\0\0\0\0" + w.astype("<f4").tobytes()

    w0, b0 = rng.normal(0, 0.05, (C, 27)), rng.normal(0, 0.01, C)
    b0[0] = outlier
    w1 = rng.normal(0, 0.5, (C, C))
    w1[:, 0] = 1e-4
    w2, fc = rng.normal(0, 0.3, C * C * 9), rng.normal(0, 1.0, (CLASSES, C))
    head = [tagged(w0), b0, tagged(w1), rng.normal(0, 0.01, C), tagged(w2), rng.normal(0, 0.01, C), tagged(fc)]

    def write(fc_bias: np.ndarray) -> None:
        weights.write_bytes(b"".join(a if isinstance(a, bytes) else a.astype("<f4").tobytes() for a in [*head, fc_bias]))

    write(np.zeros(CLASSES))
    features = np.stack([v["b3"].reshape(-1) for v in ncnn_runtime.blobs(ncnn_runtime.open_net(param, weights), x, ["b3"])])
    write(-fc @ features.mean(0))
    return param, weights


def _images(n: int) -> np.ndarray:
    """Images that differ mostly by a colour shift (what the net's classes follow), plus a little noise."""
    rng = np.random.default_rng(1)
    return (rng.uniform(-1, 1, (n, 3, SIZE, SIZE)) * 0.03 + rng.uniform(-1, 1, (n, 3, 1, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def hard(tmp_path_factory):
    """The hard net, its int8 model (KL-calibrated on 32 images) and 64 held-out images labelled
    by the fp32 model (so fp32 top-1 is 100 %)."""
    folder = tmp_path_factory.mktemp("hard")
    x = _images(96)
    param, weights = _tiny_net(folder, 20.0, x)
    calibration, held_out = x[:32], x[32:]
    scales = ncnn_converter.calibrate(param, weights, calibration, "kl", 99.99, set())
    q_param, q_bin = folder / "q.ncnn.param", folder / "q.ncnn.bin"
    ncnn_converter.write_int8(param, weights, scales, q_param, q_bin)
    labels = ncnn_runtime.predict(param, weights, held_out).argmax(1)
    return folder, param, weights, scales, q_param, q_bin, held_out, labels


def test_the_layer_made_hard_to_quantize_ranks_first(hard):
    folder, param, weights, _, q_param, q_bin, x, _ = hard
    rows = layer_errors(param, weights, q_param, q_bin, x[:16], folder)
    assert [set(r) for r in rows] == [{"layer", "op", "nrmse", "max_abs", "cosine"}] * len(rows)
    assert [r["layer"] for r in rows][0] == "conv1" and rows[0]["op"] == "Convolution"
    by_name = {r["layer"]: r for r in rows}
    assert set(by_name) == {"conv0", "conv1", "conv2", "gap", "fc"}  # Input has no error of its own
    # The isolated error of conv1 is large; the others' are int8 rounding only.
    assert by_name["conv1"]["nrmse"] > 0.3 and by_name["conv1"]["cosine"] < 0.95
    assert all(by_name[n]["nrmse"] < 0.1 and by_name[n]["cosine"] > 0.99 for n in ("conv0", "conv2", "fc"))
    assert by_name["conv1"]["nrmse"] > 5 * max(by_name[n]["nrmse"] for n in ("conv0", "conv2", "fc"))
    # A float layer fed exact inputs: float rounding only (on x86 the int8 net runs unpacked, the fp32 net packed).
    assert by_name["gap"]["nrmse"] < 1e-6 and by_name["gap"]["max_abs"] < 1e-6
    assert [r["nrmse"] for r in rows] == sorted((r["nrmse"] for r in rows), reverse=True)


def test_an_easy_net_has_no_such_layer(tmp_path):
    x = _images(32)
    param, weights = _tiny_net(tmp_path, 0.05, x)
    scales = ncnn_converter.calibrate(param, weights, x[:16], "kl", 99.99, set())
    ncnn_converter.write_int8(param, weights, scales, tmp_path / "q.ncnn.param", tmp_path / "q.ncnn.bin")
    rows = layer_errors(param, weights, tmp_path / "q.ncnn.param", tmp_path / "q.ncnn.bin", x[16:], tmp_path)
    by_name = {r["layer"]: r for r in rows}
    assert rows[0]["layer"] != "conv1" and by_name["conv1"]["nrmse"] < 0.05


def test_requantize_undone_keeps_the_numbers_and_frees_the_scales(hard):
    folder, _, _, _, q_param, q_bin, x, _ = hard
    fused = [l.name for l in ncnn_converter.read_param(q_param).layers if l.int_param(8) > 100]
    assert fused == ["conv0", "conv1"]  # conv0 -> conv1 -> conv2 are int8 chains
    out_param, out_bin = folder / "u.ncnn.param", folder / "u.ncnn.bin"
    without_requantize(q_param, q_bin, out_param, out_bin)
    assert [l.int_param(8) for l in ncnn_converter.read_param(out_param).layers if l.type == "Convolution"] == [2, 2, 2]
    assert out_bin.stat().st_size == q_bin.stat().st_size - 4 * len(fused)
    fused_out, unfused_out = (ncnn_runtime.predict(p, b, x[:8], "int8") for p, b in ((q_param, q_bin), (out_param, out_bin)))
    assert np.abs(fused_out - unfused_out).max() < 0.05 * np.abs(fused_out).max()


def test_fallback_keeps_the_hard_layer_float_and_meets_the_budget(hard, tmp_path):
    _, param, weights, scales, q_param, q_bin, x, labels = hard
    out_param, out_bin = tmp_path / "f.ncnn.param", tmp_path / "f.ncnn.bin"
    ncnn_converter.write_int8(param, weights, scales, out_param, out_bin)
    ranked = [r["layer"] for r in layer_errors(param, weights, q_param, q_bin, x[:16], tmp_path)
              if r["op"] in ncnn_converter.QUANTIZABLE]
    record = ncnn_fallback.fallback(param, weights, scales, ranked, x, labels, np.ones(len(labels), bool), 0.5, out_param, out_bin)
    assert record["top1_float"] == 1.0 and record["top1_int8"] < 0.95  # the hard layer costs real accuracy
    assert record["agreement_int8"] < 0.95 and record["decision_images"] == len(x)
    assert record["status"] == "met" and record["float_layers"] == ["conv1"]
    assert record["agreement_after"] >= 0.995 and record["agreement_after"] == record["rounds"][-1]["agreement"]
    assert record["top1_after"] >= 0.995 and record["top1_after"] == record["rounds"][-1]["top1"]
    assert [r["float_layers"] for r in record["rounds"]] == [["conv1"]]
    # The artifact now holds that model: conv1 float (fp32 weights: larger), the rest int8.
    assert ncnn_converter.int8_layers(out_param) == (["conv0", "conv2", "fc"], ["conv1"])
    assert record["rounds"][0]["size_bytes"] == out_param.stat().st_size + out_bin.stat().st_size
    assert record["rounds"][0]["size_bytes"] > q_param.stat().st_size + q_bin.stat().st_size
    assert np.mean(ncnn_runtime.predict(out_param, out_bin, x, "int8").argmax(1) == labels) == record["top1_after"]


def test_fallback_not_needed_and_cap(hard, tmp_path):
    _, param, weights, scales, _, _, x, labels = hard
    out_param, out_bin = tmp_path / "f.ncnn.param", tmp_path / "f.ncnn.bin"
    ncnn_converter.write_int8(param, weights, scales, out_param, out_bin)
    everywhere = np.ones(len(labels), bool)
    generous = ncnn_fallback.fallback(param, weights, scales, ["conv1"], x, labels, everywhere, 100.0, out_param, out_bin)
    assert generous["status"] == "not-needed" and generous["rounds"] == [] and generous["float_layers"] == []
    # 4 quantizable layers: the cap is one layer; offered only an easy layer, the budget is not met
    # and the all-int8 model (the best round) stays.
    assert ncnn_fallback.cap(4) == 1
    capped = ncnn_fallback.fallback(param, weights, scales, ["conv2", "conv1"], x, labels, everywhere, 0.5, out_param, out_bin)
    assert capped["status"] == "cap-reached" and [r["float_layers"] for r in capped["rounds"]] == [["conv2"]]
    kept = capped["float_layers"]
    assert ncnn_converter.int8_layers(out_param)[1] == kept
    assert capped["agreement_after"] == max([capped["agreement_int8"], *(r["agreement"] for r in capped["rounds"])])


def test_per_layer_choice_takes_each_layers_least_error_scale(hard, tmp_path):
    _, param, weights, scales, _, _, x, _ = hard
    coarse = {name: s / 8 for name, s in scales.items()}  # thresholds 8x too wide: coarser rounding
    a = {**scales, "conv2": coarse["conv2"]}
    b = {**scales, "conv1": coarse["conv1"], "fc": coarse["fc"]}
    chosen_scales, chosen = best_scales_per_layer(param, weights, {"a": a, "b": b}, x[:16], tmp_path)
    assert chosen["conv1"] == "a" and chosen["fc"] == "a" and chosen["conv2"] == "b"
    assert chosen_scales == {name: scales[name] for name in scales}
    assert not list(tmp_path.glob("choose-*"))  # the candidate models are removed


def test_calibrate_methods_matches_calibrate(hard):
    _, param, weights, _, _, _, x, _ = hard
    both = ncnn_converter.calibrate_methods(param, weights, x[:16], ["kl", "mse"], 99.99, {"fc"})
    assert both["mse"] == ncnn_converter.calibrate(param, weights, x[:16], "mse", 99.99, {"fc"})
    assert set(both["kl"]) == {"conv0", "conv1", "conv2"}
