"""The host engine: the generated C compiled with the host gcc, run on a batch of samples."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from compiler.codegen.cmsis import build_cmsis_objects, uses_cmsis
from compiler.codegen.emit import host_main
from compiler.errors import ToolchainError, TvcError
from compiler.ir.graph import Graph
from compiler.ir.tensor import DTYPES
from compiler.outdir import source_dir
from compiler.passes.plan import plan_arena

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Wconversion", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def find_cc(name: str = "gcc") -> str:
    cc = shutil.which(name)
    if cc is None:
        raise ToolchainError(
            f"{name} not found", "install it: apt-get install gcc (or run ./setup.sh)"
        )
    return cc


def build_host(
    outdir: Path,
    graph: Graph,
    sanitize: bool = False,
    opt: str = "-O2",
    defines: tuple[str, ...] = (),
) -> Path:
    """Compile OUTDIR's sources + a stdin/stdout runner; cached by the sources' content."""
    outdir = source_dir(outdir.resolve())
    name = graph.name
    sources = sorted(outdir.glob("*.c"))
    main = host_main(graph, plan_arena(graph), name)
    flags = [*STRICT, opt, *(SANITIZE if sanitize else []), *(f"-D{d}" for d in defines)]
    h = hashlib.sha256(main.encode() + " ".join(flags).encode())
    for f in sorted([*sources, *outdir.glob("*.h")]):
        h.update(f.name.encode() + f.read_bytes())
    cache = Path(tempfile.gettempdir()) / "tvc-host" / h.hexdigest()[:16]
    exe = cache / name
    if exe.exists():
        return exe
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "host_main.c").write_text(main)
    lib: list[str] = []
    if uses_cmsis(outdir):  # our sources strict, the library as it comes
        objs, _, include = build_cmsis_objects(
            find_cc(), ["-std=gnu11", opt, "-w", *(SANITIZE if sanitize else [])], cache.parent
        )
        lib, flags = objs, [*flags, include]
    cmd = [
        find_cc(),
        *flags,
        f"-I{outdir}",
        *map(str, sources),
        str(cache / "host_main.c"),
        *lib,
        "-o",
        str(exe),
    ]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise TvcError(f"host build of {outdir} failed:\n{r.stderr.strip()[:4000]}")
    return exe


def run_host(
    exe: Path, graph: Graph, samples: list[dict[str, np.ndarray]]
) -> list[dict[str, np.ndarray]]:
    """Integer graph inputs in, integer outputs out (one dict per sample)."""
    blob = b"".join(
        np.ascontiguousarray(s[i], DTYPES[graph.tensors[i].dtype]).tobytes()
        for s in samples
        for i in graph.inputs
    )
    r = subprocess.run([str(exe)], input=blob, capture_output=True, timeout=600)
    if r.returncode != 0:
        raise TvcError(
            f"host run failed (exit {r.returncode}): {r.stderr.decode(errors='replace')[:2000]}"
        )
    out, pos = [], 0
    for _ in samples:
        res = {}
        for o in graph.outputs:
            t = graph.tensors[o]
            n = t.nbytes
            res[o] = np.frombuffer(r.stdout[pos : pos + n], DTYPES[t.dtype]).reshape(t.shape).copy()
            pos += n
        out.append(res)
    if pos != len(r.stdout):
        raise TvcError(f"host run wrote {len(r.stdout)} bytes, expected {pos}")
    return out
