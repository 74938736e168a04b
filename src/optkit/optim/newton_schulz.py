r"""Newton–Schulz orthogonalization: O ≈ UVᵀ for X = UΣVᵀ, batched over same-shape matrices.

The lecture's ``Orthogonalize(B_t)`` (Muon slide) replaces every singular value of B_t by ~1
without an SVD: an odd matrix polynomial p(X) = aX + b(XXᵀ)X + c(XXᵀ)²X acts on each singular
value σ as the scalar polynomial p(σ) = aσ + bσ³ + cσ⁵, so iterating it pushes all σ (after
scaling them into [0, 1]) towards 1 while U and V stay put.

Symbols: X ∈ ℝ^{m×n} (m ≤ n: the *wide* orientation; a tall input is worked on as Xᵀ — in
practice by multiplying from the other side, without a transposed copy — so the Gram matrix
A = XXᵀ is the smaller m×m one), (a, b, c) one step's coefficients, k steps.

.. code-block:: text

    X₀ = X / (s·‖X‖_F + ε)            s = 1 (quintic) or 1.01 (Polar Express safety)
    for each step (a, b, c):
        A = X Xᵀ                       m×m Gram matrix
        B = b·A + c·A²
        X = a·X + B X                  = p(X)
    O = X   (transposed back if the input was tall)

The same polynomial steps can run in *Gram form*, several steps per group on m×m matrices
only (:func:`_gram_group`; Gram Newton–Schulz with restarts, Zhang, Amsel, Chen & Dao 2026):
26% fewer FLOPs for 1536×512, 33% for 2048×512 matrices, the same result in exact arithmetic.
Every m×m matrix of the iteration is symmetric, which the devices exploit differently.

**One switch per device** (:func:`_backend`): CPU tensors go to :mod:`optkit.optim._ns_cpu`
(Gram groups of 3 steps for n > 1.5m, symmetric 2×2 blocks from m = 512 on up to two threads,
buffers reused, bf16 only where the CPU has it natively); every other device goes to
:mod:`optkit.optim._ns_cuda` (bf16, the Gram form with restarts every 3 steps wherever it
needs fewer FLOPs, one compiled graph per stack on CUDA, the Triton kernel
:mod:`optkit.optim._ns_triton` for symmetric products when triton is installed).
:func:`ns_flops` asks the same backend what a matrix costs, and so does the distributed owner
assignment (:func:`optkit.optim.distributed.matrix_cost`).

Coefficient schedules:

- ``"quintic"`` (default): Keller Jordan's (3.4445, −4.7750, 2.0315) at every step. The slope
  at zero (a = 3.4445) is pushed beyond what converges to 1: after 5 steps the singular values
  land roughly in [0.7, 1.2] instead of at 1, which costs nothing in training and reaches that
  band in fewer steps than any convergent polynomial.
- ``"polar_express"``: the per-step optimal (minimax) schedule of Amsel et al. (2025), with
  their 1.01 safety factor; converges to UVᵀ, much closer after 5 steps than the quintic.
- any sequence of (a, b, c) triples; when shorter than ``steps`` its last triple repeats.

Everything here is a pure function over a batch ``(..., m, n)`` or a list of matrices: the
optimizer (and a distributed variant that shards the list) only calls
:func:`orthogonalize_many`.

Compute dtype (``dtype=None``): float64 inputs stay float64; otherwise bfloat16 on CUDA and on
CPUs with native bf16 matmul (:func:`cpu_has_native_bf16`), float32 elsewhere; without native
bf16 a CPU emulates it and is several times *slower* than float32. Pass ``dtype`` to override.

References:
    K. Jordan et al., "Muon: An optimizer for hidden layers in neural networks", 2024.
    N. Amsel, D. Persson, C. Musco, R. Gower, "The Polar Express", 2025, arXiv:2505.16932.
    J. Zhang, N. Amsel, B. Chen, T. Dao, "Gram Newton-Schulz", 2026 (Dao-AILab/gram-newton-
    schulz): the Gram form with restarts on GPUs; how it compares with the form here:
    docs/benchmarks/muon_step.md.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .._checks import check_int, check_number
from . import _ns_cpu, _ns_cuda
from ._ns_cpu import cpu_has_native_bf16

__all__ = [
    "POLAR_EXPRESS",
    "QUINTIC",
    "NSBatch",
    "NSSchedule",
    "cpu_has_native_bf16",
    "default_ns_dtype",
    "newton_schulz",
    "ns_flops",
    "ns_schedule",
    "orthogonalize_many",
]

QUINTIC = (3.4445, -4.7750, 2.0315)

# Polar Express degree-5 schedule, Amsel, Persson, Musco & Gower (2025), Algorithm 1, before
# the safety factor. After the 8th step the last triple repeats.
_POLAR_EXPRESS_RAW = (
    (8.28721201814563, -23.595886519098837, 17.300387312530933),
    (4.107059111542203, -2.9478499167379106, 0.5448431082926601),
    (3.9486908534822946, -2.908902115962949, 0.5518191394370137),
    (3.3184196573706015, -2.488488024314874, 0.51004894012372),
    (2.300652019954817, -1.6689039845747493, 0.4188073119525673),
    (1.891301407787398, -1.2679958271945868, 0.37680408948524835),
    (1.8750014808534479, -1.2500016453999487, 0.3750001645474248),
    (1.875, -1.25, 0.375),
)
_SAFETY = 1.01


@dataclass(frozen=True)
class NSSchedule:
    """A Newton–Schulz coefficient schedule.

    Attributes:
        coefficients: (a, b, c) per step; the last one repeats when more steps are asked for.
        norm_scale: s in X₀ = X / (s·‖X‖_F + ε); > 1 leaves room for rounding so that no
            singular value starts above 1, where a steep polynomial would blow it up.
    """

    coefficients: tuple[tuple[float, float, float], ...]
    norm_scale: float = 1.0

    def steps(self, k: int) -> list[tuple[float, float, float]]:
        """The (a, b, c) of the first ``k`` steps.

        Example:
            >>> len(POLAR_EXPRESS.steps(10)), POLAR_EXPRESS.steps(10)[-1]
            (10, (1.875, -1.25, 0.375))
        """
        c = list(self.coefficients)
        return c[:k] + [c[-1]] * max(0, k - len(c))


POLAR_EXPRESS = NSSchedule(
    (
        *((a / _SAFETY, b / _SAFETY**3, c / _SAFETY**5) for a, b, c in _POLAR_EXPRESS_RAW[:-1]),
        _POLAR_EXPRESS_RAW[-1],
    ),
    norm_scale=_SAFETY,
)
_NAMED = {"quintic": NSSchedule((QUINTIC,)), "polar_express": POLAR_EXPRESS}


def ns_schedule(spec: Any, name: str = "ns_coefficients") -> NSSchedule:
    """Turn ``"quintic"``, ``"polar_express"``, an :class:`NSSchedule` or (a, b, c) triples into
    an :class:`NSSchedule`; ValueError naming ``name`` otherwise.

    Example:
        >>> ns_schedule("quintic").coefficients
        ((3.4445, -4.775, 2.0315),)
        >>> ns_schedule([(1.5, -0.5, 0.0)]).steps(2)
        [(1.5, -0.5, 0.0), (1.5, -0.5, 0.0)]
    """
    if isinstance(spec, NSSchedule):
        return spec
    if isinstance(spec, str):
        if spec not in _NAMED:
            raise ValueError(f"{name} must be one of 'quintic', 'polar_express' or a sequence of "
                             f"(a, b, c) triples; got {spec!r}")  # fmt: skip
        return _NAMED[spec]
    try:
        triples = [tuple(t) for t in spec]
    except TypeError:
        triples = []
    if not triples or any(len(t) != 3 for t in triples):
        raise ValueError(f"{name} must be 'quintic', 'polar_express' or a non-empty sequence of "
                         f"(a, b, c) triples; got {spec!r}")  # fmt: skip
    coeffs = tuple(
        tuple(check_number(f"{name}[{i}][{j}]", v) for j, v in enumerate(t))
        for i, t in enumerate(triples)
    )
    return NSSchedule(coeffs)  # type: ignore[arg-type]


def _backend(device: torch.device | str) -> Any:
    """The one switch per device: :mod:`._ns_cpu` for CPU tensors, :mod:`._ns_cuda` for CUDA
    and every other device. Each backend module has the same functions: ``compute_dtype``,
    ``groups``, ``kernels``, ``product_cost``, ``iterate`` and ``REUSE_BUFFERS``."""
    return _ns_cpu if torch.device(device).type == "cpu" else _ns_cuda


def default_ns_dtype(device: torch.device | str, dtype: torch.dtype) -> torch.dtype:
    """The compute dtype for Newton–Schulz on ``device`` for an input of ``dtype``.

    float64 stays float64 (asked-for precision is kept); otherwise bfloat16 on CUDA and on CPUs
    with native bf16 (:func:`cpu_has_native_bf16`), else float32.

    Example:
        >>> default_ns_dtype("cpu", torch.float64)
        torch.float64
    """
    if dtype == torch.float64:
        return dtype
    device = torch.device(device)
    return _backend(device).compute_dtype(device)


def newton_schulz(
    X: Tensor,
    steps: int = 5,
    coefficients: Any = "quintic",
    *,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Orthogonalize a matrix or a batch of matrices ``(..., m, n)``: O ≈ UVᵀ (module docstring).

    Args:
        X: a matrix or a batch of them; batch entries are independent.
        steps: k ≥ 1 iterations (default 5).
        coefficients: ``"quintic"`` (default), ``"polar_express"``, an :class:`NSSchedule` or a
            sequence of (a, b, c) triples.
        eps: ε in the normalization X / (s·‖X‖_F + ε) (default 1e-7, as Keller Jordan's).
        dtype: compute dtype; None picks :func:`default_ns_dtype`.

    Returns:
        O with the shape and dtype of ``X``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> X = torch.randn(2, 3, 8, dtype=torch.float64, generator=g)
        >>> O = newton_schulz(X, steps=10, coefficients="polar_express")
        >>> torch.allclose(O @ O.mT, torch.eye(3, dtype=torch.float64).expand(2, 3, 3), atol=1e-6)
        True
    """
    if X.ndim < 2:
        raise ValueError(f"X must have at least 2 dimensions, got shape {tuple(X.shape)}")
    check_int("steps", steps, 1)
    schedule = ns_schedule(coefficients, "coefficients")
    compute = dtype or default_ns_dtype(X.device, X.dtype)
    Y = X.reshape(-1, *X.shape[-2:]).to(compute)
    return _iterate(Y, schedule, steps, eps).reshape(X.shape).to(X.dtype)


