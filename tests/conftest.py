"""Shared fixtures: models are built and exported at test time (seeded), once per session."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """exported(name, exporter="torchscript", opset=None) -> path of the ONNX file."""
    from tvc_models.export import export
    from tvc_models.zoo import build

    cache: dict[tuple[str, str, int | None], Path] = {}
    root = tmp_path_factory.mktemp("onnx")

    def get(name: str, exporter: str = "torchscript", opset: int | None = None) -> Path:
        key = (name, exporter, opset)
        if key not in cache:
            model, shape = build(name)
            path = root / f"{name}_{exporter}_{opset or 'default'}.onnx"
            cache[key] = export(model, shape, path, exporter, opset)
        return cache[key]

    return get
