"""Adam and AdamW: one update rule, decoupled weight decay a flag.

Symbols (the lecture's notation): θ parameters, g gradient, v first moment (``exp_avg``),
s second moment (``exp_avg_sq``), t step count, γ = ``lr``, (β₁, β₂) = ``betas``,
ε = ``eps``, w = ``weight_decay``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .._checks import check_number, check_pair
from ._base import (
    OptkitOptimizer,
    cpu_blocks,
    fused_supported,
    group_by_device_dtype,
    increment_steps,
    penalized_grads,
)

__all__ = ["Adam", "AdamW", "adam_update"]

_ADAM_MATH = r"""
    .. code-block:: text

        g_t  = ∇J(θ_{t-1})                      (−∇J when maximize)
        g_t  = g_t + w·θ_{t-1}                   (Adam: L2 penalty in the gradient)
        θ    = θ_{t-1}·(1 − γ·w)                 (AdamW: decoupled decay, instead of the line above)
        v_t  = β₁·v_{t-1} + (1 − β₁)·g_t
        s_t  = β₂·s_{t-1} + (1 − β₂)·g_t²
        ŝ_t  = max(ŝ_{t-1}, s_t)                 (amsgrad only; s_t below becomes ŝ_t)
        v'_t = v_t / (1 − β₁ᵗ)
        s'_t = s_t / (1 − β₂ᵗ)
        θ_t  = θ − γ · v'_t / (√s'_t + ε)
"""


class AdamTensors(NamedTuple):
    """One param group's tensors that have a gradient, with their state, as parallel lists."""

    params: list[Tensor]
    grads: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    max_exp_avg_sqs: list[Tensor]
    steps: list[Tensor]


def adam_update(
    tensors: AdamTensors,
    *,
    lr: float,
    beta1: float,
    beta2: float,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled: bool,
    maximize: bool = False,
    fused: bool | None = None,
) -> None:
    """The Adam/AdamW update, in place, over lists of tensors (see :class:`Adam` for the math).

    Args:
        tensors: parallel lists (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs — empty
            unless ``amsgrad`` —, steps). Steps are float32 scalar tensors, incremented here.
        decoupled: True for AdamW's decay θ ← θ(1 − γw), False for Adam's L2 term g + wθ.
        fused: None picks torch's fused kernel when every tensor supports it (it computes the
            same rule in one pass over memory), True requires it, False uses the foreach path.
    """
    if not tensors.params:
        return
    use_fused = fused_supported(tensors.params) if fused is None else fused
    for bucket in group_by_device_dtype(tensors):
        params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps = bucket
        increment_steps(steps)
        if use_fused:
            kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
            kernel(
                params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps,
                amsgrad=amsgrad, lr=lr, beta1=beta1, beta2=beta2,
                weight_decay=weight_decay, eps=eps, maximize=maximize,
            )  # fmt: skip
            continue
        t = [s.item() for s in steps]
        step_sizes = [-lr / (1 - beta1**k) for k in t]
        bias2_sqrt = [(1 - beta2**k) ** 0.5 for k in t]
        lists = [params, grads, exp_avgs, exp_avg_sqs, max_sqs, step_sizes, bias2_sqrt]
        for block in cpu_blocks(lists):
            _adam_block(
                *block, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay,
                amsgrad=amsgrad, decoupled=decoupled, maximize=maximize,
            )  # fmt: skip


def _adam_block(
    params, grads, exp_avgs, exp_avg_sqs, max_sqs, step_sizes, bias2_sqrt,
    *, lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled, maximize,
) -> None:  # fmt: skip
    if decoupled and weight_decay != 0:
        torch._foreach_mul_(params, 1 - lr * weight_decay)
    grads = penalized_grads(params, grads, 0.0 if decoupled else weight_decay, maximize)
    torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
    torch._foreach_mul_(exp_avg_sqs, beta2)
    torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(max_sqs, exp_avg_sqs)
        second = max_sqs
    else:
        second = exp_avg_sqs
    denom = torch._foreach_sqrt(second)
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


