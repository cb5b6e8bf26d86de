"""The int8 add/sub table path of --optimize speed (compiler/ir/ops/elementwise.py,
tvc_add_lut_s8): each input's scaled contribution tabulated, the output requantization
precomputed. Checked exhaustively against the op's integer reference (TFLite's Add) on all
65,536 input pairs, for several scales and zero points; the C is checked on the Cortex-M4 twin
in tests/test_kernel_shapes.py (the "winograd" case has a residual add)."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.ir.ops.elementwise import add_tables, binary_params
from compiler.ir.registry import get_op, make_node
from compiler.ir.tensor import QParams, Tensor
from compiler.numerics.fixedpoint import apply_requant_constants, requant_constants

SHAPE = (1, 256, 256, 1)


@pytest.mark.parametrize(
    ("op", "s1", "z1", "s2", "z2", "sy", "zy", "act"),
    [
        ("add", 0.05, -3, 0.07, 10, 0.09, -20, "none"),
        ("add", 0.02, -128, 0.02, -128, 0.03, -128, "relu"),  # equal scales, ReLU
        ("add", 0.5, 0, 0.004, 77, 0.6, 5, "none"),  # very different scales
        ("sub", 0.05, 12, 0.03, -40, 0.04, 3, "none"),
    ],
)
def test_tables_equal_tflite_add_on_every_input_pair(op, s1, z1, s2, z2, sy, zy, act) -> None:  # type: ignore[no-untyped-def]
    ins = [
        Tensor("a", SHAPE, "i8", "NHWC", qparams=QParams((s1,), (z1,))),
        Tensor("b", SHAPE, "i8", "NHWC", qparams=QParams((s2,), (z2,))),
    ]
    outs = [Tensor("y", SHAPE, "i8", "NHWC", qparams=QParams((sy,), (zy,)))]
    node = make_node(op, ["a", "b"], ["y"], act=act)
    a, b = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128), indexing="ij")
    x = [a.reshape(SHAPE).astype(np.int8), b.reshape(SHAPE).astype(np.int8)]
    run = get_op(op).run_int
    assert run is not None
    want = run(node, x, ins, outs)[0].astype(np.int64)
    p = binary_params(node, ins, outs)
    t1, t2 = add_tables(p, -1 if op == "sub" else 1)
    rows = requant_constants(np.array([p.mult_out]), np.array([p.shift_out]), p.out_zp)
    assert rows is not None
    total = t1[x[0].astype(np.int64) + 128] + t2[x[1].astype(np.int64) + 128]
    got = np.clip(apply_requant_constants(total.reshape(-1, 1), rows), p.act_min, p.act_max)
    np.testing.assert_array_equal(got.reshape(SHAPE), want)
