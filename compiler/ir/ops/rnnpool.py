"""RNNPool (Saha et al., NeurIPS 2020): two FastGRNNs summarize each patch of a feature map.

The contract is docs/rnnpool.md. The float reference is vectorized over every patch at once;
the integer reference is the arithmetic of compiler/runtime/tvc_rnnpool.c step for step:

- weights int16 at power-of-two exponents, hidden states int16 at e_h1 / e_h2 (`state_exps`),
  biases int32 in Q11 (the pre-activation format); the input and output are int8 or int16,
  power-of-two or TFLite-affine (an affine input's scale is folded into W1 by the quantizer);
- W x and U h accumulate exactly in int32 (the quantizer bounds every weight row's L1 norm),
  each is rounded once to Q11 and saturated to 25 bits, and the biases are added;
- sigmoid and tanh read one 4096-entry Q15 sigmoid table over [-8, 8) (tanh v = 2 sigmoid(2v)
  - 1), nearest entry: <= 5e-4 / 1e-3 absolute error, four instructions each on a Cortex-M4;
- h = z h + (zeta (1 - z) + nu) c with z, c, zeta, nu in Q15, each product rounded once.

W x is the same for the row and the column sweep through a pixel, so the kernel computes it once
per pixel of the patch (and W2 r once per summary for RNN2's forward and backward sweeps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Node
from compiler.ir.lowering import SUFFIX, LowerCtx, Lowered, struct
from compiler.ir.ops._qutil import pow2_exp, scale_zp
from compiler.ir.ops._util import from_nhwc, hwc_dims, make_shape, to_nhwc, windows
from compiler.ir.registry import AttrSpec, Quant, TType, int_ref, lowering, op, params
from compiler.ir.tensor import DTYPES, Tensor
from compiler.numerics.fixedpoint import INT32_MAX, QRANGE, mbqm, quantize_multiplier
from compiler.numerics.pow2 import shift_round

RNNPOOL_ATTRS = {
    "patch": AttrSpec("ints"),
    "stride": AttrSpec("ints"),
    "hidden1": AttrSpec("int"),
    "hidden2": AttrSpec("int"),
    "zeta1": AttrSpec("float"),
    "nu1": AttrSpec("float"),
    "zeta2": AttrSpec("float"),
    "nu2": AttrSpec("float"),
    # fixed point, set by the quantizer: exponents of RNN1's and RNN2's hidden states
    "state_exps": AttrSpec("ints", []),
}
WEIGHTS = ("W1", "U1", "bz1", "bh1", "W2", "U2", "bz2", "bh2")
PRE_BITS = 11  # pre-activations in Q11
SIG_RANGE = 8  # the sigmoid table covers [-8, 8]
SIG_STEP_BITS = 3  # Q11 codes per table step: 2^3 / 2^11 = 1/256
PRE_CLAMP = 1 << 24  # Q11 pre-activation parts are held in [-2^24, 2^24) (int32-safe sums)
# table index = (v + SIG_OFFSET) >> SIG_STEP_BITS: the range's start and half a step, so rounding
SIG_OFFSET = (SIG_RANGE << PRE_BITS) + (1 << (SIG_STEP_BITS - 1))
SIG_POINTS = 2 * SIG_RANGE * (1 << PRE_BITS) >> SIG_STEP_BITS  # 4096 table entries


def rnnpool_out_hw(node: Node, h: int, w: int) -> tuple[int, int]:
    (ph, pw), (sh, sw) = node.attrs["patch"], node.attrs["stride"]  # type: ignore[misc]
    return (h - ph) // sh + 1, (w - pw) // sw + 1


def _infer(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    a = node.attrs
    layout = str(a["layout"])
    if len(t[0].shape) != 4:
        raise IRError(f"rnnpool {node.label}: input must be 4-D, got {list(t[0].shape)}")
    n, h, w, c = hwc_dims(t[0].shape, layout)
    h1, h2 = int(a["hidden1"]), int(a["hidden2"])  # type: ignore[call-overload]
    want = [(h1, c), (h1, h1), (h1,), (h1,), (h2, h1), (h2, h2), (h2,), (h2,)]
    for name, shape, got in zip(WEIGHTS, want, t[1:], strict=True):
        if tuple(got.shape) != shape:
            raise IRError(
                f"rnnpool {node.label}: {name} has shape {list(got.shape)}, expected {list(shape)}"
            )
    if len(a["patch"]) != 2 or len(a["stride"]) != 2:  # type: ignore[arg-type]
        raise IRError(f"rnnpool {node.label}: patch and stride take two values (h, w)")
    if min(*a["patch"], *a["stride"]) < 1:  # type: ignore[misc]
        raise IRError(f"rnnpool {node.label}: patch and stride must be positive")
    oh, ow = rnnpool_out_hw(node, h, w)
    if oh <= 0 or ow <= 0:
        raise IRError(f"rnnpool {node.label}: input {h}x{w} is smaller than one patch")
    return [TType(make_shape(n, oh, ow, 4 * h2, layout), t[0].dtype)]


def _macs(node: Node, ins: list[TType], outs: list[TType]) -> int:
    """As the paper counts them: every cell step's W x and U h, per patch."""
    a = node.attrs
    n, _, _, c = hwc_dims(ins[0].shape, str(a["layout"]))
    _, oh, ow, _ = hwc_dims(outs[0].shape, str(a["layout"]))
    (ph, pw), h1, h2 = a["patch"], int(a["hidden1"]), int(a["hidden2"])  # type: ignore[misc, call-overload]
    rnn1 = 2 * ph * pw * (h1 * c + h1 * h1)
    rnn2 = 2 * (ph + pw) * (h2 * h1 + h2 * h2)
    return n * oh * ow * (rnn1 + rnn2)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def _fastgrnn(
    wx: np.ndarray,
    u: np.ndarray,
    bz: np.ndarray,
    bh: np.ndarray,
    zeta: float,
    nu: float,
    reverse: bool = False,
    stats: list[float] | None = None,
) -> np.ndarray:
    """Final state of a FastGRNN over axis 0 of `wx` (W x_t, precomputed): [T, ..., hidden]."""
    steps = range(wx.shape[0] - 1, -1, -1) if reverse else range(wx.shape[0])
    h = np.zeros(wx.shape[1:], np.float32)
    zeta32, nu32, one = np.float32(zeta), np.float32(nu), np.float32(1)
    for k, t in enumerate(steps):
        a = wx[t] if k == 0 else wx[t] + h @ u.T
        z = _sigmoid(a + bz)
        c = np.tanh(a + bh).astype(np.float32)
        h = z * h + (zeta32 * (one - z) + nu32) * c
        if stats is not None:
            stats.append(float(np.abs(h).max()))
    return h


