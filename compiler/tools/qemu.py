"""The QEMU engine: the probe firmware on the emulator twin, samples through semihosting,
instruction counts from SysTick under -icount shift=0 (1 instruction = 1 ns, SysTick at 25 MHz:
one count = 40 instructions, exact to +-40 and identical on every run)."""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import TvcError
from compiler.ir.graph import Graph
from compiler.ir.tensor import DTYPES
from compiler.tools.boards import Board, get_board
from compiler.tools.firmware import build_firmware
from compiler.tools.toolchain import qemu

INSTRUCTIONS_PER_TICK = 40


@dataclass
class QemuRun:
    outputs: list[dict[str, np.ndarray]]
    instructions: list[int]  # per inference
    per_step: list[list[int]] = field(default_factory=list)  # per sample, per node (profile runs)


def qemu_command(machine: str, elf: Path) -> list[str]:
    """QEMU running a firmware on the twin: files through semihosting (relative to the working
    directory), one instruction per nanosecond (-icount shift=0), no serial or monitor."""
    return [
        qemu(),
        "-M",
        machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "null",
        "-semihosting-config",
        "enable=on,target=native",
        "-icount",
        "shift=0,align=off,sleep=off",
        "-kernel",
        str(elf),
    ]


def run_qemu(
    outdir: Path,
    graph: Graph,
    board: Board,
    samples: list[dict[str, np.ndarray]],
    timeout: float = 600,
) -> tuple[list[dict[str, np.ndarray]], list[int]]:
    """Outputs per sample and instructions per inference."""
    r = emulate(outdir, graph, board, samples, timeout)
    return r.outputs, r.instructions


def emulate(
    outdir: Path,
    graph: Graph,
    board: Board,
    samples: list[dict[str, np.ndarray]],
    timeout: float = 600,
    profile: bool = False,
) -> QemuRun:
    if not board.emulator:
        raise TvcError(f"board {board.name} has no emulator twin to run on")
    fw = build_firmware(outdir, graph, board, emulate=True, profile=profile)
    machine = get_board(board.emulator).emulator
    with tempfile.TemporaryDirectory(prefix="tvc-qemu-") as d:
        work = Path(d)
        blob = b"".join(
            np.ascontiguousarray(s[i], DTYPES[graph.tensors[i].dtype]).tobytes()
            for s in samples
            for i in graph.inputs
        )
        (work / "tvc_in.bin").write_bytes(blob)
        cmd = ["timeout", str(int(timeout)), *qemu_command(machine, fw.elf)]
        r = subprocess.run(cmd, cwd=work, capture_output=True, timeout=timeout + 30)
        if r.returncode != 0:
            raise TvcError(
                f"QEMU run failed (exit {r.returncode}): {r.stderr.decode(errors='replace')[:2000]}"
            )
        raw = (work / "tvc_out.bin").read_bytes()
        ticks = np.frombuffer((work / "tvc_ticks.bin").read_bytes(), np.uint64)
        steps = (
            np.frombuffer((work / "tvc_profile.bin").read_bytes(), np.uint32) if profile else None
        )
    outs, pos = [], 0
    for _ in samples:
        res = {}
        for o in graph.outputs:
            t = graph.tensors[o]
            res[o] = (
                np.frombuffer(raw[pos : pos + t.nbytes], DTYPES[t.dtype]).reshape(t.shape).copy()
            )
            pos += t.nbytes
        outs.append(res)
    if pos != len(raw) or len(ticks) != len(samples):
        raise TvcError(
            f"QEMU returned {len(raw)} output bytes and {len(ticks)} timings "
            f"for {len(samples)} samples"
        )
    per_step = []
    if steps is not None:
        n = max(len(graph.nodes), 1)
        per_step = [
            [int(v) * INSTRUCTIONS_PER_TICK for v in steps[k * n : (k + 1) * n]]
            for k in range(len(samples))
        ]
    return QemuRun(outs, [int(t) * INSTRUCTIONS_PER_TICK for t in ticks], per_step)
