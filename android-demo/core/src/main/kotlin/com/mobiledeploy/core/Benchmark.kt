package com.mobiledeploy.core

/**
 * Warm-up, then timed runs, timing only the inference call, as the device runner does.
 * The clock is a parameter so tests can drive it; apps use System.nanoTime.
 */
class Benchmark(val warmup: Int, val runs: Int, private val clock: () -> Long = { System.nanoTime() }) {
    init {
        require(warmup >= 0) { "warmup must be >= 0, got $warmup" }
        require(runs >= 1) { "runs must be >= 1, got $runs" }
    }

    fun measure(invoke: () -> Unit): LongArray {
        for (i in 0 until warmup) invoke()
        val latencies = LongArray(runs)
        for (i in 0 until runs) {
            val start = clock()
            invoke()
            latencies[i] = clock() - start
        }
        return latencies
    }
}

/** The CPU fields of the device runner's record, parsed the same way from /proc/cpuinfo. */
class CpuInfo(val machine: String, val model: String?, val count: Int) {
    fun toMap(): Map<String, Any?> = linkedMapOf("machine" to machine, "model" to model, "count" to count)

    companion object {
        /** device_runner.cpu_info: "model name", else "Hardware" and the distinct "CPU part"s (big.LITTLE). */
        fun fromProcCpuinfo(text: String, machine: String, count: Int, fallbackModel: String? = null): CpuInfo {
            val fields = LinkedHashMap<String, MutableList<String>>()
            for (line in text.lines()) {
                val sep = line.indexOf(':')
                if (sep < 0) continue
                val key = line.substring(0, sep).trim()
                val value = line.substring(sep + 1).trim()
                if (value.length == 0) continue
                val values = fields.getOrPut(key) { ArrayList() }
                if (value !in values) values.add(value)
            }
            val parts = ArrayList<String>()
            fields["model name"]?.let { parts.add(it[0]) }
            fields["Hardware"]?.let { parts.add("Hardware ${it[0]}") }
            fields["CPU part"]?.let { parts.add("CPU part " + it.joinToString("/")) }
            val model = if (parts.isEmpty()) fallbackModel else parts.joinToString("; ")
            return CpuInfo(machine, model, count)
        }
    }
}

/**
 * One benchmark result in the device runner's JSON record format (pipeline/targets/device_runner.py)
 * plus the fields `deploy bench --app` needs: target, artifact id and the run id it asked for.
 */
class BenchmarkRecord(
    val target: String,
    val artifact: String,
    val runtime: String,
    val runtimeVersion: String,
    val delegate: String,
    val threads: Int,
    val warmup: Int,
    val latency: LatencySummary,
    val initMs: Double,
    val peakRssMb: Double,
    val cpu: CpuInfo,
    val inputShape: IntArray,
    val inputDtype: String,
    val device: String,
    val runId: String?
) {
    fun toMap(): Map<String, Any?> = linkedMapOf(
        "runner_version" to RUNNER_VERSION,
        "target" to target,
        "artifact" to artifact,
        "runtime" to runtime,
        "runtime_version" to runtimeVersion,
        "delegate" to delegate,
        "threads" to threads,
        "warmup" to warmup,
        "latency_ms" to latency.toMap(),
        "init_ms" to LatencyStats.round6(initMs),
        "peak_rss_mb" to peakRssMb,
        "cpu" to cpu.toMap(),
        "input" to linkedMapOf("shape" to inputShape.toList(), "dtype" to inputDtype),
        "device" to device,
        "run_id" to runId
    )

    fun toJson(): String = Json.write(toMap())

    companion object {
        const val RUNNER_VERSION = 1

        /** VmHWM from /proc/self/status in MB, rounded to 2 decimals like the runner; null if absent. */
        fun peakRssMb(procSelfStatus: String): Double? {
            for (line in procSelfStatus.lines()) {
                if (line.startsWith("VmHWM:")) {
                    val kb = line.substring(6).trim().split(Regex("\\s+"))[0].toLongOrNull() ?: return null
                    return LatencyStats.round(kb / 1024.0, 2)
                }
            }
            return null
        }
    }
}
