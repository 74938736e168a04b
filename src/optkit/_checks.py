"""Hyperparameter validation shared by every entry point.

Every check raises ``ValueError`` whose message names the argument, the allowed range and the
value it got, e.g. ``"betas[0] must be in [0, 1), got 1.0"``. Library code never uses ``assert``
for user input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "check_choice",
    "check_int",
    "check_number",
    "check_pair",
]


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got shape {tuple(value.shape)}"
            )
        return float(value.item())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)


def check_number(
    name: str,
    value: Any,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check ``low <= value <= high`` (``<`` on an open side) and finiteness; return it as float.

    Example:
        >>> check_number("lr", 0.1, 0.0)
        0.1
        >>> check_number("betas[0]", 1.0, 0.0, 1.0, high_open=True)
        Traceback (most recent call last):
        ...
        ValueError: betas[0] must be in [0, 1), got 1.0
    """
    x = _as_float(name, value)
    below = x <= low if low_open else x < low
    above = x >= high if high_open else x > high
    if math.isnan(x) or math.isinf(x) or below or above:
        raise ValueError(
            f"{name} must be {_describe(low, high, low_open, high_open)}, got {value!r}"
        )
    return x


def _fmt(v: float) -> str:
    return str(int(v)) if v == int(v) and abs(v) < 1e15 else repr(v)


def _describe(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        if math.isinf(low):
            return "a finite number"
        return f"finite and {'>' if low_open else '>='} {_fmt(low)}"
    if math.isinf(low):
        return f"{'<' if high_open else '<='} {_fmt(high)}"
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    return f"in {left}{_fmt(low)}, {_fmt(high)}{right}"


def check_int(name: str, value: Any, low: int = 0, high: int | None = None) -> int:
    """Check that ``value`` is an integer in ``[low, high]``; return it.

    Example:
        >>> check_int("ns_steps", 0, 1)
        Traceback (most recent call last):
        ...
        ValueError: ns_steps must be an integer >= 1, got 0
    """
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {rng}, got {value!r}")
    return value


def check_pair(name: str, value: Any, low: float, high: float, *, high_open: bool = True):
    """Check a pair such as ``betas``: two numbers, each in ``[low, high)``; return a tuple.

    Example:
        >>> check_pair("betas", (0.9, 0.999), 0.0, 1.0)
        (0.9, 0.999)
    """
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ValueError(f"{name} must be a pair of numbers, got {value!r}")
    return tuple(
        check_number(f"{name}[{i}]", v, low, high, high_open=high_open) for i, v in enumerate(value)
    )


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Check that ``value`` is one of ``choices``; the message lists them.

    Example:
        >>> check_choice("adjust_lr", "spectral", ("spectral", "match_rms_adamw", None))
        'spectral'
    """
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
    return value
