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
    TORCH_FLAGS_DOC,
    OptkitOptimizer,
    StepPlan,
    check_torch_flags,
    group_by_device_dtype,
    increment_steps,
    penalized_grads,
    plan_step,
    real_views,
    scalar,
    split_by_flag,
)
from ._cpu import cpu_blocks

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

    A complex parameter is updated as its real view (pairs of reals), as torch does: g² is
    the elementwise square of the real and imaginary parts, not the complex square.
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
    lr: float | Tensor,
    beta1: float | Tensor,
    beta2: float | Tensor,
    eps: float,
    weight_decay: float,
    amsgrad: bool,
    decoupled: bool,
    maximize: bool = False,
    plan: StepPlan | None = None,
) -> None:
    """The Adam/AdamW update, in place, over lists of tensors (see :class:`Adam` for the math).

    Args:
        tensors: parallel lists (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs — empty
            unless ``amsgrad`` —, steps). Steps are float32 scalar tensors, incremented here.
        lr, beta1, beta2: numbers or one-element tensors.
        decoupled: True for AdamW's decay θ ← θ(1 − γw), False for Adam's L2 term g + wθ.
        plan: which parameters run torch's fused kernel and in which form the scalars are
            (:func:`optkit.optim._base.plan_step`); None: the foreach rule, eager form.
    """
    if not tensors.params:
        return
    if plan is None:
        plan = StepPlan([False] * len(tensors.params), False, tensors.params[0].is_cpu, False)
    hyper = dict(
        lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
        decoupled=decoupled, maximize=maximize,
    )  # fmt: skip
    for use_fused, part in split_by_flag(tensors, plan.fused):
        for bucket in group_by_device_dtype(part):
            if use_fused:
                _adam_fused(*bucket, **hyper)
            elif plan.per_tensor:
                for i in range(len(bucket[0])):
                    _adam_foreach(*([lst[i]] if len(lst) else [] for lst in bucket), plan=plan,
                                  **hyper)  # fmt: skip
            else:
                _adam_foreach(*bucket, plan=plan, **hyper)


def _adam_fused(
    params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps,
    *, lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled, maximize,
) -> None:  # fmt: skip
    increment_steps(steps)
    if isinstance(lr, Tensor) and lr.device.type != "cpu":
        lr = lr.to(params[0].device)
    kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
    kernel(
        params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps,
        amsgrad=amsgrad, lr=lr, beta1=float(beta1), beta2=float(beta2),
        weight_decay=weight_decay, eps=eps, maximize=maximize,
    )  # fmt: skip


