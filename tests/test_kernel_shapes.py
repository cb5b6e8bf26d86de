"""The DSP kernels' special cases on the Cortex-M4 twin: every branch of the SIMD conv, 1x1,
depthwise and dense paths (channel counts that are not multiples of four, odd output counts,
strides, asymmetric padding, dilation, channel multipliers, edge windows), bit-exact with the
integer interpreter and with the host build of the same C (which takes the plain C paths), for
affine int8 and SeeDot int16 (SMLALD); for affine int8 both with the per-layer specialized
kernels (--optimize speed) and with the shared ones only (--optimize size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from tvc_models.export import export

from compiler.compile import CompileOptions, compile_model
from compiler.frontend.loader import load_model
from compiler.ir.interpreter import run_graph
from compiler.ir.tensor import DTYPES
from compiler.tools.boards import get_board
from compiler.tools.host import build_host, run_host
from compiler.tools.qemu import run_qemu


class KernelShapes(nn.Module):
    """A chain in which each layer takes a different branch of the kernels."""

    def __init__(self) -> None:
        super().__init__()
        relu = nn.ReLU
        self.body = nn.Sequential(
            nn.Conv2d(5, 6, 3, padding=1),  # im2col rows of 15: not whole fours
            relu(),
            nn.Conv2d(6, 8, 1),  # 1x1, 6 channels: the reorder pass, K tail
            nn.Conv2d(8, 7, 1, stride=2),  # 1x1 on whole fours, strided, odd output count
            relu(),
            nn.Conv2d(7, 8, (1, 3), padding=(0, 1)),  # 1x3
            nn.Conv2d(8, 8, 3, padding=1, groups=8),  # depthwise 3x3: interior and all edges
            nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8),  # strided, cut windows
            relu(),
            nn.Conv2d(8, 12, 1),
            nn.Conv2d(12, 12, 5, padding=2, groups=12),  # 5x5: the general tap loop
            nn.Conv2d(12, 12, 3, padding=2, dilation=2, groups=12),  # dilated
            nn.Conv2d(12, 10, 1),
            nn.Conv2d(10, 10, 3, padding=1, groups=10),  # 8 SIMD channels + 2 plain
            nn.Conv2d(10, 20, 3, padding=1, groups=10),  # multiplier 2: gathered lanes
            relu(),
            nn.Conv2d(20, 60, 3, padding=1, groups=20),  # multiplier 3: lanes across channels
            nn.Conv2d(60, 16, 3, padding=(1, 0), stride=(1, 2)),  # asymmetric stride/padding
            nn.Conv2d(16, 16, 3, padding=1),  # whole-four windows with padded borders
            relu(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16),  # (specialized depthwise, 16 channels)
        )
        self.fc = nn.Linear(16 * 4 * 1, 7)  # in 64, out 7: pairs plus one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.body(x), 1))


class DenseTail(nn.Module):
    """Fully connected with an input length that is not a multiple of four."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(13, 9)
        self.fc2 = nn.Linear(9, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


class Winograd(nn.Module):
    """Stride-1 3x3 convolutions for the integer Winograd path: odd output sizes (tiles cut at
    the bottom and right), with and without padding, an odd number of output channels."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(4, 7, 3, padding=1),  # 9x11: partial tiles, padded borders
            nn.ReLU(),
            nn.Conv2d(7, 8, 1),
            nn.Conv2d(8, 5, 3),  # no padding: 7x9
            nn.Conv2d(5, 8, 1),
        )
        self.last = nn.Conv2d(8, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 7 * 9, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return self.fc(torch.flatten(y + self.last(y), 1))  # a residual add (the table path)


CASES = {
    "kernel_shapes": (KernelShapes, (1, 5, 15, 13)),
    "dense_tail": (DenseTail, (1, 13)),
    "winograd": (Winograd, (1, 4, 9, 11)),
}


# --optimize speed gives affine int8 layers kernels of their own (compiler/runtime/tvc_special.h);
# size keeps the shared kernels: both are checked on every case
SPECIAL = {
    "kernel_shapes": ("tvc_conv16_layer", "tvc_dw3x3_layer", "tvc_dense16_layer"),
    "dense_tail": ("tvc_dense16_layer",),
    "winograd": ("tvc_wino_layer", "tvc_dense16_layer", "tvc_add_lut_s8"),
}


@pytest.mark.parametrize(
    ("quant", "bits", "optimize"),
    [("affine", "8", "speed"), ("affine", "8", "size"), ("seedot", "16", "speed")],
)
@pytest.mark.parametrize("name", sorted(CASES))
def test_dsp_paths_are_bit_exact_on_the_m4(
    tmp_path: Path, name: str, quant: str, bits: str, optimize: str
) -> None:
    cls, shape = CASES[name]
    torch.manual_seed(3)
    model = cls()
    for m in model.modules():  # spread the biases so that requantization sees both signs
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None:
            nn.init.uniform_(m.bias, -0.5, 0.5)
    onnx_path = export(model, shape, tmp_path / f"{name}.onnx")
    out = compile_model(
        CompileOptions(
            model=str(onnx_path),
            target="mps2-an386",
            out=str(tmp_path / "out"),
            calib="random",
            quant=quant,
            bits=bits,
            optimize=optimize,
        )
    )[0]
    code = "".join(p.read_text() for p in out.glob("*.c"))
    special = quant == "affine" and optimize == "speed"
    for kernel in SPECIAL[name]:  # the specialized kernels run exactly where they should
        assert (f"{kernel}(" in code) == special, kernel
    graph = load_model(out)
    rng = np.random.default_rng(9)
    samples = [
        {
            i: rng.integers(lo, hi, graph.tensors[i].shape).astype(DTYPES[graph.tensors[i].dtype])
            for i in graph.inputs
            for lo, hi in [(-128, 128) if graph.tensors[i].dtype == "i8" else (-4000, 4000)]
        }
        for _ in range(6)
    ]
    on_m4, _ = run_qemu(out, graph, get_board("mps2-an386"), samples)
    on_host = run_host(build_host(out, graph), graph, samples)
    for s, q, h in zip(samples, on_m4, on_host, strict=True):
        ref = run_graph(graph, s)
        for o in graph.outputs:
            np.testing.assert_array_equal(q[o], ref[o], err_msg=f"{name}: M4 vs interpreter")
            np.testing.assert_array_equal(h[o], ref[o], err_msg=f"{name}: host vs interpreter")
        assert any(np.any(ref[o] != ref[o].flat[0]) for o in graph.outputs), "constant output"


class Clamped(nn.Module):
    """Layers whose fused activation clamps inside the int8 range (set up below)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(4, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.c = nn.Conv2d(8, 8, 1)
        self.fc = nn.Linear(8 * 6 * 6, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.c(torch.clamp(self.b(torch.relu(self.a(x))), 0.0, 0.1)))
        return torch.relu(self.fc(torch.flatten(x, 1)))


def test_activation_clamps_inside_the_int8_range(tmp_path: Path) -> None:
    """The per-layer kernels clamp four (or two) outputs at once with SSUB8/SEL, and skip a bound
    at the int8 limit. Calibrated ReLU outputs put the lower bound at -128, so here the output
    zero points are moved up (ReLU's lower bound then lies inside the range) and a clip's scale
    set so that its upper bound does too: the C must still be bit-exact with the interpreter."""
    from compiler.compile import run_pipeline
    from compiler.ir.tensor import QParams
    from compiler.ir.text import print_graph

    torch.manual_seed(5)
    path = export(Clamped(), (1, 4, 6, 6), tmp_path / "clamped.onnx")
    q = run_pipeline(
        CompileOptions(model=str(path), target="mps2-an386", calib="random"), "quantize"
    ).graph
    moved = 0
    for node in q.nodes:
        if node.op in ("conv2d", "dense") and node.attrs.get("act") in ("relu", "relu6", "clip"):
            y = q.tensors[node.outputs[0]]
            s = y.qparams.scale[0] / 2  # type: ignore[union-attr]
            if node.attrs["act"] == "clip":  # the clip's 0.1 lands on code -40 + 50
                s = float(node.attrs["clip"][1]) / 50  # type: ignore[index]
            y.qparams = QParams((s,), (-40,))
            moved += 1
        elif node.op == "reshape":  # moves codes: keeps its input's parameters
            q.tensors[node.outputs[0]].qparams = q.tensors[node.inputs[0]].qparams
    assert moved >= 3
    ir = tmp_path / "clamped.tvcir"
    ir.write_text(print_graph(q, full=True))
    out = compile_model(
        CompileOptions(model=str(ir), target="mps2-an386", out=str(tmp_path / "out"))
    )[0]
    code = "".join(p.read_text() for p in out.glob("*.c"))
    assert "tvc_conv16_layer(" in code and "tvc_dw3x3_layer(" in code
    graph = load_model(out)
    rng = np.random.default_rng(2)
    samples = [
        {i: rng.integers(-128, 128, graph.tensors[i].shape).astype(np.int8) for i in graph.inputs}
        for _ in range(6)
    ]
    on_m4, _ = run_qemu(out, graph, get_board("mps2-an386"), samples)
    on_host = run_host(build_host(out, graph), graph, samples)
    clamped = 0
    for s, m4, h in zip(samples, on_m4, on_host, strict=True):
        ref = run_graph(graph, s)
        for o in graph.outputs:
            np.testing.assert_array_equal(m4[o], ref[o])
            np.testing.assert_array_equal(h[o], ref[o])
            clamped += int(np.sum(ref[o] == -40))
    assert clamped > 0, "no output at the lower bound: the clamp is not exercised"