# Re-exported from the CPU module, where the policy lives (a public name of this module).
GRAM_ASPECT = _ns_cpu.GRAM_ASPECT
GRAM_GROUP = _ns_cpu.GRAM_GROUP


def ns_flops(
    rows: int,
    cols: int,
    steps: int = 5,
    gram: bool | None = None,
    blocks: bool | None = None,
    *,
    device: torch.device | str = "cpu",
) -> int:
    """Multiply-add FLOPs of ``steps`` Newton–Schulz steps on one rows×cols matrix on ``device``.

    With m ≤ n the sides, a group of g steps (g = 1: a plain step) costs
    k·2m²n (Gram matrix) + k·(8g − 6)·m³ (m×m products) + 2m²n (X ← Q·X), where k is the
    device's cost of a symmetric product relative to a full one: on CPU 3/4 when the m×m work
    runs in symmetric blocks (m ≥ ``SYMMETRIC_MIN``, one torch thread), else 1 — except a
    plain step's single m×m product, which the CPU computes in full; on CUDA about 1/2 with
    the Triton triangle kernel (:mod:`._ns_cuda`), else 1.

    ``gram``: False, the plain form (groups of 1 step); True, the Gram form in the device's
    groups (CPU: ``GRAM_GROUP`` steps; CUDA: ``_ns_cuda.restart_groups``); None, what
    :func:`newton_schulz` picks for the shape on that device. ``blocks`` (CPU): None, what it
    picks; True/False force k = 3/4 or 1 (for CUDA, True means k = 1/2).
    ``gram=False, blocks=False`` is Keller Jordan's form, steps·(4m²n + 2m³).

    Example:
        >>> ns_flops(512, 2048, gram=False, blocks=False)  # KJ's form
        12079595520
        >>> ns_flops(512, 2048, blocks=False), ns_flops(512, 2048)  # Gram form; and in blocks
        (8053063680, 6576668672)
    """
    device = torch.device(device)
    backend = _backend(device)
    m, n = sorted((rows, cols))
    groups = backend.groups(m, n, steps, gram, device)
    cpu = device.type == "cpu"
    if blocks is None:
        k = backend.product_cost(m, device)
    else:
        k = (0.75 if cpu else 0.5) if blocks else 1.0
    # the CPU computes a plain step's one m×m product B = b·A + c·A² in full (see _run)
    plain_k = 1.0 if cpu else k
    return round(
        sum(k * 2 * m * m * n + (k if g > 1 else plain_k) * (8 * g - 6) * m**3 + 2 * m * m * n
            for g in groups)
    )  # fmt: skip


