"""The one descent loop shared by gd (with a line search), newton, newton-cg, bfgs and lbfgs.

Per iteration k::

    d = direction(x, f, g)                  # -g, -B⁻¹g, truncated CG, -H g, two-loop
    t = line_search(phi, f, gᵀd, t₀)        # phi(t) = f(x + t d)
    s = t d ;  x₊ = x + s ;  y = g₊ − g
    direction.update(s, y)
    stop when ‖g₊‖∞ ≤ gtol, (f − f₊) ≤ ftol·max(|f|, |f₊|, 1), k = max_iter, or trouble.

First trial step: 1 for a scaled direction (Newton, quasi-Newton with curvature pairs); along
−g, the step that reaches the last decrease of f with a linear model (N&W eq. 3.60, SciPy's
factor 2.02, capped at 1; on the first iteration SciPy BFGS's guess f_prev = f + ‖g‖₂/2). A
direction with ``first_step_inverse_gnorm = True`` (L-BFGS) instead starts its very first search
at t = 1/‖g‖₂, uncapped, as L-BFGS-B does: on the 29 problems of ``optkit.problems`` this
brings the median nfev ratio to L-BFGS-B from 1.05× to 1.00× (the cap at 1 shortened the first
step wherever ‖g₀‖₂ < 1, and the factor 1.01 overshot it elsewhere).

Trouble never raises. A direction that is not a descent direction, or a failed line search, first
resets the curvature information and retries once with steepest descent; if that fails too, the
run stops with :attr:`Status.LINE_SEARCH` (or :attr:`Status.NONFINITE` when NaN/Inf blocked the
search), keeping the best point found.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from . import line_search as ls
from .result import Status

__all__ = ["LoopResult", "descent_loop", "inf_norm"]


@dataclass
class LoopResult:
    """What a loop hands back to :func:`optkit.minimize` (flat tensors)."""

    x: torch.Tensor
    f: float
    g: torch.Tensor
    nit: int
    status: Status
    detail: str = ""
    xs: list = field(default_factory=list)
    fs: list = field(default_factory=list)


def inf_norm(g: torch.Tensor) -> float:
    return float(torch.linalg.vector_norm(g, math.inf)) if g.numel() else 0.0


def descent_loop(
    objective,
    x0: torch.Tensor,
    direction,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
    line_search: str = "strong-wolfe",
    c1: float = 1e-4,
    c2: float = 0.9,
    record: bool = False,
    report: Callable[[torch.Tensor, float, torch.Tensor, int], bool] | None = None,
) -> LoopResult:
    """Run ``direction`` with a line search from ``x0`` (flat). See the module docstring."""
    x = x0
    f, g = objective.value_and_grad(x)
    res = LoopResult(x, f, g, 0, Status.SUCCESS)
    if record:
        res.xs.append(x)
        res.fs.append(f)
    gnorm = inf_norm(g)  # NaN or Inf when g holds one
    if not (math.isfinite(f) and math.isfinite(gnorm)):
        res.status, res.detail = Status.NONFINITE, "at x0"
        return res
    if gnorm <= gtol:
        res.detail = f"‖g‖∞ = {gnorm:.3g} <= gtol = {gtol:.3g}"
        return res

    gnorm2 = float(torch.linalg.vector_norm(g))
    f_prev = f + 0.5 * gnorm2  # SciPy BFGS's guess for the first step
    # L-BFGS-B's first trial step along −g is 1/‖g‖₂, not capped at 1 (see the module docstring)
    t_first = 1.0 / gnorm2 if getattr(direction, "first_step_inverse_gnorm", False) else None
    for k in range(1, max_iter + 1):
        curved = direction.has_curvature
        step = _step(
            objective,
            x,
            f,
            g,
            f_prev,
            direction,
            line_search,
            c1,
            c2,
            t0=t_first if k == 1 else None,
        )
        if step is None or isinstance(step, Status):
            if not curved:  # steepest descent already failed: nothing else to try
                res.status = step if isinstance(step, Status) else Status.LINE_SEARCH
                res.nit = k - 1
                return res
            direction.reset()
            retry = _step(objective, x, f, g, f_prev, direction, line_search, c1, c2, -g)
            if retry is None or isinstance(retry, Status):
                status = retry if isinstance(retry, Status) else step
                res.status = status if isinstance(status, Status) else Status.LINE_SEARCH
                res.nit = k - 1
                return res
            step = retry
        x_new, f_new, g_new, accepted = step
        gnorm = inf_norm(g_new)
        if not math.isfinite(gnorm):
            res.nit, res.status, res.detail = k - 1, Status.NONFINITE, "in the gradient"
            return res
        direction.update(x_new - x, g_new - g)
        f_prev, x, f, g = f, x_new, f_new, g_new
        res.x, res.f, res.g, res.nit = x, f, g, k
        if record:
            res.xs.append(x)
            res.fs.append(f)
        if not accepted:  # best point of a failed search: keep it, then stop
            res.status = Status.LINE_SEARCH
            return res
        if gnorm <= gtol:
            res.detail = f"‖g‖∞ = {gnorm:.3g} <= gtol = {gtol:.3g}"
            return res
        if ftol > 0 and f_prev - f <= ftol * max(abs(f_prev), abs(f), 1.0):
            res.detail = f"relative reduction of f <= ftol = {ftol:.3g}"
            return res
        if report is not None and report(x, f, g, k):
            res.status = Status.CALLBACK
            return res
    res.status = Status.MAX_ITER
    return res


def _step(objective, x, f, g, f_prev, direction, line_search, c1, c2, d=None, t0=None):
    """One direction (``d`` if given) + line search, first trial step ``t0`` if given.

    Returns (x₊, f₊, g₊, accepted), a Status, or None for a non-descent direction.
    """
    scaled = d is None and direction.has_curvature
    if d is None:
        d = direction(x, f, g, objective)
    dg = float(g @ d)
    if not math.isfinite(dg) or dg >= 0.0:
        return None  # not a descent direction
    if t0 is not None and math.isfinite(t0) and t0 > 0:
        pass
    elif scaled:
        t0 = 1.0
    else:  # N&W eq. 3.60 with SciPy's factor: reach the last decrease with a linear model
        t0 = min(1.0, 2.02 * (f_prev - f) / -dg) if f_prev > f else 1.0
        t0 = t0 if t0 > 0 and math.isfinite(t0) else 1.0

    last = {}

    def phi(t: float) -> tuple[float, float]:
        xt = torch.add(x, d, alpha=t)
        ft, gt = objective.value_and_grad(xt)
        last[t] = xt
        if len(last) > 2:
            last.pop(next(iter(last)))
        return ft, float(gt @ d)

    f_noise = 4.0 * torch.finfo(x.dtype).eps * abs(f)  # a few ulps: see strong_wolfe
    if line_search == "armijo":
        out = ls.armijo(phi, f, dg, t0, c1=c1, f_noise=f_noise)
    else:
        out = ls.strong_wolfe(phi, f, dg, t0, c1=c1, c2=c2, f_noise=f_noise)
    if not out.success and not (out.t > 0 and out.f < f):
        return Status.NONFINITE if out.nonfinite else Status.LINE_SEARCH
    x_new = last.get(out.t)
    if x_new is None:
        x_new = x + out.t * d
    f_new, g_new = objective.value_and_grad(x_new)
    return x_new, f_new, g_new, out.success
