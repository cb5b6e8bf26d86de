"""Binary elementwise arithmetic with numpy (= ONNX multidirectional) broadcasting.

add/sub/mul carry a fused activation like conv does (TFLite fuses ReLU into them too).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._qutil import finish, pow2_exp, scale_zp
from compiler.ir.ops.activation import FUSED_ACT_ATTRS, act_range, apply_fused_act
from compiler.ir.registry import CALIBRATED, NOT_QUANTIZED, TType, int_ref, op
from compiler.ir.tensor import Tensor
from compiler.numerics.fixedpoint import mbqm, mbqm_lt_one, quantize_multiplier, wrap32
from compiler.numerics.pow2 import shift_round

NUMERIC = ("f32", "i32", "i64")


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    try:
        shape = np.broadcast_shapes(t[0].shape, t[1].shape)
    except ValueError:
        raise IRError(
            f"{node.op} {node.label}: shapes {list(t[0].shape)} and {list(t[1].shape)} "
            "do not broadcast"
        ) from None
    if t[0].dtype != t[1].dtype:
        raise IRError(f"{node.op} {node.label}: dtypes {t[0].dtype} and {t[1].dtype} differ")
    return [TType(tuple(shape), t[0].dtype)]


def _int_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ONNX integer Div truncates toward zero (numpy's // floors)."""
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) ^ (b < 0), -q, q).astype(a.dtype)


def _binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], fused: bool) -> None:
    def run(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
        y = np.asarray(fn(x[0], x[1])).astype(x[0].dtype, copy=False)
        return [apply_fused_act(y, node.attrs) if fused and y.dtype.kind == "f" else y]

    run.__doc__ = f"elementwise {name} with broadcasting"
    attrs = dict(FUSED_ACT_ATTRS) if fused else None
    op(
        name,
        attrs=attrs,
        inputs=(2, 2),
        infer=_infer,
        dtypes=NUMERIC,
        layout="broadcast",
        memory="in_place" if fused else "own",
        quant=CALIBRATED if fused else NOT_QUANTIZED,
        kernels=("tvc_binary.c",) if fused else (),
    )(run)


_binary("add", np.add, True)
_binary("sub", np.subtract, True)
_binary("mul", np.multiply, True)
_binary("div", lambda a, b: _int_div(a, b) if a.dtype.kind == "i" else np.divide(a, b), False)

ADD_LEFT_SHIFT = {"i8": 20, "i16": 15}


def _add_sub_int(sign: int) -> Callable[..., list[np.ndarray]]:
    def run_int(
        node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
    ) -> list[np.ndarray]:
        """TFLite int8 Add: both inputs to a common 2x-max scale with 20 bits of headroom,
        summed, requantized to the output scale. SeeDot: align both exponents to the output's."""
        e1, e2, eo = pow2_exp(ins[0]), pow2_exp(ins[1]), pow2_exp(outs[0])
        if e1 is not None and e2 is not None and eo is not None:
            total = shift_round(x[0], eo - e1) + sign * shift_round(x[1], eo - e2)
            return [finish(total, outs[0], act_range(node.attrs))]
        (s1, z1), (s2, z2), (so, zo) = scale_zp(ins[0]), scale_zp(ins[1]), scale_zp(outs[0])
        left = ADD_LEFT_SHIFT[outs[0].dtype]
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = quantize_multiplier(s1 / twice_max)
        m2, sh2 = quantize_multiplier(s2 / twice_max)
        mo, sho = quantize_multiplier(twice_max / ((1 << left) * so))
        v1 = mbqm_lt_one(wrap32((x[0].astype(np.int64) - z1) << left), m1, sh1)
        v2 = mbqm_lt_one(wrap32((x[1].astype(np.int64) - z2) << left), m2, sh2)
        raw = mbqm_lt_one(v1 + sign * v2, mo, sho) + zo
        return [finish(raw, outs[0], act_range(node.attrs))]

    return run_int


int_ref("add")(_add_sub_int(1))
int_ref("sub")(_add_sub_int(-1))


@int_ref("mul")
def mul_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite int8 Mul: product of offset inputs, one requantization by s1*s2/s_out.
    SeeDot: the product's exponent is the sum; one rounding shift to the output's."""
    e1, e2, eo = pow2_exp(ins[0]), pow2_exp(ins[1]), pow2_exp(outs[0])
    if e1 is not None and e2 is not None and eo is not None:
        prod = x[0].astype(np.int64) * x[1].astype(np.int64)
        return [finish(shift_round(prod, eo - e1 - e2), outs[0], act_range(node.attrs))]
    (s1, z1), (s2, z2), (so, zo) = scale_zp(ins[0]), scale_zp(ins[1]), scale_zp(outs[0])
    m, sh = quantize_multiplier(s1 * s2 / so)
    prod = (x[0].astype(np.int64) - z1) * (x[1].astype(np.int64) - z2)
    return [finish(mbqm(wrap32(prod), m, sh) + zo, outs[0], act_range(node.attrs))]
