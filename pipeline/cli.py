"""The `deploy` command: parses flags into a config and calls the library. Only this module exits.

Exit codes: 0 success; 1 a quality gate failed; 2 bad input or usage; 3 a tool failed.
Nothing heavy is imported at module level: `deploy --help` must not load TensorFlow.
"""
from __future__ import annotations

import json
import logging
import shlex
import sys
import traceback
from pathlib import Path

import click

from pipeline import no_telemetry
from pipeline.errors import EXIT_BAD_INPUT, EXIT_TOOL_FAILED, DeployError

EXIT_CODES_HELP = "Exit codes: 0 success, 1 quality gate failed, 2 bad input or usage, 3 a tool failed."

log = logging.getLogger("deploy")


def _split(ctx, param, value):
    """Comma-separated or repeated flag values -> list (None when not given, so config files apply)."""
    if not value:
        return None
    values = value if isinstance(value, tuple) else (value,)
    return [item.strip() for v in values for item in v.split(",") if item.strip()]


def _floats(ctx, param, value):
    items = _split(ctx, param, value)
    if items is None:
        return None
    try:
        return [float(x) for x in items]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None


def _ints(ctx, param, value):
    items = _split(ctx, param, value)
    if items is None:
        return None
    try:
        return [int(x) for x in items]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}") from None


SSH_OPTIONS = (
    click.option("--ssh-python", help="ssh targets: the board's Python with numpy and its runtimes [the venv `deploy devices --setup` made, else python3]."),
    click.option("--ssh-key", type=click.Path(path_type=Path), help="ssh targets: identity file [ssh's default]."),
    click.option("--ssh-known-hosts", type=click.Path(path_type=Path),
                 help="ssh targets: known_hosts file holding the boards' host keys (unknown keys are refused) [~/.ssh/known_hosts]."),
    click.option("--ssh-dir", help="ssh targets: board folder for the per-run temp folder [the board's /tmp]."),
)


ADB_OPTIONS = (
    click.option("--adb-benchmark-model", type=click.Path(path_type=Path),
                 help="adb targets: LiteRT's benchmark_model built for the phone's ABI (docs/targets.md: where to get it)."),
    click.option("--adb-benchncnn", type=click.Path(path_type=Path),
                 help="adb targets: ncnn's benchncnn built for the phone's ABI (docs/targets.md: how to build it)."),
    click.option("--adb-cooldown", "adb_cooldown_s", type=float, help="adb targets: seconds the phone rests before each artifact [10]."),
)


def _ssh_options(func):
    for option in reversed(SSH_OPTIONS):
        func = option(func)
    return func


def _adb_options(func):
    for option in reversed(ADB_OPTIONS):
        func = option(func)
    return func


def _target_settings(flags: dict, prefix: str, options_class):
    """The --PREFIX-* flags among `flags` -> options_class; flags not given keep its defaults."""
    return options_class(**{k.removeprefix(prefix): v for k, v in flags.items() if k.startswith(prefix) and v is not None})


def _ssh_settings(flags: dict):
    from pipeline.targets.ssh import SshOptions

    return _target_settings(flags, "ssh_", SshOptions)


def _setup_logging(debug: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=200)  # CI logs: one line per message, no wrapping
    handler = RichHandler(console=console, show_path=False, show_time=True, markup=False)
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, format="%(message)s", handlers=[handler], force=True)
    # Keep TensorFlow's own loggers quiet unless debugging.
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.ERROR)


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Verbose logs and full tracebacks on errors.")
@click.version_option(package_name="mobile-deploy")
@click.pass_context
def cli(ctx, debug):
    """Ship an image classifier to phones and ARM boards: quantize, convert, verify, benchmark, report."""
    ctx.ensure_object(dict)["debug"] = debug
    _setup_logging(debug)


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="YAML file with build settings; flags override it.")
@click.option("--model", "models", multiple=True, callback=_split,
              help="Built-in architecture (see `deploy models`), 'all', or a trained .keras/.h5/SavedModel/.onnx; repeatable or comma-separated.")
