"""ONNX node → IR node translation, one handler per ONNX op type.

Handlers translate faithfully (shape glue stays; canonicalize folds it) and resolve everything
ONNX leaves to run time that our IR wants static: auto_pad, optional inputs, opset variants.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import helper, numpy_helper

from compiler.ir.ops.tensor_ops import resolve_reshape

if TYPE_CHECKING:
    from compiler.frontend.onnx import Importer

Handler = Callable[["Importer", onnx.NodeProto], None]


def dtype_name(code: int) -> str:
    """An ONNX element type's name; a number past the enum (a damaged file) says so."""
    try:
        return str(onnx.TensorProto.DataType.Name(code))
    except ValueError:
        return f"data type {code}, which ONNX does not define"


HANDLERS: dict[str, Handler] = {}

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "f32",
    onnx.TensorProto.INT64: "i64",
    onnx.TensorProto.INT32: "i32",
    onnx.TensorProto.INT8: "i8",
    onnx.TensorProto.INT16: "i16",
    onnx.TensorProto.BOOL: "bool",
}


def handles(*op_types: str) -> Callable[[Handler], Handler]:
    def reg(fn: Handler) -> Handler:
        for t in op_types:
            HANDLERS[t] = fn
        return fn

    return reg


def attrs_of(node: onnx.NodeProto) -> dict[str, object]:
    out: dict[str, object] = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _spatial_pads(
    imp: Importer,
    node: onnx.NodeProto,
    a: dict[str, object],
    in_hw: tuple[int, int],
    kernel: list[int],
    stride: list[int],
    dilation: list[int],
) -> list[int]:
    """Explicit [top, left, bottom, right] from pads or auto_pad."""
    auto = str(a.get("auto_pad", "NOTSET"))
    if auto in ("NOTSET", ""):
        p = list(a.get("pads", [0, 0, 0, 0]))  # type: ignore[call-overload]
        if len(p) != 4:
            imp.fail(node, f"expects 2-D spatial pads, got {p}")
        return [int(p[0]), int(p[1]), int(p[2]), int(p[3])]
    if auto == "VALID":
        return [0, 0, 0, 0]
    pads = [0, 0, 0, 0]
    for i in range(2):
        out = -(-in_hw[i] // stride[i])
        total = max(0, (out - 1) * stride[i] + (kernel[i] - 1) * dilation[i] + 1 - in_hw[i])
        small, big = total // 2, total - total // 2
        pads[i], pads[i + 2] = (small, big) if auto == "SAME_UPPER" else (big, small)
    return pads


def _need4d(imp: Importer, node: onnx.NodeProto, name: str) -> tuple[int, ...]:
    shape = imp.shape(name)
    if len(shape) != 4:
        imp.fail(
            node,
            f"supports 2-D spatial data (4-D NCHW input) only; got shape {list(shape)}",
            "reshape 1-D signals to N,C,1,L before export",
        )
    return shape


@handles("Conv")
def _conv(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    x, w = node.input[0], node.input[1]
    shape = _need4d(imp, node, x)
    wv = imp.value(w)
    if wv is None:
        imp.fail(node, "has weights computed at run time; tvc needs constant weights")
    kernel = list(a.get("kernel_shape", wv.shape[2:]))  # type: ignore[union-attr, call-overload]
    stride = list(a.get("strides", [1, 1]))  # type: ignore[call-overload]
    dilation = list(a.get("dilations", [1, 1]))  # type: ignore[call-overload]
    pads = _spatial_pads(imp, node, a, (shape[2], shape[3]), kernel, stride, dilation)
    ins = [x, w] + ([node.input[2]] if len(node.input) > 2 and node.input[2] else [])
    imp.emit(
        node,
        "conv2d",
        ins,
        [node.output[0]],
        kernel=kernel,
        stride=stride,
        pad=pads,
        dilation=dilation,
        groups=int(a.get("group", 1)),
        layout="NCHW",
    )  # type: ignore[call-overload]


@handles("MaxPool", "AveragePool")
def _pool(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    x = node.input[0]
    shape = _need4d(imp, node, x)
    if len(node.output) > 1 and node.output[1] and imp.is_used(node.output[1]):
        imp.fail(node, "returns argmax indices, which tvc does not compute")
    kernel = list(a["kernel_shape"])  # type: ignore[call-overload]
    stride = list(a.get("strides", [1, 1]))  # type: ignore[call-overload]
    dilation = list(a.get("dilations", [1, 1]))  # type: ignore[call-overload]
    pads = _spatial_pads(imp, node, a, (shape[2], shape[3]), kernel, stride, dilation)
    common = dict(
        kernel=kernel, stride=stride, pad=pads, ceil_mode=int(a.get("ceil_mode", 0)), layout="NCHW"
    )  # type: ignore[call-overload]
    if node.op_type == "MaxPool":
        imp.emit(node, "max_pool2d", [x], [node.output[0]], dilation=dilation, **common)
    else:
        if dilation != [1, 1]:
            imp.fail(node, "with dilations is not supported")
        imp.emit(
            node,
            "avg_pool2d",
            [x],
            [node.output[0]],
            count_include_pad=int(a.get("count_include_pad", 0)),
            **common,
        )  # type: ignore[call-overload]


@handles("GlobalAveragePool")
def _gap(imp: Importer, node: onnx.NodeProto) -> None:
    _need4d(imp, node, node.input[0])
    imp.emit(node, "global_avg_pool", [node.input[0]], [node.output[0]], layout="NCHW")


@handles("GlobalMaxPool")
def _gmp(imp: Importer, node: onnx.NodeProto) -> None:
    n, c, h, w = _need4d(imp, node, node.input[0])
    imp.emit(
        node,
        "max_pool2d",
        [node.input[0]],
        [node.output[0]],
        kernel=[h, w],
        stride=[h, w],
        layout="NCHW",
    )


@handles("Gemm")
def _gemm(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))  # type: ignore[arg-type]
    x, b = node.input[0], node.input[1]
    c = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if a.get("transA", 0):
        xt = imp.tmp(node, "transA")
        imp.emit(node, "transpose", [x], [xt], perm=[1, 0])
        x = xt
    bv = imp.value(b)
    if bv is None:
        imp.fail(node, "multiplies two run-time tensors; tvc needs constant Gemm weights")
    w = (bv if a.get("transB", 0) else bv.T) * np.float32(alpha)  # type: ignore[union-attr]
    ins = [x, imp.const(node, "weight", w.astype(np.float32))]
    cv = imp.value(c) if c else None
    n_out = w.shape[0]
    if c and cv is not None and cv.size in (1, n_out):
        ins.append(
            imp.const(
                node,
                "bias",
                np.broadcast_to(cv.reshape(-1) * np.float32(beta), (n_out,)).astype(np.float32),
            )
        )
        c = None
    if c is None:
        imp.emit(node, "dense", ins, [node.output[0]])
        return
    y = imp.tmp(node, "gemm")
    imp.emit(node, "dense", ins, [y])
    cs = c
    if beta != 1.0:
        cs = imp.tmp(node, "beta_c")
        imp.emit(node, "mul", [c, imp.const(node, "beta", np.array(beta, np.float32))], [cs])
    imp.emit(node, "add", [y, cs], [node.output[0]])


@handles("MatMul")
def _matmul(imp: Importer, node: onnx.NodeProto) -> None:
    bv = imp.value(node.input[1])
    if bv is not None and bv.ndim == 2 and len(imp.shape(node.input[0])) >= 2:
        w = imp.const(node, "weight", np.ascontiguousarray(bv.T).astype(np.float32))
        imp.emit(node, "dense", [node.input[0], w], [node.output[0]])
    else:
        imp.emit(node, "matmul", [node.input[0], node.input[1]], [node.output[0]])


@handles("BatchNormalization")
def _bn(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    if a.get("training_mode", 0) or any(o and imp.is_used(o) for o in node.output[1:]):
        imp.fail(node, "is in training mode", "export with model.eval()")
    imp.emit(
        node,
        "batch_norm",
        list(node.input[:5]),
        [node.output[0]],
        epsilon=float(a.get("epsilon", 1e-5)),
        layout="NCHW",
    )  # type: ignore[arg-type]


_UNARY = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "HardSwish": "hard_swish",
    "Identity": "identity",
    "Erf": "erf",  # nn.GELU before opset 20; canonicalize folds the pattern to gelu
    "Sqrt": "sqrt",  # inside L2Norm's pattern; canonicalize folds it to l2_norm
}


@handles(*_UNARY)
def _unary(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(node, _UNARY[node.op_type], [node.input[0]], [node.output[0]])


@handles("Gelu")
def _gelu(imp: Importer, node: onnx.NodeProto) -> None:
    approximate = attrs_of(node).get("approximate", "none")
    if approximate not in ("none", "tanh"):
        imp.fail(node, f"has approximate={approximate!r}; ONNX defines 'none' and 'tanh'")
    imp.emit(node, "gelu", [node.input[0]], [node.output[0]], approximate=approximate)


@handles("Dropout")
def _dropout(imp: Importer, node: onnx.NodeProto) -> None:
    if len(node.output) > 1 and node.output[1] and imp.is_used(node.output[1]):
        imp.fail(node, "has its mask output used; only inference-mode Dropout is supported")
    imp.emit(node, "dropout", [node.input[0]], [node.output[0]])


@handles("LeakyRelu")
def _leaky(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(
        node,
        "leaky_relu",
        [node.input[0]],
        [node.output[0]],
        alpha=float(attrs_of(node).get("alpha", 0.01)),
    )  # type: ignore[arg-type]


@handles("HardSigmoid")
def _hsig(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    imp.emit(
        node,
        "hard_sigmoid",
        [node.input[0]],
        [node.output[0]],
        alpha=float(a.get("alpha", 0.2)),
        beta=float(a.get("beta", 0.5)),
    )  # type: ignore[arg-type]


@handles("Clip")
def _clip(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    lo, hi = a.get("min", float("-inf")), a.get("max", float("inf"))
    if imp.opset >= 11:
        lo_hi = []
        for k, default in ((1, float("-inf")), (2, float("inf"))):
            name = node.input[k] if len(node.input) > k else ""
            if not name:
                lo_hi.append(default)
                continue
            v = imp.value(name)
            if v is None:
                imp.fail(node, "has run-time min/max; tvc needs constant clip bounds")
            lo_hi.append(float(v))  # type: ignore[arg-type]
        lo, hi = lo_hi
    imp.emit(node, "clip", [node.input[0]], [node.output[0]], min=float(lo), max=float(hi))  # type: ignore[arg-type]


@handles("Add", "Sub", "Mul", "Div", "Pow")
def _binary(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(node, node.op_type.lower(), [node.input[0], node.input[1]], [node.output[0]])


@handles("Softmax")
def _softmax(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    rank = len(imp.shape(node.input[0]))
    if imp.opset >= 13:
        imp.emit(
            node, "softmax", [node.input[0]], [node.output[0]], axis=int(a.get("axis", -1)) % rank
        )  # type: ignore[call-overload]
        return
    axis = int(a.get("axis", 1)) % rank  # type: ignore[call-overload]
    if axis == rank - 1:
        imp.emit(node, "softmax", [node.input[0]], [node.output[0]], axis=axis)
        return
    # opset < 13: softmax over all dims from `axis` on, flattened
    shape = imp.shape(node.input[0])
    flat = imp.tmp(node, "flat")
    soft = imp.tmp(node, "soft")
    imp.emit(
        node,
        "reshape",
        [node.input[0]],
        [flat],
        shape=[int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))],
    )
    imp.emit(node, "softmax", [flat], [soft], axis=1)
    imp.emit(node, "reshape", [soft], [node.output[0]], shape=list(shape))


def _axes(
    imp: Importer, node: onnx.NodeProto, input_index: int, attr: str = "axes"
) -> list[int] | None:
    """Axes from the attribute (older opsets) or the optional input (newer), or None."""
    a = attrs_of(node)
    if attr in a:
        return [int(x) for x in a[attr]]  # type: ignore[attr-defined]
    if len(node.input) > input_index and node.input[input_index]:
        v = imp.value(node.input[input_index])
        if v is None:
            imp.fail(node, f"has run-time {attr}; tvc needs them constant")
        return [int(x) for x in v.reshape(-1)]  # type: ignore[union-attr]
    return None


REDUCE_OPS = {
    "ReduceMean": "reduce_mean",
    "ReduceMax": "reduce_max",  # S3FD's max-out over background classes
    "ReduceSum": "reduce_sum",  # inside L2Norm's patterns, folded by canonicalize
    "ReduceL2": "reduce_l2",
}


@handles(*REDUCE_OPS)
def _reduce(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    rank = len(imp.shape(node.input[0]))
    axes = _axes(imp, node, 1)  # an input from opset 13 (ReduceSum) or 18 (the others)
    if axes is None:
        if a.get("noop_with_empty_axes", 0):
            imp.emit(node, "identity", [node.input[0]], [node.output[0]])
            return
        axes = list(range(rank))
    imp.emit(
        node,
        REDUCE_OPS[node.op_type],
        [node.input[0]],
        [node.output[0]],
        axes=sorted(x % rank for x in axes),
        keepdims=int(a.get("keepdims", 1)),
    )  # type: ignore[call-overload]


@handles("LpNormalization")
def _lp_norm(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    if int(a.get("p", 2)) != 2:  # type: ignore[call-overload]
        imp.fail(node, f"has p={a.get('p')}; tvc supports the L2 norm (p=2)")
    rank = len(imp.shape(node.input[0]))
    axis = int(a.get("axis", -1)) % rank  # type: ignore[call-overload]
    imp.emit(node, "l2_norm", [node.input[0]], [node.output[0]], axis=axis, eps=0.0)


def _static_reshape(imp: Importer, node: onnx.NodeProto, shape: list[int]) -> None:
    imp.emit(node, "reshape", [node.input[0]], [node.output[0]], shape=shape)


@handles("Flatten")
def _flatten(imp: Importer, node: onnx.NodeProto) -> None:
    shape = imp.shape(node.input[0])
    axis = int(attrs_of(node).get("axis", 1)) % (len(shape) + 1) if shape else 0  # type: ignore[call-overload]
    _static_reshape(imp, node, [int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))])


@handles("Squeeze")
def _squeeze(imp: Importer, node: onnx.NodeProto) -> None:
    shape = imp.shape(node.input[0])
    axes = _axes(imp, node, 1)
    axes = (
        [i for i, d in enumerate(shape) if d == 1]
        if axes is None
        else [x % len(shape) for x in axes]
    )
    _static_reshape(imp, node, [d for i, d in enumerate(shape) if i not in axes])


@handles("Unsqueeze")
def _unsqueeze(imp: Importer, node: onnx.NodeProto) -> None:
    shape = list(imp.shape(node.input[0]))
    axes = _axes(imp, node, 1)
    if axes is None:
        imp.fail(node, "has no axes")
    rank = len(shape) + len(axes)  # type: ignore[arg-type]
    for ax in sorted(x % rank for x in axes):  # type: ignore[union-attr]
        shape.insert(ax, 1)
    _static_reshape(imp, node, shape)


@handles("Reshape")
def _reshape(imp: Importer, node: onnx.NodeProto) -> None:
    if attrs_of(node).get("allowzero", 0):
        v = imp.value(node.input[1])
        if v is None or 0 in v:
            imp.fail(node, "uses allowzero with zero-sized dims")
    if imp.is_initializer(node.input[1]):
        target = [int(d) for d in imp.value(node.input[1]).reshape(-1)]  # type: ignore[union-attr]
        try:
            shape = resolve_reshape(imp.shape(node.input[0]), target)
        except ValueError as e:
            imp.fail(node, str(e))
        _static_reshape(imp, node, list(shape))
    else:
        imp.emit(node, "reshape", [node.input[0], node.input[1]], [node.output[0]])


@handles("Transpose")
def _transpose(imp: Importer, node: onnx.NodeProto) -> None:
    rank = len(imp.shape(node.input[0]))
    perm = attrs_of(node).get("perm", list(range(rank))[::-1])
    imp.emit(node, "transpose", [node.input[0]], [node.output[0]], perm=[int(p) for p in perm])  # type: ignore[attr-defined]


@handles("Concat")
def _concat(imp: Importer, node: onnx.NodeProto) -> None:
    rank = len(imp.shape(node.input[0]))
    axis = int(attrs_of(node)["axis"]) % max(rank, 1)  # type: ignore[call-overload]
    imp.emit(node, "concat", [i for i in node.input if i], list(node.output), axis=axis)


@handles("Split")
def _split(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    shape = imp.shape(node.input[0])
    axis = int(a.get("axis", 0)) % len(shape)  # type: ignore[call-overload]
    sizes = [int(s) for s in a["split"]] if "split" in a else None  # type: ignore[attr-defined]
    if sizes is None and len(node.input) > 1 and node.input[1]:
        v = imp.value(node.input[1])
        if v is None:
            imp.fail(node, "has run-time split sizes; tvc needs them constant")
        sizes = [int(s) for s in v.reshape(-1)]  # type: ignore[union-attr]
    if sizes is None:
        n = len(node.output)
        chunk = -(-shape[axis] // n)
        sizes = [min(chunk, shape[axis] - k * chunk) for k in range(n)]
    imp.emit(node, "split", [node.input[0]], list(node.output), axis=axis, sizes=sizes)


@handles("Slice")
def _slice(imp: Importer, node: onnx.NodeProto) -> None:
    shape = imp.shape(node.input[0])
    a = attrs_of(node)
    if imp.opset < 10:
        starts, ends = list(a["starts"]), list(a["ends"])  # type: ignore[call-overload]
        axes = list(a.get("axes", range(len(starts))))  # type: ignore[call-overload]
        steps = [1] * len(starts)
    else:
        vals = []
        for k in range(1, 5):
            name = node.input[k] if len(node.input) > k else ""
            v = imp.value(name) if name else None
            if name and v is None:
                imp.fail(node, "has run-time starts/ends; tvc needs them constant")
            vals.append(None if v is None else [int(x) for x in v.reshape(-1)])
        starts, ends, axes, steps = vals
        axes = axes if axes is not None else list(range(len(starts)))  # type: ignore[arg-type]
        steps = steps if steps is not None else [1] * len(starts)  # type: ignore[arg-type]
    big = np.iinfo(np.int64)
    clamp = [int(min(max(e, big.min // 2), big.max // 2)) for e in ends]  # type: ignore[union-attr]
    imp.emit(
        node,
        "slice",
        [node.input[0]],
        [node.output[0]],
        starts=starts,
        ends=clamp,
        axes=[int(x) % len(shape) for x in axes],
        steps=steps,
    )  # type: ignore[union-attr]


@handles("Pad")
def _pad(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    rank = len(imp.shape(node.input[0]))
    mode = str(a.get("mode", "constant"))
    if mode not in ("constant", "reflect", "edge"):
        imp.fail(node, f"mode {mode!r} is not supported (constant, reflect, edge are)")
    if imp.opset < 11:
        pads, value = list(a["pads"]), float(a.get("value", 0.0))  # type: ignore[call-overload, arg-type]
    else:
        pv = imp.value(node.input[1])
        if pv is None:
            imp.fail(node, "has run-time pads; tvc needs them constant")
        pads = [int(x) for x in pv.reshape(-1)]  # type: ignore[union-attr]
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            cv = imp.value(node.input[2])
            if cv is None:
                imp.fail(node, "has a run-time pad value")
            value = float(cv)  # type: ignore[arg-type]
        if len(node.input) > 3 and node.input[3]:
            axes = [int(x) % rank for x in imp.value(node.input[3]).reshape(-1)]  # type: ignore[union-attr]
            full = [0] * (2 * rank)
            for k, ax in enumerate(axes):
                full[ax], full[ax + rank] = pads[k], pads[k + len(axes)]
            pads = full
    if min(pads) < 0:
        imp.fail(node, "has negative pads (cropping)", "use Slice to crop")
    imp.emit(
        node,
        "pad",
        [node.input[0]],
        [node.output[0]],
        pads=[int(p) for p in pads],
        mode=mode,
        value=value,
    )


@handles("Cast")
def _cast(imp: Importer, node: onnx.NodeProto) -> None:
    to = int(attrs_of(node)["to"])  # type: ignore[call-overload]
    if to in (onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
        to = onnx.TensorProto.FLOAT
    if to not in ONNX_DTYPES:
        imp.fail(node, f"casts to {dtype_name(to)}, which tvc does not support")
    imp.emit(node, "cast", [node.input[0]], [node.output[0]], to=ONNX_DTYPES[to])


@handles("Shape")
def _shape(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    kw: dict[str, object] = {"start": int(a.get("start", 0))}  # type: ignore[call-overload]
    if "end" in a:
        kw["end"] = int(a["end"])  # type: ignore[call-overload]
    imp.emit(node, "shape", [node.input[0]], [node.output[0]], **kw)


@handles("Gather")
def _gather(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(
        node,
        "gather",
        [node.input[0], node.input[1]],
        [node.output[0]],
        axis=int(attrs_of(node).get("axis", 0)),
    )  # type: ignore[call-overload]


@handles("ConstantOfShape")
def _const_of_shape(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    value, dtype = 0.0, "f32"
    if "value" in a:
        arr = numpy_helper.to_array(a["value"])  # type: ignore[arg-type]
        value = float(arr.reshape(-1)[0])
        dtype = {
            np.dtype(np.float32): "f32",
            np.dtype(np.int64): "i64",
            np.dtype(np.int32): "i32",
            np.dtype(np.bool_): "bool",
        }.get(arr.dtype, "f32")
    imp.emit(node, "constant_of_shape", [node.input[0]], [node.output[0]], value=value, dtype=dtype)


@handles("Expand")
def _expand(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(node, "expand", [node.input[0], node.input[1]], [node.output[0]])


@handles("Range")
def _range(imp: Importer, node: onnx.NodeProto) -> None:
    imp.emit(node, "range", list(node.input[:3]), [node.output[0]])


@handles("Constant")
def _constant(imp: Importer, node: onnx.NodeProto) -> None:
    a = attrs_of(node)
    if "value" in a:
        arr = numpy_helper.to_array(a["value"])  # type: ignore[arg-type]
    elif "value_float" in a:
        arr = np.array(a["value_float"], np.float32)
    elif "value_floats" in a:
        arr = np.array(a["value_floats"], np.float32)
    elif "value_int" in a:
        arr = np.array(a["value_int"], np.int64)
    elif "value_ints" in a:
        arr = np.array(a["value_ints"], np.int64)
    else:
        imp.fail(node, f"has an unsupported value kind {sorted(a)}")
    imp.add_constant(node.output[0], arr)


@handles("Resize")
def _resize(imp: Importer, node: onnx.NodeProto) -> None:
    """Nearest-neighbour by integer factors on H and W (nn.Upsample(mode="nearest")), and
    bilinear on H and W (mode="linear": F.interpolate(mode="bilinear"), any size)."""
    a = attrs_of(node)
    shape = _need4d(imp, node, node.input[0])
    mode = str(a.get("mode", "nearest"))
    coord = str(a.get("coordinate_transformation_mode", "half_pixel"))
    scales = sizes = None
    names = list(node.input[1:])
    if len(names) > 1 and names[1]:
        scales = imp.value(names[1])
    if len(names) > 2 and names[2]:
        sizes = imp.value(names[2])
    if (scales is None or np.asarray(scales).size == 0) and sizes is None:
        imp.fail(node, "has run-time scales or sizes; tvc needs them constant")
    if a.get("axes") is not None or int(a.get("antialias", 0)) != 0:  # type: ignore[call-overload]
        imp.fail(node, "uses axes or antialias (opset 18); tvc supports resizing H and W")
    if mode == "linear":
        return _resize_linear(imp, node, shape, coord, scales, sizes)
    rounding = str(a.get("nearest_mode", "round_prefer_floor"))
    if mode != "nearest" or (coord, rounding) not in (
        ("asymmetric", "floor"),
        ("half_pixel", "round_prefer_floor"),
        ("pytorch_half_pixel", "round_prefer_floor"),
    ):
        imp.fail(
            node,
            f"mode={mode} coordinate_transformation_mode={coord} "
            f"nearest_mode={rounding} is not supported",
            "tvc supports nearest upsampling by integer factors (nn.Upsample(mode='nearest')) "
            "and bilinear resizing (mode='linear')",
        )
    if sizes is not None:
        factors = [
            int(s) // d if int(s) % d == 0 else 0
            for s, d in zip(np.asarray(sizes).reshape(-1), shape, strict=True)
        ]
    else:
        factors = [
            int(f) if float(f).is_integer() else 0
            for f in np.asarray(scales, np.float64).reshape(-1)
        ]
    if factors[0] != 1 or factors[1] != 1 or min(factors[2:]) < 1:
        imp.fail(node, f"scales N,C,H,W by {factors}; tvc supports integer factors on H and W")
    imp.emit(
        node, "resize_nearest", [node.input[0]], [node.output[0]], scale=factors[2:], layout="NCHW"
    )


LINEAR_COORDS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")


def _resize_linear(  # type: ignore[no-untyped-def]
    imp: Importer, node: onnx.NodeProto, shape, coord: str, scales, sizes
) -> None:
    if coord not in LINEAR_COORDS:
        imp.fail(
            node,
            f"has coordinate_transformation_mode={coord}",
            f"tvc supports {', '.join(LINEAR_COORDS)} for mode='linear'",
        )
    if sizes is not None:
        out = [int(v) for v in np.asarray(sizes).reshape(-1)]
        if len(out) != 4:
            imp.fail(node, f"has {len(out)} sizes for a 4-D input")
        factor = [o / d for o, d in zip(out, shape, strict=True)]
    else:
        factor = [float(v) for v in np.asarray(scales, np.float64).reshape(-1)]
        if len(factor) != 4:
            imp.fail(node, f"has {len(factor)} scales for a 4-D input")
        out = [int(np.floor(d * f)) for d, f in zip(shape, factor, strict=True)]
    if out[0] != shape[0] or out[1] != shape[1] or min(out[2:]) < 1:
        imp.fail(node, f"resizes N,C,H,W {list(shape)} to {out}; tvc resizes H and W")
    imp.emit(
        node,
        "resize_bilinear",
        [node.input[0]],
        [node.output[0]],
        size=out[2:],
        scale=[float(np.float32(f)) for f in factor[2:]],
        coord=coord,
        layout="NCHW",
    )


# --- custom ops: (domain, op_type) → handler ----------------------------------------------------
CUSTOM_OPS: dict[tuple[str, str], Handler] = {}


def _rnnpool(imp: Importer, node: onnx.NodeProto) -> None:
    """tvc::RNNPool (docs/rnnpool.md), as compiler.frontend.torch.RNNPool exports it."""
    a = attrs_of(node)
    if len(node.input) != 9:
        imp.fail(node, f"has {len(node.input)} inputs; RNNPool takes X and 8 weight tensors")
    _need4d(imp, node, node.input[0])
    for name in node.input[1:]:
        if imp.value(name) is None:
            imp.fail(node, f"weight {name!r} is computed at run time; tvc needs constant weights")
    cell = a.get("cell", "FastGRNN")
    if cell != "FastGRNN":
        imp.fail(node, f"has cell={cell!r}; tvc implements the FastGRNN cell")
    missing = [
        k for k in ("patch_size", "strides", "zeta_1", "nu_1", "zeta_2", "nu_2") if k not in a
    ]
    if missing:
        imp.fail(
            node, f"lacks attribute(s) {', '.join(missing)}", "re-export with tvc's RNNPool layer"
        )
    h1, h2 = imp.shape(node.input[1])[0], imp.shape(node.input[5])[0]
    for key, want in (("hidden_size_1", h1), ("hidden_size_2", h2)):
        if key in a and int(a[key]) != want:  # type: ignore[call-overload]
            imp.fail(node, f"has {key}={a[key]} but its weights say {want}")
    imp.emit(
        node,
        "rnnpool",
        list(node.input),
        [node.output[0]],
        patch=list(a["patch_size"]),  # type: ignore[call-overload]
        stride=list(a["strides"]),  # type: ignore[call-overload]
        hidden1=h1,
        hidden2=h2,
        zeta1=float(a["zeta_1"]),  # type: ignore[arg-type]
        nu1=float(a["nu_1"]),  # type: ignore[arg-type]
        zeta2=float(a["zeta_2"]),  # type: ignore[arg-type]
        nu2=float(a["nu_2"]),  # type: ignore[arg-type]
        layout="NCHW",
    )


CUSTOM_OPS[("tvc", "RNNPool")] = _rnnpool
