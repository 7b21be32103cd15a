from pathlib import Path

import pytest

from pipeline.config import BUILTIN_MODELS, PRECISIONS, load_config, resolved_input_size
from pipeline.errors import UserInputError


def test_defaults_build_every_precision_of_mobilenet_v2_on_demo():
    config = load_config()
    assert config.models == ["mobilenet_v2"]
    assert config.data == "demo"
    assert list(config.precisions) == list(PRECISIONS)
    assert resolved_input_size(config) == 32


def test_image_folder_defaults_to_224():
    assert resolved_input_size(load_config(overrides={"data": "photos"})) == 224


def test_all_expands_to_the_builtin_architectures():
    assert load_config(overrides={"models": ["all", "mobilenet_v2"]}).models == list(BUILTIN_MODELS)


def test_flags_override_the_file(tmp_path: Path):
    file = tmp_path / "deploy.yaml"
    file.write_text("epochs: 5\nseed: 3\nprecisions: [fp32, int8-ptq]\n")
    config = load_config(file, {"epochs": 7, "seed": None})
    assert config.epochs == 7  # flag wins
    assert config.seed == 3  # an unset flag (None) leaves the file's value
    assert config.precisions == ["fp32", "int8-ptq"]


def test_unknown_key_names_file_and_key(tmp_path: Path):
    file = tmp_path / "deploy.yaml"
    file.write_text("epochz: 5\n")
    with pytest.raises(UserInputError, match=r"deploy.yaml: unknown key 'epochz'"):
        load_config(file)


def test_wrong_type_names_file_and_key(tmp_path: Path):
    file = tmp_path / "deploy.yaml"
    file.write_text("epochs: ten\n")
    with pytest.raises(UserInputError, match=r"deploy.yaml: key 'epochs'.*integer"):
        load_config(file)


def test_wrong_flag_value_names_the_flag():
    with pytest.raises(UserInputError, match=r"^--precisions: .*'int4'"):
        load_config(overrides={"precisions": ["fp32", "int4"]})
    with pytest.raises(UserInputError, match=r"^--std: "):
        load_config(overrides={"std": [1.0, 0.0, 1.0]})


@pytest.mark.parametrize("text, message", [("- a\n- b\n", "expected a mapping"), ("a: [\n", "not valid YAML")])
def test_malformed_file(tmp_path: Path, text, message):
    file = tmp_path / "deploy.yaml"
    file.write_text(text)
    with pytest.raises(UserInputError, match=message):
        load_config(file)


def test_missing_config_file(tmp_path: Path):
    with pytest.raises(UserInputError, match="nope.yaml: cannot read config file"):
        load_config(tmp_path / "nope.yaml")


def test_augmentation_defaults_to_affine_on_the_digits_and_on_photographs():
    from pipeline.config import resolved_augment

    assert resolved_augment(load_config(overrides={"data": "demo"})) == "affine"
    assert resolved_augment(load_config(overrides={"data": "photos"})) == "affine"
    assert resolved_augment(load_config(overrides={"data": "demo", "augment": "basic"})) == "basic"