@click.option("--data", help="'demo' (scikit-learn digits) or a folder with one subfolder of .jpg/.png images per class.")
@click.option("--out", type=click.Path(path_type=Path), help="Output folder for artifacts, cache and reports [build].")
@click.option("--input-size", type=int, help="Square input size for built-in models [32 on demo, else 224].")
@click.option("--alpha", type=float, help="Width multiplier for built-in models.")
@click.option("--mean", callback=_floats, help="Per-channel mean subtracted from 0-255 pixels [127.5,127.5,127.5].")
@click.option("--std", callback=_floats, help="Per-channel std dividing 0-255 pixels [127.5,127.5,127.5].")
@click.option("--channel-order", type=click.Choice(["RGB", "BGR"]), help="Channel order the model expects [RGB].")
@click.option("--val-fraction", type=float, help="Share of images held out for validation [0.2].")
@click.option("--seed", type=int, help="Seed for the split, training and calibration sampling [0].")
@click.option("--epochs", type=int, help="Float training epochs for built-in models [30].")
@click.option("--batch-size", type=int, help="Training batch size [64].")
@click.option("--learning-rate", type=float, help="Float training learning rate [0.01].")
@click.option("--qat-epochs", type=int, help="Quantization-aware fine-tuning epochs [3].")
@click.option("--qat-teacher", type=click.Choice(["float", "labels"]),
              help="What QAT fine-tunes toward: the float model's outputs with the labels weighted in (float), or the labels alone [float].")
@click.option("--qat-learning-rate", type=float, help="QAT learning rate [0.0001].")
@click.option("--qat-freeze-bn-after", type=int, help="QAT epochs after which batch-norm statistics are frozen; 0: never [0].")
@click.option("--early-stopping-patience", type=click.IntRange(min=0),
              help="Training and QAT stop once accuracy on 10 %% of the training images held out has not improved for this many epochs; 0 runs every epoch [5].")
@click.option("--augment", type=click.Choice(["none", "basic", "affine"]),
              help="Training augmentation for built-in training and QAT: basic = random resized crop + horizontal flip; "
                   "affine = small shifts, turns and scaling, no flip [affine].")
@click.option("--val-max-images", type=int, help="Validation images each accuracy figure uses, a seeded sample (0: all) [2000].")
@click.option("--sparsity", type=float, help="Share of the pruned weights set to zero by --prune magnitude [0.8].")
@click.option("--cluster", type=click.IntRange(min=0), help="Also build a variant with this many shared values per kernel (tfmot weight clustering); 0: off [0].")
@click.option("--require-qat", is_flag=True, default=None, help="Fail (exit 2) instead of falling back to PTQ when QAT is impossible.")
@click.option("--prune", type=click.Choice(["none", "l1-filter", "magnitude"]),
              help="Also build a pruned variant of each Keras model: l1-filter = structured L1-norm filter pruning (docs/compression.md); "
                   "magnitude = tfmot magnitude sparsity to --sparsity (docs/compression-tfmot.md) [none].")
@click.option("--prune-keep-macs", type=float, help="Share of the MACs the pruned variant keeps at most, e.g. 0.5 [0.5].")
@click.option("--prune-speedup", type=float,
              help="Instead of --prune-keep-macs: the speed-up the pruned int8 TFLite model must reach over the unpruned one on "
                   "--latency-on, by a per-layer latency table measured there (docs/compression.md), e.g. 1.6.")
@click.option("--latency-on", help="The target (one of --targets, not emulated) whose latency table --prune-speedup uses [host].")
@click.option("--latency-threads", type=int, help="Threads the latency table is measured with [1].")
@click.option("--prune-ratios-from", type=click.Path(path_type=Path),
              help="Instead of choosing: the per-group ratios of the same model's pruned variant in this report.json "
                   "(e.g. chosen by --prune-speedup at the deployment size).")
