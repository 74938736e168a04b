"""What every optkit optimizer shares: the step protocol, lazy state, the choice of kernel.

An optkit optimizer is a thin ``torch.optim.Optimizer`` subclass: ``__init__`` validates and
fills ``defaults``; :meth:`OptkitOptimizer._step_group` gathers one param group's tensors and
calls the update rule, a function over *lists* of tensors (``torch._foreach_*`` or one of
torch's fused kernels where that kernel computes exactly the same rule). A one-element list is
the single-tensor case; there is no second copy of any rule.

Which implementation runs is decided in one place, :func:`plan_step` (with :func:`fused_choice`
for each parameter): torch's fused kernel where it is exact and traceable, else the foreach
rule; hyperparameters and step counts as Python numbers in eager steps, as tensors when the
step is compiled or ``capturable`` (no host synchronization, no recompilation when a tensor
``lr`` changes).

State keys and hyperparameter names are torch.optim's (``step``, ``exp_avg``, ``exp_avg_sq``,
``momentum_buffer``, ``square_avg``, ``lr``, ``betas``, ...) so that state dicts interchange
with torch.optim in both directions.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

__all__ = [
    "TORCH_FLAGS_DOC",
    "OptkitOptimizer",
    "StepPlan",
    "add_scaled_",
    "check_torch_flags",
    "fused_choice",
    "group_by_device_dtype",
    "increment_steps",
    "is_compiling",
    "penalized_grads",
    "plan_step",
    "real_views",
    "scalar",
    "split_by_flag",
]

TORCH_VERSION = tuple(int(x) for x in torch.__version__.split("+")[0].split(".")[:2])

# Devices for which torch ships the fused Adam/AdamW/SGD kernels used below.
_FUSED_DEVICES = frozenset({"cpu", "cuda", "mps", "xpu"})
_FUSED_DTYPES = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_PLAIN_TYPES = (Tensor, torch.nn.Parameter)  # subclasses such as DTensor take the foreach path
# torch's CPU fused kernels (Adam/AdamW and SGD) appeared in torch 2.4.
_CPU_FUSED_SINCE = (2, 4)
# torch's CPU _fused_sgd_ computes wrong values for float16/bfloat16 (errors of order 0.4
# after one step of lr 0.1, with or without momentum; float32/float64 are exact).
_CPU_FUSED_SGD_DTYPES = frozenset({torch.float32, torch.float64})


# The Args entries of torch's implementation flags, shared by the optimizers' docstrings.
TORCH_FLAGS_DOC = textwrap.indent(
    """\
