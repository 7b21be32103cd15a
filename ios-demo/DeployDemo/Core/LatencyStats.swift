import Foundation

/// device_runner.summarize, operation for operation (port of the Android core's LatencyStats).
struct LatencySummary: Codable, Equatable {
    let p50: Double, p90: Double, p99: Double, mean: Double, std: Double, n: Int
}

enum LatencyStats {
    static func summarize(_ latenciesNs: [UInt64]) -> LatencySummary {
        let ms = latenciesNs.map { Double($0) / 1e6 }
        let sorted = ms.sorted()
        let n = ms.count
        let mean = pairwiseSum(ms[...]) / Double(n)
        let std = n > 1 ? (pairwiseSum(ms.map { ($0 - mean) * ($0 - mean) }[...]) / Double(n - 1)).squareRoot() : 0.0
        return LatencySummary(p50: round6(percentile(sorted, 50)), p90: round6(percentile(sorted, 90)),
                              p99: round6(percentile(sorted, 99)), mean: round6(mean), std: round6(std), n: n)
    }

    static func percentile(_ sorted: [Double], _ q: Int) -> Double {
        let n = sorted.count
        let virtual = Double(n - 1) * (Double(q) / 100.0)
        if virtual >= Double(n - 1) { return sorted[n - 1] }
        let previous = virtual.rounded(.down)
        let gamma = virtual - previous
        let a = sorted[Int(previous)], b = sorted[Int(previous) + 1], diff = b - a
        return gamma >= 0.5 ? b - diff * (1 - gamma) : a + diff * gamma
    }

    static func pairwiseSum(_ a: ArraySlice<Double>) -> Double {
        let n = a.count, s = a.startIndex
        if n < 8 { return a.reduce(0.0, +) }
        if n <= 128 {
            var r = (0..<8).map { a[s + $0] }
            var i = 8
            while i < n - (n % 8) { for j in 0..<8 { r[j] += a[s + i + j] }; i += 8 }
            var res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
            while i < n { res += a[s + i]; i += 1 }
            return res
        }
        var n2 = n / 2
        n2 -= n2 % 8
        return pairwiseSum(a[s..<(s + n2)]) + pairwiseSum(a[(s + n2)...])
    }

    /// Python's round(x, 6), then the nearest double. A double is never exactly halfway at the
    /// 6th decimal (that would need a factor 5^7 in a power of two), and Decimal's 38 digits
    /// decide the side for any latency below 10^6 ms.
    static func round6(_ x: Double) -> Double {
        var exact = Decimal(string: String(format: "%.40f", x))!, rounded = Decimal()
        NSDecimalRound(&rounded, &exact, 6, .bankers)
        return Double(NSDecimalNumber(decimal: rounded).stringValue)!
    }
}
