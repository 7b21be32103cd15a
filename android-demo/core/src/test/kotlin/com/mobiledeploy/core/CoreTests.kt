package com.mobiledeploy.core

/** Unit tests of the core that need no golden data. */
object CoreTests {
    fun all(): List<Pair<String, () -> Unit>> = listOf(
        "json round trip keeps values, order and escapes" to ::jsonRoundTrip,
        "json errors name the offset" to ::jsonErrors,
        "metadata refuses what the app does not implement" to ::metadataRefusals,
        "top-k orders by score, ties by index" to ::topKOrder,
        "int8 quantize rounds half to even and clamps" to ::quantizeRounding,
        "percentile matches numpy on small arrays" to ::percentileSmall,
        "python round(x, 6) semantics" to ::roundHalfEven,
        "cpuinfo of a big.LITTLE phone" to ::cpuInfoArm,
        "VmHWM parsing" to ::peakRss,
        "benchmark times only the invoke, after warm-up" to ::benchmarkClock,
        "resize to the same size is a copy" to ::resizeIdentity
    )

    private fun jsonRoundTrip() {
        val text = Json.write(linkedMapOf("b" to 1, "a" to listOf(0.1, -2.5e-7, 3.0), "s" to "q\"\\\n\u0001", "n" to null, "t" to true))
        val parsed = Json.parse(text) as Map<*, *>
        checkEquals(listOf("b", "a", "s", "n", "t"), parsed.keys.toList(), "key order")
        checkEquals(1.0, parsed["b"], "int")
        checkEquals(listOf(0.1, -2.5e-7, 3.0), parsed["a"], "doubles")
        checkEquals("q\"\\\n\u0001", parsed["s"], "escapes")
        checkEquals(null, parsed["n"], "null")
        checkEquals(true, parsed["t"], "bool")
        checkEquals("\u00e9", Json.parse("\"\\u00e9\""), "unicode escape")
    }

    private fun jsonErrors() {
        checkThrows("missing value", "offset 5") { Json.parse("{\"a\":}") }
        checkThrows("trailing", "trailing") { Json.parse("[1] x") }
        checkThrows("nan", "no NaN") { Json.write(Double.NaN) }
    }

    private fun metadataRefusals() {
        val good = """{"id": "m_fp32", "labels": ["a", "b"], "io": {"input": "float32", "output": "float32"},
            "preprocessing": {"height": 2, "width": 3, "channel_order": "BGR", "mean": [1, 2, 3], "std": [4, 5, 6],
            "resize": "bilinear", "layout": "NHWC", "pixel_range": "0-255"}}"""
        val meta = ModelMetadata.parse(good)
        checkEquals("BGR", meta.preprocessing.channelOrder, "channel order")
        checkEquals(3, meta.preprocessing.width, "width")
        checkThrows("nearest resize", "'resize' is 'nearest'") { ModelMetadata.parse(good.replace("\"bilinear\"", "\"nearest\"")) }
        checkThrows("NCHW", "'layout'") { ModelMetadata.parse(good.replace("NHWC", "NCHW")) }
        checkThrows("channel order", "'channel_order'") { ModelMetadata.parse(good.replace("BGR", "GRB")) }
        checkThrows("two means", "'mean'") { ModelMetadata.parse(good.replace("[1, 2, 3]", "[1, 2]")) }
        checkThrows("no labels", "'labels'") { ModelMetadata.parse(good.replace("\"labels\"", "\"names\"")) }
        checkEquals(3, meta.preprocessing.channels, "channels default to 3 in older metadata")
        val gray = good.replace("\"mean\": [1, 2, 3], \"std\": [4, 5, 6]", "\"mean\": [0], \"std\": [255], \"channels\": 1")
        checkEquals(1, ModelMetadata.parse(gray).preprocessing.channels, "gray channels")
        checkThrows("gray with 3 means", "'mean' must be 1 numbers") { ModelMetadata.parse(gray.replace("[0]", "[0, 0, 0]")) }
        checkThrows("2 channels", "'channels' must be 1 or 3") { ModelMetadata.parse(gray.replace("\"channels\": 1", "\"channels\": 2")) }
        // Pillow's L of (200, 100, 50) is 124; normalized with mean 0, std 255 on a 1x1 image.
        val x = Preprocessor(Preprocessing(1, 1, "RGB", floatArrayOf(0f), floatArrayOf(255f), 1)).fromRgb(byteArrayOf(200.toByte(), 100, 50), 1, 1)
        checkEquals(listOf(124f / 255f), x.toList(), "gray pixel")
    }

