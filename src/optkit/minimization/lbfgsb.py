"""L-BFGS-B: limited-memory BFGS for bound-constrained problems, on torch.

Solves ``min f(x)`` subject to ``l ≤ x ≤ u`` (componentwise; ``lᵢ = −∞`` or ``uᵢ = +∞`` where a
variable has no bound) by the method of Byrd, Lu, Nocedal & Zhu (1995), the algorithm of SciPy's
``method="L-BFGS-B"`` (L-BFGS-B 3.0, with the subspace correction of Morales & Nocedal 2011).

Symbols: x the iterate, g = ∇f(x), m the memory (``maxcor``), sᵢ = xᵢ₊₁ − xᵢ and
yᵢ = gᵢ₊₁ − gᵢ the last k ≤ m pairs, S = [s₁ … s_k] and Y = [y₁ … y_k] (n × k, oldest first).

**Compact representation** (Byrd, Nocedal & Schnabel 1994, eq. 3.2; BLNZ eq. 3.2–3.4). The
L-BFGS matrix started from B₀ = θI is::

    B = θI − W M Wᵀ,        W = [Y  θS]                  (n × 2k)
    M = [ −D   Lᵀ  ]⁻¹     D = diag(sᵢᵀyᵢ),  Lᵢⱼ = sᵢᵀyⱼ (i > j), else 0
        [  L  θSᵀS ]       θ = yᵀy / sᵀy of the newest pair

M is formed through the Cholesky factor of T = θSᵀS + L D⁻¹ Lᵀ (block elimination of −D).

**Generalized Cauchy point** (BLNZ §4). Along the projected steepest-descent path
x(t) = P(x − t g), P the projection on the box, each variable stops at its breakpoint
tᵢ = (xᵢ − lᵢ)/gᵢ (gᵢ > 0) or (xᵢ − uᵢ)/gᵢ (gᵢ < 0). Between breakpoints t_{j} ≤ t ≤ t_{j+1}
the path is x(t_j) + Δt dʲ (dʲ = −g on the variables not yet stopped) and the quadratic model
m(x) = gᵀ(x − x_k) + ½ (x − x_k)ᵀ B (x − x_k) is a parabola in Δt with::

    f′_j  = gᵀdʲ + dʲᵀ B zʲ = −‖dʲ‖² + θ t_j ‖dʲ‖² − pʲᵀ M cʲ        zʲ = x(t_j) − x_k
    f″_j  = dʲᵀ B dʲ = θ‖dʲ‖² − pʲᵀ M pʲ                             pʲ = Wᵀdʲ,  cʲ = Wᵀzʲ

The GCP x^c is the first local minimizer of m on the path: the first segment j with
Δt* = −f′_j / f″_j < t_{j+1} − t_j, at x(t_j) + max(Δt*, 0) dʲ. The breakpoints are sorted and
f′_j, f″_j computed for all segments at once (cumulative sums of pʲ and cʲ), O(k²) per segment.

**Subspace minimization** (BLNZ §5.1, direct primal method). With Z the free variables at x^c
(not at a bound there), minimize the model over them, the others held at x^c::

    r̂  = −Zᵀ(g + B(x^c − x))
    d̂  = B̂⁻¹ r̂ = r̂/θ + Ŵ K⁻¹ Ŵᵀ r̂ / θ²,     Ŵ = ZᵀW,  K = M⁻¹ − ŴᵀŴ/θ   (Sherman–Morrison–Woodbury)

K = [[−D − ŶᵀŶ/θ, Lᵀ − ŶᵀŜ], [L − ŜᵀŶ, θ(SᵀS − ŜᵀŜ)]] is solved by block elimination with two
Cholesky factorizations (L-BFGS-B's ``formk``). Then the step is projected on the box,
x̄ = P(x^c + Z d̂) (Morales & Nocedal 2011); if that projection leaves an ascent direction,
(x̄ − x)ᵀg > 0, the step backtracks instead to the largest α ≤ 1 with x^c + α Z d̂ in the box.

**Line search.** Along d = x̄ − x, the Moré–Thuente search (MINPACK-2 ``dcsrch``, as L-BFGS-B:
ftol = 10⁻³, gtol = 0.9, xtol = 0.1), with the step capped at the box (t ≤ t_max, the largest t
keeping x + t d feasible), first trial t = 1 (on the first iteration of a not fully boxed
problem, t = min(1/‖d‖, 1)), at most ``maxls`` evaluations.

**Update.** s = t d, y = g₊ − g; the pair is skipped when sᵀy ≤ ε·(−gᵀs) (ε the machine epsilon,
L-BFGS-B 3.0's curvature test), else appended, dropping the oldest beyond m. A failed line
search or a non-positive-definite factorization discards the memory and restarts from steepest
descent; a failed search with an empty memory ends the run (status 2).

**Stopping tests** (SciPy's, in SciPy's order, after each iteration): the callback raising
``StopIteration`` (status 99); ``nit ≥ maxiter`` or ``nfev > maxfun`` (status 1); the projected
gradient ``max |proj gᵢ| ≤ gtol`` with proj gᵢ = clip(gᵢ, xᵢ − uᵢ, xᵢ − lᵢ) (status 0); the
relative reduction ``(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol`` (status 0). The
projected-gradient test also runs at x0.

References:
    R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited memory algorithm for bound
    constrained optimization", SIAM J. Sci. Comput. 16(5), 1190–1208 (1995). (BLNZ)

    R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton matrices and
    their use in limited memory methods", Math. Programming 63, 129–156 (1994).

    J. L. Morales and J. Nocedal, "Remark on Algorithm 778: L-BFGS-B", ACM TOMS 38(1), 2011.

    J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed sufficient
    decrease", ACM TOMS 20(3), 286–307 (1994).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .result import OptimizeResult, Status

__all__ = ["CompactLBFGS", "LbfgsInvHessProduct", "cauchy_point", "minimize_lbfgsb"]

# SciPy's messages (its ``task`` strings), keyed by why the run stopped.
MESSAGES = {
    "pgtol": "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
    "ftol": "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
    "maxiter": "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
    "maxfun": "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
    "abnormal": "ABNORMAL: ",
    "callback": "`callback` raised `StopIteration`.",
    "nonfinite": "NaN or Inf in the objective or its gradient",
}

_BIG_STEP = 1e10  # L-BFGS-B's step cap without bounds


# --- the inverse-Hessian operator -----------------------------------------------------------------
class LbfgsInvHessProduct:
    """The L-BFGS inverse-Hessian approximation H as a linear operator (SciPy's semantics).

    ``H v`` by the two-loop recursion (Nocedal 1980) over the pairs, oldest first, from
    H₀ = ``h0``·I — SciPy's :class:`scipy.optimize.LbfgsInvHessProduct` uses H₀ = I, the default
    here; pass ``h0 = 1/θ`` for the inverse of the compact B of the run::

        q = v;  for i = k … 1:  αᵢ = ρᵢ sᵢᵀq,  q = q − αᵢ yᵢ          ρᵢ = 1 / sᵢᵀyᵢ
        r = h0·q; for i = 1 … k:  βᵢ = ρᵢ yᵢᵀr,  r = r + (αᵢ − βᵢ) sᵢ

    Args:
        sk: ``(n_corrs, n)`` tensor (or array) of steps sᵢ, oldest first.
        yk: ``(n_corrs, n)`` gradient differences yᵢ.
        h0: Scale of the initial matrix H₀ = h0·I.

    Attributes:
        shape: ``(n, n)``. dtype: the torch dtype of the pairs. sk, yk, rho, n_corrs.

    Products accept a torch tensor or a NumPy array / list, of shape ``(n,)``, ``(n, 1)`` or
    ``(n, p)``, and return the same kind (NumPy in, NumPy out). ``todense()`` returns a tensor,
    or an array when the operator was built with ``numpy=True``.

    Example:
        >>> import torch
        >>> s = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
        >>> y = torch.tensor([[2.0, 0.0]], dtype=torch.float64)
        >>> H = LbfgsInvHessProduct(s, y)
        >>> H.todense().tolist()
        [[0.5, 0.0], [0.0, 1.0]]
        >>> (H @ [1.0, 1.0]).tolist()
        [0.5, 1.0]
    """

    def __init__(self, sk: Any, yk: Any, h0: float = 1.0, *, numpy: bool = False) -> None:
        sk, yk = torch.as_tensor(sk), torch.as_tensor(yk)
        if sk.shape != yk.shape or sk.ndim != 2:
            raise ValueError(
                f"sk and yk must have matching shape (n_corrs, n), got {tuple(sk.shape)} and "
                f"{tuple(yk.shape)}"
            )
        if not sk.is_floating_point():
            sk, yk = sk.double(), yk.double()
        self.sk, self.yk = sk, yk.to(sk)
        self.n_corrs, n = sk.shape
        self.shape = (n, n)
        self.dtype = sk.dtype
        self.h0 = float(h0)
        self.rho = 1.0 / (sk * self.yk).sum(1)
        self.numpy = numpy

    def _apply(self, Q: torch.Tensor) -> torch.Tensor:
        """Two-loop recursion on the columns of ``Q`` (n × p)."""
        s, y, rho = self.sk, self.yk, self.rho
        alpha = []
        for i in range(self.n_corrs - 1, -1, -1):
            a = rho[i] * (s[i] @ Q)
            Q = Q - y[i][:, None] * a
            alpha.append(a)
        R = self.h0 * Q
        for i, a in zip(range(self.n_corrs), reversed(alpha)):
            b = rho[i] * (y[i] @ R)
            R = R + s[i][:, None] * (a - b)
        return R

    def matmat(self, X: Any) -> Any:
        """``H X`` for an ``(n, p)`` matrix."""
        is_np = not isinstance(X, torch.Tensor)
        T = torch.as_tensor(np.asarray(X) if is_np else X).to(self.sk)
        if T.ndim != 2 or T.shape[0] != self.shape[0]:
            raise ValueError(f"expected shape ({self.shape[0]}, p), got {tuple(T.shape)}")
        R = self._apply(T)
        return R.cpu().numpy() if is_np else R

    def matvec(self, v: Any) -> Any:
        """``H v`` for a vector of shape ``(n,)`` or ``(n, 1)`` (the shape is kept)."""
        is_np = not isinstance(v, torch.Tensor)
        t = torch.as_tensor(np.asarray(v) if is_np else v).to(self.sk)
        if t.shape not in ((self.shape[0],), (self.shape[0], 1)):
            raise ValueError(
                f"expected shape ({self.shape[0]},) or ({self.shape[0]}, 1), got {tuple(t.shape)}"
            )
        r = self._apply(t.reshape(-1, 1)).reshape(t.shape)
        return r.cpu().numpy() if is_np else r

    rmatvec = matvec  # H is symmetric

    def dot(self, x: Any) -> Any:
        """``H x`` for a vector or a matrix."""
        nd = x.ndim if isinstance(x, torch.Tensor) else np.ndim(x)
        return self.matvec(x) if nd == 1 or (nd == 2 and np.shape(x)[1] == 1) else self.matmat(x)

    __matmul__ = dot
    __call__ = dot

    def todense(self) -> Any:
        """The dense ``n × n`` matrix H."""
        eye = torch.eye(self.shape[0], dtype=self.dtype, device=self.sk.device)
        H = self._apply(eye)
        return H.cpu().numpy() if self.numpy else H

    @property
    def T(self) -> LbfgsInvHessProduct:
        return self

    def transpose(self) -> LbfgsInvHessProduct:
        return self

    def __repr__(self) -> str:
        n = self.shape[0]
        return f"<{n}x{n} LbfgsInvHessProduct with dtype={str(self.dtype).removeprefix('torch.')}>"


# --- the compact representation ------------------------------------------------------------------
class CompactLBFGS:
    """The last ``m`` curvature pairs and B = θI − W M Wᵀ (module docstring, BNS94 eq. 3.2).

    Attributes:
        S, Y: ``(k, n)`` pairs, oldest first. SY: ``SY[i, j] = sᵢᵀyⱼ`` for i ≥ j (lower part).
        SS: ``SᵀS`` (k × k). theta: θ. M: the ``2k × 2k`` middle matrix, None when k = 0.
    """

    def __init__(self, n: int, m: int, dtype: torch.dtype, device: torch.device) -> None:
        self.n, self.m, self.dtype, self.device = n, m, dtype, device
        self.reset()

    def reset(self) -> None:
        """Forget every pair: B = I."""
        z = torch.zeros(0, self.n, dtype=self.dtype, device=self.device)
        self.S, self.Y = z, z.clone()
        self.SY = torch.zeros(0, 0, dtype=self.dtype, device=self.device)
        self.SS = self.SY.clone()
        self.theta = 1.0
        self.M: torch.Tensor | None = None
        self.Wt = torch.zeros(0, self.n, dtype=self.dtype, device=self.device)

    @property
    def k(self) -> int:
        return self.S.shape[0]

    def update(self, s: torch.Tensor, y: torch.Tensor, sty: float, sts: float, yty: float) -> bool:
        """Append the pair (s, y) with sᵀy, sᵀs, yᵀy given; False when M cannot be formed."""
        S, Y, SY, SS = self.S, self.Y, self.SY, self.SS
        if self.k == self.m:
            S, Y, SY, SS = S[1:], Y[1:], SY[1:, 1:], SS[1:, 1:]
        k = S.shape[0] + 1
        sy_row = Y @ s  # s_newᵀ y_j
        ss_col = S @ s
        SYn = torch.zeros(k, k, dtype=self.dtype, device=self.device)
        SYn[:-1, :-1] = SY
        SYn[-1, :-1] = sy_row
        SYn[-1, -1] = sty
        SSn = torch.zeros(k, k, dtype=self.dtype, device=self.device)
        SSn[:-1, :-1] = SS
        SSn[:-1, -1] = ss_col
        SSn[-1, :-1] = ss_col
        SSn[-1, -1] = sts
        self.S = torch.cat([S, s[None]])
        self.Y = torch.cat([Y, y[None]])
        self.SY, self.SS = SYn, SSn
        self.theta = yty / sty
        return self._form_middle()

    def _form_middle(self) -> bool:
        """M = [[−D, Lᵀ], [L, θSᵀS]]⁻¹ through the Cholesky factor of T = θSᵀS + L D⁻¹ Lᵀ."""
        theta, D = self.theta, torch.diagonal(self.SY)
        L = torch.tril(self.SY, -1)
        LDinv = L / D  # L D⁻¹
        T = theta * self.SS + LDinv @ L.T
        J, info = torch.linalg.cholesky_ex(T)
        if int(info) != 0:
            return False
        Tinv = torch.cholesky_inverse(J)
        M12 = LDinv.T @ Tinv  # D⁻¹ Lᵀ T⁻¹
        M11 = torch.diag(-1.0 / D) + M12 @ LDinv  # −D⁻¹ + D⁻¹ Lᵀ T⁻¹ L D⁻¹
        self.M = torch.cat([torch.cat([M11, M12], 1), torch.cat([M12.T, Tinv], 1)], 0)
        self.Wt = torch.cat([self.Y, theta * self.S])  # Wᵀ
        return bool(torch.isfinite(self.M).all())

    def B_times(self, v: torch.Tensor) -> torch.Tensor:
        """``B v`` (used by the tests and by the subspace step's right-hand side)."""
        if self.k == 0:
            return v.clone()
        return self.theta * v - self.Wt.T @ (self.M @ (self.Wt @ v))

    def dense(self) -> torch.Tensor:
        """The dense ``n × n`` matrix B (for tests and small problems)."""
        return self.B_times(torch.eye(self.n, dtype=self.dtype, device=self.device))


# --- generalized Cauchy point --------------------------------------------------------------------
def cauchy_point(
    x: torch.Tensor,
    g: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    mem: CompactLBFGS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The generalized Cauchy point of the model along P(x − t g) (BLNZ Algorithm CP).

    Args:
        x: The iterate, inside the box.
        g: ∇f(x).
        lower, upper: The bounds (±inf where none).
        mem: The compact representation of B.

    Returns:
        ``(xc, c, free)``: the GCP, c = Wᵀ(xc − x) (length 2k), and the mask of the variables
        free at xc (not at a bound that g pushes against, not passed on the path, not fixed by
        l = u).
    """
    theta, k = mem.theta, mem.k
    eps = torch.finfo(x.dtype).eps
    has_l, has_u = torch.isfinite(lower), torch.isfinite(upper)
    neg = -g
    fixed = has_l & has_u & (upper - lower <= 0)
    at_l = has_l & (x - lower <= 0)
    at_u = has_u & (upper - x <= 0) & ~at_l
    stuck = fixed | (at_l & (neg <= 0)) | (at_u & (neg >= 0))
    bounded = has_l | has_u
    flat = bounded & ~stuck & ~at_l & ~at_u & (neg == 0)  # free, but the path does not move it
    moving = ~stuck & ~flat
    d = torch.where(moving, neg, torch.zeros_like(neg))
    to_l = moving & has_l & (neg < 0)
    to_u = moving & ~to_l & has_u & (neg > 0)
    has_bp = to_l | to_u
    free = ~stuck
    zero2k = torch.zeros(2 * k, dtype=x.dtype, device=x.device)
    bnded = not bool((moving & ~has_bp & (neg != 0)).any())
    idx = torch.nonzero(has_bp).reshape(-1)
    nb = idx.numel()
    if nb == 0 and bool((moving & ~has_bp).sum() == 0):
        return x.clone(), zero2k, free
    dd = d @ d
    f1_0 = -dd
    f2_org = theta * dd
    p0 = mem.Wt @ d if k else zero2k
    M = mem.M
    if nb == 0:
        f2 = f2_org - (p0 @ (M @ p0)) if k else f2_org
        dtm = max(float(-f1_0 / f2), 0.0)
        return x + dtm * d, dtm * p0, free
    tl = (x - lower)[idx] / (-neg[idx])
    tu = (upper - x)[idx] / neg[idx]
    tb = torch.where(to_l[idx], tl, tu)
    tb, order = torch.sort(tb, stable=True)
    idx = idx[order]
    db = d[idx]
    tj = torch.cat([tb.new_zeros(1), tb])  # t_0 = 0, t_1 … t_K
    D = dd - torch.cat([db.new_zeros(1), torch.cumsum(db * db, 0)])  # ‖dʲ‖²
    if k:
        Wb = mem.Wt[:, idx].T  # rows w_b of W for the breakpoint variables
        P = p0 - torch.cat([p0.new_zeros(1, 2 * k), torch.cumsum(db[:, None] * Wb, 0)])
        dt = tj[1:] - tj[:-1]
        C = torch.cat([p0.new_zeros(1, 2 * k), torch.cumsum(dt[:, None] * P[:-1], 0)])
        MP = P @ M
        f2 = theta * D - (MP * P).sum(1)
        f1 = -D + theta * tj * D - (MP * C).sum(1)
    else:
        f2 = theta * D
        f1 = -D + theta * tj * D
    f2 = torch.cat([f2[:1], torch.clamp_min(f2[1:], eps * float(f2_org))])
    dtm_all = -f1 / f2
    seg = tj[1:] - tj[:-1]
    stop = torch.nonzero(dtm_all[:-1] < seg).reshape(-1)
    if stop.numel():
        j = int(stop[0])
        dtm = float(dtm_all[j])
    else:
        j = nb
        dtm = 0.0 if bnded else float(dtm_all[j])
    dtm = max(dtm, 0.0)
    passed = idx[:j]
    dj = d.clone()
    dj[passed] = 0.0
    xc = x + (float(tj[j]) + dtm) * dj
    xc[passed] = torch.where(d[passed] > 0, upper[passed], lower[passed])
    free = free.clone()
    free[passed] = False
    c = (C[j] + dtm * P[j]) if k else zero2k
    return xc, c, free


# --- subspace minimization -----------------------------------------------------------------------
def _subspace_step(x, g, lower, upper, xc, c, free, mem, constrained):
    """The subspace minimizer over the free variables, projected or backtracked (BLNZ §5.1,
    Morales–Nocedal 2011). Returns the new point z, or None when a factorization fails."""
    theta = mem.theta
    fi = torch.nonzero(free).reshape(-1)
    if not constrained:
        r = -g
    else:
        r = -(theta * (xc - x) + g - mem.Wt.T @ (mem.M @ c))[fi]
    Yf, Sf = mem.Y[:, fi], mem.S[:, fi]
    Dg = torch.diagonal(mem.SY)
    A1 = torch.diag(Dg) + (Yf @ Yf.T) / theta
    Bm = torch.tril(mem.SY, -1) - Sf @ Yf.T
    Cm = theta * (mem.SS - Sf @ Sf.T)
    La, info = torch.linalg.cholesky_ex(A1)
    if int(info) != 0:
        return None
    AinvBt = torch.cholesky_solve(Bm.T, La)  # A1⁻¹ Bᵀ
    Sc = Cm + Bm @ AinvBt
    Ls, info = torch.linalg.cholesky_ex(0.5 * (Sc + Sc.T))
    if int(info) != 0:
        return None
    b1, b2 = Yf @ r, theta * (Sf @ r)
    Ainvb1 = torch.cholesky_solve(b1[:, None], La)[:, 0]
    v2 = torch.cholesky_solve((b2 + Bm @ Ainvb1)[:, None], Ls)[:, 0]
    v1 = AinvBt @ v2 - Ainvb1
    dhat = (r + (Yf.T @ v1) / theta + Sf.T @ v2) / theta
    if not bool(torch.isfinite(dhat).all()):
        return None
    z = xc.clone()
    lf, uf, xf = lower[fi], upper[fi], xc[fi]
    trial = torch.minimum(torch.maximum(xf + dhat, lf), uf)
    z[fi] = trial
    hit = bool(((trial == lf) | (trial == uf)).any())
    if not hit or float((z - x) @ g) <= 0:
        return z
    # The projected step is not a descent direction: backtrack to the box instead.
    has_l, has_u = torch.isfinite(lf), torch.isfinite(uf)
    ratio = torch.full_like(dhat, math.inf)
    dn, dp = (dhat < 0) & has_l, (dhat > 0) & has_u
    a_l, a_u = lf - xf, uf - xf
    ratio = torch.where(dn, torch.where(a_l >= 0, 0.0, a_l / dhat), ratio)
    ratio = torch.where(dp, torch.where(a_u <= 0, 0.0, a_u / dhat), ratio)
    ibd = int(torch.argmin(ratio))
    alpha = min(1.0, float(ratio[ibd]))
    z[fi] = xf + alpha * dhat
    if alpha < 1.0:
        z[fi[ibd]] = uf[ibd] if float(dhat[ibd]) > 0 else lf[ibd]
    return z


# --- the Moré–Thuente line search (MINPACK-2 dcsrch / dcstep) -------------------------------------
def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """One safeguarded step of the Moré–Thuente search: the new trial and the updated interval.

    Returns (stx, fx, dx, sty, fy, dy, stp, brackt). Cases as Moré & Thuente §4: 1) higher f,
    2) derivative sign change, 3) smaller |derivative|, 4) otherwise.
    """
    sgnd = dp * (dx / abs(dx)) if dx != 0.0 else math.nan  # NaN (no case 2) as MINPACK-2
    if fp > fx:  # case 1: cubic or the midpoint toward the quadratic minimizer
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max((theta / s) ** 2 - (dx / s) * (dp / s), 0.0))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:  # case 2: cubic or secant, whichever is farther from stp
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max((theta / s) ** 2 - (dx / s) * (dp / s), 0.0))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):  # case 3: the cubic only if it tends to infinity in the step's way
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = max(stpmin, min(stpmax, stpf))
    else:  # case 4: cubic through stp and sty, or the end of the interval
        if brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = s * math.sqrt(max((theta / s) ** 2 - (dy / s) * (dp / s), 0.0))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


class _MoreThuente:
    """MINPACK-2's ``dcsrch`` as a stateful object: ``start`` then ``step`` per evaluation.

    ``step(f, g)`` returns ``"fg"`` (evaluate at ``self.stp``), ``"converged"`` (both Wolfe
    conditions hold: f ≤ f₀ + ftol·t·g₀ and |g| ≤ gtol·|g₀|) or ``"warning"`` (rounding
    errors, the interval below xtol, or the step at stpmax/stpmin: accept the last trial).
    """

    def __init__(self, ftol=1e-3, gtol=0.9, xtol=0.1) -> None:
        self.ftol, self.gtol, self.xtol = ftol, gtol, xtol

    def start(self, f: float, g: float, stp: float, stpmin: float, stpmax: float) -> None:
        self.stp, self.stpmin, self.stpmax = stp, stpmin, stpmax
        self.brackt, self.stage = False, 1
        self.finit, self.ginit = f, g
        self.gtest = self.ftol * g
        self.width = stpmax - stpmin
        self.width1 = self.width / 0.5
        self.stx, self.fx, self.gx = 0.0, f, g
        self.sty, self.fy, self.gy = 0.0, f, g
        self.stmin, self.stmax = 0.0, stp + 4.0 * stp

    def step(self, f: float, g: float) -> str:
        stp = self.stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        task = "fg"
        if self.brackt and (stp <= self.stmin or stp >= self.stmax):
            task = "warning"
        if self.brackt and self.stmax - self.stmin <= self.xtol * self.stmax:
            task = "warning"
        if stp == self.stpmax and f <= ftest and g <= self.gtest:
            task = "warning"
        if stp == self.stpmin and (f > ftest or g >= self.gtest):
            task = "warning"
        if f <= ftest and abs(g) <= self.gtol * (-self.ginit):
            task = "converged"
        if task != "fg":
            return task
        gt = self.gtest
        if self.stage == 1 and f <= self.fx and f > ftest:  # the modified function ψ
            out = _dcstep(
                self.stx, self.fx - self.stx * gt, self.gx - gt,
                self.sty, self.fy - self.sty * gt, self.gy - gt,
                stp, f - stp * gt, g - gt, self.brackt, self.stmin, self.stmax,
            )  # fmt: skip
            stx, fxm, gxm, sty, fym, gym, stp, self.brackt = out
            self.stx, self.sty = stx, sty
            self.fx, self.fy = fxm + stx * gt, fym + sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            out = _dcstep(
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy,
                stp, f, g, self.brackt, self.stmin, self.stmax,
            )  # fmt: skip
            self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, self.brackt = out
        if self.brackt:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = stp + 1.1 * (stp - self.stx)
            self.stmax = stp + 4.0 * (stp - self.stx)
        stp = min(max(stp, self.stpmin), self.stpmax)
        if self.brackt and (
            stp <= self.stmin
            or stp >= self.stmax
            or self.stmax - self.stmin <= self.xtol * self.stmax
        ):
            stp = self.stx
        self.stp = stp
        return "fg"


def _max_step(x, d, lower, upper) -> float:
    """Largest t ≤ 10¹⁰ with x + t·d inside the box (L-BFGS-B's ``stpmx``)."""
    t = _BIG_STEP
    neg, pos = (d < 0) & torch.isfinite(lower), (d > 0) & torch.isfinite(upper)
    if bool(neg.any()):
        gap = (lower - x)[neg]
        if bool((gap >= 0).any()):
            return 0.0
        t = min(t, float((gap / d[neg]).min()))
    if bool(pos.any()):
        gap = (upper - x)[pos]
        if bool((gap <= 0).any()):
            return 0.0
        t = min(t, float((gap / d[pos]).min()))
    return t


def _projected_grad_norm(x, g, lower, upper) -> float:
    """max |proj gᵢ| with proj gᵢ = clip(gᵢ, xᵢ − uᵢ, xᵢ − lᵢ) (``projgr``); NaN if g has one."""
    if g.numel() == 0:
        return 0.0
    pg = torch.where(g < 0, torch.maximum(x - upper, g), torch.minimum(x - lower, g))
    if bool(torch.isnan(g).any()):
        return math.nan
    return float(pg.abs().max())


# --- the driver ----------------------------------------------------------------------------------
def _check(name: str, value: Any, low: float, integer: bool) -> Any:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not integer:
        ok = ok or isinstance(value, (float, np.floating))
    if not ok or not value >= low or (not integer and math.isnan(value)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


def minimize_lbfgsb(
    objective,
    x0: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    *,
    maxcor: int = 10,
    ftol: float = 2.220446049250313e-09,
    gtol: float = 1e-05,
    maxiter: int = 15000,
    maxfun: int = 15000,
    maxls: int = 20,
    callback: Callable[[OptimizeResult], Any] | None = None,
) -> OptimizeResult:
    """Minimize ``f`` over the box ``lower ≤ x ≤ upper`` by L-BFGS-B (see the module docstring).

    The algorithm of SciPy's ``minimize(method="L-BFGS-B")``, option for option, on torch
    tensors of any float dtype and device; the same iterates up to rounding, so nit and nfev
    follow SciPy's (the tests pin them on bound-constrained problems).

    Args:
        objective: An :class:`~optkit.minimization.objective.Objective` over flat vectors of
            length ``x0.numel()``; its ``value_and_grad`` is called once per trial point and its
            ``nfev`` / ``njev`` counters are reported.
        x0: Starting point (any shape); projected on the box first, as SciPy does.
        lower, upper: Bounds of x0's shape, ``-inf`` / ``inf`` where there is none;
            ``lower ≤ upper`` (equal: the variable is fixed).
        maxcor: Memory m, the number of pairs kept (≥ 1, default 10).
        ftol: Relative-reduction tolerance on f (≥ 0, default 2.22e-9 = 10⁷·ε).
        gtol: Projected-gradient tolerance, ``max |proj gᵢ| ≤ gtol`` (≥ 0, default 1e-5).
        maxiter: Iteration limit (default 15000).
        maxfun: Evaluation limit, checked after each iteration (default 15000).
        maxls: Evaluations per line search (≥ 1, default 20).
        callback: ``callback(intermediate_result)`` after each iteration, with an
            :class:`OptimizeResult` holding ``x`` (x0's shape) and ``fun``; raising
            ``StopIteration`` ends the run with status 99. Its return value is ignored (SciPy).

    Returns:
        An :class:`OptimizeResult` with x (x0's shape), fun, jac (the full gradient ∇f(x),
        not the projected one, as SciPy), nit, nfev, njev, status (0 converged, 1 maxiter or
        maxfun, 2 line search failure, 3 NaN/Inf, 99 callback), success, SciPy's message, and
        ``hess_inv``, an :class:`LbfgsInvHessProduct` over the pairs in memory.

    Raises:
        ValueError: Bounds of the wrong shape, NaN in them, ``lower > upper``, ``lower = +inf``
            or ``upper = -inf``, a non-finite x0, or an option out of range.

    Example:
        >>> import torch
        >>> from optkit.minimization.objective import AutogradObjective
        >>> f = lambda x: ((x - 2.0) ** 2).sum()
        >>> x0 = torch.zeros(3, dtype=torch.float64)
        >>> obj = AutogradObjective.from_function(f, (3,), x0.dtype, x0.device)
        >>> inf = float("inf")
        >>> lo = torch.tensor([-inf, -inf, -inf], dtype=torch.float64)
        >>> hi = torch.tensor([1.0, inf, 3.0], dtype=torch.float64)
        >>> res = minimize_lbfgsb(obj, x0, lo, hi)
        >>> [round(v, 12) for v in res.x.tolist()], int(res.status), res.nit
        ([1.0, 2.0, 2.0], 0, 2)
        >>> res.message
        'CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL'

    Notes:
        Departures from SciPy, each for a reason: ``hess_inv`` holds the pairs oldest first
        (SciPy passes its circular buffer in storage order once more than ``maxcor`` updates
        were made); a NaN/Inf trial point in the line search halves the step toward the best
        one instead of feeding NaN to the Moré–Thuente interval, and NaN/Inf at x0 or at an
        accepted point ends the run with status 3; the iteration runs in x0's dtype (SciPy:
        always float64), with that dtype's ε in the curvature test.
    """
    maxcor = _check("maxcor", maxcor, 1, True)
    ftol = _check("ftol", ftol, 0.0, False)
    gtol = _check("gtol", gtol, 0.0, False)
    maxiter = _check("maxiter", maxiter, 0, True)
    maxfun = _check("maxfun", maxfun, 0, True)
    if isinstance(maxls, bool) or not isinstance(maxls, (int, np.integer)) or maxls <= 0:
        raise ValueError(f"maxls must be a positive integer, got {maxls!r}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    shape = tuple(x0.shape)
    x = x0.detach().reshape(-1).clone()
    lower, upper = _bounds(lower, upper, x, shape)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x0 must be finite (it contains NaN or Inf)")
    x = torch.minimum(torch.maximum(x, lower), upper)
    n = x.numel()
    eps = torch.finfo(x.dtype).eps
    has_l, has_u = torch.isfinite(lower), torch.isfinite(upper)
    constrained = bool((has_l | has_u).any())
    boxed = bool((has_l & has_u).all())
    mem = CompactLBFGS(n, maxcor, x.dtype, x.device)
    search = _MoreThuente()

    def finish(status: Status, message: str, nit: int) -> OptimizeResult:
        hess_inv = LbfgsInvHessProduct(mem.S, mem.Y)
        return OptimizeResult(
            x=x.reshape(shape),
            fun=f,
            jac=g.reshape(shape),
            nit=nit,
            nfev=objective.nfev,
            njev=objective.njev,
            nhev=getattr(objective, "nhev", 0),
            status=status,
            success=status == Status.SUCCESS,
            message=message,
            method="L-BFGS-B",
            hess_inv=hess_inv,
        )

    f, g = objective.value_and_grad(x)
    sbgnrm = _projected_grad_norm(x, g, lower, upper)
    if not (math.isfinite(f) and math.isfinite(sbgnrm) and bool(torch.isfinite(g).all())):
        return finish(Status.NONFINITE, MESSAGES["nonfinite"] + " at x0", 0)
    if sbgnrm <= gtol:
        return finish(Status.SUCCESS, MESSAGES["pgtol"], 0)

    it = 0  # iterations completed (L-BFGS-B's iter; also SciPy's nit)
    while True:
        # 1. generalized Cauchy point and 2. subspace minimization
        z = None
        if constrained or mem.k == 0:
            xc, c, free = cauchy_point(x, g, lower, upper, mem)
        else:
            xc, c, free = x, None, torch.ones(n, dtype=torch.bool, device=x.device)
        z = xc
        if mem.k and bool(free.any()):
            z = _subspace_step(x, g, lower, upper, xc, c, free, mem, constrained)
            if z is None:  # a factorization failed: forget the pairs, restart from −g
                mem.reset()
                continue
        # 3. line search along d = z − x, inside the box
        d = z - x
        dtd = float(d @ d)
        dnorm = math.sqrt(dtd)
        if constrained:
            stpmx = 1.0 if it == 0 else _max_step(x, d, lower, upper)
        else:
            stpmx = _BIG_STEP
        stp = min(1.0 / dnorm, stpmx) if it == 0 and not boxed else 1.0
        f_old, g_old, x_old = f, g, x
        gd_old = float(g @ d)
        ok = gd_old < 0 and stpmx > 0
        nonfinite = False
        nback = 0
        if ok:
            search.start(f, gd_old, min(stp, stpmx), 0.0, stpmx)
            while True:
                stp = search.stp
                if stp == 1.0:
                    xt = z
                else:
                    xt = torch.minimum(torch.maximum(torch.add(x_old, d, alpha=stp), lower), upper)
                if nback >= maxls:
                    ok = False
                    break
                ft, gt = objective.value_and_grad(xt)
                nback += 1
                gd = float(gt @ d)
                if not (math.isfinite(ft) and math.isfinite(gd)):
                    nonfinite = True  # shrink toward the best step, outside the interval logic
                    search.stp = search.stx + 0.5 * (stp - search.stx)
                    continue
                if search.step(ft, gd) != "fg":
                    x, f, g = xt, ft, gt
                    break
        if not ok:
            x, f, g = x_old, f_old, g_old
            if mem.k == 0:  # already steepest descent: nothing else to try
                if nonfinite:
                    return finish(Status.NONFINITE, MESSAGES["nonfinite"], it)
                return finish(Status.LINE_SEARCH, MESSAGES["abnormal"], it)
            mem.reset()
            continue
        # 4. the new iterate: callback, limits, convergence (SciPy's order)
        it += 1
        sbgnrm = _projected_grad_norm(x, g, lower, upper)
        if not (math.isfinite(sbgnrm) and bool(torch.isfinite(g).all())):
            return finish(Status.NONFINITE, MESSAGES["nonfinite"], it)
        if callback is not None:
            interim = OptimizeResult(
                x=x.reshape(shape).clone(),
                fun=f,
                jac=g.reshape(shape).clone(),
                nit=it,
                nfev=objective.nfev,
                njev=objective.njev,
                nhev=0,
                status=Status.SUCCESS,
                success=True,
                message="in progress",
                method="L-BFGS-B",
            )
            try:
                callback(interim)
            except StopIteration:
                return finish(Status.CALLBACK, MESSAGES["callback"], it)
        if it >= maxiter:
            return finish(Status.MAX_ITER, MESSAGES["maxiter"], it)
        if objective.nfev > maxfun:
            return finish(Status.MAX_ITER, MESSAGES["maxfun"], it)
        if sbgnrm <= gtol:
            return finish(Status.SUCCESS, MESSAGES["pgtol"], it)
        if f_old - f <= ftol * max(abs(f_old), abs(f), 1.0):
            return finish(Status.SUCCESS, MESSAGES["ftol"], it)
        # 5. the curvature pair
        y = g - g_old
        if stp == 1.0:
            sty, gts = gd - gd_old, -gd_old
            s = d
        else:
            sty, gts = (gd - gd_old) * stp, -gd_old * stp
            s = stp * d
        if sty <= eps * gts:
            continue  # skip the pair: too little curvature along s
        if not mem.update(s, y, sty, stp * stp * dtd, float(y @ y)):
            mem.reset()


def _bounds(lower, upper, x, shape):
    out = []
    for name, b in (("lower", lower), ("upper", upper)):
        b = torch.as_tensor(b)
        if tuple(b.shape) != shape and b.numel() != x.numel():
            raise ValueError(f"{name} must have x0's shape {shape}, got {tuple(b.shape)}")
        b = b.to(dtype=x.dtype, device=x.device).reshape(-1)
        if bool(torch.isnan(b).any()):
            raise ValueError(f"{name} must not contain NaN")
        out.append(b)
    lower, upper = out
    if bool((lower > upper).any()):
        i = int(torch.nonzero(lower > upper)[0])
        raise ValueError(
            f"lower must be <= upper: lower[{i}] = {float(lower[i])} > upper[{i}] = "
            f"{float(upper[i])}"
        )
    if bool((lower == math.inf).any()) or bool((upper == -math.inf).any()):
        raise ValueError("lower must be < inf and upper > -inf (no feasible point otherwise)")
    return lower, upper
