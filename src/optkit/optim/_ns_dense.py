"""The symmetric-matrix operations of Newton–Schulz's Gram form as full batched products:
the kernel set every device has (CPU and CUDA modules add their own: symmetric blocks, a
triangle kernel).

Every operation takes and returns full ``(B, m, m)`` batches: ``gram`` (XXᵀ or XᵀX), ``product``
(β·add + α·P·R), ``square`` (b·A + c·A²), ``diagonals`` (views to add a·I to), ``blocks`` (the
tensors that hold the matrix) and ``full`` (the matrix itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["DenseKernels"]


class DenseKernels:
    """Symmetric-matrix operations as full batched products (one ``bmm`` each)."""

    @staticmethod
    def gram(X: Tensor, tall: bool) -> Tensor:
        return torch.bmm(X.mT, X) if tall else torch.bmm(X, X.mT)

    @staticmethod
    def product(P: Tensor, R: Tensor, *, add: Any = None, beta: float = 1.0, alpha: float = 1.0):
        if add is None:
            return torch.bmm(P, R)
        return torch.baddbmm(add, P, R, beta=beta, alpha=alpha)

    @staticmethod
    def square(A: Tensor, b: float, c: float) -> Tensor:
        return torch.baddbmm(A, A, A, beta=b, alpha=c)

    @staticmethod
    def diagonals(S: Tensor) -> list[Tensor]:
        return [S.diagonal(dim1=-2, dim2=-1)]

    @staticmethod
    def blocks(S: Tensor) -> list[Tensor]:
        return [S]

    @staticmethod
    def full(S: Tensor) -> Tensor:
        return S
