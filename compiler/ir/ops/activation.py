"""Pointwise activations and softmax; also the fused-activation clamp that conv/dense carry."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.ops._qutil import finish, pow2_exp, scale_zp
from compiler.ir.ops._util import permute_axis, same
from compiler.ir.registry import CALIBRATED, AttrSpec, Quant, get_op, int_ref, op
from compiler.ir.tensor import Tensor
from compiler.numerics import fixedpoint as fx
from compiler.numerics.fixedpoint import trunc_div
from compiler.numerics.pow2 import pointwise, saturate

FUSED_ACTS = ("none", "relu", "relu6", "clip")
# attributes every op with a fused activation carries
FUSED_ACT_ATTRS = {
    "act": AttrSpec("str", "none", FUSED_ACTS),
    "clip": AttrSpec("floats", None),  # [lo, hi], only with act="clip"
}


def act_range(attrs: dict[str, object]) -> tuple[float, float] | None:
    """The clamp a fused activation applies, or None."""
    act = attrs.get("act", "none")
    if act == "relu":
        return 0.0, float("inf")
    if act == "relu6":
        return 0.0, 6.0
    if act == "clip":
        lo, hi = attrs["clip"]  # type: ignore[misc]
        return float(lo), float(hi)
    return None


def apply_fused_act(y: np.ndarray, attrs: dict[str, object]) -> np.ndarray:
    r = act_range(attrs)
    return y if r is None else np.clip(y, r[0], r[1]).astype(y.dtype)


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32, copy=False)


@op(
    "relu",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.maximum(x[0], np.float32(0))]


@op(
    "clip",
    attrs={"min": AttrSpec("float", float("-inf")), "max": AttrSpec("float", float("inf"))},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def clip(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(np.clip(x[0], node.attrs["min"], node.attrs["max"]))]


@op(
    "leaky_relu",
    attrs={"alpha": AttrSpec("float", 0.01)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def leaky_relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a = np.float32(node.attrs["alpha"])
    return [np.where(x[0] >= 0, x[0], x[0] * a)]


@op(
    "sigmoid",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=Quant("fixed", (1.0 / 256, -128)),
    kernels=("tvc_pointwise.c",),
)
def sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(1.0 / (1.0 + np.exp(-x[0].astype(np.float64))))]


@op(
    "tanh",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=Quant("fixed", (1.0 / 128, 0)),
    kernels=("tvc_pointwise.c",),
)
def tanh(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.tanh(x[0])]


@op(
    "hard_sigmoid",
    attrs={"alpha": AttrSpec("float", 0.2), "beta": AttrSpec("float", 0.5)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def hard_sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a, b = np.float32(node.attrs["alpha"]), np.float32(node.attrs["beta"])
    return [_f32(np.clip(x[0] * a + b, 0, 1))]


@op(
    "hard_swish",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="in_place",
    quant=CALIBRATED,
    kernels=("tvc_pointwise.c",),
)
def hard_swish(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """x * relu6(x + 3) / 6 (ONNX HardSwish: alpha 1/6, beta 0.5)."""
    return [_f32(x[0] * np.clip(x[0] * np.float32(1 / 6) + np.float32(0.5), 0, 1))]


@op(
    "softmax",
    attrs={"axis": AttrSpec("int", -1), "beta": AttrSpec("float", 1.0)},
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="own",
    quant=Quant("fixed", (1.0 / 256, -128)),
    kernels=("tvc_softmax.c",),
    permute_attrs=permute_axis,
)
def softmax(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs["axis"])  # type: ignore[arg-type]
    z = (x[0] - x[0].max(axis=axis, keepdims=True)) * np.float32(node.attrs["beta"])
    e = np.exp(z)
    return [_f32(e / e.sum(axis=axis, keepdims=True))]


# --- integer references ----------------------------------------------------------------------


def _relux_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor], lo: float, hi: float
) -> list[np.ndarray]:
    """TFLite ReluX: requantize to the output scale, clamp to the activation's range."""
    (si, zi), (so, zo) = scale_zp(ins[0]), scale_zp(outs[0])
    m, sh = fx.quantize_multiplier(si / so)
    return [finish(zo + fx.mbqm(x[0].astype(np.int64) - zi, m, sh), outs[0], (lo, hi))]


@int_ref("relu")
def relu_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    return _relux_int(node, x, ins, outs, 0.0, float("inf"))


@int_ref("clip")
def clip_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    return _relux_int(node, x, ins, outs, float(node.attrs["min"]), float(node.attrs["max"]))  # type: ignore[arg-type]


