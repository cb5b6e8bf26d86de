"""Data movement: reshape, transpose, concat, split, slice, pad, channel permutation, casts."""

from __future__ import annotations

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import BYTES, C_TYPES, LowerCtx, Lowered, ints, strides, struct
from compiler.ir.ops._qutil import same_params, scale_zp
from compiler.ir.ops._util import (
    permute_axes,
    permute_axis,
    permute_pads,
    same,
    same_rows,
)
from compiler.ir.registry import (
    NOT_QUANTIZED,
    SAME,
    AttrSpec,
    ChannelRule,
    RowRule,
    TType,
    channel_rule,
    get_op,
    int_ref,
    lowering,
    op,
    row_rule,
)
from compiler.ir.tensor import DTYPES, Tensor
from compiler.numerics.fixedpoint import round_half_away_f32

ANY = tuple(DTYPES)


def resolve_reshape(
    in_shape: tuple[int, ...], target: list[int], allowzero: bool = False
) -> tuple[int, ...]:
    """ONNX Reshape: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = [in_shape[i] if (d == 0 and not allowzero) else int(d) for i, d in enumerate(target)]
    numel = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        raise ValueError("more than one -1 in reshape target")
    if -1 in out:
        rest = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if rest == 0 or numel % rest:
            raise ValueError(f"cannot reshape {list(in_shape)} into {target}")
        out[out.index(-1)] = numel // rest
    if int(np.prod(out, dtype=np.int64)) != numel:
        raise ValueError(f"cannot reshape {list(in_shape)} into {target}")
    return tuple(out)


def _infer_reshape(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType] | None:
    if "shape" in node.attrs:
        if len(t) != 1:
            raise IRError(f"reshape {node.label}: shape given both as attribute and input")
        target = list(node.attrs["shape"])  # type: ignore[arg-type]
    elif len(t) == 2 and v[1] is not None:
        target = [int(d) for d in v[1].reshape(-1)]
    elif len(t) == 2:
        return None  # computed at run time; canonicalize folds it
    else:
        raise IRError(f"reshape {node.label}: no target shape")
    try:
        return [TType(resolve_reshape(t[0].shape, target), t[0].dtype)]
    except ValueError as e:
        raise IRError(f"reshape {node.label}: {e}") from None


@op(
    "reshape",
    attrs={"shape": AttrSpec("ints", None)},
    inputs=(1, 2),
    infer=_infer_reshape,
    dtypes=ANY,
    layout="reshape",
    memory="alias",
    quant=SAME,
    kernels=("tvc_move.c",),
)
def reshape(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Static target when the `shape` attribute is set; else ONNX semantics on input 2."""
    if "shape" in node.attrs:
        return [x[0].reshape(node.attrs["shape"])]  # type: ignore[arg-type]
    return [x[0].reshape(resolve_reshape(x[0].shape, [int(d) for d in x[1].reshape(-1)]))]


def _infer_transpose(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    perm = list(node.attrs["perm"])  # type: ignore[arg-type]
    if sorted(perm) != list(range(len(t[0].shape))):
        raise IRError(f"transpose {node.label}: perm {perm} does not fit rank {len(t[0].shape)}")
    return [TType(tuple(t[0].shape[p] for p in perm), t[0].dtype)]


@op(
    "transpose",
    attrs={"perm": AttrSpec("ints")},
    infer=_infer_transpose,
    dtypes=ANY,
    layout="transpose",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
)
def transpose(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[0].transpose(node.attrs["perm"]))]  # type: ignore[arg-type]


