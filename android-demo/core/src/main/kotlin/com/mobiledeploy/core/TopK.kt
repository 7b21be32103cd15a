package com.mobiledeploy.core

class Prediction(val index: Int, val label: String, val score: Float) {
    override fun toString() = "$label ${"%.3f".format(score)}"
}

object TopK {
    /** The k highest scores, highest first; equal scores keep the lower class index first. */
    fun topK(scores: FloatArray, labels: List<String>, k: Int): List<Prediction> {
        require(scores.size == labels.size) { "${scores.size} scores but ${labels.size} labels" }
        val order = scores.indices.sortedWith(Comparator { a, b ->
            val byScore = java.lang.Float.compare(scores[b], scores[a])
            if (byScore != 0) byScore else Integer.compare(a, b)
        })
        return order.take(Math.min(k, scores.size)).map { Prediction(it, labels[it], scores[it]) }
    }
}
