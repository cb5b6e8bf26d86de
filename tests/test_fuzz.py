"""Never a traceback: mutated models end compiled or with a clean error, never "internal error".

A fixed-seed set of mutants from tools/fuzz.py runs here (the 10,000-mutant campaign is in the
README); every crash the campaigns found is a regression case below, replayed by its
(model, seed) and checked to end in the message that now names what is wrong. Resource bombs
are refused before anything is allocated.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import tvc
from onnx import TensorProto, helper, numpy_helper
from onnx_builder import model, save

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import fuzz  # noqa: E402


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return {**fuzz.onnx_seeds(), **fuzz.tflite_seeds()}


def test_fixed_seed_mutants_end_compiled_or_clean() -> None:
    records = fuzz.campaign(360, seed=7, timeout=20)
    tally = Counter(str(r["outcome"]) for r in records)
    bad = [r for r in records if r["outcome"] not in ("compiled", "clean")]
    assert not bad, bad[:5]
    # the mutants reach past the parsers: some still compile, most are refused with a reason
    assert tally["compiled"] >= 30 and tally["clean"] >= 200, tally
    assert len({r["model"] for r in records}) == 6


# (model, mutation seed): what the campaigns found, and the message it ends with now
REGRESSIONS = [
    ("onnx_glue", 97, "is STRING; tvc reads numeric weights"),  # numpy reshape ValueError
    ("onnx_glue", 187, "takes values that are not finite"),  # NaN into round(): ValueError
    ("onnx_cnn", 426, "holds NaN or infinite values"),  # OverflowError in the multiplier
    ("onnx_glue", 757, "holds NaN or infinite values"),  # negative shift in softmax
    ("onnx_cnn", 702, "are wider than the window"),  # 201 GiB np.pad: MemoryError
    ("tflite_conv", 3000408, "has no options table"),  # AttributeError '_tab'
    ("tflite_add_concat", 3003695, "reads tensor index -1"),  # struct.error, 671 MB offset
    ("tflite_pools", 323, "is not a TFLite builtin operator"),  # ValueError: opcode 256
    ("tflite_pools", 11002750, "operator #3: field 4 lies outside"),  # struct.error in options
    ("onnx_cnn", 11006177, "elements (tvc's limit"),  # OverflowError: int(inf) of a huge count
    ("onnx_cnn", 21002805, "data type 33, which ONNX does not define"),  # ValueError: enum name
]


@pytest.mark.parametrize(("name", "seed", "message"), REGRESSIONS)
def test_crashes_found_by_fuzzing_are_clean_errors(
    seeds, name: str, seed: int, message: str
) -> None:  # type: ignore[no-untyped-def]
    blob = fuzz.mutant(seeds, name, seed)
    outcome, detail = fuzz.run_one(blob, ".onnx" if name.startswith("onnx") else ".tflite", 20)
    assert outcome == "clean" and message in detail, (outcome, detail)


def test_nan_in_sqnr_is_not_a_crash() -> None:
    """onnx_cnn:36 crashed accuracy's log10 on a NaN noise power; the mutant now compiles."""
    from compiler.quant.accuracy import sqnr_db

    assert np.isnan(sqnr_db(1.0, float("nan")))
    assert sqnr_db(1.0, float("inf")) == float("-inf")


def _corrupt_cases(seeds: dict[str, bytes]) -> list[tuple[bytes, str]]:
    """Hand-made corruptions of the TFLite seed, one per check of the validating reader."""
    blob = seeds["tflite_conv"]
    root = int.from_bytes(blob[0:4], "little")
    return [
        (blob[:100], "past the end"),  # truncated
        (b"\xff\xff\xff\x7f" + blob[4:], "past the end"),  # root offset out of the file
        (blob[:root] + b"\x00\x00\x00\x80" + blob[root + 4 :], "past the end"),  # vtable
    ]


def test_validating_tflite_reader_names_what_is_corrupt(seeds, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for k, (blob, message) in enumerate(_corrupt_cases(seeds)):
        path = tmp_path / f"bad{k}.tflite"
        path.write_bytes(blob)
        r = tvc("ir", path)
        assert r.returncode == 3 and "corrupt TFLite file" in r.stderr, r.stderr
        assert message in r.stderr and str(path) in r.stderr and "Traceback" not in r.stderr


def _conv_model(**change: object) -> onnx.ModelProto:
    w = np.ones((4, 3, 3, 3), np.float32)
    attrs = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    attrs.update(change)  # type: ignore[arg-type]
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv", **attrs)]
    return model(nodes, {"x": [1, 3, 8, 8]}, ["y"], {"w": w})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("missing_attr", "'axis'"),
        ("zero_stride", "must be positive"),
        ("short_data", "the file holds"),
        ("nan", "NaN or infinite"),
        ("dangling", "which no node, input or initializer defines"),
        ("duplicate", "which another node or input also defines"),
        ("empty_output", "unnamed output"),
        ("huge_input", "beyond tvc's limits"),
        ("huge_init", "tvc's limit"),
    ],
)
def test_malformed_onnx_is_refused_naming_the_node(tmp_path: Path, edit: str, message: str) -> None:
    m = _conv_model()
    g = m.graph
    if edit == "missing_attr":  # Concat's axis is required
        g.node.append(helper.make_node("Concat", ["y", "y"], ["z"], name="cat"))
        g.output[0].name = "z"
    elif edit == "zero_stride":
        g.node[0].attribute.append(helper.make_attribute("strides", [0, 1]))
    elif edit == "short_data":
        g.initializer[0].dims[0] = 5  # 5x3x3x3 declared, 4x3x3x3 stored
    elif edit == "nan":
        w = numpy_helper.to_array(g.initializer[0]).copy()
        w[0, 0, 0, 0] = np.nan
        g.initializer[0].CopyFrom(numpy_helper.from_array(w, "w"))
    elif edit == "dangling":
        g.node[0].input[1] = "ghost"
    elif edit == "duplicate":
        g.node.append(helper.make_node("Relu", ["y"], ["y"], name="again"))
    elif edit == "empty_output":
        g.node[0].output[0] = ""
    elif edit == "huge_input":
        g.input[0].type.tensor_type.shape.dim[2].dim_value = 10**9
    elif edit == "huge_init":
        big = TensorProto(name="big", data_type=TensorProto.FLOAT)
        big.dims.extend([10**5, 10**5])  # declared, not stored: refused by its count
        g.initializer.append(big)
    path = save(m, tmp_path / f"{edit}.onnx")
    r = tvc("ir", path)
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert message in r.stderr and str(path) in r.stderr and "Traceback" not in r.stderr
    assert "internal error" not in r.stderr


def test_a_million_node_graph_is_refused_before_import(tmp_path: Path) -> None:
    """More nodes than tvc's limit (100,000): refused by count, quickly, with the limit named."""
    n = 100_001
    nodes = [helper.make_node("Relu", [f"t{k}"], [f"t{k + 1}"]) for k in range(n)]
    nodes[0].input[0] = "x"
    nodes[-1].output[0] = "y"
    path = save(model(nodes, {"x": [1, 4]}, ["y"]), tmp_path / "wide.onnx")
    r = tvc("ir", path, timeout=120)
    assert r.returncode == 3 and "100,001 nodes" in r.stderr and "100,000" in r.stderr
