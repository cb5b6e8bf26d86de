"""`tvc compile`: model → quantized graph (+ later C) in an output directory, with a report.

The directory is written whole or not at all: everything goes to a temporary sibling that is
renamed into place at the end.
"""

from __future__ import annotations

import copy
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.codegen.cmsis import uses_cmsis
from compiler.codegen.emit import emit_c
from compiler.codegen.lower import scratch_needs
from compiler.errors import BudgetError, UsageError
from compiler.frontend.loader import load_model
from compiler.ir.graph import Graph
from compiler.ir.lowering import BACKENDS
from compiler.ir.ops.rows import row_sources
from compiler.ir.tensor import QUANTIZED_DTYPES
from compiler.ir.text import print_graph
from compiler.ir.verify import verify, verify_lowerable, verify_quantized
from compiler.outdir import records_dir
from compiler.passes.dead_channels import eliminate_dead_channels
from compiler.passes.input_rows import read_inputs_by_rows
from compiler.passes.manager import STAGES as FLOAT_STAGES
from compiler.passes.manager import run_passes
from compiler.passes.patch import Stage, node_macs, search
from compiler.passes.plan import (
    Plan,
    io_bytes,
    lifetimes,
    peak_estimate,
    plan_arena,
    verify_plan,
)
from compiler.passes.schedule import PatchRegion, fuse_patchwise, patch_regions, schedule
from compiler.quant.accuracy import evaluate
from compiler.quant.affine import quantize_affine
from compiler.quant.calibrate import load_samples, observe_ranges
from compiler.quant.rnnpool import rnnpool_state_ranges
from compiler.quant.seedot import search_seedot
from compiler.tools.boards import Board, get_board, parse_size
from compiler.tools.firmware import LinkOverflow, build_firmware
from compiler.tools.html import write_html
from compiler.tools.package import as_arduino_library, check_format, example_sample, write_zip
from compiler.tools.report import layer_table, memory_map, summary_text, write_report

STACK_RESERVE = (
    1024  # kept free in the main RAM when placing buffers (the ELF gives the exact stack)
)


@dataclass
class CompileOptions:
    model: str
    target: str
    out: str | None = None
    name: str | None = None
    calib: str | None = None
    val: str | None = None
    quant: str = "affine"
    bits: str = "8"
    mean: list[float] | None = None
    std: list[float] | None = None
    percentile: float | None = None
    ram: str | None = None
    flash: str | None = None
    input_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    kernels: str = "portable"
    optimize: str = "speed"  # speed: per-layer specialized kernels; size: shared kernels only
    progress: bool = False
    # the input frame in the arena: True, False, or None (where it lowers arena + I/O)
    input_in_arena: bool | None = None
    # the caller hands the inputs over row by row through a reader (no whole frame in RAM)
    input_rows: bool = False
    max_recompute: float = 0.2  # patch-based stages may add this share of the model's MACs
    format: str = "plain"  # the output directory's layout: plain, or an Arduino library
    zip: bool = False  # also write OUT.zip (the Arduino library, ready for arduino-cli)
    sample: str | None = None  # the Arduino example's bundled input (model layout)
    html: bool = False  # also draw report.html (+ PNG figures) among the records


def c_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text).strip("_").lower() or "model"
    return name if not name[0].isdigit() else "m_" + name


def quantize(
    graph: Graph, opts: CompileOptions
) -> tuple[Graph, dict[str, object] | None, dict[str, object]]:
    """(quantized graph, accuracy or None, quant details). Imported int8 graphs pass through."""
    if any(graph.tensors[i].dtype in QUANTIZED_DTYPES for i in graph.inputs):
        return graph, None, {"scheme": "imported"}
    samples = load_samples(graph, opts.calib, mean=opts.mean, std=opts.std)
    val = (
        load_samples(graph, opts.val, mean=opts.mean, std=opts.std, what="--val")
        if opts.val
        else samples
    )
    scheme = opts.quant
    if scheme == "affine":
        if opts.bits not in ("8", "auto"):
            raise UsageError(
                "--quant affine is int8 (TFLite's scheme); use --quant seedot for 16 bits"
            )
        ranges = observe_ranges(graph, samples, opts.percentile, opts.progress)
        q = quantize_affine(graph, ranges, rnnpool_state_ranges(graph, samples))
        details: dict[str, object] = {
            "scheme": "affine",
            "bits": 8,
            "calibration_samples": len(samples),
            "observer": f"percentile {opts.percentile}" if opts.percentile else "minmax",
        }
    elif scheme == "seedot":
        if opts.bits not in ("8", "16"):
            raise UsageError("--quant seedot takes --bits 8 or 16")
        q, details = search_seedot(graph, samples, val, opts.bits, opts.progress)
    else:
        raise UsageError(f"--quant {opts.quant!r}: choose affine or seedot")
    return q, evaluate(graph, q, val), details