@click.option("--prune-epochs", type=int, help="Fine-tuning epochs of the pruned variant [10].")
@click.option("--prune-learning-rate", type=float, help="Fine-tuning learning rate of the pruned and sparse variants [0.002].")
@click.option("--distill", is_flag=True, default=None, help="Pruned fine-tuning and QAT learn from the float model's soft targets too (knowledge distillation).")
@click.option("--distill-temperature", type=float, help="Distillation temperature T [4].")
@click.option("--distill-alpha", type=float, help="Weight of the soft targets in the distillation loss; 1 - alpha on the labels [0.7].")
@click.option("--precisions", callback=_split, help="Comma-separated subset of fp32,fp16,dynamic-int8,int8-ptq,int8-qat [all].")
@click.option("--calibration-images", type=int, help="Training images used to calibrate int8 PTQ [200].")
@click.option("--io", type=click.Choice(["float", "int8"]), help="Input/output type of the int8 artifacts [float].")
@click.option("--int8-fallback", type=click.Choice(["auto", "off"]),
              help="TFLite int8-ptq and ncnn int8: keep the worst layers in float when int8 loses more than --int8-budget (docs/int8.md) [auto].")
@click.option("--int8-budget", type=float, help="Percent of images on which int8 may disagree with the float model (and points of top-1 it may lose) before the fallback acts [1.0].")
@click.option("--formats", callback=_split, help="Comma-separated subset of tflite,ncnn,onnx,mnn [tflite,ncnn,onnx; mnn is opt-in].")
@click.option("--ncnn-precisions", callback=_split, help="Comma-separated subset of fp32,fp16,int8 for ncnn [all].")
@click.option("--ncnn-calibration", type=click.Choice(["kl", "percentile", "minmax", "mse", "auto"]), help="ncnn int8 activation calibration [mse: least squared error per blob]; kl as ncnn2table; auto: per layer the least measured error.")
@click.option("--ncnn-percentile", type=float, help="Percentile of |activation| kept by --ncnn-calibration percentile [99.99].")
@click.option("--ncnn-float-layers", callback=_split, help="ncnn layers kept in float in int8 artifacts: first, last or layer names [none].")
@click.option("--mnn-precisions", callback=_split, help="Comma-separated subset of fp32,fp16,int8 for MNN [all].")
@click.option("--mnn-calibration", type=click.Choice(["auto", "ema", "kl"]), help="MNN int8 activation ranges: mnnquant's EMA or KL, or auto: both, keeping the one agreeing most with float on held-out training images [auto].")
@click.option("--input-shape", callback=_ints, help="ONNX input: N,C,H,W to fix dynamic dimensions to, e.g. 1,3,224,224.")
@click.option("--coreml", is_flag=True, default=None, help="Also convert each float model to Core ML (.mlpackage) for the iOS app.")
@click.option("--targets", callback=_split, help="Where to benchmark: host, arm64-emu, armv7-emu, adb[:SERIAL], ssh:USER@HOST[:PORT] "
              "(comma-separated; see `deploy devices`) [host].")
@click.option("--threads", callback=_ints, help="Comma-separated thread counts to benchmark [1 and all cores].")
@click.option("--warmup", type=int, help="Untimed runs before timing [10].")
@click.option("--runs", type=int, help="Timed runs per benchmark [50].")
@click.option("--profile-ops", is_flag=True, default=None,
              help="Also time each op of every TFLite artifact alone on the host and ssh boards it is benchmarked on: where its "
                   "time goes (report.json benchmarks[].op_profile, a plot in report.html; docs/targets.md).")
@click.option("--arm-val-images", type=int, help="Emulated targets: validation images run through their own ARM kernels for top-1 (0: off) [128].")
@click.option("--max-accuracy-drop", type=float, help="Fail (exit 1) if any artifact's top-1 drops more than this many points.")
@click.option("--max-size", "max_size_mb", type=float, help="Recommend only artifacts of at most this many MB (10^6 bytes).")
@click.option("--max-latency", "max_latency_ms", type=float,
              help="Recommend only artifacts whose p50 at the fewest threads measured (1 by default) is at most this many ms, per target.")
