"""Every fact about an op lives in its op module (compiler/ir/ops), and every registered op
declares every fact: an omission fails here, not as a silent transpose, a lost in-place write
or a codegen error after planning."""

from __future__ import annotations

import pytest

from compiler.ir.registry import LAYOUT_RULES, MEMORY, Quant, TType, all_ops, op

AXIS_ATTRS = ("axis", "axes", "pads")


@pytest.mark.parametrize("name", sorted(all_ops()))
def test_every_op_declares_every_fact(name: str) -> None:
    d = all_ops()[name]
    assert d.layout in LAYOUT_RULES
    assert d.memory in MEMORY
    assert isinstance(d.quant, Quant)
    assert d.layout_sensitive == (d.layout == "spatial")
    if d.layout in ("elementwise", "axis") and any(a in d.attrs for a in AXIS_ATTRS):
        assert d.permute_attrs is not None, f"{name} names axes but has no permute_attrs"
    if d.layout == "axis":
        assert d.permute_attrs is not None
    if d.quant.output != "none":  # quantized ops compute in integers
        assert d.run_int is not None, f"{name} is quantized but has no integer semantics"
    if d.quant.output == "none":
        assert not d.kernels, f"{name} is never quantized, yet names C kernels"
    if d.memory != "own":  # in place / aliasing: one input, one output, same element count
        assert d.outputs == (1, 1)
    if d.quant.weights is not None:
        assert d.inputs[1] >= 2


def test_an_op_without_its_facts_fails_at_definition() -> None:
    with pytest.raises(TypeError):
        op("__missing_facts", infer=lambda n, t, v: [TType((1,), "f32")])  # type: ignore[call-arg]
    with pytest.raises(RuntimeError, match="layout rule"):
        op(
            "__bad_layout",
            infer=lambda n, t, v: [TType((1,), "f32")],
            layout="nchw-ish",
            memory="own",
            quant=Quant("calibrated"),
            kernels=(),
        )
    with pytest.raises(ValueError, match="fixed"):
        Quant("fixed")


def test_facts_drive_the_passes() -> None:
    """The tables that used to live in passes/ and codegen/ are gone: the passes ask the ops."""
    ops = all_ops()
    assert {n for n, d in ops.items() if d.memory == "in_place"} >= {"relu", "add", "quantize"}
    assert {n for n, d in ops.items() if d.memory == "alias"} == {"reshape", "identity"}
    assert ops["softmax"].quant.fixed == (1.0 / 256, -128)
    assert ops["max_pool2d"].quant.output == "same"
    assert ops["conv2d"].kernels == ("tvc_conv.c",)


# ops that requantize compute their integers once, in params(); data movement and pools move
# codes under shared parameters and have none; dequantize leaves the integer world
MOVES_CODES = {"same"}


@pytest.mark.parametrize("name", sorted(all_ops()))
def test_quantized_ops_have_params_and_a_portable_lowering(name: str) -> None:
    d = all_ops()[name]
    if d.quant.output == "none" or name == "dequantize":
        assert not d.lower, f"{name} never reaches codegen, yet has lowering rules"
        return
    assert d.lower.get("portable"), f"{name} is quantized but has no portable C lowering"
    if d.quant.output not in MOVES_CODES:
        assert d.params is not None, f"{name} requantizes but computes no params()"
    for backend, rules in d.lower.items():
        assert all(r.op == name and r.backend == backend for r in rules)


def test_the_template_op_declares_every_fact() -> None:
    """docs/op_template.py is a working op: importing it registers one that passes the checks
    above, and its integer reference follows its float reference (in a separate process, so
    the registry of this run stays the compiler's own)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = f"""
import runpy, numpy as np
runpy.run_path({str(root / "docs" / "op_template.py")!r})
from compiler.ir.registry import all_ops, make_node
from compiler.ir.tensor import QParams, Tensor
d = all_ops()["softsign_example"]
assert d.layout == "elementwise" and d.memory == "in_place" and d.kernels
assert d.params is not None and d.run_int is not None and d.lower["portable"]
n = make_node("softsign_example", ["x"], ["y"])
x = Tensor("x", (256,), "i8", qparams=QParams((0.05,), (3,)))
y = Tensor("y", (256,), "i8", qparams=QParams((1 / 128,), (0,)))
codes = np.arange(-128, 128).astype(np.int8)
q = d.run_int(n, [codes], [x], [y])[0].astype(np.int64)
f = d.run(n, [(codes.astype(np.float32) - 3) * np.float32(0.05)])[0]
assert np.abs(q / 128.0 - f).max() <= 1 / 128, np.abs(q / 128.0 - f).max()
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
