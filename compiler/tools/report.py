"""report.json and the human summary beside it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.registry import TType, get_op
from compiler.passes.plan import Plan


def layer_table(
    graph: Graph, per_tensor_sqnr: dict[str, float | None] | None = None
) -> list[dict[str, object]]:
    rows = []
    for n in graph.nodes:
        d = get_op(n.op)
        ins = [TType(graph.tensors[i].shape, graph.tensors[i].dtype) for i in n.inputs]
        outs = [TType(graph.tensors[o].shape, graph.tensors[o].dtype) for o in n.outputs]
        row: dict[str, object] = {
            "name": n.label,
            "op": n.op,
            "macs": d.macs(n, ins, outs) if d.macs else 0,
            "output_shape": list(graph.tensors[n.outputs[0]].shape),
            "output_bytes": sum(graph.tensors[o].nbytes for o in n.outputs),
            "output_dtype": graph.tensors[n.outputs[0]].dtype,
        }
        if per_tensor_sqnr is not None:
            row["sqnr_db"] = per_tensor_sqnr.get(n.outputs[0])
        rows.append(row)
    return rows


# the label suffix of a step in a patch-based stage's band (passes.patch): `.bK` on a layer's
# band, `.bK.rLO_HI` on the view of the rows that band reads
BAND = re.compile(r"\.b(\d+)(\.r\d+_\d+)?$")


def layer_of(label: str) -> tuple[str, int | None]:
    """(the layer a step computes, its band in a patch-based stage or None)."""
    m = BAND.search(label)
    return (label[: m.start()], int(m.group(1))) if m else (label, None)


def memory_map(graph: Graph, plan: Plan) -> dict[str, object]:
    """Every planned buffer's place and life, piece by piece, for the memory timeline: what
    the plan decided, stored so a report can be drawn later from the output directory alone.
    Step -1 is before the first layer (the input frame arriving)."""
    steps = []
    for n in graph.nodes:
        layer, band = layer_of(n.label)
        steps.append({"label": n.label, "layer": layer, "op": n.op, "band": band})
    made_by = {o: k for k, n in enumerate(graph.nodes) for o in n.outputs}
    buffers = []
    for name, (first, last) in sorted(plan.lives.items(), key=lambda kv: (kv[1], kv[0])):
        if name.startswith("__scratch_"):
            step = int(name.rsplit("_", 1)[1])
            kind, layer = "scratch", steps[step]["layer"] if step < len(steps) else name
        elif name in made_by:
            kind, layer = "activation", steps[made_by[name]]["layer"]
        else:
            kind, layer = "input", name
        buffers.append(
            {
                "tensor": name,
                "kind": kind,
                "layer": layer,
                "region": plan.placed_in.get(name, 0),
                "offset": plan.offsets[name],
                "size": plan.sizes[name],
                "first": first,
                "last": last,
                "pieces": [list(p) for p in plan.pieces_of(name)],
            }
        )
    live = [0] * (len(steps) + 1)  # main arena bytes in use per step, from step -1
    for b in buffers:
        if b["region"] == 0:
            for lo, hi, f, z in b["pieces"]:  # type: ignore[attr-defined]
                for k in range(f + 1, z + 2):
                    live[k] += hi - lo
    peak = max(range(len(live)), key=lambda k: live[k]) - 1
    return {
        "arena_bytes": plan.size,
        "lower_bound_bytes": plan.lower_bound,
        "region_sizes": list(plan.region_sizes),
        "steps": steps,
        "buffers": buffers,
        "live_bytes": live,
        "peak_step": peak,
    }


def write_report(path: Path, report: dict[str, object]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(x: object) -> object:
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    raise TypeError(f"not JSON serializable: {type(x)}")


def summary_text(report: dict[str, object]) -> str:
    acc = report.get("accuracy") or {}
    layers = report.get("layers", [])
    lines = [
        f"model    {report['model']}  ->  {report['name']}",
        f"target   {report['target']}",
        f"quant    {report['quant']}",
        f"layers   {len(layers)} nodes, {sum(int(r['macs']) for r in layers):,} MACs",  # type: ignore[call-overload, index, union-attr]
    ]
    if "optimize" in report:
        note = report.get("optimize_note")
        lines.append(f"optimize {report['optimize']}" + (f" ({note})" if note else ""))
    ram, flash = report.get("ram") or {}, report.get("flash") or {}
    if "peak_bytes" in ram:  # type: ignore[operator]
        lines.append(
            f"RAM      peak {ram['peak_bytes']:,} B; main RAM {ram['main_ram_bytes']:,} B of "  # type: ignore[index]
            f"{ram['budget_bytes']:,} B budget: arena {ram['arena_bytes']:,} (lower bound "  # type: ignore[index]
            f"{ram['lower_bound_bytes']:,}) + stack {ram['stack_bytes']:,} "  # type: ignore[index]
            f"+ I/O {ram['io_bytes']:,}"  # type: ignore[index]
        )
        for rname, reg in (ram.get("regions") or {}).items():  # type: ignore[union-attr]
            lines.append(
                f"         + {reg['arena_bytes']:,} B of buffers in {rname} ({reg['section']}, "
                f"{reg['size_bytes']:,} B)"
            )
        pw = ram.get("patchwise")  # type: ignore[union-attr]
        if pw:
            lines.append(
                f"         patch-wise arena {pw['arena_bytes']:,} B vs layer-wise "
                f"{pw['layerwise_arena_bytes']:,} B ({'; '.join(pw['regions'])}): "
                + ("patch-wise" if pw["used"] else "layer-wise, smaller here")
            )
        pt = ram.get("patch")  # type: ignore[union-attr]
        if pt and pt["used"]:
            lines.append(
                f"         patch-based: peak {pt['peak_bytes']:,} B vs "
                f"{pt['layerwise_peak_bytes']:,} B layer by layer, +{pt['extra_macs']:,} MACs "
                f"({pt['extra_macs_pct']}%, cap {pt['max_recompute']:.0%}):"
            )
            for s in pt["stages"]:
                how = (
                    "streamed (line buffers)"
                    if s.get("mode") == "stream"
                    else "with halo recompute"
                )
                lines.append(
                    f"           {s['nodes']} nodes in {s['bands']} bands, {how}, "
                    f"up to {s['output']}"
                )
        if ram.get("input_in_arena"):  # type: ignore[union-attr]
            lines.append("         the input lives in the arena (NAME_<input>_buffer())")
        for name in ram.get("input_rows") or []:  # type: ignore[union-attr]
            lines.append(
                f"         input {name} arrives row by row through the caller's reader "
                "(--input-rows): no buffer holds it whole"
            )
        lines.append(
            f"flash    {flash['total_bytes']:,} B of {flash['budget_bytes']:,} B budget: weights "  # type: ignore[index]
            f"{flash['weights_bytes']:,} + code {flash['code_bytes']:,} + probe startup "  # type: ignore[index]
            f"{flash['probe_overhead_bytes']:,} (measured from the linked ELF)"  # type: ignore[index]
        )
    if acc:
        top1 = acc.get("top1_agreement")  # type: ignore[union-attr]
        lines.append(
            f"accuracy vs float on {acc.get('samples')} samples: SQNR {acc.get('sqnr_db')} dB"  # type: ignore[union-attr]
            + (f", top-1 agreement {100 * top1:.1f}%" if top1 is not None else "")
        )
        worst = sorted(
            (r for r in layers if r.get("sqnr_db") is not None),  # type: ignore[union-attr]
            key=lambda r: r["sqnr_db"],  # type: ignore[index]
        )[:3]
        if worst:
            lines.append(
                "lowest per-layer SQNR: "
                + ", ".join(f"{r['name']} ({r['op']}) {r['sqnr_db']} dB" for r in worst)
            )  # type: ignore[index]
    return "\n".join(lines) + "\n"