@click.option("--pretrained", help="Built-in models: start from 'imagenet' (MobileNet V1/V2, from Keras's cache: nothing is "
              "downloaded) or a Keras model FILE of the same family; the head is replaced, then trained alone, then all "
              "layers fine-tune at 0.3x --learning-rate (docs/training.md).")
@click.option("--trust-model", is_flag=True, default=None, help="Allow Lambda layers (they run code stored in the model file).")
@click.option("--force", is_flag=True, default=None, help="Recompute every stage instead of reusing the cache.")
@_ssh_options
@_adb_options
@click.option("--train-threads", type=click.IntRange(min=1),
              help="TensorFlow threads for training and QAT; the weights depend on it, so it is in their cache key "
                   "[all cores for inputs of 128x128 or more, else 1].")
@click.option("--jobs", type=click.IntRange(min=1), help="Stages run in parallel in this many local worker processes [as cores and memory allow].")
@click.option("--executor", type=click.Choice(["local", "ray"]), help="Run stages here (local) or as tasks on a Ray cluster [local].")
@click.option("--ray-address", help="Ray cluster address for --executor ray [RAY_ADDRESS, else a local Ray instance].")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and the plan (every stage, its key, cached or not), and exit.")
def build(config_path, dry_run, **flags):
    """Train or load, quantize, convert, verify and benchmark; write report.json, report.md and report.html."""
    from pipeline.config import load_config, resolved_input_size

    config = load_config(config_path, flags)
    if dry_run:
        import yaml

        resolved = config.model_dump(mode="json")
        resolved["input_size"] = config.input_size or f"{resolved_input_size(config)} for built-in models (user models use their own)"
        click.echo(yaml.safe_dump(resolved, sort_keys=False).rstrip())
        from pipeline.build import dry_run as plan_lines

        click.echo("\n".join(plan_lines(config)))
        return
    from pipeline.build import build as run_build

    command = "deploy " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = run_build(config, command=command)
    click.echo(f"{len(report.artifacts)} artifacts verified and benchmarked; report: {config.out / 'report.md'}")


@cli.command(epilog=EXIT_CODES_HELP, context_settings={"ignore_unknown_options": True})
@click.option("--address", required=True, help="The Ray head's address, HOST:PORT (as `ray start --head` printed it).")
@click.option("--device", "devices", multiple=True, callback=_split,
              help="A phone or board attached here: adb[:SERIAL], ssh:USER@HOST[:PORT] or host; repeatable. Benchmarks on it are scheduled here.")
@click.option("--num-cpus", type=int, help="CPUs this node offers [all].")
@click.option("--num-gpus", type=int, help="GPUs this node offers; training and QAT go to GPU nodes [detected].")
@click.argument("ray_args", nargs=-1, type=click.UNPROCESSED)
def worker(address, devices, num_cpus, num_gpus, ray_args):
    """Join a Ray cluster as a build node (`ray start --block`), advertising its devices; see docs/scale-out.md."""
    import os

    from pipeline.executors.ray import worker_command

    command = worker_command(address, devices or [], num_cpus, num_gpus, list(ray_args))
    click.echo(" ".join(shlex.quote(c) for c in command), err=True)
    os.execvp(command[0], command)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("artifact", metavar="ARTIFACT|RUN_DIR", type=click.Path(path_type=Path))
@click.option("--target", "target_text", default="host", show_default=True,
              help="host, arm64-emu, armv7-emu, adb[:SERIAL] or ssh:USER@HOST[:PORT]; adb with --app runs the demo app.")
