"""One row per optimizer; the generic tests in test_first_order.py and test_contract.py read
the rows.

A row says how to build the optkit optimizer, which torch.optim class is its reference, the
configurations to run, the bad inputs with the message each must raise, and its capabilities:
the torch.optim behaviours it promises, each checked by one generic test (``CAPABILITIES``
names them; a test asks ``info.has(...)`` instead of testing the class name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import optkit

CAPABILITIES = {
    "fused": "fused=None/True/False; the fused kernel and the foreach rule agree",
    "foreach": "torch's foreach=None/True/False",
    "capturable": "torch's capturable=True (scalars as tensors, steps on the device)",
    "sparse": "sparse gradients (as torch.optim.SGD); without it: torch's RuntimeError",
    "complex": "complex parameters, updated as torch updates them (real views)",
    "tensor_lr": "a one-element tensor lr on every path",
    "tensor_betas": "tensor betas (both or neither)",
    "compile": "torch.compile(opt.step) equals eager, no recompilation on a tensor-lr schedule",
}


@dataclass(frozen=True)
class OptimInfo:
    name: str
    cls: type
    reference: type  # the torch.optim class with the same names and update rule
    configs: list[dict[str, Any]]
    errors: list[tuple[dict[str, Any], str]]  # (kwargs, regex the ValueError must match)
    capabilities: frozenset[str] = frozenset()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def has_fused(self) -> bool:
        return "fused" in self.capabilities

    def has(self, capability: str) -> bool:
        assert capability in CAPABILITIES, capability
        return capability in self.capabilities


FIRST_ORDER = frozenset({"foreach", "capturable", "complex", "tensor_lr", "compile"})


OPTIM_DB = [
    OptimInfo(
        "SGD",
        optkit.SGD,
        torch.optim.SGD,
        configs=[
            dict(lr=0.05),
            dict(lr=0.05, momentum=0.9),
            dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1),
            dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05, maximize=True),
        ],
        errors=[
            (dict(lr=-0.1), r"lr must be finite and >= 0, got -0.1"),
            (dict(lr=0.1, momentum=-0.5), r"momentum must be finite and >= 0"),
            (dict(lr=0.1, weight_decay=-1), r"weight_decay must be finite and >= 0"),
            (dict(lr=0.1, nesterov=True), r"nesterov=True requires momentum > 0"),
            (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), r"dampening = 0"),
            (dict(lr=float("nan")), r"lr must be finite and >= 0, got nan"),
            (dict(differentiable=True), r"differentiable=True is not supported by optkit.SGD"),
            (dict(fused=True, foreach=True), r"fused=True and foreach=True cannot be set"),
            (dict(foreach="yes"), r"foreach must be None, True or False, got 'yes'"),
            (dict(lr=torch.tensor([0.1, 0.2])), r"lr must be a number or a one-element tensor"),
        ],
        capabilities=FIRST_ORDER | {"fused", "sparse"},
    ),
    OptimInfo(
        "RMSprop",
        optkit.RMSprop,
        torch.optim.RMSprop,
        configs=[
            dict(lr=0.01),
            dict(lr=0.01, alpha=0.9, weight_decay=0.1),
            dict(lr=0.01, momentum=0.9, centered=True),
            dict(lr=0.01, centered=True, maximize=True, eps=1e-6, weight_decay=0.01),
        ],
        errors=[
            (dict(lr=-1.0), r"lr must be finite and >= 0"),
            (dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
            (dict(eps=-1e-8), r"eps must be finite and >= 0"),
            (dict(momentum=-0.1), r"momentum must be finite and >= 0"),
            (dict(weight_decay=-0.1), r"weight_decay must be finite and >= 0"),
            (dict(differentiable=True), r"differentiable=True is not supported by optkit.RMSprop"),
            (dict(capturable="yes"), r"capturable must be False or True, got 'yes'"),
        ],
        capabilities=FIRST_ORDER,
    ),
    OptimInfo(
        "Adam",
        optkit.Adam,
        torch.optim.Adam,
        configs=[
            dict(lr=0.01),
            dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1),
            dict(lr=0.01, amsgrad=True, eps=1e-6),
            dict(lr=0.01, maximize=True, weight_decay=0.01, amsgrad=True),
        ],
        errors=[
            (dict(lr=-1e-3), r"lr must be finite and >= 0"),
            (dict(betas=(1.0, 0.999)), r"betas\[0\] must be in \[0, 1\), got 1.0"),
            (dict(betas=(0.9, -0.1)), r"betas\[1\] must be in \[0, 1\)"),
            (dict(betas=0.9), r"betas must be a pair of numbers"),
            (dict(eps=-1.0), r"eps must be finite and >= 0"),
            (dict(weight_decay=-1e-2), r"weight_decay must be finite and >= 0"),
            (dict(fused="yes"), r"fused must be None, True or False"),
            (dict(betas=(0.9, torch.tensor(0.99))), r"betas must be both numbers or both tensors"),
            (dict(betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.99))), r"betas\[0\]"),
            (dict(differentiable=True), r"differentiable=True is not supported by optkit.Adam"),
        ],
        capabilities=FIRST_ORDER | {"fused", "tensor_betas"},
    ),
    OptimInfo(
        "AdamW",
        optkit.AdamW,
        torch.optim.AdamW,
        configs=[
            dict(lr=0.01),
            dict(lr=0.01, weight_decay=0.5, betas=(0.9, 0.95)),
            dict(lr=0.01, amsgrad=True),
            dict(lr=0.01, maximize=True, weight_decay=0.1),
        ],
        errors=[
            (dict(lr=-1e-3), r"lr must be finite and >= 0"),
            (dict(betas=(0.9, 1.0)), r"betas\[1\] must be in \[0, 1\), got 1.0"),
            (dict(weight_decay=float("inf")), r"weight_decay must be finite and >= 0, got inf"),
            (dict(betas=(torch.tensor(0.9), 0.99)), r"betas must be both numbers or both tensors"),
            (dict(fused=True, foreach=True), r"fused=True and foreach=True cannot be set"),
        ],
        capabilities=FIRST_ORDER | {"fused", "tensor_betas"},
    ),
]

CASES = [(info, cfg) for info in OPTIM_DB for cfg in info.configs]
CASE_IDS = [f"{info.name}-{i}" for info in OPTIM_DB for i, _ in enumerate(info.configs)]
ERROR_CASES = [(info, kw, msg) for info in OPTIM_DB for kw, msg in info.errors]
ERROR_IDS = [f"{info.name}-{kw}" for info, kw, _ in ERROR_CASES]