OPTIMIZE = ("speed", "size")
STAGES = (*FLOAT_STAGES, "quantize", "optimize", "schedule", "plan")


@dataclass
class Staged:
    """What the pipeline made, up to the stage it stopped after."""

    graph: Graph  # after the last stage run (patch-wise steps fused when they won)
    stage: str
    accuracy: dict[str, object] | None = None
    details: dict[str, object] = field(default_factory=dict)
    plan: Plan | None = None
    scratch: dict[int, int] = field(default_factory=dict)
    quantized: Graph | None = None  # the quantized graph in its original order
    layerwise: Graph | None = None  # the scheduled graph before any patch-wise fusion
    candidates: list[PatchRegion] = field(default_factory=list)
    whole: Plan | None = None  # plans layer by layer and patch-wise, for the report
    tiled: Plan | None = None
    arena_inputs: bool = False  # the input frame lives in the arena
    patches: list[Stage] = field(default_factory=list)  # the patch-based stages chosen
    layerwise_peak: int = 0  # arena + I/O layer by layer (with the better input placement)


def run_pipeline(opts: CompileOptions, after: str = "plan") -> Staged:
    """The declared pipeline: frontend → canonicalize → layout → quantize → optimize →
    schedule → plan, each stage checked by its verifier (passes.manager for the float stages;
    after quantize and optimize every activation is integer with parameters; before planning
    every op has a lowering rule for the backend; after planning no two live buffers
    overlap)."""
    if after not in STAGES:
        raise UsageError(f"unknown stage {after!r}; stages: {', '.join(STAGES)}")
    float_after = after if after in FLOAT_STAGES else FLOAT_STAGES[-1]
    graph = run_passes(load_model(opts.model, opts.input_shapes), float_after)
    if after in FLOAT_STAGES:
        return Staged(graph, after)
    q, accuracy, details = quantize(graph, opts)
    q.name = graph.name
    verify(q, "quantize")
    verify_quantized(q)
    staged = Staged(q, "quantize", accuracy, details, quantized=q)
    if after == "quantize":
        return staged
    # exact rewrites that use every weight: constant channels folded into their consumers
    q = eliminate_dead_channels(q)
    verify(q, "optimize")
    verify_quantized(q)
    staged.graph, staged.stage, staged.quantized = q, "optimize", q
    if after == "optimize":
        return staged
    if opts.kernels not in BACKENDS:
        raise UsageError(f"--kernels {opts.kernels!r}: choose {' or '.join(BACKENDS)}")
    if opts.optimize not in OPTIMIZE:
        raise UsageError(f"--optimize {opts.optimize!r}: choose {' or '.join(OPTIMIZE)}")
    q = schedule(q)
    if opts.input_rows:
        if opts.input_in_arena:
            raise UsageError(
                "--input-rows and --input-in-arena: an input handed over row by row is never "
                "whole, in the arena or elsewhere; give one of them"
            )
        q = read_inputs_by_rows(q)
    verify(q, "schedule")
    staged.graph, staged.stage = q, "schedule"
    if after == "schedule":
        return staged
    verify_lowerable(q, opts.kernels)
    candidates = patch_regions(q)
    # conv → RNNPool patch-wise where it lowers the arena (small maps do better layer by layer)
    whole_scratch = scratch_needs(q, opts.kernels)
    whole = plan_arena(q, scratch=whole_scratch, arena_inputs=bool(opts.input_in_arena))
    fused = fuse_patchwise(q)
    verify(fused, "schedule")
    fused_scratch = scratch_needs(fused, opts.kernels) if candidates else whole_scratch
    tiled = (
        plan_arena(fused, scratch=fused_scratch, arena_inputs=bool(opts.input_in_arena))
        if candidates
        else whole
    )
    base = fused if tiled.size < whole.size else q
    # then patch-based stages for any CNN and the input in the arena, where they lower the
    # peak (arena + I/O) within the recompute cap; layer by layer on ties
    if opts.max_recompute < 0:
        raise UsageError(f"--max-recompute {opts.max_recompute}: give a share >= 0 (0.2 = 20%)")
    placements = (False, True) if opts.input_in_arena is None else (opts.input_in_arena,)

    memo: dict[tuple[object, ...], int] = {}

    def scratch_of(g: Graph) -> dict[int, int]:
        return fused_scratch if g is fused else scratch_needs(g, opts.kernels, memo)

    def estimate(g: Graph) -> tuple[int, list[int]]:
        return min(peak_estimate(g, scratch_of(g), a) for a in placements)

    def best_plan(g: Graph) -> tuple[Plan, bool]:
        """The graph's plan with the input where it gives the lower peak (arena + I/O)."""
        sc = scratch_of(g)
        plans = [(plan_arena(g, scratch=sc, arena_inputs=a), a) for a in placements]
        return min(plans, key=lambda pa: (pa[0].size + io_bytes(g, pa[0]), pa[1]))

    def exact(g: Graph) -> int:
        p, _ = best_plan(g)
        return p.size + io_bytes(g, p)

    stages: list[Stage] = []
    chosen = base
    if opts.max_recompute > 0:
        chosen, stages = search(base, opts.max_recompute, estimate, exact)
    plan, arena_in = best_plan(chosen)
    layerwise_peak = exact(base)
    if layerwise_peak <= plan.size + io_bytes(chosen, plan) and stages:  # no gain after all
        chosen, stages = base, []
        plan, arena_in = best_plan(base)
    scratch = scratch_of(chosen)
    if stages:
        verify(chosen, "schedule")
    verify_plan(chosen, plan)
    staged.graph, staged.stage, staged.plan, staged.scratch = chosen, "plan", plan, scratch
    staged.layerwise, staged.candidates, staged.whole, staged.tiled = q, candidates, whole, tiled
    staged.arena_inputs, staged.patches, staged.layerwise_peak = arena_in, stages, layerwise_peak
    return staged