def _sigmoid_f32(v: np.ndarray) -> np.ndarray:
    """1.0f / (1.0f + expf(-v)) evaluated in float32 steps (expf correctly rounded)."""
    e = np.exp(-v.astype(np.float64)).astype(np.float32)
    return np.float32(1) / (np.float32(1) + e)


def _lut_int(fn, x: np.ndarray, ins: list[Tensor], outs: list[Tensor]) -> np.ndarray:  # type: ignore[no-untyped-def]
    e_in, e_out = pow2_exp(ins[0]), pow2_exp(outs[0])
    if e_in is not None and e_out is not None:
        dt = np.int8 if outs[0].dtype == "i8" else np.int16
        return pointwise(fn, x, e_in, e_out, outs[0].dtype).astype(dt)
    if outs[0].dtype != "i8":
        raise IRError("affine pointwise integer kernels are int8 lookup tables")
    (si, zi), (so, zo) = scale_zp(ins[0]), scale_zp(outs[0])
    table = fx.lut_int8(si, zi, so, zo, fn)
    return table[x.astype(np.int64) + 128].astype(np.int8)


@int_ref("sigmoid")
def sigmoid_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite int8 Logistic: a 256-entry table built from the float function."""
    return [_lut_int(_sigmoid_f32, x[0], ins, outs)]


@int_ref("tanh")
def tanh_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    return [_lut_int(lambda v: np.tanh(v.astype(np.float64)).astype(np.float32), x[0], ins, outs)]


@int_ref("softmax")
def softmax_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """TFLite reference int8 Softmax: gemmlowp fixed-point exp of scaled differences to the
    row max, a fixed-point reciprocal of their sum; output scale 1/256, zero point -128."""
    axis = int(node.attrs["axis"]) % x[0].ndim  # type: ignore[arg-type]
    e_in, e_out = pow2_exp(ins[0]), pow2_exp(outs[0])
    if e_in is not None and e_out is not None:
        return [_softmax_pow2(node, x[0], e_in, e_out, outs[0].dtype, axis)]
    if axis != x[0].ndim - 1 or outs[0].dtype != "i8":
        raise IRError(f"softmax {node.label}: integer softmax runs over the last axis, int8")
    si, _ = scale_zp(ins[0])
    mult, shift, diff_min = fx.softmax_params(float(node.attrs["beta"]), si)  # type: ignore[arg-type]
    v = x[0].astype(np.int64)
    diff = v - v.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    scaled = fx.mbqm_gt_one(diff, mult, shift)
    exps = np.where(valid, fx.exp_on_negative_values(scaled, 5), 0)
    total = fx.rdbpot(exps, 12).sum(axis=-1, keepdims=True)  # Rescale<12>, F12 accumulator
    recip, over = fx.get_reciprocal(total, 12)
    out = fx.rdbpot(fx.srdhm(recip, exps), over + 31 - 8) - 128
    return [np.where(valid, np.clip(out, -128, 127), -128).astype(np.int8)]


def _pointwise_lut(name: str) -> None:
    """int8 of any pointwise float op: a 256-entry table of the float reference, evaluated on
    every input code (our kernel; TFLite has no int8 kernel for these, or a different one)."""
    float_run = get_op(name).run

    def run_int(
        node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
    ) -> list[np.ndarray]:
        return [_lut_int(lambda v: float_run(node, [v])[0], x[0], ins, outs)]

    run_int.__doc__ = f"int8 {name} by lookup table"
    int_ref(name)(run_int)


for _name in ("hard_swish", "hard_sigmoid", "leaky_relu"):
    _pointwise_lut(_name)


def _softmax_pow2(
    node: Node, x: np.ndarray, e_in: int, e_out: int, dtype: str, axis: int
) -> np.ndarray:
    """SeeDot softmax: exp of (x - max) by the pointwise table into Q0.15, an int32 sum, one
    rounded integer division per element into the output exponent."""
    beta = np.float32(node.attrs["beta"])
    v = x.astype(np.int64)
    bits = 16 if dtype == "i16" else 8
    diff = np.maximum(v - v.max(axis=axis, keepdims=True), -(1 << (bits - 1)))
    e = pointwise(
        lambda t: np.exp(t.astype(np.float64) * beta).astype(np.float32),
        diff,
        e_in,
        -(bits - 1),
        dtype,
    )
    total = e.sum(axis=axis, keepdims=True)
    num = e << (-e_out)
    out = trunc_div(num + total // 2, np.maximum(total, 1))
    return saturate(out, dtype).astype(np.int8 if dtype == "i8" else np.int16)
