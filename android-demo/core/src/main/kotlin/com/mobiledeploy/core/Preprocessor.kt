package com.mobiledeploy.core

/**
 * Image -> model input exactly as the pipeline computes it (pipeline/data.py, Preprocessing.apply):
 * Pillow-identical bilinear resize, channel reorder, then (pixel - mean) / std in float32.
 */
class Preprocessor(val spec: Preprocessing) {
    /** ARGB pixels of any size (Android Bitmap.getPixels) -> float32 NHWC input, batch 1. */
    fun fromArgb(argb: IntArray, width: Int, height: Int): FloatArray =
        fromRgb(PillowResize.argbToRgb(argb), width, height)

    /** RGB bytes of any size -> float32 NHWC input, batch 1. */
    fun fromRgb(rgb: ByteArray, width: Int, height: Int): FloatArray =
        normalize(PillowResize.resizeRgb(rgb, width, height, spec.width, spec.height))

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
