"""SGD with momentum (heavy ball or Nesterov), dampening and L2 weight decay.

Symbols (the lecture's notation): θ parameters, g gradient, b momentum buffer
(``momentum_buffer``), γ = ``lr``, α = ``momentum``, τ = ``dampening``, w = ``weight_decay``.
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
    penalized_grads,
    plan_step,
    scalar,
    split_by_flag,
)
from ._cpu import cpu_blocks

__all__ = ["SGD", "sgd_update"]


class SGDTensors(NamedTuple):
    params: list[Tensor]
    grads: list[Tensor]
    momentum_buffers: list[Tensor | None]  # None until a parameter's first step


def sgd_update(
    tensors: SGDTensors,
    *,
    lr: float | Tensor,
    momentum: float,
    dampening: float,
    weight_decay: float,
    nesterov: bool,
    maximize: bool = False,
    plan: StepPlan | None = None,
) -> list[Tensor | None]:
    """The SGD update, in place, over lists of tensors (see :class:`SGD` for the math).

    Returns the momentum buffers (new ones created on a parameter's first step; the caller
    stores them). ``plan``: which parameters run torch's fused kernel and in which form the
    scalars are (:func:`optkit.optim._base.plan_step`); None: the foreach rule, eager form.
    """
    params, grads, buffers = tensors
    if not params:
        return list(buffers)
    if plan is None:
        plan = StepPlan([False] * len(params), False, params[0].is_cpu, False)
    buffers = list(buffers)
    # A parameter's first momentum step copies g into b; the rest blend. Keep the two apart so
    # each call sees one kind (torch's fused SGD assumes all-first or none-first).
    if momentum == 0:
        parts = [(list(range(len(params))), False)]
    else:
        first = [i for i, b in enumerate(buffers) if b is None]
        later = [i for i, b in enumerate(buffers) if b is not None]
        parts = [(idx, is_first) for idx, is_first in ((first, True), (later, False)) if idx]
    for idx, is_first in parts:
        if is_first:
            for i in idx:
                buffers[i] = torch.empty_like(grads[i], memory_format=torch.preserve_format)
        sub = [
            [params[i] for i in idx],
            [grads[i] for i in idx],
            [buffers[i] for i in idx] if momentum != 0 else [],
        ]
        args = dict(
            weight_decay=weight_decay, momentum=momentum, lr=lr, dampening=dampening,
            nesterov=nesterov, maximize=maximize, is_first_step=is_first,
        )  # fmt: skip
        for use_fused, part in split_by_flag(sub, [plan.fused[i] for i in idx]):
            for p, g, b in group_by_device_dtype(part):
                if use_fused:
                    fused_lr = lr
                    if isinstance(lr, Tensor) and lr.device.type != "cpu":
                        fused_lr = lr.to(p[0].device)
                    torch._fused_sgd_(p, g, b, **{**args, "lr": fused_lr})
                    continue
                args["lr"] = scalar(lr, plan, p[0].device)
                chunks = (
                    [([p[i]], [g[i]], [b[i]] if b else []) for i in range(len(p))]
                    if plan.per_tensor
                    else [(p, g, b)]
                )
                for chunk in chunks:
                    for block in cpu_blocks(chunk) if plan.blocks else (chunk,):
                        _sgd_block(*block, **args)
    return buffers


def _sgd_block(
    params, grads, buffers, *, weight_decay, momentum, lr, dampening, nesterov, maximize,
    is_first_step,
) -> None:  # fmt: skip
    grads = penalized_grads(params, grads, weight_decay, maximize)
    if momentum != 0:
        if is_first_step:
            torch._foreach_copy_(buffers, grads)
        else:
            torch._foreach_mul_(buffers, momentum)
            torch._foreach_add_(buffers, grads, alpha=1 - dampening)
        if nesterov:
            add_scaled_(params, grads, -lr)
            add_scaled_(params, buffers, -lr * momentum)
            return
        grads = buffers
    add_scaled_(params, grads, -lr)


class SGD(OptkitOptimizer):
    __doc__ = (
        r"""Stochastic gradient descent, with the lecture's momentum as an option.

    Plain SGD steps against the gradient. With ``momentum`` α > 0 it keeps a buffer b — the
    lecture's velocity v_t = α·v_{t−1} − γ·g written for the gradient side: θ_{t+1} =
    θ_t − γ·Σ α^i g_{t−i}, an EWMA-like memory that accelerates along consistent directions and
    damps oscillation. Same names, defaults and update as ``torch.optim.SGD`` (drop-in; equal
    in float64). The lecture's form and this one give the same iterates when τ = 0 (v = −γ·b).

    Symbols: γ = ``lr``, α = ``momentum``, τ = ``dampening``, w = ``weight_decay``.

    .. code-block:: text

        g_t = ∇J(θ_{t-1}) + w·θ_{t-1}           (−∇J when maximize)
        b_t = g_t                                 (first step)
        b_t = α·b_{t-1} + (1 − τ)·g_t             (later steps)
        d_t = g_t + α·b_t                         (nesterov)   or   d_t = b_t   (heavy ball)
        θ_t = θ_{t-1} − γ·d_t                     (d_t = g_t when α = 0)

    Args:
        params: parameters or param-group dicts.
        lr: γ ≥ 0 (default 1e-3).
        momentum: α ≥ 0 (default 0).
        dampening: τ ≥ 0 (default 0).
        weight_decay: w ≥ 0, an L2 term in the gradient (default 0).
        nesterov: Nesterov momentum; needs α > 0 and τ = 0 (default False).
        maximize: ascend instead of descend (default False).
