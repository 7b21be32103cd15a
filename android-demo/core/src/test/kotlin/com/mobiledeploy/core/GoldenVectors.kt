package com.mobiledeploy.core

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/** One golden case: an image, the tensor the pipeline fed LiteRT, LiteRT's raw output, its top-k. */
class GoldenCase(
    val name: String,
    val width: Int,
    val height: Int,
    val rgb: ByteArray,
    val expectedInput: FloatArray,
    val expectedQuantizedInput: ByteArray?,
    val inputQuantization: Quantization?,
    val rawOutput: ByteArray,
    val outputDtype: String,
    val outputQuantization: Quantization?,
    val expectedScores: FloatArray,
    val expectedTopK: List<Triple<Int, String, Float>>
)

/** The folder pipeline/golden.py writes: golden.json plus little-endian binary tensors. */
class GoldenVectors(
    val metadata: ModelMetadata,
    val cases: List<GoldenCase>,
    val topK: Int,
    val latencyNs: LongArray,
    val latencySummary: Map<*, *>
) {
    companion object {
        fun load(dir: File): GoldenVectors {
            val index = Json.parse(File(dir, "golden.json").readText()) as Map<*, *>
            val metadata = ModelMetadata.parse(File(dir, index.string("metadata")).readText())
            val cases = index.list("cases").map { loadCase(dir, it as Map<*, *>) }
            val latency = index.obj("latency")
            val ns = latency.list("ns").map { (it as Double).toLong() }.toLongArray()
            return GoldenVectors(metadata, cases, index.int("top_k"), ns, latency.obj("summary"))
        }

        private fun loadCase(dir: File, c: Map<*, *>): GoldenCase {
            val input = c.obj("input")
            val output = c.obj("output")
            return GoldenCase(
                c.string("name"), c.int("width"), c.int("height"),
                File(dir, c.string("image_rgb")).readBytes(),
                floats(File(dir, input.string("float32")).readBytes()),
                (input["int8"] as? String)?.let { File(dir, it).readBytes() },
                (input["quantization"] as? Map<*, *>)?.let(::quantization),
                File(dir, output.string("raw")).readBytes(),
                output.string("dtype"),
                (output["quantization"] as? Map<*, *>)?.let(::quantization),
                floats(File(dir, output.string("scores_float32")).readBytes()),
                c.list("top_k").map {
                    val p = it as Map<*, *>
                    Triple(p.int("index"), p.string("label"), p.number("score").toFloat())
                }
            )
        }

        private fun quantization(q: Map<*, *>) = Quantization(q.number("scale").toFloat(), q.int("zero_point"))

        fun floats(bytes: ByteArray): FloatArray {
            val buffer = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer()
            return FloatArray(buffer.remaining()).also { buffer.get(it) }
        }
    }
}
