"""Where a compile output directory keeps what. Two layouts: the plain one (C sources, the IR
and report.json side by side), and an Arduino library (`--format arduino`), whose C must sit
in src/ and whose other files belong in extras/ by the library specification. Every reader of
an output directory (tvc run, tvc report, the host and QEMU builds) goes through here, so both
layouts work everywhere."""

from __future__ import annotations

from pathlib import Path

LIBRARY_FILE = "library.properties"
RECORDS = Path("extras") / "tvc"


def is_library(outdir: Path) -> bool:
    return (outdir / LIBRARY_FILE).is_file()


def source_dir(outdir: Path) -> Path:
    """Where the generated C (model, weights, kernels) is."""
    return outdir / "src" if is_library(outdir) else outdir


def records_dir(outdir: Path) -> Path:
    """Where report.json, summary.txt, the compiled IR and a stored profile are."""
    return outdir / RECORDS if is_library(outdir) else outdir
