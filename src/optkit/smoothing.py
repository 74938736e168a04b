r"""Exponentially weighted and simple moving averages, vectorized and streaming.

The lecture's λ-EWMA of a sequence x_1, ..., x_n:

.. code-block:: text

    a_t = λ·a_{t-1} + (1 − λ)·x_t,        a_0 chosen by the user
        = λᵗ·a_0 + Σ_{i=1..t} (1 − λ)·λ^{t−i}·x_i

O(1) memory and O(1) work per update (:class:`EWMA`). Started at a_0 = 0 its weights sum to
1 − λᵗ, not 1; ``bias_correction=True`` divides by that sum (the lecture's rescaling, the same
as Adam's), which makes it the exactly weighted average Σλ^{t−i}x_i / Σλ^{t−i}.

The vectorized :func:`ewma` is not a Python loop over points: it evaluates the recurrence as a
parallel prefix scan (log₂ n passes of whole-array work, each pass multiplying by λ^k ≤ 1, so
it cannot overflow), which runs on any torch device and is differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ._checks import check_int, check_number

__all__ = ["EWMA", "ewma", "sma"]

_A0_MODES = ("zero", "mean", "first")


def _to_tensor(x: Any, name: str = "x") -> tuple[torch.Tensor, bool]:
    """x as a floating tensor along dim 0, and whether the caller gave a tensor."""
    is_tensor = isinstance(x, torch.Tensor)
    t = x if is_tensor else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if t.ndim == 0:
        raise ValueError(f"{name} must have at least one dimension (a series), got a scalar")
    if t.shape[0] == 0:
        raise ValueError(f"{name} must not be empty")
    if not t.is_floating_point():
        t = t.to(torch.get_default_dtype())
    return t, is_tensor


def _back(t: torch.Tensor, is_tensor: bool) -> Any:
    return t if is_tensor else t.detach().cpu().numpy()


def _check_lam(lam: Any) -> float:
    return check_number("lam", lam, 0.0, 1.0, low_open=True, high_open=True)


def _initial(x: torch.Tensor, a0: Any) -> torch.Tensor:
    if isinstance(a0, str):
        if a0 not in _A0_MODES:
            raise ValueError(f"a0 must be 'zero', 'mean', 'first' or a number, got {a0!r}")
        if a0 == "zero":
            return torch.zeros_like(x[0])
        return x.mean(dim=0) if a0 == "mean" else x[0].clone()
    if isinstance(a0, torch.Tensor):
        return a0.to(x).expand_as(x[0]).clone()
    check_number("a0", a0)
    return torch.full_like(x[0], float(a0))


def ewma(x: Any, lam: float, a0: Any = "zero", bias_correction: bool = False) -> Any:
    r"""The λ-EWMA of a series along its first axis.

    Args:
        x: the series, shape (n, ...): a NumPy array, list or torch tensor (n ≥ 1).
        lam: λ in (0, 1), the retention of past values (larger = smoother, more lag).
        a0: the initial value a_0: ``"zero"`` (default), ``"mean"`` (mean of x), ``"first"``
            (x_1, so a_1 = x_1), or a number.
        bias_correction: divide a_t by 1 − λᵗ (needs ``a0="zero"``): the exactly weighted
            average, equal to pandas ``ewm(alpha=1−λ, adjust=True)``.

    Returns:
        a_1, ..., a_n with the shape of x, as a tensor if x was one, else a NumPy array.

    Raises:
        ValueError: λ outside (0, 1), empty x, an unknown a0, bias correction with a0 ≠ "zero".

    Example:
        >>> ewma([1.0, 1.0, 1.0], lam=0.5)
        array([0.5  , 0.75 , 0.875])
        >>> ewma([1.0, 1.0, 1.0], lam=0.5, bias_correction=True)
        array([1., 1., 1.])
    """
    lam = _check_lam(lam)
    if bias_correction and a0 != "zero":
        raise ValueError(
            f"bias_correction=True needs a0='zero' (the rescaling assumes a_0 = 0), got a0={a0!r}"
        )
    t, is_tensor = _to_tensor(x)
    a = _scan(t, lam, _initial(t, a0))
    if bias_correction:
        steps = torch.arange(1, t.shape[0] + 1, dtype=t.dtype, device=t.device)
        weight_sum = -torch.expm1(steps * math.log(lam))  # 1 − λᵗ without cancellation
        a = a / weight_sum.reshape((-1,) + (1,) * (t.ndim - 1))
    return _back(a, is_tensor)


def _scan(x: torch.Tensor, lam: float, a0: torch.Tensor) -> torch.Tensor:
    """a_t = λ·a_{t−1} + (1−λ)·x_t for all t by a Hillis–Steele prefix scan.

    After the pass with offset k, y_t holds Σ_{j<2k, j≤t} λʲ·u_{t−j} where u = (1−λ)x with λ·a_0
    folded into u_1. Passes stop once λᵏ underflows: older terms no longer change any value.
    """
    y = (1.0 - lam) * x
    y[0] = y[0] + lam * a0
    k, n = 1, x.shape[0]
    while k < n:
        factor = lam**k
        if factor == 0.0:
            break
        shifted = torch.zeros_like(y)
        shifted[k:] = y[:-k]
        y = y + factor * shifted
        k *= 2
    return y


def sma(x: Any, window: int) -> Any:
    """The simple (windowed) moving average along the first axis.

    Output t is the mean of x_{t−window+1..t}; the first window−1 outputs average the points
    seen so far (pandas ``rolling(window, min_periods=1).mean()``), so the output has x's length.

    Args:
        x: the series, shape (n, ...): NumPy array, list or torch tensor.
        window: the number of points averaged, an integer ≥ 1.

    Example:
        >>> sma([1.0, 2.0, 3.0, 4.0], window=2)
        array([1. , 1.5, 2.5, 3.5])
    """
    check_int("window", window, 1)
    t, is_tensor = _to_tensor(x)
    acc = t.to(torch.float64) if t.dtype != torch.float64 and t.device.type == "cpu" else t
    c = torch.cumsum(acc, dim=0)
    out = c.clone()
    out[window:] = c[window:] - c[:-window]
    counts = torch.clamp(torch.arange(1, t.shape[0] + 1, device=t.device), max=window)
    out = out / counts.to(out.dtype).reshape((-1,) + (1,) * (t.ndim - 1))
    return _back(out.to(t.dtype), is_tensor)


class EWMA:
    r"""The streaming λ-EWMA: O(1) memory, O(1) work per :meth:`update`.

    Equal to :func:`ewma` of the values seen so far (tested). Values may be numbers, NumPy
    arrays or tensors (element-wise).

    Args:
        lam: λ in (0, 1).
        a0: ``"zero"`` (default), ``"first"`` or a number. (``"mean"`` needs the whole series
            and is offered only by :func:`ewma`.)
        bias_correction: report a_t / (1 − λᵗ) (needs ``a0="zero"``).

    Example:
        >>> avg = EWMA(lam=0.9, bias_correction=True)
        >>> [round(avg.update(x), 6) for x in (2.0, 2.0, 2.0)]
        [2.0, 2.0, 2.0]
        >>> avg.count
        3
    """

    def __init__(self, lam: float, a0: Any = "zero", bias_correction: bool = False) -> None:
        self.lam = _check_lam(lam)
        if isinstance(a0, str) and a0 not in ("zero", "first"):
            raise ValueError(f"a0 must be 'zero', 'first' or a number for streaming, got {a0!r}")
        if not isinstance(a0, str):
            check_number("a0", a0)
        if bias_correction and a0 != "zero":
            raise ValueError(f"bias_correction=True needs a0='zero', got a0={a0!r}")
        self.a0 = a0
        self.bias_correction = bool(bias_correction)
        self.count = 0
        self._a: Any = None
        self._lam_t = 1.0  # λᵗ, kept for the bias correction

    def update(self, x: Any) -> Any:
        """Take x_t; return the current average a_t (bias-corrected if asked)."""
        if self.count == 0:
            self._a = x if self.a0 == "first" else (0.0 if self.a0 == "zero" else self.a0)
        self._a = self.lam * self._a + (1.0 - self.lam) * x
        self.count += 1
        self._lam_t *= self.lam
        return self.value

    @property
    def value(self) -> Any:
        """The current average (None before the first update)."""
        if self._a is None or not self.bias_correction:
            return self._a
        return self._a / (1.0 - self._lam_t)

    def reset(self) -> None:
        """Forget every value seen."""
        self.count, self._a, self._lam_t = 0, None, 1.0
