"""Benchmark one model in this process and print one JSON object on stdout.

    python device_runner.py MODEL.tflite|MODEL.ncnn.param|MODEL.onnx|MODEL.mnn --threads N --warmup W --runs R
                            [--seed S] [--fp16] [--no-xnnpack] [--inputs IN.npz] [--outputs OUT.npz]
                            [--probe COPY.tflite|COPY.onnx] [--logits NAME]

--inputs feeds the arrays input_0, input_1... instead of random data; an array with one more
leading axis than the input holds a batch of images (float images are quantized for an int8
input). Timing uses the first. --outputs then runs every image once more, untimed, and saves
the inputs fed and the outputs (output_N, output_N_quant = [scale, zero_point]), one row per
image, so two targets can be compared on the same inputs (every artifact type). --logits NAME
also saves that tensor (the softmax's input) as `logits` / `logits_quant`: an ncnn blob, or an
output of --probe, a copy of the artifact that also exposes it (TFLite and onnxruntime keep no
intermediate tensor otherwise; LiteRT's preserve-all-tensors mode would turn XNNPACK off).

The runtime follows the artifact: .tflite runs in a TFLite runtime (ai-edge-litert, else
tflite-runtime), .param in ncnn (with the .bin beside it; --fp16 turns on ncnn's fp16
storage, packing and arithmetic where the CPU has them), .onnx in onnxruntime's CPU provider,
.mnn in MNN's session API (--fp16: its low precision mode; --logits names the final Softmax op,
whose input is read in MNN's per-op callback).
Standalone on purpose: it is copied to ARM boards and emulated root filesystems, so it
imports only the standard library, numpy and the one runtime it needs. Run it in a fresh
process per measurement; the caller parses stdout. Every runtime gives the same JSON fields.

Exit codes: 0 ok; 2 bad arguments or a model that is missing or invalid; 3 no runtime for
the artifact, or the runtime failed on a model that loaded. Errors are one line on stderr.
"""
import argparse
import contextlib
import json
import os
import platform
import resource
import sys
import tempfile
import time

import numpy as np

RUNNER_VERSION = 5  # 4: .mnn models; 5: cpu.board, emulated on QEMU's virt board, latency p25/p75
EXIT_BAD_MODEL = 2
EXIT_RUNTIME_FAILED = 3
XNNPACK_LOG_LINE = "Created TensorFlow Lite XNNPACK delegate"


class RunnerError(Exception):
    def __init__(self, message, exit_code):
        super().__init__(" ".join(str(message).split()))  # always one line
        self.exit_code = exit_code


