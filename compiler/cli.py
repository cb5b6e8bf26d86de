"""Command line: argument parsing only; the work happens in the stages it calls."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from compiler import __version__
from compiler.compile import STAGES as PIPELINE_STAGES
from compiler.compile import CompileOptions, compile_model, run_pipeline
from compiler.errors import EXIT_BUDGET, EXIT_INTERNAL, TvcError, UsageError
from compiler.frontend.loader import load_model
from compiler.frontend.onnx import parse_input_shapes
from compiler.ir.boundary import (
    dequantize_outputs,
    from_graph_layout,
    quantize_inputs,
    read_inputs,
    to_graph_layout,
    write_outputs,
)
from compiler.ir.interpreter import run_graph
from compiler.ir.lowering import BACKENDS
from compiler.ir.tensor import QUANTIZED_DTYPES
from compiler.ir.text import print_graph
from compiler.outdir import records_dir
from compiler.passes.manager import STAGES, run_passes
from compiler.passes.plan import plan_text
from compiler.tools.boards import all_boards, get_board, parse_size
from compiler.tools.elf import read_elf
from compiler.tools.host import build_host, run_host
from compiler.tools.html import write_html
from compiler.tools.profile import store_profile
from compiler.tools.qemu import emulate
from compiler.tools.report import layer_table, summary_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tvc",
        description="Compile trained neural networks (ONNX) into standalone C for Arm Cortex-M.",
    )
    p.add_argument("--version", action="version", version=f"tvc {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    shape_help = "static input shape, e.g. x=1,3,64,64 (needed when the model has dynamic H/W)"

    ir = sub.add_parser("ir", help="print the IR of a model after a compiler stage")
    ir.add_argument("model", help="model file (.onnx, .tflite, or IR text)")
    ir.add_argument(
        "--after",
        default=STAGES[-1],
        choices=PIPELINE_STAGES,
        help="stage to stop after (default: %(default)s); quantize and later take --calib",
    )
    ir.add_argument("--calib", help="calibration data, as for compile (quantize and later)")
    ir.add_argument("--quant", default="affine", choices=("affine", "seedot"))
    ir.add_argument("--bits", default="8", choices=("8", "16", "auto"))
    ir.add_argument("--kernels", default="portable", choices=tuple(BACKENDS))
    _memory_options(ir)
    ir.add_argument("--full", action="store_true", help="print all constant data (parseable back)")
    ir.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help=shape_help)
    ir.add_argument("-o", "--output", type=Path, help="write to a file instead of stdout")

    comp = sub.add_parser(
        "compile", help="quantize a model for a board and write the output directory"
    )
    comp.add_argument("model", help="model file (.onnx, .tflite, or IR text)")
    comp.add_argument("--target", required=True, metavar="BOARD", help="board (see tvc boards)")
    comp.add_argument("--out", help="output directory (default build/NAME)")
    comp.add_argument("--name", help="C name prefix (default: the model file's name)")
    comp.add_argument("--ram", help="RAM budget, e.g. 192k (default: the board's RAM)")
    comp.add_argument("--flash", help="flash budget, e.g. 1m (default: the board's flash)")
    comp.add_argument(
        "--calib", help="calibration data: .npy/.npz (model layout), image folder, or 'random'"
    )
    comp.add_argument(
        "--val", help="validation data for the accuracy report (default: the calibration data)"
    )
    comp.add_argument(
        "--quant",
        default="affine",
        choices=("affine", "seedot"),
        help="scheme: affine (TFLite's int8) or seedot (power-of-two fixed point); RNNPool "
        "computes in int16 fixed point inside either (default: %(default)s)",
    )
    comp.add_argument(
        "--bits",
        default="8",
        choices=("8", "16"),
        help="integer width: affine is 8; seedot 8 or 16",
    )
    comp.add_argument(
        "--mean", type=_floats, help="per-channel mean for image folders, e.g. 0.5,0.5,0.5"
    )
    comp.add_argument("--std", type=_floats, help="per-channel std for image folders")
    comp.add_argument(
        "--percentile", type=float, help="clip calibration ranges at this percentile (e.g. 99.99)"
    )
    comp.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help=shape_help)
    comp.add_argument(
        "--kernels",
        default="portable",
        choices=("portable", "cmsis-nn"),
        help="kernel backend: tvc's portable C, or CMSIS-NN where it computes the same numbers "
        "(needs CMSIS_NN_ROOT to build and run; default: %(default)s)",
    )
    comp.add_argument(
        "--optimize",
        default="speed",
        choices=("speed", "size"),
        help="speed: per-layer specialized kernels (shape constants compiled in, more flash); "
        "size: the shared kernels only (default: %(default)s)",
    )
    _memory_options(comp)
    comp.add_argument(
        "--format",
        default="plain",
        choices=("plain", "arduino"),
        help="plain: C sources, Make/CMake fragments and the report in OUT; arduino: an Arduino "
        "library (library.properties, src/, examples/NAME/NAME.ino) for arduino-cli "
        "(default: %(default)s)",
    )
    comp.add_argument(
        "--zip", action="store_true", help="with --format arduino: also write OUT.zip"
    )
    comp.add_argument(
        "--html",
        action="store_true",
        help="also draw report.html (memory timeline, budgets, layers, accuracy; PNG figures "
        "beside it) in the output directory",
    )
    comp.add_argument(
        "--sample",
        help="with --format arduino: the example's bundled input (.npy/.npz in the model's "
        "layout; default: the first --val or --calib sample)",
    )

    sub.add_parser("boards", help="list the boards tvc knows")

    rep = sub.add_parser(
        "report", help="print the summary of a compile output directory, or draw it as HTML"
    )
    rep.add_argument("outdir", type=Path)
    rep.add_argument(
        "--html",
        nargs="?",
        const="",
        metavar="FILE",
        help="write the HTML report (default: report.html in the output directory) and its "
        "figures as PNG beside it",
    )

    run = sub.add_parser("run", help="run a model on input arrays (in the model's own layout)")
    run.add_argument(
        "model", help="model file (.onnx, .tflite, IR text) or a tvc compile output directory"
    )
    run.add_argument(
        "--input", required=True, type=Path, help=".npy (one input) or .npz by input name"
    )
    run.add_argument("--output", type=Path, help="write outputs: .npy (one output) or .npz")
    run.add_argument(
        "--engine",
        default="float",
        choices=("float", "int", "host", "qemu"),
        help="float reference, bit-exact integer interpreter, the generated C built for this "
        "machine, or for the board's emulator twin under QEMU (default: %(default)s)",
    )
    run.add_argument(
        "--after",
        default=STAGES[-1],
        choices=STAGES,
        help="run the graph as it is after this stage",
    )
    run.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help=shape_help)
    run.add_argument(
        "--board", help="qemu engine: the board to emulate (default: the compile target)"
    )
    run.add_argument("--profile", action="store_true", help="qemu engine: instructions per layer")

    chk = sub.add_parser("check", help="flash/RAM of a firmware ELF against budgets (a CI gate)")
    chk.add_argument("elf", type=Path)
    chk.add_argument("--board", help="board whose memory sizes are the default budgets")
    chk.add_argument("--ram", help="RAM budget, e.g. 192k")
    chk.add_argument("--flash", help="flash budget, e.g. 1m")
    chk.add_argument(
        "--prefix", action="append", default=[], help="symbol prefix of a model (repeatable)"
    )
    chk.add_argument("--json", action="store_true", help="print the result as JSON")
    return p


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers like 0.5,0.5,0.5, got {text!r}"
        ) from None


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]

    graph = load_model(args.model, parse_input_shapes(args.input_shape))
    return run_passes(graph, args.after)


def _share(text: str) -> float:
    """A share of extra work: 0.2 or 20%."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share (0.2 or 20%)") from None
    if not 0 <= value <= 10:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share from 0 to 10 (0.2 = 20%)")
    return value


