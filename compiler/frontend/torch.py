"""The PyTorch RNNPool layer, and its export to one `tvc::RNNPool` ONNX node.

This is the only module of the compiler that imports torch: the layer trains like any other
`nn.Module`; under `torch.onnx.export` it becomes a single custom node (weights as initializers,
zeta/nu as float attributes with the sigmoid applied), and `export_onnx` adds a model-local ONNX
function that spells the same computation in standard ops, so onnxruntime runs the file as is
while tvc imports the node itself. The contract is docs/rnnpool.md.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper
from torch import nn

DOMAIN = "tvc"
OP = "RNNPool"


def _fastgrnn(
    wx: torch.Tensor, u: torch.Tensor, bz: torch.Tensor, bh: torch.Tensor,
    zeta: torch.Tensor, nu: torch.Tensor, reverse: bool = False,
) -> torch.Tensor:  # fmt: skip
    """Final state over axis 0 of W x_t (precomputed): [T, ..., hidden]."""
    steps = range(wx.shape[0] - 1, -1, -1) if reverse else range(wx.shape[0])
    h = torch.zeros_like(wx[0])
    for k, t in enumerate(steps):
        a = wx[t] if k == 0 else wx[t] + h @ u.T
        z = torch.sigmoid(a + bz)
        c = torch.tanh(a + bh)
        h = z * h + (zeta * (1 - z) + nu) * c
    return h


class _RNNPoolOp(torch.autograd.Function):
    """Only used while exporting: gives the tracer one opaque node with a custom symbolic."""

    @staticmethod
    def forward(ctx, x, w1, u1, bz1, bh1, w2, u2, bz2, bh2, ph, pw, sh, sw, z1, n1, z2, n2):  # type: ignore[no-untyped-def, override]
        gates = tuple(torch.tensor(v) for v in (z1, n1, z2, n2))
        return rnnpool_forward(x, (w1, u1, bz1, bh1, w2, u2, bz2, bh2), (ph, pw), (sh, sw), gates)

    @staticmethod
    def symbolic(g, x, w1, u1, bz1, bh1, w2, u2, bz2, bh2, ph, pw, sh, sw, z1, n1, z2, n2):  # type: ignore[no-untyped-def]
        h2 = w2.type().sizes()[0]
        y = g.op(
            f"{DOMAIN}::{OP}",
            x, w1, u1, bz1, bh1, w2, u2, bz2, bh2,
            patch_size_i=[ph, pw],
            strides_i=[sh, sw],
            hidden_size_1_i=w1.type().sizes()[0],
            hidden_size_2_i=h2,
            cell_s="FastGRNN",
            zeta_1_f=z1, nu_1_f=n1, zeta_2_f=z2, nu_2_f=n2,
        )  # fmt: skip
        from torch.onnx import symbolic_helper

        sizes = symbolic_helper._get_tensor_sizes(x)  # the output's type: inference goes on
        if sizes is not None and len(sizes) == 4 and None not in sizes[2:]:
            n, _, hgt, wid = sizes
            y.setType(x.type().with_sizes([n, 4 * h2, (hgt - ph) // sh + 1, (wid - pw) // sw + 1]))
        return y


def rnnpool_forward(
    x: torch.Tensor,
    w: tuple[torch.Tensor, ...],
    patch: tuple[int, int],
    stride: tuple[int, int],
    gates: tuple[torch.Tensor, ...],
) -> torch.Tensor:
    """RNNPOOL.md on (N, C, H, W); `gates` are zeta_1, nu_1, zeta_2, nu_2 after the sigmoid."""
    w1, u1, bz1, bh1, w2, u2, bz2, bh2 = w
    z1, n1, z2, n2 = gates
    # W1 x once per pixel (a 1x1 convolution), then every patch's pixels by stride
    xw = nn.functional.conv2d(x, w1[:, :, None, None])  # N, h1, H, W
    patches = xw.unfold(2, patch[0], stride[0]).unfold(3, patch[1], stride[1])  # N,h1,OH,OW,ph,pw
    n, h1, oh, ow, ph, pw = patches.shape
    wx = patches.permute(4, 5, 0, 2, 3, 1).reshape(ph, pw, n * oh * ow, h1)
    rows = _fastgrnn(wx.transpose(0, 1), u1, bz1, bh1, z1, n1)  # ph, B, h1
    cols = _fastgrnn(wx, u1, bz1, bh1, z1, n1)  # pw, B, h1
    out = [
        _fastgrnn(seq @ w2.T, u2, bz2, bh2, z2, n2, rev)
        for seq in (rows, cols)
        for rev in (False, True)
    ]
    y = torch.cat(out, dim=-1).reshape(n, oh, ow, -1)
    return y.permute(0, 3, 1, 2)  # N, 4*h2, OH, OW


class RNNPool(nn.Module):
    """RNNPool with FastGRNN cells (Saha et al. 2020): (N, C, H, W) → (N, 4*h2, OH, OW), no
    padding. zeta/nu are trained through a sigmoid, initialized as EdgeML does (1, -4)."""

    def __init__(
        self,
        in_channels: int,
        patch_size: int | tuple[int, int] = 8,
        stride: int | tuple[int, int] = 4,
        hidden1: int = 16,
        hidden2: int = 16,
    ) -> None:
        super().__init__()
        self.patch_size = (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
        self.stride = (stride, stride) if isinstance(stride, int) else stride
        self.in_channels, self.hidden1, self.hidden2 = in_channels, hidden1, hidden2

        def param(*shape: int, scale: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape) * scale)

        self.W1 = param(hidden1, in_channels, scale=(1 / in_channels) ** 0.5)
        self.U1 = param(hidden1, hidden1, scale=(1 / hidden1) ** 0.5)
        self.W2 = param(hidden2, hidden1, scale=(1 / hidden1) ** 0.5)
        self.U2 = param(hidden2, hidden2, scale=(1 / hidden2) ** 0.5)
        self.bz1, self.bh1 = nn.Parameter(torch.ones(hidden1)), nn.Parameter(torch.ones(hidden1))
        self.bz2, self.bh2 = nn.Parameter(torch.ones(hidden2)), nn.Parameter(torch.ones(hidden2))
        self.zeta1, self.nu1 = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(-4.0))
        self.zeta2, self.nu2 = nn.Parameter(torch.tensor(1.0)), nn.Parameter(torch.tensor(-4.0))

    def gate_constants(self) -> tuple[float, float, float, float]:
        """zeta_1, nu_1, zeta_2, nu_2 as the ONNX node carries them (sigmoid applied)."""
        return tuple(  # type: ignore[return-value]
            float(torch.sigmoid(p.detach())) for p in (self.zeta1, self.nu1, self.zeta2, self.nu2)
        )

    def weights(self) -> tuple[torch.Tensor, ...]:
        return (self.W1, self.U1, self.bz1, self.bh1, self.W2, self.U2, self.bz2, self.bh2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            ph, pw = self.patch_size
            sh, sw = self.stride
            return _RNNPoolOp.apply(x, *self.weights(), ph, pw, sh, sw, *self.gate_constants())
        gates = tuple(torch.sigmoid(p) for p in (self.zeta1, self.nu1, self.zeta2, self.nu2))
        return rnnpool_forward(x, self.weights(), self.patch_size, self.stride, gates)


# --- export -----------------------------------------------------------------------------------


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    output_names: list[str] | None = None,
    opset: int = 17,
    with_function: bool = True,
) -> Path:
    """torch.onnx.export (TorchScript exporter) plus the model-local tvc::RNNPool function
    (without it, tvc still imports the file; onnxruntime then cannot run it)."""
    path = Path(path)
    model = model.eval()
    with torch.no_grad():
        out = model(example)
    n_out = len(out) if isinstance(out, (tuple, list)) else 1
    names = output_names or (["y"] if n_out == 1 else [f"y{i}" for i in range(n_out)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=["x"],
            output_names=names,
            dynamic_axes={"x": {0: "batch"}, **{o: {0: "batch"} for o in names}},
            opset_version=opset,
            custom_opsets={DOMAIN: 1},
            dynamo=False,
            do_constant_folding=False,
        )
    if with_function:
        m = onnx.load(str(path))
        add_rnnpool_function(m, opset)
        onnx.save(m, str(path))
    return path


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def add_rnnpool_function(model: onnx.ModelProto, opset: int = 17) -> None:
    """Attach `tvc.RNNPool` as a model-local function (standard ops, for onnxruntime). The body
    is unrolled for the nodes' geometry, so every RNNPool node of the model must share it."""
    nodes = [n for n in model.graph.node if n.domain == DOMAIN and n.op_type == OP]
    if not nodes:
        return
    shapes = _input_shapes(model, nodes)
    keys = {(repr(sorted(_attrs(n).items())), shapes[n.name]) for n in nodes}
    if len(keys) > 1:
        raise ValueError(
            "RNNPool nodes with different attributes or input sizes in one model: the ONNX "
            "function body is unrolled for one geometry; export with with_function=False (tvc "
            "imports the nodes without it, onnxruntime cannot run the file then)"
        )
    body = _function_body(_attrs(nodes[0]), shapes[nodes[0].name])
    fn = helper.make_function(
        DOMAIN,
        OP,
        [f"i{k}" for k in range(9)],
        ["y"],
        body,
        [helper.make_opsetid("", opset)],
    )
    del model.functions[:]
    model.functions.append(fn)


