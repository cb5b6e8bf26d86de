"""Row bands of NHWC tensors, the glue of patch-based stages (passes/patch): `row_view` names
rows [lo, hi) of a tensor, `row_concat` joins bands into the whole tensor. Neither moves a
byte: with batch 1 a band of rows is one contiguous byte range, so the planner gives each band
its place inside the whole tensor's buffer (plan.views) and the kernels read and write there.

`row_shift` is the one that moves bytes: the line buffer of a streamed stage keeps the rows
its consumer still needs, moved to the front of the same bytes, before the next rows are
computed behind them.

`input_rows` is where a graph input the caller hands over row by row (`tvc compile
--input-rows`: a camera's line interrupt, a sensor FIFO) enters: rows [lo, hi) of it, asked of
the caller's reader into the tensor's buffer. The input itself lives in no buffer of ours. In a
streamed stage each band asks for just its new rows, so the frame never exists whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import CodegenError, LowerCtx, Lowered
from compiler.ir.ops._qutil import same_params
from compiler.ir.ops._util import nhwc_4d
from compiler.ir.registry import (
    SAME,
    AttrSpec,
    RowRule,
    Rows,
    TType,
    int_ref,
    lowering,
    op,
    row_rule,
)
from compiler.ir.tensor import DTYPES, Tensor

ANY = tuple(DTYPES)


def row_bytes(graph: Graph, name: str) -> int:
    """Bytes of one row (W x C elements) of an NHWC tensor."""
    t = graph.tensors[name]
    return t.nbytes // t.shape[1]


def _infer_view(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    lo, hi = int(node.attrs["lo"]), int(node.attrs["hi"])  # type: ignore[call-overload]
    shape = t[0].shape
    if len(shape) != 4 or shape[0] != 1 or not 0 <= lo < hi <= shape[1]:
        raise IRError(f"{node.op} {node.label}: rows [{lo}, {hi}) of {list(shape)}")
    return [TType((1, hi - lo, shape[2], shape[3]), t[0].dtype)]


def _view_bytes(graph: Graph, node: Node) -> list[tuple[str, str, int]]:
    lo = int(node.attrs["lo"])  # type: ignore[call-overload]
    return [(node.outputs[0], node.inputs[0], lo * row_bytes(graph, node.inputs[0]))]


@op(
    "row_view",
    attrs={"lo": AttrSpec("int"), "hi": AttrSpec("int")},
    infer=_infer_view,
    dtypes=ANY,
    layout="logical",
    memory="view",
    quant=SAME,
    kernels=(),
    views=_view_bytes,
)
def row_view(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Rows [lo, hi) of a batch-1 NHWC tensor."""
    return [x[0][:, int(node.attrs["lo"]) : int(node.attrs["hi"])]]  # type: ignore[call-overload]


