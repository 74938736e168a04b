"""L-BFGS-B: limited-memory BFGS for bound-constrained problems, in NumPy.

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

With V = [Y  S] (W = V·diag(I, θI)) the same matrix reads, θ out of the n-vectors::

    B = θ (I − V N⁻¹ Vᵀ),    N = [ −θD   Lᵀ  ]   (= θ·diag(I, θI)⁻¹ M⁻¹ diag(I, θI)⁻¹)
                                 [   L  SᵀS ]

V and N are stored with each pair's two rows (and columns) side by side (y₁, s₁, y₂, s₂, …),
so a new pair writes two rows and columns and the oldest one leaves without a copy
(:class:`CompactLBFGS`); N is LU-factored once per update, for the solves N⁻¹q below.
(L-BFGS-B factors T = θSᵀS + L D⁻¹ Lᵀ by Cholesky instead, ``formt``, and restarts when T is
not numerically positive definite; here a singular N restarts, and a B that is not positive
definite shows as an ascent direction, which the line search rejects: restart.)

**Generalized Cauchy point** (BLNZ §4). Along the projected steepest-descent path
x(t) = P(x − t g), P the projection on the box, each variable stops at its breakpoint
tᵢ = (xᵢ − lᵢ)/gᵢ (gᵢ > 0) or (xᵢ − uᵢ)/gᵢ (gᵢ < 0). Between breakpoints t_{j} ≤ t ≤ t_{j+1}
the path is x(t_j) + Δt dʲ (dʲ = −g on the variables not yet stopped) and the quadratic model
m(x) = gᵀ(x − x_k) + ½ (x − x_k)ᵀ B (x − x_k) is a parabola in Δt with::

    f′_j  = gᵀdʲ + dʲᵀ B zʲ = −‖dʲ‖² + θ (t_j ‖dʲ‖² − qʲᵀ N⁻¹ cʲ)      zʲ = x(t_j) − x_k
    f″_j  = dʲᵀ B dʲ = θ (‖dʲ‖² − qʲᵀ N⁻¹ qʲ)                          qʲ = Vᵀdʲ,  cʲ = Vᵀzʲ

The GCP x^c is the first local minimizer of m on the path: the first segment j with
Δt* = −f′_j / f″_j < t_{j+1} − t_j, at x(t_j) + max(Δt*, 0) dʲ. The first segment is tested
alone (one solve; the GCP usually lies there); past it the breakpoints are sorted and f′_j,
f″_j computed for all segments at once (cumulative sums of qʲ and cʲ, one multi-column solve).

**Subspace minimization** (BLNZ §5.1, direct primal method). With Z the free variables at x^c
(not at a bound there), minimize the model over them, the others held at x^c. With
V̂ = ZᵀV, B̂ = ZᵀBZ = θ(I − V̂ N⁻¹ V̂ᵀ), and by Sherman–Morrison–Woodbury::

    r̂  = −Zᵀ(g + B(x^c − x)) = −ĝ − θ(x̂^c − x̂) + θ V̂ N⁻¹ c          c = Vᵀ(x^c − x)
    d̂  = B̂⁻¹ r̂ = (r̂ + V̂ K⁻¹ V̂ᵀ r̂) / θ,      K = N − V̂ᵀV̂   (2k × 2k, symmetric, indefinite)

K = [[−θD − ŶᵀŶ, Lᵀ − ŶᵀŜ], [L − ŜᵀŶ, SᵀS − ŜᵀŜ]] (in the pairs' order) is solved by one LU
factorization (``gesv``; L-BFGS-B's ``formk`` eliminates its blocks with two Cholesky
factorizations of the same matrix scaled); a singular K restarts. When x^c lies on the first
segment (the usual case: no variable stopped on the path), the variables not free are at x
there, and the minimizer is taken from x instead: x̂ − B̂⁻¹ĝ = x̂ − (ĝ + V̂ K⁻¹ V̂ᵀĝ)/θ, with
V̂ᵀĝ known from the Cauchy step (the same point as x̂^c + d̂). Then the step is projected
on the box, x̄ = P(x^c + Z d̂) (Morales & Nocedal 2011); if that projection moved a variable and
leaves an ascent direction, (x̄ − x)ᵀg > 0, the step backtracks instead to the largest α ≤ 1
with x^c + α Z d̂ in the box. (L-BFGS-B tests "lands on a bound" rather than "was moved": the
two differ only for a d̂ ending exactly on a bound, and an unprojected minimizer of a positive
definite model is a descent step either way.)

**Line search.** Along d = x̄ − x, the Moré–Thuente search (MINPACK-2 ``dcsrch``,
:mod:`optkit.minimization.more_thuente`; as L-BFGS-B:
ftol = 10⁻³, gtol = 0.9, xtol = 0.1), with the step capped at the box (t ≤ t_max, the largest t
keeping x + t d feasible), first trial t = 1 (on the first iteration of a not fully boxed
problem, t = min(1/‖d‖, 1)), at most ``maxls`` evaluations.

**Update.** s = t d, y = g₊ − g; the pair is skipped when sᵀy ≤ ε·(−gᵀs) (ε the machine epsilon,
L-BFGS-B 3.0's curvature test), else appended, dropping the oldest beyond m. A failed line
search or a singular N or K (or a non-finite d̂) discards the memory and restarts from steepest
descent; a failed search with an empty memory ends the run (status 2).

**Stopping tests** (SciPy's, in SciPy's order, after each iteration): the callback raising
``StopIteration`` (status 99); ``nit ≥ maxiter`` or ``nfev > maxfun`` (status 1); the projected
gradient ``max |proj gᵢ| ≤ gtol`` with proj gᵢ = clip(gᵢ, xᵢ − uᵢ, xᵢ − lᵢ) (status 0); the
relative reduction ``(f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) ≤ ftol`` (status 0). The
projected-gradient test also runs at x0.

**Where it runs.** The iteration is NumPy on the CPU, whatever x0 is; the objective is
evaluated where x0 lives. A NumPy x0 means an objective of NumPy vectors (the NumPy path of
:func:`optkit.minimize`: no torch call in the run). A torch x0 means an objective of tensors:
on the CPU, x and g cross as zero-copy views (``torch.from_numpy``, ``.numpy()``); on another
device (CUDA), each evaluation copies x (n values) to the device and g back, one transfer and
one synchronization each way (tens of µs), and the result comes back as tensors on x0's device.
Why not torch on the device, or an array-namespace adapter: an iteration is ~55 operations on
n-vectors and 2k × 2k matrices (NumPy ufuncs, BLAS dot/gemv/gemm/axpy, LAPACK getrf/getrs/gesv
through SciPy's wrappers, a few gathers), several of them branching on a scalar (a count, a
comparison, a minimum), so its cost is per operation, not per flop — ~0.2–3 µs in NumPy and
SciPy, 3–10 µs in torch on the CPU, a kernel launch plus a synchronization on a GPU. The
objective's forward and backward pass already costs more than the two transfers; the
arithmetic moved to the host is O(m·n) per iteration, which a GPU would only win at n in the
millions. One implementation serves every device, and each device pays for its copies in one
place (:class:`_Bridge`).

**Two engines, one algorithm.** Steps 1–3 and 5 of an iteration (Cauchy point, subspace step,
line search, pair update) run in one of two engines behind one interface, the driver
(:func:`minimize_lbfgsb`: limits, stopping tests, callback, result) being shared:
:class:`_NumpyEngine`, the functions of this module (every float dtype), and the C engine
(``_lbfgsb_core.c``, float64, built at install time, the default where present: ``HAVE_CORE``).
The C engine is the same algorithm step for step — its comments name the functions here it
follows — with plain loops for the NumPy ufuncs and BLAS calls and LU with partial pivoting for
the 2k × 2k systems, and it calls the objective itself for each trial point (one Python → C call
per iteration). Two departures in how, not what: it keeps the Gram matrix VVᵀ (updated per pair,
2·(2k + 2) dot products) so that K = N − V̂ᵀV̂ costs O(k²·(variables not free)) instead of
O(k²·n) (L-BFGS-B's ``formk`` updates its K the same way), and the breakpoints past the first
segment are walked one at a time, stopping at the GCP, instead of all evaluated at once. The
two engines round differently (C loops against BLAS/LAPACK): the same iterations and evaluations
on the tests' runs, iterates equal to ~1e-12 over the first dozens of iterations; over long
runs on ill-conditioned problems the difference grows as it does between any two
implementations (SciPy's included). Why C: in NumPy an iteration's ~55 calls cost ~20–40 µs of
overhead, most of a run on 2–200 variables; the C engine's iteration costs a few µs plus O(k·n)
arithmetic (``docs/benchmarks/minimize_small.md``).

References:
    R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited memory algorithm for bound
    constrained optimization", SIAM J. Sci. Comput. 16(5), 1190–1208 (1995). (BLNZ)

    R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton matrices and
    their use in limited memory methods", Math. Programming 63, 129–156 (1994).

    J. L. Morales and J. Nocedal, "Remark on Algorithm 778: L-BFGS-B", ACM TOMS 38(1), 2011.

    C. Zhu, R. H. Byrd, P. Lu and J. Nocedal, "Algorithm 778: L-BFGS-B, Fortran subroutines
    for large-scale bound-constrained optimization", ACM TOMS 23(4), 550–560 (1997).

    J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed sufficient
    decrease", ACM TOMS 20(3), 286–307 (1994).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg.blas as blas
import torch
from scipy.linalg.blas import get_blas_funcs
from scipy.linalg.lapack import get_lapack_funcs

from .more_thuente import MoreThuente
from .result import OptimizeResult, Status

try:  # the C engine (setup.py builds it; optional: the NumPy engine runs without it)
    from . import _lbfgsb_core as _core

    _CORE_ERROR = ""
except ImportError as exc:  # pragma: no cover - a build without a C compiler
    _core, _CORE_ERROR = None, str(exc)

#: Whether this installation has the C engine (float64 runs use it unless ``engine="numpy"``).
HAVE_CORE = _core is not None

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

# torch's dtype of a NumPy dtype, without a torch call (``LbfgsInvHessProduct.dtype``)
_TORCH_DTYPE = {
    np.dtype(np.float64): torch.float64,
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
}


def _host(a: Any) -> np.ndarray:
    """A tensor (any device) or array-like as a NumPy array; a CPU tensor as a view."""
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return np.asarray(a)


def _np_dtype(dtype: Any) -> np.dtype:
    """The NumPy dtype of a NumPy or torch dtype."""
    if isinstance(dtype, torch.dtype):
        return torch.empty(0, dtype=dtype).numpy().dtype
    return np.dtype(dtype)


# --- the inverse-Hessian operator -----------------------------------------------------------------
class LbfgsInvHessProduct:
    """The L-BFGS inverse-Hessian approximation H as a linear operator (SciPy's semantics).

    ``H v`` by the two-loop recursion (Nocedal 1980) over the pairs, oldest first, from
    H₀ = ``h0``·I — SciPy's :class:`scipy.optimize.LbfgsInvHessProduct` uses H₀ = I, the default
    here; pass ``h0 = 1/θ`` for the inverse of the compact B of the run::

        q = v;  for i = k … 1:  αᵢ = ρᵢ sᵢᵀq,  q = q − αᵢ yᵢ          ρᵢ = 1 / sᵢᵀyᵢ
        r = h0·q; for i = 1 … k:  βᵢ = ρᵢ yᵢᵀr,  r = r + (αᵢ − βᵢ) sᵢ

    Args:
        sk: ``(n_corrs, n)`` array (or tensor) of steps sᵢ, oldest first.
        yk: ``(n_corrs, n)`` gradient differences yᵢ.
        h0: Scale of the initial matrix H₀ = h0·I.
        numpy: Keep the pairs as NumPy arrays (tensors given are copied to the host) and
            return ``todense()`` as an array.

    Attributes:
        shape: ``(n, n)``. dtype: the torch dtype of the pairs. sk, yk, rho, n_corrs.

    The pairs are stored as given: NumPy arrays (or lists, or ``numpy=True``) in NumPy, and the
    products are then NumPy arithmetic (no torch call); tensors as tensors on their device.
    Products accept a torch tensor or a NumPy array / list, of shape ``(n,)``, ``(n, 1)`` or
    ``(n, p)``, and return the same kind (NumPy in, NumPy out; a tensor in, a tensor out on the
    input's device). ``todense()`` returns a tensor, or an array when ``numpy`` is set.

    Example:
        >>> import numpy as np
        >>> H = LbfgsInvHessProduct(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0]]))
        >>> H.todense().tolist()
        [[0.5, 0.0], [0.0, 1.0]]
        >>> (H @ [1.0, 1.0]).tolist()
        [0.5, 1.0]
        >>> import torch
        >>> H @ torch.tensor([1.0, 1.0], dtype=torch.float64)
        tensor([0.5000, 1.0000], dtype=torch.float64)
    """

    def __init__(self, sk: Any, yk: Any, h0: float = 1.0, *, numpy: bool = False) -> None:
        on_torch = isinstance(sk, torch.Tensor) and not numpy
        if on_torch:
            yk = torch.as_tensor(yk)
        else:
            sk, yk = _host(sk), _host(yk)
        if sk.shape != yk.shape or sk.ndim != 2:
            raise ValueError(
                f"sk and yk must have matching shape (n_corrs, n), got {tuple(sk.shape)} and "
                f"{tuple(yk.shape)}"
            )
        if on_torch:
            if not sk.is_floating_point():
                sk, yk = sk.double(), yk.double()
            yk = yk.to(sk)
            self.dtype = sk.dtype
        else:
            if sk.dtype.kind != "f":
                sk = sk.astype(np.float64)
            yk = yk.astype(sk.dtype, copy=False)
            self.dtype = _TORCH_DTYPE.get(sk.dtype, torch.float64)
        self.sk, self.yk = sk, yk
        self.n_corrs, n = sk.shape
        self.shape = (n, n)
        self.h0 = float(h0)
        self.rho = 1.0 / (sk * yk).sum(1)
        self.numpy = numpy
        self._on_torch = on_torch

    def _apply(self, Q: Any) -> Any:
        """Two-loop recursion on the columns of ``Q`` (n × p), in the pairs' kind."""
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

    def _operand(self, X: Any) -> tuple[Any, Callable[[Any], Any]]:
        """``X`` in the pairs' kind, and the map of a result back to ``X``'s kind."""
        is_t = isinstance(X, torch.Tensor)
        if self._on_torch:
            T = torch.as_tensor(X if is_t else np.asarray(X)).to(self.sk)
            return T, (lambda R: R) if is_t else (lambda R: R.cpu().numpy())
        A = np.asarray(_host(X) if is_t else X, dtype=self.sk.dtype)
        return A, (lambda R: torch.from_numpy(R).to(X.device)) if is_t else (lambda R: R)

    def matmat(self, X: Any) -> Any:
        """``H X`` for an ``(n, p)`` matrix."""
        A, back = self._operand(X)
        if A.ndim != 2 or A.shape[0] != self.shape[0]:
            raise ValueError(f"expected shape ({self.shape[0]}, p), got {tuple(A.shape)}")
        return back(self._apply(A))

    def matvec(self, v: Any) -> Any:
        """``H v`` for a vector of shape ``(n,)`` or ``(n, 1)`` (the shape is kept)."""
        a, back = self._operand(v)
        if tuple(a.shape) not in ((self.shape[0],), (self.shape[0], 1)):
            raise ValueError(
                f"expected shape ({self.shape[0]},) or ({self.shape[0]}, 1), got {tuple(a.shape)}"
            )
        return back(self._apply(a.reshape(-1, 1)).reshape(a.shape))

    rmatvec = matvec  # H is symmetric

    def dot(self, x: Any) -> Any:
        """``H x`` for a vector or a matrix."""
        nd = x.ndim if isinstance(x, torch.Tensor) else np.ndim(x)
        return self.matvec(x) if nd == 1 or (nd == 2 and np.shape(x)[1] == 1) else self.matmat(x)

    __matmul__ = dot
    __call__ = dot

    def todense(self) -> Any:
        """The dense ``n × n`` matrix H."""
        n = self.shape[0]
        if self._on_torch:
            H = self._apply(torch.eye(n, dtype=self.dtype, device=self.sk.device))
            return H.cpu().numpy() if self.numpy else H
        H = self._apply(np.eye(n, dtype=self.sk.dtype))
        return H if self.numpy else torch.from_numpy(H)

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
    """The last ``m`` curvature pairs and B = θ(I − V N⁻¹ Vᵀ) (module docstring, BNS94 eq. 3.2).

    Stored pair by pair, oldest first: the rows of ``V`` are y₁, s₁, y₂, s₂, … (2k × n), and
    ``N`` (2k × 2k, the same order) holds −θDᵢ, Lᵢⱼ and sᵢᵀsⱼ at the positions of their pairs.
    V and N are windows on buffers of 2m pairs: a new pair writes two rows of V and two rows
    and columns of N after the window, the oldest leaves by moving the window's start, and the
    window moves back to the buffers' start (one copy) when it reaches their end, once every m
    updates with a full memory. N is factored (LU, ``getrf``) once per update, for the solves
    N⁻¹q of the Cauchy step.

    Args:
        n: Number of variables.
        m: Memory, the most pairs kept.
        dtype: NumPy (or torch) float dtype of the pairs.

    Attributes:
        k: Pairs held. theta: θ. V, N: as above (views of the buffers). G: the Gram matrix
            V Vᵀ in N's layout, updated per pair (the subspace step's K = N − V̂ᵀV̂ from it).
        S, Y: ``(k, n)`` views of the pairs, oldest first. D: ``D[i] = sᵢᵀyᵢ``.
        L: ``L[i, j] = sᵢᵀyⱼ`` for i > j, else 0. SS: ``SᵀS``. SY: L + diag(D).
        Wt: Wᵀ = [Y; θS] (2k × n), BLNZ's W (computed on access).
    """

    def __init__(self, n: int, m: int, dtype: Any = np.float64) -> None:
        self.n, self.m = n, m
        self.dtype = dt = _np_dtype(dtype)
        lapack = get_lapack_funcs(("getrf", "getrs", "gesv"), dtype=dt)
        self._getrf, self._getrs, self._gesv = lapack
        blas_fns = get_blas_funcs(("gemv", "gemm", "dot", "axpy"), dtype=dt)
        self._gemv, self._gemm, self._dot, self._axpy = blas_fns
        self._amax = getattr(blas, f"i{self._gemv.prefix}amax")  # i?amax: no prefix-free name
        self._V = np.zeros((4 * m, n), dt)
        self._N = np.zeros((4 * m, 4 * m), dt)
        self._G = np.zeros((4 * m, 4 * m), dt)  # V Vᵀ in N's layout
        self._D = np.zeros(2 * m, dt)
        self._N_yy = self._N.reshape(-1)[:: 8 * m + 2]  # the −θDᵢ, _N[2i, 2i], as a view
        self.reset()

    def reset(self) -> None:
        """Forget every pair: B = I."""
        self.k = self._start = 0  # the window: pairs _start … _start + k − 1 of the buffers
        self.theta = 1.0
        self.V, self.N, self.G = self._V[:0], self._N[:0, :0], self._G[:0, :0]
        self.lu = self.piv = None

    @property
    def S(self) -> np.ndarray:
        return self.V[1::2]

    @property
    def Y(self) -> np.ndarray:
        return self.V[0::2]

    @property
    def D(self) -> np.ndarray:
        return self._D[self._start : self._start + self.k]

    @property
    def L(self) -> np.ndarray:
        return self.N[1::2, 0::2]

    @property
    def SS(self) -> np.ndarray:
        return self.N[1::2, 1::2]

    @property
    def SY(self) -> np.ndarray:
        """``SY[i, j] = sᵢᵀyⱼ`` for i ≥ j, 0 above the diagonal (the part B needs)."""
        return self.L + np.diag(self.D)

    @property
    def Wt(self) -> np.ndarray:
        return np.concatenate([self.Y, self.theta * self.S])

    def update(self, s: np.ndarray, y: np.ndarray, sty: float, sts: float, yty: float) -> bool:
        """Append the pair (s, y) with sᵀy, sᵀs, yᵀy given; False when N is singular.

        ``s`` and ``y`` must not be views of this memory's pairs (they are copied in last)."""
        V, N, G, D = self._V, self._N, self._G, self._D
        o, k = self._start, self.k
        if k == self.m:  # drop the oldest pair
            o, k = o + 1, k - 1
        if o + k == 2 * self.m:  # the window at the buffers' end: move it to their start
            i0, i = 2 * o, 2 * (o + k)
            V[: i - i0], N[: i - i0, : i - i0], D[:k] = V[i0:i], N[i0:i, i0:i], D[o : o + k]
            G[: i - i0, : i - i0] = G[i0:i, i0:i]
            o = 0
        i0, i = 2 * o, 2 * (o + k)  # the window's first row; the new pair's rows i (y), i + 1 (s)
        V[i], V[i + 1] = y, s
        # rows i, i + 1 of V Vᵀ (the new pair's own products included), the columns by symmetry
        G[i : i + 2, i0 : i + 2] = V[i : i + 2] @ V[i0 : i + 2].T
        G[i0 : i + 2, i : i + 2] = G[i : i + 2, i0 : i + 2].T
        # row i + 1 of N: L[k, j] = sᵀyⱼ and sⱼᵀs in the columns of pair j (G's row i + 1 there);
        # row i: 0 (L is strictly lower); the columns i, i + 1 by symmetry
        N[i, i0:i] = 0.0
        N[i + 1, i0:i] = G[i + 1, i0:i]
        N[i0:i, i : i + 2] = N[i : i + 2, i0:i].T
        N[i, i + 1] = N[i + 1, i] = 0.0
        N[i + 1, i + 1] = sts
        D[o + k] = sty
        self._start, self.k = o, k + 1
        self.theta = theta = yty / sty
        np.multiply(D[o : o + k + 1], -theta, out=self._N_yy[o : o + k + 1])
        self.V, self.N = V[i0 : i + 2], N[i0 : i + 2, i0 : i + 2]
        self.G = G[i0 : i + 2, i0 : i + 2]
        self.lu, self.piv, info = self._getrf(self.N)
        return info == 0 and math.isfinite(theta)

    def solve(self, b: np.ndarray) -> np.ndarray:
        """N⁻¹b for a vector or a 2k × p matrix (LU factors of the last update)."""
        return self._getrs(self.lu, self.piv, b)[0]

    def B_times(self, v: np.ndarray) -> np.ndarray:
        """``B v`` for a vector or an n × p matrix."""
        if self.k == 0:
            return v.copy()
        return self.theta * (v - self.V.T @ self.solve(self.V @ v))

    def dense(self) -> np.ndarray:
        """The dense ``n × n`` matrix B (for tests and small problems)."""
        return self.B_times(np.eye(self.n, dtype=self.dtype))


