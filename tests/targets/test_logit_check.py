"""The target-vs-host check compares logits on validation images (pipeline/targets/output_check.py).

The test that matters: an artifact altered on the target side (one weight of the last layer
changed in the copy the target runs) must show a large logit difference, while the softmax
comparison the check used before 1.3 sees almost nothing on a confident model. It runs through
the real device runner, on the host runner as the "target" and on the arm64 emulator.
"""
import subprocess

import numpy as np
import pytest

from pipeline.targets import check_inputs, emulated, host, logits, output_check
from tests.targets.test_emulated import needs_rootfs, rootfs_missing, why_skipped
from tests.targets.test_host_bench import _float32_and_int8, _tiny_classifier


def _npz(path, **arrays):
    with open(path, "wb") as out:
        np.savez(out, **arrays)
    return path


def _confident_classifier():
    """The tiny classifier with a last layer that is sure of itself: class 0's bias +40, so its softmax
    is 1 and ~1e-17 like a well-trained model's. The other logits stay near 0, well inside the int8
    logits' calibrated range (a logit clipped at -128 would hide a change to it)."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    model = _tiny_classifier()
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    bias = np.zeros_like(bias)
    bias[0] = 40.0
    dense.set_weights([kernel * 0.5, bias])
    return model


@pytest.fixture(scope="module")
def confident(tmp_path_factory):
    """{float32, int8}: the confident classifier as .tflite, and 32 check images (NHWC) with labels."""
    folder = tmp_path_factory.mktemp("confident")
    paths = _float32_and_int8(_confident_classifier(), folder, "confident")
    images = np.random.default_rng(1).uniform(-1, 1, (32, 16, 16, 3)).astype(np.float32)
    paths["inputs"] = _npz(folder / "inputs.npz", input_0=images, labels=np.zeros(32, np.int64))
    return paths


def _alter_last_bias(path, out, delta):
    """A copy of a .tflite with one weight changed: the last FULLY_CONNECTED's bias of class 3."""
    from ai_edge_litert.tools import flatbuffer_utils as fb

    model = fb.read_model(str(path))
    graph = model.subgraphs[0]
    dense = [op for op in graph.operators if fb.opcode_to_name(model, op.opcodeIndex) == "FULLY_CONNECTED"][-1]
    bias = graph.tensors[dense.inputs[2]]
    buffer = model.buffers[bias.buffer]
    dtype = np.float32 if bias.type == 0 else np.int32  # TensorType FLOAT32 = 0, int8 models: INT32 biases
    values = np.frombuffer(bytes(bytearray(buffer.data)), dtype=dtype).copy()
    scale = 1.0 if dtype == np.float32 else float(bias.quantization.scale[0])
    values[3] += dtype(round(delta / scale))
    buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    fb.write_model(model, str(out))
    return out


def _run_target(kind, model, check, outputs):
    """The device runner on `model` with the check's flags: on the host, or under QEMU (arm64)."""
    args = check.runner_args(model)
    if kind == "host":
        return host.run_benchmark(model, 1, 0, 1, extra_args=[*args, "--outputs", str(outputs)])
    command, env = emulated.runner_command("arm64", model, 1, 0, 1, outputs, extra_args=args)
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return host.parse_result(proc.stdout)


@pytest.mark.parametrize("kind", ["host", "arm64-emu"])
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_a_weight_changed_on_the_target_shows_in_the_logits_not_in_the_softmax(confident, tmp_path, kind, dtype):
    if kind == "arm64-emu" and rootfs_missing("arm64"):
        pytest.skip(why_skipped("arm64"))
    original = confident[dtype]
    altered = _alter_last_bias(original, tmp_path / "altered.tflite", delta=6.0)
    host_check = output_check.prepare(original, tmp_path, confident["inputs"])
    (tmp_path / "target").mkdir()
    target_check = output_check.prepare(altered, tmp_path / "target", confident["inputs"])
    target_npz = tmp_path / "target.npz"
    record = _run_target(kind, altered, target_check, target_npz)
    diff, predictions = output_check.against_host(original, target_npz, record, check=host_check)
    assert diff["compared"] == "logits" and diff["n"] == 32 and diff["inputs"] == "validation"
    # The old check: softmax outputs, class 0 at 1.0 and the others below 1e-6 whatever class 3's logit is.
    assert diff["max_abs"] < 1e-5, diff
    # The new check: class 3's logit moved by about 6 on every image (int8: within a few steps of it).
    assert 4.0 < diff["logits_max_abs"] < 8.0, diff
    assert diff["logits_max_rel"] > 0.05 and diff["top1_agreement"] == 1.0
    if dtype == "int8":
        assert diff["logits_max_steps"] > 10
    assert predictions["labels"] == [0] * 32 and diff["target_top1"] == diff["host_top1"] == 1.0
    # The unaltered artifact on the same target: int8 exact; float32 within float rounding (ARM's NEON
    # and x86's AVX sum in other orders: a few ulp of logits near 40).
    same = _run_target(kind, original, host_check, tmp_path / "same.npz")
    clean, _ = output_check.against_host(original, tmp_path / "same.npz", same, check=host_check)
    assert clean["logits_max_rel"] < 1e-6 and clean["top1_agreement"] == 1.0
    assert clean["logits_max_steps"] == (0 if dtype == "int8" else None)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_tflite_probe_keeps_the_outputs_and_xnnpack(confident, tmp_path, dtype):
    """The copy exposing the logits computes the same outputs, bit for bit, with XNNPACK still applied
    (LiteRT's preserve-all-tensors mode would have turned it off)."""
    model = confident[dtype]
    probe = logits.make_probe(model, tmp_path)
    assert probe.path != model and probe.logits
    plain, probed = tmp_path / "plain.npz", tmp_path / "probed.npz"
    host.run_benchmark(model, 1, 0, 1, extra_args=["--inputs", str(confident["inputs"]), "--outputs", str(plain)])
    record = host.run_benchmark(probe.path, 1, 0, 1, extra_args=["--inputs", str(confident["inputs"]), "--outputs", str(probed),
                                                                 "--logits", probe.logits])
    assert record["delegate"] == "xnnpack"
    with np.load(plain) as a, np.load(probed) as b:
        assert (a["output_0"] == b["output_0"]).all() and a["output_0"].shape == (32, 1, 10)
        assert b["logits"].shape == (32, 1, 10) and b["logits"].dtype == (np.int8 if dtype == "int8" else np.float32)
        assert b["logits"][:, 0, 0].min() > b["logits"][:, 0, 1:].max()  # class 0's bias of 40 is in the logits


