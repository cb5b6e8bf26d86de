"""Validate a .tflite flatbuffer before anything reads it.

The `tflite` package's accessors follow offsets without looking: a corrupt file reads past the
end (struct.error), decodes garbage as names, or builds arrays of absurd sizes. This module
walks every table, vector and string the importer will touch (the parts of the TFLite schema
tvc reads: model, operator codes, subgraph 0, tensors, quantization, operators and their
options, buffers), checks each offset and length against the file, each string as UTF-8, each
enum and index against its range, and each constant buffer against its tensor's shape x dtype.
A failure is a ModelError that names the file, the tensor or operator, and what is wrong.

Limits (compiler/frontend/limits.py, README "Robustness"): a tensor of at most 2^28 elements,
at most 100,000 tensors and operators, and declared shapes with non-negative dimensions.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from compiler.errors import ModelError
from compiler.frontend.limits import MAX_ELEMENTS, MAX_ITEMS, many

ELEMENT_BYTES = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 9: 1, 10: 8, 16: 2, 17: 1}


@dataclass(frozen=True)
class Table:
    pos: int
    vtable: int
    vt_len: int  # bytes of the vtable
    size: int  # bytes of the table's inline data


class Reader:
    """Bounds-checked reads of a flatbuffer."""

    def __init__(self, blob: bytes, path: Path) -> None:
        self.b = blob
        self.path = path

    def fail(self, where: str, what: str) -> NoReturn:
        raise ModelError(
            f"{self.path}: corrupt TFLite file: {where}: {what}",
            "the file is damaged or not written by a TFLite converter; export it again",
        )

    def _get(self, fmt: str, at: int, where: str) -> int:
        n = struct.calcsize(fmt)
        if at < 0 or at + n > len(self.b):
            self.fail(where, f"reads {n} bytes at offset {at}, past the end ({len(self.b)} B)")
        return int(struct.unpack_from(fmt, self.b, at)[0])

    def table(self, pos: int, where: str) -> Table:
        soff = self._get("<i", pos, where)
        vt = pos - soff
        vt_len = self._get("<H", vt, where)
        size = self._get("<H", vt + 2, where)
        if vt_len < 4 or vt_len % 2 or vt + vt_len > len(self.b) or pos + size > len(self.b):
            self.fail(where, f"table at {pos} has a vtable of {vt_len} B for {size} B")
        return Table(pos, vt, vt_len, size)

    def field(self, t: Table, index: int, width: int, where: str) -> int | None:
        """Absolute position of field `index` (None when absent), checked inside the table."""
        slot = 4 + 2 * index
        if slot + 2 > t.vt_len:
            return None
        off = self._get("<H", t.vtable + slot, where)
        if off == 0:
            return None
        if off + width > t.size:
            self.fail(where, f"field {index} lies outside its table")
        return t.pos + off

    def scalar(self, t: Table, index: int, fmt: str, where: str, default: int = 0) -> int:
        at = self.field(t, index, struct.calcsize(fmt), where)
        return default if at is None else self._get(fmt, at, where)

    def ref(self, t: Table, index: int, where: str) -> int | None:
        """Target of an offset field (a table, vector or string)."""
        at = self.field(t, index, 4, where)
        if at is None:
            return None
        target = at + self._get("<I", at, where)
        if target >= len(self.b):
            self.fail(where, f"field {index} points past the end")
        return target

    def subtable(self, t: Table, index: int, where: str) -> Table | None:
        at = self.ref(t, index, where)
        return None if at is None else self.table(at, where)

    def vector(self, t: Table, index: int, elem: int, where: str) -> tuple[int, int] | None:
        """(first element position, length) of a vector field, its bytes checked."""
        at = self.ref(t, index, where)
        if at is None:
            return None
        n = self._get("<I", at, where)
        if at + 4 + n * elem > len(self.b):
            self.fail(where, f"a vector of {n} elements runs past the end")
        return at + 4, n

    def ints(self, t: Table, index: int, fmt: str, where: str) -> list:  # type: ignore[type-arg]
        """A vector of numbers (numpy dtype `fmt`: "<i4", "<f4", "<i8")."""
        dt = np.dtype(fmt)
        v = self.vector(t, index, dt.itemsize, where)
        if v is None:
            return []
        at, n = v
        return [x.item() for x in np.frombuffer(self.b, dt, n, at)]

    def tables(self, t: Table, index: int, where: str) -> list[Table]:
        v = self.vector(t, index, 4, where)
        if v is None:
            return []
        at, n = v
        if n > MAX_ITEMS:
            self.fail(where, f"{n} entries (tvc reads at most {MAX_ITEMS:,})")
        return [
            self.table(at + 4 * k + self._get("<I", at + 4 * k, where), where) for k in range(n)
        ]

    def string(self, t: Table, index: int, where: str) -> str | None:
        v = self.vector(t, index, 1, where)
        if v is None:
            return None
        at, n = v
        try:
            return self.b[at : at + n].decode("utf-8")
        except UnicodeDecodeError:
            self.fail(where, "a name is not UTF-8")


def check_tflite(blob: bytes, path: Path) -> None:
    """Raise a ModelError naming what is wrong, or return when the importer may read it."""
    r = Reader(blob, path)
    if len(blob) < 8 or blob[4:8] != b"TFL3":
        r.fail("header", "no TFL3 identifier")
    model = r.table(r._get("<I", 0, "header"), "model")
    codes = r.tables(model, 1, "operator codes")
    for k, c in enumerate(codes):
        code = r.scalar(c, 3, "<i", f"operator code {k}")
        old = r.scalar(c, 0, "<b", f"operator code {k}")
        if not (0 <= code < 1024 and 0 <= old < 128):
            r.fail(f"operator code {k}", f"builtin code {max(code, old)} is not an operator")
        r.string(c, 1, f"operator code {k}")
    subgraphs = r.tables(model, 2, "subgraphs")
    if not subgraphs:
        r.fail("model", "no subgraph")
    buffers = r.tables(model, 4, "buffers")
    sizes = []
    for k, b in enumerate(buffers):
        v = r.vector(b, 0, 1, f"buffer {k}")
        sizes.append(0 if v is None else v[1])
    sg = subgraphs[0]
    tensors = r.tables(sg, 0, "tensors")
    nt = len(tensors)
    for k, t in enumerate(tensors):
        where = f"tensor #{k}"
        name = r.string(t, 3, where)
        if name:
            where = f"tensor #{k} {name!r}"
        shape = r.ints(t, 0, "<i4", where)
        if any(d < 0 for d in shape):
            r.fail(where, f"shape {shape} has a negative dimension")
        count = math.prod(shape)
        if count > MAX_ELEMENTS:
            r.fail(where, f"shape {shape} has {many(count)} elements (limit: {MAX_ELEMENTS:,})")
        ttype = r.scalar(t, 1, "<b", where)
        if ttype not in ELEMENT_BYTES and not 0 <= ttype <= 20:
            r.fail(where, f"type {ttype} is not a TFLite type")
        buf = r.scalar(t, 2, "<I", where)
        if buf >= len(buffers):
            r.fail(where, f"buffer index {buf} is out of range ({len(buffers)} buffers)")
        if sizes[buf] and ttype in ELEMENT_BYTES and sizes[buf] != count * ELEMENT_BYTES[ttype]:
            r.fail(
                where,
                f"its data is {sizes[buf]} B, but shape {shape} of type {ttype} takes "
                f"{count * ELEMENT_BYTES[ttype]} B",
            )
        q = r.subtable(t, 4, where)
        if q is not None:
            scale = r.ints(q, 2, "<f4", where)
            zps = r.ints(q, 3, "<i8", where)
            if zps and len(zps) != len(scale):
                r.fail(where, f"{len(scale)} scales but {len(zps)} zero points")
            dim = r.scalar(q, 6, "<i", where)
            if len(scale) > 1 and not 0 <= dim < 8:
                r.fail(where, f"quantized dimension {dim}")
    for what, index in (("inputs", 1), ("outputs", 2)):
        for i in r.ints(sg, index, "<i4", f"subgraph {what}"):
            if not 0 <= i < nt:
                r.fail(f"subgraph {what}", f"tensor index {i} is out of range ({nt} tensors)")
    for k, op in enumerate(r.tables(sg, 3, "operators")):
        where = f"operator #{k}"
        code = r.scalar(op, 0, "<I", where)
        if code >= len(codes):
            r.fail(where, f"operator code index {code} is out of range ({len(codes)} codes)")
        for i in r.ints(op, 1, "<i4", where) + r.ints(op, 2, "<i4", where):
            if not -1 <= i < nt:
                r.fail(where, f"tensor index {i} is out of range ({nt} tensors)")
        opts = r.subtable(op, 4, where)  # read whatever its type byte says
        if opts is not None:
            for f in range((opts.vt_len - 4) // 2):  # every field of the options table inside it
                at = r.field(opts, f, 1, where)
                if at is not None and at + 4 > len(blob):
                    r.fail(where, "its options run past the end")
