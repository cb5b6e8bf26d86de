"""The op registry: each op's attribute schema, shape/dtype inference and float reference.

An op is defined once, in `compiler/ir/ops/<family>.py`, by `@op(...)`; the frontend, the
verifier, the printer/parser and the interpreter all read that one definition.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from compiler.errors import IRError
from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import BACKENDS, CodegenError, LowerCtx, Lowered

if TYPE_CHECKING:
    from compiler.ir.tensor import Tensor

REQUIRED = object()
ATTR_KINDS = ("int", "float", "str", "ints", "floats")


@dataclass(frozen=True)
class TType:
    """What inference knows of a tensor: shape and dtype."""

    shape: tuple[int, ...]
    dtype: str


@dataclass(frozen=True)
class AttrSpec:
    kind: str
    default: object = REQUIRED
    choices: tuple[object, ...] | None = None


# infer(node, input types, constant input values or None) -> output types, or None when the
# output shape depends on a value unknown at this point (the recorded shape is then trusted).
InferFn = Callable[[Node, list[TType], list[np.ndarray | None]], list[TType] | None]
RunFn = Callable[[Node, list[np.ndarray]], list[np.ndarray]]
# integer reference: (node, input arrays, input tensors, output tensors) -> outputs; the tensors
# carry the quantization parameters the arithmetic depends on
RunIntFn = Callable[[Node, list[np.ndarray], list["Tensor"], list["Tensor"]], list[np.ndarray]]


LAYOUT_RULES = ("spatial", "elementwise", "broadcast", "axis", "transpose", "reshape", "logical")
MEMORY = ("own", "in_place", "alias", "view")


@dataclass(frozen=True)
class Quant:
    """What quantization does with an op's output (and its constant weights).

    output: "calibrated" (its own parameters from the observed range), "same" (shares the
    parameters of its activation inputs: data movement and pools, TFLite's constraint),
    "fixed" (TFLite pins it: `fixed` = (scale, zero point); SeeDot gives it all bits
    fractional, |y| <= 1), or "none" (never quantized: folded or removed before quantization).
    weights: how its constant inputs 1.. are quantized: "per_channel", "per_tensor", "rnnpool"
    (the RNNPool quantizer), or None (no weights).
    """

    output: str
    fixed: tuple[float, int] | None = None
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.output not in ("calibrated", "same", "fixed", "none"):
            raise ValueError(f"unknown quantization rule {self.output!r}")
        if (self.output == "fixed") != (self.fixed is not None):
            raise ValueError("a fixed output needs its (scale, zero point), and only then")


CALIBRATED = Quant("calibrated")
SAME = Quant("same")
NOT_QUANTIZED = Quant("none")


@dataclass
class OpDef:
    name: str
    attrs: dict[str, AttrSpec]
    inputs: tuple[int, int]  # min, max count
    infer: InferFn
    run: RunFn
    outputs: tuple[int, int] = (1, 1)
    # input dtypes the float reference accepts (integer ops come with quantization)
    dtypes: tuple[str, ...] = ("f32",)
    # spatial ops: a `layout` attribute says how their 4-D input is laid out (derived from the
    # layout rule, never declared)
    layout_sensitive: bool = False
    doc: str = field(default="")
    run_int: RunIntFn | None = None
    # multiply-accumulates of one execution, from input and output types (0: not a MAC op)
    macs: Callable[[Node, list[TType], list[TType]], int] | None = None
    # how the layout pass rewrites it (LAYOUT_RULES; "logical": runs in the model's own axis
    # order, with transposes around it)
    layout: str = "logical"
    # attributes after its input axes are permuted by p (physical = logical.transpose(p));
    # ops whose attributes name axes ("axis" and "elementwise" rules)
    permute_attrs: Callable[[dict[str, object], tuple[int, ...]], dict[str, object]] | None = None
    # "in_place": element i of the input is read before element i of the output is written,
    # so the output may overwrite a same-size input that dies here; "alias": the output is the
    # input's bytes under another shape; "view": `views` says which bytes of which tensor each
    # of its tensors is (row bands, passes/patch); "own": a buffer of its own
    memory: str = "own"
    # "view" ops: (part, whole, byte offset of part in whole) for every tensor of the node that
    # is a byte range of another; the op moves no data
    views: Callable[[Graph, Node], list[tuple[str, str, int]]] | None = None
    quant: Quant = NOT_QUANTIZED
    # the compiler/runtime sources its portable kernels live in
    kernels: tuple[str, ...] = ()
    # spatial ops: constant input index -> (name suffix, transpose) of its data when the op
    # goes from NCHW to NHWC (conv weights OIHW -> OHWI)
    nhwc_weights: dict[int, tuple[str, tuple[int, ...]]] = field(default_factory=dict)
    # "own" ops that may still write their output over input 0 from its first byte on, where this
    # proof holds for the node (a patch-wise step that consumes its input row by row)
    overwrite_proof: Callable[[Graph, Node], bool] | None = None
    # integer parameters, computed once from the node and its tensors (a frozen dataclass that
    # the integer reference and every backend's lowering consume)
    params: Callable[[Node, list[Tensor], list[Tensor]], object] | None = None
    # lowering rules by backend, in the order they are tried
    lower: dict[str, list[Rule]] = field(default_factory=dict)


def _always(graph: Graph, node: Node) -> bool:
    return True


def _no_scratch(graph: Graph, node: Node) -> int:
    return 0


@dataclass(frozen=True)
class Rule:
    """One way to lower an op for a backend: when it applies, the work buffer it needs (planned
    into the arena before code exists), and the code."""

    op: str
    backend: str
    emit: Callable[[LowerCtx, Node], Lowered]
    applies: Callable[[Graph, Node], bool] = _always
    scratch: Callable[[Graph, Node], int] = _no_scratch


_REGISTRY: dict[str, OpDef] = {}


@dataclass(frozen=True)
class ChannelRule:
    """How an op takes part in exact dead-channel elimination (passes/dead_channels).

    `kind(graph, node)` says how the node's channels (last axis, NHWC) relate:
    - "map": output channel k is a function of channel k of each input alone, the same at every
      pixel (elementwise ops on equal shapes, pools, depthwise with multiplier 1);
    - "concat": channels of the inputs placed one after another;
    - "flatten": [N,1,1,C] -> [N,C], channel k stays k;
    - "mix": every output channel reads every input channel (conv groups 1, dense): constant
      input channels are folded into the bias, all-zero weight rows make constant outputs;
    - None: a barrier (constant channels stop here and are kept).
    `dead(graph, node)`: output channels constant whatever the input (all-zero weights).
    `foldable(graph, node, consts)`: of the constant input channels {k: value}, those the op
    can drop exactly by moving their contribution into its bias ("mix" only).
    `rewrite(graph, node, folded, drop_in, drop_out)`: drop the channels in place (weights,
    bias, per-channel parameters); `folded` holds the values of dropped constant inputs.
    """

    kind: Callable[[Graph, Node], str | None]
    dead: Callable[[Graph, Node], set[int]] | None = None
    foldable: Callable[[Graph, Node, dict[int, int]], set[int]] | None = None
    rewrite: Callable[[Graph, Node, dict[int, int], set[int], set[int]], None] | None = None


_CHANNEL_RULES: dict[str, ChannelRule] = {}


def _declare(table: dict[str, object], what: str, name: str, rule: object) -> None:
    """A rule declared beside its op, once per op."""
    if name not in _REGISTRY:
        raise RuntimeError(f"{what} for unknown op {name!r}")
    if name in table:
        raise RuntimeError(f"{what} of {name!r} defined twice")
    table[name] = rule


def channel_rule(name: str, rule: ChannelRule) -> None:
    """Declare how op `name` takes part in dead-channel elimination, beside the op."""
    _declare(_CHANNEL_RULES, "channel rule", name, rule)  # type: ignore[arg-type]


def get_channel_rule(name: str) -> ChannelRule | None:
    return _CHANNEL_RULES.get(name)


Rows = tuple[int, int]  # a band of rows [first, end) of an NHWC tensor (axis 1)


@dataclass(frozen=True)
class RowRule:
    """How an op runs on a band of its output rows (patch-based stages, passes/patch).

    `needs(graph, node, a, b)`: for output rows [a, b), the rows of each input it reads, before
    clipping to the input (a window's rows may start above 0 or end past the input's height);
    None for an input read whole (weights, a per-channel operand). Returns None when the node
    cannot run by rows (not NHWC, not 4-D, rows mixed).
    `band(graph, node, a, b, held)`: the attributes of the node that computes just rows [a, b)
    from inputs holding rows `held` (clipped, per input; None where read whole): a window op
    takes as padding what lies outside the input. Default: the attributes unchanged.
    `source`: the op reads its input whole in no buffer (input_rows: a graph input the caller
    hands over row by row), so that input need not be a constant; its rows are asked for once
    each and in order, so the op runs in streamed stages only (no halo is read twice).
    """

    needs: Callable[[Graph, Node, int, int], list[Rows | None] | None]
    band: Callable[[Graph, Node, int, int, list[Rows | None]], dict[str, object]] | None = None
    source: bool = False


_ROW_RULES: dict[str, RowRule] = {}


def row_rule(name: str, rule: RowRule) -> None:
    """Declare how op `name` runs on a band of output rows, beside the op."""
    _declare(_ROW_RULES, "row rule", name, rule)  # type: ignore[arg-type]


def get_row_rule(name: str) -> RowRule | None:
    return _ROW_RULES.get(name)


def op(
    name: str,
    *,
    attrs: dict[str, AttrSpec] | None = None,
    inputs: tuple[int, int] = (1, 1),
    outputs: tuple[int, int] = (1, 1),
    infer: InferFn,
    dtypes: Sequence[str] = ("f32",),
    macs: Callable[[Node, list[TType], list[TType]], int] | None = None,
    layout: str,
    memory: str,
    quant: Quant,
    kernels: tuple[str, ...],
    permute_attrs: Callable[[dict[str, object], tuple[int, ...]], dict[str, object]] | None = None,
    nhwc_weights: dict[int, tuple[str, tuple[int, ...]]] | None = None,
    overwrite_proof: Callable[[Graph, Node], bool] | None = None,
    views: Callable[[Graph, Node], list[tuple[str, str, int]]] | None = None,
) -> Callable[[RunFn], RunFn]:
    """Register the decorated float reference together with every fact about the op. The facts
    are keyword-only and have no defaults: an op that forgets one fails at import."""
    if layout not in LAYOUT_RULES:
        raise RuntimeError(f"op {name!r}: layout rule {layout!r} not one of {LAYOUT_RULES}")
    if memory not in MEMORY:
        raise RuntimeError(f"op {name!r}: memory {memory!r} not one of {MEMORY}")
    if (memory == "view") != (views is not None):
        raise RuntimeError(f"op {name!r}: a view op says which bytes it views, and only it")
    layout_sensitive = layout == "spatial"  # it has a `layout` attribute saying NCHW or NHWC

    def register(run: RunFn) -> RunFn:
        if name in _REGISTRY:
            raise RuntimeError(f"op {name!r} defined twice")
        specs = dict(attrs or {})
        if layout_sensitive:
            specs.setdefault("layout", AttrSpec("str", "NHWC", ("NCHW", "NHWC")))
        _REGISTRY[name] = OpDef(
            name,
            specs,
            inputs,
            infer,
            run,
            outputs,
            tuple(dtypes),
            layout_sensitive,
            (run.__doc__ or "").strip(),
            macs=macs,
            layout=layout,
            permute_attrs=permute_attrs,
            memory=memory,
            quant=quant,
            kernels=tuple(kernels),
            nhwc_weights=dict(nhwc_weights or {}),
            overwrite_proof=overwrite_proof,
            views=views,
        )
        return run

    return register


def int_ref(name: str) -> Callable[[RunIntFn], RunIntFn]:
    """Attach the integer reference of an op, defined beside its float reference."""

    def attach(fn: RunIntFn) -> RunIntFn:
        d = _REGISTRY[name]
        if d.run_int is not None:
            raise RuntimeError(f"integer reference of {name!r} defined twice")
        d.run_int = fn
        return fn

    return attach


def params(name: str) -> Callable[[Callable[..., object]], Callable[..., object]]:
    """Attach the op's integer-parameter function (node, input tensors, output tensors)."""

    def attach(fn: Callable[..., object]) -> Callable[..., object]:
        d = _REGISTRY[name]
        if d.params is not None:
            raise RuntimeError(f"parameters of {name!r} defined twice")
        d.params = fn
        return fn

    return attach


def lowering(
    name: str,
    backend: str,
    *,
    applies: Callable[[Graph, Node], bool] = _always,
    scratch: Callable[[Graph, Node], int] = _no_scratch,
) -> Callable[[Callable[[LowerCtx, Node], Lowered]], Callable[[LowerCtx, Node], Lowered]]:
    """Append a lowering rule of the op for a backend (tried in definition order)."""
    if backend not in BACKENDS:
        raise RuntimeError(f"unknown backend {backend!r}")

    def attach(fn: Callable[[LowerCtx, Node], Lowered]) -> Callable[[LowerCtx, Node], Lowered]:
        _REGISTRY[name].lower.setdefault(backend, []).append(
            Rule(name, backend, fn, applies, scratch)
        )
        return fn

    return attach


def select_rule(graph: Graph, node: Node, backend: str) -> Rule:
    """The first rule of the backend (then of those it falls back to) that applies."""
    d = get_op(node.op)
    for b in BACKENDS[backend]:
        for rule in d.lower.get(b, []):
            if rule.applies(graph, node):
                return rule
    dt = graph.tensors[node.outputs[0]].dtype
    raise CodegenError(
        f"node {node.label!r} ({node.op}, {dt}) has no C kernel for the {backend} backend",
        "C runs quantized graphs (int8/int16); keep such layers out of the model",
    )


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise IRError(f"unknown IR op {name!r}") from None


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


def _coerce(opname: str, key: str, spec: AttrSpec, value: object) -> object:
    bad = IRError(f"{opname}: attribute {key}={value!r} is not of kind {spec.kind}")
    if spec.kind == "int":
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise bad
        value = int(value)
    elif spec.kind == "float":
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise bad
        value = float(value)
    elif spec.kind == "str":
        if not isinstance(value, str):
            raise bad
    elif spec.kind == "ints":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value
        ):
            raise bad
        value = [int(v) for v in value]
    elif spec.kind == "floats":
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float, np.integer, np.floating)) for v in value
        ):
            raise bad
        value = [float(v) for v in value]
    if spec.choices is not None and value not in spec.choices:
        raise IRError(f"{opname}: attribute {key}={value!r} not one of {list(spec.choices)}")
    return value


def check_attrs(opname: str, attrs: dict[str, object]) -> dict[str, object]:
    """Validate attributes against the schema, coerce their kinds, fill defaults."""
    d = get_op(opname)
    unknown = set(attrs) - set(d.attrs)
    if unknown:
        raise IRError(f"{opname}: unknown attribute(s) {sorted(unknown)}")
    out: dict[str, object] = {}
    for key, spec in d.attrs.items():
        if key in attrs:
            out[key] = _coerce(opname, key, spec, attrs[key])
        elif spec.default is REQUIRED:
            raise IRError(f"{opname}: missing attribute {key!r}")
        elif spec.default is not None:
            out[key] = list(spec.default) if isinstance(spec.default, list) else spec.default
    return out


def make_node(
    opname: str, inputs: list[str], outputs: list[str], name: str = "", **attrs: object
) -> Node:
    return Node(opname, list(inputs), list(outputs), check_attrs(opname, attrs), name)
