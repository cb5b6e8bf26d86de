"""Quantization: integer arithmetic primitives, calibration, scale choice (affine, SeeDot)."""