def _adam_foreach(
    params, grads, exp_avgs, exp_avg_sqs, max_sqs, steps,
    *, plan, lr, beta1, beta2, eps, weight_decay, amsgrad, decoupled, maximize,
) -> None:  # fmt: skip
    """The foreach rule; eager steps read the step counts once, compiled/capturable steps
    keep every scalar a tensor (torch's capturable form: γ and the bias corrections go into
    the denominator)."""
    real_views(params, grads, exp_avgs, exp_avg_sqs, max_sqs)
    increment_steps(steps)
    device = params[0].device
    lr, beta1, beta2 = (scalar(x, plan, device) for x in (lr, beta1, beta2))
    if plan.tensor_scalars:
        # 1 − β₂ᵗ cancels: in float32 it keeps ~4 digits at β₂ = 0.999 (torch's fused
        # kernels use double); the scalars are 0-dim, float64 costs nothing (MPS has none)
        wide = torch.float32 if device.type == "mps" else torch.float64
        steps = [s.to(wide) for s in steps]
        bias1 = torch._foreach_pow(beta1, steps)  # β₁ᵗ
        torch._foreach_sub_(bias1, 1)
        torch._foreach_div_(bias1, lr)
        neg_step_sizes = torch._foreach_reciprocal(bias1)  # −γ / (1 − β₁ᵗ)
        bias2 = torch._foreach_pow(beta2, steps)
        torch._foreach_neg_(bias2)
        torch._foreach_add_(bias2, 1)
        bias2_sqrt = torch._foreach_sqrt(bias2)
        scalars = [neg_step_sizes, bias2_sqrt]
    else:
        t = [s.item() for s in steps]
        scalars = [[-lr / (1 - beta1**k) for k in t], [(1 - beta2**k) ** 0.5 for k in t]]
    lists = [params, grads, exp_avgs, exp_avg_sqs, max_sqs, *scalars]
    for block in cpu_blocks(lists) if plan.blocks else (lists,):
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
    if isinstance(beta2, Tensor):  # _foreach_addcmul_ takes only a number as the factor
        torch._foreach_addcmul_(exp_avg_sqs, torch._foreach_mul(grads, 1 - beta2), grads)
    else:
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
    if amsgrad:
        torch._foreach_maximum_(max_sqs, exp_avg_sqs)
        second = max_sqs
    else:
        second = exp_avg_sqs
    denom = torch._foreach_sqrt(second)
    if isinstance(step_sizes[0], Tensor):
        # θ += m / ((√s/√(1−β₂ᵗ) + ε) / (−γ/(1−β₁ᵗ))): every factor a tensor, no sync
        torch._foreach_div_(denom, torch._foreach_mul(bias2_sqrt, step_sizes))
        eps_terms = torch._foreach_div(step_sizes, eps)
        torch._foreach_reciprocal_(eps_terms)
        torch._foreach_add_(denom, eps_terms)
        torch._foreach_addcdiv_(params, exp_avgs, denom)
        return
    torch._foreach_div_(denom, bias2_sqrt)
    torch._foreach_add_(denom, eps)
    torch._foreach_addcdiv_(params, exp_avgs, denom, step_sizes)


class Adam(OptkitOptimizer):
    __doc__ = (
        r"""Adam: momentum (first moment) and RMSProp (second moment) with bias correction.

    The lecture's Adam slide (momentum and RMSProp combined): an EWMA of the gradient and one
    of its square, each divided by 1 − βᵗ because an EWMA started at zero has weights summing
    to 1 − βᵗ, not 1.
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
        decoupled_weight_decay: True makes this AdamW (as torch.optim.Adam) (default False).
"""
        + TORCH_FLAGS_DOC
        + r"""
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
        A tensor ``lr`` (and tensor ``betas``, both or neither) is accepted on every path;
        eager foreach steps read it once per group and step, fused kernels and compiled or
        capturable steps use it as a tensor.
    """
    )

    _decoupled = False

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool | None = None,
    ) -> None:
        if decoupled_weight_decay is None:
            decoupled_weight_decay = self._decoupled
        defaults = dict(
            lr=lr, betas=_squeezed(betas), eps=eps, weight_decay=weight_decay,
            amsgrad=bool(amsgrad), foreach=foreach, maximize=bool(maximize),
            capturable=capturable, differentiable=differentiable, fused=fused,
            decoupled_weight_decay=bool(decoupled_weight_decay),
        )  # fmt: skip
        super().__init__(params, defaults)

    _LATER_KEYS: ClassVar[dict[str, Any]] = {
        "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
        "differentiable": False, "fused": None, "decoupled_weight_decay": False,
    }  # fmt: skip

    def _check_group(self, group: dict[str, Any]) -> None:
        check_adam_hyperparameters(group)
        check_torch_flags(group, type(self).__name__, "adam")

    def _step_group(self, group: dict[str, Any]) -> None:
        tensors, plan = gather_adam_state(self, group)
        beta1, beta2 = group["betas"]
        adam_update(
            tensors, lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
            weight_decay=group["weight_decay"], amsgrad=group["amsgrad"],
            decoupled=group["decoupled_weight_decay"], maximize=group["maximize"], plan=plan,
        )  # fmt: skip


