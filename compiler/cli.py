"""Command line: argument parsing only; the work happens in the stages it calls."""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

import numpy as np

from compiler import __version__
from compiler.errors import EXIT_INTERNAL, TvcError


def _parser() -> argparse.ArgumentParser:
    from compiler.passes.manager import STAGES

    p = argparse.ArgumentParser(
        prog="tvc",
        description="Compile trained neural networks (ONNX) into standalone C for Arm Cortex-M.",
    )
    p.add_argument("--version", action="version", version=f"tvc {__version__}")
    p.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    shape_help = "static input shape, e.g. x=1,3,64,64 (needed when the model has dynamic H/W)"

    ir = sub.add_parser("ir", help="print the IR of a model after a compiler stage")
    ir.add_argument("model", help="model file (.onnx, or IR text)")
    ir.add_argument(
        "--after",
        default=STAGES[-1],
        choices=STAGES,
        help="stage to stop after (default: %(default)s)",
    )
    ir.add_argument("--full", action="store_true", help="print all constant data (parseable back)")
    ir.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help=shape_help)
    ir.add_argument("-o", "--output", type=Path, help="write to a file instead of stdout")

    run = sub.add_parser("run", help="run a model on input arrays (in the model's own layout)")
    run.add_argument("model", help="model file (.onnx, or IR text)")
    run.add_argument(
        "--input", required=True, type=Path, help=".npy (one input) or .npz by input name"
    )
    run.add_argument("--output", type=Path, help="write outputs: .npy (one output) or .npz")
    run.add_argument(
        "--engine", default="float", choices=("float",), help="who computes (default: %(default)s)"
    )
    run.add_argument(
        "--after",
        default=STAGES[-1],
        choices=STAGES,
        help="run the graph as it is after this stage",
    )
    run.add_argument("--input-shape", action="append", metavar="NAME=DIMS", help=shape_help)
    return p


def _load(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from compiler.frontend.onnx import parse_input_shapes
    from compiler.loader import load_model
    from compiler.passes.manager import run_passes

    graph = load_model(args.model, parse_input_shapes(args.input_shape))
    return run_passes(graph, args.after)


def cmd_ir(args: argparse.Namespace) -> int:
    from compiler.ir.text import print_graph

    text = print_graph(_load(args), full=args.full)
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from compiler.ir.interpreter import run_graph
    from compiler.runio import from_graph_layout, read_inputs, to_graph_layout, write_outputs

    graph = _load(args)
    feeds = to_graph_layout(graph, read_inputs(graph, args.input))
    outs = from_graph_layout(graph, run_graph(graph, feeds))
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


COMMANDS = {"ir": cmd_ir, "run": cmd_run}


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
