import Foundation

/// Image -> model input exactly as the pipeline computes it (port of the Android core's Preprocessor).
struct Preprocessor {
    let spec: Preprocessing

    func input(rgb: [UInt8], width: Int, height: Int) -> [Float] {
        if spec.channelCount == 1 {
            // Gray in all 3 channels, resized: Pillow resizes each channel alike, so channel 0 is the resized L.
            let resized = PillowResize.resizeRGB(Preprocessor.grayAsRGB(rgb), width: width, height: height,
                                                 outWidth: spec.width, outHeight: spec.height)
            let mean = Float(spec.mean[0]), std = Float(spec.std[0])
            return stride(from: 0, to: resized.count, by: 3).map { (Float(resized[$0]) - mean) / std }
        }
        return normalize(PillowResize.resizeRGB(rgb, width: width, height: height, outWidth: spec.width, outHeight: spec.height))
    }

    /// Pillow's RGB -> "L" (ITU-R 601-2 luma in fixed point), written into all 3 channels.
    static func grayAsRGB(_ rgb: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rgb.count)
        for i in stride(from: 0, to: rgb.count, by: 3) {
            let l = UInt8((Int(rgb[i]) * 19595 + Int(rgb[i + 1]) * 38470 + Int(rgb[i + 2]) * 7471 + 0x8000) >> 16)
            out[i] = l; out[i + 1] = l; out[i + 2] = l
        }
        return out
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
