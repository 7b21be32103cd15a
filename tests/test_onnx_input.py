"""`deploy build --model model.onnx` with models defined and trained in PyTorch here (torch is a
test-only dependency): a ShuffleNet V2-like and a SqueezeNet-like classifier, trained briefly on
the demo digits, exported with torch.onnx.export(dynamo=False) with a dynamic batch dimension.
Every artifact is compared with onnxruntime running the original ONNX file."""
from __future__ import annotations

import logging

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from pipeline.build import build  # noqa: E402
from pipeline.config import load_config  # noqa: E402
from pipeline.data import Preprocessing, demo_digits, stratified_split  # noqa: E402

SIZE = 32
log = logging.getLogger("deploy")


def _conv_bn(cin, cout, k, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, *([nn.ReLU(inplace=True)] if relu else []))


def _shuffle(x, groups=2):
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        half = cout // 2
        branch_in = cin if stride == 2 else half
        self.branch = nn.Sequential(_conv_bn(branch_in, half, 1), _conv_bn(half, half, 3, stride, half, relu=False),
                                    _conv_bn(half, half, 1))
        self.shortcut = nn.Sequential(_conv_bn(cin, cin, 3, 2, cin, relu=False), _conv_bn(cin, half, 1)) if stride == 2 else None

    def forward(self, x):
        if self.stride == 1:
            kept, x = x.chunk(2, dim=1)  # channel split: an ONNX Split
            return _shuffle(torch.cat([kept, self.branch(x)], 1))
        return _shuffle(torch.cat([self.shortcut(x), self.branch(x)], 1))


class TinyShuffleNetV2(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.features = nn.Sequential(
            _conv_bn(3, 16, 3, 2), nn.MaxPool2d(3, 2, 1),
            ShuffleUnit(16, 32, 2), ShuffleUnit(32, 32, 1), ShuffleUnit(32, 64, 2), ShuffleUnit(64, 64, 1),
            _conv_bn(64, 128, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        return self.fc(self.features(x))


class Fire(nn.Module):
    def __init__(self, cin, squeeze, expand):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(cin, squeeze, 1), nn.BatchNorm2d(squeeze), nn.ReLU(inplace=True))
        self.expand1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU(inplace=True))
        self.expand3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.squeeze(x)
        return torch.cat([self.expand1(x), self.expand3(x)], 1)


class TinySqueezeNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 32, 3, 2), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 8, 32), Fire(64, 8, 32), nn.MaxPool2d(3, 2, ceil_mode=True), Fire(64, 16, 64),
            nn.Dropout(0.2), nn.Conv2d(128, classes, 1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.net(x)


def _train_and_export(model, path, epochs=5):
    """Fit on the demo digits' training split with the pipeline's default preprocessing, then
    export with a dynamic batch dimension (so the build needs --input-shape)."""
    torch.manual_seed(0)
    images = demo_digits(SIZE, SIZE)
    train, _ = stratified_split(images.labels, 0.2, 0)
    prep = Preprocessing(SIZE, SIZE, "RGB", (127.5,) * 3, (127.5,) * 3)
    x = torch.from_numpy(prep.apply(images.images[train]).transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(images.labels[train])
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), 64):
            batch = order[start : start + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), str(path), dynamo=False, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}})
    return path


@pytest.fixture(scope="module", params=[TinyShuffleNetV2, TinySqueezeNet], ids=["shufflenet", "squeezenet"])
def onnx_build(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param.__name__)
    path = _train_and_export(request.param(), folder / f"{request.param.__name__.lower()}.onnx")
    config = load_config(overrides={
        "models": [str(path)], "data": "demo", "out": folder / "out", "input_shape": [1, 3, SIZE, SIZE],
        "precisions": ["fp32", "int8-qat"], "ncnn_precisions": ["fp32", "int8"], "calibration_images": 100,
        "formats": ["tflite", "ncnn", "onnx", "mnn"], "mnn_precisions": ["fp32", "int8"],
        "warmup": 1, "runs": 3, "threads": [1],
    })
    return build(config), path


@pytest.mark.slow
def test_pytorch_onnx_reaches_tflite_ncnn_and_mnn_agreeing_with_onnxruntime(onnx_build):
    report, path = onnx_build
    by_key = {(a.format, a.precision): a for a in report.artifacts}
    assert set(by_key) == {("tflite", "fp32"), ("tflite", "int8-ptq"), ("onnx", "fp32"), ("ncnn", "fp32"), ("ncnn", "int8"),
                           ("mnn", "fp32"), ("mnn", "int8")}
    [model] = report.models
    assert model.reference_runtime == "onnxruntime" and model.input_shape == [SIZE, SIZE, 3]
    assert model.float_accuracy.top1 > 0.7, "the PyTorch model did not learn the digits"
    assert model.qat.status == "unsupported" and "Keras" in model.qat.reason
    for a in report.artifacts:
        log.info("%s %s %s: agreement with onnxruntime %.4f, top-1 %.4f", path.name, a.format, a.precision,
                 a.accuracy.agreement, a.accuracy.top1)
        assert a.benchmarks and a.benchmarks[0].latency_ms.n == 3
    for fp32 in ("tflite", "ncnn", "onnx", "mnn"):
        assert by_key[(fp32, "fp32")].accuracy.agreement >= 0.99
    assert by_key[("onnx", "fp32")].accuracy.agreement == 1.0
    assert by_key[("tflite", "int8-ptq")].int8_check.fully_int8
    assert by_key[("ncnn", "int8")].int8_check.fully_int8
    assert by_key[("ncnn", "int8")].accuracy.agreement >= 0.9
    # Issue 29's 98 % bar holds for the trained built-in models (docs/mnn.md); on this 5-epoch tiny model
    # MNN's x86 int8 kernels differ by the host's int8 instructions (96.9 % agreement on a CI host, 98.6 %
    # with AVX-512 VNNI), so the test holds int8 to the float model's top-1 instead.
    mnn_int8 = by_key[("mnn", "int8")].accuracy
    assert mnn_int8.agreement >= 0.95 and mnn_int8.top1 >= model.float_accuracy.top1 - 0.02
    assert not report.failures
