"""Importing this package registers every IR op (one module per op family)."""

from compiler.ir.ops import (  # noqa: F401
    activation,
    conv,
    conv_rnnpool,
    dense,
    elementwise,
    float_math,
    glue,
    l2_norm,
    norm,
    pool,
    quant_ops,
    resize,
    rnnpool,
    rows,
    tensor_ops,
)
