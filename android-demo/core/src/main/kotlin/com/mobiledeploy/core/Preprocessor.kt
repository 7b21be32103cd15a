package com.mobiledeploy.core

/**
 * Image -> model input exactly as the pipeline computes it (pipeline/data.py, Preprocessing.apply):
 * Pillow-identical bilinear resize, channel reorder, then (pixel - mean) / std in float32.
 */
class Preprocessor(val spec: Preprocessing) {
    /** ARGB pixels of any size (Android Bitmap.getPixels) -> float32 NHWC input, batch 1. */
    fun fromArgb(argb: IntArray, width: Int, height: Int): FloatArray =
        fromRgb(PillowResize.argbToRgb(argb), width, height)

    /** RGB bytes of any size -> float32 NHWC input, batch 1 (1 channel: gray, then resized, as the pipeline does). */
    fun fromRgb(rgb: ByteArray, width: Int, height: Int): FloatArray {
        if (spec.channels == 1) {
            // Resize L replicated in 3 channels: Pillow resizes each channel alike, so any one is the resized L.
            val resized = PillowResize.resizeRgb(grayAsRgb(rgb), width, height, spec.width, spec.height)
            return normalizeGray(ByteArray(spec.width * spec.height) { resized[it * 3] })
        }
        return normalize(PillowResize.resizeRgb(rgb, width, height, spec.width, spec.height))
    }

    /** Gray bytes already at the model size -> float32 NHWC with 1 channel. */
    fun normalizeGray(gray: ByteArray): FloatArray {
        require(gray.size == spec.width * spec.height) { "expected ${spec.width}x${spec.height} gray bytes" }
        return FloatArray(gray.size) { ((gray[it].toInt() and 0xFF).toFloat() - spec.mean[0]) / spec.std[0] }
    }

    /** RGB bytes already at the model size -> float32 NHWC. */
    fun normalize(rgb: ByteArray): FloatArray {
        require(rgb.size == spec.width * spec.height * 3) { "expected ${spec.width}x${spec.height} RGB bytes" }
        val out = FloatArray(rgb.size)
        val bgr = spec.channelOrder == "BGR"
        var i = 0
        while (i < rgb.size) {
            for (c in 0 until 3) {
                val source = if (bgr) 2 - c else c
                // Float arithmetic, like numpy's float32 arrays: the same rounding, bit for bit.
                out[i + c] = ((rgb[i + source].toInt() and 0xFF).toFloat() - spec.mean[c]) / spec.std[c]
            }
            i += 3
        }
        return out
    }
}

/** Pillow's RGB -> "L": L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (ITU-R 601-2 luma, fixed point), in all 3 channels. */
fun grayAsRgb(rgb: ByteArray): ByteArray {
    val out = ByteArray(rgb.size)
    var i = 0
    while (i < rgb.size) {
        val l = ((rgb[i].toInt() and 0xFF) * 19595 + (rgb[i + 1].toInt() and 0xFF) * 38470 + (rgb[i + 2].toInt() and 0xFF) * 7471 + 0x8000) shr 16
        out[i] = l.toByte(); out[i + 1] = l.toByte(); out[i + 2] = l.toByte()
        i += 3
    }
    return out
}

/** Quantization of an int8/uint8 tensor: real = (q - zeroPoint) * scale. */
class Quantization(val scale: Float, val zeroPoint: Int) {
    /** float32 input -> int8 input, as pipeline/runtimes/litert.py does: round half to even, clamp. */
    fun quantizeInt8(x: FloatArray): ByteArray = ByteArray(x.size) {
        val q = Math.rint((x[it] / scale + zeroPoint.toFloat()).toDouble())
        Math.max(-128.0, Math.min(127.0, q)).toInt().toByte()
    }

    /** Raw int8 output -> float32 scores. */
    fun dequantizeInt8(raw: ByteArray): FloatArray = FloatArray(raw.size) {
        (raw[it].toFloat() - zeroPoint.toFloat()) * scale
    }
}
