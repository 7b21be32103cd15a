"""Activation thresholds: the vectorised KL search against a literal port of ncnn2table's loop."""
import math

import numpy as np
import pytest

from pipeline import calibration


def _ncnn2table_kl(histogram: np.ndarray, absmax: float) -> float:
    """ncnn2table's quantize_KL threshold search, loop for loop (tools/quantize/ncnn2table.cpp)."""
    bins, target = calibration.HISTOGRAM_BINS, calibration.TARGET_BINS
    normed = list(histogram / histogram.sum())
    best, best_kl = target, math.inf
    for threshold in range(target, bins):
        clip = [calibration.KL_EPS + normed[j] for j in range(threshold)]
        clip[threshold - 1] += sum(normed[threshold:])
        per_bin = threshold / target
        quant = [0.0] * target
        for j in range(target):
            start, end = j * per_bin, (j + 1) * per_bin if j < target - 1 else threshold
            left_upper, right_lower = math.ceil(start), math.floor(end)
            left_scale, right_scale = left_upper - start, end - right_lower
            if left_scale > 0:
                quant[j] += left_scale * normed[left_upper - 1]
            if right_scale > 0 and right_lower < threshold:
                quant[j] += right_scale * normed[right_lower]
            quant[j] += sum(normed[left_upper:right_lower])
            quant[j] /= right_lower - left_upper + left_scale + right_scale
        expand = [calibration.KL_EPS] * threshold
        for j in range(target):
            start, end = j * per_bin, (j + 1) * per_bin if j < target - 1 else threshold
            left_upper, right_lower = math.ceil(start), math.floor(end)
            left_scale, right_scale = left_upper - start, end - right_lower
            if left_scale > 0:
                expand[left_upper - 1] += left_scale * quant[j]
            if right_scale > 0 and right_lower < threshold:
                expand[right_lower] += right_scale * quant[j]
            for k in range(left_upper, right_lower):
                expand[k] += quant[j]
        kl = sum(c * math.log(c / e) for c, e in zip(clip, expand))
        if kl < best_kl:
            best, best_kl = threshold, kl
    return (best + 0.5) * absmax / bins


@pytest.mark.slow
def test_kl_threshold_equals_ncnn2table_loop():
    rng = np.random.default_rng(0)
    stats = calibration.BlobStatistics()
    x = np.maximum(rng.laplace(0, 1.0, 20000), 0)  # ReLU-like: many zeros, long tail
    stats.add_absmax(x)
    stats.add_histogram(x)
    fast = calibration.kl_threshold(stats.histogram, stats.absmax)
    assert fast == pytest.approx(_ncnn2table_kl(stats.histogram, stats.absmax), rel=1e-6)
    assert 0 < fast < stats.absmax  # the long tail is clipped


def test_percentile_and_minmax():
    stats = calibration.BlobStatistics()
    x = np.concatenate([np.linspace(-1, 1, 10001), [50.0]])  # one outlier
    stats.add_absmax(x)
    stats.add_histogram(x)
    assert calibration.threshold(stats, "minmax") == 50.0
    assert calibration.threshold(stats, "percentile", 99.0) == pytest.approx(1.0, abs=50 / 2048)
    assert calibration.scale(calibration.threshold(stats, "minmax")) == pytest.approx(127 / 50)
    with pytest.raises(ValueError, match="unknown calibration method"):
        calibration.threshold(stats, "entropy")


def test_all_zero_blob_gets_unit_scale():
    stats = calibration.BlobStatistics()
    stats.add_absmax(np.zeros(10))
    stats.add_histogram(np.zeros(10))
    assert calibration.scale(calibration.threshold(stats, "kl")) == 1.0


def test_mse_threshold_matches_the_analytic_optimum_for_gaussian_and_laplace():
    """ACIQ (Banner et al.) gives the squared-error-optimal 8-bit clip as 3.92 sigma for a Gaussian
    and 9.89 b for a Laplace distribution; `mse` finds it from the histogram alone."""
    rng = np.random.default_rng(0)
    for values, optimum in ((rng.normal(0, 1, 400_000), 3.92), (rng.laplace(0, 1, 400_000), 9.89)):
        stats = calibration.BlobStatistics()
        stats.add_absmax(values)
        stats.add_histogram(values)
        assert abs(calibration.threshold(stats, "mse") - optimum) < 0.1 * optimum
        assert calibration.threshold(stats, "mse") < stats.absmax
