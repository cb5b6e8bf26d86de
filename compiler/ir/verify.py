"""IR invariants, checked after every pass in tests: a broken invariant is a tvc bug."""

from __future__ import annotations

from compiler.errors import IRError
from compiler.ir.graph import Graph
from compiler.ir.registry import TType, check_attrs, get_op, select_rule
from compiler.ir.tensor import QUANTIZED_DTYPES

QUANTIZED = QUANTIZED_DTYPES


def verify(graph: Graph, where: str = "") -> None:
    """Raise IRError naming the node and the broken rule; `where` names the pass that ran."""
    ctx = f" (after {where})" if where else ""

    def fail(msg: str) -> IRError:
        return IRError(f"IR check failed{ctx}: {msg}")

    defined: set[str] = set()
    for name in graph.inputs:
        t = graph.tensors.get(name)
        if t is None:
            raise fail(f"graph input %{name} has no tensor record")
        if t.is_const:
            raise fail(f"graph input %{name} is a constant")
        defined.add(name)
    for name, t in graph.tensors.items():
        if t.name != name:
            raise fail(f"tensor record {name!r} is named {t.name!r}")
        if t.is_const:
            assert t.data is not None
            if tuple(t.data.shape) != t.shape:
                raise fail(f"constant @{name}: data shape {t.data.shape} != {list(t.shape)}")
            defined.add(name)
        if any(d <= 0 for d in t.shape):
            raise fail(f"tensor {name} has a non-positive dim {list(t.shape)}")
    for node in graph.nodes:
        d = get_op(node.op)
        where_n = f"{node.op} node {node.label!r}"
        if not d.inputs[0] <= len(node.inputs) <= d.inputs[1]:
            raise fail(f"{where_n} has {len(node.inputs)} inputs, wants {d.inputs}")
        if not d.outputs[0] <= len(node.outputs) <= d.outputs[1]:
            raise fail(f"{where_n} has {len(node.outputs)} outputs, wants {d.outputs}")
        try:
            checked = check_attrs(node.op, node.attrs)
        except IRError as e:
            raise fail(f"{where_n}: {e.message}") from None
        if checked != node.attrs:
            raise fail(f"{where_n}: attributes {node.attrs} not normalized ({checked})")
        for i in node.inputs:
            if i not in defined:
                raise fail(f"{where_n} uses {i!r} before it is defined")
        ins = [graph.tensors[i] for i in node.inputs]
        allowed = d.dtypes + (QUANTIZED if d.run_int is not None else ())
        if ins[0].dtype not in allowed and not ins[0].is_const:
            raise fail(f"{where_n}: input dtype {ins[0].dtype} not in {list(allowed)}")
        for t in ins:
            if t.dtype in QUANTIZED and t.qparams is None:
                raise fail(f"{where_n}: {t.dtype} input {t.name} has no quantization parameters")
        if d.layout_sensitive and ins[0].layout and ins[0].layout != node.attrs["layout"]:
            raise fail(f"{where_n}: layout={node.attrs['layout']} but input is {ins[0].layout}")
        types = [TType(t.shape, t.dtype) for t in ins]
        values = [t.data for t in ins]
        try:
            inferred = d.infer(node, types, values)
        except IRError as e:
            raise fail(e.message) from None
        for k, o in enumerate(node.outputs):
            if o in defined:
                raise fail(f"{where_n} redefines {o!r}")
            t = graph.tensors.get(o)
            if t is None:
                raise fail(f"{where_n}: output {o!r} has no tensor record")
            if t.is_const:
                raise fail(f"{where_n}: output {o!r} is a constant")
            if inferred is not None and (t.shape, t.dtype) != (
                inferred[k].shape,
                inferred[k].dtype,
            ):
                raise fail(
                    f"{where_n}: output {o} is {t.dtype}{list(t.shape)}, op says "
                    f"{inferred[k].dtype}{list(inferred[k].shape)}"
                )
            if t.dtype in QUANTIZED and t.qparams is None:
                raise fail(f"{where_n}: {t.dtype} output {o} has no quantization parameters")
            defined.add(o)
    for o in graph.outputs:
        if o not in defined:
            raise fail(f"graph output {o!r} is never produced")


def verify_layout(graph: Graph) -> None:
    """After layout: no layout-sensitive op is left working on 4-D NCHW data."""
    for node in graph.nodes:
        d = get_op(node.op)
        x = graph.tensors[node.inputs[0]]
        if d.layout_sensitive and len(x.shape) == 4 and node.attrs["layout"] != "NHWC":
            raise IRError(
                f"IR check failed (after layout): {node.op} node {node.label!r} still runs on "
                f"{node.attrs['layout']} data"
            )


def verify_quantized(graph: Graph) -> None:
    """After quantize: every activation is int8/int16 with parameters, and every op computes
    in integers (has integer semantics)."""
    acts = [*graph.inputs, *(o for n in graph.nodes for o in n.outputs)]
    for name in acts:
        t = graph.tensors[name]
        if t.dtype not in QUANTIZED or t.qparams is None:
            raise IRError(
                f"IR check failed (after quantize): activation {name} is {t.dtype}"
                + ("" if t.qparams is not None else " without quantization parameters")
            )
    for node in graph.nodes:
        if get_op(node.op).run_int is None:
            raise IRError(
                f"IR check failed (after quantize): {node.op} node {node.label!r} has no "
                "integer semantics"
            )


def verify_lowerable(graph: Graph, backend: str) -> None:
    """Before codegen: every op has a lowering rule that applies, for the chosen backend
    (raises the CodegenError that names the node)."""
    for node in graph.nodes:
        select_rule(graph, node, backend)