def _iterate(
    X: Tensor,
    schedule: NSSchedule,
    steps: int,
    eps: float,
    gram: bool | None = None,
    consume: bool = False,
) -> Tensor:
    """The iteration on a batch ``(B, r, c)`` stored either way round, on the backend of X's
    device (:func:`_backend`); see :func:`_run`. ``gram``: None, the backend's choice for the
    shape; True/False, the Gram form in the backend's groups or the plain form."""
    device = X.device
    backend = _backend(device)
    m, n = sorted(X.shape[-2:])
    groups = backend.groups(m, n, steps, gram, device)
    kernels = backend.kernels(m, device)
    coefficients = tuple(schedule.steps(steps))
    reuse = backend.REUSE_BUFFERS
    return backend.iterate(
        _run, X, coefficients, groups, schedule.norm_scale, eps, kernels, reuse, consume and reuse
    )


def _run(
    X: Tensor,
    coefficients: tuple[tuple[float, float, float], ...],
    groups: tuple[int, ...],
    norm_scale: float,
    eps: float,
    kernels: Any,
    reuse: bool,
    consume: bool,
) -> Tensor:
    r"""The Newton–Schulz iteration in ``groups`` of steps, one polynomial per step; X is not
    modified unless ``consume`` (then its memory takes a later result: one m×n allocation fewer).

    With m = min(r, c) ≤ n = max(r, c), the m×m Gram matrix is A = XXᵀ for a wide X and XᵀX
    for a tall one, and a step X ← h(A)·X becomes X ← X·h(A) for a tall X (h(A) is symmetric),
    so every product reads X in the layout it has — no transposed copies, and the result comes
    out in the input's layout.

    Normalization costs no pass over X: ‖X‖²_F = trace(A₀), so the first Gram matrix is scaled
    by f² and the first step's result by f (Q by f in Gram form), f = 1 / (s·‖X‖_F + ε).

    A plain step (group of 1) is KJ's B = bA + cA², X ← a·X + B·X, with a·X added inside the
    product's float32 accumulation (``baddbmm``); forming h = aI + B in bf16 first rounds its
    large diagonal and doubled the bf16 rounding error (0.020 against torch.optim.Muon's 0.011
    relative to float64 on 512×512). A longer group runs in Gram form (:func:`_gram_group`).
    ``kernels`` computes the symmetric m×m matrices (the backend's: blocks on CPU, full
    products, or one triangle with Triton on CUDA); ``reuse``: results go into buffers already
    held (``out=``; the CPU's choice), else into fresh tensors (compiled graphs).
    """
    tall = X.size(-2) > X.size(-1)
    f = None  # the normalization factor, applied in the first group
    spare = None  # a buffer shaped like X whose contents are no longer needed
    start = 0
    for size in groups:
        A = kernels.gram(X, tall)
        if f is None:
            acc = torch.float32 if X.dtype in (torch.bfloat16, torch.float16) else X.dtype
            norm = sum(d.sum(-1, dtype=acc) for d in kernels.diagonals(A)).sqrt()
            f = (1 / (norm * norm_scale + eps)).to(X.dtype)[:, None, None]
            for block in kernels.blocks(A):
                block.mul_(f * f)  # in place: out-of-place broadcasting is ~50x slower in bf16
        out = spare if reuse else None
        if size == 1:  # a plain step as KJ writes it: X ← a·X + B·X, B = b·A + c·A²
            a, b, c = coefficients[start]
            B = kernels.square(A, b, c)
            P, R = (X, B) if tall else (B, X)
            Y = torch.baddbmm(X, P, R, beta=a, out=out) if reuse else torch.baddbmm(X, P, R, beta=a)
            if start == 0:
                Y.mul_(f)  # X₁ = f·(a·X₀ + B·X₀), B from f²·A₀: X₀ itself is not scaled
        else:
            Q = _gram_group(A, coefficients[start : start + size], kernels)
            if start == 0:
                Q.mul_(f)
            P, R = (X, Q) if tall else (Q, X)
            Y = torch.bmm(P, R, out=out) if reuse else torch.bmm(P, R)
        spare = X if start > 0 or consume else None
        X = Y
        start += size
    return X


