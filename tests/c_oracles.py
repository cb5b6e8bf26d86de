"""Shared checks for op tests: the generated C on the host and on the Cortex-M4 twin is
bit-exact with the integer interpreter (rungs 2 and 3 of the verification ladder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.tools.boards import get_board
from compiler.tools.host import build_host, run_host
from compiler.tools.qemu import run_qemu


def compile_for_tests(
    model: Path,
    out: Path,
    calib: str | None = "random",
    quant: str = "affine",
    bits: str = "8",
    **options: object,
) -> Path:
    opts = CompileOptions(
        model=str(model),
        target="mps2-an386",
        out=str(out),
        calib=calib,
        quant=quant,
        bits=bits,
        **options,  # type: ignore[arg-type]
    )
    return compile_model(opts)[0]


def integer_samples(graph: Graph, n: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Uniform codes over each input's whole integer range (int16: +-4000, realistic values)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        feeds = {}
        for i in graph.inputs:
            t = graph.tensors[i]
            lo, hi = {"i8": (-128, 128), "u8": (0, 256)}.get(t.dtype, (-4000, 4000))
            feeds[i] = rng.integers(lo, hi, t.shape).astype(DTYPES[t.dtype])
        out.append(feeds)
    return out


def assert_tflite_bit_exact(blob: bytes, graph: Graph, n: int = 32, seed: int = 11) -> None:
    """The integer interpreter equals tf.lite's reference kernels (BUILTIN_REF) on n inputs."""
    from tvc_models.keras_zoo import reference_interpreter

    interp = reference_interpreter(blob)
    inp, outd = interp.get_input_details()[0], interp.get_output_details()[0]
    for s in integer_samples(graph, n, seed):
        interp.set_tensor(inp["index"], s[graph.inputs[0]])
        interp.invoke()
        ref = interp.get_tensor(outd["index"])
        np.testing.assert_array_equal(run_graph(graph, s)[graph.outputs[0]], ref)


def assert_c_bit_exact(outdir: Path, n: int = 6, seed: int = 7, qemu: bool = True) -> Graph:
    """Host C and (optionally) M4-twin C outputs equal the interpreter's on `n` inputs."""
    graph = load_model(outdir)
    samples = integer_samples(graph, n, seed)
    host = run_host(build_host(outdir, graph), graph, samples)
    m4 = run_qemu(outdir, graph, get_board("mps2-an386"), samples)[0] if qemu else host
    for s, h, q in zip(samples, host, m4, strict=True):
        ref = run_graph(graph, s)
        for o in graph.outputs:
            np.testing.assert_array_equal(h[o], ref[o], err_msg=f"{outdir.name}: host {o}")
            np.testing.assert_array_equal(q[o], ref[o], err_msg=f"{outdir.name}: M4 {o}")
    return graph
