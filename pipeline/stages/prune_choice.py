"""prune_choice: the filter-pruning ratios that reach --prune-speedup on a target, chosen by a
per-layer latency table measured there (pipeline/compress/layer_latency.py) and verified there.

The table: the one-layer models and the two whole models are converted to int8, packed into one npz
and timed on the target by pipeline/targets/table_runner.py in interleaved rounds (the median of the
rounds' medians is the entry; the spread between rounds is recorded, and a warning says when the
whole model's rounds disagree by more than UNSTABLE: a busy host, or one that changes its speed).

The choice (NetAdapt's "measure" step): the greedy walk (sensitivity.walk) is followed by the
table; the step where it predicts the speed-up is converted and timed against the unpruned model
on the target (alternating rounds); while a step falls short, the walk goes further by the
shortfall, and once one passes, bisection between the last short and the first passing step finds
the least pruned step that measures the speed-up (`_search`, at most `checks` timings). One-layer
times do not add up exactly to a model's (a layer inside a model finds its input in cache): on
MobileNet V2 at 224x224 the table predicted 1.61x for what measured 1.40x, and jumping by the
shortfall alone overshot ShuffleNet V2 at 64x64 to 1.97x (21 % of the MACs, 12.75 points of top-1).

Times are kept in a cache every build on this machine shares (DEPLOY_LATENCY_CACHE, default
~/.cache/mobile-deploy/latency), one file per target and thread count, keyed by each one-layer
model's shape and each whole model's structure: a second build, or another model with alike
layers, times only what is new. The file records the CPU and runtime the target reported; when the
target later reports another (a board replaced at the same address), the cache is measured anew.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import statistics
from pathlib import Path

import numpy as np

from pipeline import atomic
from pipeline.errors import ToolError, UserInputError
from pipeline.stages.base import Stage, StageConfig, StageOutput
from pipeline.stages.model import load_float_model
from pipeline.targets.ssh import SshOptions

log = logging.getLogger("deploy")

PATH_REACH = 2.0  # the walk is followed until the table predicts this many times the speed-up asked
UNSTABLE = 0.10  # the whole model's rounds further apart than this (relative to their median): warn
CALIBRATION_IMAGES = 4  # random inputs each int8 conversion is calibrated on


class PruneChoiceConfig(StageConfig):
    speedup: float  # --prune-speedup
    target: str
    target_identity: str  # rules.Planner.target_identity: the cache file is keyed by it
    threads: int = 1
    warmup: int = 5
    runs: int = 20
    rounds: int = 3
    check_rounds: int = 5  # alternating rounds of each candidate against the unpruned model
    checks: int = 6  # candidates timed at most
    # A candidate passes at the speed-up asked plus this margin: the build's own benchmarks (fresh
    # processes) read a few per cent either side of the checks (MobileNet V2 at 224x224: 1.59x for a
    # candidate checked at 1.60x).
    check_margin: float = 0.03
    ssh: SshOptions | None = None


def cache_folder() -> Path:
    return Path(os.environ.get("DEPLOY_LATENCY_CACHE") or Path.home() / ".cache" / "mobile-deploy" / "latency")


def cache_file(config: PruneChoiceConfig) -> Path:
    name = hashlib.sha256(f"{config.target_identity}|{config.threads} thread(s)".encode()).hexdigest()[:20]
    return cache_folder() / f"{name}.json"


def _read_cache(path: Path) -> dict:
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):  # none yet, or unreadable: measure (atomic writes leave no half file)
        return {"identity": None, "entries": {}}
    return cached if isinstance(cached, dict) and isinstance(cached.get("entries"), dict) else {"identity": None, "entries": {}}


class PruneChoiceStage(Stage):
    name = "prune_choice"
    tools = ("tensorflow", "tf-keras", "ai-edge-litert", "numpy")
    scripts = ("pipeline.targets.device_runner", "pipeline.targets.table_runner")
    Config = PruneChoiceConfig

    def run(self, config: PruneChoiceConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.compress import filter_pruning

        graph = filter_pruning.read_graph(load_float_model(inputs["model"]))
        table, summary = measure(graph, config, workdir)
        path = _path(graph, inputs["sensitivity"].result["sensitivity"], table, config)
        checks, unpruned = [], _int8(graph.model, np.random.default_rng(0))

        def check(i: int) -> float:
            keep = graph.keep_mask(path[i][0])
            try:
                pruned = _pruned_int8_apart(inputs["model"], keep, workdir)
                measured = time_pair(unpruned, pruned, config, config.check_rounds, workdir)["speedup"]
            except ToolError as e:  # this candidate cannot be converted: it counts as short
                log.warning("prune choice on %s: step %d: %s", config.target, i + 1, e)
                measured = 0.0
            checks.append({"step": i + 1, "predicted": path[i][1], "measured": measured, "macs_kept": graph.macs(keep) / graph.macs()})
            log.info("prune choice on %s: step %d of the walk, the table's %.2fx, measured %.2fx", config.target, i + 1,
                     path[i][1], measured)
            return measured

        chosen = _search(path, config.speedup * (1 + config.check_margin), check, config.checks)
        ratios, predicted = path[chosen]
        chosen_check = next(c for c in checks if c["step"] == chosen + 1)
        measured = chosen_check["measured"]
        if measured < config.speedup:
            log.warning("--prune-speedup %g: the closest pruning measured %.2fx on %s after %d checks, keeping %.1f %% of the MACs; "
                        "the rest of the time is in what filter pruning cannot thin (--profile-ops shows where)", config.speedup,
                        measured, config.target, len(checks), 100 * chosen_check["macs_kept"])
        pruned_layers = {name: round(ms, 6) for name, ms in table.layers_ms(graph, graph.keep_mask(ratios)).items()}
        return {"group_ratios": {k: float(v) for k, v in ratios.items()}, "predicted_speedup": predicted,
                "measured_speedup": measured, "speedup_checks": checks,
                "latency_table": {**summary, "pruned_layers_ms": pruned_layers}}


class SpeedupConfig(StageConfig):
    target: str
    target_identity: str
    threads: int = 1
    warmup: int
    runs: int
    rounds: int = 7
    ssh: SshOptions | None = None


class SpeedupStage(Stage):
    """speedup: the speed-up a --prune-speedup variant achieved, its int8 TFLite artifact timed
    against the unpruned model's on the target in the same alternating rounds (two benchmarks from
    different runs, one of them cached, can be a host's speed change apart: 23 % here once)."""

    name = "speedup"
    tools = ("ai-edge-litert", "numpy")
    scripts = ("pipeline.targets.device_runner", "pipeline.targets.table_runner")
    Config = SpeedupConfig

    def run(self, config: SpeedupConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        unpruned, pruned = (inputs[name].path(inputs[name].result["file"]).read_bytes() for name in ("unpruned", "pruned"))
        timed = time_pair(unpruned, pruned, config, config.rounds, workdir)
        return {"achieved_speedup": timed.pop("speedup"), **timed}


def _path(graph, curves: dict, table, config: PruneChoiceConfig) -> list[tuple[dict, float]]:
    """The greedy walk's steps by the table, (ratios, predicted speed-up), up to PATH_REACH times the
    speed-up asked; a one-line error when even its end is predicted short of it."""
    from pipeline.compress import sensitivity

    unpruned = table.predict(graph)
    path = []
    for ratios, _, latency in sensitivity.walk(graph, curves, lambda keep: table.predict(graph, keep)):
        path.append((ratios, unpruned / latency))
        if path[-1][1] >= PATH_REACH * config.speedup:
            break
    if not path or path[-1][1] < config.speedup:
        best = path[-1][1] if path else 1.0
        raise UserInputError(f"--prune-speedup {config.speedup:g}: unreachable on {config.target}; pruning every group at "
                             f"{max(sensitivity.RATIOS):g} gives {best:.2f}x by its latency table")
    return path


def _search(path: list[tuple[dict, float]], asked: float, check, budget: int) -> int:
    """The earliest step of the walk (the least pruned) whose measured speed-up reaches `asked`, found
    with at most `budget` checks: from the step the table says reaches it, further by each shortfall
    until one passes, then bisection between the last that fell short and the first that passed.
    Without a passing step, the fastest measured."""
    measured: dict[int, float] = {}
    i = next((k for k, (_, predicted) in enumerate(path) if predicted >= asked), len(path) - 1)
    short = i - 1  # the furthest step known (or assumed: the one before) to fall short
    passed = None
    while len(measured) < budget:
        measured[i] = check(i)
        if measured[i] >= asked:
            passed = i
        else:
            short = max(short, i)
        if passed is None:
            goal = path[i][1] * asked / measured[i]  # the table's figure that should measure `asked`
            further = next((k for k in range(i + 1, len(path)) if path[k][1] >= goal), len(path) - 1)
            if further == i:
                break  # the end of the walk
            i = further
        elif passed - short <= 1:
            break
        else:
            i = (short + passed) // 2
    return passed if passed is not None else max(measured, key=measured.get)


def _pruned_int8_apart(model: StageOutput, keep: np.ndarray, workdir: Path) -> bytes:
    """The float model pruned to `keep` as int8 TFLite, made in a child process: pruning and converting
    one candidate aborted the worker in a full test run (never alone, never reproduced in one
    process); a crash there costs that candidate only."""
    import multiprocessing

    mask, target = workdir / "candidate-keep.npy", workdir / "candidate.tflite"
    np.save(mask, keep)
    source = model.path(model.result["model_file"])
    child = multiprocessing.get_context("spawn").Process(target=_prune_and_convert,
                                                         args=(str(source), model.result["trusted"], str(mask), str(target)))
    child.start()
    child.join()
    mask.unlink()
    if child.exitcode != 0 or not target.exists():
        raise ToolError(f"pruning and converting the candidate died (exit code {child.exitcode})")
    data = target.read_bytes()
    target.unlink()
    return data


def _prune_and_convert(source: str, trusted: bool, mask: str, target: str) -> None:
    from pipeline.compress import filter_pruning
    from pipeline.models import loading

    graph = filter_pruning.read_graph(loading.load_keras_model(Path(source), trusted=trusted))
    data = _int8(filter_pruning.prune(graph, np.load(mask)), np.random.default_rng(0))
    partial = Path(target + ".partial")
    partial.write_bytes(data)
    partial.replace(target)


def time_pair(unpruned: bytes, pruned: bytes, config: PruneChoiceConfig | SpeedupConfig, rounds: int, workdir: Path) -> dict:
    """The two int8 TFLite files timed together on config.target in `rounds` alternating rounds:
    {"speedup": median of the per-round ratios, "per_round", "unpruned_ms", "pruned_ms"}."""
    from pipeline.targets.bench import run_table

    result = run_table(_target(config), config.ssh, {"unpruned": unpruned, "pruned": pruned}, config.threads, config.warmup,
                       config.runs, rounds, workdir)
    times = result["rounds_ms"]
    per_round = [u / p for u, p in zip(times["unpruned"], times["pruned"])]
    return {"speedup": statistics.median(per_round), "per_round": per_round,
            "unpruned_ms": statistics.median(times["unpruned"]), "pruned_ms": statistics.median(times["pruned"])}


def measure(graph, config: PruneChoiceConfig, workdir: Path):
    """(LatencyTable, summary) of `graph`'s model on config.target, from the cache where it can (module docstring)."""
    from pipeline.compress import layer_latency

    shapes = {s.key: s for grid in layer_latency.grids(graph) for s in [layer_latency.CALL, *grid.shapes()]}
    structure = layer_latency.structure_key(graph)
    whole = {"unpruned": f"model {structure} unpruned", "half": f"model {structure} half {layer_latency.HALF:g}"}
    path = cache_file(config)
    cached = _read_cache(path)
    wanted = [*shapes, *whole.values()]
    missing = [key for key in wanted if key not in cached["entries"]]
    if missing:
        measured, identity = _measure(config, graph, shapes, whole, missing, workdir)
        if cached["identity"] not in (None, identity):
            log.warning("latency table on %s: the target now reports %s, not %s as when cached; measuring every entry anew",
                        config.target, _describe(identity), _describe(cached["identity"]))
            cached["entries"] = {}
            if len(missing) < len(wanted):
                missing = wanted
                measured, identity = _measure(config, graph, shapes, whole, wanted, workdir)
        cached = {"identity": identity, "entries": {**cached["entries"], **measured}}
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, cached)
    entries = cached["entries"]
    table = layer_latency.LatencyTable.fit(graph, {k: entries[k]["ms"] for k in shapes},
                                           {name: entries[key]["ms"] for name, key in whole.items()})
    spread = entries[whole["unpruned"]]["spread"]
    if spread > UNSTABLE:
        log.warning("latency table on %s: the whole model's rounds differ by %.0f %% (busy, or a CPU that changes "
                    "its speed): the chooser's figures are that uncertain; rerun on an idle machine", config.target, 100 * spread)
    layers = table.layers_ms(graph)
    log.info("latency table on %s: %d entries (%d timed now, %d from the cache), unpruned %.3f ms (%.3f ms predicted)",
             config.target, len(wanted), len(missing), len(wanted) - len(missing), entries[whole["unpruned"]]["ms"],
             table.predict(graph))
    return table, {
        "target": config.target, "identity": cached["identity"], "threads": config.threads,
        "entries": len(wanted), "timed": len(missing), "reused": len(wanted) - len(missing), "cache_file": str(path),
        "unpruned_ms": entries[whole["unpruned"]]["ms"], "half_ms": entries[whole["half"]]["ms"], "spread": spread,
        "entry_spread_median": statistics.median(entries[k]["spread"] for k in wanted),
        "predicted_unpruned_ms": table.predict(graph), "rest_ms": table.rest(graph.traffic()),
        "layers_ms": {name: round(ms, 6) for name, ms in layers.items()},
    }