class _Box:
    """The bounds of a run and what follows from them, computed once: the masks of finite
    bounds, whether any bound is finite, whether all are."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lower, self.upper = lower, upper
        self.has_l, self.has_u = np.isfinite(lower), np.isfinite(upper)
        self.constrained = bool((self.has_l | self.has_u).any())
        self.boxed = bool((self.has_l & self.has_u).all())
        self.eps = float(np.finfo(lower.dtype).eps)


# --- generalized Cauchy point --------------------------------------------------------------------
def cauchy_point(
    x: np.ndarray,
    g: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    mem: CompactLBFGS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The generalized Cauchy point of the model along P(x − t g) (BLNZ Algorithm CP).

    Args:
        x: The iterate, inside the box (NumPy, flat).
        g: ∇f(x).
        lower, upper: The bounds (±inf where none).
        mem: The compact representation of B.

    Returns:
        ``(xc, c, free)``: the GCP, c = Wᵀ(xc − x) (length 2k, W = [Y θS]), and the boolean mask
        of the variables free at xc (not at a bound that g pushes against, not passed on the
        path, not fixed by l = u).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        xc, free = _cauchy(x, g, x - lower, x - upper, _Box(lower, upper), mem)[:2]
    c = mem.V @ (xc - x)  # Vᵀ(xc − x), the pairs' order: to W's
    return xc, np.concatenate([c[0::2], mem.theta * c[1::2]]), free


def _cauchy(x, g, xl, xu, box: _Box, mem: CompactLBFGS):
    """The GCP for x − l = ``xl``, x − u = ``xu``, under ``np.errstate`` ignoring division.

    Returns ``(xc, free, nfree, tsum, q, w)``: xc, the mask of the variables free there and
    their number, tsum with xc − x = tsum·(−g) on them; q = V̂ᵀĝ when xc is on the first segment
    (no variable stopped on the path: the subspace step then starts from x), else None; w = N⁻¹c,
    c = Vᵀ(xc − x), past the first segment (None when k = 0)."""
    theta, k = mem.theta, mem.k
    dot = mem._dot
    # tᵢ, where variable i meets the bound ahead along −g: (xᵢ − lᵢ)/gᵢ for gᵢ > 0,
    # (xᵢ − uᵢ)/gᵢ for gᵢ < 0, the larger of the two ratios (the other one is ≤ 0). tᵢ > 0: it
    # moves (free); tᵢ ≤ 0: it is at that bound already; NaN: gᵢ = 0 at a bound (both stuck);
    # inf: no bound ahead, or gᵢ = 0 inside the box (free, not moving)
    t = np.maximum(xl / g, xu / g)
    free = t > 0.0
    gz = g * free  # g on the free variables, 0 elsewhere: the path's direction is d = −gz
    dd = dot(gz, gz)
    nfree = int(np.count_nonzero(free))
    if dd == 0.0:  # nothing moves along the path
        return x.copy(), free, nfree, 0.0, None, None
    f2_org = theta * dd
    if k:
        q = np.dot(mem.V, gz)  # −Vᵀd
        nq = mem.solve(q)
        f2 = theta * (dd - dot(q, nq))
    else:
        q = nq = None
        f2 = f2_org
    dtm = dd / f2  # the model's minimizer on the first segment (f′₀ = −‖d‖²)
    if not np.count_nonzero((t <= dtm) & free):  # before the first breakpoint (or there is none)
        dtm = max(dtm, 0.0)  # xc = x + dtm·d
        return mem._axpy(gz, x.copy(), x.size, -dtm), free, nfree, dtm, q, None
    d = np.negative(gz)
    # variables moving along −g with no bound ahead: the path ends in a ray
    bnded = not np.count_nonzero((t == math.inf) & (d != 0.0))
    idx = np.flatnonzero((t < math.inf) & free)
    nb = idx.size
    tb = t[idx]
    order = np.argsort(tb, kind="stable")
    idx = idx[order]
    tj = np.zeros(nb + 1, x.dtype)  # t_0 = 0, t_1 … t_K
    tj[1:] = tb[order]
    dt = tj[1:] - tj[:-1]
    db = d[idx]
    D = np.zeros(nb + 1, x.dtype)
    np.cumsum(db * db, out=D[1:])
    D = dd - D  # ‖dʲ‖²
    if k:
        # qʲ = Vᵀdʲ (rows of P) and cʲ = Vᵀzʲ (rows of C) for every segment
        P = np.zeros((nb + 1, 2 * k), x.dtype)
        np.cumsum(mem.V[:, idx].T * db[:, None], axis=0, out=P[1:])  # rows v_b of V
        P = -q - P  # Vᵀd = −q
        C = np.zeros((nb + 1, 2 * k), x.dtype)
        np.cumsum(P[:-1] * dt[:, None], axis=0, out=C[1:])
        NP = mem.solve(P.T).T  # rows N⁻¹qʲ
        f2 = theta * (D - (NP * P).sum(1))
        f1 = theta * (tj * D - (NP * C).sum(1)) - D
    else:
        f2 = theta * D
        f1 = theta * tj * D - D
    np.maximum(f2[1:], box.eps * f2_org, out=f2[1:])
    dtm_all = -f1 / f2
    stop = np.flatnonzero(dtm_all[:-1] < dt)
    if stop.size:
        j = int(stop[0])
        dtm = float(dtm_all[j])
    else:
        j = nb
        dtm = 0.0 if bnded else float(dtm_all[j])
    dtm = max(dtm, 0.0)
    passed = idx[:j]
    tsum = float(tj[j]) + dtm
    d[passed] = 0.0
    xc = x + tsum * d
    xc[passed] = np.where(g[passed] < 0, box.upper[passed], box.lower[passed])
    free[passed] = False
    w = mem.solve(C[j] + dtm * P[j]) if k else None
    return xc, free, nfree - j, tsum, None, w


# --- subspace minimization -----------------------------------------------------------------------
def _subspace_step(x, g, box: _Box, xc, free, nfree, tsum, q, w, mem: CompactLBFGS):
    """The subspace minimizer over the free variables, projected or backtracked (BLNZ §5.1,
    Morales–Nocedal 2011). Returns ``(z, z − x, gᵀ(z − x))``, or None when K is singular.

    The arguments after ``xc`` are :func:`_cauchy`'s (``free`` None: all free)."""
    theta, V, dot, gemv = mem.theta, mem.V, mem._dot, mem._gemv
    every = nfree == x.size  # all free: no gather / scatter
    Vf, gf = (V, g) if every else (V.compress(free, axis=1), g[free])  # V̂ᵀ, ĝ
    # K = N − V̂ᵀV̂: from the Gram matrix V Vᵀ kept by the memory, less the fixed variables'
    # part when they are fewer than the free ones (as the C engine), else by one gemm
    if every:
        K = mem.N - mem.G
    elif 2 * nfree > x.size:
        Vx = V.compress(~free, axis=1)
        K = mem._gemm(1.0, Vx.T, Vx.T, 1.0, mem.N - mem.G, 1)
    else:
        K = mem._gemm(-1.0, Vf.T, Vf.T, 1.0, mem.N, 1)  # N − V̂ᵀV̂, Fortran-ordered
    mtheta = -1.0 / theta
    if q is not None:
        # xc on the first segment: the variables not free are at x there, so the model's
        # minimizer over the free ones is x̂ − B̂⁻¹ĝ, B̂⁻¹ĝ = (ĝ + V̂ K⁻¹ V̂ᵀĝ)/θ, V̂ᵀĝ = q
        base = x
        _, _, v, info = mem._gesv(K, q, 1, 0)
        if info:
            return None
        dhat = gemv(mtheta, Vf.T, v, mtheta, gf)
    else:  # r̂ = −ĝ − θ(x̂c − x̂) + θ V̂ N⁻¹c with x̂c − x̂ = −tsum·ĝ; d̂ = B̂⁻¹r̂ from xc
        base = xc
        r = -gf if w is None else gemv(theta, Vf.T, w, theta * tsum - 1.0, gf)
        _, _, v, info = mem._gesv(K, np.dot(Vf, r), 1, 1)
        if info:
            return None
        dhat = gemv(-mtheta, Vf.T, v, -mtheta, r, 0, 1, 0, 1, 0, 1)  # (r̂ + V̂ K⁻¹ V̂ᵀr̂)/θ
    if not math.isfinite(dot(dhat, dhat)) and not np.isfinite(dhat).all():
        return None
    if not box.constrained:
        z = base + dhat
        d = z - x
        return z, d, dot(g, d)
    if every:
        zu = base + dhat
    else:
        zu = base.copy()
        zu[free] += dhat
    # the projection moves only free variables (the others are at xc, inside the box)
    z = np.maximum(zu, box.lower)
    np.minimum(z, box.upper, out=z)
    d = z - x
    gd = dot(g, d)
    if gd <= 0.0 or not np.count_nonzero(z != zu):
        return z, d, gd
    # The projected step is not a descent direction: backtrack to the box instead.
    fi = np.flatnonzero(free) if not every else slice(None)
    lf, uf, xf = box.lower[fi], box.upper[fi], xc[fi]
    dhat = zu[fi] - xf  # the step from xc
    a_l, a_u = lf - xf, uf - xf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(
            (dhat < 0) & np.isfinite(lf),
            np.where(a_l >= 0, 0.0, a_l / dhat),
            np.where((dhat > 0) & np.isfinite(uf), np.where(a_u <= 0, 0.0, a_u / dhat), np.inf),
        )
    ibd = int(np.argmin(ratio))
    alpha = min(1.0, float(ratio[ibd]))
    step = xf + alpha * dhat
    if alpha < 1.0:
        step[ibd] = uf[ibd] if dhat[ibd] > 0 else lf[ibd]
    z = xc.copy()
    z[fi] = step
    d = z - x
    return z, d, dot(g, d)


