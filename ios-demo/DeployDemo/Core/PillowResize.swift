import Foundation

/// Bilinear resize giving the same bytes as Pillow 13's `Image.resize(size, BILINEAR)` on RGB,
/// a line-by-line port of android-demo/core/.../PillowResize.kt (see there for the why).
enum PillowResize {
    private static let precisionBits = 32 - 8 - 2

    private struct Coefficients {
        var ksize = 0
        var xmin: [Int] = []
        var count: [Int] = []
        var weights: [Int32] = []

        init(inSize: Int, outSize: Int) {
            let scale = Double(inSize) / Double(outSize)
            let filterScale = scale < 1.0 ? 1.0 : scale
            let support = 1.0 * filterScale
            ksize = Int(support.rounded(.up)) * 2 + 1
            var kk = [Double](repeating: 0, count: outSize * ksize)
            let inv = 1.0 / filterScale
            xmin = [Int](repeating: 0, count: outSize)
            count = [Int](repeating: 0, count: outSize)
            for xx in 0..<outSize {
                let center = 0.0 + (Double(xx) + 0.5) * scale
                var ww = 0.0
                var lo = Int(center - support + 0.5)  // Int() truncates toward zero, like C
                if lo < 0 { lo = 0 }
                var hi = Int(center + support + 0.5)
                if hi > inSize { hi = inSize }
                hi -= lo
                for x in 0..<hi {
                    let t = abs((Double(x + lo) - center + 0.5) * inv)
                    let w = t < 1.0 ? 1.0 - t : 0.0
                    kk[xx * ksize + x] = w
                    ww += w
                }
                if ww != 0.0 { for x in 0..<hi { kk[xx * ksize + x] /= ww } }
                xmin[xx] = lo
                count[xx] = hi
            }
            let one = Double(1 << PillowResize.precisionBits)
            weights = kk.map { $0 < 0 ? Int32(-0.5 + $0 * one) : Int32(0.5 + $0 * one) }
        }
    }

    private static func clip8(_ v: Int32) -> UInt8 {
        let s = v >> Int32(precisionBits)
        return s < 0 ? 0 : (s > 255 ? 255 : UInt8(s))
    }

    static func resizeRGB(_ rgb: [UInt8], width: Int, height: Int, outWidth: Int, outHeight: Int) -> [UInt8] {
        precondition(rgb.count == width * height * 3)
        let needH = outWidth != width, needV = outHeight != height
        if !needH && !needV { return rgb }
        let horiz = Coefficients(inSize: width, outSize: outWidth)
        var vert = Coefficients(inSize: height, outSize: outHeight)
        let horizontalFirst = !((height - outHeight) > 0 && (height - outHeight) > (width - outWidth) * 2)
        if horizontalFirst {
            var image = rgb
            if needH {
                let first = vert.xmin[0]
                let last = vert.xmin[outHeight - 1] + vert.count[outHeight - 1]
                image = horizontal(image, srcWidth: width, firstRow: first, rows: last - first, horiz)
                for i in 0..<outHeight { vert.xmin[i] -= first }
            }
            return needV ? vertical(image, width: outWidth, vert, outHeight: outHeight) : image
        }
        var image = rgb
        if needV { image = vertical(image, width: width, vert, outHeight: outHeight) }
        if needH { image = horizontal(image, srcWidth: width, firstRow: 0, rows: outHeight, horiz) }
        return image
    }

    private static func horizontal(_ src: [UInt8], srcWidth: Int, firstRow: Int, rows: Int, _ c: Coefficients) -> [UInt8] {
        let outWidth = c.xmin.count
        var out = [UInt8](repeating: 0, count: outWidth * rows * 3)
        for y in 0..<rows {
            let row = (y + firstRow) * srcWidth * 3
            for xx in 0..<outWidth {
                var s0: Int32 = 1 << Int32(precisionBits - 1), s1 = s0, s2 = s0
                for x in 0..<c.count[xx] {
                    let p = row + (x + c.xmin[xx]) * 3, w = c.weights[xx * c.ksize + x]
                    s0 &+= Int32(src[p]) &* w; s1 &+= Int32(src[p + 1]) &* w; s2 &+= Int32(src[p + 2]) &* w
                }
                let o = (y * outWidth + xx) * 3
                out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
            }
        }
        return out
    }

    private static func vertical(_ src: [UInt8], width: Int, _ c: Coefficients, outHeight: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * outHeight * 3)
        for yy in 0..<outHeight {
            for xx in 0..<width {
                var s0: Int32 = 1 << Int32(precisionBits - 1), s1 = s0, s2 = s0
                for y in 0..<c.count[yy] {
                    let p = ((y + c.xmin[yy]) * width + xx) * 3, w = c.weights[yy * c.ksize + y]
                    s0 &+= Int32(src[p]) &* w; s1 &+= Int32(src[p + 1]) &* w; s2 &+= Int32(src[p + 2]) &* w
                }
                let o = (yy * width + xx) * 3
                out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2)
            }
        }
        return out
    }
}
