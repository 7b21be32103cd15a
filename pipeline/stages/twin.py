"""keras_twin: the tf_keras twin of an imported Keras 3 model (or of a tf_keras model with
augmentation / input preprocessing layers), proven equal before any later stage uses it.

It needs the validation images (the proof), which need the model's input size, which the
import stage finds: hence a stage of its own after import and data. The proof runs under the
preprocessing the build uses (the user's, or the probe's best, measured on the model as given):
Keras 3 and tf_keras compute BatchNormalization in a different order (about 1e-6 per layer), so
on inputs far outside the training range a deep twin can exceed 1e-5 while matching on real ones.
A twin that cannot be built or differs by more than 1e-5 is not an error here: the
result names the layer, and the build falls back to the imported model (no QAT).
"""
from __future__ import annotations

import logging
from pathlib import Path

from pipeline.data import Preprocessing
from pipeline.models import keras3_twin
from pipeline.stages.base import Stage, StageOutput
from pipeline.stages.data import ValidationSampleConfig, validation_split
from pipeline.stages.model import TF_TOOLS, load_float_model, model_facts

log = logging.getLogger("deploy")

TWIN_FILE = "twin.keras"
PROOF_BATCH = 256  # images per batch of the proof: memory holds one batch


class TwinConfig(ValidationSampleConfig):
    proof_preprocessings: list[dict]  # what the original model may be fed: the proof covers each


class KerasTwinStage(Stage):
    name = "keras_twin"
    tools = (*TF_TOOLS, "keras")
    Config = TwinConfig

    def run(self, config: TwinConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        original = load_float_model(inputs["model"])
        try:
            twin = keras3_twin.build_twin(original)
        except keras3_twin.NoTwin as e:
            return {"status": "unsupported", "reason": f"{e}"}
        except Exception as e:  # tf_keras rejecting a re-created layer: still "no twin", with its words
            return {"status": "unsupported", "reason": f"no tf_keras twin ({str(e).splitlines()[0][:200]})"}
        val = validation_split(inputs["data"], config.val_max_images, config.seed)
        worst, worst_x = 0.0, None  # the batch with the largest difference names the layer
        for prep in map(Preprocessing.from_dict, config.proof_preprocessings):
            for images, _ in val.batches(PROOF_BATCH):
                x = prep.apply(images)
                diff = keras3_twin.max_abs_diff(original, twin, x)
                if worst_x is None or diff > worst:
                    worst, worst_x = diff, x
        proof = {"max_abs_diff": worst, "tolerance": keras3_twin.TOLERANCE, "n": int(len(val)),
                 "preprocessings": len(config.proof_preprocessings)}
        if worst > keras3_twin.TOLERANCE:
            layer = keras3_twin.differing_layer(original, twin, worst_x)
            return {"status": "unsupported", "proof": proof,
                    "reason": f"the tf_keras twin differs from the model by {worst:.3g} (> {keras3_twin.TOLERANCE}) at layer {layer}"}
        for what, layers in (("removed (inactive at inference)", twin.removed), ("folded into the preprocessing", twin.folded)):
            if layers:
                log.info("%s: %s", what, ", ".join(layers))
        twin.model.save(workdir / TWIN_FILE)
        return {
            "status": "ok", "model_file": TWIN_FILE, "trusted": False, "proof": proof,
            "removed": twin.removed, "folded": twin.folded,
            "input_transform": {"scale": twin.scale.tolist(), "offset": twin.offset.tolist()},
            **model_facts(twin.model),
        }