def compile_model(opts: CompileOptions) -> tuple[Path, dict[str, object]]:
    board = get_board(opts.target)
    check_format(opts.format, board)
    if opts.zip and opts.format != "arduino":
        raise UsageError("--zip packs an Arduino library; add --format arduino")
    staged = run_pipeline(opts)
    name = c_name(opts.name or staged.graph.name)
    out = Path(opts.out or f"build/{name}")
    if out.exists() and not _replaceable(out):
        raise UsageError(
            f"{out}: exists and is not a tvc output directory; refusing to replace it",
            "choose another --out, or move that directory away",
        )
    q, plan, scratch = staged.graph, staged.plan, staged.scratch
    assert plan is not None and staged.whole is not None and staged.tiled is not None
    q.name = name
    accuracy, details = staged.accuracy, staged.details
    report: dict[str, object] = {
        "model": str(opts.model),
        "name": name,
        "target": board.name,
        "quant": details.get("scheme"),
        "quantization": details,
        "ram": {"budget_bytes": parse_size(opts.ram) if opts.ram else board.total("ram")},
        "flash": {"budget_bytes": parse_size(opts.flash) if opts.flash else board.total("flash")},
        "accuracy": {k: v for k, v in (accuracy or {}).items() if k != "per_tensor_sqnr_db"}
        or None,
        "layers": layer_table(
            staged.quantized,  # type: ignore[arg-type]
            (accuracy or {}).get("per_tensor_sqnr_db"),  # type: ignore[arg-type]
        ),
    }
    io = io_bytes(q, plan)
    budget = int(report["ram"]["budget_bytes"])  # type: ignore[index, call-overload]
    extras = tuple(r for r in board.memory if r.kind == "ram" and r.section != ".bss")
    if plan.size + io + STACK_RESERVE > budget and extras:
        plan = plan_arena(
            q,
            budget - io - STACK_RESERVE,
            tuple(r.size for r in extras),
            scratch,
            staged.arena_inputs,
        )
        verify_plan(q, plan)
    precheck(q, plan, report)
    regions = tuple((r.name, r.section) for r in extras)
    # --optimize speed within the flash budget: when its per-layer kernels do not fit, the
    # shared kernels (--optimize size) are tried before giving up, and the report says so
    modes = [opts.optimize, *(["size"] if opts.optimize == "speed" else [])]
    base = copy.deepcopy(report)
    for attempt, mode in enumerate(modes):
        report = copy.deepcopy(base)
        last = attempt == len(modes) - 1
        generated = emit_c(
            q,
            plan,
            name,
            Path(opts.model).name,
            str(details.get("scheme")),
            regions,
            opts.kernels,
            scratch,
            mode,
        )
        report["kernels"] = opts.kernels
        report["format"] = opts.format
        report["optimize"] = mode
        report["ram"]["regions"] = {  # type: ignore[index]
            r.name: {"arena_bytes": sz, "size_bytes": r.size, "section": r.section}
            for r, sz in zip(extras, plan.region_sizes, strict=False)
            if sz > 0
        }
        report["ram"]["arena_bytes"] = plan.size  # type: ignore[index]
        report["ram"]["lower_bound_bytes"] = plan.lower_bound  # type: ignore[index]
        report["ram"]["naive_bytes"] = plan.naive  # type: ignore[index]
        if staged.candidates:  # what running every layer whole would take, for comparison
            lw = staged.layerwise
            assert lw is not None
            report["ram"]["patchwise"] = {  # type: ignore[index]
                "regions": [
                    f"{lw.nodes[r.conv].label} + {lw.nodes[r.pool].label}: "
                    f"band of {r.band_rows} rows"
                    for r in staged.candidates
                ],
                "used": any(n.op == "conv_rnnpool" for n in q.nodes),
                "arena_bytes": staged.tiled.size,
                "layerwise_arena_bytes": staged.whole.size,
            }
        report["ram"]["input_in_arena"] = staged.arena_inputs  # type: ignore[index]
        report["ram"]["input_rows"] = sorted(row_sources(q))  # type: ignore[index]
        report["memory"] = memory_map(q, plan)
        report["ram"]["patch"] = patch_report(staged, opts)  # type: ignore[index]
        report["flash"]["weights_bytes"] = generated.weights_bytes  # type: ignore[index]
        report["sources"] = generated.sources
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for fname, text in generated.files.items():
                (tmp / fname).write_text(text)
            (tmp / f"{name}.tvcir").write_text(print_graph(q, full=True))
            try:
                measure(tmp, q, board, plan, report)
                flash = report["flash"]
                over = flash["total_bytes"] > flash["budget_bytes"]  # type: ignore[index, operator]
            except BudgetError:  # the link itself overflowed the board's flash
                if last:
                    raise
                over, flash = True, {"total_bytes": None}
            if over and not last:
                base["optimize_note"] = (
                    f"--optimize {mode} needed "
                    + (f"{flash['total_bytes']:,} B" if flash["total_bytes"] else "more")
                    + f" of flash, over the {report['flash']['budget_bytes']:,} B budget: "  # type: ignore[index]
                    f"compiled with --optimize {modes[attempt + 1]}"
                )
                shutil.rmtree(tmp, ignore_errors=True)
                continue
            write_report(tmp / "report.json", report)
            (tmp / "summary.txt").write_text(summary_text(report))
            check_budget(report, q, plan)
            if opts.html:
                write_html(tmp)
            if opts.format == "arduino":
                sample, origin = example_sample(q, opts.sample, _samples(staged, opts))
                as_arduino_library(tmp, q, plan, board, report, sample, origin)
                if opts.zip:
                    write_zip(tmp, out.with_name(out.name + ".zip"), name)
            if out.exists():
                shutil.rmtree(out)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        break
    return out, report