def _gram_group(A: Any, coefficients: Sequence[tuple[float, float, float]], kernels: Any) -> Tensor:
    r"""Q = h_{g−1}(A_{g−1}) ⋯ h₀(A₀) for g steps that start from the Gram matrix A = A₀.

    Within a group that starts at X₀, every X_k = Q_k·X₀ (Q_k a polynomial in A₀, hence
    symmetric), and since h(A_k) commutes with A_k, A_{k+1} = h(A_k)·A_k·h(A_k) = h(A_k)²·A_k:
    the m×n matrix is touched twice per group (A₀ = X₀X₀ᵀ and X₀ ← Q·X₀) instead of twice per
    step. FLOPs per group: 4m²n + (8g − 6)m³ against g·(4m²n + 2m³), fewer once n > 1.5m
    (5 steps on 512×2048: 33% fewer). Exact arithmetic gives the plain iteration's result;
    finite precision is why groups are short and X is rebuilt between them (Gram Newton–Schulz
    with restarts, Zhang, Amsel, Chen & Dao 2026). g = 1 is exactly the plain step. ``A`` is
    whatever ``kernels`` works on (full batch ``(B, m, m)`` or CPU blocks), every product here
    goes through ``kernels.product``; Q is returned full.
    """
    Q = None
    for k, (a, b, c) in enumerate(coefficients):
        h = kernels.product(A, A, add=A, beta=b, alpha=c)  # b·A + c·A²
        for diagonal in kernels.diagonals(h):
            diagonal.add_(a)  # + a·I
        Q = h if Q is None else kernels.product(h, Q)
        if k + 1 < len(coefficients):
            A = kernels.product(kernels.product(h, h), A)
    return kernels.full(Q)