def _input_shapes(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> dict[str, tuple]:
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {
        vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
        for vi in [*inferred.graph.value_info, *inferred.graph.input]
    }
    out = {}
    for n in nodes:
        shape = known.get(n.input[0])
        if shape is None or len(shape) != 4 or 0 in shape[1:]:
            raise ValueError(f"RNNPool node {n.name}: input shape unknown at export")
        out[n.name] = shape
    return out


def _function_body(a: dict[str, object], shape: tuple[int, ...]) -> list[onnx.NodeProto]:
    """RNNPOOL.md in standard ONNX ops, unrolled over the patch."""
    ph, pw = a["patch_size"]  # type: ignore[misc]
    sh, sw = a["strides"]  # type: ignore[misc]
    _, _, hgt, wid = shape
    oh, ow = (hgt - ph) // sh + 1, (wid - pw) // sw + 1
    nodes: list[onnx.NodeProto] = []
    count = [0]

    def mk(op: str, inputs: list[str], **kw: object) -> str:
        count[0] += 1
        out = f"t{count[0]}"
        nodes.append(helper.make_node(op, inputs, [out], **kw))
        return out

    def const(value: object, dtype: int = TensorProto.FLOAT) -> str:
        arr = np.asarray(value)
        return mk("Constant", [], value=helper.make_tensor("v", dtype, arr.shape, arr.ravel()))

    def ints(*v: int) -> str:
        return const(list(v), TensorProto.INT64)

    x, w1, u1, bz1, bh1, w2, u2, bz2, bh2 = (f"i{k}" for k in range(9))
    one = const(1.0)

    def cell_seq(seq: list[str], u: str, bz: str, bh: str, zeta: float, nu: float) -> str:
        ut = mk("Transpose", [u], perm=[1, 0])
        z_c, n_c = const(zeta), const(nu)
        h = ""
        for k, wx in enumerate(seq):
            a_ = wx if k == 0 else mk("Add", [wx, mk("MatMul", [h, ut])])
            z = mk("Sigmoid", [mk("Add", [a_, bz])])
            c = mk("Tanh", [mk("Add", [a_, bh])])
            coef = mk("Add", [mk("Mul", [z_c, mk("Sub", [one, z])]), n_c])
            new = mk("Mul", [coef, c])
            h = new if k == 0 else mk("Add", [mk("Mul", [z, h]), new])
        return h

    # W1 x at every pixel once: [N, H, W, h1]; the patch pixel (i, j) of every patch is a slice
    xw = mk("Einsum", [x, w1], equation="nchw,kc->nhwk")
    axes, steps = ints(1, 2), ints(sh, sw)
    pix = [
        [
            mk(
                "Unsqueeze",
                [
                    mk(
                        "Slice",
                        [xw, ints(i, j), ints(i + (oh - 1) * sh + 1, j + (ow - 1) * sw + 1),
                         axes, steps],
                    ),
                    ints(0),
                ],
            )
            for j in range(pw)
        ]
        for i in range(ph)
    ]  # fmt: skip
    z1, n1, z2, n2 = (float(a[k]) for k in ("zeta_1", "nu_1", "zeta_2", "nu_2"))  # type: ignore[arg-type]
    # row i sweeps j; the ph rows run as one batch: step j is concat over i → [ph, N, OH, OW, h1]
    row_steps = [mk("Concat", [pix[i][j] for i in range(ph)], axis=0) for j in range(pw)]
    col_steps = [mk("Concat", [pix[i][j] for j in range(pw)], axis=0) for i in range(ph)]
    rows = cell_seq(row_steps, u1, bz1, bh1, z1, n1)
    cols = cell_seq(col_steps, u1, bz1, bh1, z1, n1)
    w2t = mk("Transpose", [w2], perm=[1, 0])
    outs = []
    for summary, length in ((rows, ph), (cols, pw)):
        wr = mk("MatMul", [summary, w2t])
        seq = [mk("Gather", [wr, const(k, TensorProto.INT64)], axis=0) for k in range(length)]
        outs.append(cell_seq(seq, u2, bz2, bh2, z2, n2))
        outs.append(cell_seq(seq[::-1], u2, bz2, bh2, z2, n2))
    y = mk("Concat", outs, axis=-1)
    nodes.append(helper.make_node("Transpose", [y], ["y"], perm=[0, 3, 1, 2]))
    return nodes