def test_ncnn_probe_reads_the_softmax_input_blob(tmp_path):
    param = tmp_path / "m.ncnn.param"
    param.write_text("7767517\n3 3\nInput in0 0 1 in0\nInnerProduct fc 1 1 in0 7 0=10\nSoftmax softmax 1 1 7 out0 0=0 1=1\n")
    assert logits.make_probe(param, tmp_path) == logits.Probe(param, "7")
    param.write_text("7767517\n2 2\nInput in0 0 1 in0\nInnerProduct fc 1 1 in0 out0 0=10\n")
    assert logits.make_probe(param, tmp_path) == logits.Probe(param, None)  # no softmax: outputs as they are


def test_a_model_without_softmax_compares_its_outputs(tmp_path):
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    import tf_keras

    model = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(3)])
    path = tmp_path / "plain.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    probe = logits.make_probe(path, tmp_path)
    assert probe == logits.Probe(path, None) and probe.runner_args(path) == []


def test_logit_diff_in_units_steps_relative_and_agreement(tmp_path):
    quant = np.asarray([0.5, -10.0])
    host_logits = np.int8([[[20, 10, 0]], [[0, 30, 10]]])  # dequantized: [15, 10, 5], [5, 20, 10]
    target_logits = np.int8([[[20, 14, 0]], [[0, 30, 50]]])  # class 1 off by 4 steps; image 2 flips to class 2
    ours = _npz(tmp_path / "h.npz", output_0=np.zeros((2, 1, 3), np.float32), output_0_quant=np.zeros(2),
                logits=host_logits, logits_quant=quant)
    theirs = _npz(tmp_path / "t.npz", output_0=np.zeros((2, 1, 3), np.float32), output_0_quant=np.zeros(2),
                  logits=target_logits, logits_quant=quant)
    diff, predictions = output_check.logit_diff(ours, theirs, np.array([0, 2]))
    assert diff["compared"] == "logits" and diff["n"] == 2 and diff["logits_max_steps"] == 40
    assert diff["logits_max_abs"] == 20.0 and diff["logits_max_rel"] == 1.0  # 20 / 20 on image 2; image 1: 2 / 15
    assert diff["top1_agreement"] == 0.5 and diff["target_top1"] == 1.0 and diff["host_top1"] == 0.5
    assert predictions == {"target": [0, 2], "host": [0, 1], "labels": [0, 2]}
    random, _ = output_check.logit_diff(ours, theirs)
    assert random["inputs"] == "random" and "target_top1" not in random


def test_check_inputs_are_a_seeded_subset_in_the_artifacts_layout(tmp_path):
    x_val = np.random.default_rng(0).integers(0, 256, (100, 8, 8, 3), dtype=np.uint8)
    y_val = np.arange(100) % 4
    prep = {"height": 8, "width": 8, "channel_order": "RGB", "mean": [127.5] * 3, "std": [127.5] * 3}
    assert check_inputs.write(tmp_path / "a.npz", x_val, y_val, prep, count=16, seed=3) == 16
    assert check_inputs.write(tmp_path / "b.npz", x_val, y_val, {**prep, "layout": "NCHW"}, count=16, seed=3) == 16
    assert check_inputs.write(tmp_path / "c.npz", x_val, y_val, prep, count=500) == 100  # all there is
    with np.load(tmp_path / "a.npz") as a, np.load(tmp_path / "b.npz") as b:
        chosen = check_inputs.select(y_val, 16, 3)
        assert (a["labels"] == y_val[chosen]).all() and a["input_0"].shape == (16, 8, 8, 3)
        assert np.allclose(a["input_0"], (x_val[chosen] - 127.5) / 127.5)
        assert b["input_0"].shape == (16, 3, 8, 8) and (b["input_0"] == a["input_0"].transpose(0, 3, 1, 2)).all()
    assert not (check_inputs.select(y_val, 16, 3) == check_inputs.select(y_val, 16, 4)).all()


@needs_rootfs("armv7")
def test_armv7_compares_logits_with_the_host_on_built_in_kernels(confident):
    record = emulated.run_benchmark("armv7", confident["int8"], 1, 0, 1, inputs=confident["inputs"])
    diff = record["output_diff"]
    assert diff["host_delegate"] == "none" and diff["compared"] == "logits" and diff["n"] == 32
    assert diff["logits_max_steps"] <= 1 and diff["top1_agreement"] == 1.0
    assert len(record["check_predictions"]["target"]) == 32
