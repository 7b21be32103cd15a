package com.mobiledeploy.core

/**
 * Bilinear resize that gives the same bytes as Pillow 13's `Image.resize(size, BILINEAR)` on RGB
 * images (src/libImaging/Resample.c), which is what the pipeline trains and verifies with.
 *
 * Pillow's bilinear is a convolution whose support widens with the downscale factor (it
 * antialiases), with coefficients in 22-bit fixed point and a pass order that depends on the
 * sizes; Android's Bitmap scaling and iOS's Core Graphics do neither, so their pixels differ.
 * Every double operation below is in the order Pillow's C code does it, so results are exact.
 */
object PillowResize {
    private const val PRECISION_BITS = 32 - 8 - 2

    /** RGB bytes (row-major, 3 per pixel) of size width x height -> RGB bytes of outWidth x outHeight. */
    fun resizeRgb(rgb: ByteArray, width: Int, height: Int, outWidth: Int, outHeight: Int): ByteArray {
        require(width > 0 && height > 0 && outWidth > 0 && outHeight > 0) { "image sizes must be positive" }
        require(rgb.size == width * height * 3) { "expected ${width * height * 3} RGB bytes, got ${rgb.size}" }
        val needHorizontal = outWidth != width
        val needVertical = outHeight != height
        if (!needHorizontal && !needVertical) return rgb.copyOf()
        val horiz = Coefficients(width, outWidth)
        val vert = Coefficients(height, outHeight)
        // Pillow runs the vertical pass first when the height shrinks more than twice the width.
        val horizontalFirst = !((height - outHeight) > 0 && (height - outHeight) > (width - outWidth) * 2)
        if (horizontalFirst) {
            var image = rgb
            if (needHorizontal) {
                // Only the source rows the vertical pass will read are resampled.
                val first = vert.xmin[0]
                val last = vert.xmin[outHeight - 1] + vert.count[outHeight - 1]
                image = horizontalPass(image, width, first, last - first, horiz)
                for (i in 0 until outHeight) vert.xmin[i] -= first
            }
            return if (needVertical) verticalPass(image, outWidth, vert, outHeight) else image
        }
        var image = rgb
        if (needVertical) image = verticalPass(image, width, vert, outHeight)
        if (needHorizontal) image = horizontalPass(image, width, 0, outHeight, horiz)
        return image
    }

    /** ARGB pixels (Android Bitmap.getPixels order) -> RGB bytes. */
    fun argbToRgb(argb: IntArray): ByteArray {
        val rgb = ByteArray(argb.size * 3)
        for (i in argb.indices) {
            val p = argb[i]
            rgb[i * 3] = (p shr 16 and 0xFF).toByte()
            rgb[i * 3 + 1] = (p shr 8 and 0xFF).toByte()
            rgb[i * 3 + 2] = (p and 0xFF).toByte()
        }
        return rgb
    }

    /** Per output position: first source index, how many sources, and fixed-point weights. */
    private class Coefficients(inSize: Int, outSize: Int) {
        val ksize: Int
        val xmin = IntArray(outSize)
        val count = IntArray(outSize)
        val weights: IntArray

        init {
            val scale = inSize.toDouble() / outSize
            val filterScale = if (scale < 1.0) 1.0 else scale
            val support = 1.0 * filterScale
            ksize = Math.ceil(support).toInt() * 2 + 1
            val kk = DoubleArray(outSize * ksize)
            val invFilterScale = 1.0 / filterScale
            for (xx in 0 until outSize) {
                val center = 0.0 + (xx + 0.5) * scale
                var ww = 0.0
                var lo = (center - support + 0.5).toInt()
                if (lo < 0) lo = 0
                var hi = (center + support + 0.5).toInt()
                if (hi > inSize) hi = inSize
                hi -= lo
                for (x in 0 until hi) {
                    val w = bilinear(((x + lo).toDouble() - center + 0.5) * invFilterScale)
                    kk[xx * ksize + x] = w
                    ww += w
                }
                if (ww != 0.0) {
                    for (x in 0 until hi) kk[xx * ksize + x] /= ww
                }
                xmin[xx] = lo
                count[xx] = hi
            }
            weights = IntArray(kk.size) {
                val k = kk[it]
                if (k < 0) (-0.5 + k * (1 shl PRECISION_BITS)).toInt() else (0.5 + k * (1 shl PRECISION_BITS)).toInt()
            }
        }

        private fun bilinear(x: Double): Double {
            val a = if (x < 0.0) -x else x
            return if (a < 1.0) 1.0 - a else 0.0
        }
    }

    private fun clip8(value: Int): Int {
        val v = value shr PRECISION_BITS
        return if (v < 0) 0 else if (v > 255) 255 else v
    }

    private fun horizontalPass(src: ByteArray, srcWidth: Int, firstRow: Int, rows: Int, c: Coefficients): ByteArray {
        val outWidth = c.xmin.size
        val out = ByteArray(outWidth * rows * 3)
        for (y in 0 until rows) {
            val rowStart = (y + firstRow) * srcWidth * 3
            for (xx in 0 until outWidth) {
                var s0 = 1 shl (PRECISION_BITS - 1)
                var s1 = s0
                var s2 = s0
                val k = xx * c.ksize
                for (x in 0 until c.count[xx]) {
                    val p = rowStart + (x + c.xmin[xx]) * 3
                    val w = c.weights[k + x]
                    s0 += (src[p].toInt() and 0xFF) * w
                    s1 += (src[p + 1].toInt() and 0xFF) * w
                    s2 += (src[p + 2].toInt() and 0xFF) * w
                }
                val o = (y * outWidth + xx) * 3
                out[o] = clip8(s0).toByte()
                out[o + 1] = clip8(s1).toByte()
                out[o + 2] = clip8(s2).toByte()
            }
        }
        return out
    }

    private fun verticalPass(src: ByteArray, width: Int, c: Coefficients, outHeight: Int): ByteArray {
        val out = ByteArray(width * outHeight * 3)
        for (yy in 0 until outHeight) {
            val k = yy * c.ksize
            for (xx in 0 until width) {
                var s0 = 1 shl (PRECISION_BITS - 1)
                var s1 = s0
                var s2 = s0
                for (y in 0 until c.count[yy]) {
                    val p = ((y + c.xmin[yy]) * width + xx) * 3
                    val w = c.weights[k + y]
                    s0 += (src[p].toInt() and 0xFF) * w
                    s1 += (src[p + 1].toInt() and 0xFF) * w
                    s2 += (src[p + 2].toInt() and 0xFF) * w
                }
                val o = (yy * width + xx) * 3
                out[o] = clip8(s0).toByte()
                out[o + 1] = clip8(s1).toByte()
                out[o + 2] = clip8(s2).toByte()
            }
        }
        return out
    }
}
