import Foundation

/// Image -> model input exactly as the pipeline computes it (port of the Android core's Preprocessor).
struct Preprocessor {
    let spec: Preprocessing

    func input(rgb: [UInt8], width: Int, height: Int) -> [Float] {
        normalize(PillowResize.resizeRGB(rgb, width: width, height: height, outWidth: spec.width, outHeight: spec.height))
    }

    func normalize(_ rgb: [UInt8]) -> [Float] {
        let mean = spec.mean.map { Float($0) }, std = spec.std.map { Float($0) }  // float32, as numpy
        let bgr = spec.channelOrder == "BGR"
        var out = [Float](repeating: 0, count: rgb.count)
        for i in stride(from: 0, to: rgb.count, by: 3) {
            for c in 0..<3 {
                out[i + c] = (Float(rgb[i + (bgr ? 2 - c : c)]) - mean[c]) / std[c]
            }
        }
        return out
    }
}

struct Quantization {
    let scale: Float
    let zeroPoint: Int

    func quantizeInt8(_ x: [Float]) -> [Int8] {
        x.map { v in
            let q = (v / scale + Float(zeroPoint)).rounded(.toNearestOrEven)
            return Int8(max(-128, min(127, q)))
        }
    }

    func dequantizeInt8(_ raw: [Int8]) -> [Float] { raw.map { (Float($0) - Float(zeroPoint)) * scale } }
}

struct Prediction {
    let index: Int
    let label: String
    let score: Float
}

enum TopK {
    /// Highest first; equal scores keep the lower index first (as the pipeline and the Android app).
    static func topK(_ scores: [Float], labels: [String], k: Int) -> [Prediction] {
        let order = scores.indices.sorted { a, b in scores[a] != scores[b] ? scores[a] > scores[b] : a < b }
        return order.prefix(k).map { Prediction(index: $0, label: labels[$0], score: scores[$0]) }
    }
}
