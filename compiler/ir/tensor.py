"""Tensors of the IR: static shape, dtype, layout tag, optional constant data and quant params."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

DTYPES: dict[str, np.dtype] = {
    "f32": np.dtype(np.float32),
    "i8": np.dtype(np.int8),
    "u8": np.dtype(np.uint8),
    "i16": np.dtype(np.int16),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "bool": np.dtype(np.bool_),
}
NP_TO_DTYPE: dict[np.dtype, str] = {v: k for k, v in DTYPES.items()}
# integer codes with quantization parameters; uint8 only at a TFLite model's edges
QUANTIZED_DTYPES = ("i8", "i16", "u8")
LAYOUTS = ("NCHW", "NHWC")


def dtype_of(array: np.ndarray) -> str:
    """The IR dtype of a numpy array; float64 and other widths are narrowed by the caller."""
    try:
        return NP_TO_DTYPE[array.dtype]
    except KeyError:
        raise TypeError(f"no IR dtype for numpy {array.dtype}") from None


@dataclass(frozen=True)
class QParams:
    """How integers map to reals: affine (scale, zero point, optional channel axis) or 2^exp."""

    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    axis: int | None = None
    exp: int | None = None  # SeeDot-style: real = int * 2**exp, zero point 0

    @property
    def per_channel(self) -> bool:
        return self.axis is not None


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "f32"
    layout: str | None = None
    data: np.ndarray | None = field(default=None, repr=False, compare=False)
    qparams: QParams | None = None

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPES[self.dtype].itemsize

    def copy(self, **changes: object) -> Tensor:
        """A new Tensor sharing (read-only) data: passes never write into constant arrays."""
        return replace(self, **changes)

    def same_as(self, other: Tensor) -> bool:
        """Structural equality including constant contents (dataclass == skips data)."""
        if self != other:
            return False
        if (self.data is None) != (other.data is None):
            return False
        if self.data is None:
            return True
        assert other.data is not None
        return self.data.dtype == other.data.dtype and np.array_equal(
            self.data, other.data, equal_nan=self.data.dtype.kind == "f"
        )


def const_tensor(name: str, data: np.ndarray, layout: str | None = None) -> Tensor:
    data = np.array(data, order="C")  # not ascontiguousarray: that turns 0-d into 1-d
    data.setflags(write=False)
    return Tensor(name, tuple(int(d) for d in data.shape), dtype_of(data), layout, data)