@click.option("--threads", callback=_ints, help="Comma-separated thread counts [1 and all cores; 1 with --app].")
@click.option("--warmup", type=int, default=10, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the raw result records as JSON lines.")
@click.option("--app", is_flag=True, help="With --target adb: run the android-demo app's benchmark screen on the phone and add "
              "its result to RUN_DIR/report.json as target android-app.")
@click.option("--app-result", type=click.Path(path_type=Path), help="Add a benchmark JSON a demo app wrote (iOS, or copied by hand) to RUN_DIR/report.json.")
@click.option("--serial", help="adb device serial (default: the only attached device).")
@click.option("--gpu", is_flag=True, help="With --app: use the app's GPU delegate instead of XNNPACK.")
@_ssh_options
@_adb_options
def bench(artifact, target_text, threads, warmup, runs, as_json, app, app_result, serial, gpu, **target_flags):
    """Benchmark one artifact (.tflite, .ncnn.param, .onnx), each measurement in a fresh process; or the demo app on a phone (--app)."""
    from pipeline.errors import UserInputError
    from pipeline.targets import bench as targets_bench, host, spec

    if app or app_result:
        _bench_app(artifact, target_text, threads, warmup, runs, as_json, app_result, serial, gpu)
        return
    try:
        target = spec.parse_target(target_text)
    except spec.TargetNameError as e:
        raise UserInputError(f"--target {e.value!r}: {e.why}") from None
    targets_bench.require_benchmarkable(target)
    from pipeline.targets.artifact_file import check_artifact_file
    from pipeline.targets.adb import AdbOptions

    check_artifact_file(artifact)  # a wrong file is bad input (exit 2), not a failed runner

    options = _ssh_settings(target_flags)
    adb_options = _target_settings(target_flags, "adb_", AdbOptions)
    for n in threads or host.default_thread_counts():
        result = targets_bench.run_benchmark(target, options, artifact, n, warmup, runs, fp16=host.recorded_fp16(artifact),
                                             adb_options=adb_options)
        if as_json:
            click.echo(json.dumps(result))
        else:
            lat = result["latency_ms"]
            click.echo(
                f"{artifact.name} {target.name} threads={n} delegate={result['delegate']}: p50 {lat['p50']:.3f} ms, "
                f"p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}, mean {lat['mean']:.3f} ± {lat['std']:.3f} (n={lat['n']}), "
                f"init {_maybe(result['init_ms'])} ms, peak RSS {_maybe(result['peak_rss_mb'])} MB" + _output_note(result)
                + ("; PARTIAL: " + result["options"].get("partial_reason", "") if result.get("partial") else "")
            )


def _maybe(value) -> str:
    return "?" if value is None else f"{value:.1f}"


def _output_note(result: dict) -> str:
    """Emulated timings say nothing about a device; on emulators and boards the output difference to the host is the point."""
    from pipeline.report import comparison
    from pipeline.report.schema import OutputDiff

    note = "; EMULATED" if result.get("emulated") else ""
    diff = result.get("output_diff")
    if diff:
        kernels = " (host on built-in kernels, like the target)" if diff.get("host_delegate") == "none" else ""
        note += f"{',' if note else ';'} compared with the host on {comparison.summary(OutputDiff(**diff))}{kernels}"
    return note


def _bench_app(run_dir, target, threads, warmup, runs, as_json, app_result, serial, gpu):
    """Records from a demo app -> run_dir/report.json (and report.md), one line each."""
    from pipeline.errors import UserInputError
    from pipeline.report import ingest

    if app_result is not None:
        records = [(ingest.read_record(app_result), str(app_result))]
    elif target != "adb":
        raise UserInputError("--app runs the Android demo app on a phone: add --target adb (or use --app-result FILE)")
    else:
        from pipeline import report as report_files
        from pipeline.targets import android_app

        report_files.load(run_dir)  # a wrong RUN_DIR fails before the phone spends minutes benchmarking
        records = [
            (android_app.run_app_benchmark(serial, n, warmup, runs, gpu), f"adb {serial or 'device'}")
            for n in threads or [1]
        ]
    for record, source in records:
        artifact, bench = ingest.add_app_benchmark(run_dir, record, source)
        if as_json:
            click.echo(json.dumps(record))
        else:
            lat = bench.latency_ms
            click.echo(
                f"{artifact.id} {bench.target} threads={bench.threads} delegate={bench.delegate}: p50 {lat.p50:.3f} ms, "
                f"p90 {lat.p90:.3f}, p99 {lat.p99:.3f} (n={lat.n}) -> added to {run_dir}/report.json"
            )


@cli.command(epilog=EXIT_CODES_HELP)
@click.option("--board", "boards", multiple=True, callback=_split,
              help="An ARM board to probe, ssh:USER@HOST[:PORT]; repeatable or comma-separated.")
@click.option("--setup", "setup_boards", multiple=True, callback=_split,
              help="A board to provision first, ssh:USER@HOST[:PORT]: numpy and the runtimes, downloaded here for its "
                   "platform and installed offline into ~/.mobile-deploy/venv on the board; repeatable.")
@click.option("--wheels", type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="--setup: a folder holding the board's wheels (and pip's), for a host without a package index "
                   "[downloaded into ~/.cache/mobile-deploy/wheels].")
@_ssh_options
def devices(boards, setup_boards, wheels, **ssh_flags):
    """List the benchmark targets and whether each is usable now: host, emulators, adb devices, ssh boards."""
    from pipeline.targets import devices as target_devices, provision
    from pipeline.targets.ssh import PROVISIONED_VENV

    options = _ssh_settings(ssh_flags)
    to_set_up = [_board(text, "--setup") for text in setup_boards or []]
    for board in to_set_up:
        provision.provision(board, options, wheels)
        click.echo(f"{board.name}: runtimes installed into ~/{PROVISIONED_VENV}")
    parsed = [_board(text, "--board") for text in boards or []]
    rows = target_devices.all_rows(parsed + [b for b in to_set_up if b not in parsed], options)
    width = max(len(name) for name, _ in rows)
    for name, status in rows:
        click.echo(f"{name:<{width}}  {status}")


def _board(text: str, flag: str):
    """One ssh board named by `flag`'s value, or a one-line error naming the flag."""
    from pipeline.errors import UserInputError
    from pipeline.targets import spec

    try:
        board = spec.parse_target(text)
    except spec.TargetNameError as e:
        raise UserInputError(f"{flag} {e.value!r}: {e.why}") from None
    if not isinstance(board, spec.SshTarget):
        raise UserInputError(f"{flag} {text!r}: a board is ssh:USER@HOST[:PORT]")
    return board


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("platform", type=click.Choice(["android", "ios"]))
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--artifact", "artifact_id", help="Artifact id to export [the report's recommendation, else the most accurate fully-int8 one].")
@click.option("--app-dir", type=click.Path(path_type=Path), help="The app folder [android-demo/ or ios-demo/ of this checkout].")
def export(platform, run_dir, artifact_id, app_dir):
    """Copy an artifact, its labels, preprocessing and golden vectors into the Android or iOS demo app."""
    from pipeline.export import export as run_export

    result = run_export(run_dir, platform, artifact_id, app_dir)
    click.echo(f"exported {result.artifact_id} ({result.reason}) to {result.model_dir}:")
    for path in result.files:
        click.echo(f"  {path.relative_to(result.model_dir)}")
    if platform == "ios" and not result.coreml:
        click.echo("no Core ML model in this run (build with --coreml to add one); the app will run TFLite only")
    click.echo(f"next: {result.next_steps(run_dir)}")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("artifact")
def explain(artifact):
    """Print an int8 artifact's error per layer (worst first) and the float fallback's decision (docs/int8.md).

    ARTIFACT: a .tflite in a build's artifacts/<model>/ folder, or OUT:MODEL/ARTIFACT."""
    from pipeline.explain import explain as explain_lines

    click.echo("\n".join(explain_lines(artifact)))


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0),
              help="Recommend only artifacts whose top-1 drops at most this many points.")
