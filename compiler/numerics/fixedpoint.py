"""Integer arithmetic of TFLite's reference kernels (and gemmlowp's fixed point), vectorized.

Everything here is bit-exact with TFLite/CMSIS-NN by construction: int32 quantities are held in
int64 numpy arrays, and every rounding step is the one those libraries take (C division
truncates, std::round rounds half away from zero, right shifts are arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
QRANGE = {
    "i8": (-128, 127),
    "u8": (0, 255),
    "i16": (-32768, 32767),
    "i32": (-(1 << 31), (1 << 31) - 1),
}


def round_half_away(x: float) -> int:
    """std::round / TfLiteRound on a scalar. Not floor(|x| + 0.5): that addition itself rounds
    (0.49999999999999994 + 0.5 == 1.0)."""
    a = abs(x)
    r = math.floor(a)
    return int(math.copysign(r + (1 if a - r >= 0.5 else 0), x))


def round_half_away_array(x: np.ndarray) -> np.ndarray:
    """C round() on float64 values, exactly (floor and the fraction are exact in float64)."""
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    r = np.floor(a)
    return (np.sign(x) * (r + (a - r >= 0.5))).astype(np.int64)


def round_half_away_f32(x: np.ndarray) -> np.ndarray:
    """roundf() on float32 values (exact: they widen to float64 without loss)."""
    return round_half_away_array(np.asarray(x, np.float32).astype(np.float64))


def wrap32(x: np.ndarray) -> np.ndarray:
    """Two's-complement wrap to int32 range, as C's int32 arithmetic does on every target."""
    return ((np.asarray(x, np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def trunc_div(a: np.ndarray, b: int | np.ndarray) -> np.ndarray:
    """C integer division (truncates toward zero)."""
    a = np.asarray(a, np.int64)
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (np.asarray(b) < 0), -q, q)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ≈ m * 2^(shift - 31) with m a Q31 in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, np.float64).reshape(-1)]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


def srdhm(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul (int32 × int32 → high int32 of the doubled product)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    overflow = (a == b) & (a == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    high = trunc_div(ab + nudge, 1 << 31)
    return np.where(overflow, INT32_MAX, high)


def rdbpot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """RoundingDivideByPOT: divide by 2^exponent rounding half away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def mbqm(x: np.ndarray, mult: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """MultiplyByQuantizedMultiplier (TFLite's double-rounding variant)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(np.asarray(x, np.int64) << left), mult), right)


RQC_MAX_SHIFT = 22  # beyond it zp * 2^(31+e) with the product could leave int64


def requant_constants(mult: np.ndarray, shift: np.ndarray, zp: int) -> np.ndarray | None:
    """mbqm(acc, mult, shift) + zp as one multiply-accumulate, per channel: rows of (mult,
    e - 1, low word, high word of add), where e = -shift and add = 2^30 + 2^(30+e) + zp*2^(31+e).
    None unless every shift is a right shift by 1..22.

    Why it is exact: mbqm is h = floor((acc*m + 2^30) / 2^31), then h / 2^e rounded half away
    from zero = floor((h + 2^(e-1) - [h < 0]) / 2^e). Nested floors of integer quotients are
    one floor: floor((acc*m + 2^30 + (2^(e-1) - [h < 0]) * 2^31) / 2^(31+e)); adding zp is
    adding zp * 2^(31+e) inside. [h < 0] may be replaced by [acc < 0]: they differ only when
    h = 0, where both choices give 0. Dividing by 2^(31+e) is taking the high word and shifting
    it by e - 1. |acc*m| < 2^62 and |add| < 2^61 for e <= 22, so the sum fits int64."""
    m = np.asarray(mult, np.int64)
    e = -np.asarray(shift, np.int64)
    if m.size == 0 or e.min() < 1 or e.max() > RQC_MAX_SHIFT:
        return None
    add = [(1 << 30) + (1 << (30 + int(k))) + int(zp) * (1 << (31 + int(k))) for k in e]
    lo = [a & 0xFFFFFFFF for a in add]
    hi = [a >> 32 for a in add]
    rows = np.stack([m, e - 1, np.array(lo, np.int64), np.array(hi, np.int64)], axis=1)
    rows[:, 2] = np.where(rows[:, 2] >= 1 << 31, rows[:, 2] - (1 << 32), rows[:, 2])
    return rows  # int32 values, as the C table holds them


def apply_requant_constants(acc: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """What tvc_rqc computes in C (numpy model, exact in Python integers), for tests."""
    a = np.asarray(acc, np.int64)
    m, s = rows[:, 0], rows[:, 1]
    add = (rows[:, 3].astype(object) << 32) + (rows[:, 2].astype(np.int64) & 0xFFFFFFFF)
    v = a.astype(object) * m.astype(object) + add - (a < 0).astype(object) * (1 << 31)
    hi = np.array([int(x) >> 32 for x in np.ravel(v)], np.int64).reshape(np.shape(v))
    return hi >> s


def mbqm_gt_one(x: np.ndarray, mult: int, left_shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplierGreaterThanOne."""
    return srdhm(wrap32(np.asarray(x, np.int64) << left_shift), mult)


def mbqm_lt_one(x: np.ndarray, mult: int, left_shift: int) -> np.ndarray:
    """MultiplyByQuantizedMultiplierSmallerThanOneExp (left_shift <= 0)."""
    return rdbpot(srdhm(x, mult), -left_shift)


def saturating_rounding_mul_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT."""
    x = np.asarray(x, np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rdbpot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def rounding_half_sum(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    s = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    return trunc_div(s + np.where(s >= 0, 1, -1), 2)


# --- gemmlowp fixed-point transcendentals (raw int32 values; F<n> has n integer bits) ---------


def _exp_quarter(a: np.ndarray) -> np.ndarray:
    """exp on [-1/4, 0) for F0 input, F0 output."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_mul_by_pot(x4, -2)
    poly = saturating_rounding_mul_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return constant_term + srdhm(constant_term, x + poly)


_BARREL = (
    (-2, 1672461947),
    (-1, 1302514674),
    (0, 790015084),
    (1, 290630308),
    (2, 39332535),
    (3, 720401),
    (4, 242),
)


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: F<integer_bits> input <= 0, F0 output."""
    a = np.asarray(a, np.int64)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    a_mod = (a & (one_quarter - 1)) - one_quarter
    result = _exp_quarter(saturating_rounding_mul_by_pot(a_mod, integer_bits))
    remainder = a_mod - a
    for exponent, multiplier in _BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """gemmlowp: 1/(1+x) for F0 x in [0, 1), F0 output (Newton-Raphson in F2)."""
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = 1515870810 + srdhm(half_denominator, -1010580540)
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + saturating_rounding_mul_by_pot(srdhm(x, one_minus), 2)
    return saturating_rounding_mul_by_pot(x, 1)


def count_leading_zeros32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    bits = np.where(x == 0, 0, np.floor(np.log2(np.maximum(x, 1))).astype(np.int64) + 1)
    return 32 - bits


def get_reciprocal(x: np.ndarray, integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal: (F0 raw of 1/x scaled, num_bits_over_unit)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = count_leading_zeros32(x)
    num_bits_over_unit = integer_digits - headroom_plus_one
    shifted = wrap32(((x & 0xFFFFFFFF) << headroom_plus_one) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted), num_bits_over_unit


def softmax_params(beta: float, input_scale: float, integer_bits: int = 5) -> tuple[int, int, int]:
    """PreprocessSoftmaxScaling + CalculateInputRadius: (multiplier, left_shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - integer_bits)), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)  # QuantizeMultiplierGreaterThanOne
    if shift < 0:
        raise ValueError(f"beta x input scale {beta * input_scale:g} is below TFLite's range")
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return mult, shift, -radius


