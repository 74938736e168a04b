"""Search directions: steepest descent, Newton, Newton-CG, BFGS and L-BFGS.

Symbols (flat vectors in Rⁿ): x the iterate, f = f(x), g = ∇f(x), d the direction, t the step,
s = x₊ − x = t·d, y = g₊ − g, ρ = 1/(yᵀs), H an inverse-Hessian approximation, B = ∇²f(x).

A direction object has three methods, and the one loop in :mod:`._loop` drives them all:

* ``__call__(x, f, g, objective) -> d`` — the direction at x;
* ``update(s, y)`` — learn from an accepted step;
* ``reset()`` — forget curvature information (used after a failed step).

``has_curvature`` says whether the direction is scaled (a unit step is natural); otherwise the
loop guesses the first trial step from the last decrease in f.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import torch

__all__ = ["BFGS", "LBFGS", "Newton", "NewtonCG", "SteepestDescent", "two_loop"]


class SteepestDescent:
    """``d = −g``: the lecture's gradient descent direction; the step length comes from a line
    search instead of a fixed γ."""

    has_curvature = False

    def __call__(self, x, f, g, objective):
        return -g

    def update(self, s, y) -> None:
        pass

    def reset(self) -> None:
        pass


# Small dense factorizations on the CPU go through SciPy's LAPACK: torch's (MKL + OpenMP) wakes
# its thread pool for a 2 × 2 matrix, which costs milliseconds per call on a busy machine
# (measured: Newton on Rosenbrock 0.44 s with torch.linalg vs 0.05 s single-threaded).
_SCIPY_MAX_N = 512


def _use_scipy(B: torch.Tensor) -> bool:
    return (
        B.device.type == "cpu"
        and B.shape[0] <= _SCIPY_MAX_N
        and B.dtype in (torch.float32, torch.float64)
    )


def _small_cpu_cholesky(B: torch.Tensor):
    """``v -> B⁻¹v`` by Cholesky (SciPy LAPACK), or None when B is not positive definite."""
    import scipy.linalg

    try:
        cf = scipy.linalg.cho_factor(B.numpy(), check_finite=False)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.diag(cf[0]) > 0):  # potrf on a semidefinite B may return a zero pivot
        return None
    return lambda v: torch.from_numpy(scipy.linalg.cho_solve(cf, v.numpy(), check_finite=False))


def _torch_cholesky(B: torch.Tensor):
    L, info = torch.linalg.cholesky_ex(B)
    if int(info) != 0:
        return None
    return lambda v: torch.cholesky_solve(v.unsqueeze(1), L).squeeze(1)


def _eigvalsh(B: torch.Tensor) -> torch.Tensor:
    if _use_scipy(B):
        return torch.from_numpy(np.linalg.eigvalsh(B.numpy()))
    return torch.linalg.eigvalsh(B)


class Newton:
    """The lecture's Newton step ``d = −B⁻¹g``, with B = ∇²f(x) by autograd (or the user's).

    B is factored by Cholesky, ``B = LLᵀ``. When B is not positive definite, d would not be a
    descent direction, so ``B + τI`` is factored instead (N&W §3.4, "adding a multiple of the
    identity") with ``τ = 2|λ_min(B)|``: the most negative curvature becomes ``+|λ_min|`` and
    the rest of the spectrum moves by the least that achieves it. (N&W Algorithm 3.3 finds a τ in
    ``[|λ_min|, 2|λ_min|]`` by doubling from a guess β; taking it from ``eigvalsh`` avoids a bad
    β — on badly scaled problems such as Osborne 1 a β relative to diag B overshoots λ_min by
    10⁴ and stalls the method.) Near a strict minimizer τ = 0 and the step is the pure Newton
    step, whose local convergence is quadratic.
    """

    has_curvature = True

    def __init__(self, max_shift_tries: int = 60) -> None:
        self.max_shift_tries = max_shift_tries
        self.last_shift = 0.0

    def __call__(self, x, f, g, objective):
        B = objective.hess(x)
        if not bool(torch.isfinite(B).all()):
            return -g
        factor = _small_cpu_cholesky if _use_scipy(B) else _torch_cholesky
        L = factor(B)
        tau = 0.0
        if L is None:
            # Not positive definite: shift by τ = 2|λ_min| (the upper end of N&W's doubling
            # search, found directly), so the most negative curvature becomes +|λ_min|.
            lam = _eigvalsh(B)
            scale = max(1.0, float(lam.abs().max()))
            tau = max(-2.0 * float(lam[0]), math.sqrt(torch.finfo(B.dtype).eps) * scale)
            eye = torch.eye(B.shape[0], dtype=B.dtype, device=B.device)
            for _ in range(self.max_shift_tries):
                L = factor(B + tau * eye)
                if L is not None:
                    break
                tau *= 2.0
            else:
                return -g
        self.last_shift = tau
        return -L(g)

    def update(self, s, y) -> None:
        pass

    def reset(self) -> None:
        pass


class NewtonCG:
    """Truncated Newton: solve ``B d = −g`` approximately by conjugate gradients on H·v products.

    Each product ``B·p`` is one double backward (no n × n matrix). CG stops when
    ``‖B d + g‖ ≤ η‖g‖`` with the forcing term ``η = min(0.5, √‖g‖)`` (N&W eq. 7.3 and
    Algorithm 7.1; Eisenstat–Walker-type, superlinear convergence), or on negative curvature
    ``pᵀBp ≤ 0``: then the current iterate is returned, or on the very first CG step the
    steepest-descent direction scaled by ``gᵀg / |gᵀBg|``.
    """

    has_curvature = True

    def __init__(self, max_cg: int | None = None) -> None:
        self.max_cg = max_cg
        self.cg_iters = 0

    def __call__(self, x, f, g, objective):
        gnorm = float(torch.linalg.vector_norm(g))
        tol = min(0.5, math.sqrt(gnorm)) * gnorm
        max_cg = self.max_cg or 20 * g.numel()
        z = torch.zeros_like(g)
        r = g.clone()  # residual B z + g
        p = -r
        rr = float(r @ r)
        for j in range(max_cg):
            Bp = objective.hessp(x, p)
            curv = float(p @ Bp)
            self.cg_iters += 1
            if not math.isfinite(curv):
                return -g if j == 0 else z
            if curv <= 0.0:
                if j == 0:
                    return -g * (rr / abs(curv)) if curv < 0.0 else -g
                return z
            alpha = rr / curv
            z = z.add(p, alpha=alpha)
            r = r.add(Bp, alpha=alpha)
            rr_new = float(r @ r)
            if math.sqrt(rr_new) <= tol:
                return z
            p = (-r).add(p, alpha=rr_new / rr)
            rr = rr_new
        return z

    def update(self, s, y) -> None:
        pass

    def reset(self) -> None:
        pass


def _curvature_ok(sy: float, s: torch.Tensor, y: torch.Tensor) -> bool:
    """``yᵀs > 0`` with a margin for rounding (skip the pair otherwise)."""
    if not math.isfinite(sy) or sy <= 0.0:
        return False
    eps = torch.finfo(s.dtype).eps
    return sy > eps * float(torch.linalg.vector_norm(s)) * float(torch.linalg.vector_norm(y))


class BFGS:
    """Dense inverse-Hessian BFGS: the lecture's update, ``d = −H g``.

    After an accepted step (s, y) with ``ρ = 1/(yᵀs)`` and ``V = I − ρ y sᵀ``::

        H₊ = Vᵀ H V + ρ s sᵀ
           = H − ρ (H y sᵀ + s yᵀ H) + (ρ² yᵀHy + ρ) s sᵀ      (three rank-one updates, O(n²))

    which keeps H symmetric positive definite whenever yᵀs > 0 and satisfies the secant
    equation ``H₊ y = s``. H₀ = I as in the lecture (and SciPy); the first trial step along
    ``−g`` is then sized from a linear model (see :mod:`._loop`). ``h0="scaled"`` instead rescales
    H₀ to ``(yᵀs / yᵀy)·I`` just before the first update (N&W eq. 6.20).

    Why H₀ = I is the default (the design sketch had "scaled"): on the 29-problem test set the
    scaled start took more iterations on most badly scaled problems (ill-conditioned quadratic
    n = 20, κ = 10⁴: 121 iterations vs 20; Osborne 1: 91 vs 51; Box 3-D: 33 vs 9), because
    ``yᵀs / yᵀy`` tracks the *largest* curvature, so H starts too small in every other direction
    and BFGS corrects too-small eigenvalues of H slowly; median function evaluations against
    SciPy were 1.07× scaled vs 1.00× identity. Pairs with ``yᵀs ≤ 0`` are skipped (they cannot
    occur after a strong-Wolfe step, but can after an Armijo one).
    """

    def __init__(self, h0: str = "identity") -> None:
        self.h0 = h0
        self.H: torch.Tensor | None = None
        self.skipped = 0

    @property
    def has_curvature(self) -> bool:
        return self.H is not None

    def __call__(self, x, f, g, objective):
        if self.H is None:
            return -g
        return -(self.H @ g)

    def update(self, s, y) -> None:
        sy = float(s @ y)
        if not _curvature_ok(sy, s, y):
            self.skipped += 1
            return
        if self.H is None:
            scale = sy / float(y @ y) if self.h0 == "scaled" else 1.0
            self.H = torch.diag(torch.full_like(s, scale))
        H = self.H
        rho = 1.0 / sy
        Hy = H @ y
        yHy = float(y @ Hy)
        H.addr_(s, s, alpha=rho * rho * yHy + rho)
        H.addr_(Hy, s, alpha=-rho)
        H.addr_(s, Hy, alpha=-rho)

    def reset(self) -> None:
        self.H = None


def two_loop(g, pairs, gamma):
    """``H·g`` for the L-BFGS matrix H built from ``pairs`` [(s, y, ρ), oldest first] on
    ``H₀ = γI``: the two-loop recursion (N&W Algorithm 7.4), O(m·n).

    The lecture's pseudocode has ``alpha[i] = s[i]ᵀq / (y[i]ᵀs[i])`` (ρᵢ folded into αᵢ), but
    its second loop drops ρᵢ — ``res += s[i] * (alpha[i] - y[i]ᵀ r)`` — and names the result
    ``res`` then ``r``. This follows the published algorithm (Nocedal & Wright, *Numerical
    Optimization*, 2nd ed., Algorithm 7.4) with ``ρᵢ = 1/(yᵢᵀsᵢ)`` in both loops::

        q = g
        for i = k−1, …, k−m:   αᵢ = ρᵢ sᵢᵀq ;  q = q − αᵢ yᵢ
        r = γ q
        for i = k−m, …, k−1:   βᵢ = ρᵢ yᵢᵀr ;  r = r + sᵢ (αᵢ − βᵢ)
        return r               # = H g

    Without ρᵢ in βᵢ the result is not H·g (and not even a descent direction in general).

    Example:
        >>> import torch
        >>> s, y = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])
        >>> two_loop(torch.tensor([4.0, 1.0]), [(s, y, 0.5)], 1.0)  # H = diag(1/2, 1)
        tensor([2., 1.])
    """
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * float(s @ q)
        q.add_(y, alpha=-a)
        alphas.append(a)
    r = q.mul_(gamma)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * float(y @ r)
        r.add_(s, alpha=a - b)
    return r


def _blas_level1(t: torch.Tensor):
    """``(dot, axpy)`` of SciPy's BLAS for CPU float32 / float64 tensors, else None."""
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return None
    import scipy.linalg.blas as blas

    return (blas.ddot, blas.daxpy) if t.dtype == torch.float64 else (blas.sdot, blas.saxpy)


