"""gd, momentum, nesterov, rmsprop, adam, adamw: full-batch loops running :mod:`optkit.optim`.

The update rules are not written here: each iteration hands ``g = ∇f(x)`` to the matching
``optkit.optim`` optimizer (``SGD``, ``RMSprop``, ``Adam``, ``AdamW``) and calls its ``step()`` on
the vector x, so ``minimize(method="adam")`` and a training loop with ``optkit.Adam`` follow one
rule. See those classes for the math in the lecture's notation. Per iteration::

    f, g = f(x), ∇f(x)
    stop when ‖g‖∞ ≤ gtol, |f_prev − f| ≤ ftol·max(|f_prev|, |f|, 1) or k = max_iter
    x = optimizer.step(x, g)

The lecture's momentum ``v = αv − γg ; θ = θ + v`` is torch's ``b = αb + g ; θ = θ − γb`` with
``v = −γb`` (same iterates for a constant γ). A NaN/Inf value or gradient stops the run with
:attr:`Status.NONFINITE` and returns the last finite iterate. These methods do not decrease f
monotonically; the result is the last iterate, as a training loop would leave it.
"""

from __future__ import annotations

import math

import torch

from ._loop import LoopResult, inf_norm
from .result import Status

__all__ = ["OPTIMIZER_FOR", "build_optimizer", "first_order_loop"]

# method -> (optkit.optim class name, fixed constructor arguments)
OPTIMIZER_FOR = {
    "gd": ("SGD", {"momentum": 0.0, "nesterov": False}),
    "momentum": ("SGD", {"nesterov": False}),
    "nesterov": ("SGD", {"nesterov": True, "dampening": 0.0}),
    "rmsprop": ("RMSprop", {}),
    "adam": ("Adam", {}),
    "adamw": ("AdamW", {}),
}


def build_optimizer(method: str, param: torch.Tensor, hyper: dict) -> torch.optim.Optimizer:
    """Instantiate the ``optkit.optim`` optimizer for ``method`` on the single tensor ``param``."""
    from .. import optim  # the training optimizers; imported here to keep the packages apart

    cls_name, fixed = OPTIMIZER_FOR[method]
    return getattr(optim, cls_name)([param], **{**hyper, **fixed})


def first_order_loop(
    objective,
    x0: torch.Tensor,
    method: str,
    hyper: dict,
    *,
    max_iter: int,
    gtol: float,
    ftol: float,
    record: bool = False,
    report=None,
) -> LoopResult:
    """Run the optimizer of ``method`` with hyperparameters ``hyper`` on the flat ``x0``."""
    param = x0.detach().clone()
    optimizer = build_optimizer(method, param, hyper)
    x = param.detach().clone()
    f, g = objective.value_and_grad(x)
    res = LoopResult(x, f, g, 0, Status.SUCCESS)
    f_prev = f
    if record:
        res.xs.append(x)
        res.fs.append(f)
    for k in range(max_iter + 1):
        if not (math.isfinite(f) and bool(torch.isfinite(g).all())):
            res.status, res.detail = Status.NONFINITE, "" if k == 0 else f"at iteration {k}"
            return res  # res still holds the last finite iterate
        res.x, res.f, res.g, res.nit = x, f, g, k
        if record and k > 0:
            res.xs.append(x)
            res.fs.append(f)
        gnorm = inf_norm(g)
        if gnorm <= gtol:
            res.detail = f"‖g‖∞ = {gnorm:.3g} <= gtol = {gtol:.3g}"
            return res
        if k > 0:
            if ftol > 0 and abs(f_prev - f) <= ftol * max(abs(f_prev), abs(f), 1.0):
                res.detail = f"relative change of f <= ftol = {ftol:.3g}"
                return res
            if report is not None and report(x, f, g, k):
                res.status = Status.CALLBACK
                return res
        if k == max_iter:
            break
        param.grad = g.view_as(param).clone()  # the optimizer owns its grad
        optimizer.step()
        f_prev = f
        x = param.detach().clone()
        f, g = objective.value_and_grad(x)
    res.status = Status.MAX_ITER
    return res
