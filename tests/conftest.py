"""Shared fixtures: tiny image folders and tiny trained Keras models, built in code."""
from __future__ import annotations

import getpass
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

COLORS = {"red": (200, 40, 40), "green": (40, 180, 60), "blue": (40, 60, 200)}
SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts are not a package), to test its functions."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_image_folder(root: Path, per_class: int = 12, size: int = 16, classes=COLORS, seed: int = 0) -> Path:
    """One subfolder per class of noisy solid-colour PNGs: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    for name, rgb in classes.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.asarray(rgb) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def tiny_model(size: int = 16, classes: int = 3, name: str = "tiny"):
    """Conv-BN-ReLU, depthwise conv, pooling, dense softmax: the shapes a MobileNet is made of."""
    from pipeline.tf_import import keras

    k = keras()
    inputs = k.Input((size, size, 3))
    x = k.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inputs)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.DepthwiseConv2D(3, padding="same")(x)
    x = k.layers.ReLU(6.0)(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    outputs = k.layers.Dense(classes, activation="softmax")(x)
    return k.Model(inputs, outputs, name=name)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("data") / "colors")


@pytest.fixture(scope="session")
def trained_model_file(tmp_path_factory, image_folder) -> Path:
    """A tiny model trained on `image_folder` with the pipeline's default preprocessing, saved as .keras."""
    from pipeline.data import load_image_folder

    images = load_image_folder(image_folder, 16, 16)
    x = (images.images.astype(np.float32) - 127.5) / 127.5
    from pipeline.tf_import import keras

    keras().utils.set_random_seed(0)  # the same weights every session: tests compare against fixed bounds
    model = tiny_model()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, images.labels, epochs=30, batch_size=8, verbose=0)
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    model.save(path)
    return path


# The demo apps: a tiny finished run to export and ingest into, and the compiled Kotlin core tests.

ROOT = Path(__file__).resolve().parents[1]
KOTLIN_CORE = ROOT / "android-demo" / "core" / "src"

APP_RUN_SETTINGS = {"qat_epochs": 1, "calibration_images": 12, "warmup": 1, "runs": 3, "threads": [1], "val_fraction": 0.25,
                    "formats": ["tflite"]}  # the apps run LiteRT


@pytest.fixture(scope="session")
def app_run(trained_model_file, image_folder, tmp_path_factory) -> Path:
    """fp32 and a fully-int8 artifact with int8 input/output (both code paths the apps have), and Core ML."""
    from pipeline.build import build
    from pipeline.config import load_config

    out = tmp_path_factory.mktemp("app-run")
    config = load_config(overrides={
        "models": [str(trained_model_file)], "data": str(image_folder), "out": out,
        "precisions": ["fp32", "int8-ptq"], "io": "int8", "coreml": True, **APP_RUN_SETTINGS,
    })
    build(config)
    return out


@pytest.fixture(scope="session")
def kotlin_core_jar(tmp_path_factory) -> Path:
    """android-demo/core (main + test sources) compiled by kotlinc into one runnable jar."""
    kotlinc = shutil.which("kotlinc")
    if kotlinc is None:
        pytest.fail("kotlinc not found: run ./scripts/setup-system.sh (make test does)")
    jar = tmp_path_factory.mktemp("kotlin") / "core-tests.jar"
    # The JIT's first tier only: a one-shot compile spends half its CPU time in the optimizing JIT.
    env = {**os.environ, "JAVA_OPTS": "-Xmx512M -Xms128M -XX:TieredStopAtLevel=1"}
    proc = subprocess.run(
        [kotlinc, str(KOTLIN_CORE / "main" / "kotlin"), str(KOTLIN_CORE / "test" / "kotlin"), "-include-runtime", "-d", str(jar)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    errors = [line for line in proc.stderr.splitlines() if ": error:" in line]
    assert proc.returncode == 0 and jar.is_file(), "kotlinc failed:\n" + "\n".join(errors or proc.stderr.splitlines()[-20:])
    return jar


@pytest.fixture(scope="session")
def golden_dirs(app_run, tmp_path_factory) -> dict[str, Path]:
    """Golden vectors of each app_run artifact, by precision, written once: copy one before changing it."""
    from pipeline import golden

    root = tmp_path_factory.mktemp("golden")
    dirs = {}
    for a in json.loads((app_run / "report.json").read_text())["artifacts"]:
        dirs[a["precision"]] = root / a["precision"]
        golden.write(app_run / a["path"], app_run / a["metadata_path"], dirs[a["precision"]])
    return dirs


def run_kotlin_tests(jar: Path, golden_dir: Path, record_out: Path | None = None) -> subprocess.CompletedProcess:
    args = ["java", "-cp", str(jar), "com.mobiledeploy.core.TestMainKt", str(golden_dir)]
    if record_out is not None:
        args.append(str(record_out))
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """(target, options) for a live sshd on 127.0.0.1 that accepts only a throwaway key: an "ARM
    board" on loopback whose Python is this venv's. Debian's sshd (scripts/setup-system.sh), its own
    config, host key and user key in tmp; the system's sshd config is not touched."""
    from pipeline.targets import ssh
    from pipeline.targets.spec import SshTarget

    if not os.access(SSHD, os.X_OK):
        pytest.fail(f"{SSHD} missing: run scripts/setup-system.sh (installs openssh-server)")
    home = tmp_path_factory.mktemp("sshd")
    keygen(home / "host_key")
    keygen(home / "user_key")
    shutil.copy(home / "user_key.pub", home / "authorized_keys")
    port = free_port()
    config = home / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {home / 'host_key'}",
        f"AuthorizedKeysFile {home / 'authorized_keys'}", "PidFile none", "UsePAM no",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password",
        "StrictModes no",  # pytest's tmp folders sit under a world-writable /tmp
    ]) + "\n")
    known_hosts = home / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {(home / 'host_key.pub').read_text()}")
    if os.geteuid() == 0:  # sshd started as root insists on its (empty) privilege separation folder
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = open(home / "sshd.log", "w")
    server = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=log)
    deadline = time.monotonic() + 10
    while "Server listening" not in (home / "sshd.log").read_text():
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"sshd did not start: {(home / 'sshd.log').read_text()}")
        time.sleep(0.05)
    target = SshTarget(getpass.getuser(), "127.0.0.1", port)
    options = ssh.SshOptions(python=sys.executable, key=home / "user_key", known_hosts=known_hosts)
    yield target, options
    server.terminate()
    server.wait(timeout=10)
    log.close()
