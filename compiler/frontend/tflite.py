"""TFLite importer: an int8 `.tflite` (the Keras → TFLiteConverter flow) with its quantization
parameters exactly as they are, so tvc compiles what the user's converter produced.

TFLite tensors are NHWC with static shapes; RESHAPE is taken from its output shape, so the
SHAPE/STRIDED_SLICE/PACK glue Keras leaves for dynamic batch is never imported.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NoReturn

import numpy as np

from compiler.errors import IRError, ModelError, UsageError
from compiler.frontend.tflite_check import check_tflite
from compiler.frontend.tflite_ops import ACTS, HANDLERS
from compiler.ir.graph import Graph
from compiler.ir.registry import make_node
from compiler.ir.tensor import QParams, Tensor

TFL_DTYPES = {
    0: ("f32", np.float32),
    2: ("i32", np.int32),
    4: ("i64", np.int64),
    9: ("i8", np.int8),
    3: ("u8", np.uint8),  # only at the edges: QUANTIZE to and from int8
    7: ("i16", np.int16),
    6: ("bool", np.bool_),
}


class TFLiteImporter:
    def __init__(self, blob: bytes, path: Path) -> None:
        import tflite

        self.tfl = tflite
        self.path = path
        check_tflite(blob, path)  # every offset, length, index and size checked first
        self.model = tflite.Model.GetRootAsModel(blob, 0)
        self.sg = self.model.Subgraphs(0)
        self._names: dict[int, str] = {}  # tensor index -> IR name
        self._taken: set[str] = set()
        name = re.sub(r"[^A-Za-z0-9_]", "_", path.stem) or "model"
        self.graph = Graph(
            name if not name[0].isdigit() else "m_" + name,
            [],
            [],
            {},
            [],
            {"source_layout": "NHWC", "layout": "NHWC"},
        )

    # --- tensors -------------------------------------------------------------------------------
    def tname(self, index: int) -> str:
        """The tensor's IR name: its own when it has a usable one, else `t<index>` (TFLite Micro's
        test models leave names out); a name another tensor already took gets `#<index>`."""
        if index in self._names:
            return self._names[index]
        if not 0 <= index < self.sg.TensorsLength():  # -1: an optional input left out
            raise ModelError(
                f"{self.path}: operator {self._at} reads tensor index {index}, which names no "
                "tensor (an input this operator needs is missing)"
            )
        raw = self.sg.Tensors(index).Name()
        try:
            name = raw.decode() if raw else ""
        except UnicodeDecodeError:
            name = ""
        name = name or f"t{index}"
        if name in self._taken:
            name = f"{name}#{index}"
        self._names[index] = name
        self._taken.add(name)
        return name

    def tensor(self, index: int) -> str:
        """Import tensor `index` (once) and return its IR name."""
        name = self.tname(index)
        if name in self.graph.tensors:
            return name
        t = self.sg.Tensors(index)
        if t.Type() not in TFL_DTYPES:
            raise ModelError(
                f"{self.path}: tensor {name!r} has unsupported TFLite type {t.Type()}",
                "tvc imports int8/int16 quantized and float32 models",
            )
        dtype, np_dtype = TFL_DTYPES[t.Type()]
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = None
        buf = self.model.Buffers(t.Buffer())
        if buf is not None and buf.DataLength() > 0:
            data = np.frombuffer(buf.DataAsNumpy().tobytes(), np_dtype).reshape(shape).copy()
            data.setflags(write=False)
        q = t.Quantization()
        if dtype == "i16" and data is None and q is not None and q.ScaleLength() > 0:
            raise ModelError(
                f"{self.path}: tensor {name!r} is an int16 activation: this file uses TFLite's "
                "16x8 scheme (int16 activations, int8 weights), which tvc does not import",
                "convert with TFLITE_BUILTINS_INT8 (int8 activations), or give tvc the float "
                "model: --quant seedot --bits 16 gives 16-bit activations",
            )
        qparams = None
        if q is not None and q.ScaleLength() > 0:
            scales = tuple(float(s) for s in q.ScaleAsNumpy())
            zps = (
                tuple(int(z) for z in q.ZeroPointAsNumpy())
                if q.ZeroPointLength()
                else (0,) * len(scales)
            )
            axis = int(q.QuantizedDimension()) if len(scales) > 1 else None
            qparams = QParams(scales, zps, axis)
        layout = "NHWC" if len(shape) == 4 and data is None else None
        self.graph.tensors[name] = Tensor(name, shape, dtype, layout, data, qparams)
        return name

    def const_data(self, index: int, op: str) -> np.ndarray:
        data = self.graph.tensors[self.tensor(index)].data
        if data is None:
            self.fail(op, f"needs a constant tensor {self.tname(index)!r}")
        return data  # type: ignore[return-value]

    def fail(self, op: str, msg: str) -> NoReturn:
        raise ModelError(f"{self.path}: operator {self._at} ({op}) {msg}")

    # --- operators -----------------------------------------------------------------------------
    def opname(self, op) -> str:  # type: ignore[no-untyped-def]
        code = self.model.OperatorCodes(op.OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        try:
            return self.tfl.opcode2name(number)
        except ValueError:  # past the builtin operators this tflite schema knows
            raise ModelError(
                f"{self.path}: operator code {number} is not a TFLite builtin operator",
                "tvc imports builtin TFLite operators; custom operators are not supported",
            ) from None

    def options(self, op, cls):  # type: ignore[no-untyped-def]
        table = op.BuiltinOptions()
        if table is None:
            raise ModelError(
                f"{self.path}: operator {self._at} has no options table (strides, padding, "
                "activation): the file is damaged or not written by a TFLite converter"
            )
        o = cls()
        o.Init(table.Bytes, table.Pos)
        return o

    def needed(self) -> list[int]:
        """Operators the outputs depend on (RESHAPE depends on its data input only)."""
        producer = {}
        for i in range(self.sg.OperatorsLength()):
            for o in _ints(self.sg.Operators(i).OutputsAsNumpy()):
                producer[int(o)] = i
        want: set[int] = set()
        stack = _ints(self.sg.OutputsAsNumpy())
        while stack:
            t = stack.pop()
            i = producer.get(t)
            if i is None or i in want:
                continue
            want.add(i)
            op = self.sg.Operators(i)
            ins = [x for x in _ints(op.InputsAsNumpy()) if x >= 0]
            stack.extend(ins[:1] if self.opname(op) == "RESHAPE" else ins)
        return sorted(want)

    def run(self) -> Graph:
        for i in _ints(self.sg.InputsAsNumpy()):
            name = self.tensor(i)
            self.graph.inputs.append(name)
        for i in self.needed():
            op = self.sg.Operators(i)
            kind = self.opname(op)
            self._at = f"#{i}"
            handler = HANDLERS.get(kind)
            if handler is None:
                raise ModelError(
                    f"{self.path}: operator #{i} ({kind}) is not supported by tvc",
                    "supported TFLite ops: " + ", ".join(sorted(HANDLERS)),
                )
            ins = _ints(op.InputsAsNumpy())
            outs = [self.tensor(x) for x in _ints(op.OutputsAsNumpy())]
            if not outs or not ins:
                self.fail(kind, "has no inputs or no outputs")
            for name in outs:
                self.graph.tensors[name].data = None
            try:
                handler(self, op, kind, ins, outs)
            except IRError as e:
                self.fail(kind, e.message)
            except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
                # a handler met a tensor it cannot read (wrong rank, a missing input, a zero
                # stride): the file is consistent as a flatbuffer but not as this operator
                self.fail(kind, f"has inputs or options tvc cannot read: {e}")
        self.graph.outputs = [self.tensor(o) for o in _ints(self.sg.OutputsAsNumpy())]
        if not self.graph.inputs or not self.graph.outputs:
            raise ModelError(f"{self.path}: the subgraph has no inputs or no outputs")
        self.graph.prune_tensors()
        return self.graph

    def emit(
        self, kind: str, opname: str, inputs: list[str], outputs: list[str], **attrs: object
    ) -> None:
        self.graph.nodes.append(make_node(opname, inputs, outputs, f"{kind}{self._at}", **attrs))

    def emit_act(self, kind: str, act_code: int, out: str) -> str:
        """Name to write the op's raw result to: `out`, or a fresh tensor followed by a clamp
        when the op (a pool) cannot carry a fused activation itself."""
        if ACTS.get(act_code, "?") == "none":
            return out
        raw = self.graph.fresh_name(f"{out}/raw")
        self.graph.tensors[raw] = self.graph.tensors[out].copy(name=raw)
        lo, hi = {1: (0.0, float("inf")), 2: (-1.0, 1.0), 3: (0.0, 6.0)}[act_code]
        self._pending = ("clip", [raw], [out], {"min": lo, "max": hi})
        return raw

    _at = "?"
    _pending: tuple | None = None


def _ints(v: object) -> list[int]:
    """A vector of tensor indices; the generated accessors give 0 for an absent vector."""
    return [int(x) for x in v] if isinstance(v, np.ndarray) else []


def load_tflite(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    return TFLiteImporter(path.read_bytes(), path).run()
