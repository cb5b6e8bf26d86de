"""An Arduino library (specification 1.5 layout) around the generated C: library.properties,
the C under src/, and an example sketch that runs the model on a bundled sample or on bytes
sent over Serial. The C is the same as for any firmware; only where it sits and what greets
the user differ, so a model behaves the same in a sketch as in tvc's own checks."""

from __future__ import annotations

import re

import numpy as np

from compiler.codegen.emit import _env, _lines, io_context
from compiler.errors import UsageError
from compiler.ir.graph import Graph
from compiler.passes.plan import Plan

# library.properties `name`: basic letters, digits, space, underscore, dot, dash; starting with
# a letter or digit (the Library Manager's rule; 63 characters at most)
NAME_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.\-]{0,62}")
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")
URL = "https://pypi.org/project/tvc/"
BAUD = 115200
PERIOD_MS = 1000
MAX_PRINT = 16  # scores printed per output (the hash covers every byte)


def library_files(
    graph: Graph,
    plan: Plan,
    name: str,
    *,
    board: str,
    board_description: str,
    architectures: tuple[str, ...],
    source: str,
    quant: str,
    version: str,
    tvc_version: str,
    flash_bytes: int,
    sample: dict[str, np.ndarray],
    sample_origin: str,
) -> dict[str, str]:
    """Library-relative path → text, for everything but the C under src/."""
    if not NAME_RULE.fullmatch(name):
        raise UsageError(
            f"{name!r} is not an Arduino library name (letters, digits, _ . -; "
            "starting with a letter or digit)",
            "choose one with --name",
        )
    if not SEMVER.fullmatch(version):
        raise UsageError(f"library version {version!r} is not MAJOR.MINOR.PATCH")
    if not architectures:
        raise UsageError(f"board {board} has no Arduino core", "see the README's Arduino section")
    ctx = io_context(graph, plan, name)
    for t in ctx["outputs"]:  # type: ignore[attr-defined]
        macro = f"{name.upper()}_{t['C']}"
        pow2 = t["exp"] is not None
        t["scale_expr"] = f"{float(2.0 ** t['exp'])!r}f" if pow2 else f"{macro}_SCALE"
        t["zp_expr"] = "0" if pow2 else f"{macro}_ZERO_POINT"
    inputs = []
    for t in ctx["inputs"]:  # type: ignore[attr-defined]
        values = np.asarray(sample[graph.inputs[len(inputs)]])
        inputs.append({**t, "lines": _lines(values)})
    env = _env()
    common = {
        **ctx,
        "inputs": inputs,
        "board": board,
        "source": source,
        "layout": "NHWC" if any(len(t["shape"]) == 4 for t in inputs) else "row-major",
    }
    outs = ctx["outputs"]  # type: ignore[index]
    call_args = ", ".join(
        [f"&tvc_rows_{t['c']}" if t["rows"] else f"in_{t['c']}" for t in inputs]
        + [f"tvc_out_{t['c']}" for t in outs]  # type: ignore[attr-defined]
    )
    example = f"examples/{name}"
    return {
        "library.properties": env.get_template("library.properties.j2").render(
            name=name,
            version=version,
            tvc_version=tvc_version,
            source=source,
            board_description=board_description,
            quant=quant,
            arena_size=f"{plan.size:,}",
            flash_bytes=f"{flash_bytes:,}",
            url=URL,
            architectures=",".join(architectures),
        ),
        f"{example}/{name}.ino": env.get_template("sketch.ino.j2").render(
            **common,
            call_args=call_args,
            baud=BAUD,
            period_ms=PERIOD_MS,
            max_print=MAX_PRINT,
            input_bytes=sum(int(t["nbytes"]) for t in inputs),  # type: ignore[call-overload]
        ),
        f"{example}/{name}_sample.h": env.get_template("sample.h.j2").render(
            **common, origin=sample_origin
        ),
    }
