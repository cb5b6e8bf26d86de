"""`tvc run --engine qemu --profile` keeps what it measured in the output directory, so the HTML
report can show instructions per layer beside MACs (and CI can diff it)."""

from __future__ import annotations

import json
from pathlib import Path

from compiler.ir.graph import Graph
from compiler.outdir import records_dir
from compiler.tools.boards import Board
from compiler.tools.html import PROFILE_FILE
from compiler.tools.qemu import QemuRun


def store_profile(outdir: Path, graph: Graph, board: Board, run: QemuRun, source: Path) -> Path:
    """profile.json among the records: the first sample's instructions, per step and in all."""
    path = records_dir(outdir) / PROFILE_FILE
    per_step = run.per_step[0]
    record = {
        "board": board.name,
        "emulator": board.emulator,
        "input": Path(source).name,
        "instructions": run.instructions[0],
        "steps": [
            {"label": n.label, "op": n.op, "instructions": k}
            for n, k in zip(graph.nodes, per_step, strict=True)
        ],
    }
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path
