"""The IR: Graph, Tensor, Node, the op registry and every op, verifier, text form, interpreter.

Importing any part of the IR registers every op (`compiler.ir.ops`), so the registry is whole
wherever a graph exists.
"""

from compiler.ir import ops  # noqa: F401