foreach: None (default) or True: the foreach rule (or the fused kernel, see ``fused``);
    False: the same rule run parameter by parameter (torch's for-loop).
capturable: True keeps the step counts on the parameters' device and every scalar a
    tensor (no host synchronization: CUDA-graph safe); default False.
differentiable: only False; True raises ValueError (the update runs in place under
    ``torch.no_grad``, autograd cannot run through it: use torch.optim's class).
fused: None (default) runs torch's fused kernel for each parameter where that kernel
    computes exactly the same rule (dense tensors with one memory layout, supported device
    and dtype; not while torch.compile traces the step), else the foreach rule; True
    requires it (ValueError where it would be wrong); False never uses it.
""",
    " " * 8,
)


def is_compiling() -> bool:
    """True while torch.compile (dynamo) traces the code."""
    return torch.compiler.is_compiling()


def _dense(t: Tensor) -> bool:
    """Non-overlapping and dense: the elements fill one block of memory in some dim order."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _fused_defect(tensors: Sequence[Tensor], kernel: str, torch_version: tuple[int, int]) -> str:
    """Why torch's fused ``kernel`` would not compute this parameter's update exactly ('' if it
    would). ``tensors``: the parameter first, then its gradient and state tensors."""
    p = tensors[0]
    device = p.device.type
    if type(p) not in _PLAIN_TYPES:
        return f"{type(p).__name__} parameters need the foreach path"
    if p.is_complex():
        return "torch's fused kernels take real floating tensors, not complex ones"
    if p.dtype not in _FUSED_DTYPES:
        return f"torch's fused kernels do not support {p.dtype}"
    if device not in _FUSED_DEVICES:
        return f"torch has no fused kernels for device {device!r}"
    if device == "cpu" and torch_version < _CPU_FUSED_SINCE:
        return f"torch {torch_version[0]}.{torch_version[1]} has no CPU fused kernels"
    if device == "cpu" and kernel == "sgd" and p.dtype not in _CPU_FUSED_SGD_DTYPES:
        return f"torch's CPU fused SGD kernel miscomputes {p.dtype}"
    if all(t.is_contiguous() for t in tensors):
        return ""
    # the kernels walk memory linearly: a view with gaps, or a gradient/state laid out
    # differently from the parameter, gets wrong values (torch 2.13, CPU)
    stride = p.stride()
    if not (_dense(p) and all(t.stride() == stride for t in tensors)):
        return "torch's fused kernels miscompute strided views and mixed memory layouts"
    return ""


def fused_choice(
    tensors: Sequence[Tensor],
    kernel: str | None,
    fused: bool | None,
    *,
    foreach: bool | None = None,
    compiling: bool = False,
    torch_version: tuple[int, int] = TORCH_VERSION,
) -> bool:
    """Whether one parameter's update runs torch's fused ``kernel`` ("adam" or "sgd").

    ``tensors`` are the parameter, its gradient and its state tensors. With ``fused=None`` the
    fused kernel is chosen only where it computes exactly the foreach rule and can run: not
    while compiling (torch's fused kernels have no tracing support), not when ``foreach`` was
    set (torch's meaning: that implementation was asked for), not for the cases listed in
    :func:`_fused_defect`. ``fused=True`` raises ValueError in those cases instead of
    computing a wrong update; while compiling it runs the foreach rule (the same update).

    Example:
        >>> p = torch.zeros(4)
        >>> fused_choice([p, torch.zeros(4)], "adam", None)
        True
        >>> strided = torch.zeros(4, 2)[:, 0]
        >>> fused_choice([strided, torch.zeros(4)], "adam", None)
        False
    """
    if kernel is None or fused is False or compiling:
        return False
    if fused is None and foreach is not None:
        return False
    defect = _fused_defect(tensors, kernel, torch_version)
    if not defect:
        return True
    if fused:
        p = tensors[0]
        raise ValueError(
            f"fused=True is not supported for a parameter of shape {tuple(p.shape)}, dtype "
            f"{p.dtype}, device {p.device.type}, strides {p.stride()}: {defect}; use fused=None "
            "(picks the exact path) or fused=False"
        )
    return False


class StepPlan(NamedTuple):
    """How one param group's step runs (see :func:`plan_step`)."""

    fused: list[bool]  # per parameter: torch's fused kernel, else the foreach rule
    tensor_scalars: bool  # lr/betas and step counts stay tensors (compiled or capturable)
    blocks: bool  # eager CPU foreach: cut into blocks (:mod:`optkit.optim._cpu`)
    per_tensor: bool  # foreach=False: the rule on one-element lists, parameter by parameter


def plan_step(
    group: dict[str, Any], per_param: Sequence[Sequence[Tensor]], kernel: str | None
) -> StepPlan:
    """The one decision of how a group's step runs: kernel per parameter and scalar form.

    ``per_param``: for each parameter with a gradient, its tensors (parameter, gradient,
    state). While torch.compile traces the step (:func:`is_compiling`) no fused kernel runs
    and hyperparameters stay tensors, so the traced graph has no ``.item()`` (no graph break)
    and a tensor ``lr`` changed by a scheduler is a new input value, not a new constant (no
    recompilation); ``capturable=True`` asks for the same no-sync form in eager steps.
    """
    compiling = is_compiling()
    fused = [
        fused_choice(
            tensors, kernel, group.get("fused"), foreach=group.get("foreach"), compiling=compiling
        )
        for tensors in per_param
    ]
    tensor_scalars = compiling or bool(group.get("capturable", False))
    cpu = bool(per_param) and per_param[0][0].is_cpu
    return StepPlan(fused, tensor_scalars, cpu and not compiling, group.get("foreach") is False)


def split_by_flag(lists: Sequence[Sequence[Any]], flags: Sequence[bool]) -> list[tuple[bool, Any]]:
    """``lists`` (parallel, a NamedTuple of lists) split by a per-element flag: one
    ``(flag, lists)`` pair per flag value present; empty lists stay empty. The common case,
    one flag for all, returns ``lists`` itself."""
    if all(flags) or not any(flags):
        return [(bool(flags[0]), lists)] if len(flags) else []
    out = []
    for value in (True, False):
        idx = [i for i, f in enumerate(flags) if f == value]
        out.append((value, [[lst[i] for i in idx] if len(lst) else [] for lst in lists]))
    return out


def scalar(value: float | Tensor, plan: StepPlan, device: torch.device | None = None) -> Any:
    """A hyperparameter in the plan's form: a Python float for eager steps (a tensor ``lr`` is
    read once per group), else as given, a tensor moved to ``device`` (the step counts' and
    parameters' device: foreach ops want their scalars there)."""
    if not plan.tensor_scalars:
        return float(value) if isinstance(value, Tensor) else value
    if isinstance(value, Tensor) and device is not None:
        return value.to(device)
    return value


def add_scaled_(dst: list[Tensor], src: list[Tensor], scale: float | Tensor) -> None:
    """dst += scale·src, in place; ``scale`` a number or a 0-dim tensor (no ``.item()``)."""
    if isinstance(scale, Tensor):
        torch._foreach_add_(dst, torch._foreach_mul(src, scale))
    else:
        torch._foreach_add_(dst, src, alpha=scale)


def real_views(*lists: list[Tensor]) -> None:
    """Replace complex tensors by their real views (…, 2), in place in each list, as torch.

    Adam's and RMSprop's g² and √s are not the complex square and root: torch treats a complex
    parameter as a pair of real ones, and so does optkit.
    """
    for i, t in enumerate(lists[0]):
        if t.is_complex():
            for lst in lists:
                if len(lst):
                    lst[i] = torch.view_as_real(lst[i])


def group_by_device_dtype(
    tensor_lists: Sequence[Sequence[Any]],
) -> list[list[list[Any]]]:
    """Split parallel lists into sub-lists sharing one (device, dtype) of the first list.

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
    if steps[0].is_cpu and not is_compiling():
        torch._foreach_add_(steps, _ONE_CPU, alpha=1.0)
    else:
        torch._foreach_add_(steps, 1)


def _torch_flag(group: dict[str, Any], name: str, choices: tuple[Any, ...]) -> Any:
    value = group.get(name, choices[0])
    if not any(value is c for c in choices):
        listed = ", ".join(repr(c) for c in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {listed}, got {value!r}")
    return value


def check_torch_flags(group: dict[str, Any], cls_name: str, kernel: str | None) -> None:
    """Validate torch's implementation flags of a group: ``foreach``, ``fused``,
    ``capturable``, ``differentiable`` (each optional), and a tensor ``lr``.

    ``differentiable=True`` is refused with ValueError: the rules update parameters in place
    under ``torch.no_grad`` (foreach/fused kernels), so no autograd graph runs through a step.
    """
    foreach = _torch_flag(group, "foreach", (None, True, False))
    fused = _torch_flag(group, "fused", (None, True, False)) if kernel else None
    _torch_flag(group, "capturable", (False, True))
    if _torch_flag(group, "differentiable", (False, True)):
        raise ValueError(
            f"differentiable=True is not supported by optkit.{cls_name}: its update runs in "
            "place under torch.no_grad (foreach/fused kernels), so autograd cannot run through "
            f"step(); use torch.optim.{cls_name}(..., differentiable=True) for that"
        )
    if fused and foreach:
        raise ValueError("fused=True and foreach=True cannot be set together (as torch.optim)")
    lr = group.get("lr")
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError(f"a tensor lr must have one element, got shape {tuple(lr.shape)}")
    if fused:
        for i, p in enumerate(group.get("params", ())):
            defect = _fused_defect([p], kernel, TORCH_VERSION)
            if defect:
                raise ValueError(
                    f"fused=True: params[{i}] (dtype {p.dtype}, device {p.device.type}) is not "
                    f"supported: {defect}; use fused=None or fused=False"
                )


class OptkitOptimizer(torch.optim.Optimizer):
    """Base class: the ``step`` protocol shared by all optkit optimizers.

    Subclasses implement :meth:`_step_group`, which reads ``group`` and updates the parameters
    of that group that have a gradient, and :meth:`_check_group`, which validates the
    hyperparameters of ``defaults`` and of every param group added later. ``_LATER_KEYS`` holds
    keys that older or foreign (torch.optim) state dicts may lack, with their defaults.
    """

    _LATER_KEYS: ClassVar[dict[str, Any]] = {}
    _sparse_grads: ClassVar[bool] = False  # True: sparse gradients are densified (SGD)

    def __init__(self, params: Any, defaults: dict[str, Any]) -> None:
        self._check_group(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        try:
            self._check_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()
            raise

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
        """The group's parameters that have a gradient, and those gradients (dense).

        A sparse gradient is densified where the class allows it (SGD, as torch.optim.SGD
        accepts them), else refused with torch's RuntimeError.
        """
        params, grads = [], []
        for p in group["params"]:
            grad = p.grad
            if grad is None:
                continue
            if grad.is_sparse:
                if not self._sparse_grads:
                    raise RuntimeError(
                        f"{type(self).__name__} does not support sparse gradients; use "
                        "torch.optim.SparseAdam or a dense embedding (sparse=False)"
                    )
                grad = grad.to_dense()
            params.append(p)
            grads.append(grad)
        return params, grads

    def _step_tensor(self, state: dict[str, Any], param: Tensor, on_device: bool) -> Tensor:
        """The ``step`` counter: a float32 scalar tensor, on the param's device for fused
        kernels and tensor-scalar steps, else on the CPU.

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
