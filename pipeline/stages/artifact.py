"""What every artifact-making stage writes beside its artifact: the recipe JSON (labels,
preprocessing, precision, tools) that runtimes and demo apps read, and the stage result."""
from __future__ import annotations

import json
from pathlib import Path

from pipeline.stages.base import StageOutput
from pipeline.versions import tool_versions


def write_recipe(workdir: Path, stem: str, files: list[Path], *, model_name: str, fmt: str, precision: str,
                 io: dict[str, str], calibration_images: int, preprocessing: dict, data: StageOutput,
                 source: StageOutput, tools: tuple[str, ...], **extra) -> dict:
    """Write the recipe beside the artifact and return the stage result; the first file is the one
    runtimes open. TFLite ids are the stem; other formats add theirs (mobilenet_v2_fp32.ncnn), so
    every format's files can share one folder."""
    artifact_id = stem if fmt == "tflite" else f"{stem}.{fmt}"
    recipe = {
        "id": artifact_id,
        "model": model_name,
        "format": fmt,
        "precision": precision,
        "io": io,
        "calibration_images": calibration_images,
        "preprocessing": preprocessing,
        "labels": data.result["class_names"],
        "source_model_key": source.key,
        "tools": tool_versions(tools),
        **extra,
    }
    (workdir / f"{artifact_id}.json").write_text(json.dumps(recipe, indent=2) + "\n")
    return {
        "file": files[0].name,
        "files": [f.name for f in files],
        "recipe": f"{artifact_id}.json",
        "size_bytes": sum(f.stat().st_size for f in files),
        **recipe,
    }
