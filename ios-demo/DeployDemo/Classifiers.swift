import CoreML
import Foundation
import TensorFlowLite

/// Where the exported files are inside the app bundle (`deploy export ios` writes them).
enum ModelFiles {
    static let folder = Bundle.main.url(forResource: "Model", withExtension: nil)!
    static var tflite: URL { folder.appendingPathComponent("model.tflite") }
    static var metadata: URL { folder.appendingPathComponent("model.json") }
    static var coreML: URL { folder.appendingPathComponent("model.mlpackage") }
    static var hasCoreML: Bool { FileManager.default.fileExists(atPath: coreML.path) }
}

protocol Classifier {
    var name: String { get }
    var metadata: ModelMetadata { get }
    /// Feed one preprocessed float32 NHWC input.
    func setInput(_ x: [Float]) throws
    func invoke() throws
    func scores() throws -> [Float]
}

extension Classifier {
    func classify(rgb: [UInt8], width: Int, height: Int) throws -> (top: [Prediction], ms: Double) {
        try setInput(Preprocessor(spec: metadata.preprocessing).input(rgb: rgb, width: width, height: height))
        let start = DispatchTime.now().uptimeNanoseconds
        try invoke()
        let ms = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        return (TopK.topK(try scores(), labels: metadata.labels, k: 3), ms)
    }
}

/// The TFLite artifact in TensorFlowLiteSwift (XNNPACK on the CPU, as on Android and the host).
final class TFLiteClassifier: Classifier {
    let name = "TFLite (XNNPACK)"
    let metadata: ModelMetadata
    private let interpreter: Interpreter
    let initMs: Double

    init(threads: Int) throws {
        metadata = try ModelMetadata.load(ModelFiles.metadata)
        let start = DispatchTime.now().uptimeNanoseconds
        var options = Interpreter.Options()
        options.threadCount = threads
        options.isXNNPackEnabled = true
        interpreter = try Interpreter(modelPath: ModelFiles.tflite.path, options: options)
        try interpreter.allocateTensors()
        initMs = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
    }

    func setInput(_ x: [Float]) throws {
        let tensor = try interpreter.input(at: 0)
        if tensor.dataType == .int8, let q = tensor.quantizationParameters {
            let quantized = Quantization(scale: q.scale, zeroPoint: q.zeroPoint).quantizeInt8(x)
            try interpreter.copy(quantized.withUnsafeBufferPointer { Data(buffer: $0) }, toInputAt: 0)
        } else {
            try interpreter.copy(x.withUnsafeBufferPointer { Data(buffer: $0) }, toInputAt: 0)
        }
    }

    func invoke() throws { try interpreter.invoke() }

    func scores() throws -> [Float] {
        let out = try interpreter.output(at: 0)
        if out.dataType == .int8, let q = out.quantizationParameters {
            let raw = out.data.map { Int8(bitPattern: $0) }
            return Quantization(scale: q.scale, zeroPoint: q.zeroPoint).dequantizeInt8(raw)
        }
        return out.data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    var inputShape: [Int] { (try? interpreter.input(at: 0).shape.dimensions) ?? [] }
    var inputDtype: String { (try? interpreter.input(at: 0).dataType) == .int8 ? "int8" : "float32" }
}

/// The Core ML model (`deploy build --coreml`): same preprocessed input tensor, labels in the model.
final class CoreMLClassifier: Classifier {
    let name = "Core ML (all compute units)"
    let metadata: ModelMetadata
    private let model: MLModel
    private var input: MLMultiArray
    private var probabilities: [String: Double] = [:]

    init() throws {
        metadata = try ModelMetadata.load(ModelFiles.metadata)
        let compiled = try MLModel.compileModel(at: ModelFiles.coreML)
        model = try MLModel(contentsOf: compiled)
        let p = metadata.preprocessing
        input = try MLMultiArray(shape: [1, NSNumber(value: p.height), NSNumber(value: p.width), 3], dataType: .float32)
    }

    func setInput(_ x: [Float]) throws {
        let pointer = input.dataPointer.bindMemory(to: Float.self, capacity: x.count)
        for i in 0..<x.count { pointer[i] = x[i] }
    }

    func invoke() throws {
        let features = try MLDictionaryFeatureProvider(dictionary: ["input": input])
        let out = try model.prediction(from: features)
        probabilities = out.featureValue(for: "classLabel_probs")?.dictionaryValue as? [String: Double] ?? [:]
    }

    func scores() throws -> [Float] { metadata.labels.map { Float(probabilities[$0] ?? 0) } }
}