class Adam(OptkitOptimizer):
    __doc__ = (
        r"""Adam: momentum (first moment) and RMSProp (second moment) with bias correction.

    The lecture's "¡Mezclemos!" slide: an EWMA of the gradient and one of its square, each
    divided by 1 − βᵗ because an EWMA started at zero has weights summing to 1 − βᵗ, not 1.
    Same names, defaults and update as ``torch.optim.Adam`` (drop-in; equal in float64).
    Departure from the lecture: its slide gives β₁ = 0.99 as the default; the published
    algorithm (Kingma & Ba, 2015) and torch use β₁ = 0.9, as here.

    Symbols: γ = ``lr``, (β₁, β₂) = ``betas``, ε = ``eps``, w = ``weight_decay``.
"""
        + _ADAM_MATH
        + r"""
    Args:
        params: parameters or param-group dicts.
        lr: γ ≥ 0 (default 1e-3).
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps: ε ≥ 0, added outside the square root (default 1e-8).
        weight_decay: w ≥ 0; for Adam an L2 term added to the gradient (default 0).
        amsgrad: use the running maximum of s_t (Reddi et al., 2018) (default False).
        maximize: ascend instead of descend (default False).
        fused: None (default) runs torch's fused kernel when every parameter supports it —
            the same rule in one pass — else the foreach path; False forces foreach.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> opt = Adam([w], lr=0.1)
        >>> for _ in range(100):
        ...     opt.zero_grad()
        ...     (w ** 2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs().max() < 0.05)
        True

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.

    Notes:
        ``capturable`` and ``differentiable`` of torch.optim are not offered.
    """
    )

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=bool(amsgrad),
            maximize=bool(maximize), fused=fused,
            decoupled_weight_decay=self._decoupled,
        )  # fmt: skip
        super().__init__(params, defaults)

    _LATER_KEYS: ClassVar[dict[str, Any]] = {"amsgrad": False, "maximize": False, "fused": None,
                   "decoupled_weight_decay": False}  # fmt: skip

    def _check_group(self, group: dict[str, Any]) -> None:
        check_adam_hyperparameters(group)

    def _step_group(self, group: dict[str, Any]) -> None:
        tensors, use_fused = gather_adam_state(self, group)
        beta1, beta2 = group["betas"]
        adam_update(
            tensors, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
            decoupled=group["decoupled_weight_decay"], maximize=group["maximize"],
            fused=use_fused,
        )  # fmt: skip


def gather_adam_state(
    optimizer: OptkitOptimizer, group: dict[str, Any]
) -> tuple[AdamTensors, bool]:
    """One group's tensors with a gradient and their Adam state (created lazily, torch's keys).

    Shared by :class:`Adam`/:class:`AdamW` and by the AdamW groups of :class:`optkit.Muon`, so
    both keep the same state layout. ``group`` needs ``fused`` and ``amsgrad``. Also returns
    whether the fused kernel runs (``group["fused"]``, or decided from the tensors when None),
    decided once per step: the step tensors are placed for it.
    """
    params, grads = optimizer._params_with_grad(group)
    fused = group["fused"]
    on_device = fused_supported(params) if fused is None else fused
    out = AdamTensors(params, grads, [], [], [], [])
    for p in params:
        state = optimizer.state[p]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(p)
            out.max_exp_avg_sqs.append(state["max_exp_avg_sq"])
        out.exp_avgs.append(state["exp_avg"])
        out.exp_avg_sqs.append(state["exp_avg_sq"])
        out.steps.append(optimizer._step_tensor(state, p, on_device))
    return out, on_device


class AdamW(Adam):
    __doc__ = (
        r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Adding w·θ to the gradient (Adam's L2) lets the penalty pass through the moments v, s, so
    large-gradient weights are barely decayed. AdamW shrinks θ directly, outside the adaptive
    step. Same names, defaults and update as ``torch.optim.AdamW`` (drop-in; equal in float64).
    Departure from the lecture: its slide subtracts w·θ_{t-1}; the published rule, torch's and
    this one scale the decay by the learning rate, θ ← θ − γ·w·θ, applied before the Adam step.

    Symbols: γ = ``lr``, (β₁, β₂) = ``betas``, ε = ``eps``, w = ``weight_decay``.
"""
        + _ADAM_MATH
        + r"""
    Args:
        params: parameters or param-group dicts.
        lr: γ ≥ 0 (default 1e-3).
        betas: (β₁, β₂), each in [0, 1) (default (0.9, 0.999)).
        eps: ε ≥ 0 (default 1e-8).
        weight_decay: w ≥ 0, decoupled (default 1e-2).
        amsgrad, maximize, fused: as :class:`Adam`.

    Example:
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = torch.zeros(3)
        >>> _ = opt.step()  # zero gradient: only the decay acts, θ·(1 − 0.1·0.5)
        >>> w.detach()
        tensor([0.9500, 0.9500, 0.9500])

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """
    )

    _decoupled = True
    _LATER_KEYS: ClassVar[dict[str, Any]] = {**Adam._LATER_KEYS, "decoupled_weight_decay": True}

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize, fused=fused
        )


def check_adam_hyperparameters(group: dict[str, Any]) -> None:
    """Validate lr, betas, eps and weight_decay of a param group (or defaults)."""
    check_number("lr", group["lr"], 0.0)
    check_pair("betas", group["betas"], 0.0, 1.0)
    check_number("eps", group["eps"], 0.0)
    check_number("weight_decay", group["weight_decay"], 0.0)
    if group.get("fused") not in (None, True, False):
        raise ValueError(f"fused must be None, True or False, got {group['fused']!r}")
