"""Search directions: steepest descent, Newton, Newton-CG, BFGS and L-BFGS.

Symbols (flat vectors in Rⁿ): x the iterate, f = f(x), g = ∇f(x), d the direction, t the step,
s = x₊ − x = t·d, y = g₊ − g, ρ = 1/(yᵀs), H an inverse-Hessian approximation, B = ∇²f(x).

Each class implements the :class:`._loop.Direction` protocol, and the one loop in
:mod:`._loop` drives them all:

* ``__call__(x, f, g, objective) -> d`` — the direction at x;
* ``update(s, y)`` — learn from an accepted step;
* ``reset()`` — forget curvature information (used after a failed step);
* ``trial_step(k, f_prev, f, gᵀd, ‖g‖₂) -> t₀`` — the line search's first trial step: 1 for
  Newton directions, the step that reaches the last decrease of f for −g and BFGS (SciPy's
  rule), 1 for L-BFGS once it has pairs and 1/‖g‖₂ on its very first step (L-BFGS-B's rule).

Vectors are torch tensors or, on the CPU fast path for NumPy functions, NumPy arrays; BFGS and
L-BFGS then run on SciPy's BLAS (:mod:`._cpu_blas`).
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import scipy.linalg.blas as _blas
import torch

from ._loop import last_decrease_step

try:  # the C kernels (setup.py builds them; without them the BLAS two-loop below runs)
    from ._lbfgsb_core import two_loop as _c_two_loop
except ImportError:  # pragma: no cover - a build without a C compiler
    _c_two_loop = None

__all__ = ["BFGS", "LBFGS", "Newton", "NewtonCG", "SteepestDescent", "two_loop"]


class SteepestDescent:
    """``d = −g``: the lecture's gradient descent direction; the step length comes from a line
    search instead of a fixed γ."""

    has_curvature = False
    guard_rise = True

    def __call__(self, x, f, g, objective):
        return -g

    def update(self, s, y) -> None:
        pass

    def reset(self) -> None:
        pass

    def trial_step(self, k, f_prev, f, dg, gnorm2) -> float:
        return last_decrease_step(f_prev, f, dg)


class _UnitStep:
    """Newton-type directions are scaled: the line search starts at t = 1."""

    guard_rise = False

    def trial_step(self, k, f_prev, f, dg, gnorm2) -> float:
        return 1.0


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


class Newton(_UnitStep):
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


class NewtonCG(_UnitStep):
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


def _curvature_ok(sy: float, s, y) -> bool:
    """``yᵀs > ε‖s‖‖y‖`` (positive with a margin for rounding; skip the pair otherwise)."""
    if not math.isfinite(sy) or sy <= 0.0:
        return False
    finfo = np.finfo if isinstance(s, np.ndarray) else torch.finfo
    return sy > finfo(s.dtype).eps * math.sqrt(float(s @ s)) * math.sqrt(float(y @ y))


class BFGS:
    """Dense inverse-Hessian BFGS: the lecture's update, ``d = −H g``.

    After an accepted step (s, y) with ``ρ = 1/(yᵀs)`` and ``V = I − ρ y sᵀ``::

        H₊ = Vᵀ H V + ρ s sᵀ
           = H − ρ (H y sᵀ + s yᵀ H) + (ρ² yᵀHy + ρ) s sᵀ      (rank-two updates, O(n²))

    which keeps H symmetric positive definite whenever yᵀs > 0 and satisfies the secant
    equation ``H₊ y = s``. H₀ = I as in the lecture (and SciPy), or the user's ``H0`` (SciPy's
    ``hess_inv0``); ``h0="scaled"`` instead rescales H₀ to ``(yᵀs / yᵀy)·I`` just before the first
    update (N&W eq. 6.20). Every line search starts at SciPy's trial step
    ``min(1, 2.02·(f_prev − f)/|gᵀd|)`` (:func:`._loop.last_decrease_step`): while H is still far
    from the inverse Hessian a unit step overshoots, and on Rosenbrock n = 50 starting at 1 cost
    1.9 evaluations per iteration against SciPy's 1.1 (480 against 390 evaluations in all).

    Why H₀ = I is the default (the design sketch had "scaled"): on the 29-problem test set the
    scaled start took more iterations on most badly scaled problems (ill-conditioned quadratic
    n = 20, κ = 10⁴: 121 iterations vs 20; Osborne 1: 91 vs 51; Box 3-D: 33 vs 9), because
    ``yᵀs / yᵀy`` tracks the *largest* curvature, so H starts too small in every other direction
    and BFGS corrects too-small eigenvalues of H slowly. Pairs with ``yᵀs ≤ 0`` are skipped (they
    cannot occur after a strong-Wolfe step, but can after an Armijo one).

    Attributes:
        H: The current H (a tensor, or on the NumPy path the full symmetric NumPy array), None
            before the first update.
    """

    guard_rise = True

    def __init__(self, h0: str = "identity", H0=None) -> None:
        self.h0, self.H0 = h0, H0
        self._H = None  # torch tensor, or _cpu_blas.SymmetricBLAS on the NumPy path
        self.skipped = 0
        if H0 is not None:
            self._H = self._start(H0)

    @staticmethod
    def _start(H0):
        if isinstance(H0, np.ndarray):
            from ._cpu_blas import SymmetricBLAS

            return SymmetricBLAS(H0)
        return H0.clone()

    @property
    def H(self):
        H = self._H
        return H if H is None or isinstance(H, torch.Tensor) else H.full()

    @property
    def has_curvature(self) -> bool:
        return self._H is not None

    def __call__(self, x, f, g, objective):
        H = self._H
        if H is None:
            return -g
        if isinstance(H, torch.Tensor):
            return -(H @ g)
        return -H.matvec(g)

    def update(self, s, y) -> None:
        numpy_path = isinstance(s, np.ndarray)
        sy = float(s @ y)
        if not _curvature_ok(sy, s, y):
            self.skipped += 1
            return
        if self._H is None:
            scale = sy / float(y @ y) if self.h0 == "scaled" else 1.0
            if numpy_path:
                self._H = self._start(np.eye(s.size, dtype=s.dtype) * scale)
            else:
                self._H = torch.diag(torch.full_like(s, scale))
        H = self._H
        rho = 1.0 / sy
        if numpy_path:
            Hy = H.matvec(y)
            yHy = float(y @ Hy)
            H.rank2(Hy, s, -rho)
            H.rank1(s, rho * rho * yHy + rho)
            return
        Hy = H @ y
        yHy = float(y @ Hy)
        H.addr_(s, s, alpha=rho * rho * yHy + rho)
        H.addr_(Hy, s, alpha=-rho)
        H.addr_(s, Hy, alpha=-rho)

    def reset(self) -> None:
        self._H = None

    def trial_step(self, k, f_prev, f, dg, gnorm2) -> float:
        return last_decrease_step(f_prev, f, dg)


def _level1(v):
    """``(dot, axpy)`` on a flat vector: SciPy BLAS for NumPy arrays and CPU float tensors (on
    NumPy views of them, no copy), torch otherwise."""
    from ._cpu_blas import level1

    if isinstance(v, np.ndarray) or v.device.type == "cpu":
        return level1(v.dtype)
    return None


def _torch_dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b)


def _torch_axpy(x: torch.Tensor, y: torch.Tensor, n: int, a: float) -> torch.Tensor:
    """``y ← a·x + y`` in place, BLAS's argument order."""
    return y.add_(x, alpha=a)