def _infer_concat(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    first = t[0].shape
    for x in t:
        if len(x.shape) != 4 or x.shape[0] != 1 or x.shape[2:] != first[2:]:
            raise IRError(f"row_concat {node.label}: bands {[list(x.shape) for x in t]}")
    return [TType((1, sum(x.shape[1] for x in t), first[2], first[3]), t[0].dtype)]


def _concat_bytes(graph: Graph, node: Node) -> list[tuple[str, str, int]]:
    out, at = [], 0
    for name in node.inputs:
        out.append((name, node.outputs[0], at))
        at += graph.tensors[name].nbytes
    return out


@op(
    "row_concat",
    inputs=(1, 1 << 16),
    infer=_infer_concat,
    dtypes=ANY,
    layout="logical",
    memory="view",
    quant=SAME,
    kernels=(),
    views=_concat_bytes,
)
def row_concat(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Bands of rows, top to bottom, as one batch-1 NHWC tensor."""
    return [np.concatenate(x, axis=1)]


def shift_is_safe(graph: Graph, node: Node) -> bool:
    """Rows [lo, hi) may move to the front of the bytes they are in: the copy runs forward
    and never writes ahead of what it reads (memmove)."""
    return int(node.attrs["lo"]) >= 0  # type: ignore[call-overload]


@op(
    "row_shift",
    attrs={"lo": AttrSpec("int"), "hi": AttrSpec("int")},
    infer=_infer_view,
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=SAME,
    kernels=(),
    overwrite_proof=shift_is_safe,
)
def row_shift(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Rows [lo, hi) of a batch-1 NHWC tensor, as a tensor of their own (a line buffer keeping
    the rows still needed: planned over the same bytes, it moves them to the front)."""
    return _copy_rows(node, x)


def _copy_rows(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [x[0][:, int(node.attrs["lo"]) : int(node.attrs["hi"])].copy()]  # type: ignore[call-overload]


def _same_codes(name: str, run: Callable[[Node, list[np.ndarray]], list[np.ndarray]]) -> None:
    """The integer reference of an op that moves rows: the same codes, the same parameters."""

    def run_int(
        node: Node, x: list[np.ndarray], ins: list[Tensor], outs: list[Tensor]
    ) -> list[np.ndarray]:
        same_params(node, ins, outs)
        return run(node, x)

    run_int.__doc__ = f"{name} on quantized data: the same codes"
    int_ref(name)(run_int)


_same_codes("row_shift", row_shift)


@lowering("row_shift", "portable")
def row_shift_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """memmove: forward over the same bytes when the planner put the kept rows where the line
    buffer starts, a plain copy otherwise."""
    src, dst = node.inputs[0], node.outputs[0]
    skip = int(node.attrs["lo"]) * row_bytes(ctx.graph, src)  # type: ignore[call-overload]
    n = ctx.graph.tensors[dst].nbytes
    low = Lowered()
    low.stmts.append(
        f"memmove({ctx.ptr(dst, False)}, (const uint8_t *){ctx.ptr(src)} + {skip}, {n});"
    )
    return low


def _moves_nothing(name: str) -> None:
    _same_codes(name, row_view if name == "row_view" else row_concat)

    @lowering(name, "portable")
    def no_code(ctx: LowerCtx, node: Node) -> Lowered:
        """No code: the planner placed every band inside the whole tensor's bytes."""
        parts = node.outputs if name == "row_view" else node.inputs
        for t in parts:
            if not ctx.is_aliased(t):
                raise CodegenError(f"node {node.label!r}: band {t!r} was not planned in place")
        return Lowered()


for _name in ("row_view", "row_concat"):
    _moves_nothing(_name)


def _infer_rows(node: Node, t: list[TType], v: list[np.ndarray | None]) -> list[TType]:
    shape = t[0].shape
    if len(shape) != 4 or shape[0] != 1:
        raise IRError(
            f"input_rows {node.label}: input of shape {list(shape)}; rows are read from a "
            "batch-1 image [1, H, W, C]"
        )
    return _infer_view(node, t, v)


@op(
    "input_rows",
    attrs={"lo": AttrSpec("int"), "hi": AttrSpec("int")},
    infer=_infer_rows,
    dtypes=ANY,
    layout="logical",
    memory="own",
    quant=SAME,
    kernels=(),
)
def input_rows(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """Rows [lo, hi) of a graph input, as the caller's reader hands them over."""
    return _copy_rows(node, x)


_same_codes("input_rows", input_rows)


def _source_rows(graph: Graph, node: Node, a: int, b: int) -> list[Rows | None] | None:
    """Row rule: the input is read through the reader, in no buffer (None: not held)."""
    return [None] if nhwc_4d(graph, node) else None


def _source_band(
    graph: Graph, node: Node, a: int, b: int, held: list[Rows | None]
) -> dict[str, object]:
    lo = int(node.attrs["lo"])  # type: ignore[call-overload]
    return {"lo": lo + a, "hi": lo + b}


row_rule("input_rows", RowRule(needs=_source_rows, band=_source_band, source=True))


def row_sources(graph: Graph) -> set[str]:
    """The graph inputs the caller hands over row by row: every reader is an input_rows node
    (no buffer of ours, no caller's buffer either)."""
    readers: dict[str, set[str]] = {}
    for n in graph.nodes:
        for i in n.inputs:
            readers.setdefault(i, set()).add(n.op)
    return {i for i in graph.inputs if readers.get(i) == {"input_rows"}}


@lowering("input_rows", "portable")
def input_rows_portable(ctx: LowerCtx, node: Node) -> Lowered:
    """One call of the caller's reader; a nonzero answer ends the run with that value."""
    lo, hi = int(node.attrs["lo"]), int(node.attrs["hi"])  # type: ignore[call-overload]
    if node.inputs[0] not in row_sources(ctx.graph):
        raise CodegenError(
            f"node {node.label!r}: input_rows reads {node.inputs[0]!r}, which is not a graph "
            "input read only by input_rows nodes (only those have a reader)"
        )
    r = ctx.reader(node.inputs[0])
    low = Lowered()
    low.stmts.append(
        f"{{ const int tvc_rc = {r}->read({r}->ctx, {lo}, {hi - lo}, "
        f"{ctx.ptr(node.outputs[0], False)}); if (tvc_rc != 0) {{ return tvc_rc; }} }}"
    )
    return low