def _infer_concat(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    rank = len(t[0].shape)
    axis = int(node.attrs["axis"]) % max(rank, 1)  # type: ignore[arg-type]
    for other in t[1:]:
        if len(other.shape) != rank or any(
            a != b
            for i, (a, b) in enumerate(zip(other.shape, t[0].shape, strict=True))
            if i != axis
        ):
            raise IRError(
                f"concat {node.label}: shapes {[list(x.shape) for x in t]} differ off axis {axis}"
            )
    shape = list(t[0].shape)
    shape[axis] = sum(x.shape[axis] for x in t)
    return [TType(tuple(shape), t[0].dtype)]


@op(
    "concat",
    attrs={"axis": AttrSpec("int")},
    inputs=(1, 1 << 16),
    infer=_infer_concat,
    dtypes=ANY,
    layout="axis",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
    permute_attrs=permute_axis,
)
def concat(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.concatenate(x, axis=node.attrs["axis"])]  # type: ignore[arg-type]


def _infer_split(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    shape = t[0].shape
    axis = int(node.attrs["axis"]) % len(shape)  # type: ignore[arg-type]
    sizes = list(node.attrs["sizes"])  # type: ignore[arg-type]
    if sum(sizes) != shape[axis] or len(sizes) != len(node.outputs):
        raise IRError(f"split {node.label}: sizes {sizes} do not split dim {shape[axis]}")
    return [
        TType(tuple(s if i == axis else d for i, d in enumerate(shape)), t[0].dtype) for s in sizes
    ]


@op(
    "split",
    attrs={"axis": AttrSpec("int"), "sizes": AttrSpec("ints")},
    outputs=(1, 1 << 16),
    infer=_infer_split,
    dtypes=ANY,
    layout="axis",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
    permute_attrs=permute_axis,
)
def split(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    bounds = np.cumsum(node.attrs["sizes"])[:-1]  # type: ignore[arg-type]
    return [np.ascontiguousarray(p) for p in np.split(x[0], bounds, axis=node.attrs["axis"])]  # type: ignore[arg-type]


def slice_index(shape: tuple[int, ...], attrs: dict[str, object]) -> tuple[slice, ...]:
    """ONNX Slice semantics (negative indices, clamping, negative steps) as numpy slices."""
    index = [slice(None)] * len(shape)
    starts, ends = attrs["starts"], attrs["ends"]
    axes, steps = attrs["axes"], attrs["steps"]
    for s, e, a, st in zip(starts, ends, axes, steps, strict=True):  # type: ignore[call-overload]
        dim = shape[a]
        s = s + dim if s < 0 else s
        e = e + dim if e < 0 else e
        if st > 0:
            s, e = min(max(s, 0), dim), min(max(e, 0), dim)
            index[a] = slice(s, e, st)
        else:
            s, e = min(max(s, -1), dim - 1), min(max(e, -1), dim - 1)
            index[a] = slice(s, None if e < 0 else e, st)
    return tuple(index)


def _infer_slice(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    a = node.attrs
    n = len(a["starts"])  # type: ignore[arg-type]
    if not (len(a["ends"]) == len(a["axes"]) == len(a["steps"]) == n) or 0 in a["steps"]:  # type: ignore[arg-type,operator]
        raise IRError(f"slice {node.label}: starts/ends/axes/steps do not match")
    shape = np.broadcast_to(np.int8(0), t[0].shape)[slice_index(t[0].shape, a)].shape
    return [TType(tuple(shape), t[0].dtype)]


@op(
    "slice",
    attrs={
        "starts": AttrSpec("ints"),
        "ends": AttrSpec("ints"),
        "axes": AttrSpec("ints"),
        "steps": AttrSpec("ints"),
    },
    infer=_infer_slice,
    dtypes=ANY,
    layout="axis",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
    permute_attrs=permute_axes,
)
def slice_(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.ascontiguousarray(x[0][slice_index(x[0].shape, node.attrs)])]


def _infer_pad(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    pads = list(node.attrs["pads"])  # type: ignore[arg-type]
    r = len(t[0].shape)
    if len(pads) != 2 * r or min(pads) < 0:
        raise IRError(f"pad {node.label}: pads {pads} do not fit rank {r} (or are negative)")
    return [TType(tuple(d + pads[i] + pads[i + r] for i, d in enumerate(t[0].shape)), t[0].dtype)]


@op(
    "pad",
    attrs={
        "pads": AttrSpec("ints"),  # ONNX order: all begins, then all ends
        "mode": AttrSpec("str", "constant", ("constant", "reflect", "edge")),
        "value": AttrSpec("float", 0.0),
    },
    infer=_infer_pad,
    layout="axis",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
    permute_attrs=permute_pads,
)
def pad(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    pads = node.attrs["pads"]
    r = x[0].ndim
    width = [(pads[i], pads[i + r]) for i in range(r)]  # type: ignore[index]
    if node.attrs["mode"] == "constant":
        return [np.pad(x[0], width, constant_values=np.float32(node.attrs["value"]))]  # type: ignore[arg-type]
    return [np.pad(x[0], width, mode=node.attrs["mode"])]  # type: ignore[call-overload]


def _infer_permute(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    axis = int(node.attrs["axis"]) % len(t[0].shape)  # type: ignore[arg-type]
    perm = list(node.attrs["perm"])  # type: ignore[arg-type]
    if sorted(perm) != list(range(t[0].shape[axis])):
        raise IRError(f"permute_channels {node.label}: perm is not a permutation of axis {axis}")
    return [t[0]]


@op(
    "permute_channels",
    attrs={"perm": AttrSpec("ints"), "axis": AttrSpec("int", -1)},
    infer=_infer_permute,
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=SAME,
    kernels=("tvc_move.c",),
)
def permute_channels(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """y[..., c] = x[..., perm[c]]: what a channel shuffle becomes in NHWC."""
    return [np.take(x[0], node.attrs["perm"], axis=node.attrs["axis"])]  # type: ignore[call-overload]


@op(
    "identity",
    infer=lambda n, t, v: same(t),
    dtypes=ANY,
    layout="elementwise",
    memory="alias",
    quant=SAME,
    kernels=("tvc_move.c",),
)
def identity(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [x[0]]


@op(
    "dropout",
    infer=lambda n, t, v: same(t),
    layout="elementwise",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def dropout(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Inference: the identity."""
    return [x[0]]


@op(
    "cast",
    attrs={"to": AttrSpec("str", choices=tuple(DTYPES))},
    infer=lambda n, t, v: [TType(t[0].shape, str(n.attrs["to"]))],
    dtypes=ANY,
    layout="elementwise",
    memory="own",
    quant=NOT_QUANTIZED,
    kernels=(),
)
def cast(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [x[0].astype(DTYPES[str(node.attrs["to"])])]


def _moves_bytes(name: str) -> None:
    """Data movement is the same on integers as on floats, given equal quant params."""
    float_run = get_op(name).run

    def run_int(
        node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
    ) -> list[np.ndarray]:
        same_params(node, ins if name == "concat" else ins[:1], outs)
        return float_run(node, x)

    run_int.__doc__ = f"{name} on quantized data: bytes move, values do not change"
    int_ref(name)(run_int)


for _name in ("reshape", "transpose", "concat", "split", "slice", "permute_channels", "identity"):
    _moves_bytes(_name)


@int_ref("pad")
def pad_int(
    node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
) -> list[np.ndarray]:
    """Constant padding of a quantized tensor pads with the code of the (real) pad value."""
    same_params(node, ins[:1], outs)
    if node.attrs["mode"] != "constant":
        return pad(node, x)
    s, zp = scale_zp(outs[0])
    code = zp + int(round_half_away_f32(np.float32(node.attrs["value"]) / np.float32(s)))
    pads = node.attrs["pads"]
    r = x[0].ndim
    width = [(pads[i], pads[i + r]) for i in range(r)]  # type: ignore[index]
    return [np.pad(x[0], width, constant_values=code)]


# --- lowering: data movement kernels (tvc_move.c) -------------------------------------------


def _dt(ctx: LowerCtx, node: Node) -> str:
    return ctx.graph.tensors[node.outputs[0]].dtype


@lowering("reshape", "portable")
@lowering("identity", "portable")
def reshape_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """The same bytes under another shape: nothing, unless the planner could not alias them."""
    low = Lowered()
    if ctx.is_aliased(node.outputs[0]):
        return low
    src, dst = node.inputs[0], node.outputs[0]
    n = ctx.graph.tensors[dst].nbytes
    low.stmts.append(f"memmove({ctx.ptr(dst, False)}, {ctx.ptr(src)}, {n});")
    return low


def _strided(
    ctx: LowerCtx,
    low: Lowered,
    kind: str,
    name: str,
    src: str,
    dst: str,
    dims: list[int],
    steps: list[int],
    offset: int,
) -> None:
    """kind "gather": a strided view of src into contiguous dst (slice, split, transpose);
    "scatter": contiguous src into a strided region of dst (pad, concat)."""
    fields = {"dims": "{" + ints(dims) + "}", "strides": "{" + ints(steps) + "}", "offset": offset}
    low.decls.append(struct("tvc_strided_t", name, fields))
    dt = ctx.graph.tensors[dst].dtype
    low.stmts.append(ctx.call(f"{kind}_{BYTES[dt]}", f"&{name}", ctx.ptr(src), ctx.ptr(dst, False)))


@lowering("transpose", "portable")
def transpose_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    perm = list(node.attrs["perm"])  # type: ignore[call-overload]
    x = ctx.graph.tensors[node.inputs[0]]
    st = strides(list(x.shape))
    d = [x.shape[p] for p in perm]
    pad = 4 - len(d)
    _strided(
        ctx,
        low,
        "gather",
        ctx.name,
        node.inputs[0],
        node.outputs[0],
        [1] * pad + d,
        [0] * pad + [st[p] for p in perm],
        0,
    )
    return low


def _slice_params(
    x_shape: tuple[int, ...], attrs: dict[str, object]
) -> tuple[list[int], list[int], int]:
    st = strides(list(x_shape))
    d, steps, offset = [], [], 0
    for k, s in enumerate(slice_index(x_shape, attrs)):
        start, stop, step = s.indices(x_shape[k])
        d.append(len(range(start, stop, step)))
        steps.append(st[k] * step)
        offset += start * st[k]
    pad = 4 - len(d)
    return [1] * pad + d, [0] * pad + steps, offset


@lowering("slice", "portable")
def slice_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    d, steps, offset = _slice_params(ctx.graph.tensors[node.inputs[0]].shape, node.attrs)
    _strided(ctx, low, "gather", ctx.name, node.inputs[0], node.outputs[0], d, steps, offset)
    return low


@lowering("split", "portable")
def split_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x = ctx.graph.tensors[node.inputs[0]]
    axis = int(node.attrs["axis"]) % len(x.shape)  # type: ignore[call-overload]
    start = 0
    for k, (o, size) in enumerate(zip(node.outputs, node.attrs["sizes"], strict=True)):  # type: ignore[call-overload]
        attrs = {"starts": [start], "ends": [start + size], "axes": [axis], "steps": [1]}
        d, steps, offset = _slice_params(x.shape, attrs)
        _strided(ctx, low, "gather", f"{ctx.name}_{k}", node.inputs[0], o, d, steps, offset)
        start += size
    return low


@lowering("concat", "portable")
def concat_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    y = ctx.graph.tensors[node.outputs[0]]
    axis = int(node.attrs["axis"]) % len(y.shape)  # type: ignore[call-overload]
    st = strides(list(y.shape))
    start = 0
    for k, i in enumerate(node.inputs):
        shape = list(ctx.graph.tensors[i].shape)
        pad = 4 - len(shape)
        _strided(
            ctx,
            low,
            "scatter",
            f"{ctx.name}_{k}",
            i,
            node.outputs[0],
            [1] * pad + shape,
            [0] * pad + st,
            start * st[axis],
        )
        start += shape[axis]
    return low


@lowering("pad", "portable", applies=lambda g, n: n.attrs["mode"] == "constant")
def pad_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """Fill with the padding value's code, then scatter the input into the middle."""
    low = Lowered()
    x, y = ctx.graph.tensors[node.inputs[0]], ctx.graph.tensors[node.outputs[0]]
    dt = y.dtype
    s, zp = scale_zp(y)
    code = zp + int(round_half_away_f32(np.float32(node.attrs["value"]) / np.float32(s)))
    pads = list(node.attrs["pads"])  # type: ignore[call-overload]
    r = len(x.shape)
    st = strides(list(y.shape))
    offset = sum(pads[k] * st[k] for k in range(r))
    low.stmts.append(
        ctx.call(
            f"fill_{BYTES[dt]}",
            str(y.numel),
            f"({C_TYPES[dt]}){code}",
            ctx.ptr(node.outputs[0], False),
        )
    )
    _strided(
        ctx,
        low,
        "scatter",
        ctx.name,
        node.inputs[0],
        node.outputs[0],
        [1] * (4 - r) + list(x.shape),
        [0] * (4 - r) + st,
        offset,
    )
    return low


def _last(graph: Graph, node: Node) -> bool:
    rank = len(graph.tensors[node.inputs[0]].shape)
    return int(node.attrs["axis"]) % rank == rank - 1  # type: ignore[call-overload]


@lowering("permute_channels", "portable", applies=_last)
def permute_channels_portable(ctx: LowerCtx, node: Node) -> Lowered:
    low = Lowered()
    x = ctx.graph.tensors[node.inputs[0]]
    depth = x.shape[-1]
    perm = low.table(f"{ctx.name}_perm", "int32_t", np.array(node.attrs["perm"]))
    low.stmts.append(
        ctx.call(
            f"permute_last_{BYTES[_dt(ctx, node)]}",
            str(x.numel // depth),
            str(depth),
            perm,
            ctx.ptr(node.inputs[0]),
            ctx.ptr(node.outputs[0], False),
        )
    )
    return low


def _concat_channels(graph: Graph, node: Node) -> str | None:
    """Channels of the inputs one after another when joined on the last axis (NHWC C)."""
    y = graph.tensors[node.outputs[0]]
    axis = int(node.attrs["axis"]) % len(y.shape)  # type: ignore[call-overload]
    consts = any(graph.tensors[i].data is not None for i in node.inputs)
    return "concat" if axis == len(y.shape) - 1 and y.dtype == "i8" and not consts else None


def _reshape_channels(graph: Graph, node: Node) -> str | None:
    """[N, 1, 1, C] -> [N, C] (the flatten before a classifier) keeps channel k as feature k."""
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    flat = len(x.shape) == 4 and x.shape[1:3] == (1, 1) and y.shape == (x.shape[0], x.shape[3])
    return "flatten" if flat and y.dtype == "i8" and len(node.inputs) == 1 else None


channel_rule("concat", ChannelRule(kind=_concat_channels))
channel_rule("reshape", ChannelRule(kind=_reshape_channels))


def _concat_rows(graph: Graph, node: Node, a: int, b: int) -> list[tuple[int, int] | None] | None:
    """Joined on channels (NHWC), rows of the result are the same rows of every input."""
    y = graph.tensors[node.outputs[0]]
    if int(node.attrs["axis"]) % max(len(y.shape), 1) != 3:  # type: ignore[call-overload]
        return None
    return same_rows(graph, node, a, b)


row_rule("concat", RowRule(needs=_concat_rows))
row_rule(  # a channel shuffle keeps rows
    "permute_channels",
    RowRule(needs=lambda g, n, a, b: same_rows(g, n, a, b) if n.attrs["axis"] in (3, -1) else None),
)
