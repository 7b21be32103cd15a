"""Activation thresholds for int8 from calibration statistics (pure numpy, no runtime).

`kl` follows ncnn2table's default method: a 2048-bin histogram of |activation| over
[0, absmax], and the clipping threshold (at least 128 bins) whose 128-level quantized
distribution has the least KL divergence from the clipped original. `percentile` clips at
a percentile of |activation|; `minmax` keeps the largest |activation| (no clipping); `mse`
picks, per blob, the threshold whose int8 rounding and clipping give the least mean squared
error over the histogram (the error is computed, not approximated by a distribution).
The int8 scale is 127 / threshold, as ncnn expects.
"""
from __future__ import annotations

import numpy as np

HISTOGRAM_BINS = 2048
TARGET_BINS = 128
KL_EPS = 1e-4
METHODS = ("kl", "percentile", "minmax", "mse")
# `auto` (ncnn only, converters/ncnn_layer_error.best_scales_per_layer): per layer, whichever of
# these gives the least measured int8 error of that layer.
AUTO_CANDIDATES = ("kl", "percentile", "mse")
MSE_CANDIDATES = 256  # thresholds tried by `mse`, evenly over (0, absmax]
MSE_POINTS_PER_BIN = 8  # values spread evenly inside each histogram bin


class BlobStatistics:
    """Two passes over the calibration set, as ncnn2table does: first the absolute maximum,
    then a histogram of |x| over [0, absmax] (zeros are skipped: ReLU outputs are full of them)."""

    def __init__(self) -> None:
        self.absmax = 0.0
        self.histogram = np.zeros(HISTOGRAM_BINS, np.int64)

    def add_absmax(self, x: np.ndarray) -> None:
        self.absmax = max(self.absmax, float(np.max(np.abs(x))) if x.size else 0.0)

    def add_histogram(self, x: np.ndarray) -> None:
        if self.absmax == 0:
            return
        values = np.abs(x[x != 0])
        index = np.minimum((values / self.absmax * HISTOGRAM_BINS).astype(np.int64), HISTOGRAM_BINS - 1)
        self.histogram += np.bincount(index, minlength=HISTOGRAM_BINS)


def threshold(stats: BlobStatistics, method: str, percentile: float = 99.99) -> float:
    if stats.absmax == 0 or stats.histogram.sum() == 0:
        return 0.0
    if method == "minmax":
        return stats.absmax
    if method == "percentile":
        return percentile_threshold(stats.histogram, stats.absmax, percentile)
    if method == "kl":
        return kl_threshold(stats.histogram, stats.absmax)
    if method == "mse":
        return mse_threshold(stats.histogram, stats.absmax)
    raise ValueError(f"unknown calibration method {method!r} (choose from {', '.join(METHODS)})")


def scale(threshold_value: float) -> float:
    """ncnn's int8 scale for a threshold: 127 / threshold (1.0 for an all-zero blob)."""
    return 127.0 / threshold_value if threshold_value > 0 else 1.0


def percentile_threshold(histogram: np.ndarray, absmax: float, percentile: float) -> float:
    """Upper edge of the histogram bin where the cumulative count reaches `percentile` %."""
    cumulative = np.cumsum(histogram) / histogram.sum()
    bin_index = int(np.searchsorted(cumulative, percentile / 100.0))
    return min(bin_index + 1, HISTOGRAM_BINS) * absmax / HISTOGRAM_BINS


def _merged(values_cumsum: np.ndarray, values: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Integral of the piecewise-constant bins `values` over [0, x), x fractional."""
    whole = np.minimum(np.floor(x).astype(np.int64), len(values))
    frac = x - whole
    part = np.where(whole < len(values), values[np.minimum(whole, len(values) - 1)], 0.0)
    return values_cumsum[whole] + frac * part


def kl_threshold(histogram: np.ndarray, absmax: float) -> float:
    """ncnn2table's KL search, vectorised per candidate threshold (same bins, eps and merge rule)."""
    normed = histogram / histogram.sum()
    normed_cumsum = np.concatenate([[0.0], np.cumsum(normed)])
    best, best_kl = TARGET_BINS, np.inf
    for t in range(TARGET_BINS, HISTOGRAM_BINS):
        clip = normed[:t] + KL_EPS
        clip[t - 1] += normed[t:].sum()
        per_bin = t / TARGET_BINS
        edges = np.arange(TARGET_BINS + 1) * per_bin
        edges[-1] = t
        # Each of the 128 levels holds the average density of the original bins it covers ...
        quantized = np.diff(_merged(normed_cumsum, normed, edges)) / per_bin
        # ... spread back over those bins in proportion to how much of each bin it covers.
        quantized_cumsum = np.concatenate([[0.0], np.cumsum(quantized)])
        level_edges = np.arange(t + 1) / per_bin
        expanded = np.diff(_merged(quantized_cumsum, quantized, level_edges)) * per_bin + KL_EPS
        kl = float(np.sum(clip * np.log(clip / expanded)))
        if kl < best_kl:
            best, best_kl = t, kl
    return (best + 0.5) * absmax / HISTOGRAM_BINS


def mse_threshold(histogram: np.ndarray, absmax: float, levels: int = 127) -> float:
    """The threshold t in (0, absmax] minimising the histogram's squared error after symmetric
    int8 quantization with scale levels / t (round to nearest, clip at t)."""
    width = absmax / len(histogram)
    offsets = (np.arange(MSE_POINTS_PER_BIN) + 0.5) / MSE_POINTS_PER_BIN
    values = ((np.arange(len(histogram))[:, None] + offsets[None, :]) * width).ravel()
    weights = np.repeat(histogram / (histogram.sum() * MSE_POINTS_PER_BIN), MSE_POINTS_PER_BIN)
    keep = weights > 0
    values, weights = values[keep], weights[keep]
    best, best_err = absmax, np.inf
    for t in np.arange(1, MSE_CANDIDATES + 1) * absmax / MSE_CANDIDATES:
        step = t / levels
        quantized = np.minimum(np.floor(values / step + 0.5), levels) * step
        err = float(weights @ (values - quantized) ** 2)
        if err < best_err:
            best, best_err = float(t), err
    return best
