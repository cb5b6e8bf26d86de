"""TFLite/gemmlowp integer primitives on hand-checked cases (each one a rounding rule)."""

from __future__ import annotations

import numpy as np

from compiler.numerics import fixedpoint as fx
from compiler.numerics.pow2 import pointwise, shift_round


def test_quantize_multiplier_matches_tflite_rules() -> None:
    assert fx.quantize_multiplier(0.5) == (1 << 30, 0)
    assert fx.quantize_multiplier(0.0) == (0, 0)
    assert fx.quantize_multiplier(1.0) == (1 << 30, 1)
    m, s = fx.quantize_multiplier(0.0003)
    assert (m, s) == (1319413953, -11) and abs(m * 2.0 ** (s - 31) - 0.0003) < 1e-12
    assert fx.quantize_multiplier(2.0**-40) == (0, 0)  # shifts below -31 flush to zero
    # a mantissa that rounds up to 2^31 renormalizes
    assert fx.quantize_multiplier(1 - 2.0**-40) == (1 << 30, 1)


def test_srdhm_rounds_ties_up_and_saturates_the_one_overflow() -> None:
    assert int(fx.srdhm(np.array(fx.INT32_MIN), fx.INT32_MIN)) == fx.INT32_MAX
    assert int(fx.srdhm(np.array(1 << 30), 1 << 30)) == 1 << 29
    # (3 * 2^30) * 2^-31 = 1.5 -> 2 and -1.5 -> -1: the nudge 1 - 2^30 for negative products
    # sends ties toward +infinity (gemmlowp), unlike RoundingDivideByPOT below
    assert int(fx.srdhm(np.array(3), 1 << 30)) == 2
    assert int(fx.srdhm(np.array(-3), 1 << 30)) == -1
    assert int(fx.srdhm(np.array(-5), 1 << 30)) == -2  # -2.5 -> -2


def test_rounding_divide_by_pot() -> None:
    x = np.array([5, -5, 6, -6, 7, -7, 4, -4])
    assert fx.rdbpot(x, 1).tolist() == [3, -3, 3, -3, 4, -4, 2, -2]
    assert fx.rdbpot(x, 0).tolist() == x.tolist()


def test_multiply_by_quantized_multiplier_is_double_rounding() -> None:
    # acc -4773 * (1094001403 * 2^-39) = -9.498: double rounding gives -10 (TFLite's integer
    # path); the per-channel FC reference uses single rounding (-9), tested in test_tflite
    assert int(fx.mbqm(np.array(-4773), 1094001403, -8)) == -10


def test_exp_and_reciprocal_are_close_to_the_real_functions() -> None:
    a = -np.arange(0, 32 << 26, 1 << 22)  # F5 values 0 .. -32
    e = fx.exp_on_negative_values(a, 5) / 2.0**31
    assert np.abs(e - np.exp(a / 2.0**26)).max() < 2e-9 * 2**10
    x = np.arange(0, 1 << 31, 1 << 24)
    r = fx.one_over_one_plus_x_for_x_in_0_1(x) / 2.0**31
    assert np.abs(r - 1 / (1 + x / 2.0**31)).max() < 1e-8


def test_seedot_shift_rounds_half_up_and_left_shifts_exactly() -> None:
    x = np.array([3, -3, 2, -2, 5])
    assert shift_round(x, 1).tolist() == [2, -1, 1, -1, 3]
    assert shift_round(x, -2).tolist() == [12, -12, 8, -8, 20]


def test_seedot_int16_pointwise_table_tracks_the_function() -> None:
    codes = np.arange(-32768, 32768, 7)
    y = pointwise(
        lambda v: np.tanh(v.astype(np.float64)).astype(np.float32), codes, -12, -15, "i16"
    )
    ref = np.tanh(codes * 2.0**-12)
    assert np.abs(y / 2.0**15 - ref).max() < 2 * 2.0**-15  # within 2 LSB of Q0.15
    y8 = pointwise(
        lambda v: np.tanh(v.astype(np.float64)).astype(np.float32),
        np.arange(-128, 128),
        -5,
        -7,
        "i8",
    )
    # int8 is exact per code: the function rounded to Q0.7, saturated at 127/128
    want = np.clip(np.tanh(np.arange(-128, 128) / 32), -1.0, 127 / 128)
    assert np.abs(y8 / 128 - want).max() <= 0.5 / 128 + 1e-6


