"""The `cmsis-nn` backend: the same schedule calling CMSIS-NN's arm_*_s8 functions where they
compute exactly our numbers (affine int8: convolution, depthwise convolution, per-tensor fully
connected, max/average pooling, same-shape add, softmax); everything else keeps the portable
kernels. Scratch buffers get a place in the arena; their sizes come from CMSIS-NN's formulas for
the non-MVE cores (an upper bound over the wrappers' paths), and builds with
-DTVC_CHECK_SCRATCH check them against the library's own *_get_buffer_size at run time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from compiler.codegen.lower import Lowered, Lowering, _struct, portable_scratch
from compiler.errors import ToolchainError
from compiler.ir.graph import Graph, Node
from compiler.ir.ops._qutil import pow2_exp, scale_zp
from compiler.ir.ops.elementwise import ADD_LEFT_SHIFT
from compiler.numerics import fixedpoint as fx
from compiler.passes.plan import scratch_name


def cmsis_root() -> Path:
    root = os.environ.get("CMSIS_NN_ROOT")
    if not root or not (Path(root) / "Include" / "arm_nnfunctions.h").is_file():
        raise ToolchainError(
            "CMSIS_NN_ROOT does not point at a CMSIS-NN checkout (Include/arm_nnfunctions.h)",
            "export CMSIS_NN_ROOT=/path/to/CMSIS-NN (github.com/ARM-software/CMSIS-NN)",
        )
    return Path(root)


def cmsis_sources(root: Path) -> list[Path]:
    """The integer kernels and their support code (the f16/f32 ones need an FP16/float build)."""
    return sorted(
        p for p in (root / "Source").glob("*/*.c") if not re.search(r"_f(16|32)\.c$", p.name)
    )


def _affine_i8(graph: Graph, node: Node) -> bool:
    ts = [graph.tensors[t] for t in [node.inputs[0], node.outputs[0]]]
    return all(t.dtype == "i8" and pow2_exp(t) is None for t in ts)


def _conv_kind(graph: Graph, node: Node) -> str | None:
    if node.op != "conv2d" or not _affine_i8(graph, node):
        return None
    c = graph.tensors[node.inputs[0]].shape[3]
    g = int(node.attrs["groups"])  # type: ignore[call-overload]
    if g == 1:
        return "conv"
    return "depthwise" if g == c else None


def scratch_needs(graph: Graph) -> dict[int, int]:
    """Bytes of work buffer per node index (CMSIS-NN, Cortex-M DSP and plain C paths; nodes
    left to the portable kernels keep theirs)."""
    out: dict[int, int] = portable_scratch(graph)
    for k, n in enumerate(graph.nodes):
        kind = _conv_kind(graph, n)
        if kind == "conv":
            _, kh, kw, c = graph.tensors[n.inputs[1]].shape
            cols = kh * kw * c
            out[k] = 2 * (cols + (-cols) % 4) * 2  # arm_convolve_s8: two im2col columns of int16
        elif kind == "depthwise":
            _, kh, kw, _ = graph.tensors[n.inputs[1]].shape
            out[k] = graph.tensors[n.inputs[0]].shape[3] * kh * kw * 2  # depthwise_conv_s8_opt
        elif n.op == "avg_pool2d" and _affine_i8(graph, n):
            out[k] = graph.tensors[n.inputs[0]].shape[3] * 4  # arm_avgpool_s8: int32 per channel
    return out


def _dims(name: str, n: int, h: int, w: int, c: int) -> str:
    return _struct("cmsis_nn_dims", name, {"n": n, "h": h, "w": w, "c": c})


def _tile(w: int, h: int) -> str:
    return f"{{.w = {w}, .h = {h}}}"


class CmsisLowering(Lowering):
    """Portable lowering, with CMSIS-NN calls where they apply."""

    def _ctx(self, low: Lowered, k_name: str, index: int) -> str:
        """A cmsis_nn_context on this node's scratch buffer (or none)."""
        s = scratch_name(index)
        if s in self.plan.offsets:
            size = self._scratch_bytes[index]
            low.stmts.append(
                f"cmsis_nn_context {k_name}_ctx = {{arena + {self.plan.offsets[s]}, {size}}};"
            )
        else:
            low.stmts.append(f"cmsis_nn_context {k_name}_ctx = {{0, 0}};")
        return f"&{k_name}_ctx"

    def __init__(
        self, graph: Graph, plan, prefix: str, regions=(), scratch: dict[int, int] | None = None
    ):  # type: ignore[no-untyped-def]
        super().__init__(graph, plan, prefix, regions)
        self._scratch_bytes = scratch or {}

    def _status(self, fn: str, *args: str) -> str:
        return (
            f"if ({fn}({', '.join(args)}) != ARM_CMSIS_NN_SUCCESS) {{\n        return -1;\n    }}"
        )

    def _op_conv2d(self, name: str, node: Node, dt: str) -> Lowered:
        kind = _conv_kind(self.g, node)
        if kind is None:
            return super()._op_conv2d(name, node, dt)
        low = Lowered()
        a = node.attrs
        x, w, y = (self.g.tensors[t] for t in (node.inputs[0], node.inputs[1], node.outputs[0]))
        _, h, wd, c = x.shape
        _, oh, ow, oc = y.shape
        (s_x, z_x), (s_y, z_y) = scale_zp(x), scale_zp(y)
        lo, hi = self._act(node, node.outputs[0])
        mult, shift = fx.quantize_multipliers(
            s_x * np.broadcast_to(np.asarray(w.qparams.scale, np.float64), (oc,)) / s_y
        )  # type: ignore[union-attr]
        m = self._table(low, f"{name}_mult", "int32_t", mult)
        sh = self._table(low, f"{name}_shift", "int32_t", shift)
        kh, kw = a["kernel"]  # type: ignore[misc]
        common = {
            "input_offset": -z_x,
            "output_offset": z_y,
            "stride": _tile(a["stride"][1], a["stride"][0]),  # type: ignore[index]
            "padding": _tile(a["pad"][1], a["pad"][0]),  # type: ignore[index]
            "dilation": _tile(a["dilation"][1], a["dilation"][0]),  # type: ignore[index]
            "activation": f"{{.min = {lo}, .max = {hi}}}",
        }
        low.decls += [
            _struct(
                "cmsis_nn_per_channel_quant_params",
                f"{name}_q",
                {"multiplier": f"(int32_t *){m}", "shift": f"(int32_t *){sh}"},
            ),
            _dims(f"{name}_in", 1, h, wd, c),
            _dims(f"{name}_out", 1, oh, ow, oc),
            _dims(f"{name}_b", 1, 1, 1, oc),
        ]
        bias = self.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
        ctx = self._ctx(low, name, self.index)
        if kind == "conv":
            low.decls += [
                _struct("cmsis_nn_conv_params", f"{name}_cp", common),
                _dims(f"{name}_f", oc, kh, kw, c),
            ]
            fn, weights = "arm_convolve_wrapper_s8", self.ptr(node.inputs[1])
        else:
            wdata = w.data
            assert wdata is not None
            self.replaced.add(node.inputs[1])
            hwc = self._table(low, f"{name}_w", "int8_t", wdata.transpose(1, 2, 0, 3).reshape(-1))
            low.decls += [
                _struct("cmsis_nn_dw_conv_params", f"{name}_cp", {**common, "ch_mult": oc // c}),
                _dims(f"{name}_f", 1, kh, kw, oc),
            ]
            fn, weights = "arm_depthwise_conv_wrapper_s8", hwc
        dims = (f"&{name}_cp", f"&{name}_in", f"&{name}_f", f"&{name}_out")
        low.stmts.append(self._scratch_check(ctx, f"{fn}_get_buffer_size({', '.join(dims)})"))
        x_ptr, y_ptr = self.ptr(node.inputs[0]), self.ptr(node.outputs[0], False)
        low.stmts.append(
            self._status(
                fn,
                ctx,
                f"&{name}_cp",
                f"&{name}_q",
                f"&{name}_in",
                x_ptr,
                f"&{name}_f",
                weights,
                f"&{name}_b",
                bias,
                f"&{name}_out",
                y_ptr,
            )
        )
        return low

    def _scratch_check(self, ctx: str, size_fn: str) -> str:
        return f"TVC_CHECK_SCRATCH({ctx.lstrip('&')}.size, {size_fn});"

    def _op_dense(self, name: str, node: Node, dt: str) -> Lowered:
        w = self.g.tensors[node.inputs[1]]
        per_tensor = w.qparams is not None and len(w.qparams.scale) == 1
        if not (_affine_i8(self.g, node) and per_tensor):
            return super()._op_dense(name, node, dt)
        low = Lowered()
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        n_out, k = w.shape
        (s_x, z_x), (s_y, z_y) = scale_zp(x), scale_zp(y)
        m, sh = fx.quantize_multiplier(s_x * float(w.qparams.scale[0]) / s_y)  # type: ignore[union-attr]
        lo, hi = self._act(node, node.outputs[0])
        rows = x.numel // k
        low.decls += [
            _struct(
                "cmsis_nn_fc_params",
                f"{name}_p",
                {
                    "input_offset": -z_x,
                    "filter_offset": -w.qparams.zero_point[0],  # type: ignore[union-attr]
                    "output_offset": z_y,
                    "activation": f"{{.min = {lo}, .max = {hi}}}",
                },
            ),
            _struct(
                "cmsis_nn_per_tensor_quant_params", f"{name}_q", {"multiplier": m, "shift": sh}
            ),
            _dims(f"{name}_in", rows, 1, 1, k),
            _dims(f"{name}_f", k, 1, 1, n_out),
            _dims(f"{name}_b", 1, 1, 1, n_out),
            _dims(f"{name}_out", rows, 1, 1, n_out),
        ]
        ctx = self._ctx(low, name, self.index)
        bias = self.ptr(node.inputs[2]) if len(node.inputs) > 2 else "0"
        x_ptr, y_ptr = self.ptr(node.inputs[0]), self.ptr(node.outputs[0], False)
        low.stmts.append(
            self._status(
                "arm_fully_connected_s8",
                ctx,
                f"&{name}_p",
                f"&{name}_q",
                f"&{name}_in",
                x_ptr,
                f"&{name}_f",
                self.ptr(node.inputs[1]),
                f"&{name}_b",
                bias,
                f"&{name}_out",
                y_ptr,
            )
        )
        return low

    def _cmsis_pool(self, name: str, node: Node, dt: str, fn: str) -> Lowered:
        low = Lowered()
        a = node.attrs
        x, y = self.g.tensors[node.inputs[0]], self.g.tensors[node.outputs[0]]
        _, h, w, c = x.shape
        _, oh, ow, _ = y.shape
        lo, hi = fx.QRANGE["i8"]
        low.decls += [
            _struct(
                "cmsis_nn_pool_params",
                f"{name}_p",
                {
                    "stride": _tile(a["stride"][1], a["stride"][0]),  # type: ignore[index]
                    "padding": _tile(a["pad"][1], a["pad"][0]),  # type: ignore[index]
                    "activation": f"{{.min = {lo}, .max = {hi}}}",
                },
            ),
            _dims(f"{name}_in", 1, h, w, c),
            _dims(f"{name}_f", 1, a["kernel"][0], a["kernel"][1], 1),  # type: ignore[index]
            _dims(f"{name}_out", 1, oh, ow, c),
        ]
        ctx = self._ctx(low, name, self.index)
        if fn == "arm_avgpool_s8":
            low.stmts.append(self._scratch_check(ctx, f"arm_avgpool_s8_get_buffer_size({ow}, {c})"))
        low.stmts.append(
            self._status(
                fn,
                ctx,
                f"&{name}_p",
                f"&{name}_in",
                self.ptr(node.inputs[0]),
                f"&{name}_f",
                f"&{name}_out",
                self.ptr(node.outputs[0], False),
            )
        )
        return low

    def _op_max_pool2d(self, name: str, node: Node, dt: str) -> Lowered:
        if not _affine_i8(self.g, node) or node.attrs["dilation"] != [1, 1]:
            return super()._op_max_pool2d(name, node, dt)
        return self._cmsis_pool(name, node, dt, "arm_max_pool_s8")

    def _op_avg_pool2d(self, name: str, node: Node, dt: str) -> Lowered:
        if not _affine_i8(self.g, node) or node.attrs["count_include_pad"]:
            return super()._op_avg_pool2d(name, node, dt)
        return self._cmsis_pool(name, node, dt, "arm_avgpool_s8")

    def _op_softmax(self, name: str, node: Node, dt: str) -> Lowered:
        x = self.g.tensors[node.inputs[0]]
        last = int(node.attrs["axis"]) % len(x.shape) == len(x.shape) - 1  # type: ignore[call-overload]
        if not (_affine_i8(self.g, node) and last):
            return super()._op_softmax(name, node, dt)
        low = Lowered()
        depth = x.shape[-1]
        mult, shift, diff_min = fx.softmax_params(float(node.attrs["beta"]), scale_zp(x)[0])  # type: ignore[arg-type]
        args = [
            self.ptr(node.inputs[0]),
            str(x.numel // depth),
            str(depth),
            str(mult),
            str(shift),
            str(diff_min),
            self.ptr(node.outputs[0], False),
        ]
        low.stmts.append(f"arm_softmax_s8({', '.join(args)});")
        return low

    def _op_add(self, name: str, node: Node, dt: str) -> Lowered:
        a, b, y = (self.g.tensors[t] for t in (*node.inputs, node.outputs[0]))
        if not (
            _affine_i8(self.g, node)
            and b.dtype == "i8"
            and pow2_exp(b) is None
            and a.shape == b.shape == y.shape
        ):
            return super()._op_add(name, node, dt)
        low = Lowered()
        (s1, z1), (s2, z2), (so, zo) = scale_zp(a), scale_zp(b), scale_zp(y)
        twice_max = 2.0 * max(s1, s2)
        m1, sh1 = fx.quantize_multiplier(s1 / twice_max)
        m2, sh2 = fx.quantize_multiplier(s2 / twice_max)
        left = ADD_LEFT_SHIFT["i8"]
        mo, sho = fx.quantize_multiplier(twice_max / ((1 << left) * so))
        lo, hi = self._act(node, node.outputs[0])
        args = [
            self.ptr(node.inputs[0]),
            self.ptr(node.inputs[1]),
            str(-z1),
            str(m1),
            str(sh1),
            str(-z2),
            str(m2),
            str(sh2),
            str(left),
            self.ptr(node.outputs[0], False),
            str(zo),
            str(mo),
            str(sho),
            str(lo),
            str(hi),
            str(y.numel),
        ]
        low.stmts.append(self._status("arm_elementwise_add_s8", *args))
        return low


def uses_cmsis(outdir: Path) -> bool:
    """Whether an output directory was generated with --kernels cmsis-nn."""
    return any('#include "arm_nnfunctions.h"' in f.read_text() for f in outdir.glob("*.c"))


def build_cmsis_objects(
    cc: str, flags: list[str], cache: Path
) -> tuple[list[str], list[Path], str]:
    """CMSIS-NN compiled once per compiler and flags: (object files, call-graph files, -I flag)."""
    import hashlib
    import subprocess

    root = cmsis_root()
    sources = cmsis_sources(root)
    key = hashlib.sha256((cc + " ".join(flags) + str(root)).encode())
    for s in sources:
        key.update(s.read_bytes())
    work = cache / f"cmsis-nn-{key.hexdigest()[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    include = f"-I{root / 'Include'}"
    objs, cis = [], []
    for src in sources:
        obj = work / f"{src.stem}.o"
        if not obj.exists():
            r = subprocess.run(
                [cc, *flags, include, "-c", str(src), "-o", str(obj)],
                capture_output=True,
                text=True,
                cwd=work,
            )
            if r.returncode != 0:
                raise ToolchainError(f"building CMSIS-NN's {src.name} failed:\n{r.stderr[:2000]}")
        objs.append(str(obj))
        cis.append(work / f"{src.stem}.ci")
    return objs, cis, include
