"""Whether an int8 model behaves like its float model: the figures the float fallbacks (TFLite's and
ncnn's) decide on (docs/int8.md, "What the fallback decides on").

Agreement (int8's top-1 class is the float model's) needs no label and no unseen image, so it is
measured on every decision image: DECISION_IMAGES training images that calibration did not use
(the images that set the ranges would flatter them), fitted or not, plus every never-fitted one
(stages.data.decision_images). Label top-1 is a second signal, on the decision images the model
never fitted (early stopping's hold-out), counted only when there are at least MIN_LABELLED of them: on 15 such images int8 and float once both scored 100 % for a model
whose int8 lost 2.5 points on its validation images.

Within a budget of B points: int8 disagrees with the float model on at most B % of the decision
images, and (with enough labelled images) its top-1 there is at most B points below the float model's.
Disagreement bounds the top-1 loss from above (a changed answer can lose a point, never two), so a
model within budget is within it on top-1 too; one over it has answers worth a closer look.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DECISION_IMAGES = 400
MIN_LABELLED = 100


@dataclass(frozen=True)
class Figures:
    agreement: float  # share of decision images where int8's class is the float model's
    top1: float  # share of the labelled images int8 gets right


@dataclass(frozen=True)
class DecisionSet:
    float_classes: np.ndarray  # the float model's class per decision image
    labels: np.ndarray
    labelled: np.ndarray  # bool per image: top-1 is measured on these (never fitted)
    top1_decides: bool  # enough never-fitted images for label top-1 to count

    @classmethod
    def of(cls, float_outputs: np.ndarray, labels: np.ndarray, never_fitted: np.ndarray) -> "DecisionSet":
        """`never_fitted` all False: top-1 on every decision image (reported, never decided on)."""
        never_fitted = np.asarray(never_fitted, bool)
        labelled = never_fitted if never_fitted.any() else np.ones(len(labels), bool)
        return cls(np.asarray(float_outputs).argmax(1), np.asarray(labels), labelled, int(never_fitted.sum()) >= MIN_LABELLED)

    @property
    def images(self) -> int:
        return len(self.labels)

    @property
    def labelled_images(self) -> int:
        return int(self.labelled.sum())

    @property
    def float_top1(self) -> float:
        return float(np.mean(self.float_classes[self.labelled] == self.labels[self.labelled]))

    def measure(self, outputs: np.ndarray) -> Figures:
        classes = np.asarray(outputs).argmax(1)
        return Figures(float(np.mean(classes == self.float_classes)),
                       float(np.mean(classes[self.labelled] == self.labels[self.labelled])))

    def loss_points(self, figures: Figures) -> float:
        """How far int8 is from the float model, in points (the larger of the two signals)."""
        loss = 100 * (1 - figures.agreement)
        if self.top1_decides:
            loss = max(loss, 100 * (self.float_top1 - figures.top1))
        return loss

    def within(self, figures: Figures, budget_points: float) -> bool:
        return self.loss_points(figures) <= budget_points + 1e-9  # float noise on shares

    def record(self, budget_points: float, status: str, float_layers: list[str], plain: Figures, after: Figures,
               rounds: list[dict]) -> dict:
        """A fallback's decision as report.json's `fallback` (schema.Int8Fallback)."""
        return {"budget_points": budget_points, "status": status, "float_layers": float_layers,
                "decision_images": self.images, "top1_decides": self.top1_decides,
                "agreement_int8": plain.agreement, "agreement_after": after.agreement,
                "top1_float": self.float_top1, "top1_int8": plain.top1, "top1_after": after.top1, "n": self.labelled_images,
                "rounds": rounds}


def round_record(float_layers: list[str], figures: Figures, size_bytes: int) -> dict:
    """One fallback round (schema.FallbackRound)."""
    return {"float_layers": float_layers, "top1": figures.top1, "agreement": figures.agreement, "size_bytes": size_bytes}