def patch_report(staged: Staged, opts: CompileOptions) -> dict[str, object]:
    """What the patch-based search chose: the stages and their bands, the peak (arena + I/O)
    reached against layer by layer, and the MACs computed twice."""
    plan, graph = staged.plan, staged.graph
    assert plan is not None and staged.layerwise is not None
    total = sum(node_macs(staged.layerwise, n) for n in staged.layerwise.nodes)
    extra = sum(s.extra_macs for s in staged.patches)
    return {
        "used": bool(staged.patches),
        "max_recompute": opts.max_recompute,
        "layerwise_peak_bytes": staged.layerwise_peak,
        "peak_bytes": plan.size + io_bytes(graph, plan),
        "macs": total,
        "extra_macs": extra,
        "extra_macs_pct": round(100 * extra / max(total, 1), 2),
        "stages": [
            {
                "nodes": s.end - s.start,
                "output": s.output,
                "bands": s.bands,
                "mode": s.mode,
                "extra_macs": s.extra_macs,
            }
            for s in staged.patches
        ],
    }


def _replaceable(out: Path) -> bool:
    """An earlier compile's output (it has a report.json) or an empty directory: tvc replaces
    a whole output directory, so it must never be one that holds anything else."""
    return out.is_dir() and ((records_dir(out) / "report.json").is_file() or not any(out.iterdir()))


def _samples(staged: Staged, opts: CompileOptions) -> list[dict[str, np.ndarray]] | None:
    """The validation (else calibration) samples, in graph layout, for the Arduino example's
    bundled input; None for an imported integer model given no data."""
    data = opts.val or opts.calib
    if not data:
        return None
    graph = staged.quantized
    assert graph is not None
    return load_samples(graph, data, mean=opts.mean, std=opts.std, limit=1, what="--val")


