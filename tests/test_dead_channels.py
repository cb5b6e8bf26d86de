"""Exact dead-channel elimination (passes/dead_channels): constructed Keras models whose
convolutions have all-zero output channels, converted to full int8 by TFLiteConverter.

Each model is checked three ways: the channels that can go are gone (and those that must stay
are kept), the optimized graph is bit-exact with tf.lite's reference kernels, and the C on the
host and on the Cortex-M4 twin is bit-exact with it. A wrong folded bias fails the checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from c_oracles import assert_c_bit_exact, compile_for_tests
from tvc_models.keras_zoo import full_int8, reference_interpreter

from compiler.compile import CompileOptions, run_pipeline
from compiler.ir.graph import Graph
from compiler.ir.interpreter import run_graph
from compiler.ir.ops import conv as conv_mod
from compiler.passes.dead_channels import constant_channels, eliminate_dead_channels

N_INPUTS = 32
# channel -> bias of an all-zero output channel of a 16-channel conv: after ReLU, a negative
# bias gives the zero point (0.0), a positive one another constant. The pass leaves channels in
# multiples of 4 (the kernels' lanes): four constants at the zero point here, six in all.
DEAD = {1: -0.5, 2: -0.3, 3: 0.75, 4: -0.25, 7: -0.1, 9: 0.5}
AT_ZP = {1, 2, 4, 7}


def _kill(layer, dead: dict[int, float] = DEAD) -> None:  # type: ignore[no-untyped-def]
    """Zero the weights of some output channels and give them a bias."""
    w, b = layer.get_weights()
    for k, bias in dead.items():
        w[..., k] = 0
        b[k] = bias
    layer.set_weights([w, b])


def _pointwise_chain():  # type: ignore[no-untyped-def]
    """dead channels into a 1x1 conv and a dense layer (both fold every constant)."""
    import keras

    keras.utils.set_random_seed(1)
    L = keras.layers
    inp = keras.Input((10, 10, 3))
    c1 = L.Conv2D(16, 3, padding="same", activation="relu")
    c2 = L.Conv2D(6, 1, activation="relu")
    x = c2(c1(inp))
    x = L.Dense(4)(L.Flatten()(L.GlobalAveragePooling2D(keepdims=True)(x)))
    model = keras.Model(inp, x)
    _kill(c1, {1: -0.5, 3: 0.75, 4: -0.25, 9: 0.5})
    return model


def _padded_3x3():  # type: ignore[no-untyped-def]
    """dead channels into a padded 3x3 conv: only those equal to the zero point can go."""
    import keras

    keras.utils.set_random_seed(2)
    L = keras.layers
    inp = keras.Input((9, 9, 4))
    c1 = L.Conv2D(16, 1, activation="relu")
    x = L.Conv2D(5, 3, padding="same")(c1(inp))
    model = keras.Model(inp, x)
    _kill(c1)
    return model


def _depthwise():  # type: ignore[no-untyped-def]
    """dead channels through a padded depthwise conv, whose constant outputs fold into a 1x1."""
    import keras

    keras.utils.set_random_seed(3)
    L = keras.layers
    inp = keras.Input((12, 12, 3))
    c1 = L.Conv2D(16, 3, strides=2, padding="same", activation="relu")
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(c1(inp))
    x = L.Conv2D(6, 1)(x)
    model = keras.Model(inp, x)
    _kill(c1)
    return model


def _add_concat():  # type: ignore[no-untyped-def]
    """dead channels into an add (dead in both branches, or in one) and a concat."""
    import keras

    keras.utils.set_random_seed(4)
    L = keras.layers
    inp = keras.Input((8, 8, 4))
    a, b, c = (L.Conv2D(16, 1, activation="relu") for _ in range(3))
    s = L.Add()([a(inp), b(inp)])
    x = L.Concatenate()([s, c(inp)])
    x = L.Conv2D(5, 1)(x)
    model = keras.Model(inp, x)
    _kill(a, {1: -0.5, 3: 0.75, 4: -0.25, 6: 0.5, 8: -0.5, 10: 0.3})
    # 1, 3, 8 and 10 are dead in both branches; 4, 5 and 6 in one
    _kill(b, {1: -0.25, 3: 0.5, 5: 0.5, 8: 0.2, 10: -0.4})
    _kill(c)
    return model


MODELS = {
    "pointwise": _pointwise_chain,
    "padded_3x3": _padded_3x3,
    "depthwise": _depthwise,
    "add_concat": _add_concat,
}


@pytest.fixture(scope="module")
def tflite_path(tmp_path_factory):  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("dead")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            path = root / f"{name}.tflite"
            path.write_bytes(full_int8(MODELS[name]()))
            cache[name] = path
        return cache[name]

    return get


def _graphs(path: Path) -> tuple[Graph, Graph]:
    q = run_pipeline(CompileOptions(model=str(path), target="mps2-an386"), "quantize").graph
    return q, eliminate_dead_channels(q)


def _assert_tflite_exact(path: Path, graph: Graph, seed: int = 5) -> None:
    interp = reference_interpreter(path.read_bytes())
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rng = np.random.default_rng(seed)
    for _ in range(N_INPUTS):
        x = rng.integers(-128, 128, inp["shape"]).astype(np.int8)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        ours = run_graph(graph, {graph.inputs[0]: x})[graph.outputs[0]]
        np.testing.assert_array_equal(ours, interp.get_tensor(out["index"]))


def _channels(g: Graph) -> list[tuple[str, int]]:
    return [(n.op, g.tensors[n.outputs[0]].shape[-1]) for n in g.nodes]


def _zp_channels(q: Graph, tensor: str) -> set[int]:
    """The constant channels of a tensor that hold its zero point."""
    zp = q.tensors[tensor].qparams.zero_point[0]  # type: ignore[union-attr]
    return {k for k, v in constant_channels(q).get(tensor, {}).items() if v == zp}


def test_constants_fold_into_1x1_and_dense(tflite_path) -> None:
    path = tflite_path("pointwise")
    q, o = _graphs(path)
    # every dead channel goes, whatever its constant: 1x1 and dense read it at every pixel
    assert _channels(q)[0] == ("conv2d", 16) and _channels(o)[0] == ("conv2d", 12)
    _assert_tflite_exact(path, o)


def test_padded_3x3_drops_only_zero_point_constants(tflite_path) -> None:
    path = tflite_path("padded_3x3")
    q, o = _graphs(path)
    first = q.nodes[0].outputs[0]
    at_zp = _zp_channels(q, first)
    assert at_zp == AT_ZP  # the negative biases, clamped by ReLU to the zero point
    # channels 3 and 9 hold other constants: the padded border would read zp instead
    assert _channels(o)[0] == ("conv2d", 16 - len(at_zp))
    _assert_tflite_exact(path, o)


def test_constants_pass_through_depthwise(tflite_path) -> None:
    path = tflite_path("depthwise")
    q, o = _graphs(path)
    assert [c for _, c in _channels(q)] == [16, 16, 6]
    at_zp = _zp_channels(q, q.nodes[0].outputs[0])
    assert at_zp == AT_ZP
    # zero-point channels leave the conv and the depthwise conv; the depthwise outputs they
    # leave behind are constants that the last 1x1 takes into its bias
    assert [c for _, c in _channels(o)] == [12, 12, 6]
    assert o.nodes[1].attrs["groups"] == 12
    _assert_tflite_exact(path, o)


def test_add_needs_both_branches_and_concat_shifts_channels(tflite_path) -> None:
    path = tflite_path("add_concat")
    q, o = _graphs(path)
    shapes = {op: c for op, c in _channels(o) if op in ("add", "concat")}
    # the add keeps a channel unless both of its operands are constant there (1, 3, 8, 10)
    assert shapes["add"] == 12
    # the concat loses those four, and four of the third branch's six dead channels (the
    # other two stay so that its channels remain a multiple of 4)
    assert shapes["concat"] == 32 - 4 - 4
    _assert_tflite_exact(path, o)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_c_is_bit_exact_after_elimination(tflite_path, tmp_path, name: str) -> None:
    # layer by layer: the channel count below is of the graph's layers, not of their bands
    out = compile_for_tests(tflite_path(name), tmp_path / name, calib=None, max_recompute=0)
    g = assert_c_bit_exact(out, n=4)
    _assert_tflite_exact(tflite_path(name), g)  # the compiled graph is the optimized one
    assert sum(g.tensors[n.outputs[0]].shape[-1] for n in g.nodes) < sum(
        c for _, c in _channels(_graphs(tflite_path(name))[0])
    )


def test_a_wrong_folded_bias_is_caught(tflite_path, monkeypatch) -> None:
    """The mutation check: fold each constant one off, and the oracle sees it."""
    path = tflite_path("pointwise")
    real = conv_mod._folded_bias

    def off_by_one(graph, node, consts):  # type: ignore[no-untyped-def]
        b = real(graph, node, consts)
        return b + 1 if consts else b

    monkeypatch.setattr(conv_mod, "_folded_bias", off_by_one)
    _, o = _graphs(path)
    with pytest.raises(AssertionError):
        _assert_tflite_exact(path, o)
