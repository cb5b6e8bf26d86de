"""Render a quantized, planned graph to the C sources of an output directory (deterministic:
the same graph gives the same bytes)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jinja2
import numpy as np

from compiler import __version__
from compiler.codegen.lower import Backend, c_ident
from compiler.ir.graph import Graph
from compiler.ir.lowering import C_TYPES, Const, Lowered
from compiler.ir.ops.rows import row_sources
from compiler.passes.plan import ALIGN, Plan

# the C kernels ship inside the package (a wheel installed anywhere has them)
RUNTIME = Path(str(resources.files("compiler") / "runtime"))
PER_LINE = 16


@dataclass
class Generated:
    files: dict[str, str]  # file name -> text, everything the output directory holds for C
    sources: list[str]  # the .c files a firmware build compiles
    weights_bytes: int


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _io(graph: Graph, plan: Plan, name: str, is_input: bool) -> dict[str, object]:
    t = graph.tensors[name]
    q = t.qparams
    c = c_ident(name).lower()
    info: dict[str, object] = {
        "c": c,
        "C": c.upper(),
        "ctype": C_TYPES[t.dtype],
        "shape": list(t.shape),
        "shape_list": ", ".join(str(d) for d in t.shape),
        "numel": t.numel,
        "nbytes": t.nbytes,
        "is_input": is_input,
        "in_arena": is_input and name in plan.offsets,
        # handed over row by row through the caller's reader (input_rows)
        "rows": is_input and name in row_sources(graph),
        "height": t.shape[1] if len(t.shape) > 1 else 1,
        "row_numel": t.numel // (t.shape[1] if len(t.shape) > 1 else 1),
        "offset": plan.offsets.get(name, 0),
        "region": plan.placed_in.get(name, 0),
        "exp": None,
        "zp": 0,
        "scale": 1.0,
    }
    if q is not None and q.exp is not None:
        info["exp"] = q.exp
    elif q is not None:
        s = float(np.float32(q.scale[0]))
        info.update(scale=s, scale_literal=f"{s!r}f", zp=q.zero_point[0])
    return info


def io_context(graph: Graph, plan: Plan, name: str) -> dict[str, object]:
    """What every runner that calls the model needs (host main, probe firmware): names,
    inputs, outputs, the call. The runners' buffers are `tvc_io_<tensor>`, so that no tensor name
    (`t0`, `in`, `main`, ...) can collide with the runner's own identifiers."""
    inputs = [_io(graph, plan, i, True) for i in graph.inputs]
    outputs = [_io(graph, plan, o, False) for o in graph.outputs]
    return {
        "name": name,
        "NAME": name.upper(),
        "inputs": inputs,
        "outputs": outputs,
        "arg_names": ", ".join(
            f"&tvc_rows_{t['c']}" if t["rows"] else f"tvc_io_{t['c']}" for t in inputs + outputs
        ),
    }


def _lines(values: np.ndarray) -> list[str]:
    flat = [str(int(v)) for v in values.reshape(-1)]
    return [", ".join(flat[i : i + PER_LINE]) + "," for i in range(0, len(flat), PER_LINE)]


class _Sharing:
    """Layers that repeat (the bands of a patch-based stage) share what they repeat: a flash
    table equal to an earlier one is that one, and a node whose declarations (its per-layer
    kernel, its parameter struct) equal an earlier node's up to the node's name calls that
    node's."""

    def __init__(self) -> None:
        self.tables: dict[tuple[str, tuple[int, ...], bytes], str] = {}
        self.nodes: dict[tuple[str, ...], str] = {}

    def reuse(self, low: Lowered, name: str) -> Lowered:
        rename: dict[str, str] = {}
        kept = []
        for c in low.consts:
            values = np.asarray(c.values)
            key = (c.ctype, values.shape, values.astype(np.int64).tobytes())
            if key in self.tables:
                rename[c.symbol] = self.tables[key]
            else:
                self.tables[key] = c.symbol
                kept.append(c)
        decls, stmts = (
            [_renamed(d, rename) for d in low.decls],
            [_renamed(t, rename) for t in low.stmts],
        )
        if not kept and decls:
            own = re.compile(rf"\b{re.escape(name)}(?![0-9])")
            canon = tuple(own.sub("@", d) for d in decls)
            if canon in self.nodes:
                # the identifiers its declarations define (not the locals its statements declare)
                first = self.nodes[canon]
                defined = {m for d in decls for m in re.findall(rf"\b{re.escape(name)}\w*", d)}
                to_first = {d: first + d[len(name) :] for d in defined}
                return Lowered([], [_renamed(t, to_first) for t in stmts], [])
            self.nodes[canon] = name
        return Lowered(decls, stmts, kept)


def _renamed(text: str, rename: dict[str, str]) -> str:
    if not rename:
        return text
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, rename)) + r")\b")
    return pattern.sub(lambda m: rename[m.group(1)], text)


def _pieces_at(low: Backend, plan: Plan, step: int, end: int) -> list[tuple[str, int, int]]:
    """(arena, offset, bytes) of the planned pieces whose life starts (end 2) or ends (end 3)
    at the step."""
    out = []
    for name in plan.lives:
        for piece in plan.pieces_of(name):
            if piece[end] == step:
                out.append((low.base(name), plan.offsets[name] + piece[0], piece[1] - piece[0]))
    return sorted(out)


