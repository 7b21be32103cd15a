"""Time many TFLite models in one process, in interleaved rounds, and print one JSON object on stdout.

    python table_runner.py MODELS.npz --threads N --warmup W --runs R --rounds K

MODELS.npz holds each model's bytes as a uint8 array (any names). Each round times every model
once: a fresh interpreter (XNNPACK, as the device runner), W untimed invokes, then the median of R
timed ones; the order reverses every other round, so that a drift in the machine's speed hits the
first and the last models alike. The result gives, per model, its medians per round:

    {"runner_version", "runtime", "runtime_version", "cpu", "delegates", "rounds_ms": {name: [ms, ...]}}

Used for the latency tables of pipeline/compress/layer_latency.py: hundreds of one-layer models,
too many for a fresh process each. Standalone like device_runner.py, whose helpers it imports
(the two are copied to a board together). Exit codes as device_runner.py's.
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np

import device_runner as runner

TABLE_RUNNER_VERSION = 1


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models")
    for name in ("--threads", "--warmup", "--runs", "--rounds"):
        parser.add_argument(name, type=int, required=True)
    args = parser.parse_args(argv)
    for name, least in (("threads", 1), ("warmup", 0), ("runs", 1), ("rounds", 1)):
        if getattr(args, name) < least:
            parser.error(f"--{name} must be >= {least}")
    return args


def applied_delegate(interpreter):
    """'xnnpack' when a DELEGATE node took over the graph. Not device_runner's log line: LiteRT logs
    the delegate's creation once per process."""
    try:
        ops = [op["op_name"] for op in interpreter._get_ops_details()]
    except Exception:  # a runtime without the (private) ops listing
        return "unknown"
    return "xnnpack" if "DELEGATE" in ops else "none"


def time_models(args):
    _, _, interpreter_cls = runtime = runner.load_runtime()
    try:
        archive = np.load(args.models)
        models = {name: archive[name].tobytes() for name in archive.files}
    except (OSError, ValueError, KeyError) as error:
        raise runner.RunnerError(f"cannot read {args.models}: {error}", runner.EXIT_BAD_MODEL) from None
    rng = np.random.default_rng(0)
    rounds = {name: [] for name in models}
    delegates = set()
    order = list(models)
    with tempfile.TemporaryDirectory(prefix="table-runner-") as folder:
        path = os.path.join(folder, "model.tflite")
        for round_ in range(args.rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                with open(path, "wb") as file:
                    file.write(models[name])
                interpreter, _, _ = runner.create_interpreter(interpreter_cls, path, args.threads)
                delegates.add(applied_delegate(interpreter))
                runner.set_inputs(interpreter, runner.input_batches(interpreter.get_input_details(), rng), 0)
                latencies = runner.time_invokes(interpreter, args.warmup, args.runs)
                rounds[name].append(round(float(np.median(latencies)), 6))
                del interpreter
    return {"runner_version": TABLE_RUNNER_VERSION, "runtime": runtime[0], "runtime_version": runtime[1],
            "cpu": runner.cpu_info(), "delegates": sorted(delegates), "rounds_ms": rounds}


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with runner.stdout_reserved_for_result() as out:
            result = time_models(args)
            out.write(json.dumps(result) + "\n")
    except runner.RunnerError as error:
        print(f"table_runner: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
