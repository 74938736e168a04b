"""RMSprop: per-feature rescaling of the gradient by an EWMA of its square.

Symbols (the lecture's notation): θ parameters, g gradient, s = ``square_avg``,
m = ``grad_avg`` (centered), b = ``momentum_buffer``, γ = ``lr``, λ = ``alpha``, ε = ``eps``,
w = ``weight_decay``, μ = ``momentum``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .._checks import check_number
from ._base import (
    TORCH_FLAGS_DOC,
    OptkitOptimizer,
    StepPlan,
    add_scaled_,
    check_torch_flags,
    group_by_device_dtype,
    increment_steps,
    penalized_grads,
    plan_step,
    real_views,
    scalar,
)
from ._cpu import cpu_blocks

__all__ = ["RMSprop", "rmsprop_update"]


class RMSpropTensors(NamedTuple):
    params: list[Tensor]
    grads: list[Tensor]
    square_avgs: list[Tensor]
    grad_avgs: list[Tensor]  # empty unless centered
    momentum_buffers: list[Tensor]  # empty unless momentum > 0
    steps: list[Tensor]


def rmsprop_update(
    tensors: RMSpropTensors,
    *,
    lr: float | Tensor,
    alpha: float,
    eps: float,
    weight_decay: float,
    momentum: float,
    centered: bool,
    maximize: bool = False,
    plan: StepPlan | None = None,
) -> None:
    """The RMSprop update, in place, over lists of tensors (see :class:`RMSprop` for the math).

    torch ships no fused RMSprop kernel; this is the foreach path, with the same operations
    as torch's foreach implementation, run block by block on CPU (see
    :func:`optkit.optim._cpu.cpu_blocks`), so its one temporary (the denominator) is one
    block, not one model, in size. Complex tensors are updated as their real views.
    """
    if not tensors.params:
        return
    if plan is None:
        plan = StepPlan([False] * len(tensors.params), False, tensors.params[0].is_cpu, False)
    for bucket in group_by_device_dtype(tensors):
        real_views(*bucket[:-1])
        increment_steps(bucket[-1])
        lists = bucket[:-1]
        chunks = (
            [[[lst[i]] if len(lst) else [] for lst in lists] for i in range(len(lists[0]))]
            if plan.per_tensor
            else [lists]
        )
        step_lr = scalar(lr, plan, lists[0][0].device)
        for chunk in chunks:
            for block in cpu_blocks(chunk) if plan.blocks else (chunk,):
                _rmsprop_block(
                    *block, lr=step_lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                    momentum=momentum, centered=centered, maximize=maximize,
                )  # fmt: skip


def _rmsprop_block(
    params, grads, square_avgs, grad_avgs, buffers,
    *, lr, alpha, eps, weight_decay, momentum, centered, maximize,
) -> None:  # fmt: skip
    grads = penalized_grads(params, grads, weight_decay, maximize)
    torch._foreach_mul_(square_avgs, alpha)
    torch._foreach_addcmul_(square_avgs, grads, grads, value=1 - alpha)
    if centered:
        torch._foreach_lerp_(grad_avgs, grads, 1 - alpha)
        denom = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, value=-1)
        torch._foreach_sqrt_(denom)
    else:
        denom = torch._foreach_sqrt(square_avgs)
    torch._foreach_add_(denom, eps)
    if momentum > 0:
        torch._foreach_mul_(buffers, momentum)
        torch._foreach_addcdiv_(buffers, grads, denom)
        add_scaled_(params, buffers, -lr)
    elif isinstance(lr, Tensor):  # θ += g / (r / −γ): no number needed from the tensor
        torch._foreach_div_(denom, -lr)
        torch._foreach_addcdiv_(params, grads, denom)
    else:
        torch._foreach_addcdiv_(params, grads, denom, value=-lr)


class RMSprop(OptkitOptimizer):
    __doc__ = (
        r"""RMSprop: divide each coordinate's gradient by the root of an EWMA of its square.

    The lecture's RMSProp: a large gradient in one feature no longer swamps the others, since
    every coordinate is rescaled by its own recent magnitude. Optional centering (divide by an
    estimate of the standard deviation instead) and momentum on the rescaled step. Same names,
    defaults and update as ``torch.optim.RMSprop`` (drop-in; equal in float64).
    Departure from the lecture: its slide puts ε inside the root, √(s_t + ε) with ε ≈ 1e-6;
    here, as in torch, ε = 1e-8 is added outside, √s_t + ε.

    Symbols: γ = ``lr``, λ = ``alpha``, ε = ``eps``, w = ``weight_decay``, μ = ``momentum``.

    .. code-block:: text

        g_t = ∇J(θ_{t-1}) + w·θ_{t-1}            (−∇J when maximize)
        s_t = λ·s_{t-1} + (1 − λ)·g_t²
        m_t = λ·m_{t-1} + (1 − λ)·g_t              (centered only)
        r_t = √(s_t − m_t²) + ε                    (centered)   or   r_t = √s_t + ε
        b_t = μ·b_{t-1} + g_t / r_t                (μ > 0)
        θ_t = θ_{t-1} − γ·b_t                      (μ > 0)   or   θ_{t-1} − γ·g_t / r_t

    Args:
        params: parameters or param-group dicts.
        lr: γ ≥ 0 (default 1e-2).
        alpha: λ in [0, 1] (default 0.99).
        eps: ε ≥ 0 (default 1e-8).
        weight_decay: w ≥ 0, an L2 term in the gradient (default 0).
        momentum: μ ≥ 0 (default 0).
        centered: normalize by the estimated variance instead of the raw second moment.
