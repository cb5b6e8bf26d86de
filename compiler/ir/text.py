"""Text form of the IR: a printer and a lark parser that round-trip a graph exactly."""

from __future__ import annotations

import base64
import json
import re
from functools import cache
from pathlib import Path

import numpy as np
from lark import Lark, Token, Transformer, UnexpectedInput
from lark.exceptions import VisitError

from compiler.errors import IRError, TvcError
from compiler.ir.graph import Graph, Node
from compiler.ir.registry import check_attrs, get_op
from compiler.ir.tensor import DTYPES, QParams, Tensor

_PLAIN = re.compile(r"[A-Za-z0-9_.]+")
SMALL_CONST = 16  # constants up to this many elements print as a readable list


def _name(sigil: str, name: str) -> str:
    return sigil + (name if _PLAIN.fullmatch(name) else json.dumps(name))


def _num(v: object) -> str:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(int(v))  # type: ignore[call-overload]


def _qparams(q: QParams) -> str:
    if q.exp is not None:
        return f" q(exp={q.exp})"
    if q.axis is None:
        return f" q({_num(q.scale[0])}, {q.zero_point[0]})"
    scales = ", ".join(_num(s) for s in q.scale)
    zps = ", ".join(str(z) for z in q.zero_point)
    return f" q([{scales}], [{zps}], axis={q.axis})"


def _ttype(t: Tensor) -> str:
    s = f"{t.dtype}[{','.join(str(d) for d in t.shape)}]"
    if t.layout:
        s += f" {t.layout}"
    if t.qparams is not None:
        s += _qparams(t.qparams)
    return s


def _attr_value(v: object) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_num(x) for x in v) + "]"
    return _num(v)


def _attrs(node: Node) -> str:
    spec = get_op(node.op).attrs
    shown = [f"{k}={_attr_value(v)}" for k, v in node.attrs.items() if spec[k].default != v]
    return " {" + ", ".join(shown) + "}" if shown else ""


def _const_value(t: Tensor, full: bool) -> str:
    assert t.data is not None
    if t.numel <= (SMALL_CONST if full else 4):
        flat = t.data.reshape(-1)
        if t.dtype == "f32":
            return "[" + ", ".join(repr(float(x)) for x in flat) + "]"
        return "[" + ", ".join(str(int(x)) for x in flat) + "]"
    if not full:
        return "..."
    raw = np.ascontiguousarray(t.data, DTYPES[t.dtype].newbyteorder("<")).tobytes()
    return 'b64"' + base64.b64encode(raw).decode() + '"'


def print_graph(graph: Graph, full: bool = True) -> str:
    """The text form; `full=False` elides large constants (for reading, not for parsing)."""
    params_in = ", ".join(f"{_name('%', i)}: {_ttype(graph.tensors[i])}" for i in graph.inputs)
    params_out = ", ".join(f"{_name('%', o)}: {_ttype(graph.tensors[o])}" for o in graph.outputs)
    head = f"graph {graph.name}({params_in}) -> ({params_out})"
    if graph.meta:
        head += " with {" + ", ".join(f"{k}={_attr_value(v)}" for k, v in graph.meta.items()) + "}"
    lines = [head + " {"]
    for c in graph.constants():
        t = graph.tensors[c]
        lines.append(f"  const {_name('@', c)}: {_ttype(t)} = {_const_value(t, full)}")
    for n in graph.nodes:
        outs = ", ".join(f"{_name('%', o)}: {_ttype(graph.tensors[o])}" for o in n.outputs)
        args = ", ".join(_name("@" if graph.tensors[i].is_const else "%", i) for i in n.inputs)
        line = f"  {outs} = {n.op}({args}){_attrs(n)}"
        if n.name:
            line += " " + json.dumps(n.name)
        lines.append(line)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _unname(tok: Token) -> str:
    body = str(tok)[1:]
    return json.loads(body) if body.startswith('"') else body


