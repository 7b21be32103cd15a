package com.mobiledeploy.demo

import android.content.Context
import com.mobiledeploy.core.ModelMetadata
import com.mobiledeploy.core.Prediction
import com.mobiledeploy.core.Preprocessor
import com.mobiledeploy.core.Quantization
import com.mobiledeploy.core.TopK
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.gpu.CompatibilityList
import org.tensorflow.lite.gpu.GpuDelegate
import java.io.FileInputStream
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.nio.MappedByteBuffer
import java.nio.channels.FileChannel

/** Exported model files inside the APK (written by `deploy export android`). */
object ModelAssets {
    const val MODEL = "model/model.tflite"
    const val METADATA = "model/model.json"
    const val EXPORT = "model/export.json"
    const val GOLDEN = "model/golden"

    fun exists(context: Context): Boolean = context.assets.list("model")?.contains("model.tflite") == true

    fun metadata(context: Context): ModelMetadata =
        ModelMetadata.parse(context.assets.open(METADATA).bufferedReader().use { it.readText() })

    fun map(context: Context): MappedByteBuffer {
        val fd = context.assets.openFd(MODEL)  // needs noCompress "tflite" (app/build.gradle.kts)
        FileInputStream(fd.fileDescriptor).channel.use { channel ->
            return channel.map(FileChannel.MapMode.READ_ONLY, fd.startOffset, fd.declaredLength)
        }
    }
}

class Classification(val top: List<Prediction>, val preprocessMs: Double, val inferenceMs: Double)

/**
 * The exported artifact in LiteRT: XNNPACK on the CPU, or the GPU delegate when asked for and the
 * device supports it. Preprocessing and top-k come from the core, identical to the pipeline's.
 */
class Classifier(context: Context, val threads: Int, wantGpu: Boolean) : AutoCloseable {
    val metadata: ModelMetadata = ModelAssets.metadata(context)
    private val preprocessor = Preprocessor(metadata.preprocessing)
    private var gpuDelegate: GpuDelegate? = null
    val interpreter: Interpreter
    val usesGpu: Boolean
    val initMs: Double

    private val inputType: DataType
    private val inputQuantization: Quantization?
    private val outputType: DataType
    private val outputQuantization: Quantization?
    private val input: ByteBuffer
    private val output: ByteBuffer

    init {
        val start = System.nanoTime()
        val options = Interpreter.Options().setNumThreads(threads).setUseXNNPACK(true)
        val compatibility = CompatibilityList()
        if (wantGpu && compatibility.isDelegateSupportedOnThisDevice) {
            gpuDelegate = GpuDelegate(compatibility.bestOptionsForThisDevice).also { options.addDelegate(it) }
        }
        usesGpu = gpuDelegate != null
        interpreter = Interpreter(ModelAssets.map(context), options)
        interpreter.allocateTensors()
        initMs = (System.nanoTime() - start) / 1e6

        val inTensor = interpreter.getInputTensor(0)
        val outTensor = interpreter.getOutputTensor(0)
        inputType = inTensor.dataType()
        outputType = outTensor.dataType()
        inputQuantization = if (inputType == DataType.INT8) inTensor.quantizationParams().let { Quantization(it.scale, it.zeroPoint) } else null
        outputQuantization = if (outputType == DataType.INT8) outTensor.quantizationParams().let { Quantization(it.scale, it.zeroPoint) } else null
        require(inputType == DataType.FLOAT32 || inputType == DataType.INT8) { "unsupported input type $inputType" }
        require(outputType == DataType.FLOAT32 || outputType == DataType.INT8) { "unsupported output type $outputType" }
        input = ByteBuffer.allocateDirect(inTensor.numBytes()).order(ByteOrder.nativeOrder())
        output = ByteBuffer.allocateDirect(outTensor.numBytes()).order(ByteOrder.nativeOrder())
    }

    val inputShape: IntArray get() = interpreter.getInputTensor(0).shape()
    val inputDtype: String get() = if (inputType == DataType.INT8) "int8" else "float32"

    /** ARGB pixels of any size -> top-3, timing preprocessing and inference separately. */
    fun classify(argb: IntArray, width: Int, height: Int): Classification {
        val t0 = System.nanoTime()
        setInput(preprocessor.fromArgb(argb, width, height))
        val t1 = System.nanoTime()
        invoke()
        val t2 = System.nanoTime()
        return Classification(TopK.topK(scores(), metadata.labels, 3), (t1 - t0) / 1e6, (t2 - t1) / 1e6)
    }

    /** The model input, float32 NHWC as the pipeline computes it; quantized here for int8 models. */
    fun setInput(x: FloatArray) {
        input.rewind()
        val q = inputQuantization
        if (q == null) input.asFloatBuffer().put(x) else input.put(q.quantizeInt8(x))
        input.rewind()
    }

    fun invoke() {
        output.rewind()
        interpreter.run(input, output)
    }

    fun scores(): FloatArray {
        output.rewind()
        val q = outputQuantization
        return if (q == null) {
            FloatArray(output.capacity() / 4).also { output.asFloatBuffer().get(it) }
        } else {
            q.dequantizeInt8(ByteArray(output.capacity()).also { output.get(it) })
        }
    }

    override fun close() {
        interpreter.close()
        gpuDelegate?.close()
    }
}
