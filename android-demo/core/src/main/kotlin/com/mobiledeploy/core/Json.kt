package com.mobiledeploy.core

import java.math.BigDecimal

/** Malformed JSON; the message names the offset. */
class JsonException(message: String) : IllegalArgumentException(message)

/**
 * The JSON this app reads (artifact metadata, golden vectors) and writes (benchmark records).
 *
 * Self-contained so the core has no Android (org.json) or library dependency and compiles with
 * a bare kotlinc. Objects parse to LinkedHashMap (key order kept), arrays to List, numbers to
 * Double (Double.parseDouble rounds exactly like Python's float()), and Int/Long write as integers.
 */
object Json {
    fun parse(text: String): Any? {
        val parser = Parser(text)
        val value = parser.value()
        parser.skipSpace()
        if (parser.pos != text.length) throw JsonException("trailing characters at offset ${parser.pos}")
        return value
    }

    fun write(value: Any?): String {
        val out = StringBuilder()
        writeValue(value, out, 0)
        return out.append('\n').toString()
    }

    private fun writeValue(value: Any?, out: StringBuilder, depth: Int) {
        when (value) {
            null -> out.append("null")
            is Boolean -> out.append(value.toString())
            is Int, is Long, is Short, is Byte -> out.append(value.toString())
            is Float -> writeDouble(value.toDouble(), out)
            is Double -> writeDouble(value, out)
            is String -> writeString(value, out)
            is Map<*, *> -> writeObject(value, out, depth)
            is Iterable<*> -> writeArray(value.toList(), out, depth)
            is IntArray -> writeArray(value.toList(), out, depth)
            is DoubleArray -> writeArray(value.toList(), out, depth)
            else -> throw JsonException("cannot write ${value.javaClass.name} as JSON")
        }
    }

    private fun writeDouble(value: Double, out: StringBuilder) {
        if (value.isNaN() || value.isInfinite()) throw JsonException("JSON has no $value")
        val text = value.toString()
        // Older JVMs/ART can print a non-shortest form; the exact decimal always round-trips.
        out.append(if (text.toDouble() == value) text else BigDecimal(value).toString())
    }

    private fun writeString(value: String, out: StringBuilder) {
        out.append('"')
        for (c in value) {
            when (c) {
                '"' -> out.append("\\\"")
                '\\' -> out.append("\\\\")
                '\n' -> out.append("\\n")
                '\r' -> out.append("\\r")
                '\t' -> out.append("\\t")
                else -> if (c < ' ') out.append(String.format("\\u%04x", c.toInt())) else out.append(c)
            }
        }
        out.append('"')
    }

    private fun writeObject(map: Map<*, *>, out: StringBuilder, depth: Int) {
        if (map.isEmpty()) { out.append("{}"); return }
        out.append("{\n")
        var first = true
        for ((key, item) in map) {
            if (!first) out.append(",\n")
            first = false
            indent(out, depth + 1)
            writeString(key.toString(), out)
            out.append(": ")
            writeValue(item, out, depth + 1)
        }
        out.append('\n')
        indent(out, depth)
        out.append('}')
    }

    private fun writeArray(items: List<*>, out: StringBuilder, depth: Int) {
        out.append('[')
        items.forEachIndexed { i, item ->
            if (i > 0) out.append(", ")
            writeValue(item, out, depth + 1)
        }
        out.append(']')
    }

    private fun indent(out: StringBuilder, depth: Int) {
        for (i in 0 until depth) out.append("  ")
    }

    private class Parser(val text: String) {
        var pos = 0

        fun skipSpace() {
            while (pos < text.length && text[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipSpace()
            if (pos >= text.length) throw JsonException("unexpected end of JSON")
            return when (text[pos]) {
                '{' -> obj()
                '[' -> array()
                '"' -> string()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> number()
            }
        }

        private fun literal(word: String, value: Any?): Any? {
            if (!text.startsWith(word, pos)) throw JsonException("unexpected character '${text[pos]}' at offset $pos")
            pos += word.length
            return value
        }

        private fun obj(): Map<String, Any?> {
            val map = LinkedHashMap<String, Any?>()
            pos++
            skipSpace()
            if (peek() == '}') { pos++; return map }
            while (true) {
                skipSpace()
                if (peek() != '"') throw JsonException("expected a key at offset $pos")
                val key = string()
                skipSpace()
                expect(':')
                map[key] = value()
                skipSpace()
                when (peek()) {
                    ',' -> pos++
                    '}' -> { pos++; return map }
                    else -> throw JsonException("expected ',' or '}' at offset $pos")
                }
            }
        }

        private fun array(): List<Any?> {
            val list = ArrayList<Any?>()
            pos++
            skipSpace()
            if (peek() == ']') { pos++; return list }
            while (true) {
                list.add(value())
                skipSpace()
                when (peek()) {
                    ',' -> pos++
                    ']' -> { pos++; return list }
                    else -> throw JsonException("expected ',' or ']' at offset $pos")
                }
            }
        }

        private fun string(): String {
            expect('"')
            val out = StringBuilder()
            while (true) {
                if (pos >= text.length) throw JsonException("unterminated string")
                val c = text[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        if (pos >= text.length) throw JsonException("unterminated escape")
                        when (val e = text[pos++]) {
                            '"', '\\', '/' -> out.append(e)
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000C')
                            'n' -> out.append('\n')
                            'r' -> out.append('\r')
                            't' -> out.append('\t')
                            'u' -> {
                                if (pos + 4 > text.length) throw JsonException("bad \\u escape at offset $pos")
                                out.append(text.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> throw JsonException("bad escape '\\$e' at offset ${pos - 1}")
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        private fun number(): Double {
            val start = pos
            while (pos < text.length && text[pos] in "+-0123456789.eE") pos++
            if (start == pos) throw JsonException("unexpected character '${text[pos]}' at offset $pos")
            return try {
                java.lang.Double.parseDouble(text.substring(start, pos))
            } catch (e: NumberFormatException) {
                throw JsonException("bad number '${text.substring(start, pos)}' at offset $start")
            }
        }

        private fun peek(): Char = if (pos < text.length) text[pos] else '\u0000'

        private fun expect(c: Char) {
            if (peek() != c) throw JsonException("expected '$c' at offset $pos")
            pos++
        }
    }
}

/** Typed access to parsed JSON objects, with errors that name the missing or mistyped key. */
internal fun Map<*, *>.string(key: String): String =
    this[key] as? String ?: throw IllegalArgumentException("'$key' must be a string")

internal fun Map<*, *>.number(key: String): Double =
    this[key] as? Double ?: throw IllegalArgumentException("'$key' must be a number")

internal fun Map<*, *>.int(key: String): Int {
    val value = number(key)
    if (value != Math.floor(value)) throw IllegalArgumentException("'$key' must be an integer")
    return value.toInt()
}

internal fun Map<*, *>.obj(key: String): Map<*, *> =
    this[key] as? Map<*, *> ?: throw IllegalArgumentException("'$key' must be an object")

internal fun Map<*, *>.list(key: String): List<*> =
    this[key] as? List<*> ?: throw IllegalArgumentException("'$key' must be a list")