class _Build(Transformer):  # type: ignore[type-arg]
    """Turns the parse tree into a Graph; semantic checks are left to the verifier."""

    def int_(self, a: list[Token]) -> int:
        return int(a[0])

    def float_(self, a: list[Token]) -> float:
        return float(a[0])

    def string(self, a: list[Token]) -> str:
        return json.loads(str(a[0]))

    def numlist(self, a: list[object]) -> list[object]:
        return [x for x in a if x is not None]

    def attr(self, a: list[object]) -> tuple[str, object]:
        return str(a[0]), a[1]

    def attrs(self, a: list[object]) -> dict[str, object]:
        return dict(x for x in a if x is not None)  # type: ignore[misc]

    def meta(self, a: list[object]) -> dict[str, object]:
        return a[0]  # type: ignore[return-value]

    def q_tensor(self, a: list[object]) -> QParams:
        return QParams((float(a[0]),), (int(a[1]),))  # type: ignore[arg-type]

    def q_channel(self, a: list[object]) -> QParams:
        nums = [x for x in a]
        axis = int(nums[-1])  # type: ignore[call-overload]
        body = nums[:-1]
        half = len(body) // 2
        return QParams(
            tuple(float(x) for x in body[:half]),  # type: ignore[arg-type]
            tuple(int(x) for x in body[half:]),  # type: ignore[call-overload]
            axis,
        )

    def q_exp(self, a: list[object]) -> QParams:
        return QParams(exp=int(a[0]))  # type: ignore[call-overload]

    def qparams(self, a: list[object]) -> QParams:
        return a[0]  # type: ignore[return-value]

    def ttype(self, a: list[object]) -> dict[str, object]:
        dtype = str(a[0])
        dims, layout, q = [], None, None
        for x in a[1:]:
            if isinstance(x, Token) and x.type == "INT":
                dims.append(int(x))
            elif isinstance(x, Token) and x.type == "LAYOUT":
                layout = str(x)
            elif isinstance(x, QParams):
                q = x
        return {"dtype": dtype, "shape": tuple(dims), "layout": layout, "qparams": q}

    def param(self, a: list[object]) -> Tensor:
        return Tensor(_unname(a[0]), **a[1])  # type: ignore[arg-type]

    out = param

    def b64(self, a: list[Token]) -> object:
        return ("b64", base64.b64decode(json.loads(str(a[0]))))

    def flat(self, a: list[object]) -> object:
        return ("flat", [x for x in a if x is not None])

    def elided(self, a: list[object]) -> object:
        return ("elided", None)

    def const(self, a: list[object]) -> Tensor:
        name = _unname(a[0])  # type: ignore[arg-type]
        info: dict[str, object] = a[1]  # type: ignore[assignment]
        kind, payload = a[2]  # type: ignore[misc]
        dt = DTYPES[str(info["dtype"])]
        if kind == "elided":
            raise IRError(f"constant @{name}: data was elided; print the IR with --full")
        if kind == "b64":
            data = np.frombuffer(payload, dt.newbyteorder("<")).astype(dt)
        else:
            data = np.array(payload, dtype=np.float64 if dt.kind == "f" else np.int64).astype(dt)
        shape = info["shape"]
        if data.size != int(np.prod(shape, dtype=np.int64)):  # type: ignore[call-overload]
            raise IRError(f"constant @{name}: {data.size} values for shape {list(shape)}")  # type: ignore[call-overload]
        data = data.reshape(shape)  # type: ignore[call-overload]
        data.setflags(write=False)
        return Tensor(name, data=data, **info)  # type: ignore[arg-type]

    def node(self, a: list[object]) -> tuple[Node, list[Tensor]]:
        outs = [x for x in a if isinstance(x, Tensor)]
        rest = a[len(outs) :]
        opname = str(rest[0])
        args = [
            _unname(x) for x in rest[1:] if isinstance(x, Token) and x.type in ("TNAME", "CNAME")
        ]
        attrs = next((x for x in rest if isinstance(x, dict)), {})
        label = next(
            (json.loads(str(x)) for x in rest if isinstance(x, Token) and x.type == "STRING"), ""
        )
        get_op(opname)
        node = Node(opname, args, [o.name for o in outs], check_attrs(opname, attrs), label)
        return node, outs

    def inputs(self, a: list[object]) -> tuple[str, list[Tensor]]:
        return "inputs", [x for x in a if x is not None]  # type: ignore[misc]

    def outputs(self, a: list[object]) -> tuple[str, list[Tensor]]:
        return "outputs", [x for x in a if x is not None]  # type: ignore[misc]

    def start(self, a: list[object]) -> Graph:
        name = str(a[0])
        inputs: list[Tensor] = a[1][1]  # type: ignore[index]
        outputs: list[Tensor] = a[2][1]  # type: ignore[index]
        meta: dict[str, object] = {}
        tensors: dict[str, Tensor] = {t.name: t for t in inputs}
        nodes: list[Node] = []
        for x in a[3:]:
            if isinstance(x, dict):
                meta = x
            elif isinstance(x, Tensor):
                tensors[x.name] = x
            elif isinstance(x, tuple):
                node, outs = x
                nodes.append(node)
                tensors.update((o.name, o) for o in outs)
        for t in outputs:
            tensors.setdefault(t.name, t)
        return Graph(
            name, [t.name for t in inputs], [t.name for t in outputs], tensors, nodes, meta
        )


@cache
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("text.lark")).read_text()
    return Lark(grammar, parser="lalr", maybe_placeholders=False)


def parse_graph(text: str, source: str = "<text>") -> Graph:
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as e:
        raise IRError(
            f"{source}:{e.line}:{e.column}: cannot parse IR text\n{e.get_context(text)}"
        ) from None
    try:
        return _Build().transform(tree)
    except VisitError as e:  # lark wraps what the builder raises
        if isinstance(e.orig_exc, TvcError):
            raise IRError(f"{source}: {e.orig_exc.message}") from None
        raise IRError(f"{source}: invalid IR text ({e.orig_exc})") from None
