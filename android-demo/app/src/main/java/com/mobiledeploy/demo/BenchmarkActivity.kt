package com.mobiledeploy.demo

import android.os.Build
import android.os.Bundle
import android.util.Log
import android.widget.TextView
import androidx.appcompat.app.AppCompatActivity
import com.mobiledeploy.core.Benchmark
import com.mobiledeploy.core.BenchmarkRecord
import com.mobiledeploy.core.CpuInfo
import com.mobiledeploy.core.LatencyStats
import org.tensorflow.lite.TensorFlowLite
import java.io.File
import java.util.Random
import java.util.UUID
import kotlin.concurrent.thread

/**
 * Warm-up, then timed inferences of the exported model; writes one record in the device runner's
 * JSON format to <external files>/benchmarks/<run_id>.json, which `deploy bench --target adb --app`
 * reads over adb. Extras (all optional): threads, warmup, runs, gpu, run_id.
 */
class BenchmarkActivity : AppCompatActivity() {
    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val text = TextView(this).apply { setPadding(24, 24, 24, 24); textSize = 14f }
        setContentView(text)
        val threads = intent.getIntExtra("threads", 1)
        val warmup = intent.getIntExtra("warmup", 10)
        val runs = intent.getIntExtra("runs", 50)
        val gpu = intent.getBooleanExtra("gpu", false)
        val runId = intent.getStringExtra("run_id") ?: UUID.randomUUID().toString()
        text.text = "Benchmarking: $warmup warm-up + $runs timed runs, $threads thread(s)${if (gpu) ", GPU" else ""}..."
        thread(name = "benchmark") {
            val json = try {
                measure(threads, warmup, runs, gpu, runId).toJson()
            } catch (e: Exception) {
                Log.e(MainActivity.TAG, "benchmark failed", e)
                "{\"run_id\": \"$runId\", \"error\": \"${e.javaClass.simpleName}: ${e.message?.replace("\"", "'")}\"}\n"
            }
            val file = write(runId, json)
            runOnUiThread { text.text = "Written to ${file.path}\n\n$json" }
        }
    }

    private fun measure(threads: Int, warmup: Int, runs: Int, gpu: Boolean, runId: String): BenchmarkRecord {
        clearLog()
        Classifier(this, threads, gpu).use { c ->
            // Random input over the input's range, as the device runner uses: latency does not depend on it.
            val random = Random(0)
            c.setInput(FloatArray(c.inputShape.fold(1) { a, b -> a * b }) { random.nextFloat() * 2f - 1f })
            val bench = Benchmark(warmup, runs)
            val summary = LatencyStats.summarize(bench.measure { c.invoke() })
            val delegate = when {
                c.usesGpu -> "gpu"
                xnnpackLogged() -> "xnnpack"
                else -> "none"
            }
            return BenchmarkRecord(
                target = "android-app", artifact = c.metadata.id, runtime = "litert",
                runtimeVersion = TensorFlowLite.runtimeVersion(), delegate = delegate, threads = threads,
                warmup = warmup, latency = summary, initMs = c.initMs,
                peakRssMb = BenchmarkRecord.peakRssMb(File("/proc/self/status").readText()) ?: 0.0,
                cpu = CpuInfo.fromProcCpuinfo(
                    File("/proc/cpuinfo").readText(), System.getProperty("os.arch") ?: Build.SUPPORTED_ABIS[0],
                    Runtime.getRuntime().availableProcessors(), Build.HARDWARE
                ),
                inputShape = c.inputShape, inputDtype = c.inputDtype,
                device = "${Build.MANUFACTURER} ${Build.MODEL} (Android ${Build.VERSION.RELEASE}, API ${Build.VERSION.SDK_INT})",
                runId = runId
            )
        }
    }

    /** Atomic: write a temporary file, then rename, so adb never reads half a record. */
    private fun write(runId: String, json: String): File {
        val dir = File(getExternalFilesDir(null), "benchmarks").apply { mkdirs() }
        val tmp = File(dir, ".$runId.json.tmp")
        tmp.writeText(json)
        val file = File(dir, "$runId.json")
        check(tmp.renameTo(file)) { "cannot rename $tmp" }
        return file
    }

    // LiteRT says it applied XNNPACK only in its log, as on the host; an app may read its own logcat.
    private fun clearLog() {
        runCatching { Runtime.getRuntime().exec(arrayOf("logcat", "-c")).waitFor() }
    }

    private fun xnnpackLogged(): Boolean = runCatching {
        val proc = Runtime.getRuntime().exec(arrayOf("logcat", "-d", "-v", "raw", "--pid=${android.os.Process.myPid()}"))
        proc.inputStream.bufferedReader().use { it.readText() }.contains("Created TensorFlow Lite XNNPACK delegate")
    }.getOrDefault(false)
}
