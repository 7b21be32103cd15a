"""preprocessing_probe: which input convention a user's float model was trained with, measured.

Top-1 of the float model on the validation split under each common convention; the build uses
the best when the user gave no preprocessing flag, and warns when the one they gave is near
chance while another is far better. Mismatched preprocessing is the most reported cause of
"my converted model is inaccurate" (tensorflow#60072, tflite-support#539).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.data import Preprocessing
from pipeline.stages.base import Stage, StageOutput
from pipeline.stages.data import predict_split, ValidationSampleConfig, validation_split
from pipeline.stages.model import TF_TOOLS

IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
# name -> (mean, std) per RGB channel; each also tried with BGR order.
CONVENTIONS = {
    "[-1,1]": ((127.5,) * 3, (127.5,) * 3),
    "[0,1]": ((0.0,) * 3, (255.0,) * 3),
    "raw [0,255]": ((0.0,) * 3, (1.0,) * 3),
    "ImageNet mean/std": (IMAGENET_MEAN, IMAGENET_STD),
}


def candidates(height: int, width: int, channels: int) -> list[tuple[str, Preprocessing]]:
    """(name, preprocessing) of each convention; gray models get one value per convention, no BGR."""
    found = []
    for name, (mean, std) in CONVENTIONS.items():
        if channels == 1:
            found.append((name, Preprocessing(height, width, "RGB", (float(np.mean(mean)),), (float(np.mean(std)),), channels=1)))
            continue
        for order in ("RGB", "BGR"):
            m, s = (mean, std) if order == "RGB" else (mean[::-1], std[::-1])
            found.append((f"{name} {order}", Preprocessing(height, width, order, tuple(m), tuple(s))))
    return found


def flags(prep: dict) -> str:
    """The deploy build flags that select this preprocessing."""
    def values(v):
        return ",".join(f"{x:g}" for x in v)

    text = f"--mean {values(prep['mean'])} --std {values(prep['std'])}"
    return text + (f" --channel-order {prep['channel_order']}" if prep.get("channels", 3) == 3 else "")


class ProbeConfig(ValidationSampleConfig):
    candidates: list[dict]  # {"name", "preprocessing"}: what the user's model, as given, is fed


class PreprocessingProbeStage(Stage):
    name = "preprocessing_probe"
    tools = (*TF_TOOLS, "onnxruntime")
    Config = ProbeConfig

    def run(self, config: ProbeConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict:
        from pipeline.stages.reference import float_predictor

        val = validation_split(inputs["data"], config.val_max_images, config.seed)
        predict = float_predictor(inputs["model"])
        results = []
        for candidate in config.candidates:
            prep = Preprocessing.from_dict(candidate["preprocessing"])
            probs = predict_split(predict, val, prep, f"probe {candidate['name']}")
            results.append({**candidate, "top1": float(np.mean(probs.argmax(1) == val.labels))})
        best = max(range(len(results)), key=lambda i: results[i]["top1"])  # first wins ties: the order is the preference
        return {"candidates": results, "best": best, "n": int(len(val))}
