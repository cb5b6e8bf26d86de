"""IR invariants: the verifier catches each broken rule; the text form round-trips exactly."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import IRError
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph
from compiler.ir.registry import all_ops, check_attrs, make_node
from compiler.ir.tensor import QParams, Tensor, const_tensor
from compiler.ir.text import parse_graph, print_graph
from compiler.ir.verify import verify


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    w = const_tensor("w", rng.standard_normal((8, 3, 3, 3)).astype(np.float32))
    b = const_tensor("b", rng.standard_normal(8).astype(np.float32))
    return Graph(
        "small",
        ["x"],
        ["y"],
        {
            "x": Tensor("x", (1, 3, 8, 8), "f32", "NCHW"),
            "w": w,
            "b": b,
            "c": Tensor("c", (1, 8, 8, 8), "f32", "NCHW"),
            "y": Tensor("y", (1, 8, 4, 4), "f32", "NCHW"),
        },
        [
            make_node(
                "conv2d",
                ["x", "w", "b"],
                ["c"],
                "/conv",
                kernel=[3, 3],
                pad=[1, 1, 1, 1],
                layout="NCHW",
                act="relu",
            ),
            make_node("max_pool2d", ["c"], ["y"], kernel=[2, 2], stride=[2, 2], layout="NCHW"),
        ],
        {"source_layout": "NCHW"},
    )


def test_every_op_has_schema_inference_and_reference() -> None:
    ops = all_ops()
    assert {"conv2d", "dense", "reshape", "permute_channels", "shape"} <= set(ops)
    for d in ops.values():
        assert callable(d.infer) and callable(d.run) and d.doc is not None


def test_small_graph_verifies_and_runs() -> None:
    g = small_graph()
    verify(g)
    y = run_graph(g, {"x": np.ones((1, 3, 8, 8), np.float32)})["y"]
    assert y.shape == (1, 8, 4, 4) and (y >= 0).all()  # fused relu


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda g: g.nodes.reverse(), "before it is defined"),
        (lambda g: setattr(g.tensors["y"], "shape", (1, 8, 3, 3)), "op says"),
        (lambda g: g.nodes[0].attrs.update(groups=2), "does not match input channels"),
        (lambda g: g.nodes[0].attrs.update(kernel=3), "not of kind ints"),
        (lambda g: g.nodes[0].attrs.update(bogus=1), "unknown attribute"),
        (lambda g: g.nodes[1].attrs.update(layout="NHWC"), "layout=NHWC but input is NCHW"),
        (lambda g: g.nodes[1].outputs.__setitem__(0, "c"), "redefines"),
        (lambda g: setattr(g.tensors["y"], "dtype", "i8"), "op says"),
        (lambda g: g.outputs.append("nowhere"), "never produced"),
        (lambda g: g.nodes[0].inputs.pop(), "bias")
        if False
        else (lambda g: g.nodes[0].inputs.append("b"), "inputs, wants"),
    ],
)
def test_verifier_names_what_is_broken(breakage, message: str) -> None:
    g = small_graph()
    breakage(g)
    with pytest.raises(IRError, match=message):
        verify(g, "a test")


def test_verifier_wants_quant_params_on_integer_activations() -> None:
    g = small_graph()
    for n in ("c", "y"):
        g.tensors[n].dtype = "i8"
    g.tensors["x"].dtype = "i8"
    with pytest.raises(IRError, match="input dtype i8|no quantization parameters"):
        verify(g)


def test_attributes_are_validated_and_defaults_filled() -> None:
    attrs = check_attrs("conv2d", {"kernel": [3, 3]})
    assert attrs["stride"] == [1, 1] and attrs["act"] == "none" and "clip" not in attrs
    with pytest.raises(IRError, match="missing attribute 'kernel'"):
        check_attrs("conv2d", {})
    with pytest.raises(IRError, match="not one of"):
        check_attrs("conv2d", {"kernel": [1, 1], "act": "gelu"})
    assert check_attrs("clip", {"min": 0})["min"] == 0.0  # int coerced to float


def test_round_trip_with_quant_params_and_odd_names() -> None:
    g = small_graph()
    g.rename("c", 'onnx::Conv/out:0 "quoted"')
    g.tensors["y"].qparams = QParams((0.0078125,), (-3,))
    g.tensors["x"].qparams = QParams((0.5, 0.25, 1e-7), (0, 0, 0), axis=1)
    g.tensors["b"].qparams = QParams(exp=-7)
    g.tensors["i"] = const_tensor("i", np.arange(40, dtype=np.int64).reshape(2, 20))
    g.nodes.append(make_node("shape", ["i"], ["s"]))
    g.tensors["s"] = Tensor("s", (2,), "i64")
    g.outputs.append("s")
    text = print_graph(g)
    back = parse_graph(text)
    assert back.same_as(g)
    assert print_graph(back) == text
    assert '%"onnx::Conv/out:0 \\"quoted\\""' in text and "q(exp=-7)" in text and "axis=1" in text


def test_round_trip_is_bit_exact_for_floats() -> None:
    g = small_graph()
    special = np.array(
        [1e-45, -0.0, 3.4028235e38, np.float32(0.1), -1.5, np.inf, -np.inf, 7.0], np.float32
    )
    g.tensors["b"] = const_tensor("b", special)
    back = parse_graph(print_graph(g))
    assert back.tensors["b"].data.tobytes() == special.tobytes()


def test_defaults_are_not_printed_and_elided_data_is_refused() -> None:
    g = small_graph()
    text = print_graph(g, full=False)
    assert "dilation" not in text and "groups" not in text and "= ..." in text
    with pytest.raises(IRError, match="elided"):
        parse_graph(text)


def test_parse_errors_point_at_the_line() -> None:
    with pytest.raises(IRError, match=r"<text>:2:\d+: cannot parse"):
        parse_graph("graph g(%x: f32[1]) -> (%y: f32[1]) {\n  %y: f32[1] = relu(%x) {k=}\n}\n")
    with pytest.raises(IRError, match="unknown IR op 'top_k'"):
        parse_graph("graph g(%x: f32[1]) -> (%y: f32[1]) {\n  %y: f32[1] = top_k(%x)\n}\n")