def _measure(config: PruneChoiceConfig, graph, shapes: dict, whole: dict[str, str], keys: list[str],
             workdir: Path) -> tuple[dict, dict]:
    """Convert the models named by `keys`, time them on the target: ({key: {"ms", "rounds", "spread"}}, identity)."""
    from pipeline.compress import filter_pruning, layer_latency
    from pipeline.progress import Progress
    from pipeline.targets.bench import run_table
    from pipeline.tf_import import keras

    _refuse_emulated(config, workdir)  # before minutes of conversion
    rng = np.random.default_rng(0)
    models = {}
    progress = Progress(f"latency table on {config.target}: int8 conversion", len(keys), unit="models", every_s=30.0)
    for key in keys:
        if key == whole["unpruned"] or key == whole["half"]:
            model = graph.model if key == whole["unpruned"] else filter_pruning.prune(graph, layer_latency.half_keep(graph))
        else:
            model = layer_latency.one_layer_model(shapes[key])
        models[key] = _int8(model, rng)
        if key not in whole.values() and len(models) % 100 == 0:
            keras().backend.clear_session()  # one-layer models pile up in Keras's global state otherwise
        progress.add(1)
    names = {f"m{i}": key for i, key in enumerate(models)}
    log.info("latency table on %s: timing %d models, %d rounds", config.target, len(models), config.rounds)
    result = run_table(_target(config), config.ssh, {name: models[key] for name, key in names.items()}, config.threads,
                       config.warmup, config.runs, config.rounds, workdir)
    identity = {"cpu": result["cpu"], "runtime": f"{result['runtime']} {result['runtime_version']}",
                "delegates": result["delegates"]}
    measured = {}
    for name, key in names.items():
        rounds = result["rounds_ms"][name]
        middle = statistics.median(rounds)
        measured[key] = {"ms": middle, "rounds": rounds, "spread": (max(rounds) - min(rounds)) / middle if middle > 0 else 0.0}
    return measured, identity


