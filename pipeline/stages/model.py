"""train / import: produce the float Keras model every later stage starts from.

train builds a built-in architecture and fits it on the training split; import takes a
user's trained model file as it is. Both record the model's facts (parameters, MACs).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.data import Preprocessing
from pipeline.errors import UserInputError
from pipeline.models import loading, training
from pipeline.stages.base import FitConfig, Stage, StageConfig, StageOutput
from pipeline.stages.data import open_split

TF_TOOLS = ("tensorflow", "tf-keras", "numpy")


class TrainConfig(FitConfig):
    architecture: str
    input_size: int
    alpha: float | None
    patience: int = 0  # early stopping (pipeline.models.training); 0: every epoch
    pretrained: str | None = None  # "imagenet" or a model file (models/transfer.py); its digest is an external input
    trusted: bool = False  # the pretrained file may hold Lambda layers

    def recipe(self) -> str:
        recipe = super().recipe() + (f" if {training.MIN_STOP_HELD_OUT}+ images are held out" if self.patience else "")
        if not self.pretrained:
            return recipe
        from pipeline.models import transfer

        head = min(transfer.HEAD_EPOCHS, self.epochs)
        return (f"from {self.pretrained}: head alone {head} epoch{'s' if head != 1 else ''} at {self.learning_rate:g}, then all layers "
                f"{self.epochs - head} epochs at {self.learning_rate * transfer.FINE_TUNE_RATE:g}; " + recipe)


class ImportConfig(StageConfig):
    path: str
    trusted: bool


def model_facts(model) -> dict:
    from pipeline.models.architectures import count_macs

    return {
        "params": int(model.count_params()),
        "macs": int(count_macs(model)),
        "input_shape": [int(d) for d in model.inputs[0].shape[1:]],
        "num_classes": int(model.outputs[0].shape[-1]),
    }


class TrainStage(Stage):
    name = "train"
    tools = TF_TOOLS
    Config = TrainConfig

    def run(self, config: TrainConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.models import architectures
        from pipeline.tf_import import keras

        train = open_split(inputs["data"], "train")
        classes = len(inputs["data"].result["class_names"])
        keras().utils.set_random_seed(config.seed)  # the initial weights too: same config, same model in any process
        try:
            model = architectures.build(config.architecture, config.input_size, classes, config.alpha)
        except ValueError as e:
            raise UserInputError(f"--model {config.architecture}: {e}") from e
        training.use_fast_batchnorm(model)
        fit = dict(batch_size=config.batch_size, seed=config.seed, augment=config.augment, min_held_out=training.MIN_STOP_HELD_OUT)
        prep = Preprocessing.from_dict(config.preprocessing)
        pretrained = None
        if config.pretrained:
            pretrained, history, stopping = self._transfer(config, model, train, prep, fit)
        else:
            history, stopping = training.fit(model, train, prep, epochs=config.epochs, learning_rate=config.learning_rate,
                                             what="train", patience=config.patience, **fit)
        model.save(workdir / "model.keras")
        return {"model_file": "model.keras", "trusted": False, "history": history, "augment": config.augment,
                "images": len(train), "early_stopping": stopping, **({"pretrained": pretrained} if pretrained else {}),
                **model_facts(model)}

    @staticmethod
    def _transfer(config: TrainConfig, model, train, prep, fit: dict) -> tuple[dict, list[dict], dict]:
        """The backbone from config.pretrained, then the head alone, then everything at a lower rate."""
        from pipeline.models import architectures, transfer

        alpha = architectures.resolved_alpha(config.architecture, config.alpha)
        source = transfer.source_model(config.architecture, config.input_size, alpha, config.pretrained, config.trusted)
        copied = transfer.copy_backbone(source, model, config.pretrained)
        head_epochs = min(transfer.HEAD_EPOCHS, config.epochs)
        transfer.freeze(model, backbone=True)
        history, stopping = training.fit(model, train, prep, epochs=head_epochs, learning_rate=config.learning_rate,
                                         what="train head", patience=config.patience, watch_from=0, **fit)
        if config.epochs > head_epochs:
            transfer.freeze(model, backbone=False)
            tuned, stopping = training.fit(model, train, prep, epochs=config.epochs - head_epochs,
                                           learning_rate=config.learning_rate * transfer.FINE_TUNE_RATE, what="fine-tune",
                                           patience=config.patience, watch_from=0, **fit)
            history += [{**row, "epoch": row["epoch"] + head_epochs} for row in tuned]
        record = {"weights": config.pretrained, "layers_copied": copied, "head_epochs": head_epochs,
                  "fine_tune_epochs": len(history) - head_epochs,
                  "fine_tune_learning_rate": config.learning_rate * transfer.FINE_TUNE_RATE}
        return record, history, stopping


class ImportStage(Stage):
    name = "import"
    tools = TF_TOOLS
    Config = ImportConfig

    def run(self, config: ImportConfig, inputs, workdir: Path) -> dict:
        source = Path(config.path)
        model = loading.load_keras_model(source, trusted=config.trusted)
        loading.image_model_shape(model, source)
        # A private copy: the cache stays valid if the user moves or edits their file.
        target = workdir / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
        from pipeline.models.keras3_twin import needs_twin

        return {"model_file": source.name, "trusted": config.trusted, "keras_version": loading.keras_generation(source),
                "needs_twin": needs_twin(model), **model_facts(model)}


def load_float_model(output: StageOutput):
    return loading.load_keras_model(output.path(output.result["model_file"]), trusted=output.result["trusted"])
