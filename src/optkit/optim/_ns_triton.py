r"""A Triton kernel for the symmetric products of Newton–Schulz: one triangle computed, both stored.

Every m×m product of the iteration is symmetric: the Gram matrix A = XXᵀ and, inside a Gram
group, b·A + c·A², h·h, h²·A and h·Q (polynomials in the same A₀, which commute). A general
GEMM computes all m² entries; :func:`sym_matmul` computes the tiles on and below the
diagonal only, (t² + t)/2 of the t² output tiles (t = ⌈m / BLOCK⌉), and writes each off-diagonal
tile twice, as itself and transposed (a diagonal tile: its lower half, mirrored), so the result
is exactly symmetric: about half the FLOPs for large m. The accumulation is
float32 over the whole inner dimension for every entry, so an entry rounds exactly as in the
full product. Dao-AILab's gram-newton-schulz (Zhang, Amsel, Chen & Dao, 2026) does the same
with CuTeDSL symmetric GEMMs on Hopper/Blackwell; this is a plain Triton version of the idea.

Used only when triton is importable and the tensors are on CUDA (:func:`available`);
``TRITON_INTERPRET=1`` runs the same kernel on CPU tensors, which is how the tests check it
without a GPU. Symbols: P (B×m×k), R (B×k×m) with P·R symmetric, C (B×m×m) symmetric,
out = β·C + α·P·R.
"""

from __future__ import annotations

import math
import os

import torch
from torch import Tensor

try:  # optional dependency
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is missing
    triton = None
    tl = None

__all__ = ["available", "sym_matmul"]

# Tile side on a GPU: 128×128 output tiles, 64-wide inner steps (bf16 tensor-core friendly).
BLOCK = 128
BLOCK_K = 64


def available(device: torch.device) -> bool:
    """True when the kernel can run on ``device``: triton importable and a CUDA device, or any
    device under ``TRITON_INTERPRET=1`` (the tests' CPU mode)."""
    if triton is None:
        return False
    if _interpreting():
        return True
    return device.type == "cuda"


# triton reads TRITON_INTERPRET when it is imported; so does this module (a constant for
# compiled code)
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


def _interpreting() -> bool:
    return _INTERPRET


if triton is not None:

    @triton.jit
    def _sym_kernel(
        P, R, C, Out, m, k,
        sp_b, sp_r, sp_c, sr_b, sr_r, sr_c, sc_b, sc_r, sc_c, so_b, so_r, so_c,
        alpha, beta,
        HAS_C: tl.constexpr, UPCAST: tl.constexpr, BLOCK: tl.constexpr, BLOCK_K: tl.constexpr,
    ):  # fmt: skip
        # program (t, b): the t-th tile of the lower triangle of batch entry b, row-major
        t = tl.program_id(0)
        b = tl.program_id(1)
        i = ((tl.sqrt(8.0 * t + 1.0) - 1.0) / 2.0).to(tl.int32)
        # float rounding can put i one off near triangular numbers: correct it
        i = tl.where((i + 1) * (i + 2) // 2 <= t, i + 1, i)
        i = tl.where(i * (i + 1) // 2 > t, i - 1, i)
        j = t - i * (i + 1) // 2
        rows = i * BLOCK + tl.arange(0, BLOCK)
        cols = j * BLOCK + tl.arange(0, BLOCK)
        inner = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK, BLOCK), dtype=tl.float32)
        p_ptr = P + b * sp_b + rows[:, None] * sp_r + inner[None, :] * sp_c
        r_ptr = R + b * sr_b + inner[:, None] * sr_r + cols[None, :] * sr_c
        for start in range(0, k, BLOCK_K):
            kk = start + inner
            a_blk = tl.load(p_ptr, mask=(rows[:, None] < m) & (kk[None, :] < k), other=0.0)
            b_blk = tl.load(r_ptr, mask=(kk[:, None] < k) & (cols[None, :] < m), other=0.0)
            if UPCAST:  # the interpreter's dot misreads bf16 operands
                a_blk, b_blk = a_blk.to(tl.float32), b_blk.to(tl.float32)
            acc = tl.dot(a_blk, b_blk, acc)
            p_ptr += BLOCK_K * sp_c
            r_ptr += BLOCK_K * sr_r
        acc = acc * alpha
        mask = (rows[:, None] < m) & (cols[None, :] < m)
        if HAS_C:
            c_ptr = C + b * sc_b + rows[:, None] * sc_r + cols[None, :] * sc_c
            acc += beta * tl.load(c_ptr, mask=mask, other=0.0).to(tl.float32)
        out = acc.to(Out.dtype.element_ty)
        # a diagonal tile keeps its lower half and mirrors it, so that the result is exactly
        # symmetric (the two halves are separate dot products, which may round differently)
        # (off a diagonal tile, i > j and the shift makes every entry pass)
        keep = mask & (rows[:, None] - cols[None, :] + 2 * BLOCK * (i - j) >= 0)
        o_ptr = Out + b * so_b + rows[:, None] * so_r + cols[None, :] * so_c
        tl.store(o_ptr, out, mask=keep)
        t_ptr = Out + b * so_b + cols[None, :] * so_r + rows[:, None] * so_c
        tl.store(t_ptr, out, mask=keep)  # the mirror tile (j, i) = (i, j)ᵀ


def sym_matmul(
    P: Tensor,
    R: Tensor,
    C: Tensor | None = None,
    *,
    alpha: float = 1.0,
    beta: float = 1.0,
    block: int | None = None,
    block_k: int | None = None,
) -> Tensor:
    """β·C + α·P·R for batches P ``(B, m, k)``, R ``(B, k, m)`` whose product is symmetric.

    Only the tiles on and below the diagonal are computed; each is stored at its place and,
    transposed, at its mirror place. Any strides (P = X and R = Xᵀ as a view give the Gram
    matrix XXᵀ without a copy). The result is contiguous, in P's dtype.

    Args:
        P, R: the factors; P·R must be symmetric (it is not checked: the upper triangle is
            the lower one mirrored).
        C: a symmetric batch ``(B, m, m)`` or None (then β is unused).
        alpha, beta: α and β.
        block, block_k: tile side and inner step; None: ``BLOCK`` and ``BLOCK_K`` (the
            tests' interpreter runs use small ones).
    """
    if triton is None:
        raise RuntimeError("sym_matmul needs triton (pip install triton)")
    batch, m, k = P.shape
    if R.shape != (batch, k, m):
        raise ValueError(f"R must have shape {(batch, k, m)}, got {tuple(R.shape)}")
    block, block_k = block or BLOCK, block_k or BLOCK_K
    out = torch.empty((batch, m, m), dtype=P.dtype, device=P.device)
    tiles = math.ceil(m / block)
    c = out if C is None else C
    grid = (tiles * (tiles + 1) // 2, batch)
    _sym_kernel[grid](
        P, R, c, out, m, k,
        *P.stride(), *R.stride(), *c.stride(), *out.stride(),
        float(alpha), float(beta),
        HAS_C=C is not None, UPCAST=_interpreting(), BLOCK=block, BLOCK_K=block_k,
        **({} if P.device.type != "cuda" else {"num_warps": 8, "num_stages": 3}),
    )  # fmt: skip
    return out
