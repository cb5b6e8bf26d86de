"""ONNX importer: a faithful float Graph (NCHW, shape glue kept) from what torch.onnx exports.

Shapes are static after import: a dynamic batch becomes 1, other dynamic dims need
`--input-shape`. Values that only shape glue computes (Shape → Gather → Concat → Reshape) are
propagated at import so every tensor gets its static shape; canonicalize then folds the glue.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import NoReturn

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.errors import IRError, ModelError, UsageError
from compiler.frontend.limits import MAX_ELEMENTS, MAX_ITEMS, many
from compiler.frontend.onnx_ops import CUSTOM_OPS, HANDLERS, ONNX_DTYPES, dtype_name
from compiler.ir.graph import Graph
from compiler.ir.registry import TType, get_op, make_node
from compiler.ir.tensor import Tensor, const_tensor

OPSETS = range(11, 22)
STANDARD_DOMAINS = ("", "ai.onnx")


def parse_input_shapes(spec: list[str] | None) -> dict[str, tuple[int, ...]]:
    """`--input-shape x=1,3,64,64` (name optional for a single-input model)."""
    out: dict[str, tuple[int, ...]] = {}
    for item in spec or []:
        name, _, dims = item.rpartition("=")
        try:
            out[name] = tuple(int(d) for d in dims.replace("x", ",").split(",") if d)
        except ValueError:
            raise UsageError(f"--input-shape {item!r}: expected NAME=1,3,64,64") from None
    return out


def _graph_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "model"
    return name if not name[0].isdigit() else "m_" + name


def _array(init: onnx.TensorProto) -> np.ndarray:
    a = numpy_helper.to_array(init)
    if a.dtype in (np.float64, np.float16):
        a = a.astype(np.float32)
    return a


class Importer:
    """Builds the Graph node by node; handlers in onnx_ops call back into it."""

    def __init__(
        self, model: onnx.ModelProto, path: Path, shapes: dict[str, tuple[int, ...]]
    ) -> None:
        self.path = path
        self.model = model
        self.opset = next(
            (o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), 0
        )
        self.graph = Graph(_graph_name(path), [], [], {}, [], {"source_layout": "NCHW"})
        self.values: dict[str, np.ndarray] = {}  # propagated values of non-constant glue tensors
        self.uses = Counter(i for n in model.graph.node for i in n.input)
        self.uses.update(o.name for o in model.graph.output)
        self.shapes = shapes
        self._node: onnx.NodeProto | None = None
        self._emitted = 0

    # --- services for handlers -----------------------------------------------------------------
    def fail(self, node: onnx.NodeProto, msg: str, hint: str | None = None) -> NoReturn:
        raise ModelError(f"{self.path}: node {node.name!r} ({node.op_type}) {msg}", hint)

    def shape(self, name: str) -> tuple[int, ...]:
        return self.graph.tensors[name].shape

    def value(self, name: str) -> np.ndarray | None:
        t = self.graph.tensors.get(name)
        if t is not None and t.data is not None:
            return t.data
        return self.values.get(name)

    def is_initializer(self, name: str) -> bool:
        t = self.graph.tensors.get(name)
        return t is not None and t.is_const

    def is_used(self, name: str) -> bool:
        return self.uses[name] > 0

    def tmp(self, node: onnx.NodeProto, suffix: str) -> str:
        return self.graph.fresh_name(f"{node.output[0]}/{suffix}")

    def const(self, node: onnx.NodeProto, suffix: str, array: np.ndarray) -> str:
        name = self.graph.fresh_name(f"{node.name or node.output[0]}/{suffix}")
        self.add_constant(name, array)
        return name

    def add_constant(self, name: str, array: np.ndarray) -> None:
        if array.dtype in (np.float64, np.float16):
            array = array.astype(np.float32)
        try:
            self.graph.tensors[name] = const_tensor(name, array)
        except TypeError:
            raise ModelError(
                f"{self.path}: constant {name!r} has unsupported dtype {array.dtype}"
            ) from None

    def emit(
        self,
        node: onnx.NodeProto,
        opname: str,
        inputs: list[str],
        outputs: list[str],
        **attrs: object,
    ) -> None:
        """Add one IR node for `node`, inferring its outputs' shapes and propagating values."""
        label = node.name or f"{node.op_type}_{self._emitted}"
        if self._node is node:
            label = f"{label}:{opname}"
        self._node = node
        self._emitted += 1
        try:
            n = make_node(opname, inputs, outputs, label, **attrs)
            d = get_op(opname)
            ins = [self.graph.tensors[i] for i in inputs]
            types = [TType(t.shape, t.dtype) for t in ins]
            vals = [self.value(i) for i in inputs]
            inferred = d.infer(n, types, vals)
        except IRError as e:
            self.fail(node, e.message)
        known: list[np.ndarray] | None = None
        if opname == "shape":
            known = d.run(n, [np.broadcast_to(np.float32(0), ins[0].shape)])
        elif all(v is not None for v in vals) and ins:
            known = d.run(n, vals)  # type: ignore[arg-type]
        if inferred is None:
            if known is None:
                self.fail(
                    node,
                    "has an output shape that depends on run-time values",
                    "give static input shapes with --input-shape",
                )
            inferred = [TType(tuple(k.shape), self._dtype(k)) for k in known]
        for o, tt in zip(outputs, inferred, strict=True):
            count = math.prod(int(d) for d in tt.shape)
            if count > MAX_ELEMENTS or any(d < 0 for d in tt.shape):
                self.fail(node, f"would make {o!r} of shape {list(tt.shape)}, beyond tvc's limits")
        for k, (o, tt) in enumerate(zip(outputs, inferred, strict=True)):
            layout = "NCHW" if len(tt.shape) == 4 and tt.dtype == "f32" else None
            self.graph.tensors[o] = Tensor(o, tt.shape, tt.dtype, layout)
            if known is not None:
                self.values[o] = known[k]
        self.graph.nodes.append(n)

    @staticmethod
    def _dtype(a: np.ndarray) -> str:
        return {
            np.dtype(np.float32): "f32",
            np.dtype(np.int64): "i64",
            np.dtype(np.int32): "i32",
        }.get(a.dtype, "f32")

    # --- the import ----------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.model.graph
        for init in g.initializer:
            self.add_constant(init.name, _array(init))
        for vi in g.input:
            if vi.name in self.graph.tensors:
                continue  # an initializer listed as input (old exporters)
            self._add_input(vi)
        for node in self._sorted(g):
            custom = CUSTOM_OPS.get((node.domain, node.op_type))
            if custom is not None:
                custom(self, node)
                continue
            if node.domain not in STANDARD_DOMAINS:
                raise ModelError(
                    f"{self.path}: node {node.name!r} ({node.domain}::{node.op_type}) is a "
                    f"custom op of domain {node.domain!r}, which tvc does not know",
                    "tvc imports standard ONNX ops; replace the custom layer before export",
                )
            handler = HANDLERS.get(node.op_type)
            if handler is None:
                raise ModelError(
                    f"{self.path}: node {node.name!r} ({node.op_type}) is not supported by tvc",
                    "supported ONNX ops: " + ", ".join(sorted(HANDLERS)),
                )
            try:
                handler(self, node)
            except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
                # a handler met a node it cannot read: a missing attribute or input, a wrong
                # rank, a zero stride; the file is valid protobuf but not a valid node
                why = f"{type(e).__name__}: {e}"[:160]
                self.fail(node, f"has attributes or inputs tvc cannot read ({why})")
        for vo in g.output:
            if vo.name not in self.graph.tensors:
                raise ModelError(f"{self.path}: graph output {vo.name!r} is never computed")
            if vo.name in self.graph.inputs or self.graph.tensors[vo.name].is_const:
                raise ModelError(f"{self.path}: graph output {vo.name!r} is an input or constant")
            self.graph.outputs.append(vo.name)
        self.graph.prune_tensors()
        return self.graph

    def _sorted(self, g: onnx.GraphProto) -> list[onnx.NodeProto]:
        """Nodes in dependency order (the spec requires it; hand-made files sometimes break it)."""
        ready = set(self.graph.tensors) | {""}
        pending = list(g.node)
        order: list[onnx.NodeProto] = []
        while pending:
            rest = [n for n in pending if not all(i in ready for i in n.input)]
            if len(rest) == len(pending):
                n = rest[0]
                missing = next(i for i in n.input if i not in ready)
                raise ModelError(
                    f"{self.path}: node {n.name!r} ({n.op_type}) reads {missing!r}, which no node, "
                    "input or initializer defines (or a cycle does)"
                )
            waiting = {id(n) for n in rest}
            for n in pending:
                if id(n) not in waiting:
                    order.append(n)
                    ready.update(n.output)
            pending = rest
        return order

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        tt = vi.type.tensor_type
        if not vi.type.HasField("tensor_type") or tt.elem_type != onnx.TensorProto.FLOAT:
            kind = dtype_name(tt.elem_type) if tt.elem_type else "non-tensor"
            raise ModelError(f"{self.path}: input {vi.name!r} is {kind}; tvc takes float32 inputs")
        dims: list[int | str] = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in tt.shape.dim
        ]
        given = self.shapes.get(vi.name) or (self.shapes.get("") if len(self.shapes) == 1 else None)
        if given is not None:
            if len(given) != len(dims):
                raise UsageError(
                    f"--input-shape for {vi.name!r} has rank {len(given)}, model has {len(dims)}"
                )
            shape = given
        else:
            if dims and not isinstance(dims[0], int) or (dims and dims[0] == 0):
                dims[0] = 1  # dynamic batch: tvc compiles for one sample
            bad = [(k, d) for k, d in enumerate(dims) if not isinstance(d, int) or d <= 0]
            if bad:
                k, d = bad[0]
                example = ",".join(str(x) if isinstance(x, int) and x > 0 else "N" for x in dims)
                raise ModelError(
                    f"{self.path}: input {vi.name!r} has a dynamic dimension {d!r} at axis {k}",
                    f"give a static shape: --input-shape {vi.name}={example}",
                )
            shape = tuple(int(d) for d in dims)
        layout = "NCHW" if len(shape) == 4 else None
        self.graph.tensors[vi.name] = Tensor(
            vi.name, tuple(shape), ONNX_DTYPES[tt.elem_type], layout
        )
        self.graph.inputs.append(vi.name)


