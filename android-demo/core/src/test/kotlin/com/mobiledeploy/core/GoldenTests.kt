package com.mobiledeploy.core

/** The pipeline's golden vectors, reproduced bit for bit. */
class GoldenTests(private val golden: GoldenVectors) {
    fun all(): List<Pair<String, () -> Unit>> {
        val tests = ArrayList<Pair<String, () -> Unit>>()
        check(golden.cases.isNotEmpty()) { "golden.json has no cases" }
        for (case in golden.cases) {
            tests.add("golden ${case.name}: preprocessing (${case.width}x${case.height} -> model input)" to { preprocessing(case) })
            if (case.expectedQuantizedInput != null) tests.add("golden ${case.name}: int8 input quantization" to { quantizedInput(case) })
            tests.add("golden ${case.name}: LiteRT output -> scores -> top-${golden.topK}" to { topK(case) })
        }
        tests.add("golden latency summary equals device_runner.summarize" to ::latency)
        return tests
    }

    private fun preprocessing(case: GoldenCase) {
        val actual = Preprocessor(golden.metadata.preprocessing).fromRgb(case.rgb, case.width, case.height)
        checkBits(case.expectedInput, actual, "preprocessed tensor")
    }

    private fun quantizedInput(case: GoldenCase) {
        val q = case.inputQuantization ?: throw TestFailure("int8 input without quantization parameters")
        val x = Preprocessor(golden.metadata.preprocessing).fromRgb(case.rgb, case.width, case.height)
        checkEquals(case.expectedQuantizedInput!!.toList(), q.quantizeInt8(x).toList(), "int8 input")
    }

    private fun topK(case: GoldenCase) {
        val scores = when (case.outputDtype) {
            "float32" -> GoldenVectors.floats(case.rawOutput)
            "int8" -> (case.outputQuantization ?: throw TestFailure("int8 output without quantization")).dequantizeInt8(case.rawOutput)
            else -> throw TestFailure("unsupported output dtype ${case.outputDtype}")
        }
        checkBits(case.expectedScores, scores, "scores")
        val top = TopK.topK(scores, golden.metadata.labels, golden.topK)
        checkEquals(case.expectedTopK.map { it.first }, top.map { it.index }, "top-k indices")
        checkEquals(case.expectedTopK.map { it.second }, top.map { it.label }, "top-k labels")
        checkEquals(case.expectedTopK.map { java.lang.Float.floatToRawIntBits(it.third) }, top.map { java.lang.Float.floatToRawIntBits(it.score) }, "top-k score bits")
    }

    private fun latency() {
        val s = LatencyStats.summarize(golden.latencyNs)
        val e = golden.latencySummary
        for ((key, actual) in listOf("p50" to s.p50, "p90" to s.p90, "p99" to s.p99, "mean" to s.mean, "std" to s.std)) {
            checkEquals(e.number(key), actual, "latency $key")
        }
        checkEquals(e.int("n"), s.n, "latency n")
    }

    private fun checkBits(expected: FloatArray, actual: FloatArray, what: String) {
        checkEquals(expected.size, actual.size, "$what size")
        for (i in expected.indices) {
            if (java.lang.Float.floatToRawIntBits(expected[i]) != java.lang.Float.floatToRawIntBits(actual[i])) {
                throw TestFailure("$what differs at index $i (of ${expected.size}): expected ${expected[i]}, got ${actual[i]}")
            }
        }
    }
}
