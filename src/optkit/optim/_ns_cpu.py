r"""Newton–Schulz on the CPU: the speed paths that only pay off there, behind one switch.

:mod:`optkit.optim.newton_schulz` asks :func:`optkit.optim.newton_schulz._backend` which module
runs a stack; for CPU tensors it is this one, and nothing here runs on any other device.

- **Native bf16 probe** (:func:`cpu_has_native_bf16`): bf16 is the compute dtype only where the
  CPU multiplies it natively (AVX512-BF16 or AMX-BF16 in ``/proc/cpuinfo``). On the 2-core
  AVX512-BF16 machine this was written on, a bf16 ``bmm`` ran at ~400 GFLOP/s against ~180 in
  float32; without native bf16 a CPU emulates it and is several times *slower* than float32.
  The flags are read once, at import, so that compiled code sees a constant.
- **Symmetric 2×2 blocks** (:class:`_Sym`): every m×m matrix of the iteration is symmetric; from
  m = ``SYMMETRIC_MIN`` on, and on up to ``SYMMETRIC_MAX_THREADS`` torch threads, only three of
  its four h×h blocks are computed (3/4 of the FLOPs of the Gram matrices and the m×m products
  of a Gram group); each block product is six GEMM calls instead of one, which more threads
  make dearer.
- **Gram groups of ``GRAM_GROUP`` steps** for matrices longer than ``GRAM_ASPECT`` times their
  short side (fewer FLOPs, the same result in exact arithmetic).
- **Buffer reuse**: each step's result goes into a buffer already held (the consumed input,
  the previous X): page faults per Muon step 7–9k without it, 0.3–1k with it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from . import _ns_dense

__all__ = [
    "GRAM_ASPECT",
    "GRAM_GROUP",
    "SYMMETRIC_MIN",
    "cpu_has_native_bf16",
    "groups",
    "kernels",
    "product_cost",
    "uses_blocks",
]


def _read_native_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


_NATIVE_BF16 = _read_native_bf16()


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (AVX512-BF16 or AMX-BF16; Linux only).

    Read once from ``/proc/cpuinfo`` at import; False where that file does not exist.
    """
    return _NATIVE_BF16