    private fun topKOrder() {
        val top = TopK.topK(floatArrayOf(0.1f, 0.4f, 0.1f, 0.4f, 0.0f), listOf("a", "b", "c", "d", "e"), 3)
        checkEquals(listOf(1, 3, 0), top.map { it.index }, "indices")
        checkEquals(listOf("b", "d", "a"), top.map { it.label }, "labels")
        checkEquals(2, TopK.topK(floatArrayOf(1f, 2f), listOf("x", "y"), 3).size, "k larger than classes")
    }

    private fun quantizeRounding() {
        val q = Quantization(0.5f, -1)
        // 0.25/0.5 - 1 = -0.5 -> -0 (half to even); 0.75/0.5 - 1 = 0.5 -> 0; 1.25/0.5 - 1 = 1.5 -> 2
        checkEquals(listOf<Byte>(0, 0, 2, 127, -128), q.quantizeInt8(floatArrayOf(0.25f, 0.75f, 1.25f, 1000f, -1000f)).toList(), "quantized")
        checkEquals(listOf(0.5f, -63f), q.dequantizeInt8(byteArrayOf(0, -127)).toList(), "dequantized")
    }

    private fun percentileSmall() {
        // numpy.percentile([1, 2, 3, 4], [50, 90, 99]) == [2.5, 3.7, 3.97] (3.7 from the upper end)
        val sorted = doubleArrayOf(1.0, 2.0, 3.0, 4.0)
        checkEquals(2.5, LatencyStats.percentile(sorted, 50), "p50")
        checkEquals(3.7, LatencyStats.percentile(sorted, 90), "p90")
        checkEquals(3.9699999999999998, LatencyStats.percentile(sorted, 99), "p99")
        checkEquals(7.0, LatencyStats.percentile(doubleArrayOf(7.0), 99), "single value")
    }

    private fun roundHalfEven() {
        // Values as Python prints them: round(0.0000025, 6), round(0.0000035, 6), round(2.675, 2), round(0.125, 2)
        checkEquals(0.000003, LatencyStats.round6(0.0000025), "0.0000025 is 0.00000250000000000000002 in binary")
        checkEquals(0.000003, LatencyStats.round6(0.0000035), "0.0000035 is 0.00000349999999999999995 in binary")
        checkEquals(2.67, LatencyStats.round(2.675, 2), "2.675 is 2.67499999... in binary")
        checkEquals(0.12, LatencyStats.round(0.125, 2), "exact half goes to even")
        checkEquals(1.0, LatencyStats.round6(0.9999996), "carry")
    }

    private fun cpuInfoArm() {
        val text = "processor\t: 0\nCPU part\t: 0xd05\n\nprocessor\t: 1\nCPU part\t: 0xd05\nprocessor\t: 6\nCPU part\t: 0xd41\nHardware\t: Qualcomm Technologies, Inc SM8250\n"
        val cpu = CpuInfo.fromProcCpuinfo(text, "aarch64", 8)
        checkEquals("Hardware Qualcomm Technologies, Inc SM8250; CPU part 0xd05/0xd41", cpu.model, "model")
        checkEquals("Pixel", CpuInfo.fromProcCpuinfo("processor : 0\n", "aarch64", 1, "Pixel").model, "fallback")
    }

    private fun peakRss() {
        checkEquals(12.35, BenchmarkRecord.peakRssMb("Name:\tx\nVmHWM:\t   12646 kB\nVmRSS:\t 1 kB\n"), "VmHWM")
        checkEquals(null, BenchmarkRecord.peakRssMb("Name:\tx\n"), "absent")
    }

    private fun benchmarkClock() {
        var now = 0L
        var calls = 0
        val latencies = Benchmark(warmup = 3, runs = 4, clock = { now }).measure { calls++; now += calls * 1000L }
        checkEquals(7, calls, "invokes")
        checkEquals(listOf(4000L, 5000L, 6000L, 7000L), latencies.toList(), "latencies")
        checkThrows("no runs", "runs must be >= 1") { Benchmark(0, 0) }
    }

    private fun resizeIdentity() {
        val rgb = ByteArray(2 * 3 * 3) { it.toByte() }
        checkEquals(rgb.toList(), PillowResize.resizeRgb(rgb, 2, 3, 2, 3).toList(), "same size")
    }
}
