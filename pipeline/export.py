"""`deploy export android|ios RUN_DIR`: put one artifact of a run into a demo app, with what the app needs.

Into the app's model folder (MODEL_DIRS) go: model.tflite, model.json (the artifact's metadata:
id, labels, preprocessing, I/O types), golden/ (golden vectors of this very artifact, see
pipeline/golden.py), export.json (what was chosen and why), and for iOS model.mlpackage when the
run built one (`deploy build --coreml`). Fixed file names keep the apps free of configuration.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pipeline import atomic, golden
from pipeline.errors import UserInputError
from pipeline.report.ingest import read_json_object

PLATFORMS = ("android", "ios")
APP_DIRS = {"android": "android-demo", "ios": "ios-demo"}
MODEL_DIRS = {"android": Path("app/src/main/assets/model"), "ios": Path("DeployDemo/Model")}
EXPORTED = ("model.tflite", "model.json", "model.mlpackage", "model-coreml.json", "golden", "export.json")
NEXT_STEPS = {
    "android": "open android-demo/ in Android Studio (or run ./gradlew installDebug there), start the app; "
               "then `deploy bench {run_dir} --target adb --app` adds the phone's numbers to the report",
    "ios": "cd ios-demo && xcodegen && pod install, open DeployDemo.xcworkspace in Xcode and run on an iPhone; "
           "copy the benchmark JSON it writes and add it with `deploy bench {run_dir} --app-result FILE`",
}
_CHECKOUT = Path(__file__).resolve().parent.parent


@dataclass
class Choice:
    artifact: dict
    reason: str


@dataclass
class ExportResult:
    platform: str
    artifact_id: str
    reason: str
    model_dir: Path
    files: list[Path] = field(default_factory=list)
    coreml: bool = False

    def next_steps(self, run_dir: Path) -> str:
        return NEXT_STEPS[self.platform].format(run_dir=run_dir)


def read_report(run_dir: Path) -> dict:
    """report.json as plain JSON: export needs a few artifact fields and must accept any minor version."""
    path = run_dir if run_dir.suffix == ".json" else run_dir / "report.json"
    report = read_json_object(path, "report", "; run `deploy build` first")
    if not isinstance(report.get("artifacts"), list) or not report["artifacts"]:
        raise UserInputError(f"{path}: no artifacts in this report; run `deploy build` first")
    return report


def choose_artifact(report: dict, artifact_id: str | None = None) -> Choice:
    """--artifact if given; else the report's recommendation for "host"; else the most accurate
    fully-int8 artifact (then the smaller, then by id); else an error listing the ids."""
    # The demo apps run LiteRT: ncnn and ONNX artifacts of the same run are not candidates.
    artifacts = {a["id"]: a for a in report["artifacts"] if a.get("format", "tflite") == "tflite"}
    ids = ", ".join(artifacts)
    if artifact_id is not None:
        other = next((a for a in report["artifacts"] if a["id"] == artifact_id and a["id"] not in artifacts), None)
        if other is not None:
            raise UserInputError(f"--artifact {artifact_id}: a {other.get('format')} artifact; the demo apps run TFLite (ids: {ids})")
        if artifact_id not in artifacts:
            raise UserInputError(f"--artifact {artifact_id}: not in this run (ids: {ids})")
        return Choice(artifacts[artifact_id], "chosen with --artifact")
    for rec in report.get("recommendations") or []:
        if isinstance(rec, dict) and rec.get("target") == "host" and rec.get("artifact") in artifacts:
            why = f": {rec['reason']}" if rec.get("reason") else ""
            return Choice(artifacts[rec["artifact"]], f"the report's recommendation for host{why}")
    int8 = [a for a in artifacts.values() if (a.get("int8_check") or {}).get("fully_int8")]
    if int8:
        best = min(int8, key=lambda a: (-a["accuracy"]["top1"], a["size_bytes"], a["id"]))
        return Choice(best, f"the most accurate fully-int8 artifact (top-1 {100 * best['accuracy']['top1']:.2f} %)")
    raise UserInputError(f"this run has no recommendation and no fully-int8 artifact: choose one with --artifact (ids: {ids})")


def default_app_dir(platform: str) -> Path:
    return _CHECKOUT / APP_DIRS[platform]


def export(run_dir: Path, platform: str, artifact_id: str | None = None, app_dir: Path | None = None) -> ExportResult:
    if platform not in PLATFORMS:
        raise UserInputError(f"platform {platform!r}: choose android or ios")
    report = read_report(run_dir)
    choice = choose_artifact(report, artifact_id)
    app_dir = app_dir or default_app_dir(platform)
    if not app_dir.is_dir():
        raise UserInputError(f"--app-dir {app_dir}: not a folder; pass the {APP_DIRS[platform]}/ folder of a mobile-deploy checkout")
    folder = run_dir.parent if run_dir.suffix == ".json" else run_dir
    artifact = choice.artifact
    sources = {"model.tflite": folder / artifact["path"], "model.json": folder / artifact["metadata_path"]}
    for name, source in sources.items():
        if not source.is_file():
            raise UserInputError(f"{source}: listed in report.json for {artifact['id']} but missing; rerun `deploy build`")
    model_dir = app_dir / MODEL_DIRS[platform]
    model_dir.mkdir(parents=True, exist_ok=True)
    for name in EXPORTED:  # only what an earlier export wrote: the folder's README stays
        target = model_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    result = ExportResult(platform, artifact["id"], choice.reason, model_dir)
    for name, source in sources.items():
        atomic.copy_file(source, model_dir / name)
        result.files.append(model_dir / name)
    if platform == "ios":
        package = folder / Path(artifact["metadata_path"]).parent / f"{artifact['model']}_coreml.mlpackage"
        if package.is_dir():
            atomic.copy_tree(package, model_dir / "model.mlpackage")
            atomic.copy_file(package.with_suffix(".json"), model_dir / "model-coreml.json")
            result.files += [model_dir / "model.mlpackage", model_dir / "model-coreml.json"]
            result.coreml = True
    golden.write(model_dir / "model.tflite", model_dir / "model.json", model_dir / "golden")
    result.files.append(model_dir / "golden")
    atomic.write_json(model_dir / "export.json", {
        "artifact": artifact["id"], "reason": choice.reason, "run_dir": str(folder.resolve()),
        "precision": artifact.get("precision"), "top1": artifact["accuracy"]["top1"],
        "coreml": result.coreml, "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    result.files.append(model_dir / "export.json")
    return result