def _refuse_emulated(config: PruneChoiceConfig, workdir: Path) -> None:
    """A board whose device tree says QEMU's virt machine is emulated: its timing means nothing.
    (Emulator targets are refused when the build is planned; a board only says so once it runs.)"""
    from pipeline.targets.bench import run_table
    from pipeline.targets.device_runner import QEMU_VIRT_BOARD

    result = run_table(_target(config), config.ssh, {}, config.threads, 0, 1, 1, workdir)
    if result["cpu"].get("board") == QEMU_VIRT_BOARD:
        raise ToolError(f"--latency-on {config.target}: the board is emulated (QEMU's virt machine): its timing means nothing; "
                        f"measure on the host or a real board")


def _int8(model, rng: np.random.Generator) -> bytes:
    """The model as a full-integer TFLite file, calibrated on random inputs (ranges do not change its time)."""
    from converters import tflite

    calibration = rng.uniform(-1, 1, (CALIBRATION_IMAGES, *model.input_shape[1:])).astype(np.float32)
    return tflite.convert(model, "int8-ptq", calibration)


def _target(config: PruneChoiceConfig):
    from pipeline.targets.spec import parse_target

    return parse_target(config.target)


def _describe(identity: dict | None) -> str:
    if not identity:
        return "nothing"
    return f"{identity['cpu'].get('model')} ({identity['cpu'].get('machine')}), {identity['runtime']}"
