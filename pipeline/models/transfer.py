"""Transfer learning for the built-in families (`--pretrained imagenet|FILE`, docs/training.md).

The built-in model is built as usual, then every layer with weights except its head (the last
layer with weights: the classifier, sized for the user's classes) takes the weights of the layer of
the same name in the pretrained model. Training then runs in two phases, the Model Maker recipe:
the head alone with the backbone frozen (batch normalization on the pretrained statistics), then
everything at a lower learning rate, batch normalization included: it normalises with the user's
images' statistics and re-estimates its moving ones. Keras's transfer-learning guide keeps batch
norm frozen in the second phase too; measured here (docs/training.md#transfer-learning), that
left a backbone from other photographs 12 points lower after 5 epochs.

`imagenet` is keras.applications' no-top ImageNet weights for MobileNet V1/V2, read from Keras's
cache folder: a build downloads nothing, so an absent file is a one-line error that names it.
Written here (not a library call) because keras.applications only loads its weights into its own
graph, and the built-in models add their own head and naming.
"""
from __future__ import annotations

from pathlib import Path

from pipeline.errors import UserInputError

# keras.applications' ImageNet weights: the input sizes and widths they exist for
IMAGENET = {
    "mobilenet_v1": {"sizes": (128, 160, 192, 224), "alphas": (0.25, 0.5, 0.75, 1.0)},
    "mobilenet_v2": {"sizes": (96, 128, 160, 192, 224), "alphas": (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)},
}
V1_ALPHA_TEXT = {1.0: "1_0", 0.75: "7_5", 0.5: "5_0", 0.25: "2_5"}  # keras.applications' file names
HEAD_EPOCHS = 1  # of --epochs, with the backbone frozen; the rest fine-tune everything
FINE_TUNE_RATE = 0.3  # the second phase's learning rate, times --learning-rate (measured: 0.1 and 1.0 lower)


def keras_cache() -> Path:
    """Where keras.applications keeps downloaded weights (tf_keras's get_file, cache_subdir "models")."""
    return Path.home() / ".keras" / "models"


def imagenet_file(architecture: str, input_size: int, alpha: float) -> Path:
    """The no-top ImageNet weights file keras.applications would download, in Keras's cache.
    UserInputError when they do not exist for this family, size or width, or the file is absent."""
    known = IMAGENET.get(architecture)
    if known is None:
        raise UserInputError(f"--pretrained imagenet: ImageNet weights exist for {', '.join(IMAGENET)}, not {architecture}; "
                             "give a model file of the same family (--pretrained FILE)")
    if input_size not in known["sizes"] or alpha not in known["alphas"]:
        raise UserInputError(f"--pretrained imagenet: {architecture}'s ImageNet weights exist for --input-size "
                             f"{'/'.join(map(str, known['sizes']))} and --alpha {'/'.join(map(str, known['alphas']))}, "
                             f"not {input_size} and {alpha}")
    if architecture == "mobilenet_v1":
        name = f"mobilenet_{V1_ALPHA_TEXT[alpha]}_{input_size}_tf_no_top.h5"
    else:
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_{input_size}_no_top.h5"
    path = keras_cache() / name
    if not path.is_file():
        raise UserInputError(f"--pretrained imagenet: {name} is not in {path.parent} and a build downloads nothing; "
                             f"put the file there (keras.applications downloads it on a machine that is online)")
    return path


def source_model(architecture: str, input_size: int, alpha: float, pretrained: str, trusted: bool):
    """The model whose weights the backbone takes: ImageNet's (keras.applications without top) or FILE's."""
    from pipeline.models import loading
    from pipeline.tf_import import keras

    if pretrained != "imagenet":
        return loading.load_keras_model(Path(pretrained), trusted=trusted)
    path = imagenet_file(architecture, input_size, alpha)
    build = {"mobilenet_v1": keras().applications.MobileNet, "mobilenet_v2": keras().applications.MobileNetV2}[architecture]
    return build(input_shape=(input_size, input_size, 3), alpha=alpha, include_top=False, weights=str(path))


def head(model) -> str:
    """The classifier: the last layer with weights (every built-in family ends so)."""
    return [layer for layer in model.layers if layer.weights][-1].name


def copy_backbone(source, target, what: str) -> int:
    """Every weighted layer of `target` but its head takes the weights of `source`'s layer of the
    same name; returns how many layers were copied. UserInputError naming the first layer that does
    not fit (absent from `source`, or other weight shapes)."""
    available = {layer.name: layer for layer in _leaves(source)}
    classifier = head(target)
    copied = 0
    for layer in target.layers:
        if not layer.weights or layer.name == classifier:
            continue
        found = available.get(layer.name)
        if found is None:
            raise UserInputError(f"--pretrained {what}: layer '{layer.name}' ({type(layer).__name__}) of the built-in model "
                                 f"is not in it; give a model of the same family, width (--alpha) and layer names")
        weights = found.get_weights()
        shapes = [tuple(w.shape) for w in weights]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if shapes != expected:
            raise UserInputError(f"--pretrained {what}: layer '{layer.name}' ({type(layer).__name__}) has weights of shapes "
                                 f"{shapes}, the built-in model's are {expected} (another --alpha?)")
        layer.set_weights(weights)
        copied += 1
    return copied


def freeze(model, backbone: bool) -> None:
    """Phase one (backbone=True): only the head trains, batch normalization in inference mode on the
    pretrained statistics. Phase two: every layer trains, batch normalization included."""
    classifier = head(model)
    for layer in model.layers:
        if layer.weights:
            layer.trainable = layer.name == classifier or not backbone


def _leaves(model) -> list:
    """Layers of `model`, nested models' layers included (a user's Sequential around an application)."""
    found = []
    for layer in model.layers:
        found += _leaves(layer) if hasattr(layer, "layers") else [layer]
    return found
