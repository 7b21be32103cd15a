"""Quantization diagnostics shared by the converting stages: per-layer int8 error and float fallback."""
