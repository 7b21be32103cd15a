"""A stage: a small class with a typed config and one `run` method, registered by name."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class StageOutput:
    """What a finished stage left: its folder in the cache and its JSON result."""

    stage: str
    key: str
    dir: Path
    result: dict[str, Any]
    cached: bool
    seconds: float

    def path(self, name: str) -> Path:
        return self.dir / name


class FitConfig(StageConfig):
    """What every stage that trains a model shares (train, QAT, pruning, sparsity, clustering)."""

    preprocessing: dict
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    augment: str = "none"  # pipeline/augment.py: applied to the training split only
    tf_threads: int = 0  # TensorFlow's intra-op threads the training runs with (runner._run); 0: this process's

    def recipe(self) -> str:
        """One line for --dry-run: how this stage trains."""
        early = getattr(self, "patience", 0)
        return (f"{self.epochs} epochs, learning rate {self.learning_rate:g}, batch {self.batch_size}, augment {self.augment}"
                + (f", early stopping patience {early}" if early else ""))


class Stage:
    name: ClassVar[str]
    # Distributions whose versions enter the cache key.
    tools: ClassVar[tuple[str, ...]] = ()
    # Project modules the stage runs as scripts rather than imports; their source enters the key too.
    scripts: ClassVar[tuple[str, ...]] = ()
    Config: ClassVar[type[StageConfig]] = StageConfig

    registry: ClassVar[dict[str, type["Stage"]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Stage.registry[cls.name] = cls

    def run(self, config: StageConfig, inputs: dict[str, StageOutput], workdir: Path) -> dict[str, Any]:
        """Write outputs into `workdir` and return a JSON-serialisable result."""
        raise NotImplementedError