def rnnpool_nhwc(
    x: np.ndarray,
    w: list[np.ndarray],
    attrs: dict[str, object],
    stats: dict[str, float] | None = None,
) -> np.ndarray:
    """Float RNNPool on NHWC data; `stats` collects the largest |h| of each RNN (calibration)."""
    w1, u1, bz1, bh1, w2, u2, bz2, bh2 = (np.asarray(v, np.float32) for v in w)
    ph, pw = attrs["patch"]  # type: ignore[misc]
    n, h, wd, _ = x.shape
    oh, ow = (h - ph) // attrs["stride"][0] + 1, (wd - pw) // attrs["stride"][1] + 1  # type: ignore[index]
    win = windows(x.astype(np.float32), [ph, pw], attrs["stride"], [1, 1], (oh, ow))  # type: ignore[arg-type]
    # W1 x for every pixel of every patch: [ph, pw, N, OH, OW, h1]
    wx = np.einsum("noqcij,hc->ijnoqh", win, w1, optimize=True).astype(np.float32)
    s1: list[float] | None = [] if stats is not None else None
    s2: list[float] | None = [] if stats is not None else None
    z1, n1 = float(attrs["zeta1"]), float(attrs["nu1"])  # type: ignore[arg-type]
    z2, n2 = float(attrs["zeta2"]), float(attrs["nu2"])  # type: ignore[arg-type]
    rows = _fastgrnn(wx.transpose(1, 0, 2, 3, 4, 5), u1, bz1, bh1, z1, n1, stats=s1)  # [ph, ...]
    cols = _fastgrnn(wx, u1, bz1, bh1, z1, n1, stats=s1)  # [pw, N, OH, OW, h1]
    wr, wc = rows @ w2.T, cols @ w2.T
    out = [
        _fastgrnn(seq, u2, bz2, bh2, z2, n2, reverse, s2)
        for seq in (wr, wc)
        for reverse in (False, True)
    ]
    if stats is not None:
        stats["h1"] = max(stats.get("h1", 0.0), max(s1, default=0.0))  # type: ignore[arg-type]
        stats["h2"] = max(stats.get("h2", 0.0), max(s2, default=0.0))  # type: ignore[arg-type]
    return np.concatenate(out, axis=-1).astype(np.float32)


