"""Importing this package registers every IR op (one module per op family)."""

from compiler.ir.ops import (  # noqa: F401
    activation,
    conv,
    conv_rnnpool,
    dense,
    elementwise,
    glue,
    norm,
    pool,
    quant_ops,
    resize,
    rnnpool,
    tensor_ops,
)
