"""Output formats beyond the plain directory: an Arduino library (`--format arduino`) and its
zip (`--zip`). Both are made from a finished, measured plain directory, so nothing about the
model differs between them; the zip is byte-for-byte the same for the same compile."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np

from compiler import __version__
from compiler.codegen.arduino import library_files
from compiler.errors import UsageError
from compiler.ir.boundary import quantize_inputs, read_inputs, to_graph_layout
from compiler.ir.graph import Graph
from compiler.ir.tensor import DTYPES
from compiler.outdir import RECORDS
from compiler.passes.plan import Plan
from compiler.tools.boards import Board

FORMATS = ("plain", "arduino")
LIBRARY_VERSION = "1.0.0"
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same compile gives the same zip


def check_format(fmt: str, board: Board) -> None:
    """Refuse a format the board cannot take before any work is done."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose {' or '.join(FORMATS)}")
    if fmt == "arduino" and not board.arduino:
        raise UsageError(
            f"board {board.name} has no Arduino core, so --format arduino cannot target it",
            "boards with one: nrf52840 (Nano 33 BLE), stm32f439, stm32h743, rp2040 (tvc boards)",
        )


def example_sample(
    graph: Graph, sample_file: str | None, samples: list[dict[str, np.ndarray]] | None
) -> tuple[dict[str, np.ndarray], str]:
    """The integer input the example sketch runs by default, and where it came from: the
    --sample file (model layout, like tvc run), else the first validation or calibration
    sample, else each input's zero point (what a blank frame quantizes to)."""
    if sample_file:
        feeds = quantize_inputs(graph, to_graph_layout(graph, read_inputs(graph, sample_file)))
        return feeds, f"from {Path(sample_file).name}"
    if samples:
        feeds = quantize_inputs(graph, to_graph_layout(graph, samples[0]))
        return feeds, "the first validation sample"
    feeds = {}
    for i in graph.inputs:
        t = graph.tensors[i]
        zp = int(t.qparams.zero_point[0]) if t.qparams is not None and t.qparams.exp is None else 0
        feeds[i] = np.full(t.shape, zp, DTYPES[t.dtype])
    return feeds, "every value at the input's zero point (no --sample, --val or --calib data)"


def as_arduino_library(
    outdir: Path,
    graph: Graph,
    plan: Plan,
    board: Board,
    report: dict[str, object],
    sample: dict[str, np.ndarray],
    origin: str,
) -> None:
    """Turn a plain output directory into an Arduino library in place: the C into src/, tvc's
    records (report.json, summary, IR) into extras/tvc/, the build fragments for Make and
    CMake dropped (arduino-cli builds src/ itself), library.properties and the example."""
    name = graph.name
    src, records = outdir / "src", outdir / RECORDS
    src.mkdir()
    records.mkdir(parents=True)
    for f in sorted(outdir.iterdir()):
        if f.suffix in (".c", ".h"):
            f.rename(src / f.name)
        elif f.suffix in (".mk", ".cmake"):
            f.unlink()
        elif f.is_file():  # report, summary, IR, the HTML report and its figures
            f.rename(records / f.name)
    files = library_files(
        graph,
        plan,
        name,
        board=board.name,
        board_description=board.description,
        architectures=board.arduino,
        source=Path(str(report["model"])).name,
        quant=str(report["quant"]),
        version=LIBRARY_VERSION,
        tvc_version=__version__,
        flash_bytes=int(report["flash"]["total_bytes"]),  # type: ignore[index]
        sample=sample,
        sample_origin=origin,
    )
    for rel, text in files.items():
        path = outdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def write_zip(library: Path, zip_path: Path, top: str) -> None:
    """The library as a zip whose single top folder is `top` (arduino-cli lib install
    --zip-path installs it under that name); entries sorted, times fixed."""
    tmp = zip_path.with_name(f".{zip_path.name}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in library.rglob("*")):
            rel = f"{top}/{path.relative_to(library).as_posix()}"
            info = zipfile.ZipInfo(rel + ("/" if path.is_dir() else ""), ZIP_TIME)
            info.external_attr = (0o40755 if path.is_dir() else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, b"" if path.is_dir() else path.read_bytes())
    shutil.move(tmp, zip_path)
