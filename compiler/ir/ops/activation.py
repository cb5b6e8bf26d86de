"""Pointwise activations and softmax; also the fused-activation clamp that conv/dense carry."""

from __future__ import annotations

import numpy as np

from compiler.ir.graph import Node
from compiler.ir.ops._util import same
from compiler.ir.registry import AttrSpec, op

FUSED_ACTS = ("none", "relu", "relu6", "clip")
# attributes every op with a fused activation carries
FUSED_ACT_ATTRS = {
    "act": AttrSpec("str", "none", FUSED_ACTS),
    "clip": AttrSpec("floats", None),  # [lo, hi], only with act="clip"
}


def act_range(attrs: dict[str, object]) -> tuple[float, float] | None:
    """The clamp a fused activation applies, or None."""
    act = attrs.get("act", "none")
    if act == "relu":
        return 0.0, float("inf")
    if act == "relu6":
        return 0.0, 6.0
    if act == "clip":
        lo, hi = attrs["clip"]  # type: ignore[misc]
        return float(lo), float(hi)
    return None


def apply_fused_act(y: np.ndarray, attrs: dict[str, object]) -> np.ndarray:
    r = act_range(attrs)
    return y if r is None else np.clip(y, r[0], r[1]).astype(y.dtype)


def _f32(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float32, copy=False)


@op("relu", infer=lambda n, t, v: same(t))
def relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.maximum(x[0], np.float32(0))]


@op(
    "clip",
    attrs={"min": AttrSpec("float", float("-inf")), "max": AttrSpec("float", float("inf"))},
    infer=lambda n, t, v: same(t),
)
def clip(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(np.clip(x[0], node.attrs["min"], node.attrs["max"]))]


@op("leaky_relu", attrs={"alpha": AttrSpec("float", 0.01)}, infer=lambda n, t, v: same(t))
def leaky_relu(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a = np.float32(node.attrs["alpha"])
    return [np.where(x[0] >= 0, x[0], x[0] * a)]


@op("sigmoid", infer=lambda n, t, v: same(t))
def sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [_f32(1.0 / (1.0 + np.exp(-x[0].astype(np.float64))))]


@op("tanh", infer=lambda n, t, v: same(t))
def tanh(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    return [np.tanh(x[0])]


@op(
    "hard_sigmoid",
    attrs={"alpha": AttrSpec("float", 0.2), "beta": AttrSpec("float", 0.5)},
    infer=lambda n, t, v: same(t),
)
def hard_sigmoid(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    a, b = np.float32(node.attrs["alpha"]), np.float32(node.attrs["beta"])
    return [_f32(np.clip(x[0] * a + b, 0, 1))]


@op("hard_swish", infer=lambda n, t, v: same(t))
def hard_swish(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    """x * relu6(x + 3) / 6 (ONNX HardSwish: alpha 1/6, beta 0.5)."""
    return [_f32(x[0] * np.clip(x[0] * np.float32(1 / 6) + np.float32(0.5), 0, 1))]


@op("softmax", attrs={"axis": AttrSpec("int", -1)}, infer=lambda n, t, v: same(t))
def softmax(node: Node, x: list[np.ndarray]) -> list[np.ndarray]:
    axis = int(node.attrs["axis"])  # type: ignore[arg-type]
    z = x[0] - x[0].max(axis=axis, keepdims=True)
    e = np.exp(z)
    return [_f32(e / e.sum(axis=axis, keepdims=True))]