def emit_c(
    graph: Graph,
    plan: Plan,
    name: str,
    source: str,
    quant: str,
    regions: tuple[tuple[str, str], ...] = (),
    kernels: str = "portable",
    scratch: dict[int, int] | None = None,
    optimize: str = "speed",
) -> Generated:
    """`regions`: (name, linker section) of the board's extra RAM regions the plan may use;
    `kernels`: "portable" or "cmsis-nn" (with the plan's `scratch` buffers per node)."""
    low = Backend(graph, plan, name, kernels, tuple(r for r, _ in regions), scratch, optimize)
    decls: list[str] = []
    steps: list[dict[str, object]] = []
    extra: list[Const] = []
    shared = _Sharing()
    for k, node in enumerate(graph.nodes):
        out = shared.reuse(low.lower(k, node), low.name)
        decls += out.decls
        extra += out.consts
        # debug builds poison every piece of a buffer before it is written and once it is dead
        born = [f"TVC_POISON({b}, {off}, {n});" for b, off, n in _pieces_at(low, plan, k, 2)]
        dead = [f"TVC_POISON({b}, {off}, {n});" for b, off, n in _pieces_at(low, plan, k, 3)]
        steps.append(
            {
                "label": node.label.replace("*/", "* /"),
                "op": node.op,
                "stmts": born + out.stmts + dead + [f"TVC_PROFILE_STEP({k});"],
            }
        )
    consts = []
    for tname, sym in sorted(
        low.weight_symbols.items(), key=lambda kv: int(kv[1].rsplit("_c", 1)[1])
    ):
        t = graph.tensors[tname]
        if tname not in {i for n in graph.nodes for i in n.inputs} or tname in low.replaced:
            continue
        consts.append(
            {
                "symbol": sym,
                "ctype": C_TYPES[t.dtype],
                "size": t.numel,
                "align": 8,
                "what": f"{tname}: {t.dtype}{list(t.shape)}",
                "lines": _lines(t.data),
            }
        )  # type: ignore[arg-type]
    for c in extra:
        consts.append(
            {
                "symbol": c.symbol,
                "ctype": c.ctype,
                "size": c.values.size,
                "align": 8,
                "what": "kernel parameters",
                "lines": _lines(c.values),
            }
        )
    weights_bytes = sum(
        int(c["size"]) * np.dtype(c["ctype"].replace("_t", "")).itemsize for c in consts
    )  # type: ignore[call-overload]
    inputs = [_io(graph, plan, i, True) for i in graph.inputs]
    outputs = [_io(graph, plan, o, False) for o in graph.outputs]
    params = ", ".join(
        [
            f"const {name}_rows *{t['c']}" if t["rows"] else f"const {t['ctype']} *{t['c']}"
            for t in inputs
        ]
        + [f"{t['ctype']} *{t['c']}" for t in outputs]
    )
    ctx = {
        "name": name,
        "NAME": name.upper(),
        "version": __version__,
        "source": source,
        "quant": quant,
        "layout": "NHWC",
        "inputs": inputs,
        "outputs": outputs,
        "params": params,
        "arg_names": ", ".join(str(t["c"]) for t in inputs + outputs),
        "in_types": "; ".join(
            f"{name}_rows {t['c']} = {{my_read_rows, my_camera}}"
            if t["rows"]
            else f"{t['ctype']} {t['c']}[{name.upper()}_{t['C']}_SIZE]"
            for t in inputs + outputs
        )
        + ";",
        "call_args": ", ".join(
            f"&{t['c']}" if t["rows"] else str(t["c"]) for t in inputs + outputs
        ),
        "row_inputs": [t for t in inputs if t["rows"]],
        "arena_size": max(plan.size, ALIGN),
        "arena_align": ALIGN,
        "decls": decls,
        "steps": steps,
        "consts": consts,
        "cmsis": kernels == "cmsis-nn",
        "features": sorted(low.features),
        "extra_arenas": [
            {
                "c": f"{name}_arena_{r.lower()}",
                "NAME": f"{name.upper()}_ARENA_{r.upper()}",
                "size": max(sz, ALIGN),
                "section": sec,
            }
            for (r, sec), sz in zip(regions, plan.region_sizes, strict=False)
            if sz > 0
        ],
    }
    env = _env()
    kernel_files = sorted(low.files)
    sources = [f"{name}.c", f"{name}_weights.c", *kernel_files]
    ctx["sources"] = sources
    files = {
        f"{name}.h": env.get_template("model.h.j2").render(ctx),
        f"{name}.c": env.get_template("model.c.j2").render(ctx),
        f"{name}_weights.h": env.get_template("weights.h.j2").render(ctx),
        f"{name}_weights.c": env.get_template("weights.c.j2").render(ctx),
        "tvc_prefix.h": env.get_template("tvc_prefix.h.j2").render(ctx),
        f"{name}.mk": env.get_template("model.mk.j2").render(ctx),
        f"{name}.cmake": env.get_template("model.cmake.j2").render(ctx),
        "tvc_common.h": (RUNTIME / "tvc_common.h").read_text(),
    }
    if "TVC_SPECIAL" in low.features:  # per-layer specialized kernels (--optimize speed)
        files["tvc_special.h"] = (RUNTIME / "tvc_special.h").read_text()
    for f in kernel_files:
        files[f] = (RUNTIME / f).read_text()
    for header in _included_headers(files):  # the runtime headers those sources include
        files[header] = (RUNTIME / header).read_text()
    return Generated(files, sources, weights_bytes)


def _included_headers(files: dict[str, str]) -> list[str]:
    """Runtime headers that the written sources include and that are not written yet (followed
    through the headers they include in turn)."""
    found: list[str] = []
    todo = list(files.values())
    while todo:
        for name in re.findall(r'#include "([^"]+)"', todo.pop()):
            if name not in files and name not in found and (RUNTIME / name).is_file():
                found.append(name)
                todo.append((RUNTIME / name).read_text())
    return sorted(found)


def host_main(graph: Graph, plan: Plan, name: str) -> str:
    return _env().get_template("host_main.c.j2").render(io_context(graph, plan, name))