def _max_step(xl: np.ndarray, xu: np.ndarray, d: np.ndarray) -> float:
    """Largest t ≤ 10¹⁰ with x + t·d inside the box (L-BFGS-B's ``stpmx``); 0 when a variable
    at its bound moves out. ``xl`` = x − l, ``xu`` = x − u; under ``np.errstate`` ignoring
    division.

    The ratio of variable i is (lᵢ − xᵢ)/dᵢ for dᵢ < 0, (uᵢ − xᵢ)/dᵢ for dᵢ > 0, that is
    −min(xlᵢ/dᵢ, xuᵢ/dᵢ) (the other quotient is ≥ 0); dᵢ = 0 gives −inf or NaN in the minimum,
    which the maximum over i skips, and infinite bounds give infinite ratios: no mask."""
    top = -float(np.fmax.reduce(np.minimum(xl / d, xu / d)))
    return max(top, 0.0) if top < _BIG_STEP else _BIG_STEP


def _projected_grad_norm(x: np.ndarray, g: np.ndarray, box: _Box, amax):
    """``(max |proj gᵢ|, x − l, x − u)`` with proj gᵢ = clip(gᵢ, xᵢ − uᵢ, xᵢ − lᵢ) (``projgr``),
    for a finite g (``amax``: BLAS i?amax of the dtype)."""
    if g.size == 0:
        return 0.0, None, None
    if not box.constrained:
        return float(abs(g[amax(g)])), None, None
    xl, xu = x - box.lower, x - box.upper
    pg = np.maximum(g, xu)
    np.minimum(pg, xl, out=pg)
    return float(abs(pg[amax(pg)])), xl, xu


