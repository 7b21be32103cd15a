import XCTest
@testable import DeployDemo

/// The Swift core against the pipeline's golden vectors (exported into Model/golden by
/// `deploy export ios`), bit for bit, like android-demo/core's tests. Runs on a Mac (Xcode).
final class GoldenTests: XCTestCase {
    struct Index: Decodable {
        struct Case: Decodable {
            struct Input: Decodable { let float32: String; let int8: String?; let quantization: Q? }
            struct Output: Decodable { let dtype: String; let raw: String; let scores_float32: String; let quantization: Q? }
            struct Top: Decodable { let index: Int; let label: String; let score: Double }
            let name: String; let width: Int; let height: Int; let image_rgb: String
            let input: Input; let output: Output; let top_k: [Top]
        }
        struct Q: Decodable { let scale: Double; let zero_point: Int }
        struct Latency: Decodable { let ns: [UInt64]; let summary: LatencySummary }
        let metadata: String; let top_k: Int; let cases: [Case]; let latency: Latency
    }

    private let golden = Bundle(for: GoldenTests.self).url(forResource: "Model", withExtension: nil)
        ?? Bundle.main.url(forResource: "Model", withExtension: nil)!

    private func load() throws -> (Index, ModelMetadata, URL) {
        let dir = golden.appendingPathComponent("golden")
        let index = try JSONDecoder().decode(Index.self, from: Data(contentsOf: dir.appendingPathComponent("golden.json")))
        return (index, try ModelMetadata.load(dir.appendingPathComponent(index.metadata)), dir)
    }

    private func floats(_ url: URL) throws -> [Float] {
        try Data(contentsOf: url).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }  // little-endian on Apple CPUs
    }

    func testPreprocessingQuantizationAndTopK() throws {
        let (index, metadata, dir) = try load()
        XCTAssertFalse(index.cases.isEmpty)
        for c in index.cases {
            let rgb = [UInt8](try Data(contentsOf: dir.appendingPathComponent(c.image_rgb)))
            let x = Preprocessor(spec: metadata.preprocessing).input(rgb: rgb, width: c.width, height: c.height)
            let expected = try floats(dir.appendingPathComponent(c.input.float32))
            XCTAssertEqual(x.map(\.bitPattern), expected.map(\.bitPattern), "\(c.name): preprocessed tensor")
            if let file = c.input.int8, let q = c.input.quantization {
                let quantized = Quantization(scale: Float(q.scale), zeroPoint: q.zero_point).quantizeInt8(x)
                XCTAssertEqual(quantized.map { UInt8(bitPattern: $0) }, [UInt8](try Data(contentsOf: dir.appendingPathComponent(file))), "\(c.name): int8 input")
            }
            let raw = try Data(contentsOf: dir.appendingPathComponent(c.output.raw))
            let scores = c.output.dtype == "int8"
                ? Quantization(scale: Float(c.output.quantization!.scale), zeroPoint: c.output.quantization!.zero_point).dequantizeInt8(raw.map { Int8(bitPattern: $0) })
                : raw.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            XCTAssertEqual(scores.map(\.bitPattern), try floats(dir.appendingPathComponent(c.output.scores_float32)).map(\.bitPattern), "\(c.name): scores")
            let top = TopK.topK(scores, labels: metadata.labels, k: index.top_k)
            XCTAssertEqual(top.map(\.index), c.top_k.map(\.index), "\(c.name): top-k")
            XCTAssertEqual(top.map { $0.score.bitPattern }, c.top_k.map { Float($0.score).bitPattern }, "\(c.name): top-k scores")
        }
    }

    func testLatencySummaryEqualsDeviceRunner() throws {
        let (index, _, _) = try load()
        XCTAssertEqual(LatencyStats.summarize(index.latency.ns), index.latency.summary)
    }

    /// The exported TFLite model itself on this device: top-1 must match LiteRT's on the host.
    func testTFLiteTop1MatchesTheHost() throws {
        let (index, metadata, dir) = try load()
        let classifier = try TFLiteClassifier(threads: 1)
        for c in index.cases {
            let rgb = [UInt8](try Data(contentsOf: dir.appendingPathComponent(c.image_rgb)))
            let result = try classifier.classify(rgb: rgb, width: c.width, height: c.height)
            XCTAssertEqual(result.top.first?.index, c.top_k.first?.index, "\(c.name) with \(metadata.id)")
        }
    }
}
