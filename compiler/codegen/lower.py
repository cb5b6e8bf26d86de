"""The codegen side of lowering: the context the op modules' rules lower themselves in (where
each tensor lives in the planned arena, kernel calls and the sources they need), and the choice
of each node's rule for a backend. Every rule and every integer parameter lives with its op
(compiler/ir/ops); this module only knows memory and names.
"""

from __future__ import annotations

import re

from compiler.ir.graph import Graph, Node
from compiler.ir.lowering import C_TYPES, CodegenError, Lowered
from compiler.ir.registry import get_op, select_rule
from compiler.passes.plan import Plan, scratch_name


def c_ident(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if s and not s[0].isdigit() else "t_" + s


def scratch_needs(
    graph: Graph, backend: str, memo: dict[tuple[object, ...], int] | None = None
) -> dict[int, int]:
    """Bytes of work buffer per node index: what the rule the backend will use asks for, so the
    plan reserves exactly what the code then uses. `memo` carries the answers across the many
    candidate schedules of one compile: a band of a layer asks what every band of the same
    shape asks (the layer's label, less the band suffix, names its weights and scales)."""
    out = {}
    for k, n in enumerate(graph.nodes):
        key = (
            n.op,
            re.sub(r"\.b\d+$", "", n.label),
            repr(sorted(n.attrs.items())),
            tuple(graph.tensors[t].shape for t in (*n.inputs, *n.outputs)),
        )
        if memo is None or key not in memo:
            nbytes = select_rule(graph, n, backend).scratch(graph, n)
            if memo is None:
                if nbytes:
                    out[k] = nbytes
                continue
            memo[key] = nbytes
        if memo[key]:
            out[k] = memo[key]
    return out


class Backend:
    """A LowerCtx (compiler.ir.lowering) over one planned graph: `ptr` names where each
    tensor lives, `call` records the runtime sources the op declares."""

    def __init__(
        self,
        graph: Graph,
        plan: Plan,
        prefix: str,
        backend: str = "portable",
        regions: tuple[str, ...] = (),
        scratch: dict[int, int] | None = None,
        optimize: str = "speed",
    ) -> None:
        self.graph = graph
        self.plan = plan
        self.prefix = prefix
        self.backend = backend
        self.optimize = optimize  # "speed": rules may emit per-layer specialized kernels
        self.regions = regions  # names of the extra RAM regions, plan region 1, 2, ...
        self._scratch = scratch or {}
        self.weight_symbols: dict[str, str] = {}
        self.files: set[str] = set()  # compiler/runtime sources of the kernels called (op facts)
        self.features: set[str] = set()  # macros for tvc_prefix.h: optional kernel paths
        self.replaced: set[str] = set()  # constants a kernel reads in another layout instead
        self.index = -1
        self.name = ""
        self.node: Node | None = None
        consts = sorted(n for n, t in graph.tensors.items() if t.is_const)
        for k, name in enumerate(consts):
            self.weight_symbols[name] = f"{prefix}_c{k}"

    # --- LowerCtx ------------------------------------------------------------------------------
    def ptr(self, tensor: str, const: bool = True) -> str:
        t = self.graph.tensors[tensor]
        ct = C_TYPES.get(t.dtype)
        if ct is None:
            raise CodegenError(f"tensor {tensor!r} is {t.dtype}; the C kernels take int8/int16")
        if t.is_const:
            return self.weight_symbols[tensor]
        qual = "const " if const else ""
        g = self.graph
        root, delta = self.plan.views.get(tensor, (tensor, 0))
        caller = root in g.outputs or (root in g.inputs and root not in self.plan.offsets)
        if caller:  # the caller's buffers, never copied (a band of them is a byte offset)
            if not delta:
                return f"({qual}{ct} *){c_ident(root).lower()}"
            return f"({qual}{ct} *)((const uint8_t *){c_ident(root).lower()} + {delta})"
        return f"({qual}{ct} *)({self.base(tensor)} + {self.plan.offsets[tensor]})"

    def scratch_ptr(self, ctype: str, offset: int = 0) -> str:
        """The node's work buffer (+ offset) as `ctype *`; "" for the bare address; 0 if none."""
        s = scratch_name(self.index)
        if s not in self.plan.offsets:
            return "0"
        addr = f"arena + {self.plan.offsets[s] + offset}"
        return addr if not ctype else f"({ctype} *)({addr})"

    def scratch_bytes(self) -> int:
        return self._scratch.get(self.index, 0)

    def call(self, kernel: str, *args: str) -> str:
        assert self.node is not None
        self.files.update(get_op(self.node.op).kernels)
        return f"TVC_FN({kernel})({', '.join(args)});"

    def uses_kernels(self) -> None:
        assert self.node is not None
        self.files.update(get_op(self.node.op).kernels)

    def replace(self, const: str) -> None:
        self.replaced.add(const)

    def feature(self, macro: str) -> None:
        self.features.add(macro)

    def is_aliased(self, tensor: str) -> bool:
        return tensor in self.plan.aliases

    def reader(self, tensor: str) -> str:
        return c_ident(tensor).lower()  # the run function's parameter

    # --- driving -------------------------------------------------------------------------------
    def base(self, name: str) -> str:
        """The arena a buffer lives in: the main one, or an extra region's static arena."""
        r = self.plan.placed_in.get(name)
        return "arena" if r is None else f"{self.prefix}_arena_{self.regions[r - 1].lower()}"

    def lower(self, index: int, node: Node) -> Lowered:
        self.index, self.node, self.name = index, node, f"{self.prefix}_n{index}"
        return select_rule(self.graph, node, self.backend).emit(self, node)