# --- the engines ---------------------------------------------------------------------------------
class _NumpyEngine:
    """One L-BFGS-B iteration at a time in NumPy: the reference engine, for every float dtype.

    The interface the driver (:func:`minimize_lbfgsb`) calls, which the C engine
    (``_lbfgsb_core.Engine``, float64) has too: ``iterate(evaluate, x, f, g, first_iteration,
    maxls)`` runs steps 1–3 of an iteration (Cauchy point, subspace step, line search, with the
    restarts from steepest descent) and returns ``(xt, ft, gt)`` at the accepted point, or 2
    (the search failed from steepest descent) or 3 (and met NaN/Inf); ``update(g_old, g)`` adds
    the iteration's pair (step 5); ``pgnorm(x, g)`` is the projected-gradient norm;
    ``pairs_oldest_first()`` and ``k`` give the memory."""

    c = False

    def __init__(self, box: _Box, m: int, dtype: np.dtype) -> None:
        self.box = box
        self.mem = CompactLBFGS(box.lower.size, m, dtype)
        self.search = MoreThuente()
        self._xl = (None, None, None)  # (x, x − l, x − u) of the last pgnorm
        self._last = None  # (d, stp, gᵀd, gᵀd at x, dᵀd) of the last accepted step

    @property
    def k(self) -> int:
        return self.mem.k

    def pairs_oldest_first(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mem.S.copy(), self.mem.Y.copy()

    def pgnorm(self, x: np.ndarray, g: np.ndarray) -> float:
        sbgnrm, xl, xu = _projected_grad_norm(x, g, self.box, self.mem._amax)
        self._xl = (x, xl, xu)
        return sbgnrm

    def iterate(self, evaluate, x, f, g, first_iteration: bool, maxls: int):
        box, mem, search = self.box, self.mem, self.search
        lower, upper = box.lower, box.upper
        constrained, boxed, n = box.constrained, box.boxed, x.size
        dot, axpy = mem._dot, mem._axpy
        x_of, xl, xu = self._xl
        if x_of is not x or xl is None:  # (pgnorm leaves them out without bounds)
            xl, xu = x - lower, x - upper
        # the divisions by zero of _cauchy and _max_step are theirs (module docstring of each)
        quiet = {"divide": "ignore", "invalid": "ignore"}
        while True:
            with np.errstate(**quiet):
                # 1. generalized Cauchy point and 2. subspace minimization
                if constrained or mem.k == 0:
                    xc, free, nfree, tsum, q, w = _cauchy(x, g, xl, xu, box, mem)
                else:  # L-BFGS: xc = x, every variable free
                    xc, free, nfree, tsum, q, w = x, None, n, 0.0, np.dot(mem.V, g), None
                if mem.k and nfree:
                    step = _subspace_step(x, g, box, xc, free, nfree, tsum, q, w, mem)
                    if step is None:  # a factorization failed: forget the pairs, restart
                        mem.reset()
                        continue
                    z, d, gd_old = step
                else:
                    z = xc
                    d = z - x
                    gd_old = dot(g, d)
                # 3. line search along d = z − x, inside the box
                dtd = dot(d, d)
                if constrained:
                    stpmx = 1.0 if first_iteration else _max_step(xl, xu, d)
                else:
                    stpmx = _BIG_STEP
            if first_iteration and not boxed:
                dnorm = math.sqrt(dtd)
                stp = min(1.0 / dnorm, stpmx) if dnorm > 0 else stpmx
            else:
                stp = 1.0
            ok = gd_old < 0 and stpmx > 0
            nonfinite = False
            nback = 0
            if ok:
                stp = min(stp, stpmx)
                first = True
                while True:
                    if stp == 1.0:
                        xt = z
                    else:
                        xt = axpy(d, x.copy(), n, stp)
                        if constrained:
                            np.maximum(xt, lower, out=xt)
                            np.minimum(xt, upper, out=xt)
                    if nback >= maxls:
                        ok = False
                        break
                    ft, gt = evaluate(xt)
                    nback += 1
                    gd = dot(gt, d)
                    finite = math.isfinite(ft) and math.isfinite(gd)
                    if first:  # the search's own test of its first trial, without starting it
                        if finite and search.accepts_first(f, gd_old, stp, stpmx, ft, gd):
                            break
                        search.start(f, gd_old, stp, 0.0, stpmx)
                        first = False
                    if not finite:
                        nonfinite = True  # shrink toward the best step, outside the interval
                        search.stp = search.stx + 0.5 * (stp - search.stx)
                    elif search.step(ft, gd) != "fg":
                        break
                    stp = search.stp
            if not ok:
                if mem.k == 0:  # already steepest descent: nothing else to try
                    return 3 if nonfinite else 2
                mem.reset()
                continue
            self._last = (d, stp, gd, gd_old, dtd)
            return xt, ft, gt

    def update(self, g_old: np.ndarray, g: np.ndarray) -> bool:
        if self._last is None:  # no accepted step since the last update
            return False
        (d, stp, gd, gd_old, dtd), self._last = self._last, None
        mem = self.mem
        y = g - g_old
        if stp == 1.0:
            sty, gts = gd - gd_old, -gd_old
            s = d
        else:
            sty, gts = (gd - gd_old) * stp, -gd_old * stp
            s = stp * d
        if sty <= self.box.eps * gts:
            return False  # skip the pair: too little curvature along s
        if not mem.update(s, y, sty, stp * stp * dtd, mem._dot(y, y)):
            mem.reset()
            return False
        return True


class _CEngine:
    """The C engine (``_lbfgsb_core.Engine``) behind :class:`_NumpyEngine`'s interface."""

    c = True

    def __init__(self, box: _Box, m: int) -> None:
        self._core = core = _core.Engine(box.lower, box.upper, m, _empty(box.lower.size), _as_f64)
        self.iterate, self.update, self.pgnorm = core.iterate, core.update, core.pgnorm
        self.n = box.lower.size

    @property
    def k(self) -> int:
        return self._core.k

    def pairs_oldest_first(self) -> tuple[np.ndarray, np.ndarray]:
        S, Y = np.empty((self._core.k, self.n)), np.empty((self._core.k, self.n))
        self._core.pairs(S, Y)
        return S, Y


def _empty(n: int) -> Callable[[], np.ndarray]:
    return functools.partial(np.empty, n, np.float64)


_as_f64 = functools.partial(np.ascontiguousarray, dtype=np.float64)


def _engine(choice: str, box: _Box, m: int, dtype: np.dtype):
    """The C engine for float64 when it is built (``choice`` "auto" or "c"), else NumPy's."""
    if choice == "numpy" or dtype != np.float64:
        if choice == "c":
            raise ValueError(f"engine='c' runs float64 only, x0 is {dtype}")
        return _NumpyEngine(box, m, dtype)
    if _core is None:
        if choice == "c":
            raise RuntimeError(
                "engine='c': the C extension optkit.minimization._lbfgsb_core is not built "
                f"({_CORE_ERROR}); reinstall optkit with a C compiler"
            )
        return _NumpyEngine(box, m, dtype)
    return _CEngine(box, m)


# --- the driver ----------------------------------------------------------------------------------
def _check(name: str, value: Any, low: float, integer: bool) -> Any:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not integer:
        ok = ok or isinstance(value, (float, np.floating))
    if not ok or not value >= low or (not integer and math.isnan(value)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{name} must be {kind} >= {low}, got {value!r}")
    return int(value) if integer else float(value)


class _Bridge:
    """Where x0 lives, and the crossings between it and the NumPy iteration.

    NumPy x0: the objective takes and returns NumPy vectors; nothing crosses. Torch x0: x goes
    to the objective as a tensor on x0's device and g comes back as an array — zero-copy views
    on the CPU, one copy each way on another device. ``copy=True`` makes the CPU crossings
    copies too, as on a GPU (the tests run that path on machines without one).
    """

    def __init__(self, x0: Any, shape: tuple[int, ...], copy: bool = False) -> None:
        self.torch = isinstance(x0, torch.Tensor)
        self.shape = shape
        self.device = x0.device if self.torch else None
        self.copy = copy or (self.torch and x0.device.type != "cpu")

    def host(self, a: Any, dtype: np.dtype) -> np.ndarray:
        """A flat copy of ``a`` (x0 or a bound) as a NumPy array of ``dtype``."""
        return np.array(_host(a), dtype=dtype).reshape(-1)

    def evaluator(self, objective, dtype: np.dtype) -> Callable[[np.ndarray], tuple[float, Any]]:
        """``value_and_grad`` of NumPy points, returning g as a NumPy array of ``dtype``."""
        if not self.torch:

            def evaluate(x):
                f, g = objective.value_and_grad(x)
                if isinstance(g, torch.Tensor):  # an objective of tensors given a NumPy x0
                    g = g.detach().cpu().numpy()
                return f, g

            return evaluate
        device, copy = self.device, self.copy

        def evaluate(x):
            t = torch.from_numpy(x)
            f, g = objective.value_and_grad(t.to(device, copy=True) if copy else t)
            g = g.detach().cpu().numpy()
            return f, (g.copy() if copy and g.dtype == dtype else g.astype(dtype, copy=False))

        return evaluate

    def out(self, a: np.ndarray) -> Any:
        """A flat array in x0's shape and kind (a copy)."""
        a = a.reshape(self.shape).copy()
        return torch.from_numpy(a).to(self.device) if self.torch else a

    def hess_inv(self, pairs: tuple[np.ndarray, np.ndarray]) -> LbfgsInvHessProduct:
        S, Y = pairs
        if self.torch:
            return LbfgsInvHessProduct(
                torch.from_numpy(S).to(self.device), torch.from_numpy(Y).to(self.device)
            )
        return LbfgsInvHessProduct(S, Y, numpy=True)


def minimize_lbfgsb(
    objective,
    x0: Any,
    lower: Any,
    upper: Any,
    *,
    maxcor: int = 10,
    ftol: float = 2.220446049250313e-09,
    gtol: float = 1e-05,
    maxiter: int = 15000,
    maxfun: int = 15000,
    maxls: int = 20,
    callback: Callable[[OptimizeResult], Any] | None = None,
    engine: str = "auto",
    _copy_device: bool = False,
    _trace: list | None = None,
) -> OptimizeResult:
    """Minimize ``f`` over the box ``lower ≤ x ≤ upper`` by L-BFGS-B (see the module docstring).

    The algorithm of SciPy's ``minimize(method="L-BFGS-B")``, option for option, in x0's float
    dtype; the same iterates up to rounding, so nit and nfev follow SciPy's (the tests pin them
    on bound-constrained problems). The iteration runs in NumPy; the objective is evaluated
    where x0 lives (module docstring, "Where it runs").

    Args:
        objective: An :class:`~optkit.minimization.objective.Objective` over flat vectors of
            length ``x0.size``; its ``value_and_grad`` is called once per trial point and its
            ``nfev`` / ``njev`` counters are reported. It takes NumPy vectors when x0 is a NumPy
            array (the NumPy path of ``CallableObjective``), tensors on x0's device when x0 is
            a tensor.
        x0: Starting point (any shape), a NumPy array or a torch tensor on any device;
            projected on the box first, as SciPy does.
        lower, upper: Bounds of x0's shape (arrays or tensors), ``-inf`` / ``inf`` where there
            is none; ``lower ≤ upper`` (equal: the variable is fixed).
        maxcor: Memory m, the number of pairs kept (≥ 1, default 10).
        ftol: Relative-reduction tolerance on f (≥ 0, default 2.22e-9 = 10⁷·ε).
        gtol: Projected-gradient tolerance, ``max |proj gᵢ| ≤ gtol`` (≥ 0, default 1e-5).
        maxiter: Iteration limit (default 15000).
        maxfun: Evaluation limit, checked after each iteration (default 15000).
        maxls: Evaluations per line search (≥ 1, default 20).
        callback: ``callback(intermediate_result)`` after each iteration, with an
            :class:`OptimizeResult` holding ``x`` (x0's shape and kind) and ``fun``; raising
            ``StopIteration`` ends the run with status 99. Its return value is ignored (SciPy).
        engine: ``"auto"`` (the C engine for float64 where it is built, else NumPy's), ``"c"``
            (float64 only; RuntimeError where it is not built) or ``"numpy"`` (module
            docstring, "Two engines, one algorithm").

    Returns:
        An :class:`OptimizeResult` with x (x0's shape and kind: an array, or a tensor on x0's
        device), fun, jac (the full gradient ∇f(x), not the projected one, as SciPy), nit,
        nfev, njev, status (0 converged, 1 maxiter or maxfun, 2 line search failure, 3 NaN/Inf,
        99 callback), success, SciPy's message, and ``hess_inv``, an
        :class:`LbfgsInvHessProduct` over the pairs in memory (NumPy for a NumPy x0).

    Raises:
        ValueError: Bounds of the wrong shape, NaN in them, ``lower > upper``, ``lower = +inf``
            or ``upper = -inf``, a non-finite x0, an option out of range, or ``engine="c"``
            with a dtype other than float64.

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
        Each iteration (BLNZ §3; the math is in the module docstring): the generalized Cauchy
        point x^c, the first minimizer of the quadratic model along the projected gradient path
        P(x − t g); the minimizer of the model over the variables free at x^c, projected on the
        box (Morales–Nocedal) or backtracked into it; a Moré–Thuente line search along
        d = x̄ − x, capped at the box; the pair (s, y), skipped when sᵀy ≤ ε·(−gᵀs). Without
        finite bounds the Cauchy step is skipped once there are pairs, and the iteration is
        L-BFGS with B₀ = θI and this line search. Cost per iteration O(m·n) plus
        O(m²·(number of breakpoints passed)).

        Departures from SciPy, each for a reason: ``hess_inv`` holds the pairs oldest first
        (SciPy passes its circular buffer in storage order once more than ``maxcor`` updates
        were made, so its operator then mixes the pairs' order); a NaN/Inf trial point in the
        line search halves the step toward the best one instead of feeding NaN to the
        Moré–Thuente interval, and NaN/Inf at x0 or at an accepted point ends the run with
        status 3 (SciPy ends with status 2, "ABNORMAL"); the iteration runs in x0's dtype
        (SciPy: always float64), with that dtype's ε in the curvature test. Ties between
        breakpoints are taken in index order (SciPy's heap takes them in heap order), which
        only matters when the model's minimizer falls exactly on a shared breakpoint.

    References:
        Byrd, Lu, Nocedal & Zhu, "A limited memory algorithm for bound constrained
        optimization", SIAM J. Sci. Comput. 16(5), 1190–1208, 1995. Morales & Nocedal, "Remark
        on Algorithm 778: L-BFGS-B", ACM TOMS 38(1), 2011. Zhu, Byrd, Lu & Nocedal, "Algorithm
        778: L-BFGS-B", ACM TOMS 23(4), 550–560, 1997. Moré & Thuente, "Line search algorithms
        with guaranteed sufficient decrease", ACM TOMS 20(3), 286–307, 1994.
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
    if engine not in ("auto", "c", "numpy"):
        raise ValueError(f"engine must be 'auto', 'c' or 'numpy', got {engine!r}")
    shape = tuple(x0.shape)
    bridge = _Bridge(x0, shape, _copy_device)
    x = _host(x0).reshape(-1)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    dtype = x.dtype
    box = _bounds(bridge, lower, upper, x, shape)
    if not np.isfinite(x).all():
        raise ValueError("x0 must be finite (it contains NaN or Inf)")
    x = np.minimum(np.maximum(x, box.lower), box.upper)  # a new array: x0 is never written
    evaluate = bridge.evaluator(objective, dtype)
    eng = _engine(engine, box, maxcor, dtype)

    def finish(status: Status, message: str, nit: int) -> OptimizeResult:
        return OptimizeResult(
            x=bridge.out(x),
            fun=f,
            jac=bridge.out(g),
            nit=nit,
            nfev=objective.nfev,
            njev=objective.njev,
            nhev=getattr(objective, "nhev", 0),
            status=status,
            success=status == Status.SUCCESS,
            message=message,
            method="L-BFGS-B",
            hess_inv=bridge.hess_inv(eng.pairs_oldest_first()),
        )

    f, g = evaluate(x)
    if not (math.isfinite(f) and np.isfinite(g).all()):
        return finish(Status.NONFINITE, MESSAGES["nonfinite"] + " at x0", 0)
    if eng.c:
        g = np.ascontiguousarray(g, dtype=np.float64)
    if _trace is not None:  # optkit's record option: (x, f) at x0 and after each iteration
        _trace.append((bridge.out(x), f))
    if eng.pgnorm(x, g) <= gtol:
        return finish(Status.SUCCESS, MESSAGES["pgtol"], 0)
    iterate, update, pgnorm = eng.iterate, eng.update, eng.pgnorm
    it = 0  # iterations completed (L-BFGS-B's iter; also SciPy's nit)
    while True:
        # 1.–3. Cauchy point, subspace step, line search (restarts inside)
        step = iterate(evaluate, x, f, g, it == 0, maxls)
        if type(step) is int:  # the search failed from steepest descent
            if step == 3:
                return finish(Status.NONFINITE, MESSAGES["nonfinite"], it)
            return finish(Status.LINE_SEARCH, MESSAGES["abnormal"], it)
        f_old, g_old = f, g
        x, f, g = step
        # 4. the new iterate: callback, limits, convergence (SciPy's order). g is finite here:
        # an Inf or NaN in g makes gᵀd Inf or NaN, which the search does not accept.
        it += 1
        if _trace is not None:
            _trace.append((bridge.out(x), f))
        sbgnrm = pgnorm(x, g)
        if not math.isfinite(sbgnrm):
            return finish(Status.NONFINITE, MESSAGES["nonfinite"], it)
        if callback is not None:
            interim = OptimizeResult(
                x=bridge.out(x),
                fun=f,
                jac=bridge.out(g),
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
        update(g_old, g)


def _bounds(bridge: _Bridge, lower: Any, upper: Any, x: np.ndarray, shape) -> _Box:
    out = []
    for name, b in (("lower", lower), ("upper", upper)):
        size = b.numel() if isinstance(b, torch.Tensor) else np.size(b)
        if tuple(np.shape(b)) != shape and size != x.size:
            raise ValueError(f"{name} must have x0's shape {shape}, got {tuple(np.shape(b))}")
        b = bridge.host(b, x.dtype)
        if np.isnan(b).any():
            raise ValueError(f"{name} must not contain NaN")
        out.append(b)
    lower, upper = out
    bad = np.flatnonzero(lower > upper)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"lower must be <= upper: lower[{i}] = {float(lower[i])} > upper[{i}] = "
            f"{float(upper[i])}"
        )
    if (lower == math.inf).any() or (upper == -math.inf).any():
        raise ValueError("lower must be < inf and upper > -inf (no feasible point otherwise)")
    return _Box(lower, upper)
