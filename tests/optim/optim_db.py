"""One row per optimizer configuration; the generic tests in test_first_order.py read the rows.

A row says how to build the optkit optimizer, which torch.optim class is its reference, the
configurations to run, and the bad inputs with the message each must raise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import optkit


@dataclass(frozen=True)
class OptimInfo:
    name: str
    cls: type
    reference: type  # the torch.optim class with the same names and update rule
    configs: list[dict[str, Any]]
    errors: list[tuple[dict[str, Any], str]]  # (kwargs, regex the ValueError must match)
    has_fused: bool = True  # accepts fused=None/True/False
    extra: dict[str, Any] = field(default_factory=dict)


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
        ],
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
        ],
        has_fused=False,
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
        ],
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
        ],
    ),
]

CASES = [(info, cfg) for info in OPTIM_DB for cfg in info.configs]
CASE_IDS = [f"{info.name}-{i}" for info in OPTIM_DB for i, _ in enumerate(info.configs)]
ERROR_CASES = [(info, kw, msg) for info in OPTIM_DB for kw, msg in info.errors]
ERROR_IDS = [f"{info.name}-{kw}" for info, kw, _ in ERROR_CASES]