@op(
    "rnnpool",
    attrs=RNNPOOL_ATTRS,
    inputs=(9, 9),
    infer=_infer,
    macs=_macs,
    layout="spatial",
    memory="own",
    quant=Quant("calibrated", weights="rnnpool"),
    kernels=("tvc_conv.c", "tvc_rnnpool.c"),  # tvc_rnnpool.c holds conv_rnnpool too
)
def rnnpool(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """RNNPool with FastGRNN cells: Y[:, :, i, j] = (rows fwd, rows bwd, cols fwd, cols bwd)."""
    layout = str(node.attrs["layout"])
    y = rnnpool_nhwc(to_nhwc(x[0], layout), x[1:], node.attrs)
    return [np.ascontiguousarray(from_nhwc(y, layout))]


# --- fixed point --------------------------------------------------------------------------------


def sigmoid_table() -> np.ndarray:
    """Q15 sigmoid at -8, -8 + 1/256, ..., 8 - 1/256: one entry per table step."""
    v = (np.arange(SIG_POINTS) - SIG_POINTS // 2) / float(1 << (PRE_BITS - SIG_STEP_BITS))
    return np.minimum(np.floor(32768.0 / (1.0 + np.exp(-v)) + 0.5), 32767).astype(np.int64)


SIG_TABLE = sigmoid_table()


def sigmoid_q15(v: np.ndarray) -> np.ndarray:
    """Sigmoid of Q11 codes, Q15 result: the nearest table entry (error <= 1/2048 + 1/65536).
    One add, shift, saturate and load on a Cortex-M: cheaper than interpolating, and finer than
    the int8 activations around RNNPool."""
    i = (np.asarray(v, np.int64) + SIG_OFFSET) >> SIG_STEP_BITS
    return SIG_TABLE[np.clip(i, 0, SIG_POINTS - 1)]


def tanh_q15(v: np.ndarray) -> np.ndarray:
    return 2 * sigmoid_q15(2 * np.asarray(v, np.int64)) - 32768


def gate_coef(z: np.ndarray, zeta: int, nu: int) -> np.ndarray:
    """zeta (1 - z) + nu in Q15 (<= 65534: the kernels tabulate it per sigmoid entry, uint16)."""
    return ((zeta * (32768 - np.asarray(z, np.int64)) + (1 << 14)) >> 15) + nu


def q15(v: float) -> int:
    return int(min(max(round(v * 32768.0), 0), 32767))


def _pre(acc: np.ndarray, shift: int) -> np.ndarray:
    """An exact product sum rounded to Q11 and saturated to 25 bits (the kernel's SSAT)."""
    return np.clip(shift_round(acc, shift), -PRE_CLAMP, PRE_CLAMP - 1)


def rnnpool_scratch_bytes(attrs: dict[str, object], in_channels: int) -> int:
    """The kernel's work area: W1 x per patch pixel and W2 r per summary (int32), the summaries,
    two state vectors and one widened input pixel (int16)."""
    (ph, pw), h1, h2 = attrs["patch"], int(attrs["hidden1"]), int(attrs["hidden2"])  # type: ignore[misc, call-overload]
    words = ph * pw * h1 + (ph + pw) * h2
    halves = (ph + pw) * h1 + 2 * max(h1, h2) + in_channels
    return 4 * words + 2 * halves


def _fastgrnn_int(
    vw: np.ndarray,
    u: np.ndarray,
    bz: np.ndarray,
    bh: np.ndarray,
    u_shift: int,
    zeta: int,
    nu: int,
    e_h: int,
    reverse: bool = False,
) -> np.ndarray:
    """Integer FastGRNN over axis 0; `vw` is W x_t already in Q11 (int64)."""
    steps = range(vw.shape[0] - 1, -1, -1) if reverse else range(vw.shape[0])
    h = np.zeros(vw.shape[1:-1] + (u.shape[0],), np.int64)
    for k, t in enumerate(steps):
        v = vw[t] if k == 0 else vw[t] + _pre(h @ u.T, u_shift)
        z = sigmoid_q15(v + bz)
        c = tanh_q15(v + bh)
        coef = gate_coef(z, zeta, nu)
        h = ((z * h + (1 << 14)) >> 15) + shift_round(coef * c, 30 + e_h)
        h = np.clip(h, -32768, 32767)
    return h


@dataclass(frozen=True)
class RnnpoolFormats:
    """Everything the integer RNNPool needs beyond its weights, for kernels and interpreter.

    shifts: rounding shifts of each exact product sum to Q11 and of coef * c (Q30) to each
    state. A TFLite-affine input is read as (x - in_zp), its scale folded into W1 by the
    quantizer (W1's integers are in units of 2^e_W1 / s_x); an affine output takes the
    multiplier `out_mult` (value, shift) from RNN2's state and adds `out_zp`, a power-of-two
    one a rounding shift by `out_shift`."""

    shifts: dict[str, int]
    in_zp: int = 0
    out_mult: tuple[int, int] | None = None
    out_shift: int = 0
    out_zp: int = 0


def rnnpool_formats(node: Node, ins: list[Tensor], outs: list[Tensor]) -> RnnpoolFormats:
    """The formats of a quantized node, checked: shifts that right-shift, int16 constant
    weights whose row sums cannot overflow an int32 accumulator, Q11 int32 biases."""
    state = [int(e) for e in node.attrs["state_exps"]]  # type: ignore[union-attr]
    w_exps = [pow2_exp(ins[k]) for k in (1, 2, 5, 6)]
    if len(state) != 2 or None in w_exps or ins[0].qparams is None or outs[0].qparams is None:
        raise IRError(
            f"rnnpool {node.label}: not quantized for RNNPool (int16 weights at power-of-two "
            "exponents, state formats); quantize the model with tvc"
        )
    e_w1, e_u1, e_w2, e_u2 = (int(e) for e in w_exps)  # type: ignore[arg-type]
    e_h1, e_h2 = state
    shifts = {
        "u1": -PRE_BITS - (e_u1 + e_h1),
        "w2": -PRE_BITS - (e_w2 + e_h1),
        "u2": -PRE_BITS - (e_u2 + e_h2),
        "c1": 30 + e_h1,
        "c2": 30 + e_h2,
    }
    e_x, e_y = pow2_exp(ins[0]), pow2_exp(outs[0])
    fmt: dict[str, object] = {}
    shifts["w1"] = -PRE_BITS - (e_w1 + (0 if e_x is None else e_x))
    if e_x is None:
        fmt["in_zp"] = scale_zp(ins[0])[1]
    if e_y is not None:
        fmt["out_shift"] = e_y - e_h2
    else:
        s_y, z_y = scale_zp(outs[0])
        fmt.update(out_zp=z_y, out_mult=quantize_multiplier(2.0**e_h2 / s_y))
    bad = {k: v for k, v in shifts.items() if v < (2 if k.startswith("c") else 1)}
    if bad:
        raise IRError(
            f"rnnpool {node.label}: fixed-point formats need right shifts, got {bad}; "
            "give the states or weights more fractional bits"
        )
    for k in (3, 4, 7, 8):
        if pow2_exp(ins[k]) != -PRE_BITS or ins[k].dtype != "i32":
            raise IRError(f"rnnpool {node.label}: biases must be int32 in Q{PRE_BITS}")
    lo, _ = QRANGE[ins[0].dtype]
    for k in (1, 2, 5, 6):  # the kernel accumulates in int32: no sum may overflow
        x_max = abs(lo) + abs(int(fmt.get("in_zp", 0))) if k == 1 else 32768  # type: ignore[call-overload]
        w = ins[k].data
        if w is None or ins[k].dtype != "i16":
            raise IRError(f"rnnpool {node.label}: {WEIGHTS[k - 1]} must be constant int16")
        if int(np.abs(w.astype(np.int64)).sum(axis=1).max()) * x_max > INT32_MAX:
            raise IRError(
                f"rnnpool {node.label}: {WEIGHTS[k - 1]} row sums could overflow the int32 "
                "accumulator; quantize with a larger exponent"
            )
    return RnnpoolFormats(shifts, **fmt)  # type: ignore[arg-type]


params("rnnpool")(rnnpool_formats)


@int_ref("rnnpool")
def rnnpool_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    a = node.attrs
    if a["layout"] != "NHWC":
        raise IRError(f"rnnpool {node.label}: integer RNNPool runs on NHWC data")
    f = rnnpool_formats(node, ins, outs)
    sh = f.shifts
    e_h1, e_h2 = (int(e) for e in a["state_exps"])  # type: ignore[union-attr]
    w1, u1, bz1, bh1, w2, u2, bz2, bh2 = (v.astype(np.int64) for v in x[1:])
    _, h, wd, _ = x[0].shape
    oh, ow = rnnpool_out_hw(node, h, wd)
    xz = x[0].astype(np.int64) - f.in_zp
    win = windows(xz, a["patch"], a["stride"], [1, 1], (oh, ow))  # type: ignore[arg-type]
    vw = _pre(np.einsum("noqcij,hc->ijnoqh", win, w1), sh["w1"])
    z1, n1 = q15(float(a["zeta1"])), q15(float(a["nu1"]))  # type: ignore[arg-type]
    z2, n2 = q15(float(a["zeta2"])), q15(float(a["nu2"]))  # type: ignore[arg-type]
    rows = _fastgrnn_int(vw.transpose(1, 0, 2, 3, 4, 5), u1, bz1, bh1, sh["u1"], z1, n1, e_h1)
    cols = _fastgrnn_int(vw, u1, bz1, bh1, sh["u1"], z1, n1, e_h1)
    out = [
        _fastgrnn_int(_pre(seq @ w2.T, sh["w2"]), u2, bz2, bh2, sh["u2"], z2, n2, e_h2, rev)
        for seq in (rows, cols)
        for rev in (False, True)
    ]
    y = np.concatenate(out, axis=-1)
    lo, hi = QRANGE[outs[0].dtype]
    if f.out_mult is None:
        y = np.clip(shift_round(y, f.out_shift), lo, hi)
    else:
        y = np.clip(mbqm(y, *f.out_mult) + f.out_zp, lo, hi)
    return [y.astype(DTYPES[outs[0].dtype])]


# --- lowering ------------------------------------------------------------------------------


def rnnpool_struct(ctx: LowerCtx, low: Lowered, name: str, node: Node, x: Tensor) -> None:
    """The tvc_rnnpool_t of a node reading `x`: geometry, Q11/Q15 shifts and gate tables,
    weight pointers (the biases with the sigmoid table's offset and rounding folded in)."""
    a = node.attrs
    ins = [x, *(ctx.graph.tensors[i] for i in node.inputs[-8:])]
    y = ctx.graph.tensors[node.outputs[0]]
    f = rnnpool_formats(node, ins, [y])
    _, h, w, c = x.shape
    lo, hi = QRANGE[y.dtype]
    fields: dict[str, object] = {
        "in_h": h,
        "in_w": w,
        "in_c": c,
        "out_h": y.shape[1],
        "out_w": y.shape[2],
        "out_c": y.shape[3],
        "patch_h": a["patch"][0],  # type: ignore[index]
        "patch_w": a["patch"][1],  # type: ignore[index]
        "stride_h": a["stride"][0],  # type: ignore[index]
        "stride_w": a["stride"][1],  # type: ignore[index]
        "hidden1": a["hidden1"],
        "hidden2": a["hidden2"],
        **{f"shift_{k}": v for k, v in f.shifts.items()},
        "in_zp": f.in_zp,
        "out_mult": f.out_mult[0] if f.out_mult else 0,
        "out_shift": f.out_mult[1] if f.out_mult else f.out_shift,
        "out_zp": f.out_zp,
        "out_min": lo,
        "out_max": hi,
    }
    for key, src in zip(
        ("w1", "u1", "bz1", "bh1", "w2", "u2", "bz2", "bh2"), node.inputs[-8:], strict=True
    ):
        data = ctx.graph.tensors[src].data
        assert data is not None
        if key.startswith("bz"):  # the sigmoid's table offset and rounding folded in
            ctx.replace(src)
            fields[key] = low.table(f"{name}_{key}", "int32_t", data + SIG_OFFSET)
        elif key.startswith("bh"):  # tanh reads the table at 2 (v + bh)
            ctx.replace(src)
            fields[key] = low.table(f"{name}_{key}", "int32_t", 2 * data + SIG_OFFSET)
        else:
            fields[key] = ctx.ptr(src)
    fields["sigmoid"] = low.table(f"{name}_sigmoid", "int16_t", SIG_TABLE)
    for k in ("1", "2"):
        coef = gate_coef(SIG_TABLE, q15(float(a[f"zeta{k}"])), q15(float(a[f"nu{k}"])))  # type: ignore[arg-type]
        fields[f"coef{k}"] = low.table(f"{name}_coef{k}", "uint16_t", coef)
    low.decls.append(struct("tvc_rnnpool_t", name, fields))


@lowering(
    "rnnpool",
    "portable",
    scratch=lambda g, n: rnnpool_scratch_bytes(n.attrs, g.tensors[n.inputs[0]].shape[3]),
)
def rnnpool_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x = ctx.graph.tensors[node.inputs[0]]
    y = ctx.graph.tensors[node.outputs[0]]
    rnnpool_struct(ctx, low, ctx.name, node, x)
    low.stmts.append(
        ctx.call(
            f"rnnpool_{SUFFIX[y.dtype]}",
            f"&{ctx.name}",
            ctx.ptr(node.inputs[0]),
            str(y.shape[1]),
            ctx.scratch_ptr("int32_t"),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low