"""
        + TORCH_FLAGS_DOC.split("        fused:")[0]
        + r"""        maximize: ascend instead of descend (default False).

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([3.0, -1e-3]))
        >>> opt = RMSprop([w], lr=0.01)
        >>> w.grad = torch.tensor([100.0, -1e-3])
        >>> _ = opt.step()  # both coordinates move by about lr/√(1−λ) = 0.1
        >>> (w.detach() - torch.tensor([3.0, -1e-3])).abs().round(decimals=3)
        tensor([0.1000, 0.1000])

    References:
        Hinton, Srivastava & Swersky, "Neural Networks for Machine Learning", lecture 6e, 2012;
        Graves, "Generating sequences with recurrent neural networks", 2013 (centered).

    Notes:
        A complex parameter is updated as its real view (pairs of reals), as torch does.
        A tensor ``lr`` is accepted on every path. torch has no fused RMSprop (no ``fused``).
    """
    )

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | Tensor = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
            centered=bool(centered), capturable=capturable, foreach=foreach,
            maximize=bool(maximize), differentiable=differentiable,
        )  # fmt: skip
        super().__init__(params, defaults)

    _LATER_KEYS: ClassVar[dict[str, Any]] = {
        "momentum": 0, "centered": False, "capturable": False, "foreach": None,
        "maximize": False, "differentiable": False,
    }  # fmt: skip

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_rmsprop(group)
        check_torch_flags(group, "RMSprop", None)

    def _step_group(self, group: dict[str, Any]) -> None:
        params, grads = self._params_with_grad(group)
        out = RMSpropTensors(params, grads, [], [], [], [])
        for p in params:
            state = self.state[p]
            if "square_avg" not in state:
                state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            out.square_avgs.append(state["square_avg"])
            if group["momentum"] > 0:
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
                out.momentum_buffers.append(state["momentum_buffer"])
            if group["centered"]:
                if "grad_avg" not in state:
                    state["grad_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                out.grad_avgs.append(state["grad_avg"])
        plan = plan_step(group, [(p,) for p in params], None)
        out.steps.extend(self._step_tensor(self.state[p], p, plan.tensor_scalars) for p in params)
        rmsprop_update(
            out, lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
            weight_decay=group["weight_decay"], momentum=group["momentum"],
            centered=group["centered"], maximize=group["maximize"], plan=plan,
        )  # fmt: skip


def _check_rmsprop(group: dict[str, Any]) -> None:
    check_number("lr", group["lr"], 0.0)
    check_number("alpha", group["alpha"], 0.0, 1.0)
    check_number("eps", group["eps"], 0.0)
    check_number("weight_decay", group["weight_decay"], 0.0)
    check_number("momentum", group["momentum"], 0.0)
