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
from typing import Any, Protocol

import torch

from . import line_search as ls
from .result import Status

__all__ = [
    "Direction",
    "LoopResult",
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


_NO_DESCENT = (None, math.nan, None, False, Status.LINE_SEARCH)


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

    stepper = _Stepper(objective, ops, line_search, c1, c2, max_ls)
    n = objective.n
    max_abs = ops.inf_norm
    f_prev = f + 0.5 * ops.norm(g)  # SciPy BFGS's guess for the first step
    for k in range(1, max_iter + 1):
        curved = direction.has_curvature
        d = direction(x, f, g, objective)
        x_new, f_new, g_new, accepted, failure = stepper(x, f, g, d, direction, k, f_prev)
        if x_new is None and curved:
            direction.reset()  # retry along −g without the curvature information
            x_new, f_new, g_new, accepted, failure = stepper(x, f, g, -g, None, k, f_prev)
        if x_new is None:
            res.x, res.f, res.g, res.nit, res.status = x, f, g, k - 1, failure
            return res
        g_max = max_abs(g_new)  # NaN or Inf when g holds one
        if not math.isfinite(g_max):
            res.x, res.f, res.g, res.nit = x, f, g, k - 1
            res.status, res.detail = Status.NONFINITE, "in the gradient"
            return res
        s = x_new - x
        direction.update(s, g_new - g)
        f_prev, x, f, g = f, x_new, f_new, g_new
        if record:
            res.xs.append(x)
            res.fs.append(f)
        if report is not None and report(x, f, g, k):
            res.x, res.f, res.g, res.nit = x, f, g, k
            res.status = Status.CALLBACK
            return res
        if not accepted:  # best point of a failed search: keep it, then stop
            res.x, res.f, res.g, res.nit = x, f, g, k
            res.status = Status.LINE_SEARCH
            return res
        gnorm = g_max if norm == math.inf else ops.norm(g, norm)
        stop = ""
        if gnorm <= gtol:
            stop = f"{g_label} = {gnorm:.3g} <= gtol = {gtol:.3g}"
        elif ftol > 0 and f_prev - f <= ftol * max(abs(f_prev), abs(f), 1.0):
            stop = f"relative reduction of f <= ftol = {ftol:.3g}"
        elif xtol > 0 and ops.norm(s, 1.0) <= n * xtol:
            stop = f"‖s‖₁ <= n·xtol = {n * xtol:.3g}"
        elif xrtol > 0 and ops.norm(s) <= xrtol * (xrtol + ops.norm(x)):
            stop = f"‖s‖ <= xrtol·(xrtol + ‖x‖), xrtol = {xrtol:.3g}"
        elif max_fev is not None and objective.nfev > max_fev:
            res.x, res.f, res.g, res.nit = x, f, g, k
            res.status, res.detail = Status.MAX_ITER, f"nfev = {objective.nfev} > maxfun"
            return res
        if stop:
            res.x, res.f, res.g, res.nit, res.detail = x, f, g, k, stop
            return res
    res.x, res.f, res.g, res.nit = x, f, g, max_iter
    res.status = Status.MAX_ITER
    return res


class _Stepper:
    """One line search along d from x (:meth:`__call__`), with what stays fixed over a run
    bound once. Returns ``(x₊, f₊, g₊, accepted, None)`` — accepted False for the best point of
    a failed search —, or ``(None, nan, None, False, failure)`` when no step was taken, the
    :class:`Status` saying why.

    The first trial step comes from the direction (:func:`last_decrease_step` when the
    direction is None: the retry along −g). With the strong Wolfe search, the first trial is
    evaluated here and accepted on the spot when it meets both conditions (the common case of a
    quasi-Newton step: the search's own first test, without building its closures); otherwise
    the search continues from it (:func:`.line_search.strong_wolfe` with ``first=``).
    """

    def __init__(self, objective, ops, line_search, c1, c2, max_ls) -> None:
        self.value_and_grad = objective.value_and_grad
        self.dot, self.add, self.norm = ops.dot, ops.add, ops.norm
        self.noise = 4.0 * ops.eps  # f_noise = a few ulps of |f|: see strong_wolfe
        self.wolfe = line_search != "armijo"
        self.c1, self.c2 = c1, c2
        kw: dict[str, Any] = {"c1": c1} if not self.wolfe else {"c1": c1, "c2": c2}
        if max_ls is not None:
            kw["max_eval"] = max_ls
        self.kw = kw
        self.max_ls = 30 if max_ls is None else max_ls  # strong_wolfe's default budget

    def __call__(self, x, f, g, d, direction, k, f_prev):
        dot = self.dot
        dg = dot(g, d)
        if not math.isfinite(dg) or dg >= 0.0:
            return _NO_DESCENT
        if direction is None:
            t0, guard = last_decrease_step(f_prev, f, dg), True
        else:
            t0 = direction.trial_step(k, f_prev, f, dg, self.norm(g) if k == 1 else math.nan)
            guard = direction.guard_rise
        f_noise = self.noise * abs(f)
        first = None
        if self.wolfe and self.max_ls >= 1 and t0 <= 1e10:
            xt = self.add(x, t0, d)
            ft, gt = self.value_and_grad(xt)
            dt = dot(gt, d)
            if (
                ft <= f + self.c1 * t0 * dg + f_noise
                and abs(dt) <= -self.c2 * dg
                and math.isfinite(ft)
                and math.isfinite(dt)
            ):
                return xt, ft, gt, True, None
            first = (ft, dt)
        trials: dict = {} if first is None else {t0: xt}  # t -> x + t·d, handed back uncopied
        add, value_and_grad = self.add, self.value_and_grad

        def phi(t: float) -> tuple[float, float]:
            xt = trials[t] = add(x, t, d)
            ft, gt = value_and_grad(xt)
            return ft, dot(gt, d)

        if self.wolfe:
            out = ls.strong_wolfe(
                phi, f, dg, t0, f_noise=f_noise, guard_rise=guard, first=first, **self.kw
            )
        else:
            out = ls.armijo(phi, f, dg, t0, f_noise=f_noise, **self.kw)
        if not out.success and not (out.t > 0 and out.f < f):
            failure = Status.NONFINITE if out.nonfinite else Status.LINE_SEARCH
            return None, math.nan, None, False, failure
        x_new = trials.get(out.t)
        if x_new is None:
            x_new = self.add(x, out.t, d)
        f_new, g_new = self.value_and_grad(x_new)  # cached when x_new is the last trial
        return x_new, f_new, g_new, out.success, None