def _scal(dtype):
    return _blas.sscal if dtype == np.float32 else _blas.dscal


def two_loop(g, pairs, gamma, level1=None, copy=True):
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

    Args:
        g: The vector (tensor or NumPy array).
        pairs: ``(s, y, ρ)`` of the same kind as g.
        gamma: γ.
        level1: ``(dot, axpy)`` BLAS routines (:func:`._cpu_blas.level1`) for NumPy vectors:
            then every dot product and axpy is one BLAS call (~0.3 µs, against a few µs per
            torch call); None: torch operations.
        copy: Work on a copy of g (default); False: overwrite g (a contiguous NumPy array) with
            the result.

    Example:
        >>> import torch
        >>> s, y = torch.tensor([1.0, 0.0]), torch.tensor([2.0, 0.0])
        >>> two_loop(torch.tensor([4.0, 1.0]), [(s, y, 0.5)], 1.0)  # H = diag(1/2, 1)
        tensor([2., 1.])
    """
    n = g.shape[0]
    if level1 is None:
        dot, axpy = _torch_dot, _torch_axpy
        q = g.clone()
    else:
        dot, axpy = level1  # called directly: a Python wrapper would cost as much as the call
        q = np.array(g) if copy else g  # a contiguous copy
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * dot(s, q)
        q = axpy(y, q, n, -a)
        alphas.append(a)
    if level1 is None:
        q *= gamma
    else:
        _scal(q.dtype)(gamma, q)  # BLAS scal: 0.1 µs against 0.4 µs for ``q *= gamma``
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        q = axpy(s, q, n, a - rho * dot(y, q))
    return q


class LBFGS:
    """Limited-memory BFGS: ``d = −H g`` by the two-loop recursion over the last m pairs.

    ``H₀ = γ I`` with ``γ = sᵀy / yᵀy`` from the newest pair (the lecture's ``H_t⁰``,
    N&W eq. 7.20). Memory O(m·n), time O(m·n) per direction. Pairs with ``yᵀs ≤ 0`` are skipped.
    The very first step, along −g, is tried at t = 1/‖g‖₂ as in L-BFGS-B; later ones at t = 1.
    With ``h0="first"`` γ comes from the first pair and the trial steps are BFGS's, so that with
    m ≥ iterations the iterates equal dense :class:`BFGS` with ``h0="scaled"``.

    On the CPU (float32 / float64) the recursion runs with SciPy's BLAS ``dot`` / ``axpy``, on
    NumPy views of the same tensors (no copies) or on the NumPy vectors of the NumPy path: each
    torch call costs a few µs of dispatch, and the 4m calls of :func:`two_loop` in torch took
    ~70 µs per direction at n = 650, m = 10 against ~14 µs this way (same arithmetic; results
    agree to rounding). On the NumPy path in float64 the recursion is one call of a C kernel
    (``_lbfgsb_core.two_loop``, the same arithmetic; ~1 µs against ~8 µs of BLAS calls at
    m = 10, n = 20) where optkit was built with it. Elsewhere (CUDA) the recursion runs in torch.

    The two-loop recursion, not the compact representation of Byrd, Nocedal & Schnabel (1994):
    rebuilding its 2m × 2m middle matrix costs what it saves, and it reads the history three
    times per iteration instead of two (measurements: docs/benchmarks/what_we_tried.md).

    Args:
        history: m, number of (s, y) pairs kept (default 10; SciPy's ``maxcor``).
        h0: ``"last"`` (γ from the newest pair, default) or ``"first"`` (γ from the first pair
            ever accepted).
        guard_rise: The line search's guard after a rise of f (L-BFGS-B's ``dcsrch`` has it;
            optkit's lbfgs leaves it off, see :func:`.line_search.strong_wolfe`).

    Attributes:
        pairs: The kept ``(s, y, ρ)``, oldest first, as the loop's vectors.
        gamma: γ.
    """

    def __init__(self, history: int = 10, h0: str = "last", guard_rise: bool = False) -> None:
        self.history, self.h0 = history, h0
        self.guard_rise = guard_rise or h0 == "first"
        self.pairs: deque = deque(maxlen=history)
        self._views: deque = deque(maxlen=history)  # NumPy views of the pairs (CPU BLAS)
        self._level1 = None
        self._numpy = False  # vectors are NumPy arrays (the NumPy path)
        self._eps: float | None = None
        self.gamma: float | None = None
        self.skipped = 0

    @property
    def has_curvature(self) -> bool:
        return len(self.pairs) > 0

    def __call__(self, x, f, g, objective):
        if not self.pairs:
            return -g
        if self._numpy:  # the NumPy path: one dtype throughout, BLAS on the arrays themselves
            # H(−g) = −(H g) bit for bit (rounding is symmetric): start from −g, no copy more
            return self._two_loop_host(np.negative(g))
        if self._level1 is None or g.dtype != self.pairs[0][0].dtype:
            return two_loop(g, list(self.pairs), self.gamma).neg_()
        if isinstance(g, np.ndarray):
            return -two_loop(g, self._views, self.gamma, self._level1)
        d = two_loop(g.detach().cpu().numpy(), self._views, self.gamma, self._level1)
        return torch.from_numpy(d).neg_()

    def _two_loop_host(self, q: np.ndarray) -> np.ndarray:
        """``H q`` in place on a contiguous NumPy vector of the pairs' dtype: the C kernel for
        float64 (one call; the BLAS recursion is 4m calls of ~0.2 µs each plus their Python,
        ~8 µs at m = 10, n = 20, against ~1 µs), SciPy's BLAS otherwise."""
        if _c_two_loop is not None and q.dtype == np.float64:
            return _c_two_loop(q, self._views, self.gamma)
        return two_loop(q, self._views, self.gamma, self._level1, copy=False)

    def update(self, s, y) -> None:
        if self._numpy:  # the NumPy path: contiguous arrays of one dtype (the loop's own)
            dot = self._level1[0]
            sy, yy = dot(s, y), dot(y, y)
            if not (
                math.isfinite(sy)
                and sy > 0.0
                and sy > self._eps * (math.sqrt(dot(s, s)) * math.sqrt(yy))
            ):
                self.skipped += 1
                return
            if self.h0 == "last" or self.gamma is None:
                self.gamma = sy / yy
            pair = (s, y, 1.0 / sy)
            self.pairs.append(pair)
            self._views.append(pair)
            return
        if not self.pairs:
            self._level1 = _level1(s)
            self._numpy = isinstance(s, np.ndarray) and self._level1 is not None
        if self._level1 is not None:
            dot = self._level1[0]
            if isinstance(s, np.ndarray):
                sn, yn = np.ascontiguousarray(s), np.ascontiguousarray(y)
            else:
                sn = np.ascontiguousarray(s.detach().numpy())
                yn = np.ascontiguousarray(y.detach().numpy())
            sy, yy = dot(sn, yn), dot(yn, yn)
            norms = math.sqrt(dot(sn, sn)) * math.sqrt(yy)
        else:
            sy, yy = float(s @ y), float(y @ y)
            norms = float(torch.linalg.vector_norm(s)) * float(torch.linalg.vector_norm(y))
        if self._eps is None:
            finfo = np.finfo if isinstance(s, np.ndarray) else torch.finfo
            self._eps = float(finfo(s.dtype).eps)
        if not (math.isfinite(sy) and sy > 0.0 and sy > self._eps * norms):
            self.skipped += 1  # as _curvature_ok
            return
        if self.h0 == "last" or self.gamma is None:
            self.gamma = sy / yy
        self.pairs.append((s, y, 1.0 / sy))
        if self._level1 is not None:
            self._views.append((sn, yn, 1.0 / sy))

    def reset(self) -> None:
        self.pairs.clear()
        self._views.clear()
        self.gamma = None
        self._numpy = False  # decided again at the next first pair

    def trial_step(self, k, f_prev, f, dg, gnorm2) -> float:
        if self.h0 == "first":
            return last_decrease_step(f_prev, f, dg)
        if self.pairs:
            return 1.0
        if k == 1:  # L-BFGS-B's first trial step along −g: 1/‖g‖₂, not capped at 1
            return 1.0 / gnorm2 if gnorm2 > 0 and math.isfinite(gnorm2) else 1.0
        return last_decrease_step(f_prev, f, dg)

    def inverse_hessian(self):
        """The current H (H₀ = γI and the kept pairs) as an
        :class:`~optkit.minimization.lbfgsb.LbfgsInvHessProduct`, NumPy in and out when the
        pairs are NumPy vectors."""
        from .lbfgsb import LbfgsInvHessProduct

        if not self.pairs:
            return None
        S = [p[0] for p in self.pairs]
        Y = [p[1] for p in self.pairs]
        if isinstance(S[0], np.ndarray):
            return LbfgsInvHessProduct(np.stack(S), np.stack(Y), self.gamma, numpy=True)
        return LbfgsInvHessProduct(torch.stack(S), torch.stack(Y), self.gamma)
