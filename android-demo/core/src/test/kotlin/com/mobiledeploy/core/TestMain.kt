package com.mobiledeploy.core

import java.io.File
import kotlin.system.exitProcess

/**
 * A tiny test runner: Debian's kotlinc 1.3 ships no JUnit, and these tests must run with it.
 *
 *   java -cp core-tests.jar com.mobiledeploy.core.TestMainKt GOLDEN_DIR [RECORD_OUT]
 *
 * GOLDEN_DIR is a folder written by the pipeline (pipeline/golden.py); RECORD_OUT, if given,
 * receives a benchmark record produced by the app's code path. Exit 1 if any test failed.
 */
class TestFailure(message: String) : AssertionError(message)

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw TestFailure(message())
}

fun <T> checkEquals(expected: T, actual: T, what: String) {
    if (expected != actual) throw TestFailure("$what: expected $expected, got $actual")
}

fun checkThrows(what: String, expectedText: String, block: () -> Unit) {
    try {
        block()
    } catch (e: IllegalArgumentException) {
        check(e.message?.contains(expectedText) == true) { "$what: message '${e.message}' lacks '$expectedText'" }
        return
    }
    throw TestFailure("$what: no IllegalArgumentException")
}

fun main(args: Array<String>) {
    if (args.isEmpty()) {
        System.err.println("usage: TestMainKt GOLDEN_DIR [RECORD_OUT]")
        exitProcess(2)
    }
    val golden = GoldenVectors.load(File(args[0]))
    val recordOut = if (args.size > 1) File(args[1]) else null
    val tests = CoreTests.all() + GoldenTests(golden).all() + BenchmarkTests(golden, recordOut).all()
    var failed = 0
    for ((name, test) in tests) {
        try {
            test()
            println("PASS $name")
        } catch (e: Throwable) {
            failed++
            println("FAIL $name: ${e.message ?: e.javaClass.name}")
        }
    }
    println("${tests.size - failed} passed, $failed failed")
    exitProcess(if (failed == 0) 0 else 1)
}
