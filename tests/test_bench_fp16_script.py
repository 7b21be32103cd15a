"""scripts/bench_fp16.py end to end on a small MobileNet V2 (the real run is 224x224): it reports the
XNNPACK arithmetic of the fp16 artifact on arm64-emu (fp16) and on the x86 host (fp32)."""
import subprocess
import sys
from pathlib import Path

import pytest

from tests.targets.test_emulated import needs_rootfs

ROOT = Path(__file__).resolve().parents[1]


@needs_rootfs("arm64")
@pytest.mark.slow
def test_bench_fp16_names_the_kernels_and_the_difference():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_fp16.py"), "--size", "32", "--images", "2",
                           "--classes", "10"], capture_output=True, text=True, cwd=ROOT, timeout=1800, check=True)
    lines = {line.split(":")[0]: line for line in proc.stdout.splitlines()}
    arm, x86 = lines["arm64-emu (cortex-a76)"], lines["host"]
    assert "delegate xnnpack, fp16 arithmetic" in arm and "delegate xnnpack, fp32 arithmetic" in x86
    # fp16 arithmetic moves the logits further than the weights' rounding alone (x86).
    arm_diff = float(arm.split("logits max abs ")[1].split()[0])
    x86_diff = float(x86.split("logits max abs ")[1].split()[0])
    assert 0 < x86_diff < arm_diff
