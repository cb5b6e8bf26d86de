"""Every supported ONNX op (and its opset variants) against onnxruntime, through the frontend,
canonicalize and the NHWC layout rules, on shapes chosen so the layout rules really permute."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import ort_run, rel_err, tvc_float
from onnx import helper
from onnx_builder import model, save

from compiler.errors import TvcError
from compiler.frontend.onnx import load_onnx
from compiler.passes.manager import STAGES, run_passes

R = np.random.default_rng(7)
X = [1, 4, 9, 10]  # N, C, H, W: odd sizes catch pad/ceil mistakes


def w(*shape: int) -> np.ndarray:
    return R.standard_normal(shape).astype(np.float32)


def i64(*v: int) -> np.ndarray:
    return np.array(v, np.int64)


N = helper.make_node

# id -> (nodes, initializers, opset, input shape)
CASES: dict[str, tuple] = {
    "conv_asym_pads": (
        [N("Conv", ["x", "w", "b"], ["y"], pads=[0, 1, 2, 1])],
        {"w": w(6, 4, 3, 3), "b": w(6)},
        17,
        X,
    ),
    "conv_dilated_strided": (
        [N("Conv", ["x", "w"], ["y"], dilations=[2, 2], strides=[2, 1])],
        {"w": w(5, 4, 3, 3)},
        17,
        X,
    ),
    "conv_grouped": (
        [N("Conv", ["x", "w", "b"], ["y"], group=2, pads=[1, 1, 1, 1])],
        {"w": w(6, 2, 3, 3), "b": w(6)},
        17,
        X,
    ),
    "conv_depthwise_multiplier": (
        [N("Conv", ["x", "w"], ["y"], group=4, pads=[1, 1, 1, 1])],
        {"w": w(8, 1, 3, 3)},
        17,
        X,
    ),
    "conv_same_upper": (
        [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_UPPER", strides=[2, 2])],
        {"w": w(3, 4, 4, 4)},
        17,
        X,
    ),
    "conv_same_lower": (
        [N("Conv", ["x", "w"], ["y"], auto_pad="SAME_LOWER", strides=[2, 2])],
        {"w": w(3, 4, 4, 4)},
        17,
        X,
    ),
    "conv_valid": ([N("Conv", ["x", "w"], ["y"], auto_pad="VALID")], {"w": w(3, 4, 2, 5)}, 11, X),
    "maxpool": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        {},
        17,
        X,
    ),
    "maxpool_ceil": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
        {},
        17,
        X,
    ),
    # dilated + auto_pad SAME is left out: onnxruntime sizes it against the ONNX spec (8x9 not 9x10)
    "maxpool_dilated": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], pads=[1, 0, 1, 1])],
        {},
        12,
        X,
    ),
    "maxpool_same_upper": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")],
        {},
        12,
        X,
    ),
    "avgpool_excl_pad": (
        [N("AveragePool", ["x"], ["y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])],
        {},
        17,
        X,
    ),
    "avgpool_incl_pad": (
        [
            N(
                "AveragePool",
                ["x"],
                ["y"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            )
        ],
        {},
        17,
        X,
    ),
    "avgpool_ceil": (
        [N("AveragePool", ["x"], ["y"], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)],
        {},
        17,
        X,
    ),
    "global_avg": ([N("GlobalAveragePool", ["x"], ["y"])], {}, 17, X),
    "global_max": ([N("GlobalMaxPool", ["x"], ["y"])], {}, 17, X),
    "gemm_transb0_alpha_beta": (
        [N("Flatten", ["x"], ["f"]), N("Gemm", ["f", "b", "c"], ["y"], alpha=0.5, beta=2.0)],
        {"b": w(360, 7), "c": w(1, 7)},
        17,
        X,
    ),
    "gemm_runtime_c": (
        [
            N("Flatten", ["x"], ["f"]),
            N("Gemm", ["f", "b", "f2"], ["y"], transB=1, beta=0.5),
            N("Slice", ["f", "s", "e", "ax"], ["f2"]),
        ],
        {"b": w(7, 360), "s": i64(0), "e": i64(7), "ax": i64(1)},
        13,
        X,
    ),
    "matmul_const": (
        [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), N("MatMul", ["t", "m"], ["y"])],
        {"m": w(4, 5)},
        17,
        X,
    ),
    "matmul_two_activations": (
        [N("MatMul", ["x", "x2"], ["y"]), N("Transpose", ["x"], ["x2"], perm=[0, 1, 3, 2])],
        {},
        17,
        X,
    ),
    "batchnorm_alone": (
        [N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)],
        {"s": w(4), "b": w(4), "m": w(4), "v": np.abs(w(4)) + 0.5},
        15,
        X,
    ),
    "activations": (
        [
            N("Relu", ["x"], ["a"]),
            N("Sigmoid", ["a"], ["b"]),
            N("Tanh", ["x"], ["c"]),
            N("LeakyRelu", ["c"], ["d"], alpha=0.2),
            N("HardSigmoid", ["x"], ["e"], alpha=1 / 6, beta=0.5),
            N("HardSwish", ["x"], ["f"]),
            N("Add", ["b", "d"], ["g"]),
            N("Add", ["e", "f"], ["h"]),
            N("Mul", ["g", "h"], ["y"]),
        ],
        {},
        14,
        X,
    ),
    "clip_inputs": (
        [N("Conv", ["x", "w"], ["c"]), N("Clip", ["c", "lo", "hi"], ["y"])],
        {"w": w(3, 4, 1, 1), "lo": np.float32(-0.5), "hi": np.float32(0.7)},
        11,
        X,
    ),
    "clip_min_only": ([N("Clip", ["x", "lo"], ["y"])], {"lo": np.float32(0.1)}, 13, X),
    "softmax_channels_13": ([N("Softmax", ["x"], ["y"], axis=1)], {}, 13, X),
    "softmax_flatten_11": ([N("Softmax", ["x"], ["y"], axis=1)], {}, 11, X),
    "binary_broadcast_consts": (
        [
            N("Add", ["x", "c1"], ["a"]),
            N("Mul", ["a", "c2"], ["b"]),
            N("Sub", ["b", "c3"], ["c"]),
            N("Div", ["c", "c4"], ["y"]),
        ],
        {"c1": w(4, 1, 1), "c2": w(1, 4, 1, 1), "c3": np.float32(0.3), "c4": np.abs(w(10)) + 1},
        17,
        X,
    ),
    "binary_two_activations": (
        [N("Relu", ["x"], ["r"]), N("Mul", ["x", "r"], ["m"]), N("Sub", ["m", "x"], ["y"])],
        {},
        17,
        X,
    ),
    "reduce_mean_hw_keep": ([N("ReduceMean", ["x"], ["y"], axes=[2, 3])], {}, 13, X),
    "reduce_mean_hw_drop": ([N("ReduceMean", ["x"], ["y"], axes=[-1, -2], keepdims=0)], {}, 13, X),
    "reduce_mean_channels_drop": (
        [N("ReduceMean", ["x", "ax"], ["y"], keepdims=0)],
        {"ax": i64(1)},
        18,
        X,
    ),
    "reduce_mean_w_drop": ([N("ReduceMean", ["x"], ["y"], axes=[3], keepdims=0)], {}, 17, X),
    "flatten_as_output": ([N("Flatten", ["x"], ["y"])], {}, 17, X),
    "reshape_transpose_nhwc_out": (
        [N("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1]), N("Reshape", ["t", "s"], ["y"])],
        {"s": i64(1, -1, 4)},
        17,
        X,
    ),
    "concat_channels": (
        [N("Relu", ["x"], ["r"]), N("Concat", ["x", "r", "x"], ["y"], axis=1)],
        {},
        17,
        X,
    ),
    "concat_height": ([N("Concat", ["x", "x"], ["y"], axis=-2)], {}, 17, X),
    "split_attr_11": (
        [
            N("Split", ["x"], ["a", "b"], axis=1, split=[1, 3]),
            N("Add", ["a", "b2"], ["y"]),
            N("Slice", ["b", "s", "e", "ax"], ["b2"]),
        ],
        {"s": i64(0), "e": i64(1), "ax": i64(1)},
        11,
        X,
    ),
    "split_input_13": (
        [N("Split", ["x", "sp"], ["a", "y"], axis=2), N("Relu", ["a"], ["z"])],
        {"sp": i64(4, 5)},
        13,
        X,
    ),
    "split_num_outputs_18": (
        [N("Split", ["x"], ["a", "y"], axis=1, num_outputs=2), N("Relu", ["a"], ["z"])],
        {},
        18,
        X,
    ),
    "slice_negative_step": (
        [N("Slice", ["x", "s", "e", "ax", "st"], ["y"])],
        {"s": i64(-1, 8), "e": i64(-100, 1), "ax": i64(1, 3), "st": i64(-1, -2)},
        13,
        X,
    ),
    "squeeze_unsqueeze_11": (
        [
            N("GlobalAveragePool", ["x"], ["g"]),
            N("Squeeze", ["g"], ["s"], axes=[2, 3]),
            N("Unsqueeze", ["s"], ["y"], axes=[0]),
        ],
        {},
        11,
        X,
    ),
    "squeeze_unsqueeze_13": (
        [
            N("GlobalAveragePool", ["x"], ["g"]),
            N("Squeeze", ["g", "a"], ["s"]),
            N("Unsqueeze", ["s", "b"], ["y"]),
        ],
        {"a": i64(3, 2), "b": i64(-1)},
        13,
        X,
    ),
    "pad_constant": (
        [N("Pad", ["x", "p", "v"], ["y"])],
        {"p": i64(0, 1, 2, 0, 0, 0, 1, 3), "v": np.float32(1.5)},
        13,
        X,
    ),
    "pad_reflect": (
        [N("Pad", ["x", "p"], ["y"], mode="reflect")],
        {"p": i64(0, 0, 2, 1, 0, 0, 1, 2)},
        13,
        X,
    ),
    "pad_edge_axes_18": (
        [N("Pad", ["x", "p", "", "ax"], ["y"], mode="edge")],
        {"p": i64(1, 2, 3, 0), "ax": i64(2, 3)},
        18,
        X,
    ),
    "identity_dropout_cast": (
        [N("Identity", ["x"], ["i"]), N("Dropout", ["i"], ["d"]), N("Cast", ["d"], ["y"], to=1)],
        {},
        13,
        X,
    ),
    "shape_glue": (
        [
            N("Shape", ["x"], ["sh"]),
            N("ConstantOfShape", ["sh"], ["ones"], value=helper.make_tensor("v", 1, [1], [2.0])),
            N("Mul", ["x", "ones"], ["m"]),
            N("Gather", ["sh", "one"], ["c"]),
            N("Range", ["zero", "c", "step"], ["idx"]),
            N("Gather", ["m", "idx"], ["g"], axis=1),
            N("Expand", ["bias", "sh"], ["eb"]),
            N("Add", ["g", "eb"], ["y"]),
        ],
        {"one": i64(1)[0], "zero": i64(0)[0], "step": i64(1)[0], "bias": w(1, 1, 10)},
        13,
        X,
    ),
    "resize_nearest_scales": (
        [
            N(
                "Resize",
                ["x", "", "sc"],
                ["y"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        ],
        {"sc": np.array([1, 1, 2, 3], np.float32)},
        13,
        X,
    ),
    "resize_nearest_sizes_half_pixel": (
        [N("Resize", ["x", "", "", "sz"], ["y"], mode="nearest")],
        {"sz": i64(1, 4, 27, 20)},
        13,
        X,
    ),
    "constant_node": (
        [
            N(
                "Constant",
                [],
                ["k"],
                value=helper.make_tensor("k", 1, [4, 1, 1], [1.0, 2.0, 3.0, 4.0]),
            ),
            N("Mul", ["x", "k"], ["y"]),
        ],
        {},
        13,
        X,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(tmp_path, case: str) -> None:
    nodes, inits, opset, shape = CASES[case]
    m = model(nodes, {"x": shape}, ["y"], inits, opset)
    path = save(m, tmp_path / f"{case}.onnx")
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    (ref,) = ort_run(path, {"x": x})
    graph = load_onnx(path)
    for stage in STAGES:
        g = run_passes(graph, stage)
        (ours,) = tvc_float(g, {"x": x})
        assert rel_err(ours, ref) <= 1e-5, f"after {stage}"


def test_unsupported_resize_modes_are_refused_with_a_hint(tmp_path) -> None:
    """Bilinear resizing is supported now (tests/test_resize_bilinear.py); cubic, and linear
    with tf_crop_and_resize, are refused naming the node and what tvc does support."""
    for k, attrs in enumerate(
        [
            {"mode": "cubic"},
            {"mode": "linear", "coordinate_transformation_mode": "tf_crop_and_resize"},
        ]
    ):
        m = model(
            [N("Resize", ["x", "", "sc"], ["y"], **attrs)],
            {"x": X},
            ["y"],
            {"sc": np.array([1, 1, 2, 2], np.float32)},
            13,
        )
        path = save(m, tmp_path / f"resize{k}.onnx")
        with pytest.raises(TvcError) as e:
            load_onnx(path)
        msg = str(e.value)
        assert "Resize" in msg and ("mode=cubic" in msg or "tf_crop_and_resize" in msg)
        assert "bilinear" in msg or "half_pixel" in msg, msg


def test_layout_rules_need_no_transpose_for_axis_ops(tmp_path) -> None:
    """Axis-carrying ops on NHWC data get remapped axes, not transposes around them."""
    for case in (
        "concat_channels",
        "split_input_13",
        "slice_negative_step",
        "pad_constant",
        "softmax_channels_13",
        "reduce_mean_channels_drop",
        "binary_broadcast_consts",
        "reshape_transpose_nhwc_out",
    ):
        nodes, inits, opset, shape = CASES[case]
        path = save(model(nodes, {"x": shape}, ["y"], inits, opset), tmp_path / f"{case}.onnx")
        g = run_passes(load_onnx(path), "layout")
        assert "transpose" not in g.ops(), case