def _memory_options(p: argparse.ArgumentParser) -> None:
    """Where the planner may trade work and placement for RAM (README "Memory")."""
    p.add_argument(
        "--input-in-arena",
        nargs="?",
        const="yes",
        default="auto",
        choices=("auto", "yes", "no"),
        help="place the input in the arena (firmware writes the frame to NAME_<input>_buffer(); "
        "NAME_run copies a separate buffer in), so layers reuse the frame's bytes; "
        "auto: where that lowers arena + I/O (default: %(default)s)",
    )
    p.add_argument(
        "--input-rows",
        action="store_true",
        help="the firmware hands the input over row by row: NAME_run takes a reader that it "
        "asks for rows in order, each once, so the frame need never be whole in RAM (a camera's "
        "line interrupt, a sensor FIFO); batch-1 image inputs",
    )
    p.add_argument(
        "--max-recompute",
        type=_share,
        default=0.2,
        metavar="SHARE",
        help="patch-based stages: the first layers run band by band where that lowers the peak, "
        "recomputing halo rows up to this share of the model's MACs; 0 turns them off "
        "(default: 0.2 = 20%%)",
    )


def _in_arena(args: argparse.Namespace) -> bool | None:
    return {"auto": None, "yes": True, "no": False}[args.input_in_arena]


