r"""EWMA against SMA, measured: what ``optkit ewma`` draws and summarizes.

For each smoother :func:`compare_smoothers` reports

- **lag**: the delay (in samples) that best aligns the smoothed series with the reference —
  the argmax of the cross-correlation between ``s[t]`` and ``ref[t − L]`` over ``L ≥ 0``,
  refined by a parabola through the peak; the reference is the clean signal when known, else
  the raw series. Theory: λ/(1 − λ) for the EWMA (the mean age of its weights), (w − 1)/2 for
  an SMA of window w;
- **noise ratio** (clean signal known): std(s_t − clean_{t−L}) / std(x_t − clean_t), the noise
  left after the delay is accounted for (1 = no smoothing, smaller is smoother); without a clean
  signal, the *roughness ratio* std(Δs) / std(Δx) of first differences instead;
- **start error**: mean |s_t − ref_t| over the first ⌈1/(1 − λ)⌉ points, where the start value
  a₀ and the bias correction matter (the lecture: at λ = 0.99, n = 10 the weights sum to 0.0956).

The first ⌈3/(1 − λ)⌉ points (the start) are left out of the lag and noise measurements.
Against a noisy raw series the measured lag sits below the theoretical one: the noise in x_t
reaches s_t only through the newest weights, which pulls the correlation peak towards 0. A
measurement that is undefined (a constant series has no lag and no roughness) is NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .smoothing import ewma, sma

__all__ = ["SmootherSummary", "compare_smoothers", "matching_window", "noisy_series"]


@dataclass
class SmootherSummary:
    """One smoother's measurements (see the module docstring)."""

    name: str
    values: np.ndarray
    lag: float
    lag_theory: float
    noise_ratio: float
    start_error: float


def matching_window(lam: float) -> int:
    """The SMA window with the EWMA's lag: (w − 1)/2 = λ/(1 − λ), i.e. w = (1 + λ)/(1 − λ).

    Example:
        >>> matching_window(0.9)
        19
    """
    return max(1, round((1.0 + lam) / (1.0 - lam)))


def noisy_series(n: int = 400, noise: float = 0.4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clean signal (level 2, a slow sine, a step up at 60 %) and a noisy copy of it.

    Returns:
        ``(noisy, clean)``, each of length n. Reproducible from ``seed``.

    Example:
        >>> x, clean = noisy_series(100)
        >>> x.shape, round(float(clean[0]), 3)
        ((100,), 2.0)
    """
    t = np.arange(n, dtype=np.float64)
    clean = 2.0 + np.sin(2 * np.pi * t / 150.0) + 1.0 * (t >= 0.6 * n)
    rng = np.random.default_rng(seed)
    return clean + noise * rng.standard_normal(n), clean


def _lag(s: np.ndarray, ref: np.ndarray, skip: int, max_lag: int) -> float:
    best, scores = 0, []
    for lag in range(max_lag + 1):
        a, b = s[skip + lag :], ref[skip : len(ref) - lag]
        if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
            scores.append(-np.inf)
            continue
        scores.append(float(np.corrcoef(a, b)[0, 1]))
        if scores[-1] > scores[best]:
            best = lag
    if not np.isfinite(scores[best]):  # a constant series: nothing to align
        return math.nan
    if 0 < best < len(scores) - 1 and np.isfinite(scores[best - 1] + scores[best + 1]):
        lo, mid, hi = scores[best - 1], scores[best], scores[best + 1]
        den = lo - 2 * mid + hi
        if den < 0:
            return best + 0.5 * (lo - hi) / den
    return float(best)


def _shifted(ref: np.ndarray, lag: float) -> np.ndarray:
    t = np.arange(len(ref), dtype=np.float64)
    return np.interp(t - lag, t, ref)


def _ratio(num: float, den: float) -> float:
    """num / den, NaN when den is 0 (no noise, no roughness to compare with)."""
    return float(num / den) if den > 0 else math.nan


def compare_smoothers(
    x: np.ndarray, lam: float, window: int, clean: np.ndarray | None = None
) -> list[SmootherSummary]:
    """EWMA (a₀ = 0, bias-corrected, a₀ = x₁, a₀ = mean) and SMA on ``x``, measured.

    Args:
        x: The series (1-D, at least 3 points).
        lam: λ of the EWMA, in (0, 1).
        window: SMA window, an integer ≥ 1.
        clean: The noise-free signal, if known.

    Returns:
        One :class:`SmootherSummary` per smoother, EWMA variants first.

    Example:
        >>> x, clean = noisy_series(400)
        >>> out = compare_smoothers(x, 0.9, 19, clean)
        >>> [s.name for s in out][:2]
        ['EWMA a₀=0', 'EWMA a₀=0, bias-corrected']
        >>> all(s.noise_ratio < 0.6 for s in out)
        True
        >>> flat = compare_smoothers(np.full(50, 3.0), 0.9, 19)  # a constant series
        >>> flat[2].lag, flat[2].noise_ratio, flat[2].start_error
        (nan, nan, 0.0)
    """
    x = np.asarray(x, dtype=np.float64)
    curves = {
        "EWMA a₀=0": ewma(x, lam),
        "EWMA a₀=0, bias-corrected": ewma(x, lam, bias_correction=True),
        "EWMA a₀=x₁": ewma(x, lam, a0="first"),
        "EWMA a₀=mean": ewma(x, lam, a0="mean"),
        f"SMA w={window}": sma(x, window),
    }
    theory = {name: lam / (1 - lam) for name in curves}
    theory[f"SMA w={window}"] = (window - 1) / 2
    n = len(x)
    start = min(n, math.ceil(1.0 / (1.0 - lam)))
    skip = min(n // 3, max(math.ceil(3.0 / (1.0 - lam)), window))
    max_lag = min(n // 3, int(4 * max(theory.values())) + 5)
    ref = clean if clean is not None else x
    out = []
    for name, s in curves.items():
        lag = _lag(s, ref, skip, max_lag)
        if clean is not None:
            resid = (s - _shifted(clean, 0.0 if math.isnan(lag) else lag))[skip:]
            ratio = _ratio(np.std(resid), np.std((x - clean)[skip:]))
        else:
            ratio = _ratio(np.std(np.diff(s[skip:])), np.std(np.diff(x[skip:])))
        start_error = float(np.mean(np.abs(s[:start] - ref[:start])))
        out.append(SmootherSummary(name, s, lag, theory[name], ratio, start_error))
    return out
