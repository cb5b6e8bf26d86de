"""Calibration: sample data in the model's own terms, and the value ranges a float run sees.

Data comes as `.npy` (N samples of one input), `.npz` (per input name), a folder of images
(resized, normalized by --mean/--std, laid out like the model's input), or `random` (seeded
normal noise, only when asked for: it calibrates ranges that real data will not have).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import ModelError, UsageError
from compiler.ir.boundary import load_array_file, model_shape, to_graph_layout
from compiler.ir.graph import Graph, Node
from compiler.ir.interpreter import run_graph

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".tif", ".tiff"}


def _images(
    folder: Path,
    shape: tuple[int, ...],
    nchw: bool,
    mean: list[float],
    std: list[float],
    limit: int,
) -> np.ndarray:
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise UsageError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if len(shape) != 4:
        raise UsageError(f"{folder}: image calibration needs a 4-D model input, got {list(shape)}")
    c, h, w = (shape[1], shape[2], shape[3]) if nchw else (shape[3], shape[1], shape[2])
    out = []
    for f in files:
        try:
            img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
        except OSError as e:
            raise UsageError(f"{f}: cannot read image ({e})") from None
        a = np.asarray(img, np.float32).reshape(h, w, c) / 255.0
        a = (a - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        out.append(a.transpose(2, 0, 1) if nchw else a)
    return np.stack(out).astype(np.float32)


def load_samples(
    graph: Graph,
    spec: str | None,
    *,
    mean: list[float] | None = None,
    std: list[float] | None = None,
    limit: int = 256,
    seed: int = 0,
    what: str = "--calib",
) -> list[dict[str, np.ndarray]]:
    """Samples as feeds in the model's own layout (one dict per sample, batch 1)."""
    if spec is None:
        raise UsageError(
            f"quantization needs calibration data: {what} data.npy|data.npz|image_folder",
            f"or {what} random to calibrate on noise (ranges will not match real inputs)",
        )
    shapes = {i: model_shape(graph, i) for i in graph.inputs}
    if spec == "random":
        rng = np.random.default_rng(seed)
        return [
            {i: rng.standard_normal(s).astype(np.float32) for i, s in shapes.items()}
            for _ in range(min(limit, 32))
        ]
    path = Path(spec)
    if path.is_dir():
        if len(shapes) != 1:
            raise UsageError(f"{path}: image folders calibrate single-input models only")
        ((name, shape),) = shapes.items()
        nchw = graph.meta.get("source_layout", "NCHW") == "NCHW"
        c = (shape[1] if nchw else shape[-1]) if len(shape) == 4 else 1
        arr = _images(path, shape, nchw, mean or [0.0] * c, std or [1.0] * c, limit)
        return [{name: a[None]} for a in arr]
    if not path.exists():
        raise UsageError(f"{path}: no such file or folder")
    data = load_array_file(path)
    arrays = (
        {graph.inputs[0]: data}
        if isinstance(data, np.ndarray)
        else {k: data[k] for k in data.files}
    )
    if isinstance(data, np.ndarray) and len(shapes) != 1:
        raise UsageError(f"{path}: the model has inputs {graph.inputs}; give an .npz keyed by name")
    samples: list[dict[str, np.ndarray]] = []
    for name, shape in shapes.items():
        if name not in arrays:
            raise UsageError(f"{path}: no array for input {name!r} (has {sorted(arrays)})")
        a = np.asarray(arrays[name], np.float32)
        if a.shape == shape:
            a = a[None]
        if a.shape[1:] != shape[1:]:
            raise UsageError(
                f"{path}: samples of {name!r} are {list(a.shape[1:])}, the model wants "
                f"{list(shape[1:])} (give them in the model's own layout, NCHW for PyTorch)"
            )
        for k in range(min(len(a), limit)):
            if len(samples) <= k:
                samples.append({})
            samples[k][name] = a[k : k + 1]
    return samples


@dataclass
class Range:
    lo: float
    hi: float


def observe_ranges(
    graph: Graph,
    samples: list[dict[str, np.ndarray]],
    percentile: float | None = None,
    progress: bool = False,
) -> dict[str, Range]:
    """Min/max (or a symmetric percentile clip) of every float tensor over the samples."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    pools: dict[str, list[np.ndarray]] = {}

    def see(name: str, v: np.ndarray) -> None:
        if v.dtype != np.float32:
            return
        if percentile is not None:
            pools.setdefault(name, []).append(v.reshape(-1))
        lo[name] = min(lo.get(name, np.inf), float(v.min()))
        hi[name] = max(hi.get(name, -np.inf), float(v.max()))

    def observe(node: Node, outs: list[np.ndarray]) -> None:
        for name, v in zip(node.outputs, outs, strict=True):
            see(name, v)

    for feeds in _progress(samples, "calibrating", progress):
        g_feeds = to_graph_layout(graph, feeds)
        for name, v in g_feeds.items():
            see(name, np.asarray(v, np.float32))
        run_graph(graph, g_feeds, observe)
    if percentile is not None:
        for name, parts in pools.items():
            v = np.concatenate(parts)
            lo[name] = float(np.percentile(v, 100 - percentile))
            hi[name] = float(np.percentile(v, percentile))
    for k in lo:
        if not (np.isfinite(lo[k]) and np.isfinite(hi[k])):
            raise ModelError(
                f"calibration: tensor {k!r} takes values that are not finite ({lo[k]} .. "
                f"{hi[k]}): the float model overflows on these inputs",
                "check the weights and the calibration data (--mean/--std scaling)",
            )
    return {k: Range(lo[k], hi[k]) for k in lo}


def _progress(items: list, label: str, show: bool) -> Iterator:  # type: ignore[type-arg]
    if not show:
        yield from items
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(label, total=len(items))
        for item in items:
            yield item
            bar.advance(task)
