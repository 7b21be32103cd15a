package com.mobiledeploy.core

import java.math.BigDecimal
import java.math.RoundingMode

/** The latency summary of pipeline/targets/device_runner.py, in milliseconds. */
class LatencySummary(
    val p50: Double,
    val p90: Double,
    val p99: Double,
    val mean: Double,
    val std: Double,
    val n: Int
) {
    fun toMap(): Map<String, Any?> = linkedMapOf(
        "p50" to p50, "p90" to p90, "p99" to p99, "mean" to mean, "std" to std, "n" to n
    )
}

/**
 * device_runner.summarize, reproduced operation for operation so the app's numbers are the ones
 * the Python runner would compute from the same timings: numpy's linear percentile, numpy's
 * pairwise summation for the mean and the sample std (ddof=1), then Python's round(x, 6).
 */
object LatencyStats {
    fun summarize(latenciesNs: LongArray): LatencySummary {
        require(latenciesNs.isNotEmpty()) { "no latencies to summarize" }
        val ms = DoubleArray(latenciesNs.size) { latenciesNs[it].toDouble() / 1e6 }
        val sorted = ms.copyOf()
        sorted.sort()
        val n = ms.size
        val mean = pairwiseSum(ms, 0, n) / n
        val std = if (n > 1) {
            val squares = DoubleArray(n) { val d = ms[it] - mean; d * d }
            Math.sqrt(pairwiseSum(squares, 0, n) / (n - 1))
        } else 0.0
        return LatencySummary(
            round6(percentile(sorted, 50)), round6(percentile(sorted, 90)), round6(percentile(sorted, 99)),
            round6(mean), round6(std), n
        )
    }

    /** numpy.percentile(..., method="linear") of an ascending array. */
    fun percentile(sorted: DoubleArray, q: Int): Double {
        val n = sorted.size
        val virtual = (n - 1) * (q / 100.0)
        if (virtual >= n - 1) return sorted[n - 1]
        val previous = Math.floor(virtual)
        val gamma = virtual - previous
        val a = sorted[previous.toInt()]
        val b = sorted[previous.toInt() + 1]
        val diff = b - a
        // numpy's _lerp: from the nearer end, for monotonicity.
        return if (gamma >= 0.5) b - diff * (1 - gamma) else a + diff * gamma
    }

    /** numpy's pairwise summation (numpy/_core/src/umath/loops_utils.h.src), blocks of 8 and 128. */
    fun pairwiseSum(a: DoubleArray, start: Int, n: Int): Double {
        if (n < 8) {
            var res = 0.0
            for (i in 0 until n) res += a[start + i]
            return res
        }
        if (n <= 128) {
            val r = DoubleArray(8) { a[start + it] }
            var i = 8
            while (i < n - (n % 8)) {
                for (j in 0 until 8) r[j] += a[start + i + j]
                i += 8
            }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while (i < n) {
                res += a[start + i]
                i++
            }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2)
    }

    /** Python's round(x, 6): half to even on the exact binary value, then the nearest double. */
    fun round6(x: Double): Double = round(x, 6)

    fun round(x: Double, digits: Int): Double =
        java.lang.Double.parseDouble(BigDecimal(x).setScale(digits, RoundingMode.HALF_EVEN).toString())
}