class NSBatch:
    """Matrices grouped by shape into compute-dtype stacks: fill :attr:`inputs`, then :meth:`run`.

    Tensors of the same shape (last two dimensions), device and dtype share one stack
    ``(count, rows, cols)`` in the compute dtype and are iterated with one ``bmm`` chain, which is
    what makes many small matrices cheap. Leading dimensions are batches (e.g. MoE experts
    ``(experts, out, in)``): each matrix is orthogonalized on its own. The two phases let a
    caller write its matrices straight into the stacks (Muon writes the Nesterov direction
    there with ``torch.lerp(..., out=)``: no full-precision temporary, no extra copy).

    Args:
        like: one tensor per matrix, giving shape, device and dtype (contents unused).
        dtype: compute dtype; None picks :func:`default_ns_dtype` per device and dtype.

    Attributes:
        inputs: per matrix, a view of its stack shaped like ``like[i]``, to be filled.
    """

    def __init__(self, like: Sequence[Tensor], dtype: torch.dtype | None = None) -> None:
        buckets: dict[tuple[Any, ...], list[int]] = defaultdict(list)
        for i, M in enumerate(like):
            if M.ndim < 2:
                raise ValueError(f"matrices[{i}] must have at least 2 dimensions, got shape "
                                 f"{tuple(M.shape)}")  # fmt: skip
            buckets[(*M.shape[-2:], M.device, M.dtype)].append(i)
        self._like = like
        self._stacks: list[tuple[Tensor, list[int], list[int], torch.dtype]] = []
        inputs: list[Tensor | None] = [None] * len(like)
        for (rows, cols, device, in_dtype), idx in buckets.items():
            compute = dtype or default_ns_dtype(device, in_dtype)
            counts = [math.prod(like[i].shape[:-2]) for i in idx]
            stack = torch.empty((sum(counts), rows, cols), dtype=compute, device=device)
            for i, block in zip(idx, stack.split(counts)):
                inputs[i] = block.view(like[i].shape)
            self._stacks.append((stack, idx, counts, in_dtype))
        self.inputs: list[Tensor] = inputs  # type: ignore[assignment]

    def run(
        self,
        steps: int = 5,
        coefficients: Any = "quintic",
        *,
        eps: float = 1e-7,
        cast_back: bool = True,
    ) -> list[Tensor]:
        """Orthogonalize every filled input; one result per matrix, shaped like it (a view into
        its bucket's result; converted back to the input's dtype unless ``cast_back=False``).
        """
        check_int("steps", steps, 1)
        schedule = ns_schedule(coefficients, "coefficients")
        out: list[Tensor | None] = [None] * len(self.inputs)
        for stack, idx, counts, in_dtype in self._stacks:
            result = _iterate(stack, schedule, steps, eps, consume=True)
            if cast_back:
                result = result.to(in_dtype)
            for i, O in zip(idx, result.split(counts)):
                out[i] = O.view(self._like[i].shape)
        return out  # type: ignore[return-value]