@click.option("--max-size", "max_size_mb", type=click.FloatRange(min=0, min_open=True),
              help="Recommend only artifacts of at most this many MB (10^6 bytes).")
@click.option("--max-latency", "max_latency_ms", type=click.FloatRange(min=0, min_open=True),
              help="Recommend only artifacts whose p50 at the fewest threads measured is at most this many ms, per target.")
def report(run_dir, **constraints):
    """Rebuild report.json, report.md and report.html from a run's report.json, without rerunning anything.

    A constraint given here replaces the stored one of the same name (from `deploy build` or an earlier
    `deploy report`), and the recommendations are made again.
    """
    from pipeline import report as report_files
    from pipeline.report.schema import Constraints

    for path in report_files.regenerate(run_dir, Constraints(**constraints)):
        click.echo(path)


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_a", type=click.Path(path_type=Path))
@click.argument("run_b", type=click.Path(path_type=Path))
@click.option("--accuracy-points", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Flag a top-1 fall of more than this many points.")
@click.option("--size-pct", type=click.FloatRange(min=0), default=5.0, show_default=True, help="Flag a size growth of more than this percent.")
@click.option("--latency-pct", type=click.FloatRange(min=0), default=15.0, show_default=True,
              help="Flag a p50 rise of more than this percent, if it also exceeds --latency-k spreads.")
@click.option("--latency-k", type=click.FloatRange(min=0), default=2.0, show_default=True,
              help="A p50 rise must also exceed this many combined spreads; spread = (p90 - p50) / 1.2816 per run.")
@click.option("--all-threads", is_flag=True,
              help="Judge every thread count, not only the fewest measured per target (those swing with machine load).")
@click.option("--json", "as_json", is_flag=True, help="Print every compared figure as JSON lines instead of a table.")
def compare(run_a, run_b, as_json, **thresholds):
    """Compare two runs per artifact and target; exit 1 when RUN_B regressed against RUN_A."""
    from dataclasses import asdict

    from pipeline import report as report_files
    from pipeline.errors import QualityGateError
    from pipeline.report import compare as comparison

    limits = comparison.Thresholds(**thresholds)
    changes = comparison.compare(report_files.load(run_a), report_files.load(run_b), limits)
    if as_json:
        for change in changes:
            click.echo(json.dumps(asdict(change)))
    else:
        click.echo(comparison.render(changes, run_a, run_b))
    regressions = [c for c in changes if c.verdict == comparison.REGRESSION]
    if regressions:
        first = regressions[0]
        detail = ", ".join(x for x in (first.change, first.limit and f"limit {first.limit}", first.note) if x)
        raise QualityGateError(f"{len(regressions)} regression(s) from {run_a} to {run_b}, first {first.artifact} {first.metric}: {detail}")


@cli.command()
def models():
    """List the built-in architectures and their options."""
    from pipeline.models.architectures import ARCHITECTURES

    for arch in ARCHITECTURES.values():
        alphas = "any > 0" if arch.alphas is None else ", ".join(str(a) for a in arch.alphas)
        click.echo(f"{arch.name:<14} {arch.description} (alpha default {arch.default_alpha}; allowed {alphas}; input >= {arch.min_input_size})")


@cli.command(epilog=EXIT_CODES_HELP)
def doctor():
    """Versions of every converter and runtime; what is missing and how to get it."""
    from pipeline.doctor import check

    rows, missing = check()
    for row in rows:
        click.echo(row)
    if missing:
        raise click.exceptions.Exit(EXIT_TOOL_FAILED)


def main(argv: list[str] | None = None) -> None:
    no_telemetry.apply()  # before any library loads: every process of the build inherits it
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        code = cli.main(args=args, prog_name="deploy", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        code = EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 130
    except KeyboardInterrupt:
        click.echo("interrupted: finished stages are kept and reused by the next run", err=True)
        code = 130
    except DeployError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"error: {e}", err=True)
        code = e.exit_code
    except Exception as e:  # a bug or an unexpected tool failure: one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (rerun with --debug for details)", err=True)
        code = EXIT_TOOL_FAILED
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