def test_precomputed_requantization_equals_mbqm_plus_zero_point() -> None:
    """tvc_rqc's one multiply-accumulate is TFLite's double rounding exactly, over random and
    edge accumulators, every right shift it takes, the smallest multiplier (2^30) and any zp."""
    rng = np.random.default_rng(3)
    edges = np.array([0, 1, -1, 2, -2, 2**31 - 1, -(2**31), 2**30, -(2**30)], np.int64)
    for e in range(1, fx.RQC_MAX_SHIFT + 1):
        mults = np.array([2**30, 2**31 - 1, *rng.integers(2**30, 2**31, 6)], np.int64)
        for zp in (-128, -5, 0, 127):
            rows = fx.requant_constants(mults, np.full(mults.size, -e), zp)
            assert rows is not None
            acc = np.concatenate([edges, rng.integers(-(2**31), 2**31, 300)])
            acc = np.concatenate([acc, rng.integers(-(2**e) * 4, 2**e * 4, 300)])
            want = fx.mbqm(acc[:, None], mults[None, :], -e) + zp
            got = fx.apply_requant_constants(acc[:, None], rows)
            np.testing.assert_array_equal(got, want, err_msg=f"e={e} zp={zp}")
    assert fx.requant_constants(np.array([2**30]), np.array([0]), 0) is None  # no right shift
    assert fx.requant_constants(np.array([2**30]), np.array([-23]), 0) is None


def _near_ties(m: int, e: int, rng: np.random.Generator) -> np.ndarray:
    """Accumulators within a few units of a rounding tie of acc * m / 2^(31+e), both signs:
    where double rounding and a single rounding part ways."""
    t = rng.integers(-1000, 1000, 40)
    centre = np.round((t + 0.5) * 2.0 ** (31 + e) / m).astype(np.int64)
    acc = (centre[:, None] + np.arange(-2, 3)[None, :]).reshape(-1)
    return acc[(acc >= -(2**31)) & (acc < 2**31)]


def test_c_requantization_equals_mbqm_at_the_ties(tmp_path) -> None:
    """tvc_rqc in C (compiler/runtime/tvc_common.h, compiled with the host gcc) against TFLite's
    double rounding, on accumulators at the rounding ties where a wrong sign term shows."""
    import subprocess

    from compiler.codegen.emit import RUNTIME
    from compiler.tools.host import find_cc

    rng = np.random.default_rng(8)
    cases = []
    for e in (1, 2, 5, 9, 14, 22):
        for m in (2**30, int(rng.integers(2**30, 2**31)), 2**31 - 1):
            for zp in (-128, 3):
                rows = fx.requant_constants(np.array([m]), np.array([-e]), zp)
                assert rows is not None
                accs = np.concatenate([_near_ties(m, e, rng), [-1, 0, 1, -(2**31), 2**31 - 1]])
                want = fx.mbqm(accs, m, -e) + zp
                np.testing.assert_array_equal(
                    fx.apply_requant_constants(accs[:, None], rows), want[:, None]
                )
                cases += [(*rows[0], int(a), int(w)) for a, w in zip(accs, want, strict=True)]
    lines = ",\n".join("{" + ", ".join(str(int(v)) for v in c) + "}" for c in cases)
    (tmp_path / "t.c").write_text(
        '#include <stdio.h>\n#include "tvc_common.h"\n'
        f"static const long long cases[][6] = {{\n{lines}\n}};\n"
        "int main(void) {\n    int bad = 0;\n"
        "    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; ++i) {\n"
        "        const int32_t c[4] = {(int32_t)cases[i][0], (int32_t)cases[i][1],\n"
        "                              (int32_t)cases[i][2], (int32_t)cases[i][3]};\n"
        "        bad += tvc_rqc(c, (int32_t)cases[i][4]) != cases[i][5];\n    }\n"
        '    printf("%d %u\\n", bad, (unsigned)(sizeof cases / sizeof cases[0]));\n'
        "    return 0;\n}\n"
    )
    exe = tmp_path / "t"
    subprocess.run(
        [find_cc(), "-O2", "-std=c99", "-I", str(RUNTIME), str(tmp_path / "t.c"), "-o", str(exe)],
        check=True,
    )
    bad, n = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert int(n) == len(cases) > 3000 and int(bad) == 0