def cmd_ir(args: argparse.Namespace) -> int:
    if args.after in STAGES:
        text = print_graph(_load(args), full=args.full)
    else:
        opts = CompileOptions(
            model=args.model,
            target="",
            calib=args.calib,
            quant=args.quant,
            bits=args.bits,
            input_shapes=parse_input_shapes(args.input_shape),
            kernels=args.kernels,
            input_in_arena=_in_arena(args),
            input_rows=args.input_rows,
            max_recompute=args.max_recompute,
        )
        staged = run_pipeline(opts, args.after)
        text = print_graph(staged.graph, full=args.full)
        if staged.plan is not None:
            text += plan_text(staged.graph, staged.plan)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    graph = _load(args)
    quantized = any(t.dtype in QUANTIZED_DTYPES for t in graph.tensors.values() if not t.is_const)
    if args.engine == "float" and quantized:
        raise UsageError(f"{args.model}: this model is quantized; run it with --engine int")
    if args.engine in ("int", "host") and not quantized:
        raise UsageError(
            f"{args.model}: this model is float; the integer engine runs a compiled model",
            "tvc compile MODEL --target BOARD --calib DATA --out DIR; "
            "then tvc run DIR --engine int",
        )
    if args.engine in ("host", "qemu") and not (quantized and Path(args.model).is_dir()):
        raise UsageError(
            f"{args.model}: --engine {args.engine} runs a tvc compile output directory"
        )
    feeds = quantize_inputs(graph, to_graph_layout(graph, read_inputs(graph, args.input)))
    if args.engine == "host":
        raw = run_host(build_host(Path(args.model), graph), graph, [feeds])[0]
    elif args.engine == "qemu":
        import json as _json

        target = (
            args.board
            or _json.loads((records_dir(Path(args.model)) / "report.json").read_text())["target"]
        )
        result = emulate(Path(args.model), graph, get_board(target), [feeds], profile=args.profile)
        raw, instr = result.outputs[0], result.instructions
        if args.profile:
            _print_profile(graph, result.per_step[0])
            stored = store_profile(Path(args.model), graph, get_board(target), result, args.input)
            print(f"profile stored in {stored} (tvc report {args.model} --html draws it)")
        print(
            f"{instr[0]:,} instructions per inference on {get_board(target).emulator} "
            "(QEMU, -icount)"
        )
    else:
        raw = run_graph(graph, feeds)
    outs = from_graph_layout(graph, dequantize_outputs(graph, raw))
    if args.output:
        write_outputs(args.output, outs)
    table = Table(title=f"{graph.name}: outputs ({args.engine} engine)")
    for col in ("output", "shape", "min", "max", "argmax"):
        table.add_column(col)
    for k, v in outs.items():
        flat = v.reshape(-1)
        table.add_row(
            k,
            str(list(v.shape)),
            f"{flat.min():.5g}",
            f"{flat.max():.5g}",
            str(int(np.argmax(flat))),
        )
    Console().print(table)
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    opts = CompileOptions(
        model=args.model,
        target=args.target,
        out=args.out,
        name=args.name,
        calib=args.calib,
        val=args.val,
        quant=args.quant,
        bits=args.bits,
        mean=args.mean,
        std=args.std,
        percentile=args.percentile,
        ram=args.ram,
        flash=args.flash,
        input_shapes=parse_input_shapes(args.input_shape),
        kernels=args.kernels,
        optimize=args.optimize,
        input_in_arena=_in_arena(args),
        input_rows=args.input_rows,
        max_recompute=args.max_recompute,
        format=args.format,
        zip=args.zip,
        sample=args.sample,
        html=args.html,
        progress=sys.stderr.isatty(),
    )
    out, report = compile_model(opts)
    sys.stdout.write(summary_text(report))
    print(f"wrote {out}/")
    if args.format == "arduino":
        print(f"Arduino library: {out}/ (example examples/{report['name']}/{report['name']}.ino)")
    if args.zip:
        print(f"wrote {out.with_name(out.name + '.zip')} (arduino-cli lib install --zip-path)")
    if args.html:
        print(f"wrote {records_dir(out) / 'report.html'} (open it in a browser)")
    return 0


def cmd_boards(args: argparse.Namespace) -> int:
    table = Table(title="boards")
    for col in ("name", "cpu", "DSP", "clock", "RAM", "flash", "emulator"):
        table.add_column(col, no_wrap=True)
    for b in all_boards().values():
        table.add_row(
            b.name,
            b.cpu,
            "yes" if b.dsp else "no",
            f"{b.clock_hz / 1e6:g} MHz",
            f"{b.total('ram') // 1024} KB",
            f"{b.total('flash') // 1024} KB",
            b.emulator or "-",
        )
    Console().print(table)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import json

    path = records_dir(args.outdir) / "report.json"
    if not path.is_file():
        raise UsageError(f"{args.outdir}: no report.json (not a tvc compile output directory)")
    if args.html is not None:
        files = write_html(args.outdir, Path(args.html) if args.html else None)
        print(f"wrote {files[0]} and its figures: " + ", ".join(f.name for f in files[1:]))
        return 0
    sys.stdout.write(summary_text(json.loads(path.read_text())))
    return 0