def compute_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the CPU has native bf16 matmul, else float32 (float64 is kept upstream)."""
    return torch.bfloat16 if _NATIVE_BF16 else torch.float32


# The Gram form pays off when the long side is more than this many times the short one.
GRAM_ASPECT = 1.5
# Steps per Gram group: longer groups save more products, but Q's eigenvalues spread like the
# product of the steps' slopes at 0 (a^g; a = 3.4 for the quintic) and bf16 loses the small
# ones. With 3, bf16 polar errors measured equal to the plain form's (tests/optim).
GRAM_GROUP = 3


def split_steps(steps: int, size: int) -> tuple[int, ...]:
    """``steps`` cut into groups of ``size`` (the last one shorter).

    Example:
        >>> split_steps(5, 3), split_steps(5, 1)
        ((3, 2), (1, 1, 1, 1, 1))
    """
    return tuple(min(size, steps - s) for s in range(0, steps, size))


def groups(
    m: int, n: int, steps: int, gram: bool | None = None, device: Any = None
) -> tuple[int, ...]:
    """Step groups for an m×n matrix (m ≤ n): Gram groups of ``GRAM_GROUP`` when ``gram``, or
    when ``gram`` is None and n > ``GRAM_ASPECT``·m (where they need fewer FLOPs); else plain
    steps (groups of 1)."""
    if gram is None:
        gram = n > GRAM_ASPECT * m
    return split_steps(steps, GRAM_GROUP if gram else 1)


# On CPU, m×m matrices of at least this size are worked on in blocks (_Sym). Measured on the
# 2-core bf16 machine, 5 steps, blocks/full time: m = 256: 1.13 (wide ×4) and 1.25 (square);
# 384: 0.96 and 1.06; 512: 0.88–0.95 and 0.91–0.94; 768: 0.88 and 0.89; 1024: 0.88 and 0.91.
# In float32 (CPUs without native bf16): 384: 0.95 and 0.96; 512: 0.86–0.92 and 0.87–0.89.
SYMMETRIC_MIN = 512
# Blocks only with this many torch threads or fewer: each block product is six GEMM calls
# instead of one, and with more threads every call pays a fork/join of the thread team. Blocks
# win at 1 and 2 threads on a quiet machine and lose on an oversubscribed one; more threads are
# unmeasured (docs/benchmarks/muon_step.md, "By thread count").
SYMMETRIC_MAX_THREADS = 2


def uses_blocks(m: int) -> bool:
    """Whether the m×m work runs in symmetric blocks (:class:`_Sym`): from ``SYMMETRIC_MIN``
    on, when torch runs on at most ``SYMMETRIC_MAX_THREADS`` threads."""
    return m >= SYMMETRIC_MIN and torch.get_num_threads() <= SYMMETRIC_MAX_THREADS


def product_cost(m: int, device: Any = None) -> float:
    """FLOPs of a symmetric m×m product (and of a Gram matrix) relative to a full one: 3/4 in
    blocks, else 1."""
    return 0.75 if uses_blocks(m) else 1.0


class _Sym(NamedTuple):
    r"""A batch of symmetric m×m matrices S = [[S₁₁, S₁₂], [S₁₂ᵀ, S₂₂]] as three contiguous blocks
    (S₁₁ is h×h, h = ⌊m/2⌋).

    Every m×m product inside a Gram group is symmetric — products of polynomials in the same
    A₀, which commute (b·A + c·A², h·h, h²·A, h·Q) — so of the four output blocks only three
    are computed: 3/4 of the FLOPs, each block a sum of two h-sized products (the second
    accumulated onto the first in the compute dtype). The blocks are kept apart because a batched
    ``bmm`` on CPU copies any operand that is a row or column slice of a batch (it accepts only
    contiguous or transposed-contiguous batches); S₂₁ is S₁₂ᵀ, a transposed view. On the
    2-core bf16 machine a 6×512×512 product took 3.2–3.6 ms this way against 3.8–4.2 ms for
    one ``bmm`` (h = 256 products run at the full one's rate).
    """

    s11: Tensor
    s12: Tensor
    s22: Tensor

    @staticmethod
    def gram(X: Tensor, tall: bool) -> _Sym:
        """The Gram matrix XXᵀ (wide X) or XᵀX (tall X) of a batch ``(B, r, c)``, in blocks.

        X's two halves along its short side are copied out first (contiguous), so that the
        three block products are plain batched ones: 3/4 of the Gram FLOPs for one pass over X.
        """
        h = min(X.shape[-2:]) // 2
        dim = 2 if tall else 1
        X1, X2 = (part.contiguous() for part in X.split((h, X.size(dim) - h), dim=dim))
        if tall:
            return _Sym(torch.bmm(X1.mT, X1), torch.bmm(X1.mT, X2), torch.bmm(X2.mT, X2))
        return _Sym(torch.bmm(X1, X1.mT), torch.bmm(X1, X2.mT), torch.bmm(X2, X2.mT))

    def full(self) -> Tensor:
        h, m = self.s11.size(-1), self.s11.size(-1) + self.s22.size(-1)
        S = self.s11.new_empty(self.s11.size(0), m, m)
        S[:, :h, :h] = self.s11
        S[:, :h, h:] = self.s12
        S[:, h:, :h] = self.s12.mT
        S[:, h:, h:] = self.s22
        return S

    def times(
        self, R: _Sym, *, add: _Sym | None = None, beta: float = 1.0, alpha: float = 1.0
    ) -> _Sym:
        """β·add + α·self·R for an R that commutes with self (so that the product is symmetric)."""
        P11, P12, P22 = self
        R11, R12, R22 = R
        terms = (
            ((P11, R11), (P12, R12.mT)),  # C₁₁ = P₁₁R₁₁ + P₁₂R₂₁
            ((P11, R12), (P12, R22)),  # C₁₂ = P₁₁R₁₂ + P₁₂R₂₂
            ((P12.mT, R12), (P22, R22)),  # C₂₂ = P₂₁R₁₂ + P₂₂R₂₂
        )
        blocks = []
        for i, ((A1, B1), (A2, B2)) in enumerate(terms):
            if add is None:
                C = torch.bmm(A1, B1)
            else:
                C = torch.baddbmm(add[i], A1, B1, beta=beta, alpha=alpha)
            blocks.append(C.baddbmm_(A2, B2, alpha=alpha))
        return _Sym(*blocks)


class BlockKernels:
    """The symmetric-matrix operations of the iteration on :class:`_Sym` blocks."""

    @staticmethod
    def gram(X: Tensor, tall: bool) -> _Sym:
        return _Sym.gram(X, tall)

    @staticmethod
    def product(P: _Sym, R: _Sym, *, add: Any = None, beta: float = 1.0, alpha: float = 1.0):
        return P.times(R, add=add, beta=beta, alpha=alpha)

    @staticmethod
    def square(A: _Sym, b: float, c: float) -> Tensor:
        """b·A + c·A² as one full product: block sums would add bf16 roundings."""
        F = A.full()
        return torch.baddbmm(F, F, F, beta=b, alpha=c)

    @staticmethod
    def diagonals(S: _Sym) -> list[Tensor]:
        return [S.s11.diagonal(dim1=-2, dim2=-1), S.s22.diagonal(dim1=-2, dim2=-1)]

    @staticmethod
    def blocks(S: _Sym) -> list[Tensor]:
        return list(S)

    @staticmethod
    def full(S: _Sym) -> Tensor:
        return S.full()


DenseKernels = _ns_dense.DenseKernels  # the full-product set, shared with CUDA


# Each step's result goes into a buffer already held (see the module docstring).
REUSE_BUFFERS = True


def iterate(run: Callable[..., Tensor], X: Tensor, *args: Any) -> Tensor:
    """``run(X, *args)``: the iteration of :mod:`optkit.optim.newton_schulz`, eagerly."""
    return run(X, *args)


def kernels(m: int, device: Any = None) -> type[BlockKernels] | type[DenseKernels]:
    """The symmetric-matrix operations for m×m work: blocks where :func:`uses_blocks`."""
    return BlockKernels if uses_blocks(m) else DenseKernels
