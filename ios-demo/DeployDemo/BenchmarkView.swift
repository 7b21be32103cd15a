import SwiftUI
import TensorFlowLite

/// Warm-up and timed inferences; writes the device-runner JSON record to Documents/benchmarks/
/// (visible in Finder and the Files app), for `deploy bench RUN_DIR --app-result FILE`.
struct BenchmarkView: View {
    let useCoreML: Bool
    @State private var threads = 1
    @State private var warmup = 10
    @State private var runs = 50
    @State private var output = ""

    var body: some View {
        Form {
            Stepper("Threads: \(threads)", value: $threads, in: 1...8).disabled(useCoreML)
            Stepper("Warm-up: \(warmup)", value: $warmup, in: 0...100, step: 5)
            Stepper("Timed runs: \(runs)", value: $runs, in: 10...1000, step: 10)
            Button("Run") { DispatchQueue.global(qos: .userInitiated).async { run() } }
            Text(output).font(.system(.footnote, design: .monospaced)).textSelection(.enabled)
        }
        .navigationTitle(useCoreML ? "Benchmark Core ML" : "Benchmark TFLite")
    }

    private func run() {
        do {
            let start = DispatchTime.now().uptimeNanoseconds
            let classifier: Classifier = useCoreML ? try CoreMLClassifier() : try TFLiteClassifier(threads: threads)
            let initMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
            let p = classifier.metadata.preprocessing
            var generator = SystemRandomNumberGenerator()
            try classifier.setInput((0..<(p.height * p.width * 3)).map { _ in Float.random(in: -1..<1, using: &generator) })
            let latencies = try Benchmark.measure(warmup: warmup, runs: runs) { try classifier.invoke() }
            let tflite = classifier as? TFLiteClassifier
            let record = BenchmarkRecord(
                artifact: useCoreML ? "\(classifier.metadata.id) (Core ML)" : classifier.metadata.id,
                runtime: useCoreML ? "coreml" : "tensorflowlite-swift",
                runtimeVersion: useCoreML ? UIDevice.current.systemVersion : TensorFlowLite.Runtime.version,
                delegate: useCoreML ? "coreml" : "xnnpack", threads: useCoreML ? 0 : threads, warmup: warmup,
                latencyMs: LatencyStats.summarize(latencies), initMs: tflite?.initMs ?? initMs, peakRssMb: peakRssMb(),
                cpu: .init(machine: machine(), model: machine(), count: ProcessInfo.processInfo.activeProcessorCount),
                input: .init(shape: [1, p.height, p.width, 3], dtype: tflite?.inputDtype ?? "float32"),
                device: "\(UIDevice.current.model) iOS \(UIDevice.current.systemVersion)", runId: UUID().uuidString
            )
            let dir = FileManager.default.urls(for: .documentDirectory, in: .userDomainMask)[0].appendingPathComponent("benchmarks")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let file = dir.appendingPathComponent("\(record.runId).json")
            let json = try record.json()
            try json.write(to: file, options: .atomic)
            DispatchQueue.main.async { output = "Written to Documents/benchmarks/\(file.lastPathComponent)\n\n" + String(decoding: json, as: UTF8.self) }
        } catch {
            DispatchQueue.main.async { output = "Benchmark failed: \(error)" }
        }
    }

    private func machine() -> String {
        var info = utsname()
        uname(&info)
        return withUnsafeBytes(of: &info.machine) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// Resident memory now (iOS exposes no peak for the process); in MB.
    private func peakRssMb() -> Double {
        var info = mach_task_basic_info()
        var count = mach_msg_type_number_t(MemoryLayout<mach_task_basic_info>.size / MemoryLayout<natural_t>.size)
        let ok = withUnsafeMutablePointer(to: &info) {
            $0.withMemoryRebound(to: integer_t.self, capacity: Int(count)) { task_info(mach_task_self_, task_flavor_t(MACH_TASK_BASIC_INFO), $0, &count) }
        }
        return ok == KERN_SUCCESS ? (Double(info.resident_size_max) / 1_048_576 * 100).rounded() / 100 : 0
    }
}
