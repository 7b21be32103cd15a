import Foundation

/// The device runner's JSON record (pipeline/targets/device_runner.py) + target, artifact, run_id.
struct BenchmarkRecord: Encodable {
    struct Cpu: Encodable { let machine: String; let model: String?; let count: Int }
    struct Input: Encodable { let shape: [Int]; let dtype: String }

    var runnerVersion = 1
    var target = "ios-app"
    let artifact: String
    let runtime: String
    let runtimeVersion: String
    let delegate: String
    let threads: Int
    let warmup: Int
    let latencyMs: LatencySummary
    let initMs: Double
    let peakRssMb: Double
    let cpu: Cpu
    let input: Input
    let device: String
    let runId: String

    enum CodingKeys: String, CodingKey {
        case target, artifact, runtime, delegate, threads, warmup, cpu, input, device
        case runnerVersion = "runner_version", runtimeVersion = "runtime_version", latencyMs = "latency_ms"
        case initMs = "init_ms", peakRssMb = "peak_rss_mb", runId = "run_id"
    }

    func json() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(self)
    }
}

/// Warm-up, then timed runs; only the inference call is timed.
enum Benchmark {
    static func measure(warmup: Int, runs: Int, _ invoke: () throws -> Void) rethrows -> [UInt64] {
        for _ in 0..<warmup { try invoke() }
        return try (0..<runs).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            try invoke()
            return DispatchTime.now().uptimeNanoseconds - start
        }
    }
}