def load_onnx(path: str | Path, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Import an ONNX file; every failure is a ModelError naming file, node and op."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # protobuf raises several types for truncated/garbage files
        why = (str(e).splitlines() or ["parse failed"])[0][:120]
        raise ModelError(
            f"{path}: not a valid ONNX model ({type(e).__name__}: {why})",
            "check that the file was copied completely, or re-export it with torch.onnx.export",
        ) from None
    if not model.graph.node or not model.opset_import:
        raise ModelError(
            f"{path}: not an ONNX model (no graph nodes or opset)",
            "check that the file was copied completely, or re-export it with torch.onnx.export",
        )
    opset = next((o.version for o in model.opset_import if o.domain in STANDARD_DOMAINS), None)
    if opset not in OPSETS:
        raise ModelError(
            f"{path}: ONNX opset {opset} is not supported "
            f"(tvc supports opsets {OPSETS.start}-{OPSETS.stop - 1})",
            "re-export with torch.onnx.export(..., opset_version=17)",
        )
    if model.functions:  # inline them, except the ops tvc knows itself (tvc::RNNPool)
        from onnx import inliner

        model = inliner.inline_selected_functions(model, list(CUSTOM_OPS), exclude=True)
    check_onnx(model, path)
    return Importer(model, path, input_shapes or {}).run()


NUMERIC = {
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.DOUBLE,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT16,
    onnx.TensorProto.INT32,
    onnx.TensorProto.INT64,
    onnx.TensorProto.BOOL,
}


def check_onnx(model: onnx.ModelProto, path: Path) -> None:
    """What the importer assumes, checked before it runs: sizes within tvc's limits (refused
    before anything is allocated), initializers whose data matches their dims and dtype, named
    and unique node outputs, inputs that exist. Cycles and dangling inputs are found by the
    importer's dependency sort."""
    g = model.graph
    if len(g.node) > MAX_ITEMS:
        raise ModelError(f"{path}: {len(g.node):,} nodes (tvc's limit: {MAX_ITEMS:,})")
    for init in g.initializer:
        dims = list(init.dims)
        where = f"{path}: initializer {init.name!r}"
        if not init.name:
            raise ModelError(f"{path}: an initializer has no name")
        if any(d < 0 for d in dims):
            raise ModelError(f"{where} has negative dims {dims}")
        count = math.prod(int(d) for d in dims)
        if count > MAX_ELEMENTS:
            raise ModelError(f"{where} has {many(count)} elements (tvc's limit: {MAX_ELEMENTS:,})")
        if init.data_location == onnx.TensorProto.EXTERNAL:
            raise ModelError(
                f"{where} keeps its data in an external file",
                "save the model with its weights inside: onnx.save(..., save_as_external_data="
                "False)",
            )
        np_dtype = (
            onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
            if init.data_type in (onnx.helper.get_all_tensor_dtypes())
            else None
        )
        if np_dtype is None or init.data_type == onnx.TensorProto.UNDEFINED:
            raise ModelError(f"{where} has data type {init.data_type}, not an ONNX tensor type")
        if init.data_type not in NUMERIC:
            raise ModelError(
                f"{where} is {dtype_name(init.data_type)}; tvc reads numeric "
                "weights (float, integer, bool)"
            )
        have = _stored_elements(init, np.dtype(np_dtype).itemsize)
        if have != count:
            raise ModelError(f"{where}: dims {dims} need {count} values, the file holds {have}")
        a = numpy_helper.to_array(init)
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelError(
                f"{where} holds NaN or infinite values",
                "check the training run; tvc quantizes finite weights only",
            )
    for vi in g.input:
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim if d.HasField("dim_value")]
        if any(d < 0 for d in dims) or math.prod(int(d) for d in dims) > MAX_ELEMENTS:
            raise ModelError(
                f"{path}: input {vi.name!r} declares shape {dims}, beyond tvc's limits"
            )
    produced: set[str] = {i.name for i in g.initializer} | {i.name for i in g.input}
    for k, node in enumerate(g.node):
        label = f"{path}: node {node.name or f'#{k}'!r} ({node.op_type})"
        if not node.output or any(not o for o in node.output[:1]):
            raise ModelError(f"{label} has an unnamed output")
        for o in node.output:
            if o and o in produced:
                raise ModelError(f"{label} writes {o!r}, which another node or input also defines")
            produced.add(o)
    for vo in g.output:
        if not vo.name:
            raise ModelError(f"{path}: a graph output has no name")


def _stored_elements(init: onnx.TensorProto, itemsize: int) -> int:
    """Values a numeric initializer holds in the file: raw bytes / item size (-1 when they do
    not divide), or the length of its typed field."""
    if init.HasField("raw_data"):
        return len(init.raw_data) // itemsize if len(init.raw_data) % itemsize == 0 else -1
    for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data"):
        n = len(getattr(init, field))
        if n:
            return n
    return 0