"""
        + TORCH_FLAGS_DOC
        + r"""            On CPU the fused kernel runs for float32/float64 only: torch's CPU fused
            SGD miscomputes float16 and bfloat16.

    Example:
        >>> w = torch.nn.Parameter(torch.tensor([4.0]))
        >>> opt = SGD([w], lr=0.1, momentum=0.9)
        >>> for _ in range(200):
        ...     opt.zero_grad()
        ...     (w ** 2).sum().backward()
        ...     _ = opt.step()
        >>> bool(w.abs() < 1e-3)
        True

    References:
        Polyak, "Some methods of speeding up the convergence of iteration methods", 1964;
        Sutskever et al., "On the importance of initialization and momentum", ICML 2013.

    Notes:
        Sparse gradients (``nn.Embedding(sparse=True)``) are accepted as torch.optim.SGD
        accepts them; each is densified (one temporary the size of the parameter) and the
        momentum buffer is dense, with the same values as torch's sparse arithmetic.
        A tensor ``lr`` is accepted on every path.
    """
    )

    _sparse_grads = True

    def __init__(
        self,
        params: Iterable[Any],
        lr: float | Tensor = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
            nesterov=bool(nesterov), maximize=bool(maximize), foreach=foreach,
            differentiable=differentiable, fused=fused,
        )  # fmt: skip
        super().__init__(params, defaults)

    _LATER_KEYS: ClassVar[dict[str, Any]] = {
        "nesterov": False, "maximize": False, "foreach": None, "differentiable": False,
        "fused": None,
    }  # fmt: skip

    def _check_group(self, group: dict[str, Any]) -> None:
        _check_sgd(group)
        check_torch_flags(group, "SGD", "sgd")

    def _step_group(self, group: dict[str, Any]) -> None:
        params, grads = self._params_with_grad(group)
        with_momentum = group["momentum"] != 0
        buffers = [self.state[p].get("momentum_buffer") for p in params] if with_momentum else []
        per_param = [
            (p, g) if b is None else (p, g, b)
            for p, g, b in zip(params, grads, buffers or [None] * len(params))
        ]
        buffers = sgd_update(
            SGDTensors(params, grads, buffers),
            lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
            weight_decay=group["weight_decay"], nesterov=group["nesterov"],
            maximize=group["maximize"], plan=plan_step(group, per_param, "sgd"),
        )  # fmt: skip
        if with_momentum:
            for p, b in zip(params, buffers, strict=True):
                self.state[p]["momentum_buffer"] = b


def _check_sgd(group: dict[str, Any]) -> None:
    check_number("lr", group["lr"], 0.0)
    check_number("momentum", group["momentum"], 0.0)
    check_number("dampening", group["dampening"], 0.0)
    check_number("weight_decay", group["weight_decay"], 0.0)
    if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
        raise ValueError(
            "nesterov=True requires momentum > 0 and dampening = 0, got "
            f"momentum={group['momentum']!r}, dampening={group['dampening']!r}"
        )
