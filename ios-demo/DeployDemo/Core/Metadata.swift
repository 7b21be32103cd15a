import Foundation

/// The metadata JSON beside every artifact (see pipeline/data.py `Preprocessing`).
struct Preprocessing: Decodable {
    let height: Int
    let width: Int
    let channelOrder: String
    let mean: [Double]
    let std: [Double]
    let resize: String
    let layout: String
    let pixelRange: String
    /// 1: gray (Pillow's "L" of the RGB image, then resized); absent in metadata older than grayscale support.
    let channels: Int?

    var channelCount: Int { channels ?? 3 }

    enum CodingKeys: String, CodingKey {
        case height, width, mean, std, resize, layout, channels
        case channelOrder = "channel_order"
        case pixelRange = "pixel_range"
    }

    /// Refuse what this code does not implement instead of approximating it.
    func validated() throws -> Preprocessing {
        guard resize == "bilinear", layout == "NHWC", pixelRange == "0-255",
              channelOrder == "RGB" || channelOrder == "BGR", channelCount == 1 || channelCount == 3,
              mean.count == channelCount, std.count == channelCount else {
            throw MetadataError.unsupported("\(resize)/\(layout)/\(pixelRange)/\(channelOrder)")
        }
        return self
    }
}

struct ModelMetadata: Decodable {
    let id: String
    let labels: [String]
    let preprocessing: Preprocessing
    let io: [String: String]

    static func load(_ url: URL) throws -> ModelMetadata {
        let m = try JSONDecoder().decode(ModelMetadata.self, from: Data(contentsOf: url))
        _ = try m.preprocessing.validated()
        return m
    }
}

enum MetadataError: Error {
    case unsupported(String)
}
