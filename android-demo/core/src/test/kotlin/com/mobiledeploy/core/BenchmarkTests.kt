package com.mobiledeploy.core

import java.io.File

/**
 * The app's benchmark code path, run for real on this JVM: Benchmark times a workload (here the
 * preprocessing of a golden image, since LiteRT for Android does not run on a desktop JVM),
 * LatencyStats summarizes, BenchmarkRecord writes the JSON that `deploy bench --app` ingests.
 */
class BenchmarkTests(private val golden: GoldenVectors, private val recordOut: File?) {
    fun all(): List<Pair<String, () -> Unit>> = listOf("benchmark record in the device runner format" to ::record)

    private fun record() {
        val case = golden.cases[0]
        val preprocessor = Preprocessor(golden.metadata.preprocessing)
        val initStart = System.nanoTime()
        val bench = Benchmark(warmup = 3, runs = 30)
        val initMs = (System.nanoTime() - initStart) / 1e6
        val latencies = bench.measure { preprocessor.fromRgb(case.rgb, case.width, case.height) }
        val summary = LatencyStats.summarize(latencies)
        check(summary.n == 30 && summary.p50 > 0.0 && summary.p50 <= summary.p99) { "implausible summary ${summary.toMap()}" }
        val cpuinfo = File("/proc/cpuinfo").let { if (it.exists()) it.readText() else "" }
        val status = File("/proc/self/status").let { if (it.exists()) it.readText() else "" }
        val p = golden.metadata.preprocessing
        val record = BenchmarkRecord(
            target = "android-app", artifact = golden.metadata.id, runtime = "kotlin-core-jvm",
            runtimeVersion = KotlinVersion.CURRENT.toString(), delegate = "none", threads = 1, warmup = bench.warmup,
            latency = summary, initMs = initMs, peakRssMb = BenchmarkRecord.peakRssMb(status) ?: 0.0,
            cpu = CpuInfo.fromProcCpuinfo(cpuinfo, System.getProperty("os.arch"), Runtime.getRuntime().availableProcessors()),
            inputShape = intArrayOf(1, p.height, p.width, 3), inputDtype = golden.metadata.inputType,
            device = "JVM ${System.getProperty("java.version")} (core test, not a phone)", runId = "core-test"
        )
        val parsed = Json.parse(record.toJson()) as Map<*, *>
        checkEquals(golden.metadata.id, parsed["artifact"], "artifact id")
        checkEquals(summary.p50, parsed.obj("latency_ms").number("p50"), "p50 survives JSON")
        recordOut?.writeText(record.toJson())
    }
}