def act_bounds(
    act_range: tuple[float, float] | None, scale: float, zp: int, dtype: str
) -> tuple[int, int]:
    """CalculateActivationRangeQuantized: clamp bounds of a fused activation, in integers."""
    qmin, qmax = QRANGE[dtype]
    if act_range is None:
        return qmin, qmax

    def q(f: float) -> int:
        return zp + int(round_half_away_f32(np.float32(f) / np.float32(scale)))

    lo, hi = act_range
    return (
        qmin if lo == float("-inf") else max(qmin, q(lo)),
        qmax if hi == float("inf") else min(qmax, q(hi)),
    )


def lut_int8(
    in_scale: float,
    in_zp: int,
    out_scale: float,
    out_zp: int,
    fn: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """TFLite LUTPopulate<int8>: table[q + 128] in float32 arithmetic, as the kernel builds it."""
    q = np.arange(-128, 128, dtype=np.int64)
    deq = np.float32(in_scale) * (q - in_zp).astype(np.float32)
    transformed = fn(deq).astype(np.float32)
    rescaled = round_half_away_f32(transformed * (np.float32(1) / np.float32(out_scale)))
    return np.clip(rescaled + out_zp, -128, 127)


def inv_sqrt_multiplier_exp(
    acc: np.ndarray, reverse_shift: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetInvSqrtQuantizedMultiplierExp, vectorized: 1/sqrt(acc) as a multiplier and a
    shift (left shift with reverse_shift = -1), by five gemmlowp Newton-Raphson steps in F3.
    acc <= 1 gives (INT32_MAX, 0), as TFLite handles 0 and 1."""
    acc = np.asarray(acc, np.int64)
    small = acc <= 1
    x = np.where(small, 2, acc)
    shift = np.full(x.shape, 11, np.int64)
    while True:
        big = x >= (1 << 29)
        if not big.any():
            break
        x = np.where(big, x // 4, x)
        shift = shift + big
    pairs = (count_leading_zeros32(x) - 1) // 2 - 1
    shift = shift - pairs
    x = x << (2 * pairs)
    half_input = rdbpot(x >> 1, 1)
    half_three = (1 << 28) + (1 << 27)
    r = np.full(x.shape, 1 << 28, np.int64)  # F3 one
    for _ in range(5):
        r3 = saturating_rounding_mul_by_pot(srdhm(srdhm(r, r), r), 6)
        r = saturating_rounding_mul_by_pot(wrap32(srdhm(half_three, r) - srdhm(half_input, r3)), 3)
    r = srdhm(r, 1518500250)  # * sqrt(2) / 2 in F0
    neg = shift < 0
    r = np.where(neg, wrap32(r << np.maximum(-shift, 0)), r)
    shift = np.where(neg, 0, shift) * reverse_shift
    return np.where(small, INT32_MAX, r), np.where(small, 0, shift)


def isqrt(x: np.ndarray) -> np.ndarray:
    """floor(sqrt(x)) of non-negative integers below 2^62, exactly (float estimate, corrected)."""
    x = np.asarray(x, np.int64)
    r = np.floor(np.sqrt(x.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > x, r - 1, r)
    r = np.where(r * r > x, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= x, r + 1, r)
    return np.where((r + 1) * (r + 1) <= x, r + 1, r)
