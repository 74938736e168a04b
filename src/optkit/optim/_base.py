"""What every optkit optimizer shares: the step protocol, lazy state and device/dtype grouping.

An optkit optimizer is a thin ``torch.optim.Optimizer`` subclass: ``__init__`` validates and
fills ``defaults``; :meth:`OptkitOptimizer._step_group` gathers one param group's tensors and
calls the update rule, a function over *lists* of tensors (``torch._foreach_*`` or one of
torch's fused kernels where that kernel computes exactly the same rule). A one-element list is
the single-tensor case; there is no second copy of any rule.

State keys and hyperparameter names are torch.optim's (``step``, ``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``square_avg``, ``lr``, ``betas``, ...) so that state dicts interchange
with torch.optim in both directions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

__all__ = [
    "OptkitOptimizer",
    "cpu_blocks",
    "fused_supported",
    "group_by_device_dtype",
    "increment_steps",
    "penalized_grads",
]

# Devices for which torch ships the fused Adam/AdamW/SGD kernels used below.
_FUSED_DEVICES = frozenset({"cpu", "cuda", "mps", "xpu"})
_FUSED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)  # subclasses such as DTensor take the foreach path


def fused_supported(
    tensors: Sequence[Tensor], cpu_dtypes: frozenset[torch.dtype] = _FUSED_DTYPES
) -> bool:
    """True when every tensor is a plain dense floating tensor on a device with fused kernels.

    ``cpu_dtypes`` narrows the dtypes trusted on CPU (torch 2.13's CPU fused SGD miscomputes
    float16/bfloat16, see :mod:`optkit.optim.sgd`).
    """
    return all(
        type(t) in _PLAIN_TYPES
        and t.device.type in _FUSED_DEVICES
        and t.dtype in (cpu_dtypes if t.device.type == "cpu" else _FUSED_DTYPES)
        and not t.is_sparse
        for t in tensors
    )


def group_by_device_dtype(
    tensor_lists: Sequence[Sequence[Tensor | None]],
) -> list[list[list[Tensor]]]:
    """Split parallel tensor lists into sub-lists sharing one (device, dtype) of the first list.

    Foreach ops and fused kernels want one device and one dtype per call. Lists that are empty
    (an unused optional state such as ``max_exp_avg_sq``) stay empty in every bucket.

    Example:
        >>> a = [torch.zeros(2), torch.zeros(2, dtype=torch.float64), torch.ones(1)]
        >>> [len(bucket[0]) for bucket in group_by_device_dtype([a, a])]
        [2, 1]
    """
    leader = tensor_lists[0]
    buckets: dict[tuple[torch.device, torch.dtype], list[int]] = defaultdict(list)
    for i, t in enumerate(leader):
        buckets[(t.device, t.dtype)].append(i)
    if len(buckets) == 1:
        return [[list(lst) for lst in tensor_lists]]
    return [
        [[lst[i] for i in idx] if len(lst) else [] for lst in tensor_lists]
        for idx in buckets.values()
    ]


# Elements per block of the foreach path on CPU. A foreach op over a whole 23M-parameter model
# allocates its temporaries (e.g. √s) at full size: fresh pages from the OS on every step, and
# every op sweeps memory far larger than the caches. Cut into blocks of ~2^20 elements the same
# ops reuse small heap buffers and run ~2x faster on CPU (benchmarks/step_time.py). GPUs keep
# one foreach call per op (fewest kernel launches).
CPU_BLOCK_NUMEL = 1 << 20


def cpu_blocks(lists: Sequence[Sequence[Any]], block_numel: int | None = None):
    """Yield the parallel lists cut into blocks of about ``block_numel`` elements.

    ``block_numel`` defaults to ``CPU_BLOCK_NUMEL``. ``lists[0]`` holds tensors; every other
    list is empty (an unused state), holds tensors
    aligned element for element with ``lists[0]``, or holds per-tensor Python scalars (copied to
    each piece). A contiguous tensor longer than a block is cut into flat views, so updating a
    block updates the tensor in place. Off the CPU the lists are yielded whole.

    Example:
        >>> a, b = torch.zeros(5), torch.zeros(3)
        >>> [[t.numel() for t in blk[0]] for blk in cpu_blocks([[a, b], [1.0, 2.0]], 4)]
        [[4], [1, 3]]
        >>> [blk[1] for blk in cpu_blocks([[a, b], [1.0, 2.0]], 4)]
        [[1.0], [1.0, 2.0]]
    """
    lead = lists[0]
    if not lead or not lead[0].is_cpu:
        yield lists
        return
    block_numel = block_numel or CPU_BLOCK_NUMEL
    out: list[list[Any]] = [[] for _ in lists]
    count = 0
    for i, t in enumerate(lead):
        items = [lst[i] if len(lst) else None for lst in lists]
        n = t.numel()
        split = n > block_numel and all(
            not isinstance(x, Tensor) or x.is_contiguous() for x in items
        )
        for a in range(0, n, block_numel) if split else (0,):
            b = min(n, a + block_numel) if split else n
            for j, x in enumerate(items):
                if x is not None:
                    out[j].append(x.view(-1)[a:b] if split and isinstance(x, Tensor) else x)
            count += b - a
            if count >= block_numel:
                yield out
                out, count = [[] for _ in lists], 0
    if out[0]:
        yield out


def penalized_grads(
    params: list[Tensor], grads: list[Tensor], weight_decay: float, maximize: bool
) -> list[Tensor]:
    """g (−g when maximizing) plus the L2 term w·θ, without touching ``p.grad``.

    Returns ``grads`` itself when there is nothing to add, else new tensors (one temporary per
    block, reused for both terms).
    """
    if maximize:
        grads = torch._foreach_neg(grads)
        if weight_decay != 0:
            torch._foreach_add_(grads, params, alpha=weight_decay)
    elif weight_decay != 0:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    return grads


_ONE_CPU = torch.tensor(1.0)


def increment_steps(steps: list[Tensor]) -> None:
    """``step += 1`` for a list of scalar step tensors, without re-wrapping 1 once per tensor."""
    if steps[0].is_cpu:
        torch._foreach_add_(steps, _ONE_CPU, alpha=1.0)
    else:
        torch._foreach_add_(steps, 1)


class OptkitOptimizer(torch.optim.Optimizer):
    """Base class: the ``step`` protocol shared by all optkit optimizers.

    Subclasses implement :meth:`_step_group`, which reads ``group`` and updates the parameters
    of that group that have a gradient, and :meth:`_check_group`, which validates the
    hyperparameters of ``defaults`` and of every param group added later. ``_LATER_KEYS`` holds
    keys that older or foreign (torch.optim) state dicts may lack, with their defaults.
    """

    _LATER_KEYS: ClassVar[dict[str, Any]] = {}

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._check_group(self.param_groups[-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        for group in self.param_groups:
            for key, value in self._LATER_KEYS.items():
                group.setdefault(key, value)

    def _check_group(self, group: dict[str, Any]) -> None:
        """Raise ValueError naming any hyperparameter of ``group`` outside its range."""

    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss (optional; needed by none of
                the first-order optimizers, accepted for drop-in use).

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                self._step_group(group)
        return loss

    def _step_group(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _params_with_grad(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        """The group's parameters that have a gradient, and those gradients (dense only)."""
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients; use "
                    "torch.optim.SparseAdam or a dense embedding (sparse=False)"
                )
            params.append(p)
            grads.append(p.grad)
        return params, grads

    def _step_tensor(self, state: dict[str, Any], param: Tensor, on_device: bool) -> Tensor:
        """The ``step`` counter: a float32 scalar tensor, on the param's device for fused kernels.

        Also converts a step loaded from an older state dict (a number) or from a torch.optim
        state dict kept on another device.
        """
        device = param.device if on_device else torch.device("cpu")
        step = state.get("step")
        if step is None:
            step = torch.zeros((), dtype=torch.float32, device=device)
        elif not isinstance(step, Tensor):
            step = torch.tensor(float(step), dtype=torch.float32, device=device)
        elif step.device != device or step.dtype != torch.float32:
            step = step.to(device=device, dtype=torch.float32)
        else:
            return step
        state["step"] = step
        return step
