"""report.json and the human summary beside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compiler.ir.graph import Graph
from compiler.ir.registry import TType, get_op


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
            "output_bytes": sum(graph.tensors[o].nbytes for o in n.outputs),
            "output_dtype": graph.tensors[n.outputs[0]].dtype,
        }
        if per_tensor_sqnr is not None:
            row["sqnr_db"] = per_tensor_sqnr.get(n.outputs[0])
        rows.append(row)
    return rows


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
                lines.append(
                    f"           {s['nodes']} nodes in {s['bands']} bands up to {s['output']}"
                )
        if ram.get("input_in_arena"):  # type: ignore[union-attr]
            lines.append("         the input lives in the arena (NAME_<input>_buffer())")
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
