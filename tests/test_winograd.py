"""Integer Winograd F(2x2, 3x3) (compiler/ir/ops/conv.py, compiler/runtime/tvc_special.h): the
scaled transforms are exact, within the lane widths the C uses, and the overflow proof refuses the
layers whose sums could leave int32. The C itself is checked bit-exact on the Cortex-M4 twin in
tests/test_kernel_shapes.py (the "winograd" case)."""

from __future__ import annotations

import numpy as np

from compiler.ir.ops.conv import (
    WINO_AT,
    WINO_BT,
    WINO_V_MAX,
    winograd_filters,
    winograd_proof,
    winograd_weights,
)


def _direct(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    """2x2 correlation outputs of a 4x4 tile with a 3x3 filter, summed over channels."""
    return np.array(
        [[np.sum(d[r : r + 3, s : s + 3] * g) for s in range(2)] for r in range(2)], np.int64
    )


def test_output_transform_is_exactly_four_times_the_direct_sums() -> None:
    rng = np.random.default_rng(0)
    for c in (1, 4, 16):
        w = rng.integers(-128, 128, (3, 3, 3, c))  # OHWI, three output channels
        u = winograd_filters(w)  # [O][16][C]
        for _ in range(20):
            d = rng.integers(-255, 256, (4, 4, c))  # x - zp of one tile
            v = np.einsum("ij,jkc,lk->ilc", WINO_BT, d, WINO_BT).reshape(16, c)
            for o in range(3):
                m = (u[o] * v).sum(axis=1).reshape(4, 4)
                y = WINO_AT @ m @ WINO_AT.T
                np.testing.assert_array_equal(y, 4 * _direct(d, w[o]))


def test_transforms_fit_the_int16_lanes() -> None:
    extreme = np.full((1, 3, 3, 1), -128)
    assert np.abs(winograd_filters(extreme)).max() <= 1152 < 2**11  # 12-bit signed lane
    alternating = np.where((np.indices((4, 4)).sum(0) % 2) == 0, 255, -255)[:, :, None]
    v = np.einsum("ij,jkc,lk->ilc", WINO_BT, alternating, WINO_BT)
    assert np.abs(v).max() == WINO_V_MAX <= 2**10  # 11-bit signed lane, as documented


def test_proof_refuses_layers_whose_sums_could_overflow() -> None:
    # worst-case weights: 9 * C * 1152 * 1020 must stay below 2^31, so C up to ~203
    assert winograd_proof(np.full((2, 3, 3, 200), 127), None)
    assert not winograd_proof(np.full((2, 3, 3, 208), -128), None)
    # the proof reads the actual weights: small ones allow many more channels
    assert winograd_proof(np.full((2, 3, 3, 1024), 3), None)
    # a bias that would push the final sum past int32 is refused too
    assert not winograd_proof(np.full((1, 3, 3, 4), 1), np.array([2**31 - 10]))


def test_packed_words_hold_the_transformed_filters() -> None:
    rng = np.random.default_rng(1)
    w = rng.integers(-128, 128, (3, 3, 3, 8))  # 3 outputs (one pair and one with zeros)
    words = winograd_weights(w).reshape(2, 16, 2, 2, 2)  # [pair][pos][four][channel][half]
    u = winograd_filters(w)
    lo = (words & 0xFFFF).astype(np.int64)
    lo = np.where(lo >= 1 << 15, lo - (1 << 16), lo)
    hi = words >> 16
    # pair 0, channel 1 (output 1), position 5, four 1, half 0: lanes (c4, c6)
    assert (lo[0, 5, 1, 1, 0], hi[0, 5, 1, 1, 0]) == (u[1, 5, 4], u[1, 5, 6])
    assert (lo[0, 5, 1, 1, 1], hi[0, 5, 1, 1, 1]) == (u[1, 5, 5], u[1, 5, 7])
    assert not words[1, :, :, 1].any()  # output 3 does not exist: zeros
