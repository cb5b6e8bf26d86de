"""Lowering: each node of a quantized graph becomes one (or a few) calls of the portable
runtime (runtime/c), with its parameters computed here, at compile time, by the same functions
the integer reference interpreter uses, so C and interpreter agree bit for bit.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import TvcError
from compiler.ir.graph import Graph, Node
from compiler.ir.ops._qutil import pow2_exp, scale_zp
from compiler.ir.ops.activation import _sigmoid_f32, act_range
from compiler.ir.ops.elementwise import ADD_LEFT_SHIFT
from compiler.ir.ops.rnnpool import (
    SIG_OFFSET,
    SIG_TABLE,
    gate_coef,
    q15,
    rnnpool_formats,
    rnnpool_scratch_bytes,
)
from compiler.ir.ops.tensor_ops import slice_index
from compiler.ir.registry import get_op
from compiler.numerics import fixedpoint as fx
from compiler.numerics.pow2 import TABLE_BITS, pointwise_table
from compiler.passes.plan import Plan, scratch_name
from compiler.passes.schedule import patch_regions


def portable_scratch(graph: Graph) -> dict[int, int]:
    """Work buffers of the portable kernels per node index: conv2d_s8 with groups == 1 keeps two
    im2col columns of int16 (used on DSP cores)."""
    out = {}
    for k, n in enumerate(graph.nodes):
        if n.op == "conv2d" and graph.tensors[n.inputs[0]].dtype == "i8" and n.attrs["groups"] == 1:
            _, kh, kw, c = graph.tensors[n.inputs[1]].shape
            out[k] = 2 * ((kh * kw * c + 3) & ~3) * 2
        elif n.op == "rnnpool":
            out[k] = rnnpool_scratch_bytes(n.attrs, graph.tensors[n.inputs[0]].shape[3])
    return out


class CodegenError(TvcError):
    exit_code = 3


C_TYPES = {"i8": "int8_t", "i16": "int16_t", "i32": "int32_t", "i64": "int64_t"}
SUFFIX = {"i8": "s8", "i16": "s16"}
BYTES = {"i8": "b1", "i16": "b2"}


def c_ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and not s[0].isdigit() else "t_" + s


@dataclass
class Const:
    """An array that goes to flash."""

    symbol: str
    ctype: str
    values: np.ndarray


@dataclass
class Lowered:
    decls: list[str] = field(default_factory=list)  # static const parameter structs / tables
    stmts: list[str] = field(default_factory=list)  # statements of the run function
    consts: list[Const] = field(default_factory=list)  # extra flash arrays (tables, multipliers)


def _ints(values: np.ndarray | list[int]) -> str:
    return ", ".join(str(int(v)) for v in np.asarray(values).reshape(-1))


def _struct(ctype: str, name: str, fields: dict[str, object]) -> str:
    body = ", ".join(f".{k} = {v}" for k, v in fields.items())
    return f"static const {ctype} {name} = {{{body}}};"


def _dims4(shape: tuple[int, ...]) -> list[int]:
    if len(shape) > 4:
        raise CodegenError(f"tensors of rank {len(shape)} have no C kernel (at most 4)")
    return [1] * (4 - len(shape)) + list(shape)


def _strides(shape: list[int]) -> list[int]:
    out = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        out[k] = out[k + 1] * shape[k + 1]
    return out


class Lowering:
    """Turns nodes into kernel calls; `ptr` names where each tensor lives."""

    def __init__(
        self, graph: Graph, plan: Plan, prefix: str, regions: tuple[str, ...] = ()
    ) -> None:
        self.g = graph
        self.plan = plan
        self.prefix = prefix
        self.regions = regions  # names of the extra RAM regions, plan region 1, 2, ...
        self.weight_symbols: dict[str, str] = {}
        self.files: set[str] = set()  # runtime/c sources of the kernels called (op facts)
        self.features: set[str] = set()  # macros for tvc_prefix.h: optional kernel paths
        self.replaced: set[str] = set()  # constants a kernel reads in another layout instead
        regions = patch_regions(graph) if plan.patchwise else []
        self.patch_convs = {r.conv for r in regions}
        self.patch_pools = {r.pool for r in regions}
        self.patch_conv_args: list[str] = []
        for k, (name, t) in enumerate(
            sorted((n, t) for n, t in graph.tensors.items() if t.is_const)
        ):
            del t
            self.weight_symbols[name] = f"{prefix}_c{k}"

    def ptr(self, name: str, const: bool = True) -> str:
        t = self.g.tensors[name]
        ct = C_TYPES.get(t.dtype)
        if ct is None:
            raise CodegenError(f"tensor {name!r} is {t.dtype}; the C kernels take int8/int16")
        if t.is_const:
            return self.weight_symbols[name]
        qual = "const " if const else ""
        caller = name in self.g.outputs or (name in self.g.inputs and name not in self.plan.offsets)
        if caller:  # the caller's buffers, never copied
            return f"({qual}{ct} *){c_ident(name).lower()}"
        return f"({qual}{ct} *)({self.base(name)} + {self.plan.offsets[name]})"

    def base(self, name: str) -> str:
        """The arena a buffer lives in: the main one, or an extra region's static arena."""
        r = self.plan.placed_in.get(name)
        return "arena" if r is None else f"{self.prefix}_arena_{self.regions[r - 1].lower()}"

    def lower(self, index: int, node: Node) -> Lowered:
        self.index = index
        self.node = node
        fn = getattr(self, f"_op_{node.op}", None)
        if fn is None:
            raise CodegenError(f"node {node.label!r} ({node.op}) has no C kernel yet")
        dt = self.g.tensors[node.outputs[0]].dtype
        if dt not in SUFFIX:
            raise CodegenError(
                f"node {node.label!r} ({node.op}) outputs {dt}; C runs quantized graphs"
            )
        return fn(f"{self.prefix}_n{index}", node, dt)

    def call(self, kernel: str, *args: str) -> str:
        self.files.update(get_op(self.node.op).kernels)
        return f"TVC_FN({kernel})({', '.join(args)});"

    def _table(self, low: Lowered, name: str, ctype: str, values: np.ndarray) -> str:
        low.consts.append(Const(name, ctype, np.asarray(values)))
        return name

    # --- compute ---------------------------------------------------------------------------
    def _requant_fields(self, low: Lowered, name: str, node: Node, n_out: int) -> dict[str, object]:
        """Per-channel TFLite multipliers, or one SeeDot shift, for conv2d."""
        x, w, y = (self.g.tensors[i] for i in (node.inputs[0], node.inputs[1], node.outputs[0]))
        e_x = pow2_exp(x)
        if e_x is not None:
            shift = int(pow2_exp(y)) - (e_x + int(pow2_exp(w)))  # type: ignore[arg-type]
            return {
                "requant": "TVC_RQ_POW2",
                "mult": "0",
                "shift": self._table(low, f"{name}_shift", "int32_t", np.array([shift])),
            }
        s_x, _ = scale_zp(x)
        s_y, _ = scale_zp(y)
        mult, shift = fx.quantize_multipliers(
            s_x * np.broadcast_to(np.asarray(w.qparams.scale, np.float64), (n_out,)) / s_y
        )  # type: ignore[union-attr]
        return {
            "requant": "TVC_RQ_MULT",
            "mult": self._table(low, f"{name}_mult", "int32_t", mult),
            "shift": self._table(low, f"{name}_shift", "int32_t", shift),
        }

    def _act(self, node: Node, out: str) -> tuple[int, int]:
        t = self.g.tensors[out]
        s, zp = scale_zp(t)
        return fx.act_bounds(act_range(node.attrs), s, zp, t.dtype)

    def _op_conv2d(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        a = node.attrs
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        _, h, w, c = x.shape
        _, oh, ow, oc = y.shape
        zx = 0 if pow2_exp(x) is not None else scale_zp(x)[1]
        zy = 0 if pow2_exp(y) is not None else scale_zp(y)[1]
        lo, hi = self._act(node, node.outputs[0])
        fields = {
            "in_h": h,
            "in_w": w,
            "in_c": c,
            "out_h": oh,
            "out_w": ow,
            "out_c": oc,
            "k_h": a["kernel"][0],
            "k_w": a["kernel"][1],  # type: ignore[index]
            "stride_h": a["stride"][0],
            "stride_w": a["stride"][1],  # type: ignore[index]
            "dil_h": a["dilation"][0],
            "dil_w": a["dilation"][1],  # type: ignore[index]
            "pad_t": a["pad"][0],
            "pad_l": a["pad"][1],
            "groups": a["groups"],  # type: ignore[index]
            "in_zp": zx,
            "out_zp": zy,
            "act_min": lo,
            "act_max": hi,
        }
        fields.update(self._requant_fields(low, name, node, oc))
        low.decls.append(_struct("tvc_conv_t", name, fields))
        bias = self.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
        self._check_bias(node, dt)
        groups = int(a["groups"])  # type: ignore[call-overload]
        if groups > 1 and groups == c:
            # depthwise: weights as [KH][KW][C_out], so runs of output channels read contiguously
            w = self.g.tensors[node.inputs[1]].data
            assert w is not None
            self.replaced.add(node.inputs[1])
            hwc = self._table(low, f"{name}_w", C_TYPES[dt], w.transpose(1, 2, 0, 3).reshape(-1))
            if oc != c and dt == "i8":  # a channel multiplier: compile in its four-lane path
                self.features.add("TVC_DW_MULTIPLIER")
            low.stmts.append(
                self.call(
                    f"depthwise_{SUFFIX[dt]}",
                    f"&{name}",
                    self.ptr(node.inputs[0]),
                    hwc,
                    bias,
                    self.ptr(node.outputs[0], False),
                )
            )
            return low
        args = [f"&{name}", self.ptr(node.inputs[0]), self.ptr(node.inputs[1]), bias]
        if dt == "i8":  # the DSP kernel's im2col columns (unused elsewhere)
            args.append(self.scratch_ptr("int16_t"))
        self.files.update(get_op(node.op).kernels)
        if self.index in self.patch_convs:  # runs band by band inside the RNNPool's step
            self.patch_conv_args = args
            low.stmts.append(f"/* patch-wise: computed band by band by step {self.index + 1} */")
            return low
        low.stmts.append(self.call(f"conv2d_{SUFFIX[dt]}", *args, self.ptr(node.outputs[0], False)))
        return low

    def rnnpool_struct(self, low: Lowered, name: str, node: Node) -> None:
        """The tvc_rnnpool_t of a node: geometry, Q11/Q15 shifts and gates, weight pointers."""
        a = node.attrs
        ins = [self.g.tensors[i] for i in node.inputs]
        y = self.g.tensors[node.outputs[0]]
        f = rnnpool_formats(node, ins, [y])
        _, h, w, c = ins[0].shape
        lo, hi = fx.QRANGE[y.dtype]
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
            ("w1", "u1", "bz1", "bh1", "w2", "u2", "bz2", "bh2"), node.inputs[1:], strict=True
        ):
            data = self.g.tensors[src].data
            assert data is not None
            if key.startswith("bz"):  # the sigmoid's table offset and rounding folded in
                self.replaced.add(src)
                fields[key] = self._table(low, f"{name}_{key}", "int32_t", data + SIG_OFFSET)
            elif key.startswith("bh"):  # tanh reads the table at 2 (v + bh)
                self.replaced.add(src)
                fields[key] = self._table(low, f"{name}_{key}", "int32_t", 2 * data + SIG_OFFSET)
            else:
                fields[key] = self.ptr(src)
        fields["sigmoid"] = self._table(low, f"{name}_sigmoid", "int16_t", SIG_TABLE)
        for k in ("1", "2"):
            coef = gate_coef(SIG_TABLE, q15(float(a[f"zeta{k}"])), q15(float(a[f"nu{k}"])))  # type: ignore[arg-type]
            fields[f"coef{k}"] = self._table(low, f"{name}_coef{k}", "uint16_t", coef)
        low.decls.append(_struct("tvc_rnnpool_t", name, fields))

    def scratch_ptr(self, ctype: str, step: int | None = None) -> str:
        s = scratch_name(self.index if step is None else step)
        return f"({ctype} *)(arena + {self.plan.offsets[s]})" if s in self.plan.offsets else "0"

    def _op_rnnpool(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        self.rnnpool_struct(low, name, node)
        rows = self.g.tensors[node.outputs[0]].shape[1]
        if self.index in self.patch_pools:  # conv and RNNPool together, one patch row at a time
            low.stmts.append(
                self.call(
                    f"conv_rnnpool_{SUFFIX[dt]}",
                    *self.patch_conv_args,
                    f"&{name}",
                    self.ptr(node.inputs[0], False),
                    self.scratch_ptr("int32_t"),
                    self.ptr(node.outputs[0], False),
                )
            )
            return low
        low.stmts.append(
            self.call(
                f"rnnpool_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                str(rows),
                self.scratch_ptr("int32_t"),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _check_bias(self, node: Node, dt: str) -> None:
        if len(node.inputs) > 2:
            want = "i32" if dt == "i8" else "i64"
            got = self.g.tensors[node.inputs[2]].dtype
            if got != want:
                raise CodegenError(f"node {node.label!r}: {dt} kernels take {want} bias, not {got}")

    def _op_dense(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        x, w, y = (self.g.tensors[i] for i in (node.inputs[0], node.inputs[1], node.outputs[0]))
        n_out, k = w.shape
        lo, hi = self._act(node, node.outputs[0])
        fields: dict[str, object] = {
            "rows": x.numel // k,
            "in_dim": k,
            "out_dim": n_out,
            "act_min": lo,
            "act_max": hi,
        }
        if pow2_exp(x) is not None:
            shift = int(pow2_exp(y)) - (int(pow2_exp(x)) + int(pow2_exp(w)))  # type: ignore[arg-type]
            fields.update(
                in_zp=0,
                w_zp=0,
                out_zp=0,
                requant="TVC_RQ_POW2",
                per_channel=0,
                shift=self._table(low, f"{name}_shift", "int32_t", np.array([shift])),
            )
        else:
            (s_x, z_x), (s_y, z_y) = scale_zp(x), scale_zp(y)
            s_w = np.asarray(w.qparams.scale, np.float64)  # type: ignore[union-attr]
            z_w = w.qparams.zero_point  # type: ignore[union-attr]
            fields.update(in_zp=z_x, out_zp=z_y, w_zp=z_w[0] if len(z_w) == 1 else 0)
            if s_w.size > 1:  # TFLite per-channel FC: the reference kernel's double requantization
                eff = s_x * s_w / s_y
                mant, exp = zip(*(_mantissa(float(e)) for e in eff), strict=True)
                fields.update(
                    requant="TVC_RQ_EXACT",
                    per_channel=1,
                    exact_mant=self._table(low, f"{name}_mant", "int64_t", np.array(mant)),
                    exact_exp=self._table(low, f"{name}_exp", "int32_t", np.array(exp)),
                )
            else:
                m, sh = fx.quantize_multiplier(s_x * float(s_w[0]) / s_y)
                fields.update(
                    requant="TVC_RQ_MULT",
                    per_channel=0,
                    mult=self._table(low, f"{name}_mult", "int32_t", np.array([m])),
                    shift=self._table(low, f"{name}_shift", "int32_t", np.array([sh])),
                )
        low.decls.append(_struct("tvc_dense_t", name, fields))
        self._check_bias(node, dt)
        bias = self.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
        low.stmts.append(
            self.call(
                f"dense_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                self.ptr(node.inputs[1]),
                bias,
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _pool(self, name: str, node: Node, dt: str, kernel: str) -> Lowered:
        low = Lowered()
        a = node.attrs
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        lo, hi = fx.QRANGE[dt]
        d = a.get("dilation", [1, 1])
        fields = {
            "in_h": h,
            "in_w": w,
            "c": c,
            "out_h": oh,
            "out_w": ow,
            "k_h": a["kernel"][0],
            "k_w": a["kernel"][1],  # type: ignore[index]
            "stride_h": a["stride"][0],
            "stride_w": a["stride"][1],  # type: ignore[index]
            "dil_h": d[0],
            "dil_w": d[1],
            "pad_t": a["pad"][0],
            "pad_l": a["pad"][1],  # type: ignore[index]
            "act_min": lo,
            "act_max": hi,
        }
        low.decls.append(_struct("tvc_pool_t", name, fields))
        low.stmts.append(
            self.call(
                f"{kernel}_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_max_pool2d(self, name: str, node: Node, dt: str) -> Lowered:
        return self._pool(name, node, dt, "max_pool")

    def _op_avg_pool2d(self, name: str, node: Node, dt: str) -> Lowered:
        if node.attrs["count_include_pad"]:
            raise CodegenError(
                f"node {node.label!r}: avg_pool2d with count_include_pad has no C kernel"
            )
        return self._pool(name, node, dt, "avg_pool")

    def _mean(self, name: str, node: Node, dt: str, axes: list[int]) -> Lowered:
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        if len(x.shape) != 4 or axes != [1, 2]:
            raise CodegenError(f"node {node.label!r}: the C mean reduces H and W of NHWC data only")
        low = Lowered()
        n, h, w, c = x.shape
        (s_x, z_x), (s_y, z_y) = scale_zp(x), scale_zp(y)
        count = h * w
        mult, shift = fx.quantize_multiplier(s_x / s_y)
        n_shift = min(count.bit_length() - 1, 32, 31 + shift)
        mult = (mult << n_shift) // count
        shift -= n_shift
        lo, hi = fx.QRANGE[dt]
        low.decls.append(
            _struct(
                "tvc_mean_t",
                name,
                {
                    "batch": n,
                    "h": h,
                    "w": w,
                    "c": c,
                    "in_zp": z_x,
                    "out_zp": z_y,
                    "mult": mult,
                    "shift": shift,
                    "act_min": lo,
                    "act_max": hi,
                },
            )
        )
        low.stmts.append(
            self.call(
                f"mean_hw_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_global_avg_pool(self, name: str, node: Node, dt: str) -> Lowered:
        return self._mean(name, node, dt, [1, 2])

    def _op_reduce_mean(self, name: str, node: Node, dt: str) -> Lowered:
        return self._mean(name, node, dt, sorted(a % 4 for a in node.attrs["axes"]))  # type: ignore[attr-defined]

    def _binary(self, name: str, node: Node, dt: str, kind: str) -> Lowered:
        low = Lowered()
        a, b, y = (self.g.tensors[i] for i in (*node.inputs, node.outputs[0]))
        out = _dims4(y.shape)

        def strides(shape: tuple[int, ...]) -> list[int]:
            d = _dims4(shape)
            st = _strides(d)
            return [0 if d[k] == 1 and out[k] != 1 else st[k] for k in range(4)]

        lo, hi = self._act(node, node.outputs[0])
        f: dict[str, object] = {
            "dims": "{" + _ints(out) + "}",
            "stride1": "{" + _ints(strides(a.shape)) + "}",
            "stride2": "{" + _ints(strides(b.shape)) + "}",
            "act_min": lo,
            "act_max": hi,
            "sign2": -1 if node.op == "sub" else 1,
        }
        e1, e2, eo = pow2_exp(a), pow2_exp(b), pow2_exp(y)
        if e1 is not None and e2 is not None and eo is not None:
            f.update(requant="TVC_RQ_POW2", in1_zp=0, in2_zp=0, out_zp=0)
            if kind == "add":
                f.update(pow2_1=eo - e1, pow2_2=eo - e2)
            else:
                f.update(pow2_out=eo - e1 - e2)
        else:
            (s1, z1), (s2, z2), (so, zo) = scale_zp(a), scale_zp(b), scale_zp(y)
            f.update(requant="TVC_RQ_MULT", in1_zp=z1, in2_zp=z2, out_zp=zo)
            if kind == "add":
                left = ADD_LEFT_SHIFT[dt]
                twice_max = 2.0 * max(s1, s2)
                m1, sh1 = fx.quantize_multiplier(s1 / twice_max)
                m2, sh2 = fx.quantize_multiplier(s2 / twice_max)
                mo, sho = fx.quantize_multiplier(twice_max / ((1 << left) * so))
                f.update(
                    left_shift=left,
                    mult1=m1,
                    shift1=sh1,
                    mult2=m2,
                    shift2=sh2,
                    mult_out=mo,
                    shift_out=sho,
                )
            else:
                m, sh = fx.quantize_multiplier(s1 * s2 / so)
                f.update(mult_out=m, shift_out=sh)
        low.decls.append(_struct("tvc_binary_t", name, f))
        low.stmts.append(
            self.call(
                f"{kind}_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                self.ptr(node.inputs[1]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_add(self, name: str, node: Node, dt: str) -> Lowered:
        return self._binary(name, node, dt, "add")

    def _op_sub(self, name: str, node: Node, dt: str) -> Lowered:
        return self._binary(name, node, dt, "add")

    def _op_mul(self, name: str, node: Node, dt: str) -> Lowered:
        return self._binary(name, node, dt, "mul")

    def _op_softmax(self, name: str, node: Node, dt: str) -> Lowered:
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        if int(node.attrs["axis"]) % len(x.shape) != len(x.shape) - 1:  # type: ignore[call-overload]
            raise CodegenError(f"node {node.label!r}: the C softmax runs over the last axis")
        low = Lowered()
        depth = x.shape[-1]
        f: dict[str, object] = {"rows": x.numel // depth, "depth": depth}
        e_in, e_out = pow2_exp(x), pow2_exp(y)
        beta = np.float32(node.attrs["beta"])
        if e_in is not None and e_out is not None:
            table = pointwise_table(
                lambda t: np.exp(t.astype(np.float64) * beta).astype(np.float32),
                e_in,
                -((8 if dt == "i8" else 16) - 1),
                dt,
            )
            f.update(
                out_shift=-e_out,
                table_bits=TABLE_BITS,
                exp_table=self._table(low, f"{name}_exp", "int32_t", table),
            )
            kernel = f"softmax_pow2_{SUFFIX[dt]}"
        else:
            mult, shift, diff_min = fx.softmax_params(float(beta), scale_zp(x)[0])
            f.update(mult=mult, left_shift=shift, diff_min=diff_min)
            kernel = "softmax_s8"
        low.decls.append(_struct("tvc_softmax_t", name, f))
        low.stmts.append(
            self.call(
                kernel, f"&{name}", self.ptr(node.inputs[0]), self.ptr(node.outputs[0], False)
            )
        )
        return low

    def _pointwise(self, name: str, node: Node, dt: str, fn) -> Lowered:  # type: ignore[no-untyped-def]
        low = Lowered()
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        e_in, e_out = pow2_exp(x), pow2_exp(y)
        if e_in is not None and e_out is not None:
            table = pointwise_table(fn, e_in, e_out, dt)
        elif dt == "i8":
            (si, zi), (so, zo) = scale_zp(x), scale_zp(y)
            table = fx.lut_int8(si, zi, so, zo, fn)
        else:
            raise CodegenError(f"node {node.label!r}: affine {node.op} is int8 only")
        if dt == "i8":
            t = self._table(low, f"{name}_lut", "int8_t", table)
            low.stmts.append(
                self.call(
                    "lut_s8",
                    str(x.numel),
                    t,
                    self.ptr(node.inputs[0]),
                    self.ptr(node.outputs[0], False),
                )
            )
        else:
            t = self._table(low, f"{name}_table", "int32_t", table)
            low.stmts.append(
                self.call(
                    "interp_s16",
                    str(x.numel),
                    t,
                    str(TABLE_BITS),
                    self.ptr(node.inputs[0]),
                    self.ptr(node.outputs[0], False),
                )
            )
        return low

    def _op_sigmoid(self, name: str, node: Node, dt: str) -> Lowered:
        return self._pointwise(name, node, dt, _sigmoid_f32)

    def _op_tanh(self, name: str, node: Node, dt: str) -> Lowered:
        return self._pointwise(
            name, node, dt, lambda v: np.tanh(v.astype(np.float64)).astype(np.float32)
        )

    def _float_fn(self, node: Node):  # type: ignore[no-untyped-def]
        run = get_op(node.op).run
        return lambda v: run(node, [v])[0]

    def _op_hard_swish(self, name: str, node: Node, dt: str) -> Lowered:
        return self._pointwise(name, node, dt, self._float_fn(node))

    _op_hard_sigmoid = _op_hard_swish
    _op_leaky_relu = _op_hard_swish

    def _requant(self, name: str, node: Node, dt: str, act: tuple[float, float] | None) -> Lowered:
        low = Lowered()
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        (si, zi), (so, zo) = scale_zp(x), scale_zp(y)
        m, sh = fx.quantize_multiplier(si / so)
        lo, hi = fx.act_bounds(act, so, zo, y.dtype)
        low.decls.append(
            _struct(
                "tvc_requant_t",
                name,
                {
                    "count": x.numel,
                    "in_zp": zi,
                    "out_zp": zo,
                    "mult": m,
                    "shift": sh,
                    "act_min": lo,
                    "act_max": hi,
                    "requant": "TVC_RQ_MULT",
                },
            )
        )
        low.stmts.append(
            self.call(
                f"requant_{SUFFIX[dt]}",
                f"&{name}",
                self.ptr(node.inputs[0]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_relu(self, name: str, node: Node, dt: str) -> Lowered:
        return self._requant(name, node, dt, (0.0, float("inf")))

    def _op_clip(self, name: str, node: Node, dt: str) -> Lowered:
        return self._requant(name, node, dt, (float(node.attrs["min"]), float(node.attrs["max"])))  # type: ignore[arg-type]

    def _op_quantize(self, name: str, node: Node, dt: str) -> Lowered:
        if self.g.tensors[node.inputs[0]].dtype not in SUFFIX:
            raise CodegenError(
                f"node {node.label!r}: float inputs are quantized by the caller (see the header)"
            )
        return self._requant(name, node, dt, None)

    # --- data movement -----------------------------------------------------------------------
    def _copy(self, node: Node) -> Lowered:
        low = Lowered()
        src, dst = node.inputs[0], node.outputs[0]
        low.stmts.append(
            f"memmove({self.ptr(dst, False)}, {self.ptr(src)}, {self.g.tensors[dst].nbytes});"
        )
        return low

    def _op_reshape(self, name: str, node: Node, dt: str) -> Lowered:
        if node.outputs[0] in self.plan.aliases:
            return Lowered()  # the same bytes under another shape
        return self._copy(node)

    _op_identity = _op_reshape

    def _strided(
        self,
        low: Lowered,
        kind: str,
        name: str,
        dt: str,
        src: str,
        dst: str,
        dims: list[int],
        strides: list[int],
        offset: int,
    ) -> None:
        """kind "gather": a strided view of src into contiguous dst (slice, split, transpose);
        "scatter": contiguous src into a strided region of dst (pad, concat)."""
        fields = {
            "dims": "{" + _ints(dims) + "}",
            "strides": "{" + _ints(strides) + "}",
            "offset": offset,
        }
        low.decls.append(_struct("tvc_strided_t", name, fields))
        low.stmts.append(
            self.call(f"{kind}_{BYTES[dt]}", f"&{name}", self.ptr(src), self.ptr(dst, False))
        )

    def _op_transpose(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        perm = list(node.attrs["perm"])  # type: ignore[call-overload]
        x = self.g.tensors[node.inputs[0]]
        st = _strides(list(x.shape))
        dims = [x.shape[p] for p in perm]
        pad = 4 - len(dims)
        self._strided(
            low,
            "gather",
            name,
            dt,
            node.inputs[0],
            node.outputs[0],
            [1] * pad + dims,
            [0] * pad + [st[p] for p in perm],
            0,
        )
        return low

    def _slice_params(
        self, x_shape: tuple[int, ...], attrs: dict[str, object]
    ) -> tuple[list[int], list[int], int]:
        st = _strides(list(x_shape))
        idx = slice_index(x_shape, attrs)
        dims, strides, offset = [], [], 0
        for k, s in enumerate(idx):
            start, stop, step = s.indices(x_shape[k])
            dims.append(len(range(start, stop, step)))
            strides.append(st[k] * step)
            offset += start * st[k]
        pad = 4 - len(dims)
        return [1] * pad + dims, [0] * pad + strides, offset

    def _op_slice(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        dims, strides, offset = self._slice_params(self.g.tensors[node.inputs[0]].shape, node.attrs)
        self._strided(
            low, "gather", name, dt, node.inputs[0], node.outputs[0], dims, strides, offset
        )
        return low

    def _op_split(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        x = self.g.tensors[node.inputs[0]]
        axis = int(node.attrs["axis"]) % len(x.shape)  # type: ignore[call-overload]
        start = 0
        for k, (o, size) in enumerate(zip(node.outputs, node.attrs["sizes"], strict=True)):  # type: ignore[call-overload]
            r = len(x.shape)
            attrs = {"starts": [start], "ends": [start + size], "axes": [axis], "steps": [1]}
            del r
            dims, strides, offset = self._slice_params(x.shape, attrs)
            self._strided(
                low, "gather", f"{name}_{k}", dt, node.inputs[0], o, dims, strides, offset
            )
            start += size
        return low

    def _op_concat(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        y = self.g.tensors[node.outputs[0]]
        axis = int(node.attrs["axis"]) % len(y.shape)  # type: ignore[call-overload]
        st = _strides(list(y.shape))
        start = 0
        for k, i in enumerate(node.inputs):
            shape = list(self.g.tensors[i].shape)
            pad = 4 - len(shape)
            self._strided(
                low,
                "scatter",
                f"{name}_{k}",
                dt,
                i,
                node.outputs[0],
                [1] * pad + shape,
                [0] * pad + st,
                start * st[axis],
            )
            start += shape[axis]
        return low

    def _op_pad(self, name: str, node: Node, dt: str) -> Lowered:
        if node.attrs["mode"] != "constant":
            raise CodegenError(f"node {node.label!r}: only constant padding has a C kernel")
        low = Lowered()
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        s, zp = scale_zp(y)
        code = zp + int(fx.round_half_away_f32(np.float32(node.attrs["value"]) / np.float32(s)))
        pads = list(node.attrs["pads"])  # type: ignore[call-overload]
        r = len(x.shape)
        st = _strides(list(y.shape))
        offset = sum(pads[k] * st[k] for k in range(r))
        low.stmts.append(
            self.call(
                f"fill_{BYTES[dt]}",
                str(y.numel),
                f"({C_TYPES[dt]}){code}",
                self.ptr(node.outputs[0], False),
            )
        )
        self._strided(
            low,
            "scatter",
            name,
            dt,
            node.inputs[0],
            node.outputs[0],
            [1] * (4 - r) + list(x.shape),
            [0] * (4 - r) + st,
            offset,
        )
        return low

    def _op_resize_nearest(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        _, h, w, c = self.g.tensors[node.inputs[0]].shape
        fh, fw = node.attrs["scale"]  # type: ignore[misc]
        low.stmts.append(
            self.call(
                f"resize_nearest_{BYTES[dt]}",
                str(h),
                str(w),
                str(c),
                str(fh),
                str(fw),
                self.ptr(node.inputs[0]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_permute_channels(self, name: str, node: Node, dt: str) -> Lowered:
        low = Lowered()
        x = self.g.tensors[node.inputs[0]]
        if int(node.attrs["axis"]) % len(x.shape) != len(x.shape) - 1:  # type: ignore[call-overload]
            raise CodegenError(f"node {node.label!r}: channel permutation on the last axis only")
        depth = x.shape[-1]
        perm = self._table(low, f"{name}_perm", "int32_t", np.array(node.attrs["perm"]))
        low.stmts.append(
            self.call(
                f"permute_last_{BYTES[dt]}",
                str(x.numel // depth),
                str(depth),
                perm,
                self.ptr(node.inputs[0]),
                self.ptr(node.outputs[0], False),
            )
        )
        return low


def _mantissa(value: float) -> tuple[int, int]:
    """A double as mant * 2^exp with an integer mant < 2^53 (exact)."""
    if value == 0.0:
        return 0, 0
    m, e = math.frexp(value)
    return int(m * (1 << 53)), e - 53
