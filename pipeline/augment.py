"""Training-time augmentation (`--augment`): `affine` (the default), small random shifts, rotations
and scaling with no flip; `basic`, random resized crop and horizontal flip (it wins on sets cut as
crops of a few photos and loses points on others: docs/training.md#the-recipe).

Applied per batch inside tf.data, to the training split only; validation, calibration and golden
images never pass through here. Seeded: the random numbers are stateless functions of
(seed, batch number), so a build trains on the same crops every time.
"""
from __future__ import annotations

import math

AUGMENTS = ("none", "basic", "affine")
# Fraction of the image's area a crop keeps, and its aspect ratio range. ImageNet recipes keep
# as little as 8 %; small user sets at small input sizes lose the object at that, so 25 %.
CROP_AREA = (0.25, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)
# affine: shift up to this fraction of the side, rotate up to this many degrees, scale in this range
# (the classic MNIST distortions, kept small: an 8x8 digit upscaled is 4 pixels a stroke at 32x32).
SHIFT = 0.1
ROTATE_DEGREES = 10.0
SCALE = (0.9, 1.1)


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


def random_affine(images, seed):
    """images: float (N, H, W, C) tensor; seed: int64 shape-(2,) tensor. Each image rotated, scaled
    and shifted about its centre by its own random amounts (`affine`). Same shape out."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    n = tf.shape(images)[0]
    seeds = tf.random.experimental.stateless_split(seed, 3)
    angle = tf.random.stateless_uniform([n], seeds[0], -1.0, 1.0) * (ROTATE_DEGREES * math.pi / 180)
    scale = tf.random.stateless_uniform([n], seeds[1], *SCALE)
    shift = tf.random.stateless_uniform([n, 2], seeds[2], -SHIFT, SHIFT) * tf.constant([images.shape[2], images.shape[1]], tf.float32)
    return affine(images, angle, scale, shift)


def affine(images, angle, scale, shift):
    """Each image rotated by angle (radians, (N,)), scaled by scale ((N,)) about its centre, then
    moved by shift ((N, 2), x and y in pixels); bilinear, the border filled with the image's own
    edge pixels (a preprocessed background is not 0). TensorFlow's projective-transform op maps each
    output pixel to the input pixel it reads: input = R(-angle) (output - centre - shift) / scale + centre."""
    from pipeline.tf_import import tensorflow

    tf = tensorflow()
    height, width = images.shape[1], images.shape[2]
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ox, oy = cx + shift[:, 0], cy + shift[:, 1]
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([cos, sin, cx - cos * ox - sin * oy, -sin, cos, cy + sin * ox - cos * oy, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(images=images, transforms=transforms, output_shape=[height, width],
                                                 fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST")
