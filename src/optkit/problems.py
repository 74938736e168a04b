"""Test problems for minimization, in torch, with known minima and standard starting points.

Every problem is a :class:`Problem` holding ``fun(x) -> scalar tensor`` for a 1-D ``x`` of any
floating dtype and device, the standard ``x0`` (float64), the optimal value ``f_star`` and, when
it is unique and known in closed form, the minimizer ``x_star``. :data:`PROBLEMS` maps names to
problems in their standard sizes; the factories (``rosenbrock(n)``, ``quadratic(n, cond)``, …)
build other sizes.

Most of the set is Moré, Garbow & Hillstrom, "Testing unconstrained optimization software",
ACM TOMS 7 (1981) — "MGH k" below is their problem number; they are sums of squares
``f = Σᵢ rᵢ(x)²``. Optimal values not known in closed form are the ones MGH report.

Example:
    >>> import optkit
    >>> p = optkit.problems.PROBLEMS["beale"]
    >>> p.dim, p.f_star, float(p.fun(p.x_star))
    (2, 0.0, 0.0)
    >>> sorted(optkit.problems.PROBLEMS)[:3]
    ['bard', 'beale', 'biggs_exp6']
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "PROBLEMS",
    "LogisticLoss",
    "Problem",
    "extended_rosenbrock",
    "logistic_regression",
    "quadratic",
    "rosenbrock",
]


@dataclass(frozen=True)
class Problem:
    """A test function with its standard start and known optimum.

    Attributes:
        name: Registry key.
        fun: ``fun(x) -> 0-d tensor`` for a 1-D tensor x of length ``dim``.
        x0: Standard starting point (float64, CPU).
        f_star: Optimal value (global minimum, or the minimum MGH report).
        x_star: The minimizer when unique and known, else None.
        description: One line: what it is and what makes it hard.
        source: Where it comes from.
        data: Extra data (e.g. the design matrix of a regression problem), else empty.
    """

    name: str
    fun: Callable[[Tensor], Tensor]
    x0: Tensor
    f_star: float
    x_star: Tensor | None
    description: str
    source: str = ""
    data: dict = field(default_factory=dict, repr=False)

    @property
    def dim(self) -> int:
        """Number of variables."""
        return self.x0.numel()

    def start(self, dtype: torch.dtype = torch.float64, device=None) -> Tensor:
        """A fresh copy of ``x0`` in ``dtype`` on ``device``."""
        return self.x0.to(dtype=dtype, device=device).clone()


def _c(values, like: Tensor) -> Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device)


def _f64(values) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _sumsq(r: Tensor) -> Tensor:
    return (r * r).sum()


# --- the classic 2-D set -----------------------------------------------------------------------
def _rosen(x: Tensor) -> Tensor:
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def rosenbrock(n: int = 2) -> Problem:
    """Chained Rosenbrock ``Σᵢ 100(xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²`` (SciPy's ``rosen``); x* = 1.

    Start (−1.2, 1, −1.2, 1, …). A curved narrow valley.
    """
    x0 = torch.ones(n, dtype=torch.float64)
    x0[::2] = -1.2
    name = "rosenbrock" if n == 2 else f"rosenbrock_{n}"
    return Problem(
        name,
        _rosen,
        x0,
        0.0,
        torch.ones(n, dtype=torch.float64),
        f"chained Rosenbrock, n={n}: curved narrow valley",
        "Rosenbrock 1960; MGH 1",
    )


def _ext_rosen(x: Tensor) -> Tensor:
    odd, even = x[0::2], x[1::2]
    return (100.0 * (even - odd * odd) ** 2 + (1.0 - odd) ** 2).sum()


def extended_rosenbrock(n: int = 10) -> Problem:
    """MGH 21, extended Rosenbrock: n/2 independent 2-D Rosenbrock valleys (n even); x* = 1."""
    if n % 2:
        raise ValueError(f"n must be even, got {n}")
    x0 = torch.ones(n, dtype=torch.float64)
    x0[::2] = -1.2
    return Problem(
        f"extended_rosenbrock_{n}",
        _ext_rosen,
        x0,
        0.0,
        torch.ones(n, dtype=torch.float64),
        f"n/2 uncoupled Rosenbrock valleys, n={n}",
        "MGH 21",
    )


def _beale(x: Tensor) -> Tensor:
    y = _c([1.5, 2.25, 2.625], x)
    i = _c([1.0, 2.0, 3.0], x)
    return _sumsq(y - x[0] * (1.0 - x[1] ** i))


def _booth(x: Tensor) -> Tensor:
    return (x[0] + 2 * x[1] - 7) ** 2 + (2 * x[0] + x[1] - 5) ** 2


def _himmelblau(x: Tensor) -> Tensor:
    return (x[0] ** 2 + x[1] - 11) ** 2 + (x[0] + x[1] ** 2 - 7) ** 2


# --- MGH --------------------------------------------------------------------------------------
def _freudenstein_roth(x: Tensor) -> Tensor:
    r1 = -13.0 + x[0] + ((5.0 - x[1]) * x[1] - 2.0) * x[1]
    r2 = -29.0 + x[0] + ((x[1] + 1.0) * x[1] - 14.0) * x[1]
    return r1**2 + r2**2


def _powell_badly_scaled(x: Tensor) -> Tensor:
    return (1e4 * x[0] * x[1] - 1.0) ** 2 + (torch.exp(-x[0]) + torch.exp(-x[1]) - 1.0001) ** 2


def _brown_badly_scaled(x: Tensor) -> Tensor:
    return (x[0] - 1e6) ** 2 + (x[1] - 2e-6) ** 2 + (x[0] * x[1] - 2.0) ** 2


def _helical_valley(x: Tensor) -> Tensor:
    theta = torch.atan(x[1] / x[0]) / (2 * math.pi) + torch.where(x[0] < 0, 0.5, 0.0)
    r1 = 10.0 * (x[2] - 10.0 * theta)
    r2 = 10.0 * (torch.sqrt(x[0] ** 2 + x[1] ** 2) - 1.0)
    return r1**2 + r2**2 + x[2] ** 2


_BARD_Y = [0.14, 0.18, 0.22, 0.25, 0.29, 0.32, 0.35, 0.39, 0.37, 0.58, 0.73, 0.96, 1.34, 2.10, 4.39]


def _bard(x: Tensor) -> Tensor:
    u = torch.arange(1, 16, dtype=x.dtype, device=x.device)
    v = 16.0 - u
    w = torch.minimum(u, v)
    return _sumsq(_c(_BARD_Y, x) - (x[0] + u / (v * x[1] + w * x[2])))


_GAUSS_Y = [
    0.0009,
    0.0044,
    0.0175,
    0.0540,
    0.1295,
    0.2420,
    0.3521,
    0.3989,
    0.3521,
    0.2420,
    0.1295,
    0.0540,
    0.0175,
    0.0044,
    0.0009,
]


def _gaussian(x: Tensor) -> Tensor:
    t = (8.0 - torch.arange(1, 16, dtype=x.dtype, device=x.device)) / 2.0
    return _sumsq(x[0] * torch.exp(-x[1] * (t - x[2]) ** 2 / 2.0) - _c(_GAUSS_Y, x))


def _box3d(x: Tensor) -> Tensor:
    t = 0.1 * torch.arange(1, 11, dtype=x.dtype, device=x.device)
    r = torch.exp(-t * x[0]) - torch.exp(-t * x[1]) - x[2] * (torch.exp(-t) - torch.exp(-10.0 * t))
    return _sumsq(r)


def _powell_singular(x: Tensor) -> Tensor:
    return (
        (x[0] + 10 * x[1]) ** 2
        + 5 * (x[2] - x[3]) ** 2
        + (x[1] - 2 * x[2]) ** 4
        + 10 * (x[0] - x[3]) ** 4
    )


def _wood(x: Tensor) -> Tensor:
    return (
        100 * (x[0] ** 2 - x[1]) ** 2
        + (x[0] - 1) ** 2
        + 90 * (x[2] ** 2 - x[3]) ** 2
        + (x[2] - 1) ** 2
        + 10.1 * ((x[1] - 1) ** 2 + (x[3] - 1) ** 2)
        + 19.8 * (x[1] - 1) * (x[3] - 1)
    )


_KO_Y = [0.1957, 0.1947, 0.1735, 0.1600, 0.0844, 0.0627, 0.0456, 0.0342, 0.0323, 0.0235, 0.0246]
_KO_U = [4.0, 2.0, 1.0, 0.5, 0.25, 0.167, 0.125, 0.1, 0.0833, 0.0714, 0.0625]


def _kowalik_osborne(x: Tensor) -> Tensor:
    u = _c(_KO_U, x)
    return _sumsq(_c(_KO_Y, x) - x[0] * (u * u + u * x[1]) / (u * u + u * x[2] + x[3]))


def _brown_dennis(x: Tensor) -> Tensor:
    t = torch.arange(1, 21, dtype=x.dtype, device=x.device) / 5.0
    r = (x[0] + t * x[1] - torch.exp(t)) ** 2 + (x[2] + x[3] * torch.sin(t) - torch.cos(t)) ** 2
    return _sumsq(r)


_OSB1_Y = [
    0.844,
    0.908,
    0.932,
    0.936,
    0.925,
    0.908,
    0.881,
    0.850,
    0.818,
    0.784,
    0.751,
    0.718,
    0.685,
    0.658,
    0.628,
    0.603,
    0.580,
    0.558,
    0.538,
    0.522,
    0.506,
    0.490,
    0.478,
    0.467,
    0.457,
    0.448,
    0.438,
    0.431,
    0.424,
    0.420,
    0.414,
    0.411,
    0.406,
]


def _osborne1(x: Tensor) -> Tensor:
    t = 10.0 * torch.arange(33, dtype=x.dtype, device=x.device)
    model = x[0] + x[1] * torch.exp(-t * x[3]) + x[2] * torch.exp(-t * x[4])
    return _sumsq(_c(_OSB1_Y, x) - model)


def _biggs_exp6(x: Tensor) -> Tensor:
    t = 0.1 * torch.arange(1, 14, dtype=x.dtype, device=x.device)
    y = torch.exp(-t) - 5 * torch.exp(-10 * t) + 3 * torch.exp(-4 * t)
    r = x[2] * torch.exp(-t * x[0]) - x[3] * torch.exp(-t * x[1]) + x[5] * torch.exp(-t * x[4]) - y
    return _sumsq(r)


def _watson(x: Tensor) -> Tensor:
    n = x.numel()
    t = torch.arange(1, 30, dtype=x.dtype, device=x.device) / 29.0
    j = torch.arange(n, dtype=x.dtype, device=x.device)
    powers = t.unsqueeze(1) ** j  # t^(j-1) for j = 1..n
    s1 = (powers[:, :-1] * (j[1:] * x[1:])).sum(1)  # Σ_{j≥2} (j−1) x_j t^(j−2)
    s2 = (powers * x).sum(1)
    r = s1 - s2**2 - 1.0
    return _sumsq(r) + x[0] ** 2 + (x[1] - x[0] ** 2 - 1.0) ** 2


def _penalty1(x: Tensor) -> Tensor:
    return 1e-5 * _sumsq(x - 1.0) + ((x * x).sum() - 0.25) ** 2


def _penalty2(x: Tensor) -> Tensor:
    n = x.numel()
    a = 1e-5
    i = torch.arange(2, n + 1, dtype=x.dtype, device=x.device)
    y = torch.exp(i / 10.0) + torch.exp((i - 1) / 10.0)
    e = torch.exp(x / 10.0)
    r_mid = e[1:] + e[:-1] - y
    r_tail = e[1:] - math.exp(-0.1)
    w = torch.arange(n, 0, -1, dtype=x.dtype, device=x.device)
    r_last = (w * x * x).sum() - 1.0
    return (x[0] - 0.2) ** 2 + a * (_sumsq(r_mid) + _sumsq(r_tail)) + r_last**2


def _variably_dimensioned(x: Tensor) -> Tensor:
    j = torch.arange(1, x.numel() + 1, dtype=x.dtype, device=x.device)
    s = (j * (x - 1.0)).sum()
    return _sumsq(x - 1.0) + s**2 + s**4


def _trigonometric(x: Tensor) -> Tensor:
    n = x.numel()
    i = torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    c = torch.cos(x)
    return _sumsq(n - c.sum() + i * (1.0 - c) - torch.sin(x))


def _brown_almost_linear(x: Tensor) -> Tensor:
    n = x.numel()
    r = x[:-1] + x.sum() - (n + 1.0)
    return _sumsq(r) + (torch.prod(x) - 1.0) ** 2


def _discrete_boundary(x: Tensor) -> Tensor:
    n = x.numel()
    h = 1.0 / (n + 1)
    t = h * torch.arange(1, n + 1, dtype=x.dtype, device=x.device)
    z = torch.zeros(1, dtype=x.dtype, device=x.device)
    padded = torch.cat([z, x, z])
    r = 2 * x - padded[:-2] - padded[2:] + h * h * (x + t + 1.0) ** 3 / 2.0
    return _sumsq(r)


def _broyden_tridiagonal(x: Tensor) -> Tensor:
    z = torch.zeros(1, dtype=x.dtype, device=x.device)
    padded = torch.cat([z, x, z])
    return _sumsq((3.0 - 2.0 * x) * x - padded[:-2] - 2.0 * padded[2:] + 1.0)


def _extended_powell(x: Tensor) -> Tensor:
    a, b, c, d = x[0::4], x[1::4], x[2::4], x[3::4]
    return ((a + 10 * b) ** 2 + 5 * (c - d) ** 2 + (b - 2 * c) ** 4 + 10 * (a - d) ** 4).sum()


# --- ill-conditioned quadratic and logistic regression ------------------------------------------
def quadratic(n: int = 20, cond: float = 1e4) -> Problem:
    """``f = ½ xᵀA x − bᵀx`` with A SPD, eigenvalues log-spaced in [1, cond], rotated by a fixed
    Householder reflection; x* = A⁻¹b. Steepest descent crawls (rate (κ−1)/(κ+1)); CG, BFGS
    and Newton do not."""
    lam = torch.logspace(0, math.log10(cond), n, dtype=torch.float64)
    v = torch.cos(torch.arange(1, n + 1, dtype=torch.float64))
    v = v / torch.linalg.vector_norm(v)
    Q = torch.eye(n, dtype=torch.float64) - 2.0 * torch.outer(v, v)
    A = Q @ torch.diag(lam) @ Q.T
    A = 0.5 * (A + A.T)
    b = torch.ones(n, dtype=torch.float64)
    x_star = torch.linalg.solve(A, b)
    f_star = float(-0.5 * b @ x_star)

    def fun(x: Tensor) -> Tensor:
        Ax = A.to(x) @ x
        return 0.5 * (x @ Ax) - b.to(x) @ x

    return Problem(
        f"quadratic_{n}",
        fun,
        torch.zeros(n, dtype=torch.float64),
        f_star,
        x_star,
        f"ill-conditioned quadratic, n={n}, condition number {cond:g}",
        "textbook",
        {"A": A, "b": b},
    )


def logistic_regression(
    n_samples: int = 500, n_features: int = 20, l2: float = 1e-2, seed: int = 0
) -> Problem:
    """L2-regularized logistic regression on synthetic data (no intercept)::

        f(w) = (1/N) Σᵢ log(1 + exp(−yᵢ xᵢᵀw)) + (l2/2)‖w‖²,   yᵢ ∈ {−1, +1}

    Data from NumPy's PCG64 with ``seed`` (reproducible across platforms); labels from a
    random true w with 10 % of them flipped. Strongly convex: a unique minimizer, computed here
    once (``x_star``) by Newton's method to machine precision. ``data`` holds X, y (±1) and l2.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features))
    w_true = rng.standard_normal(n_features)
    y = np.where(X @ w_true + 0.5 * rng.standard_normal(n_samples) > 0, 1.0, -1.0)
    flip = rng.random(n_samples) < 0.1
    y[flip] = -y[flip]
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def fun(w: Tensor) -> Tensor:
        margins = yt.to(w) * (Xt.to(w) @ w)
        return torch.nn.functional.softplus(-margins).mean() + 0.5 * l2 * (w @ w)

    # the minimizer, by plain Newton (the problem is strongly convex and smooth)
    w = torch.zeros(n_features, dtype=torch.float64)
    for _ in range(50):
        p = torch.sigmoid(-yt * (Xt @ w))
        g = -(Xt.T @ (yt * p)) / n_samples + l2 * w
        H = (Xt.T * (p * (1 - p))) @ Xt / n_samples + l2 * torch.eye(
            n_features, dtype=torch.float64
        )
        step = torch.linalg.solve(H, g)
        w = w - step
        if float(step.abs().max()) < 1e-15:
            break
    return Problem(
        f"logistic_regression_{n_samples}x{n_features}",
        fun,
        torch.zeros(n_features, dtype=torch.float64),
        float(fun(w)),
        w,
        f"L2 logistic regression, {n_samples} samples x {n_features} features, l2={l2:g}",
        "synthetic",
        {"X": Xt, "y": yt, "l2": l2},
    )


class LogisticLoss:
    """L2-regularized logistic regression on your data, scikit-learn's objective, in torch.

    With ``x = [W; b]`` (the ``(d + 1, K)`` weights and intercepts, or ``(d + 1,)`` for two
    classes) and ``zᵢ = xᵢᵀW + b``::

        f(W, b) = (1/N) Σᵢ CE(softmax(zᵢ), yᵢ) + ‖W‖² / (2·C·N)     (two classes: log(1 + e^z) − yz)

    which is what ``sklearn.linear_model.LogisticRegression(C=C)`` minimizes (its objective
    divided by N, so the same minimizer). Three ways to use it:

    * ``loss(x)``: a torch expression, for ``optkit.minimize(loss, x0)`` (autograd);
    * ``loss.value_and_grad(x) -> (f, g)``: f and ∇f in one pass with the gradient written out,
      for ``optkit.minimize(loss.value_and_grad, x0, jac=True)`` (no autograd graph);
    * ``loss.hessp(x, v)``: the Hessian-vector product ∇²f(x)·v written out, for
      ``optkit.minimize(..., method="newton-cg", hessp=loss.hessp)``.

    How it is computed. With the augmented data ``X₁ = [X, 1]`` (N × (d + 1)), one-hot labels Y
    and ``A = X₁ᵀY/N`` (d + 1) × K, computed once, the scores are ``Z = X₁x`` and::

        f = (1/N) Σᵢ logΣₖ exp(Zᵢₖ) − ⟨A, x⟩ + ‖W‖²/(2CN)
        g = X₁ᵀP/N − A + [W; 0]/(CN)                      P = softmax(Z) row-wise

    so the labels enter only through A (no gather or scatter per evaluation) and the intercept
    rides along in the products. The class-scores are formed transposed, ``Zᵀ = xᵀX₁ᵀ``
    (K × N), and the gradient as ``PᵀX₁``: for K = 10 and N = 1797 single-threaded MKL computes
    these products in about half the time of ``X₁x`` and ``X₁ᵀP`` (95 µs against 180–200 µs each,
    float64), and the softmax then reduces over the short leading axis, vectorized along N.
    X₁ is stored column-major (one copy at construction): ``X₁ᵀ`` is then a row-major
    (d + 1) × N array, and single-threaded MKL computes ``X₁w`` and ``X₁ᵀr`` for two classes
    from it in about a third of the time it takes from the row-major array NumPy hands over
    (50 000 × 200 float64: 11 ms vs 40 ms per f + ∇f for the two products); the copy costs about
    one NumPy ``asfortranarray`` (65 ms there).

    Args:
        X: ``(N, d)`` features (NumPy array or tensor; converted to ``dtype``).
        y: ``(N,)`` integer class labels ``0 … K−1``.
        C: Inverse regularization strength (scikit-learn's), > 0.
        dtype: Floating dtype of the data and of the x it expects.

    Attributes:
        n_classes: K. ``shape``: the shape of x. ``x0()``: zeros of that shape. ``X``: the
        features, a column-major ``(N, d)`` view of X₁.

    Example:
        >>> import torch, optkit
        >>> X = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
        >>> loss = optkit.problems.LogisticLoss(X, torch.tensor([0, 1, 1, 0]))
        >>> f, g = loss.value_and_grad(loss.x0())
        >>> round(f, 6), loss.shape, torch.allclose(g, torch.func.grad(loss)(loss.x0()))
        (0.693147, (3,), True)
    """

    def __init__(self, X, y, C: float = 1.0, dtype: torch.dtype = torch.float64) -> None:
        if not C > 0:
            raise ValueError(f"C must be > 0, got {C}")
        if isinstance(X, Tensor) and X.device.type == "cpu":
            X = X.numpy(force=True)
        y = torch.as_tensor(y).long()
        if X.ndim != 2 or tuple(y.shape) != (X.shape[0],):
            raise ValueError(
                f"need X of shape (N, d) and y of shape (N,), got {tuple(X.shape)}, "
                f"{tuple(y.shape)}"
            )
        self.N, self.d = X.shape
        if isinstance(X, np.ndarray):  # NumPy's transposing copy is 2x faster than torch's
            X1T = np.empty((self.d + 1, self.N), dtype=torch.empty((), dtype=dtype).numpy().dtype)
            X1T[:-1] = X.T
            X1T[-1] = 1.0
            X1T = torch.from_numpy(X1T)
        else:
            X = torch.as_tensor(X)
            X1T = torch.empty(self.d + 1, self.N, dtype=dtype, device=X.device)
            X1T[:-1] = X.T
            X1T[-1] = 1.0
        self._X1T = X1T  # X₁ᵀ, row-major (d + 1) × N; X₁ = X1T.T is column-major
        self.X = X1T[:-1].T
        self.y = y = y.to(X1T.device)
        self.n_classes = max(2, int(y.max()) + 1)
        self.C, self.dtype = float(C), dtype
        self._l2 = 1.0 / (self.C * self.N)
        if self.n_classes == 2:
            self.shape: tuple[int, ...] = (self.d + 1,)
            Y = y.to(dtype)
        else:
            self.shape = (self.d + 1, self.n_classes)
            Y = torch.nn.functional.one_hot(y, self.n_classes).to(dtype)
        self._A = (X1T @ Y).div_(self.N)  # X₁ᵀY/N, the labels' only appearance
        self._minus_A = -self._A
        self._ridge = torch.full_like(self._A, self._l2)  # 1/(CN) on W, 0 on the intercepts
        self._ridge[-1] = 0.0
        self._at: Tensor | None = None  # the x of the cached probabilities (see hessp)
        self._P = torch.empty(0)

    def x0(self) -> Tensor:
        """Zeros of :attr:`shape` (scikit-learn's start)."""
        return torch.zeros(self.shape, dtype=self.dtype, device=self._X1T.device)

    def __call__(self, x: Tensor) -> Tensor:
        if self.n_classes == 2:
            lse = torch.nn.functional.softplus(self._X1T.T @ x)  # log(1 + e^z)
        else:  # scores transposed, K × N; xᵀ contiguous keeps both products in the fast layout
            Z = x.T.contiguous() @ self._X1T
            m = Z.detach().amax(0)  # a constant shift: the value and all derivatives are exact
            lse = torch.exp(Z - m).sum(0).log() + m  # backward reuses exp (logsumexp recomputes)
        # −⟨A, x⟩ + ‖W‖²/(2CN) = ⟨x, [W; 0]/(2CN) − A⟩
        return (
            lse.sum() / self.N + (x * torch.addcmul(self._minus_A, self._ridge, x, value=0.5)).sum()
        )

    def value_and_grad(self, x: Tensor) -> tuple[float, Tensor]:
        """``(f(x), ∇f(x))`` without autograd: one forward pass, the gradient written out."""
        x = x.detach()
        P, lse = self._probabilities(x)
        if self.n_classes == 2:
            g = torch.addcmul(self._minus_A, self._ridge, x)  # [W; 0]/(CN) − A
            g = torch.addmv(g, self._X1T, P, alpha=1.0 / self.N)
        else:
            g = torch.addcmul(self._minus_A.T, self._ridge.T, x.T)  # transposed: K × (d + 1)
            g = torch.addmm(g, P, self._X1T.T, alpha=1.0 / self.N).T.contiguous()
        # −⟨A, x⟩ + ‖W‖²/(2CN) = ⟨x, [W; 0]/(2CN) − A⟩
        linear = torch.vdot(
            x.reshape(-1), torch.addcmul(self._minus_A, self._ridge, x, value=0.5).view(-1)
        )
        return float(lse) / self.N + float(linear), g

    def hessp(self, x: Tensor, v: Tensor) -> Tensor:
        """``∇²f(x)·v`` written out (v shaped like x)::

            Hv = X₁ᵀR/N + [V_W; 0]/(CN),   Zᵥ = X₁v,   R = P ⊙ (Zᵥ − rowsum(P ⊙ Zᵥ))

        (two classes: ``R = p(1 − p) ⊙ zᵥ``). P is reused from the last :meth:`value_and_grad`
        or :meth:`hessp` at the same x, so a CG solve at one x costs two products per H·v.
        """
        x, v = x.detach(), v.detach()
        if self._at is None or not torch.equal(self._at, x):
            self._probabilities(x)
        P = self._P
        if self.n_classes == 2:
            R = torch.mv(self._X1T.T, v).mul_(P).mul_(1.0 - P)
            Hv = torch.mv(self._X1T, R).div_(self.N)
        else:
            R = torch.mm(v.T.contiguous(), self._X1T).mul_(P)  # P ⊙ Zᵥ, transposed: K × N
            R.addcmul_(P, R.sum(0), value=-1.0)
            Hv = torch.mm(R, self._X1T.T).T.contiguous().div_(self.N)
        return Hv.addcmul_(self._ridge, v)

    def _probabilities(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """P at x (transposed, K × N; two classes: sigmoid(z)), kept for :meth:`hessp`, and
        Σᵢ logΣₖ exp(Zᵢₖ) (a 0-d tensor)."""
        if self.n_classes == 2:
            z = torch.mv(self._X1T.T, x)
            lse = torch.nn.functional.softplus(z).sum()  # log(1 + e^z)
            P = z.sigmoid_()
        else:
            P = torch.mm(x.T.contiguous(), self._X1T)  # Zᵀ, K × N
            m = P.amax(0)  # per-sample max: exp cannot overflow
            s = P.sub_(m).exp_().sum(0)
            P.div_(s)  # softmax
            lse = s.log_().add_(m).sum()
        self._at, self._P = x.clone(), P
        return P, lse


def _p(name, fun, x0, f_star, x_star, description, source) -> Problem:
    return Problem(
        name, fun, _f64(x0), f_star, None if x_star is None else _f64(x_star), description, source
    )


def _registry() -> dict[str, Problem]:
    probs = [
        rosenbrock(2),
        rosenbrock(10),
        _p(
            "beale",
            _beale,
            [1.0, 1.0],
            0.0,
            [3.0, 0.5],
            "Beale: flat plateaus, sharp ridges",
            "MGH 5",
        ),
        _p("booth", _booth, [0.0, 0.0], 0.0, [1.0, 3.0], "Booth: a convex quadratic", "Booth"),
        _p(
            "himmelblau",
            _himmelblau,
            [1.0, 1.0],
            0.0,
            [3.0, 2.0],
            "Himmelblau: four global minima; from (1, 1) the one at (3, 2)",
            "Himmelblau 1972",
        ),
        _p(
            "freudenstein_roth",
            _freudenstein_roth,
            [0.5, -2.0],
            48.9842536792,
            None,
            "Freudenstein–Roth: local minimum 48.98 near (11.41, −0.897) attracts; global "
            "0 at (5, 4)",
            "MGH 2",
        ),
        _p(
            "powell_badly_scaled",
            _powell_badly_scaled,
            [0.0, 1.0],
            0.0,
            None,
            "Powell badly scaled: x* ≈ (1.098e-5, 9.106)",
            "MGH 3",
        ),
        _p(
            "brown_badly_scaled",
            _brown_badly_scaled,
            [1.0, 1.0],
            0.0,
            [1e6, 2e-6],
            "Brown badly scaled: variables 12 orders of magnitude apart",
            "MGH 4",
        ),
        _p(
            "helical_valley",
            _helical_valley,
            [-1.0, 0.0, 0.0],
            0.0,
            [1.0, 0.0, 0.0],
            "helical valley",
            "MGH 7",
        ),
        _p("bard", _bard, [1.0, 1.0, 1.0], 8.21487730657e-3, None, "Bard: data fitting", "MGH 8"),
        _p(
            "gaussian",
            _gaussian,
            [0.4, 1.0, 0.0],
            1.12793276961e-8,
            None,
            "Gaussian: data fitting",
            "MGH 9",
        ),
        _p(
            "box_3d",
            _box3d,
            [0.0, 10.0, 20.0],
            0.0,
            [1.0, 10.0, 1.0],
            "Box three-dimensional: exponential fit",
            "MGH 12",
        ),
        _p(
            "powell_singular",
            _powell_singular,
            [3.0, -1.0, 0.0, 1.0],
            0.0,
            [0.0] * 4,
            "Powell singular: Hessian singular at x*, Newton converges only linearly",
            "MGH 13",
        ),
        _p(
            "wood",
            _wood,
            [-3.0, -1.0, -3.0, -1.0],
            0.0,
            [1.0] * 4,
            "Wood: two coupled Rosenbrock valleys",
            "MGH 14",
        ),
        _p(
            "kowalik_osborne",
            _kowalik_osborne,
            [0.25, 0.39, 0.415, 0.39],
            3.07505603849e-4,
            None,
            "Kowalik–Osborne: rational data fit",
            "MGH 15",
        ),
        _p(
            "brown_dennis",
            _brown_dennis,
            [25.0, 5.0, -5.0, -1.0],
            85822.2016263563,
            None,
            "Brown–Dennis: large residual",
            "MGH 16",
        ),
        _p(
            "osborne1",
            _osborne1,
            [0.5, 1.5, -1.0, 0.01, 0.02],
            5.46489469748e-5,
            None,
            "Osborne 1: sum of two exponentials",
            "MGH 17",
        ),
        _p(
            "biggs_exp6",
            _biggs_exp6,
            [1.0, 2.0, 1.0, 1.0, 1.0, 1.0],
            5.65564988e-3,
            None,
            "Biggs EXP6 (m = 13): several minima, 0 and 5.66e-3",
            "MGH 18",
        ),
        _p(
            "watson_6",
            _watson,
            [0.0] * 6,
            2.28767005355e-3,
            None,
            "Watson, n = 6: polynomial fit, ill-conditioned",
            "MGH 20",
        ),
        _p(
            "penalty1_4",
            _penalty1,
            [1.0, 2.0, 3.0, 4.0],
            2.24997750031e-5,
            None,
            "penalty function I, n = 4",
            "MGH 23",
        ),
        _p(
            "penalty2_4",
            _penalty2,
            [0.5] * 4,
            9.37629300855e-6,
            None,
            "penalty function II, n = 4",
            "MGH 24",
        ),
        _p(
            "variably_dimensioned_10",
            _variably_dimensioned,
            [1 - j / 10 for j in range(1, 11)],
            0.0,
            [1.0] * 10,
            "variably dimensioned, n = 10: quartic growth",
            "MGH 25",
        ),
        _p(
            "trigonometric_10",
            _trigonometric,
            [0.1] * 10,
            2.79506e-5,
            None,
            "trigonometric, n = 10: the minimum reached from x0 is 2.795e-5 (0 elsewhere)",
            "MGH 26",
        ),
        _p(
            "brown_almost_linear_10",
            _brown_almost_linear,
            [0.5] * 10,
            0.0,
            None,
            "Brown almost-linear, n = 10: f* = 0 (also 1 at other points)",
            "MGH 27",
        ),
        _p(
            "discrete_boundary_10",
            _discrete_boundary,
            [(j / 11) * (j / 11 - 1) for j in range(1, 11)],
            0.0,
            None,
            "discrete boundary value problem, n = 10",
            "MGH 28",
        ),
        _p(
            "broyden_tridiagonal_10",
            _broyden_tridiagonal,
            [-1.0] * 10,
            0.0,
            None,
            "Broyden tridiagonal, n = 10",
            "MGH 30",
        ),
        _p(
            "extended_powell_8",
            _extended_powell,
            [3.0, -1.0, 0.0, 1.0] * 2,
            0.0,
            [0.0] * 8,
            "extended Powell singular, n = 8",
            "MGH 22",
        ),
        quadratic(20, 1e4),
        logistic_regression(500, 20),
    ]
    return {p.name: p for p in probs}


PROBLEMS: dict[str, Problem] = _registry()
"""Name -> :class:`Problem`, the standard test set (used by tests, benchmarks and the CLI)."""
