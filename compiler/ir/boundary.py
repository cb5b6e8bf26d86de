"""Arrays in and out of `tvc run`, in the model's own terms (NCHW for PyTorch models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.errors import UsageError
from compiler.ir.graph import Graph
from compiler.ir.ops.quant_ops import dequantize_int, quantize_int
from compiler.ir.tensor import QUANTIZED_DTYPES

NHWC_PERM = (0, 2, 3, 1)  # physical NHWC = logical NCHW.transpose(NHWC_PERM)


def layout_boundary(graph: Graph) -> dict[str, tuple[int, ...]]:
    """How `tvc run` maps model-layout arrays onto graph I/O: a transpose per NHWC tensor."""
    src = graph.meta.get("source_layout")
    out: dict[str, tuple[int, ...]] = {}
    for name in [*graph.inputs, *graph.outputs]:
        if src == "NCHW" and graph.tensors[name].layout == "NHWC":
            out[name] = NHWC_PERM
    return out


NPY_MAGIC, NPZ_MAGIC = b"\x93NUMPY", b"PK\x03\x04"


def load_array_file(path: Path) -> np.ndarray | np.lib.npyio.NpzFile:
    """An `.npy` or `.npz` file, told apart by its first bytes: anything else (a text file, an
    image, a pickle) is refused as what it is, never read with pickle."""
    if not path.exists():
        raise UsageError(f"{path}: no such file")
    if not path.is_file():
        raise UsageError(f"{path}: not a regular file; give a .npy or .npz file")
    with path.open("rb") as f:
        head = f.read(6)
    if not (head.startswith(NPY_MAGIC) or head.startswith(NPZ_MAGIC)):
        raise UsageError(
            f"{path}: not a .npy/.npz file",
            "write arrays with numpy.save (one input) or numpy.savez (by input name)",
        )
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise UsageError(f"{path}: a damaged .npy/.npz file ({e})") from None


def read_inputs(graph: Graph, path: str | Path) -> dict[str, np.ndarray]:
    """`.npy` for a single-input model, `.npz` keyed by input name for any model."""
    path = Path(path)
    data = load_array_file(path)
    if isinstance(data, np.ndarray):
        if len(graph.inputs) != 1:
            raise UsageError(f"{path}: model has inputs {graph.inputs}; pass an .npz keyed by name")
        return {graph.inputs[0]: data}
    arrays = {k: data[k] for k in data.files}
    missing = [i for i in graph.inputs if i not in arrays]
    if missing:
        raise UsageError(f"{path}: no array for input(s) {missing} (has {sorted(arrays)})")
    return {i: arrays[i] for i in graph.inputs}


def model_shape(graph: Graph, name: str) -> tuple[int, ...]:
    """A graph I/O tensor's shape as the user's framework sees it (NCHW for PyTorch)."""
    shape = graph.tensors[name].shape
    perm = layout_boundary(graph).get(name)
    return shape if perm is None else tuple(shape[int(i)] for i in np.argsort(perm))


def to_graph_layout(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Check inputs in the model's own terms, then lay them out as the graph wants."""
    for k, v in feeds.items():
        want = model_shape(graph, k)
        if tuple(np.shape(v)) != want:
            raise UsageError(f"input {k!r} has shape {list(np.shape(v))}, model wants {list(want)}")
    perms = layout_boundary(graph)
    return {
        k: (np.ascontiguousarray(v.transpose(perms[k])) if k in perms and v.ndim == 4 else v)
        for k, v in feeds.items()
    }


def from_graph_layout(graph: Graph, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    perms = layout_boundary(graph)
    back = {k: tuple(int(i) for i in np.argsort(p)) for k, p in perms.items()}
    return {
        k: (np.ascontiguousarray(v.transpose(back[k])) if k in back else v) for k, v in outs.items()
    }


def write_outputs(path: str | Path, outs: dict[str, np.ndarray]) -> None:
    path = Path(path)
    if path.suffix == ".npz" or len(outs) > 1:
        if path.suffix != ".npz":
            raise UsageError(f"{path}: the model has {len(outs)} outputs; write them to an .npz")
        np.savez(path, **outs)
    else:
        np.save(path, next(iter(outs.values())))


def quantize_inputs(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float arrays onto integer graph inputs, as firmware does with the header's macros
    (round(x / scale) + zero point, saturated). Integer arrays pass as they are."""
    out = {}
    for k, v in feeds.items():
        t = graph.tensors[k]
        if t.dtype in QUANTIZED_DTYPES and np.asarray(v).dtype.kind == "f":
            out[k] = quantize_int(None, [np.asarray(v, np.float32)], [t.copy(dtype="f32")], [t])[0]  # type: ignore[arg-type]
        else:
            out[k] = v
    return out


def dequantize_outputs(graph: Graph, outs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {
        k: dequantize_int(None, [v], [graph.tensors[k]], [])[0]
        if graph.tensors[k].dtype in QUANTIZED_DTYPES
        else v  # type: ignore[arg-type]
        for k, v in outs.items()
    }
