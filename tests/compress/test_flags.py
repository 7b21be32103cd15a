"""--prune magnitude, --sparsity and --cluster: config fields with one-line errors naming the flag."""
import pytest

from pipeline.config import load_config
from pipeline.errors import UserInputError


def test_compression_flags_reach_the_config_with_documented_defaults():
    default = load_config()
    assert (default.prune, default.sparsity, default.cluster, default.sparsity_scope) == ("none", 0.8, 0, "pointwise")
    config = load_config(overrides={"prune": "magnitude", "sparsity": 0.9, "cluster": 16})
    assert (config.prune, config.sparsity, config.cluster) == ("magnitude", 0.9, 16)


@pytest.mark.parametrize("overrides, message", [
    ({"sparsity": 0.9}, "--sparsity: .*only with --prune magnitude"),
    ({"prune": "magnitude", "sparsity": 1.0}, "--sparsity: .*less than 1"),
    ({"cluster": 1}, "--cluster: .*2 or more"),
    ({"prune": "l2"}, "--prune: "),
    ({"prune_speedup": 1.6}, "--prune-speedup: .*only with --prune l1-filter"),
    ({"prune": "l1-filter", "prune_speedup": 0.8}, "--prune-speedup: .*greater than 1"),
    ({"prune_ratios_from": "r.json"}, "--prune-ratios-from: .*only with --prune l1-filter"),
    ({"prune": "l1-filter", "prune_speedup": 1.5, "prune_ratios_from": "r.json"}, "--prune-ratios-from: .*not both"),
])
def test_bad_compression_flags_are_named(overrides, message):
    with pytest.raises(UserInputError, match=message):
        load_config(overrides=overrides)


def test_the_cli_passes_the_flags(tmp_path, monkeypatch):
    import pipeline.build
    from pipeline import cli

    seen = {}

    def fake_build(config, **kwargs):
        seen["config"] = config
        raise KeyboardInterrupt  # stop before anything runs; main turns it into exit code 130

    monkeypatch.setattr(pipeline.build, "build", fake_build)
    with pytest.raises(SystemExit):
        cli.main(["build", "--prune", "magnitude", "--sparsity", "0.75", "--cluster", "8", "--out", str(tmp_path)])
    assert (seen["config"].prune, seen["config"].sparsity, seen["config"].cluster) == ("magnitude", 0.75, 8)
