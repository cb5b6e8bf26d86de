"""SeeDot-style fixed point: every tensor is an N-bit integer q with value q * 2^exp.

Products add exponents, sums align them, and one rounding shift brings a wide accumulator to
its output's exponent. SeeDot truncates (x >> s); we round half up ((x + 2^(s-1)) >> s): one add
per output, and it removes truncation's -0.5 LSB bias, which otherwise accumulates through
every layer (worth several dB of SQNR at 8 bits).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from compiler.numerics.fixedpoint import QRANGE, round_half_away_array

TABLE_BITS = 10  # int16 pointwise functions: 2^10 + 1 table points, linear interpolation


def exp_for(maxabs: float, bits: int) -> int:
    """Smallest exponent whose N-bit range covers maxabs: 2^(exp + N - 1) > maxabs."""
    if maxabs <= 0:
        return -(bits - 1)
    return math.floor(math.log2(maxabs)) + 1 - (bits - 1)


def shift_round(x: np.ndarray, shift: int | np.ndarray) -> np.ndarray:
    """x * 2^-shift: rounding arithmetic right shift for shift > 0, exact left shift otherwise."""
    x = np.asarray(x, np.int64)
    shift = np.asarray(shift, np.int64)
    right = np.maximum(shift, 0)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    return np.where(shift > 0, (x + half) >> right, x << np.maximum(-shift, 0))


def saturate(x: np.ndarray, dtype: str) -> np.ndarray:
    lo, hi = QRANGE[dtype]
    return np.clip(x, lo, hi)


def quantize_pow2(v: np.ndarray, exp: int, dtype: str) -> np.ndarray:
    """round(v * 2^-exp), saturated (weights, biases, tables)."""
    return saturate(round_half_away_array(np.asarray(v, np.float64) * (2.0 ** (-exp))), dtype)


def pointwise_table(
    fn: Callable[[np.ndarray], np.ndarray], exp_in: int, exp_out: int, dtype: str
) -> np.ndarray:
    """The table `pointwise` reads (and the C kernels get): int8, one entry per input code;
    int16, 2^TABLE_BITS + 1 points from -32768 to 32768 in steps of 2^(16 - TABLE_BITS)."""
    lo, hi = QRANGE[dtype]
    if dtype == "i8":
        codes = np.arange(lo, hi + 1)
        return quantize_pow2(fn(codes.astype(np.float32) * np.float32(2.0**exp_in)), exp_out, "i8")
    points = np.arange(lo, hi + 2, 1 << (16 - TABLE_BITS))
    vals = fn((points.astype(np.float64) * 2.0**exp_in).astype(np.float32))
    return quantize_pow2(vals, exp_out, "i32")


def apply_table(table: np.ndarray, x: np.ndarray, dtype: str) -> np.ndarray:
    """Read a `pointwise_table`: int8 (and TFLite int8 LUTs), one entry per code; int16, linear
    interpolation between the two points around each code (what the C kernels do)."""
    lo, _ = QRANGE[dtype]
    xi = np.asarray(x, np.int64)
    if dtype == "i8":
        return np.asarray(table)[xi - lo]
    step_bits = 16 - TABLE_BITS
    idx = (xi - lo) >> step_bits
    frac = (xi - lo) & ((1 << step_bits) - 1)
    y = table[idx] + shift_round((table[idx + 1] - table[idx]) * frac, step_bits)
    return saturate(y, dtype)


def pointwise(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, exp_in: int, exp_out: int, dtype: str
) -> np.ndarray:
    """A pointwise function on fixed point. int8: a 256-entry table (exact per code). int16: a
    1025-point table over the whole input range, linear interpolation between points (~15 bits
    for smooth functions such as tanh)."""
    return apply_table(pointwise_table(fn, exp_in, exp_out, dtype), x, dtype)
