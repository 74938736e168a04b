"""The one descent loop shared by gd (with a line search), newton, newton-cg, bfgs and lbfgs.

Per iteration k::

    d = direction(x, f, g)                  # -g, -B⁻¹g, truncated CG, -H g, two-loop
    t = line_search(phi, f, gᵀd, t₀)        # phi(t) = f(x + t d), t₀ = direction.trial_step
    s = t d ;  x₊ = x + s ;  y = g₊ − g
    direction.update(s, y)
    callback(x₊)                            # every iteration, the last one included (SciPy)
    stop when ‖g₊‖ ≤ gtol, (f − f₊) ≤ ftol·max(|f|, |f₊|, 1), ‖s‖₁ ≤ n·xtol,
              ‖s‖₂ ≤ xrtol·(xrtol + ‖x₊‖₂), k = max_iter, nfev > max_fev, or trouble.

The flat vectors are torch tensors, or NumPy arrays on the CPU fast path for NumPy functions
(:mod:`._cpu_blas`); :func:`vector_ops` picks the few vector operations the loop needs.

Trouble never raises. A direction that is not a descent direction, or a failed line search, first
resets the curvature information and retries once with steepest descent; if that fails too, the
run stops with :attr:`Status.LINE_SEARCH` (or :attr:`Status.NONFINITE` when NaN/Inf blocked the
search), keeping the best point found.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import torch

from . import line_search as ls
from .result import Status

__all__ = [
    "Direction",
    "LoopResult",
    "Step",
    "TorchOps",
    "descent_loop",
    "inf_norm",
    "last_decrease_step",
    "vector_ops",
]


class Direction(Protocol):
    """What the loop asks of a search direction (steepest descent, Newton, BFGS, …).

    Attributes:
            has_curvature: Whether the direction carries curvature information (a failed step is
            then retried along −g after :meth:`reset`).
        guard_rise: Whether the line search guards its interpolation after a rise of f
            (:func:`.line_search.strong_wolfe`): True where :meth:`trial_step` is a guess.
    """

    has_curvature: bool
    guard_rise: bool

    def __call__(self, x: Any, f: float, g: Any, objective: Any) -> Any:
        """The direction d at x (a descent direction: gᵀd < 0)."""

    def update(self, s: Any, y: Any) -> None:
        """Learn from an accepted step s = x₊ − x with gradient change y = g₊ − g."""

    def reset(self) -> None:
        """Forget curvature information."""

    def trial_step(self, k: int, f_prev: float, f: float, dg: float, gnorm2: float) -> float:
        """First trial step t₀ of the line search at iteration k (gᵀd = dg, ‖g‖₂ = gnorm2)."""


def last_decrease_step(f_prev: float, f: float, dg: float) -> float:
    """``t₀ = min(1, 2.02·(f_prev − f)/|gᵀd|)``: the step that reaches the last decrease of f
    with a linear model (N&W eq. 3.60 with SciPy's factor 1.01·2), 1 when that is not usable.

    Example:
        >>> last_decrease_step(2.0, 1.0, -4.0)
        0.505
    """
    t = min(1.0, 2.02 * (f_prev - f) / -dg) if f_prev > f else 1.0
    return t if t > 0 and math.isfinite(t) else 1.0


class TorchOps:
    """The loop's vector operations on flat torch tensors."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.eps = float(torch.finfo(dtype).eps)

    @staticmethod
    def dot(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(a @ b)

    @staticmethod
    def add(x: torch.Tensor, t: float, d: torch.Tensor) -> torch.Tensor:
        return torch.add(x, d, alpha=t)

    @staticmethod
    def inf_norm(g: torch.Tensor) -> float:
        return inf_norm(g)

    @staticmethod
    def norm(g: torch.Tensor, order: float = 2.0) -> float:
        return float(torch.linalg.vector_norm(g, order)) if g.numel() else 0.0


def vector_ops(x: Any) -> Any:
    """:class:`TorchOps` for a tensor, :class:`._cpu_blas.NumpyOps` for a NumPy array."""
    if isinstance(x, torch.Tensor):
        return TorchOps(x.dtype)
    from ._cpu_blas import numpy_ops

    return numpy_ops(x.dtype)


@dataclass
class LoopResult:
    """What a loop hands back to :func:`optkit.minimize` (flat vectors).

    ``detail`` is appended to the status message; ``message``, when set, replaces it (L-BFGS-B's
    own messages); ``hess_inv`` is the method's inverse-Hessian approximation, if it has one.
    """

    x: Any
    f: float
    g: Any
    nit: int
    status: Status
    detail: str = ""
    xs: list = field(default_factory=list)
    fs: list = field(default_factory=list)
    message: str = ""
    hess_inv: Any = None


class Step(NamedTuple):
    """One direction + line search. ``x is None`` when no step was taken (``failure`` says
    why); otherwise x₊, f₊, g₊, and whether the line-search conditions hold there (False: the
    best point of a failed search)."""

    x: Any
    f: float
    g: Any
    accepted: bool
    failure: Status = Status.LINE_SEARCH


_NO_DESCENT = Step(None, math.nan, None, False, Status.LINE_SEARCH)


def inf_norm(g: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(g, math.inf)) if g.numel() else 0.0


def descent_loop(
    objective,
    x0: Any,
    direction: Direction,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
    line_search: str = "strong-wolfe",
    c1: float = 1e-4,
    c2: float = 0.9,
    max_ls: int | None = None,
    record: bool = False,
    report: Callable[[Any, float, Any, int], bool] | None = None,
    max_fev: int | None = None,
    xtol: float = 0.0,
    xrtol: float = 0.0,
    norm: float = math.inf,
) -> LoopResult:
    """Run ``direction`` with a line search from ``x0`` (flat). See the module docstring."""
    ops = vector_ops(x0)
    x = x0
    f, g = objective.value_and_grad(x)
    res = LoopResult(x, f, g, 0, Status.SUCCESS)
    if record:
        res.xs.append(x)
        res.fs.append(f)
    if not (math.isfinite(f) and math.isfinite(ops.inf_norm(g))):
        res.status, res.detail = Status.NONFINITE, "at x0"
        return res
    gnorm = ops.norm(g, norm)
    g_label = "‖g‖∞" if norm == math.inf else f"‖g‖_{norm:g}"
    if gnorm <= gtol:
        res.detail = f"{g_label} = {gnorm:.3g} <= gtol = {gtol:.3g}"
        return res

    search = ls.armijo if line_search == "armijo" else ls.strong_wolfe
    kw: dict[str, Any] = {"c1": c1} if line_search == "armijo" else {"c1": c1, "c2": c2}
    if max_ls is not None:
        kw["max_eval"] = max_ls
    n = objective.n
    f_prev = f + 0.5 * ops.norm(g)  # SciPy BFGS's guess for the first step
    for k in range(1, max_iter + 1):
        curved = direction.has_curvature
        d = direction(x, f, g, objective)
        step = _step(objective, ops, search, kw, x, f, g, d, direction, k, f_prev)
        if step.x is None and curved:
            direction.reset()  # retry along −g without the curvature information
            step = _step(objective, ops, search, kw, x, f, g, -g, None, k, f_prev)
        if step.x is None:
            res.status, res.nit = step.failure, k - 1
            return res
        x_new, f_new, g_new = step.x, step.f, step.g
        g_max = ops.inf_norm(g_new)  # NaN or Inf when g holds one
        if not math.isfinite(g_max):
            res.nit, res.status, res.detail = k - 1, Status.NONFINITE, "in the gradient"
            return res
        s = x_new - x
        direction.update(s, g_new - g)
        f_prev, x, f, g = f, x_new, f_new, g_new
        res.x, res.f, res.g, res.nit = x, f, g, k
        if record:
            res.xs.append(x)
            res.fs.append(f)
        if report is not None and report(x, f, g, k):
            res.status = Status.CALLBACK
            return res
        gnorm = g_max if norm == math.inf else ops.norm(g, norm)
        if not step.accepted:  # best point of a failed search: keep it, then stop
            res.status = Status.LINE_SEARCH
            return res
        if gnorm <= gtol:
            res.detail = f"{g_label} = {gnorm:.3g} <= gtol = {gtol:.3g}"
            return res
        if ftol > 0 and f_prev - f <= ftol * max(abs(f_prev), abs(f), 1.0):
            res.detail = f"relative reduction of f <= ftol = {ftol:.3g}"
            return res
        if xtol > 0 and ops.norm(s, 1.0) <= n * xtol:
            res.detail = f"‖s‖₁ <= n·xtol = {n * xtol:.3g}"
            return res
        if xrtol > 0 and ops.norm(s) <= xrtol * (xrtol + ops.norm(x)):
            res.detail = f"‖s‖ <= xrtol·(xrtol + ‖x‖), xrtol = {xrtol:.3g}"
            return res
        if max_fev is not None and objective.nfev > max_fev:
            res.status, res.detail = Status.MAX_ITER, f"nfev = {objective.nfev} > maxfun"
            return res
    res.status = Status.MAX_ITER
    return res


def _step(objective, ops, search, kw, x, f, g, d, direction, k, f_prev) -> Step:
    """A line search along ``d`` from x; the first trial step comes from ``direction``
    (:func:`last_decrease_step` when ``direction`` is None: the retry along −g)."""
    dg = ops.dot(g, d)
    if not math.isfinite(dg) or dg >= 0.0:
        return _NO_DESCENT
    if direction is None:
        t0, guard = last_decrease_step(f_prev, f, dg), True
    else:
        t0 = direction.trial_step(k, f_prev, f, dg, ops.norm(g) if k == 1 else math.nan)
        guard = direction.guard_rise
    trials: dict = {}  # t -> x + t·d: the accepted point is handed back without a copy

    def phi(t: float) -> tuple[float, float]:
        xt = trials[t] = ops.add(x, t, d)
        ft, gt = objective.value_and_grad(xt)
        return ft, ops.dot(gt, d)

    f_noise = 4.0 * ops.eps * abs(f)  # a few ulps: see strong_wolfe
    if search is ls.strong_wolfe:
        out = search(phi, f, dg, t0, f_noise=f_noise, guard_rise=guard, **kw)
    else:
        out = search(phi, f, dg, t0, f_noise=f_noise, **kw)
    if not out.success and not (out.t > 0 and out.f < f):
        failure = Status.NONFINITE if out.nonfinite else Status.LINE_SEARCH
        return Step(None, math.nan, None, False, failure)
    x_new = trials.get(out.t)
    if x_new is None:
        x_new = ops.add(x, out.t, d)
    f_new, g_new = objective.value_and_grad(x_new)
    return Step(x_new, f_new, g_new, out.success)