def _print_profile(graph, per_step: list[int]) -> None:  # type: ignore[no-untyped-def]

    rows = layer_table(graph)
    total = max(sum(per_step), 1)
    table = Table(title="instructions per layer (QEMU, -icount)")
    for col in ("#", "layer", "op", "MACs", "instructions", "instr/MAC", "share"):
        table.add_column(col, justify="right" if col not in ("layer", "op") else "left")
    for k, (row, n) in enumerate(zip(rows, per_step, strict=True)):
        macs = int(row["macs"])  # type: ignore[call-overload]
        table.add_row(
            str(k),
            str(row["name"])[-40:],
            str(row["op"]),
            f"{macs:,}",
            f"{n:,}",
            f"{n / macs:.2f}" if macs else "-",
            f"{100 * n / total:.1f}%",
        )
    Console().print(table)


def cmd_check(args: argparse.Namespace) -> int:
    import json

    usage = read_elf(args.elf)
    board = get_board(args.board) if args.board else None
    ram_budget = parse_size(args.ram) if args.ram else (board.total("ram") if board else None)
    flash_budget = (
        parse_size(args.flash) if args.flash else (board.total("flash") if board else None)
    )
    result: dict[str, object] = {
        "elf": str(args.elf),
        "text": usage.text,
        "data": usage.data,
        "bss": usage.bss,
        "flash_bytes": usage.flash,
        "ram_bytes": usage.ram,
        "flash_budget_bytes": flash_budget,
        "ram_budget_bytes": ram_budget,
        "sections": {k: {"address": a, "size": z} for k, (a, z) in usage.sections.items()},
        "stack_bytes": usage.stack,
        "models": {p: usage.share(p) for p in args.prefix},
    }
    if board is not None:  # each region's use (.data counts where it runs, in RAM)
        regions = [(r.name, r.base, r.size) for r in board.memory]
        used = usage.by_region(regions)
        flash = next((r.name for r in board.memory if r.kind == "flash"), None)
        if flash is not None:  # .data runs in RAM but its initial image is stored in flash
            used[flash] += usage.data
        result["regions"] = {r.name: {"used": used[r.name], "size": r.size} for r in board.memory}
    over = [
        k
        for k, used, budget in (
            ("flash", usage.flash, flash_budget),
            ("ram", usage.ram, ram_budget),
        )
        if budget is not None and used > budget
    ]
    result["over_budget"] = over
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{args.elf}: text {usage.text:,}  data {usage.data:,}  bss {usage.bss:,}"
            "  (as arm-none-eabi-size)"
        )
        print(
            f"flash {usage.flash:,} B"
            + (f" of {flash_budget:,}" if flash_budget else "")
            + f", RAM {usage.ram:,} B"
            + (f" of {ram_budget:,}" if ram_budget else "")
        )
        for name, (addr, size) in sorted(usage.sections.items(), key=lambda kv: kv[1][0]):
            print(f"  {name:16s} 0x{addr:08x} {size:10,d}")
        if usage.stack:
            print(f"stack reserved: {usage.stack:,} B")
        for rname, r in (result.get("regions") or {}).items():  # type: ignore[union-attr]
            print(f"  region {rname:10s} {r['used']:10,d} of {r['size']:,} B")
        for p, share in result["models"].items():  # type: ignore[union-attr]
            print(
                f"  model {p}*: code {share['code']:,}  weights {share['const']:,}  "
                f"RAM {share['ram']:,}"
            )
        for k in over:
            print(f"tvc: error: {k} over budget", file=sys.stderr)
    return EXIT_BUDGET if over else 0


COMMANDS = {
    "ir": cmd_ir,
    "run": cmd_run,
    "compile": cmd_compile,
    "boards": cmd_boards,
    "report": cmd_report,
    "check": cmd_check,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TvcError as e:
        if args.debug:
            traceback.print_exc()
        print(f"tvc: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tvc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.
        return 0
    except Exception as e:  # a bug in tvc, not in the user's input
        if args.debug:
            traceback.print_exc()
        else:
            print(f"tvc: internal error: {type(e).__name__}: {e}", file=sys.stderr)
            print(
                "  this is a bug in tvc; rerun with --debug for the traceback and report it",
                file=sys.stderr,
            )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
