// Plain Kotlin, no Android imports: the same sources compile with Debian's kotlinc 1.3 in this
// project's CI (tests/apps/test_kotlin_core.py), which is why the tests use their own tiny runner.
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

// ./gradlew :core:goldenTest -Pgolden=app/src/main/assets/model/golden
tasks.register<JavaExec>("goldenTest") {
    group = "verification"
    description = "Reproduce the pipeline's golden vectors with the core (same runner as CI's kotlinc run)."
    classpath = sourceSets["test"].runtimeClasspath
    mainClass.set("com.mobiledeploy.core.TestMainKt")
    args(rootProject.file(providers.gradleProperty("golden").getOrElse("app/src/main/assets/model/golden")).path)
}