def shape_chw(text):
    try:
        dims = tuple(int(d) for d in text.split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W positive integers, got {text!r}")
    return dims


def parse_args(argv):
    def positive(text):
        value = int(text)
        if value < 1:
            raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
        return value

    def non_negative(text):
        value = int(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
        return value

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=positive, required=True)
    parser.add_argument("--warmup", type=non_negative, required=True)
    parser.add_argument("--runs", type=positive, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inputs", help="npz with input_0, input_1... to feed instead of random data")
    parser.add_argument("--outputs", help="write the inputs fed and the last run's outputs to this npz")
    parser.add_argument("--fp16", action="store_true", help="ncnn: fp16 storage, packing and arithmetic")
    parser.add_argument("--no-xnnpack", action="store_true", help="TFLite: built-in kernels only, no default delegate")
    parser.add_argument("--input-shape", type=shape_chw, help="ncnn: C,H,W when the Input layer does not say")
    parser.add_argument("--probe", help="TFLite/ONNX: a copy of the model that also outputs --logits, run for --outputs")
    parser.add_argument("--logits", help="with --outputs: the tensor (ncnn blob) feeding the final softmax, saved as `logits`")
    return parser.parse_args(argv)


@contextlib.contextmanager
def stdout_reserved_for_result():
    """Point fd 1 at stderr so native or library prints cannot corrupt the JSON.

    Yields a writer for the one result line, which goes to the original stdout.
    """
    sys.stdout.flush()
    result_fd = os.dup(1)
    os.dup2(2, 1)
    saved_stdout, sys.stdout = sys.stdout, sys.stderr
    try:
        with os.fdopen(result_fd, "w", closefd=False) as result:
            yield result
    finally:
        flush_native_stdout()  # while fd 1 is still stderr: a runtime's buffered printf (MNN's) lands there
        sys.stdout = saved_stdout
        os.dup2(result_fd, 1)
        os.close(result_fd)


def flush_native_stdout():
    """Flush C stdio's buffers: native code's printf into a pipe is buffered until exit otherwise,
    and would reach stdout after the result (MNN prints the CPU features it found)."""
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):  # no C library to ask: nothing buffered by it either
        pass


@contextlib.contextmanager
def captured_native_stderr():
    """Collect what native code writes to fd 2; the lines are filled in on exit.

    The runtime logs delegate creation from C++, which Python's sys.stderr never sees.
    """
    lines = []
    sys.stderr.flush()
    saved_fd = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield lines
        finally:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            os.close(saved_fd)
            capture.seek(0)
            lines.extend(capture.read().decode("utf-8", "replace").splitlines())


def load_runtime():
    """Return (name, version, Interpreter class), preferring LiteRT."""
    try:
        import ai_edge_litert
        from ai_edge_litert.interpreter import Interpreter

        return "ai-edge-litert", package_version("ai-edge-litert", ai_edge_litert), Interpreter
    except ImportError as litert_error:
        first_error = litert_error
    try:
        import tflite_runtime
        from tflite_runtime.interpreter import Interpreter

        return "tflite-runtime", package_version("tflite-runtime", tflite_runtime), Interpreter
    except ImportError as tflite_error:
        raise RunnerError(
            f"no TFLite runtime: ai_edge_litert ({first_error}); tflite_runtime ({tflite_error})",
            EXIT_RUNTIME_FAILED,
        ) from None


def package_version(dist_name, module):
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        from importlib.metadata import version as dist_version

        return dist_version(dist_name)
    except Exception:  # metadata can be missing on hand-copied installs
        return "unknown"


def batch_one_shapes(interpreter):
    """Resize inputs whose batch is dynamic (-1) to batch 1; other dynamic dims are refused."""
    for detail in interpreter.get_input_details():
        signature = list(detail.get("shape_signature", detail["shape"]))
        if -1 not in signature:
            continue
        if -1 in signature[1:]:
            raise RunnerError(
                f"input {detail['name']!r} has dynamic non-batch dims {signature}", EXIT_BAD_MODEL
            )
        interpreter.resize_tensor_input(detail["index"], [1] + signature[1:])


def create_interpreter(interpreter_cls, model_path, threads, xnnpack=True):
    """Create and allocate the interpreter; return (interpreter, init_ms, native log lines)."""
    options = {}
    if not xnnpack:  # the same enum in ai_edge_litert and tflite_runtime
        resolvers = sys.modules[interpreter_cls.__module__].OpResolverType
        options["experimental_op_resolver_type"] = resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    with captured_native_stderr() as native_log:
        start = time.perf_counter_ns()
        try:
            interpreter = interpreter_cls(model_path=model_path, num_threads=threads, **options)
            batch_one_shapes(interpreter)
            interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as error:
            failure = error
        else:
            failure = None
        init_ms = (time.perf_counter_ns() - start) / 1e6
    if failure is not None:
        errors = [line for line in native_log if line.startswith("ERROR")]
        detail = f" ({errors[-1]})" if errors else ""
        raise RunnerError(f"invalid model {model_path}: {failure}{detail}", EXIT_BAD_MODEL)
    return interpreter, init_ms, native_log


def delegate_name(interpreter, native_log):
    """'xnnpack' if the runtime logged the delegate and, where visible, it took over nodes.

    The log line only says the delegate was created; a DELEGATE node in the execution plan
    shows it was applied. Runtimes without the (private) ops listing rely on the log alone.
    """
    if not any(XNNPACK_LOG_LINE in line for line in native_log):
        return "none"
    try:
        op_names = [op["op_name"] for op in interpreter._get_ops_details()]
    except Exception:
        return "xnnpack"
    return "xnnpack" if "DELEGATE" in op_names else "none"


def random_input(detail, rng):
    """Random data over the input's natural range: [-1, 1) for floats, full range for int8/uint8."""
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(dim) for dim in detail["shape"])
    if np.issubdtype(dtype, np.floating):
        return rng.uniform(-1.0, 1.0, size=shape).astype(dtype)
    if np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
    raise RunnerError(f"input {detail['name']!r} has unsupported dtype {dtype}", EXIT_BAD_MODEL)


