package com.mobiledeploy.demo

import android.Manifest
import android.content.Intent
import android.content.pm.PackageManager
import android.graphics.Bitmap
import android.graphics.BitmapFactory
import android.graphics.ImageDecoder
import android.graphics.Matrix
import android.net.Uri
import android.os.Build
import android.os.Bundle
import android.util.Log
import android.view.View
import android.widget.Button
import android.widget.ImageView
import android.widget.TextView
import android.widget.Toast
import androidx.activity.result.PickVisualMediaRequest
import androidx.activity.result.contract.ActivityResultContracts
import androidx.appcompat.app.AppCompatActivity
import androidx.appcompat.widget.SwitchCompat
import androidx.camera.core.CameraSelector
import androidx.camera.core.ImageAnalysis
import androidx.camera.core.ImageProxy
import androidx.camera.core.Preview
import androidx.camera.lifecycle.ProcessCameraProvider
import androidx.camera.view.PreviewView
import androidx.core.content.ContextCompat
import com.mobiledeploy.core.Json
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors

/** Live camera classification (CameraX) and a photo picker; top-3 with scores and per-frame latency. */
class MainActivity : AppCompatActivity() {
    private lateinit var preview: PreviewView
    private lateinit var photo: ImageView
    private lateinit var predictions: TextView
    private lateinit var latency: TextView
    private lateinit var gpuSwitch: SwitchCompat
    private val inference: ExecutorService = Executors.newSingleThreadExecutor()
    @Volatile private var classifier: Classifier? = null
    @Volatile private var showingPhoto = false

    private val pickPhoto = registerForActivityResult(ActivityResultContracts.PickVisualMedia()) { uri ->
        if (uri != null) classifyPhoto(uri)
    }
    private val cameraPermission = registerForActivityResult(ActivityResultContracts.RequestPermission()) { granted ->
        if (granted) startCamera() else Toast.makeText(this, R.string.camera_denied, Toast.LENGTH_LONG).show()
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        setContentView(R.layout.activity_main)
        preview = findViewById(R.id.preview)
        photo = findViewById(R.id.photo)
        predictions = findViewById(R.id.predictions)
        latency = findViewById(R.id.latency)
        gpuSwitch = findViewById(R.id.gpu)
        if (!ModelAssets.exists(this)) {
            predictions.setText(R.string.no_model)
            return
        }
        findViewById<TextView>(R.id.model_info).text = modelInfo()
        loadClassifier(useGpu = false)
        gpuSwitch.setOnCheckedChangeListener { _, checked -> loadClassifier(checked) }
        findViewById<Button>(R.id.pick).setOnClickListener {
            pickPhoto.launch(PickVisualMediaRequest(ActivityResultContracts.PickVisualMedia.ImageOnly))
        }
        findViewById<Button>(R.id.benchmark).setOnClickListener {
            startActivity(Intent(this, BenchmarkActivity::class.java).putExtra("gpu", gpuSwitch.isChecked))
        }
        photo.setOnClickListener { showCamera() }
        if (ContextCompat.checkSelfPermission(this, Manifest.permission.CAMERA) == PackageManager.PERMISSION_GRANTED) {
            startCamera()
        } else {
            cameraPermission.launch(Manifest.permission.CAMERA)
        }
    }

    private fun modelInfo(): String {
        val export = assets.open(ModelAssets.EXPORT).bufferedReader().use { Json.parse(it.readText()) } as Map<*, *>
        return "${export["artifact"]}: ${export["reason"]}"
    }

    private fun loadClassifier(useGpu: Boolean) {
        inference.execute {
            classifier?.close()
            classifier = Classifier(this, threads = Runtime.getRuntime().availableProcessors().coerceAtMost(4), wantGpu = useGpu)
            val c = classifier!!
            runOnUiThread {
                if (useGpu && !c.usesGpu) {
                    Toast.makeText(this, "No GPU delegate on this device: running on the CPU (XNNPACK)", Toast.LENGTH_LONG).show()
                    gpuSwitch.isChecked = false
                }
            }
        }
    }

    private fun startCamera() {
        val future = ProcessCameraProvider.getInstance(this)
        future.addListener({
            val provider = future.get()
            val previewUseCase = Preview.Builder().build().also { it.setSurfaceProvider(preview.surfaceProvider) }
            val analysis = ImageAnalysis.Builder()
                .setBackpressureStrategy(ImageAnalysis.STRATEGY_KEEP_ONLY_LATEST)
                .setOutputImageFormat(ImageAnalysis.OUTPUT_IMAGE_FORMAT_RGBA_8888)
                .build()
            analysis.setAnalyzer(inference) { frame -> analyze(frame) }
            provider.unbindAll()
            provider.bindToLifecycle(this, CameraSelector.DEFAULT_BACK_CAMERA, previewUseCase, analysis)
        }, ContextCompat.getMainExecutor(this))
    }

    private fun analyze(frame: ImageProxy) {
        frame.use {
            val c = classifier ?: return
            if (showingPhoto) return
            val bitmap = rotate(it.toBitmap(), it.imageInfo.rotationDegrees)
            show(c, bitmap)
        }
    }

    private fun classifyPhoto(uri: Uri) {
        showingPhoto = true
        inference.execute {
            val c = classifier ?: return@execute
            val bitmap = decode(uri)
            runOnUiThread {
                photo.setImageBitmap(bitmap)
                photo.visibility = View.VISIBLE
                preview.visibility = View.GONE
            }
            show(c, bitmap)
        }
    }

    private fun showCamera() {
        showingPhoto = false
        photo.visibility = View.GONE
        preview.visibility = View.VISIBLE
    }

    /** The whole frame is resized to the model input, as the pipeline resizes whole images (no crop). */
    private fun show(c: Classifier, bitmap: Bitmap) {
        val pixels = IntArray(bitmap.width * bitmap.height)
        bitmap.getPixels(pixels, 0, bitmap.width, 0, 0, bitmap.width, bitmap.height)
        val result = c.classify(pixels, bitmap.width, bitmap.height)
        val where = if (c.usesGpu) "GPU" else "CPU x${c.threads} (XNNPACK)"
        runOnUiThread {
            predictions.text = result.top.joinToString("\n") { "%-12s %.3f".format(it.label, it.score) }
            latency.text = "inference %.2f ms, preprocessing %.2f ms, %s".format(result.inferenceMs, result.preprocessMs, where)
        }
        Log.d(TAG, "top-1 ${result.top.firstOrNull()} in ${result.inferenceMs} ms")
    }

    private fun decode(uri: Uri): Bitmap =
        if (Build.VERSION.SDK_INT >= 28) {
            ImageDecoder.decodeBitmap(ImageDecoder.createSource(contentResolver, uri)) { decoder, _, _ ->
                decoder.allocator = ImageDecoder.ALLOCATOR_SOFTWARE  // getPixels needs a software bitmap
            }
        } else {
            contentResolver.openInputStream(uri).use { BitmapFactory.decodeStream(it) }
        }

    private fun rotate(bitmap: Bitmap, degrees: Int): Bitmap {
        if (degrees == 0) return bitmap
        val matrix = Matrix().apply { postRotate(degrees.toFloat()) }
        return Bitmap.createBitmap(bitmap, 0, 0, bitmap.width, bitmap.height, matrix, false)
    }

    override fun onDestroy() {
        super.onDestroy()
        inference.execute { classifier?.close() }
        inference.shutdown()
    }

    companion object {
        const val TAG = "DeployDemo"
    }
}