def orthogonalize_many(
    matrices: Sequence[Tensor],
    steps: int = 5,
    coefficients: Any = "quintic",
    *,
    eps: float = 1e-7,
    dtype: torch.dtype | None = None,
    cast_back: bool = True,
) -> list[Tensor]:
    """:func:`newton_schulz` of each tensor ``(..., rows, cols)``; same shapes run as one batch
    (:class:`NSBatch`: copied into one stack in the compute dtype, one ``bmm`` chain).

    Args:
        matrices, steps, coefficients, eps, dtype: as :func:`newton_schulz`.
        cast_back: False leaves the results in the compute dtype (e.g. bf16 for a sender
            or an update that converts them anyway: one pass over them less).

    Returns:
        One tensor per input, same shape and dtype (a view into its bucket's result).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> Ms = [torch.randn(4, 6, generator=g), torch.randn(6, 4, generator=g)]
        >>> Os = orthogonalize_many(Ms, dtype=torch.float32)
        >>> [tuple(O.shape) for O in Os]
        [(4, 6), (6, 4)]
        >>> torch.allclose(Os[1], newton_schulz(Ms[1], dtype=torch.float32), atol=1e-6)
        True
    """
    check_int("steps", steps, 1)
    batch = NSBatch(matrices, dtype)
    for M, slot in zip(matrices, batch.inputs):
        slot.copy_(M)
    return batch.run(steps, coefficients, eps=eps, cast_back=cast_back)
