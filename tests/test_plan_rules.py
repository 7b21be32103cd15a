"""Plan rules on a real (tiny) build: a new stage is one module and one rule; --dry-run lists every stage."""
import hashlib
import json
import os

import pytest

from pipeline import rules
from pipeline.build import build, dry_run
from pipeline.config import load_config
from tests.toy_stages import ChecksumConfig, ChecksumStage

FAST = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
        "formats": ["tflite"], "precisions": ["fp32", "int8-qat"]}


@pytest.mark.slow
def test_a_new_stage_is_one_module_and_one_rule(trained_model_file, image_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(rules, "RULES", list(rules.RULES))

    @rules.rule
    def checksum(p, m):  # the whole integration of the toy stage
        p.node(ChecksumStage(), ChecksumConfig(), {"model": m.model}, label=m.name)

    config = load_config(overrides={"models": [str(trained_model_file)], "data": str(image_folder), "out": tmp_path, "jobs": 2, **FAST})
    planned = dry_run(config)
    # import, data and the preprocessing probe (run to plan: no preprocessing flags), reference, qat,
    # 3 x (convert, verify, bench): fp32, int8-qat and the int8-ptq that replaces int8-qat if QAT is
    # impossible; and the checksum.
    assert planned[0] == "plan: 15 stages, 3 cached, 12 to run"
    assert planned[1].startswith("needed while planning") and "import tiny [ran]" in planned[1]
    [line] = [x for x in planned if "toy-checksum" in x]
    assert line.split()[0] == "run" and "if QAT possible" in next(x for x in planned if "int8-qat" in x and "convert" in x)

    report = build(config)
    assert [a.precision for a in report.artifacts] == ["fp32", "int8-qat"]
    [folder] = (tmp_path / "cache" / "toy-checksum").iterdir()
    assert folder.name == line.split()[1]  # the key the dry run printed is the cache folder
    result = json.loads((folder / "result.json").read_text())
    assert result["pid"] != os.getpid()  # it ran in a worker process
    model_dir = next((tmp_path / "cache" / "import").iterdir())
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(x for x in model_dir.rglob("*") if x.is_file())))
    assert result["checksum"] == digest.hexdigest()
    assert dry_run(config)[0] == "plan: 15 stages, 12 cached, 0 to run, 3 skipped"  # QAT was possible: no fallback