def input_batches(details, rng, given=None):
    """{input_i: (n, *shape)}: one random input each, or the arrays `given` (input_0...)."""
    batches = {f"input_{i}": input_batch(detail, rng, given, f"input_{i}") for i, detail in enumerate(details)}
    counts = {len(batch) for batch in batches.values()}
    if len(counts) != 1:
        raise RunnerError(f"--inputs holds different image counts per input ({sorted(counts)})", EXIT_BAD_MODEL)
    return batches


def set_inputs(interpreter, batches, row):
    for i, detail in enumerate(interpreter.get_input_details()):
        interpreter.set_tensor(detail["index"], batches[f"input_{i}"][row])


def describe_input(detail):
    return {"shape": [int(dim) for dim in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name}


def input_batch(detail, rng, given, key):
    """The arrays to feed one input, stacked on a new first axis: one random, or `given[key]`."""
    return random_input(detail, rng)[None] if given is None else given_input(detail, given, key)


def given_input(detail, given, key):
    """`given[key]` as a batch (n, *shape): one input, or n images (n, *shape) or, for a batch-1 input,
    (n, *shape[1:]); float images are quantized
    with the input's own scale and zero point when the input is int8/uint8."""
    if key not in given:
        raise RunnerError(f"--inputs has no {key} for input {detail['name']!r}", EXIT_BAD_MODEL)
    array = given[key]
    shape = tuple(int(dim) for dim in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    if array.shape == shape:
        batch = array[None]
    elif shape[:1] == (1,) and array.shape[1:] == shape[1:]:  # n images for a batch-1 input
        batch = array[:, None]
    else:
        batch = array
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if batch.dtype != dtype and np.issubdtype(batch.dtype, np.floating) and np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        batch = np.clip(np.round(batch / scale + zero_point), info.min, info.max).astype(dtype)
    if batch.shape[1:] != shape or batch.dtype != dtype or len(batch) == 0:
        raise RunnerError(
            f"--inputs {key} is {array.dtype}{list(array.shape)}, input {detail['name']!r} "
            f"wants {dtype}{list(shape)} (or a batch of them)", EXIT_BAD_MODEL)
    return batch


def load_inputs(path):
    """The arrays of an --inputs npz, or None when none was given (random inputs)."""
    if path is None:
        return None
    try:
        with np.load(path) as npz:
            return {key: npz[key] for key in npz.files}
    except (OSError, ValueError) as error:
        raise RunnerError(f"cannot read --inputs {path}: {error}", EXIT_BAD_MODEL) from None


def output_names(count, logits):
    """output_0... and, when the logits were asked for, `logits` last."""
    return [f"output_{i}" for i in range(count)] + (["logits"] if logits else [])


def save_outputs(path, fed, names, rows):
    """Save the inputs fed and, per image, the tensors `names`: `rows` holds one list per image of
    pairs (array, (scale, zero_point)) in that order; float tensors have (0, 0)."""
    arrays = dict(fed)
    for column, name in enumerate(names):
        arrays[name] = np.stack([np.asarray(row[column][0]) for row in rows])
        scale, zero_point = rows[0][column][1]
        arrays[f"{name}_quant"] = np.asarray([scale, zero_point], dtype=np.float64)
    with open(path, "wb") as out:  # a file object: np.savez would append ".npz" to a bare name
        np.savez(out, **arrays)


def time_invokes(interpreter, warmup, runs):
    """Latencies in ms of `runs` invokes after `warmup` untimed ones; only invoke is timed."""
    try:
        for _ in range(warmup):
            interpreter.invoke()
        latencies_ns = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            interpreter.invoke()
            latencies_ns.append(time.perf_counter_ns() - start)
    except (ValueError, RuntimeError) as error:
        raise RunnerError(f"invoke failed: {error}", EXIT_RUNTIME_FAILED) from None
    return np.asarray(latencies_ns, dtype=np.float64) / 1e6


def summarize(latencies_ms):
    p25, p50, p75, p90, p99 = np.percentile(latencies_ms, [25, 50, 75, 90, 99])
    std = float(np.std(latencies_ms, ddof=1)) if len(latencies_ms) > 1 else 0.0
    stats = {"p50": p50, "p90": p90, "p99": p99, "mean": np.mean(latencies_ms), "std": std, "p25": p25, "p75": p75}
    # 6 decimals of a millisecond is the nanosecond resolution the timer gave us.
    summary = {key: round(float(value), 6) for key, value in stats.items()}
    summary["n"] = int(len(latencies_ms))
    return summary


def peak_rss_mb():
    # VmHWM is this process image's own peak. ru_maxrss is not: Linux carries it across
    # exec, so a child forked from a big parent (TensorFlow loaded) reports the parent's.
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 2)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    bytes_per_unit = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KB
    return round(peak * bytes_per_unit / (1024 * 1024), 2)


def cpu_info():
    """Machine, a CPU description from /proc/cpuinfo where it exists, and the core count.

    x86 and some ARM kernels give "model name"; ARM boards often only "Hardware" and
    "CPU part" (several distinct parts on big.LITTLE phones).
    """
    fields = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, sep, value = line.partition(":")
                if sep and value.strip():
                    values = fields.setdefault(key.strip(), [])
                    if value.strip() not in values:
                        values.append(value.strip())
    except OSError:
        pass
    parts = []
    if "model name" in fields:
        parts.append(fields["model name"][0])
    if "Hardware" in fields:
        parts.append(f"Hardware {fields['Hardware'][0]}")
    if "CPU part" in fields:
        parts.append("CPU part " + "/".join(fields["CPU part"]))
    model = "; ".join(parts) or platform.processor() or None
    return {"machine": platform.machine(), "model": model, "count": os.cpu_count(), "board": board_model()}


QEMU_VIRT_BOARD = "linux,dummy-virt"  # the device tree model of QEMU's `virt` machine


def board_model():
    """The device tree's model ("Raspberry Pi 4 Model B Rev 1.4"), else its first compatible string
    (QEMU's virt board has only that: QEMU_VIRT_BOARD); None without a device tree (x86)."""
    for name in ("model", "compatible"):
        try:
            with open(f"/proc/device-tree/{name}", "rb") as field:
                value = field.read().split(b"\0")[0].decode("utf-8", "replace")
        except OSError:
            continue
        if value:
            return value
    return None


def benchmark(args):
    if not os.path.isfile(args.model):
        raise RunnerError(f"model not found: {args.model}", EXIT_BAD_MODEL)
    if args.model.endswith(".param"):
        return benchmark_ncnn(args)
    if args.model.endswith(".onnx"):
        return benchmark_onnx(args)
    if args.model.endswith(".mnn"):
        return benchmark_mnn(args)
    if not args.model.endswith(".tflite"):
        raise RunnerError(f"unknown artifact type {args.model} (expected .tflite, .param, .onnx or .mnn)", EXIT_BAD_MODEL)
    return benchmark_tflite(args)


def common_fields(runtime, runtime_version, delegate, args, latencies_ms, init_ms, input_info, options):
    cpu = cpu_info()
    return {
        "runner_version": RUNNER_VERSION,
        "runtime": runtime,
        "runtime_version": runtime_version,
        "delegate": delegate,
        "threads": args.threads,
        "warmup": args.warmup,
        "latency_ms": summarize(latencies_ms),
        "init_ms": round(init_ms, 6),
        "peak_rss_mb": peak_rss_mb(),
        "cpu": cpu,
        # A QEMU virt board's timings are emulated (TCG here; under KVM they would be a VM's).
        "emulated": cpu["board"] == QEMU_VIRT_BOARD,
        "python": platform.python_version(),
        "input": input_info,
        "options": options,
        "arithmetic": None,  # fp16 artifacts: "fp16" or "fp32", set by their runtime's benchmark
    }


def time_calls(call, warmup, runs):
    """Latencies in ms of `runs` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        call()
    latencies_ns = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        latencies_ns.append(time.perf_counter_ns() - start)
    return np.asarray(latencies_ns, dtype=np.float64) / 1e6


def ncnn_input_shape(param_path):
    """(C, H, W) from the Input layer of a .param (pnnx writes it when given inputshape)."""
    with open(param_path) as param:
        for line in param:
            parts = line.split()
            if len(parts) > 4 and parts[0] == "Input":
                values = dict(item.split("=", 1) for item in parts[5:] if "=" in item)
                w, h, c = (int(values.get(k, 0)) for k in ("0", "1", "2"))
                if w > 0 and h > 0 and c > 0:
                    return c, h, w
    return None


def open_ncnn_net(ncnn, model, weights, options):
    net = ncnn.Net()
    for name, value in options.items():
        if not name.startswith("outputs_"):
            setattr(net.opt, name, value)
    with captured_native_stderr() as native_log:
        loaded = net.load_param(model) == 0 and net.load_model(weights) == 0
    if not loaded:
        detail = f" ({native_log[-1]})" if native_log else ""
        raise RunnerError(f"invalid model {model}{detail}", EXIT_BAD_MODEL)
    return net


def ncnn_int8_on_x86(param_path):
    """An int8 model on an x86 CPU. ncnn's packed x86 int8 depthwise kernel takes its dequantize
    scale from _mm_rcp_ps (12-bit reciprocal) where the ARM kernels divide exactly, so requantized
    outputs differ by one step here and there and MobileNet V2's logits by up to 1.2; the
    unpacked x86 kernels divide exactly and give ARM's numbers (docs/accuracy-on-arm.md)."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    with open(param_path) as param:
        for line in param:
            parts = line.split()
            if parts and parts[0] in ("Convolution", "ConvolutionDepthWise", "InnerProduct"):
                if any(item.startswith("8=") and item != "8=0" for item in parts[4:]):
                    return True
    return False


def benchmark_ncnn(args):
    try:
        import ncnn
    except ImportError as error:
        raise RunnerError(f"no ncnn runtime: {error}", EXIT_RUNTIME_FAILED) from None
    weights = args.model[: -len(".param")] + ".bin"
    if not os.path.isfile(weights):
        raise RunnerError(f"ncnn weights not found beside the param file: {weights}", EXIT_BAD_MODEL)
    shape = args.input_shape or ncnn_input_shape(args.model)
    if shape is None:
        raise RunnerError(f"{args.model}: no input shape in the Input layer; pass --input-shape C,H,W", EXIT_BAD_MODEL)
    options = {
        "use_vulkan_compute": False, "num_threads": args.threads, "use_packing_layout": True,
        "use_fp16_storage": args.fp16, "use_fp16_packed": args.fp16, "use_fp16_arithmetic": args.fp16,
        "use_int8_inference": True,
    }
    start = time.perf_counter_ns()
    net = open_ncnn_net(ncnn, args.model, weights, options)
    init_ms = (time.perf_counter_ns() - start) / 1e6
    output_net = net
    if args.outputs and ncnn_int8_on_x86(args.model):
        # The saved outputs are ARM's numbers: see ncnn_int8_on_x86. Timing keeps the packed layout.
        options["outputs_use_packing_layout"] = False
        output_net = open_ncnn_net(ncnn, args.model, weights, {**options, "use_packing_layout": False})
    # What ncnn can use on this CPU: its ARM kernels need NEON; fp16 arithmetic needs asimdhp.
    for probe in ("cpu_support_arm_neon", "cpu_support_arm_vfpv4", "cpu_support_arm_asimdhp",
                  "cpu_support_x86_avx", "cpu_support_x86_avx2"):
        if hasattr(ncnn, probe):
            options[probe] = bool(getattr(ncnn, probe)())
    detail = {"name": "in0", "shape": shape, "dtype": np.float32}
    images = input_batch(detail, np.random.default_rng(args.seed), load_inputs(args.inputs), "input_0")
    images = np.ascontiguousarray(images)  # the array and each Mat must outlive every extraction

    def run(mat, blobs=("out0",), net=net):
        extractor = net.create_extractor()
        extractor.set_light_mode(len(blobs) == 1)  # light mode frees a consumed blob before we could read it
        extractor.input("in0", mat)
        outs = []
        for blob in blobs:
            ret, out = extractor.extract(blob)
            if ret != 0 or out.w == 0:
                raise RunnerError(f"ncnn extract of blob {blob!r} failed with code {ret}", EXIT_RUNTIME_FAILED)
            outs.append((np.array(out), (0.0, 0)))
        return outs

    first = ncnn.Mat(images[0])
    latencies_ms = time_calls(lambda: run(first), args.warmup, args.runs)
    if args.outputs:  # again per image, untimed: the outputs are copies
        blobs = ("out0", args.logits) if args.logits else ("out0",)
        mats = [ncnn.Mat(image) for image in images]
        rows = [run(mat, blobs, output_net) for mat in mats]
        save_outputs(args.outputs, {"input_0": images}, output_names(1, args.logits), rows)
    input_info = {"shape": [1, *shape], "dtype": "float32"}
    record = common_fields("ncnn", package_version("ncnn", ncnn), "none", args, latencies_ms, init_ms, input_info, options)
    # ncnn computes in fp16 only where asked and the CPU has ARMv8.2 FP16 arithmetic (asimdhp); x86 never.
    record["arithmetic"] = ("fp16" if options.get("cpu_support_arm_asimdhp") else "fp32") if args.fp16 else None
    return record


def benchmark_onnx(args):
    os.environ["ORT_DISABLE_TELEMETRY"] = "1"  # onnxruntime >= 1.29 reports home otherwise (pipeline/no_telemetry.py)
    try:
        import onnxruntime
    except ImportError as error:
        raise RunnerError(f"no onnxruntime: {error}", EXIT_RUNTIME_FAILED) from None
    session_options = onnxruntime.SessionOptions()
    session_options.intra_op_num_threads = args.threads
    session_options.inter_op_num_threads = 1
    session_options.log_severity_level = 3
    start = time.perf_counter_ns()
    try:
        session = onnxruntime.InferenceSession(args.model, session_options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types per failure
        raise RunnerError(f"invalid model {args.model}: {error}", EXIT_BAD_MODEL) from None
    init_ms = (time.perf_counter_ns() - start) / 1e6
    detail = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in detail.shape]
    spec = {"name": detail.name, "shape": shape, "dtype": np.float32}
    images = input_batch(spec, np.random.default_rng(args.seed), load_inputs(args.inputs), "input_0")
    try:
        latencies_ms = time_calls(lambda: session.run(None, {detail.name: images[0]}), args.warmup, args.runs)
        if args.outputs:
            probe = session if not args.probe else onnxruntime.InferenceSession(
                args.probe, session_options, providers=["CPUExecutionProvider"])
            names = [o.name for o in session.get_outputs()] + ([args.logits] if args.logits else [])
            rows = [[(out, (0.0, 0)) for out in probe.run(names, {detail.name: image})] for image in images]
            save_outputs(args.outputs, {"input_0": images}, output_names(len(names) - bool(args.logits), args.logits), rows)
    except Exception as error:
        raise RunnerError(f"run failed: {error}", EXIT_RUNTIME_FAILED) from None
    options = {"execution_provider": "CPUExecutionProvider", "intra_op_num_threads": args.threads,
               "graph_optimization_level": "all"}
    input_info = {"shape": shape, "dtype": "float32"}
    return common_fields("onnxruntime", package_version("onnxruntime", onnxruntime), "none", args,
                         latencies_ms, init_ms, input_info, options)


def benchmark_mnn(args):
    """MNN's session API (what MNN's own benchmark tool times); --fp16: precision mode "low", which
    computes in fp16 where the CPU has fp16 arithmetic (ARMv8.2), in fp32 elsewhere."""
    try:
        import MNN  # prints the CPU features it found: on stderr, since stdout is the result's
    except ImportError as error:
        raise RunnerError(f"no MNN runtime: {error}", EXIT_RUNTIME_FAILED) from None
    precision = "low" if args.fp16 else "normal"
    start = time.perf_counter_ns()
    try:
        interpreter = MNN.Interpreter(args.model)
        session = interpreter.createSession({"numThread": args.threads, "precision": precision})
    except Exception as error:  # MNN raises a bare Exception for a file it cannot parse
        raise RunnerError(f"invalid model {args.model}: {error}", EXIT_BAD_MODEL) from None
    init_ms = (time.perf_counter_ns() - start) / 1e6
    tensor = interpreter.getSessionInput(session)
    shape = [int(d) for d in tensor.getShape()]
    images = input_batch({"name": "input", "shape": shape, "dtype": np.float32}, np.random.default_rng(args.seed),
                         load_inputs(args.inputs), "input_0")

    def feed(image):
        tensor.copyFrom(MNN.Tensor(tuple(shape), MNN.Halide_Type_Float, np.ascontiguousarray(image, np.float32),
                                   MNN.Tensor_DimensionType_Caffe))

    def host_copy(tensor_):
        host = MNN.Tensor(tensor_, MNN.Tensor_DimensionType_Caffe)
        tensor_.copyToHostTensor(host)
        return np.array(host.getNumpyData(), dtype=np.float32)

    def run_reading_logits():
        """One run that also reads the input of the op named --logits (the final Softmax)."""
        found = []

        def before(tensors, info):
            if info.getName() == args.logits:
                found.append(host_copy(tensors[0]))
            return True

        interpreter.runSessionWithCallBackInfo(session, before, lambda tensors, info: True)
        if not found:
            raise RunnerError(f"--logits {args.logits!r} is no op of {args.model}", EXIT_BAD_MODEL)
        return [(found[0], (0.0, 0))]

    try:
        feed(images[0])
        latencies_ms = time_calls(lambda: interpreter.runSession(session), args.warmup, args.runs)
        if args.outputs:
            rows = []
            for image in images:
                feed(image)
                if args.logits:
                    logits = run_reading_logits()
                else:
                    interpreter.runSession(session)
                    logits = []
                rows.append([(host_copy(interpreter.getSessionOutput(session)), (0.0, 0)), *logits])
            save_outputs(args.outputs, {"input_0": images}, output_names(1, args.logits), rows)
    except RunnerError:
        raise
    except Exception as error:  # MNN's own exception types
        raise RunnerError(f"run failed: {error}", EXIT_RUNTIME_FAILED) from None
    options = {"precision_mode": precision, "num_thread": args.threads, "backend": "CPU"}
    record = common_fields("mnn", package_version("mnn", MNN), "none", args, latencies_ms, init_ms,
                           {"shape": shape, "dtype": "float32"}, options)
    cpu = record["cpu"]["machine"] or ""
    record["arithmetic"] = ("fp16" if _has_fp16_arithmetic() and cpu in ("aarch64", "arm64") else "fp32") if args.fp16 else None
    return record


def _has_fp16_arithmetic():
    """ARMv8.2 FP16 arithmetic (asimdhp in /proc/cpuinfo's Features), which MNN's low precision uses."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            return any(line.startswith("Features") and "asimdhp" in line.split() for line in cpuinfo)
    except OSError:
        return False


def benchmark_tflite(args):
    runtime, runtime_version, interpreter_cls = load_runtime()
    interpreter, init_ms, native_log = create_interpreter(interpreter_cls, args.model, args.threads, not args.no_xnnpack)
    for line in native_log:  # keep the runtime's own log visible to whoever reads stderr
        print(line, file=sys.stderr)
    details = interpreter.get_input_details()
    batches = input_batches(details, np.random.default_rng(args.seed), load_inputs(args.inputs))
    set_inputs(interpreter, batches, 0)
    latencies_ms = time_invokes(interpreter, args.warmup, args.runs)
    if args.outputs:
        save_tflite_outputs(args, interpreter_cls, interpreter, batches)
    delegate = delegate_name(interpreter, native_log)
    record = common_fields(runtime, runtime_version, delegate, args, latencies_ms, init_ms, describe_input(details[0]), {})
    record["arithmetic"] = tflite_arithmetic(args, interpreter_cls, interpreter, batches, delegate)
    return record


REDUCED_PRECISION_KEY = b"reduced_precision_support"


def tflite_arithmetic(args, interpreter_cls, interpreter, batches, delegate):
    """For a model carrying reduced-precision metadata (the fp16 artifacts): 'fp16' when XNNPACK
    computed in fp16, else 'fp32'; None for other models. LiteRT logs nothing about it and has
    no op profile of XNNPACK's kernels, so the runner asks the kernels: the same model with the
    metadata key renamed (same length: the flatbuffer stays valid) computes in fp32; any output
    difference on the same input means the original ran fp16 kernels."""
    with open(args.model, "rb") as model_file:
        content = model_file.read()
    if REDUCED_PRECISION_KEY not in content:
        return None
    if delegate != "xnnpack":
        return "fp32"  # the built-in kernels dequantize fp16 weights and compute in fp32
    hidden = content.replace(REDUCED_PRECISION_KEY, b"reduced_precision_unused_")
    with captured_native_stderr():
        fp32_interpreter = interpreter_cls(model_content=hidden, num_threads=args.threads)
        batch_one_shapes(fp32_interpreter)
        fp32_interpreter.allocate_tensors()
    outputs = []
    for each in (interpreter, fp32_interpreter):
        set_inputs(each, batches, 0)
        time_invokes(each, 0, 1)
        outputs.append([each.get_tensor(d["index"]).copy() for d in each.get_output_details()])
    same = all(np.array_equal(a, b) for a, b in zip(*outputs))
    return "fp32" if same else "fp16"


def save_tflite_outputs(args, interpreter_cls, interpreter, batches):
    """Run every image (on --probe, with the same kernels, when given) and save outputs and logits."""
    if args.probe:
        interpreter, _, _ = create_interpreter(interpreter_cls, args.probe, args.threads, not args.no_xnnpack)
    outputs = interpreter.get_output_details()
    wanted = [d for d in outputs if d["name"] != args.logits]
    if args.logits:
        found = [d for d in outputs if d["name"] == args.logits]
        if not found:
            raise RunnerError(f"--logits {args.logits!r} is no output of {args.probe or args.model}", EXIT_BAD_MODEL)
        wanted += found
    rows = []
    for row in range(len(batches["input_0"])):
        set_inputs(interpreter, batches, row)
        time_invokes(interpreter, 0, 1)
        rows.append([(interpreter.get_tensor(d["index"]).copy(), d.get("quantization", (0.0, 0))) for d in wanted])
    save_outputs(args.outputs, batches, output_names(len(wanted) - bool(args.logits), args.logits), rows)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    with stdout_reserved_for_result() as result:
        try:
            report = benchmark(args)
        except RunnerError as error:
            print(f"device_runner: {error}", file=sys.stderr)
            return error.exit_code
        result.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
