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
@click.option("--learning-rate", type=float, help="Float training learning rate [0.002].")
@click.option("--qat-epochs", type=int, help="Quantization-aware fine-tuning epochs [3].")
@click.option("--qat-learning-rate", type=float, help="QAT learning rate [0.0001].")
@click.option("--require-qat", is_flag=True, default=None, help="Fail (exit 2) instead of falling back to PTQ when QAT is impossible.")
@click.option("--precisions", callback=_split, help="Comma-separated subset of fp32,fp16,dynamic-int8,int8-ptq,int8-qat [all].")
@click.option("--calibration-images", type=int, help="Training images used to calibrate int8 PTQ [200].")
@click.option("--io", type=click.Choice(["float", "int8"]), help="Input/output type of the int8 artifacts [float].")
@click.option("--formats", callback=_split, help="Comma-separated subset of tflite,ncnn,onnx [all].")
@click.option("--ncnn-precisions", callback=_split, help="Comma-separated subset of fp32,fp16,int8 for ncnn [all].")
@click.option("--ncnn-calibration", type=click.Choice(["kl", "percentile", "minmax"]), help="ncnn int8 activation calibration [kl, as ncnn2table].")
@click.option("--ncnn-percentile", type=float, help="Percentile of |activation| kept by --ncnn-calibration percentile [99.99].")
@click.option("--ncnn-float-layers", callback=_split, help="ncnn layers kept in float in int8 artifacts: first, last or layer names [none].")
@click.option("--input-shape", callback=_ints, help="ONNX input: N,C,H,W to fix dynamic dimensions to, e.g. 1,3,224,224.")
@click.option("--targets", callback=_split, help="Where to benchmark: host [host].")
@click.option("--threads", callback=_ints, help="Comma-separated thread counts to benchmark [1 and all cores].")
@click.option("--warmup", type=int, help="Untimed runs before timing [10].")
@click.option("--runs", type=int, help="Timed runs per benchmark [50].")
@click.option("--max-accuracy-drop", type=float, help="Fail (exit 1) if any artifact's top-1 drops more than this many points.")
@click.option("--trust-model", is_flag=True, default=None, help="Allow Lambda layers (they run code stored in the model file).")
@click.option("--force", is_flag=True, default=None, help="Recompute every stage instead of reusing the cache.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
def build(config_path, dry_run, **flags):
    """Train or load, quantize, convert, verify and benchmark; write report.json and report.md."""
    from pipeline.config import load_config, resolved_input_size

    config = load_config(config_path, flags)
    if dry_run:
        import yaml

        resolved = config.model_dump(mode="json")
        resolved["input_size"] = config.input_size or f"{resolved_input_size(config)} for built-in models (user models use their own)"
        click.echo(yaml.safe_dump(resolved, sort_keys=False).rstrip())
        return
    from pipeline.build import build as run_build

    command = "deploy " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    report = run_build(config, command=command)
    click.echo(f"{len(report.artifacts)} artifacts verified and benchmarked; report: {config.out / 'report.md'}")


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--target", type=click.Choice(["host"]), default="host", show_default=True)
@click.option("--threads", callback=_ints, help="Comma-separated thread counts [1 and all cores].")
@click.option("--warmup", type=int, default=10, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the raw result records as JSON lines.")
def bench(artifact, target, threads, warmup, runs, as_json):
    """Benchmark one artifact (.tflite, .ncnn.param, .onnx), each measurement in a fresh process."""
    from pipeline.errors import UserInputError
    from pipeline.targets import host

    if not artifact.is_file():
        raise UserInputError(f"{artifact}: artifact file not found")
    for n in threads or host.default_thread_counts():
        result = host.run_benchmark(artifact, n, warmup, runs, fp16=host.recorded_fp16(artifact))
        if as_json:
            click.echo(json.dumps(result))
        else:
            lat = result["latency_ms"]
            click.echo(
                f"{artifact.name} {target} threads={n} delegate={result['delegate']}: p50 {lat['p50']:.3f} ms, "
                f"p90 {lat['p90']:.3f}, p99 {lat['p99']:.3f}, mean {lat['mean']:.3f} ± {lat['std']:.3f} (n={lat['n']}), "
                f"init {result['init_ms']:.1f} ms, peak RSS {result['peak_rss_mb']:.1f} MB"
            )


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("run_dir", type=click.Path(path_type=Path))
def report(run_dir):
    """Rebuild report.md from a run's report.json, without rerunning anything."""
    from pipeline import report as report_files

    click.echo(report_files.regenerate(run_dir))


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
