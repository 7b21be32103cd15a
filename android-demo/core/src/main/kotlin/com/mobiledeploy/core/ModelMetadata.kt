package com.mobiledeploy.core

/**
 * How the pipeline turned images into model inputs (the `preprocessing` block of the JSON
 * written beside every artifact): x = (pixel - mean) / std per channel, on 0-255 pixels,
 * after a bilinear resize to height x width and reordering to channelOrder, NHWC. channels 1: the
 * image is first turned into Pillow's gray ("L"), then resized; mean and std have one value.
 */
class Preprocessing(
    val height: Int,
    val width: Int,
    val channelOrder: String,
    val mean: FloatArray,
    val std: FloatArray,
    val channels: Int = 3
) {
    companion object {
        fun fromJson(map: Map<*, *>): Preprocessing {
            // Anything but what this code implements is refused, never silently approximated.
            requireValue(map, "resize", "bilinear")
            requireValue(map, "layout", "NHWC")
            requireValue(map, "pixel_range", "0-255")
            val order = map.string("channel_order")
            if (order != "RGB" && order != "BGR") throw IllegalArgumentException("'channel_order' must be RGB or BGR, got $order")
            // Metadata written before grayscale support has no "channels": 3.
            val channels = if (map.containsKey("channels")) map.int("channels") else 3
            if (channels != 1 && channels != 3) throw IllegalArgumentException("'channels' must be 1 or 3, got $channels")
            return Preprocessing(map.int("height"), map.int("width"), order, floats(map, "mean", channels), floats(map, "std", channels), channels)
        }

        private fun requireValue(map: Map<*, *>, key: String, expected: String) {
            val value = map.string(key)
            if (value != expected) throw IllegalArgumentException("'$key' is '$value'; this app implements only '$expected'")
        }

        // float32, as the pipeline's numpy code uses them: the double from JSON rounded once.
        private fun floats(map: Map<*, *>, key: String, count: Int): FloatArray {
            val values = map.list(key)
            if (values.size != count || values.any { it !is Double }) throw IllegalArgumentException("'$key' must be $count numbers")
            return FloatArray(count) { (values[it] as Double).toFloat() }
        }
    }
}

/** The metadata JSON written beside an artifact: its id, labels, preprocessing and I/O types. */
class ModelMetadata(
    val id: String,
    val labels: List<String>,
    val preprocessing: Preprocessing,
    val inputType: String,
    val outputType: String
) {
    companion object {
        fun parse(jsonText: String): ModelMetadata {
            val map = Json.parse(jsonText) as? Map<*, *> ?: throw IllegalArgumentException("metadata must be a JSON object")
            val labels = map.list("labels").map { it as? String ?: throw IllegalArgumentException("'labels' must be strings") }
            val io = map.obj("io")
            return ModelMetadata(
                map.string("id"), labels, Preprocessing.fromJson(map.obj("preprocessing")),
                io.string("input"), io.string("output")
            )
        }
    }
}
