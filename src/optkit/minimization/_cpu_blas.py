"""NumPy and SciPy-BLAS fast paths for small problems on the CPU, in one place.

A NumPy function on a problem of a few hundred variables costs a few µs per call; a torch call
costs a few µs of dispatch too, so a loop that wraps every vector in a tensor spends most of its
time in torch's dispatcher. When ``x0`` is a NumPy array and the method needs only gradients
(bfgs, lbfgs, L-BFGS-B without bounds, gd with a line search), the flat vectors of the descent
loop are NumPy arrays and every vector operation below is one NumPy or BLAS call:

* :class:`NumpyOps`: the loop's dot products, norms and ``x + t·d`` (``ddot``, ``idamax``,
  ``dnrm2``, ``daxpy``; ~0.2–0.5 µs per call against 1–3 µs for the NumPy expressions);
* the L-BFGS two-loop recursion runs on the same level-1 calls (:func:`level1`), also on NumPy
  views of CPU tensors;
* dense BFGS keeps the upper triangle of H in a Fortran-ordered array and updates it with
  ``dsyr2`` + ``dsyr``, reads it with ``dsymv`` (:class:`SymmetricBLAS`): O(n²) per iteration,
  exactly symmetric, no temporaries (SciPy's BFGS forms two n × n products, O(n³)).

The arithmetic is that of the torch path; results agree to rounding. On CUDA and for torch
functions none of this runs.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg.blas as blas

__all__ = ["NumpyOps", "SymmetricBLAS", "level1", "numpy_ops"]


_LEVEL1 = {"float64": (blas.ddot, blas.daxpy), "float32": (blas.sdot, blas.saxpy)}
_LEVEL1_BY_DTYPE: dict[Any, Any] = {}


def level1(dtype: Any) -> tuple[Any, Any] | None:
    """``(dot, axpy)`` BLAS routines for a float32 / float64 dtype (NumPy or torch), else None.

    ``dot(x, y) -> float``; ``axpy(x, y, n, a)`` computes ``y ← a·x + y`` in place on a
    contiguous ``y`` and returns it.
    """
    try:
        return _LEVEL1_BY_DTYPE[dtype]
    except KeyError:  # first use of this dtype (str() of a NumPy dtype costs ~5 µs)
        out = _LEVEL1_BY_DTYPE[dtype] = _LEVEL1.get(str(dtype).rsplit(".", 1)[-1])
        return out


class NumpyOps:
    """The descent loop's vector operations on flat, contiguous NumPy arrays of one dtype."""

    def __init__(self, dtype: np.dtype) -> None:
        f32 = np.dtype(dtype) == np.float32
        self.dtype = np.dtype(np.float32 if f32 else np.float64)
        self.eps = float(np.finfo(self.dtype).eps)
        self._dot, self._axpy = level1(self.dtype)
        self._amax = blas.isamax if f32 else blas.idamax
        self._nrm2 = blas.snrm2 if f32 else blas.dnrm2

    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        return self._dot(a, b)

    def add(self, x: np.ndarray, t: float, d: np.ndarray) -> np.ndarray:
        """``x + t·d`` as a new array."""
        return self._axpy(d, x.copy(), x.size, t)

    def inf_norm(self, g: np.ndarray) -> float:
        if not g.size:
            return 0.0
        if math.isnan(self._dot(g, g)):  # idamax skips NaN; a NaN anywhere makes gᵀg NaN
            return math.nan
        return float(abs(g[self._amax(g)]))

    def norm(self, g: np.ndarray, order: float = 2.0) -> float:
        if order == 2.0:
            return float(self._nrm2(g))
        if order == math.inf:
            return self.inf_norm(g)
        return float(np.linalg.norm(g, ord=order))


_OPS: dict[Any, NumpyOps] = {}


def numpy_ops(dtype: np.dtype) -> NumpyOps:
    """The :class:`NumpyOps` for ``dtype`` (built once)."""
    key = np.dtype(dtype)
    if key not in _OPS:
        _OPS[key] = NumpyOps(key)
    return _OPS[key]


class SymmetricBLAS:
    """A symmetric n × n matrix kept as the upper triangle of a Fortran-ordered array.

    ``rank2(a, b, alpha)``: ``H ← H + alpha·(a bᵀ + b aᵀ)``; ``rank1(a, alpha)``:
    ``H ← H + alpha·a aᵀ``; ``matvec(v) = H·v``; ``full()``: the symmetric matrix.
    """

    def __init__(self, H0: np.ndarray) -> None:
        self.H = np.array(H0, order="F", copy=True)
        self._syr2, self._syr, self._symv = blas.get_blas_funcs(("syr2", "syr", "symv"), (self.H,))

    def matvec(self, v: np.ndarray) -> np.ndarray:
        return self._symv(1.0, self.H, v)

    def rank2(self, a: np.ndarray, b: np.ndarray, alpha: float) -> None:
        self.H = self._syr2(alpha, a, b, a=self.H, overwrite_a=1)

    def rank1(self, a: np.ndarray, alpha: float) -> None:
        self.H = self._syr(alpha, a, a=self.H, overwrite_a=1)

    def full(self) -> np.ndarray:
        upper = np.triu(self.H)
        return upper + np.triu(upper, 1).T