def measure(
    outdir: Path, graph: Graph, board: Board, plan: Plan, report: dict[str, object]
) -> None:
    """Link the probe firmware for the board and put what the ELF says into the report."""
    try:
        fw = build_firmware(outdir, graph, board)
    except LinkOverflow as e:
        raise BudgetError(
            f"{graph.name} does not fit {board.name} at all: {e.message} (arena {plan.size:,} B, "
            f"lower bound {plan.lower_bound:,} B)\n{breakdown(graph, plan)}",
            budget_hint(report),
        ) from None
    share = fw.usage.share(graph.name + "_")
    if uses_cmsis(outdir):  # CMSIS-NN's functions and tables are the model's too
        lib = fw.usage.share("arm_")
        share = {k: share[k] + lib[k] for k in share}
    io = io_bytes(graph, plan)
    ram, flash = report["ram"], report["flash"]
    ram.update(  # type: ignore[union-attr]
        peak_bytes=plan.size + sum(plan.region_sizes) + fw.model_stack + io,
        main_ram_bytes=plan.size + fw.model_stack + io,
        arena_bytes=plan.size,
        stack_bytes=fw.model_stack,
        io_bytes=io,
        probe_elf_bytes=fw.usage.ram,
    )
    flash.update(  # type: ignore[union-attr]
        total_bytes=fw.usage.flash,
        weights_bytes=share["const"],
        code_bytes=share["code"],
        probe_overhead_bytes=fw.usage.flash - share["const"] - share["code"],
    )


def precheck(graph: Graph, plan: Plan, report: dict[str, object]) -> None:
    """Refuse early when the plan alone (arena + I/O, weights) exceeds a budget: no C is
    generated or linked for a model that cannot fit; the ELF gives exact figures otherwise."""
    io = io_bytes(graph, plan)
    weights = sum(t.nbytes for t in graph.tensors.values() if t.is_const)
    ram_b, flash_b = report["ram"]["budget_bytes"], report["flash"]["budget_bytes"]  # type: ignore[index]
    over = []
    if plan.size + io > ram_b:  # type: ignore[operator]
        over.append(
            f"RAM: arena {plan.size:,} B (lower bound {plan.lower_bound:,}) + I/O {io:,} B "
            f"> budget {ram_b:,} B"
        )
    if weights > flash_b:  # type: ignore[operator]
        over.append(f"flash: weights alone {weights:,} B > budget {flash_b:,} B")
    if over:
        raise over_budget(report, over, graph, plan)


def check_budget(report: dict[str, object], graph: Graph, plan: Plan) -> None:
    ram, flash = report["ram"], report["flash"]
    over = []
    if ram["main_ram_bytes"] > ram["budget_bytes"]:  # type: ignore[index, operator]
        over.append(
            f"RAM: {ram['main_ram_bytes']:,} B > budget {ram['budget_bytes']:,} B "  # type: ignore[index]
            f"(arena {ram['arena_bytes']:,} + stack {ram['stack_bytes']:,} "
            f"+ I/O {ram['io_bytes']:,})"
        )  # type: ignore[index]
    if flash["total_bytes"] > flash["budget_bytes"]:  # type: ignore[index, operator]
        over.append(
            f"flash: {flash['total_bytes']:,} B > budget {flash['budget_bytes']:,} B "  # type: ignore[index]
            f"(weights {flash['weights_bytes']:,}, code {flash['code_bytes']:,})"
        )  # type: ignore[index]
    if over:
        raise over_budget(report, over, graph, plan)


def over_budget(
    report: dict[str, object], over: list[str], graph: Graph, plan: Plan
) -> BudgetError:
    return BudgetError(
        f"{report['name']} does not fit {report['target']}: "
        + "; ".join(over)
        + "\n"
        + breakdown(graph, plan),
        budget_hint(report),
    )


def breakdown(graph: Graph, plan: Plan) -> str:
    """Per layer: what is live while it runs (the arena must hold that), its weights."""
    life = lifetimes(graph)
    rows = [
        "  step  layer                                        op              live B   weights B"
    ]
    for k, n in enumerate(graph.nodes):
        live = sum(graph.tensors[t].nbytes for t, (f, z) in life.items() if f <= k <= z)
        w = sum(graph.tensors[i].nbytes for i in n.inputs if graph.tensors[i].is_const)
        rows.append(f"  {k:4d}  {n.label[-44:]:44s} {n.op:14s} {live:9,d} {w:11,d}")
    return "\n".join(rows)


def budget_hint(report: dict[str, object]) -> str:
    hints = []
    if str(report.get("quant", "")).endswith("16"):
        hints.append("--bits 8 halves every activation")
    hints.append("a larger --ram/--flash if the board has it (tvc boards)")
    hints.append("a smaller input resolution or width multiplier")
    return "; ".join(hints)
