"""Training-time augmentation (`--augment basic`): random resized crop and horizontal flip.

Applied per batch inside tf.data, to the training split only; validation, calibration and golden
images never pass through here. Seeded: the random numbers are stateless functions of
(seed, batch number), so a build trains on the same crops every time.
"""
from __future__ import annotations

import math

AUGMENTS = ("none", "basic")
# Fraction of the image's area a crop keeps, and its aspect ratio range. ImageNet recipes keep
# as little as 8 %; small user sets at small input sizes lose the object at that, so 25 %.
CROP_AREA = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def random_resized_crop_flip(images, seed):
    """images: float (N, H, W, C) tensor; seed: int64 shape-(2,) tensor. Same shape out."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    area = tf.random.stateless_uniform([n], seeds[0], *CROP_AREA)
    ratio = tf.exp(tf.random.stateless_uniform([n], seeds[1], math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])))
    crop_h = tf.minimum(tf.sqrt(area / ratio), 1.0)  # fractions of the image's height and width
    crop_w = tf.minimum(tf.sqrt(area * ratio), 1.0)
    y0 = tf.random.stateless_uniform([n], seeds[2]) * (1.0 - crop_h)
    x0 = tf.random.stateless_uniform([n], seeds[3]) * (1.0 - crop_w)
    flip = tf.random.stateless_uniform([n], seeds[4]) < 0.5
    # crop_and_resize mirrors a box whose x1 > x2: crop and flip in one resampling.
    left = tf.where(flip, x0 + crop_w, x0)
    right = tf.where(flip, x0, x0 + crop_w)
    boxes = tf.stack([y0, left, y0 + crop_h, right], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(n), [height, width], method="bilinear")