def _two_loop_blas(g: np.ndarray, pairs, gamma: float, dot, axpy) -> np.ndarray:
    """:func:`two_loop` on NumPy views, one BLAS call per dot product and per axpy."""
    q = np.array(g)  # a contiguous copy
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * dot(s, q)
        q = axpy(y, q, a=-a)  # in place: q is contiguous of the right type
        alphas.append(a)
    q *= gamma
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        q = axpy(s, q, a=a - rho * dot(y, q))
    return q


class LBFGS:
    """Limited-memory BFGS: ``d = −H g`` by the two-loop recursion over the last m pairs.

    ``H₀ = γ I`` with ``γ = sᵀy / yᵀy`` from the newest pair (the lecture's ``H_t⁰``,
    N&W eq. 7.20). Memory O(m·n), time O(m·n) per direction. Pairs with ``yᵀs ≤ 0`` are skipped.
    The very first step, along −g, is tried at t = 1/‖g‖₂ as in L-BFGS-B (see :mod:`._loop`);
    with ``h0="first"`` at BFGS's first trial step instead.

    On the CPU (float32 / float64) the recursion runs on NumPy views of the same tensors (no
    copies) with SciPy's BLAS ``dot`` / ``axpy``: each torch call costs a few µs of dispatch,
    and the 4m calls of :func:`two_loop` took ~70 µs per direction at n = 650, m = 10 against
    ~14 µs this way (same arithmetic; results agree to rounding). At n = 10⁶ both are
    memory-bound and equal. Elsewhere (CUDA) :func:`two_loop` itself runs.

    The two-loop recursion, not the compact representation of Byrd, Nocedal & Schnabel (1994):
    rebuilding its 2m × 2m middle matrix costs what it saves, and it reads the history three
    times per iteration instead of two (measurements: docs/benchmarks/what_we_tried.md).

    Args:
        history: m, number of (s, y) pairs kept (default 10).
        h0: ``"last"`` (γ from the newest pair, default) or ``"first"`` (γ from the first pair
            ever accepted, so that with m ≥ iterations the result equals dense :class:`BFGS`).
    """

    def __init__(self, history: int = 10, h0: str = "last") -> None:
        self.history, self.h0 = history, h0
        # first trial step 1/‖g₀‖₂ as L-BFGS-B; h0="first" keeps BFGS's, to equal dense BFGS
        self.first_step_inverse_gnorm = h0 == "last"
        self.pairs: deque = deque(maxlen=history)
        self._np_pairs: deque = deque(maxlen=history)  # the same pairs as NumPy views (CPU)
        self._blas = None  # (dot, axpy) when the pairs live on the CPU
        self.gamma: float | None = None
        self.skipped = 0

    @property
    def has_curvature(self) -> bool:
        return len(self.pairs) > 0

    def __call__(self, x, f, g, objective):
        if not self.pairs:
            return -g
        if self._blas is not None and g.dtype == self.pairs[0][0].dtype:
            d = _two_loop_blas(g.detach().cpu().numpy(), self._np_pairs, self.gamma, *self._blas)
            return torch.from_numpy(d).neg_()
        return two_loop(g, list(self.pairs), self.gamma).neg_()

    def update(self, s, y) -> None:
        if not self.pairs:
            self._blas = _blas_level1(s)
        if self._blas is not None:
            dot = self._blas[0]
            sn, yn = (
                np.ascontiguousarray(s.detach().numpy()),
                np.ascontiguousarray(y.detach().numpy()),
            )
            sy, yy = dot(sn, yn), dot(yn, yn)
            norms = math.sqrt(dot(sn, sn)) * math.sqrt(yy)
        else:
            sy, yy = float(s @ y), float(y @ y)
            norms = float(torch.linalg.vector_norm(s)) * float(torch.linalg.vector_norm(y))
        if not (math.isfinite(sy) and sy > 0.0 and sy > torch.finfo(s.dtype).eps * norms):
            self.skipped += 1  # as _curvature_ok
            return
        if self.h0 == "last" or self.gamma is None:
            self.gamma = sy / yy
        self.pairs.append((s, y, 1.0 / sy))
        if self._blas is not None:
            self._np_pairs.append((sn, yn, 1.0 / sy))

    def reset(self) -> None:
        self.pairs.clear()
        self._np_pairs.clear()
        self.gamma = None
