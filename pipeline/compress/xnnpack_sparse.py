"""Did XNNPACK's sparse path run? Measured, since LiteRT's Python API has no op profile and
XNNPACK's release builds log nothing about it.

The artifact with sparse storage (DENSIFY ops) is run against the same weights stored dense,
both through LiteRT's default XNNPACK delegate, alternating in one process. Without the sparse
path XNNPACK unpacks the sparse weights at load and runs the very same NHWC kernels as for
the dense file: same speed, bit-identical outputs. With it, XNNPACK rewrites the subgraph to
NCHW and runs its SpMM kernels: outputs differ in their last bits (other summation order and
kernels) and, at high sparsity, time drops.
"""
from __future__ import annotations

import time

import numpy as np

FASTER = 1.2  # a sparse-storage speed-up beyond timing noise


def _interpreter(data: bytes, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=data, num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def compare(sparse_storage: bytes, dense_storage: bytes, rounds: int = 20, threads: int = 1, seed: int = 0) -> dict:
    """Outputs and p50 latencies of the two files on one random input; `sparse_path` is the verdict:
    "applied" (outputs differ), "not applied" (bit-identical), with the latency ratio beside it."""
    runs = [_interpreter(sparse_storage, threads), _interpreter(dense_storage, threads)]
    detail = runs[0].get_input_details()[0]
    x = np.random.default_rng(seed).normal(size=detail["shape"]).astype(np.float32)
    outputs, times = [], [[], []]
    for interpreter in runs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()  # first run: XNNPACK packs weights
        outputs.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy())
    for _ in range(rounds):
        for i, interpreter in enumerate(runs):  # alternating: both see the same machine load
            t0 = time.perf_counter()
            interpreter.invoke()
            times[i].append(time.perf_counter() - t0)
    sparse_ms, dense_ms = (1000 * float(np.median(t)) for t in times)
    identical = bool(np.array_equal(outputs[0], outputs[1]))
    speedup = dense_ms / sparse_ms
    # Identical outputs and no speed-up: not applied. Identical outputs from a much faster run: the
    # outputs cannot tell (e.g. a softmax of near-zero logits rounds to the same floats).
    verdict = "applied" if not identical else ("not applied" if speedup < FASTER else "inconclusive")
    return {"sparse_path": verdict, "identical_outputs": identical,
            "max_abs_diff": float(np.abs(outputs[0] - outputs[1]).max()),
            "p50_ms_sparse_storage": round(sparse_ms, 4), "p50_ms_dense_storage": round(dense_ms, 4),
            "speedup": round(speedup, 3)}


def probe_model(size: int = 64, channels: int = 256, blocks: int = 4, sparsity: float = 0.9, seed: int = 0):
    """A model made only of what XNNPACK's sparse subgraph accepts (3x3 stride-2 stem padded (1, 1)
    on 3 channels, 1x1 convolutions `sparsity` zero, global mean), random weights: if its two
    storages do not differ, the sparse path does not exist in this LiteRT build on this CPU."""
    from pipeline.tf_import import keras

    k = keras()
    rng = np.random.default_rng(seed)
    inputs = k.Input((size, size, 3))
    x = k.layers.ZeroPadding2D(1)(inputs)
    x = k.layers.Conv2D(channels, 3, strides=2, activation="relu")(x)
    pointwise = []
    for _ in range(blocks):
        pointwise.append(k.layers.Conv2D(channels, 1, activation="relu"))
        x = pointwise[-1](x)
    outputs = k.layers.GlobalAveragePooling2D()(x)
    model = k.Model(inputs, outputs, name="xnnpack_sparse_probe")
    for layer in pointwise:
        kernel, bias = layer.get_weights()
        kernel = rng.normal(0, np.sqrt(2 / (channels * (1 - sparsity))), kernel.shape).astype(np.float32)
        kernel[rng.random(kernel.shape) < sparsity] = 0
        layer.set_weights([kernel, bias])
    return model


def compare_files(sparse_path: str, dense_path: str, rounds: int, threads: int) -> dict:
    with open(sparse_path, "rb") as s, open(dense_path, "rb") as d:
        return compare(s.read(), d.read(), rounds=rounds, threads=threads)


def compare_in_process(sparse_path, dense_path, rounds: int, arm64: bool = False, timeout_s: float = 3600) -> dict:
    """`compare` run by this file as a script in a fresh process: this Python, or (arm64) the emulated
    arm64 root filesystem's under QEMU (pipeline/targets/emulated.py), which has numpy and LiteRT only."""
    import json
    import os
    import subprocess
    import sys

    args = [__file__, str(sparse_path), str(dense_path), str(rounds)]
    env = dict(os.environ)
    if arm64:
        from pipeline.targets import emulated

        root = emulated.rootfs("arm64")
        qemu, env["QEMU_CPU"] = emulated.QEMU["arm64"]
        command = [qemu, "-L", str(root), str(root / "usr" / "bin" / "python3"), *args]
    else:
        command = [sys.executable, *args]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s)
    if proc.returncode != 0:
        return {"sparse_path": "unknown", "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    # Also run as a script by another Python (an emulated ARM root filesystem's: numpy + LiteRT only).
    import json
    import sys

    print(json.dumps(compare_files(sys.argv[1], sys.argv[2], rounds=int(sys.argv[3]), threads=1)))