def gather_adam_state(
    optimizer: OptkitOptimizer, group: dict[str, Any]
) -> tuple[AdamTensors, StepPlan]:
    """One group's tensors with a gradient and their Adam state (created lazily, torch's keys).

    Shared by :class:`Adam`/:class:`AdamW` and by the AdamW groups of :class:`optkit.Muon`, so
    both keep the same state layout. ``group`` needs ``amsgrad`` (``fused``, ``foreach``,
    ``capturable`` are optional). Also returns the step's plan (:func:`plan_step`), made
    once per step: the step tensors are placed for it.
    """
    params, grads = optimizer._params_with_grad(group)
    out = AdamTensors(params, grads, [], [], [], [])
    for p in params:
        state = optimizer.state[p]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if group["amsgrad"]:
            if "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            out.max_exp_avg_sqs.append(state["max_exp_avg_sq"])
        out.exp_avgs.append(state["exp_avg"])
        out.exp_avg_sqs.append(state["exp_avg_sq"])
    per_param = [
        (p, g, m, v, *([out.max_exp_avg_sqs[i]] if group["amsgrad"] else []))
        for i, (p, g, m, v) in enumerate(zip(params, grads, out.exp_avgs, out.exp_avg_sqs))
    ]
    plan = plan_step(group, per_param, "adam")
    for p, fused in zip(params, plan.fused):
        on_device = fused or plan.tensor_scalars
        out.steps.append(optimizer._step_tensor(optimizer.state[p], p, on_device))
    return out, plan


class AdamW(Adam):
    __doc__ = (
        r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    Adding w·θ to the gradient (Adam's L2) lets the penalty pass through the moments v, s, so
    large-gradient weights are barely decayed. AdamW shrinks θ directly, outside the adaptive
    step. Same names, defaults and update as ``torch.optim.AdamW`` (drop-in; equal in float64).
    Departure from the lecture: its slide subtracts w·θ_{t-1}; torch's rule and this one scale
    the decay by the learning rate, θ ← θ − γ·w·θ, applied before the Adam step. (Loshchilov &
    Hutter's Algorithm 2 multiplies w·θ by the schedule multiplier η_t, not by the step size;
    with γ = η_t·α the two differ by the constant α, which ``weight_decay`` absorbs.)

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
        amsgrad, maximize, foreach, capturable, differentiable, fused: as :class:`Adam`.

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
        lr: float | Tensor = 1e-3,
        betas: tuple[float | Tensor, float | Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        super().__init__(
            params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach, maximize=maximize,
            capturable=capturable, differentiable=differentiable, fused=fused,
        )  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        # AdamW is decoupled whatever the loaded state dict says (an Adam or torch.optim.Adam
        # checkpoint stores decoupled_weight_decay=False), as torch.optim.AdamW
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


def _squeezed(betas: Any) -> Any:
    """One-element tensor betas as 0-dim tensors (torch's form); anything else unchanged."""
    if isinstance(betas, (tuple, list)):
        return tuple(b.squeeze() if isinstance(b, Tensor) and b.ndim else b for b in betas)
    return betas


def check_adam_hyperparameters(group: dict[str, Any], eps_key: str = "eps") -> None:
    """Validate lr, betas, eps and weight_decay of a param group (or defaults).

    ``betas`` are two numbers or two one-element tensors, not one of each (as torch.optim).
    """
    check_number("lr", group["lr"], 0.0)
    betas = check_pair("betas", group["betas"], 0.0, 1.0)
    if isinstance(group["betas"][0], Tensor) != isinstance(group["betas"][1], Tensor):
        raise ValueError(f"betas must be both numbers or both tensors, got {betas!r} as "
                         f"({type(group['betas'][0]).__name__}, "
                         f"{type(group['betas'][1]).__name__})")  # fmt: skip
    for i, b in enumerate(group["betas"]):
        if isinstance(b, Tensor) and b.numel() != 1:
            raise ValueError(f"betas[{i}] as a tensor must have one element, got shape "
                             f"{tuple(b.shape)}")  # fmt: skip
    check_number(eps_key, group[eps_key], 0.0)
    check_number("weight_decay", group["weight_decay"], 0.0)
