"""The `cmsis-nn` backend's library: where CMSIS-NN is, and building it for a probe firmware.

Its lowering rules live with their ops (compiler/ir/ops: conv, dense, pool, elementwise add,
softmax), tried before the portable rules: affine int8 layers CMSIS-NN computes exactly call
arm_*_s8, everything else falls through to the portable kernels. Scratch sizes come from
CMSIS-NN's formulas for the non-MVE cores, and builds with -DTVC_CHECK_SCRATCH check them
against the library's own *_get_buffer_size at run time.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from compiler.errors import ToolchainError


def cmsis_root() -> Path:
    root = os.environ.get("CMSIS_NN_ROOT")
    if not root or not (Path(root) / "Include" / "arm_nnfunctions.h").is_file():
        raise ToolchainError(
            "CMSIS_NN_ROOT does not point at a CMSIS-NN checkout (Include/arm_nnfunctions.h)",
            "export CMSIS_NN_ROOT=/path/to/CMSIS-NN (github.com/ARM-software/CMSIS-NN)",
        )
    return Path(root)


def cmsis_sources(root: Path) -> list[Path]:
    """The integer kernels and their support code (the f16/f32 ones need an FP16/float build)."""
    return sorted(
        p for p in (root / "Source").glob("*/*.c") if not re.search(r"_f(16|32)\.c$", p.name)
    )


def uses_cmsis(outdir: Path) -> bool:
    """Whether an output directory was generated with --kernels cmsis-nn."""
    return any('#include "arm_nnfunctions.h"' in f.read_text() for f in outdir.glob("*.c"))


def build_cmsis_objects(
    cc: str, flags: list[str], cache: Path
) -> tuple[list[str], list[Path], str]:
    """CMSIS-NN compiled once per compiler and flags: (object files, call-graph files, -I flag)."""
    import hashlib
    import subprocess

    root = cmsis_root()
    sources = cmsis_sources(root)
    key = hashlib.sha256((cc + " ".join(flags) + str(root)).encode())
    for s in sources:
        key.update(s.read_bytes())
    work = cache / f"cmsis-nn-{key.hexdigest()[:12]}"
    work.mkdir(parents=True, exist_ok=True)
    include = f"-I{root / 'Include'}"
    objs, cis = [], []
    for src in sources:
        obj = work / f"{src.stem}.o"
        if not obj.exists():
            r = subprocess.run(
                [cc, *flags, include, "-c", str(src), "-o", str(obj)],
                capture_output=True,
                text=True,
                cwd=work,
            )
            if r.returncode != 0:
                raise ToolchainError(f"building CMSIS-NN's {src.name} failed:\n{r.stderr[:2000]}")
        objs.append(str(obj))
        cis.append(work / f"{src.stem}.ci")
    return objs, cis, include
