"""What tvc reads at most (README "Robustness"): a model beyond these is refused before
anything is allocated, with the limit named."""

from __future__ import annotations

MAX_ELEMENTS = 1 << 28  # one tensor: 256 M elements
MAX_ITEMS = 100_000  # nodes / operators, tensors, buffers, operator codes


def many(n: int) -> str:
    """A count for a message: exact, or its order of magnitude when it is absurd."""
    return f"{n:,}" if n < 10**15 else f"about 10^{len(str(n)) - 1}"
