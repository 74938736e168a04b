"""Step length along a descent direction: strong Wolfe (Nocedal–Wright zoom) and Armijo.

Both searches see only the scalar function ``phi(t) = f(x + t·d)`` through a callable
``phi(t) -> (phi(t), phi'(t))`` with ``phi'(t) = ∇f(x + t·d)ᵀd``; they know nothing about x, d
or tensors. Symbols: ``f0 = phi(0)``, ``dphi0 = phi'(0) < 0``.

Strong Wolfe conditions on an accepted t (Nocedal & Wright, *Numerical Optimization*, 2nd ed.,
eq. 3.7)::

    phi(t)     <= f0 + c1·t·dphi0          (sufficient decrease)
    |phi'(t)|  <= c2·|dphi0|               (curvature)

with ``0 < c1 < c2 < 1``; c1 = 1e-4 and c2 = 0.9 for Newton and quasi-Newton directions.

A trial where phi or phi' is NaN/Inf is treated like a trial that failed sufficient decrease: the
search shrinks towards the last good step. A search that runs out of evaluations returns
``success=False`` together with the best step it saw (lowest phi meeting sufficient decrease, or
t = 0 when there was none).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["LineSearchResult", "armijo", "strong_wolfe"]

Phi = Callable[[float], tuple[float, float]]


@dataclass(slots=True)
class LineSearchResult:
    """Outcome of a line search.

    Attributes:
        t: Accepted step (on failure: the best step seen, possibly 0).
        f: ``phi(t)``.
        dphi: ``phi'(t)``.
        success: Whether the conditions hold at t.
        nfev: Evaluations of phi used.
        nonfinite: Whether some trial produced NaN/Inf.
        message: Why it failed (empty on success).
    """

    t: float
    f: float
    dphi: float
    success: bool
    nfev: int
    nonfinite: bool = False
    message: str = ""


def _finite(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b)


def cubic_minimizer(a: float, fa: float, da: float, b: float, fb: float, db: float) -> float:
    """Minimizer of the cubic interpolating phi and phi' at a and b (N&W eq. 3.59).

    ``d1 = da + db − 3(fa − fb)/(a − b)``, ``d2 = sign(b − a)·√(d1² − da·db)``,
    ``t = b − (b − a)(db + d2 − d1)/(db − da + 2·d2)``. Returns NaN when the cubic has no
    minimizer (negative discriminant) or the data are degenerate.

    Example:
        >>> round(cubic_minimizer(0.0, 0.0, -1.0, 2.0, 0.0, 1.0), 12)  # phi = t²/2 − t
        1.0
    """
    if a == b:
        return math.nan
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    if not (disc >= 0.0):
        return math.nan
    d2 = math.copysign(math.sqrt(disc), b - a)
    den = db - da + 2.0 * d2
    if den == 0.0:
        return math.nan
    return b - (b - a) * (db + d2 - d1) / den


def strong_wolfe(
    phi: Phi,
    f0: float,
    dphi0: float,
    t0: float = 1.0,
    *,
    c1: float = 1e-4,
    c2: float = 0.9,
    max_eval: int = 30,
    t_max: float = 1e10,
    f_noise: float = 0.0,
    guard_rise: bool = False,
    first: tuple[float, float] | None = None,
) -> LineSearchResult:
    """Find t satisfying the strong Wolfe conditions (N&W Algorithms 3.5 and 3.6).

    Bracketing phase: try t0, then extrapolate (the cubic through the last two trials, kept
    within ``t + [1.1, 10]·(t − t_prev)``) until a trial fails sufficient decrease, rises above
    the previous trial, or has phi' >= 0; then *zoom* inside the bracket [lo, hi] — lo the best
    step meeting sufficient decrease — with cubic interpolation (exact on quadratics). The cubic's
    minimizer is trusted once when it lands within 10 % of an end of the bracket; twice in a row,
    the trial moves 10 % inside (torch's safeguard); bisection when the cubic has no interior
    minimizer or a value is NaN/Inf.

    Args:
        phi: ``phi(t) -> (phi(t), phi'(t))``.
        f0: ``phi(0)``.
        dphi0: ``phi'(0)``; must be negative.
        t0: First trial step, > 0.
        c1: Sufficient-decrease constant, default 1e-4.
        c2: Curvature constant, default 0.9.
        max_eval: Budget of phi evaluations.
        t_max: Largest step tried.
        f_noise: Rounding level of phi values; sufficient decrease is tested as
            ``phi(t) <= f0 + c1·t·dphi0 + f_noise``. Near a minimizer, where the decrease
            ``c1·t·|dphi0|`` falls below the rounding error of f, this lets the curvature
            condition (which uses only derivatives, still accurate there) decide, instead of a
            one-ulp rise of f failing the search (the idea of Hager & Zhang's approximate Wolfe
            conditions). The caller passes a few ulps of ``|f0|``.
        guard_rise: When phi rose above phi(lo) at hi, also take the quadratic through phi(lo),
            phi'(lo) and phi(hi), and when the cubic's minimizer lies farther from lo, try the
            midpoint of the two (Moré & Thuente 1994, MINPACK ``dcstep`` case 1, as SciPy's
            ``dcsrch``). It helps where the first trial is a rough guess (BFGS and steepest
            descent start from the last decrease of f: Rosenbrock in 2-D takes SciPy's 39
            evaluations instead of 43); where a unit step is natural it is left off.
        first: ``(phi(t), phi'(t))`` at the first trial ``t = min(t0, t_max)`` when the caller
            has evaluated it already (it counts as one evaluation and is not repeated): the
            descent loop tests the first trial itself, without calling the search, and calls
            it only when that trial is not accepted.

    Returns:
        A :class:`LineSearchResult`.

    Example:
        >>> phi = lambda t: ((t - 3.0) ** 2, 2.0 * (t - 3.0))
        >>> r = strong_wolfe(phi, 9.0, -6.0, 1.0)
        >>> r.success, abs(r.dphi) <= 0.9 * 6.0, r.f <= 9.0 + 1e-4 * r.t * -6.0
        (True, True, True)
    """
    t = min(t0, t_max)
    if first is None and max_eval >= 1:  # the common case first: one trial, accepted
        f, d = phi(t)
        if (
            f <= f0 + c1 * t * dphi0 + f_noise
            and abs(d) <= -c2 * dphi0
            and math.isfinite(f)
            and math.isfinite(d)
        ):
            return LineSearchResult(t, f, d, True, 1)
        first = (f, d)
    return _strong_wolfe(phi, f0, dphi0, t, first, c1, c2, max_eval, t_max, f_noise, guard_rise)


def _strong_wolfe(phi, f0, dphi0, t, first, c1, c2, max_eval, t_max, f_noise, guard_rise):
    """:func:`strong_wolfe` after its first trial ``first = (phi(t), phi'(t))`` (None when
    ``max_eval < 1``): bracketing and zoom."""
    n = 0
    nonfinite = False
    best = (0.0, f0, dphi0)  # lowest phi meeting sufficient decrease

    def armijo_ok(t: float, f: float) -> bool:
        return f <= f0 + c1 * t * dphi0 + f_noise

    def result(t, f, d, ok, msg=""):
        return LineSearchResult(t, f, d, ok, n, nonfinite, msg)

    def zoom(lo, f_lo, d_lo, hi, f_hi, d_hi):
        nonlocal n, nonfinite, best
        near_end = False  # the previous trial landed within 10 % of an end of the bracket
        while n < max_eval:
            a, b = min(lo, hi), max(lo, hi)
            width = b - a
            if width <= 4.0 * 2.2e-16 * b:
                return result(*best, False, "bracket collapsed below machine precision")
            t = math.nan
            if _finite(f_hi, d_hi):
                t = cubic_minimizer(lo, f_lo, d_lo, hi, f_hi, d_hi)
                if guard_rise and f_hi > f_lo and math.isfinite(t):
                    # phi rose to hi: also the quadratic through phi(lo), phi'(lo), phi(hi);
                    # when the cubic lands farther from lo, take the midpoint of both
                    # (Moré–Thuente's rule, MINPACK dcstep case 1, as SciPy's dcsrch)
                    den = (f_lo - f_hi) / (hi - lo) + d_lo
                    t_q = lo + 0.5 * (d_lo / den) * (hi - lo) if den != 0 else math.nan
                    if math.isfinite(t_q) and abs(t - lo) >= abs(t_q - lo):
                        t = t + 0.5 * (t_q - t)
            margin = 0.1 * width
            if not a < t < b:  # no interior minimizer of the cubic: bisect
                t, near_end = 0.5 * (lo + hi), False
            elif t < a + margin or t > b - margin:
                # Trust the cubic once near an end (it is exact on quadratics); twice in a
                # row means little progress, so step 10 % inside (torch's safeguard).
                if near_end:
                    t = a + margin if t < a + margin else b - margin
                near_end = not near_end
            else:
                near_end = False
            f, d = phi(t)
            n += 1
            if not _finite(f, d):
                nonfinite = True
                hi, f_hi, d_hi = t, math.inf, math.nan
                continue
            if not armijo_ok(t, f) or f >= f_lo:
                hi, f_hi, d_hi = t, f, d
                continue
            if f < best[1]:
                best = (t, f, d)
            if abs(d) <= -c2 * dphi0:
                return result(t, f, d, True)
            if d * (hi - lo) >= 0.0:
                hi, f_hi, d_hi = lo, f_lo, d_lo
            lo, f_lo, d_lo = t, f, d
        return result(*best, False, "too many function evaluations in the zoom phase")

    t_prev, f_prev, d_prev = 0.0, f0, dphi0
    curvature = -c2 * dphi0
    while n < max_eval:
        if first is not None:
            f, d = first
            first = None
        else:
            f, d = phi(t)
        n += 1
        if not (math.isfinite(f) and math.isfinite(d)):
            nonfinite = True
            return zoom(t_prev, f_prev, d_prev, t, math.inf, math.nan)
        if f > f0 + c1 * t * dphi0 + f_noise or (n > 1 and f >= f_prev):  # not armijo_ok
            return zoom(t_prev, f_prev, d_prev, t, f, d)
        if abs(d) <= curvature:
            return LineSearchResult(t, f, d, True, n, nonfinite)
        best = (t, f, d) if f < best[1] else best
        if d >= 0.0:
            return zoom(t, f, d, t_prev, f_prev, d_prev)
        if t >= t_max:
            return result(*best, False, "step reached t_max")
        t_new = cubic_minimizer(t_prev, f_prev, d_prev, t, f, d)
        lo_ext, hi_ext = t + 1.1 * (t - t_prev), t + 10.0 * (t - t_prev)
        t_new = min(max(t_new, lo_ext), hi_ext) if math.isfinite(t_new) else hi_ext
        t_prev, f_prev, d_prev = t, f, d
        t = min(t_new, t_max)
    return result(*best, False, "too many function evaluations while bracketing")


def armijo(
    phi: Phi,
    f0: float,
    dphi0: float,
    t0: float = 1.0,
    *,
    c1: float = 1e-4,
    shrink: float = 0.5,
    max_eval: int = 40,
    f_noise: float = 0.0,
) -> LineSearchResult:
    """Backtracking until sufficient decrease ``phi(t) <= f0 + c1·t·dphi0`` (N&W Algorithm 3.1).

    Each rejected t is replaced by the minimizer of the quadratic through ``f0``, ``dphi0`` and
    ``phi(t)``, safeguarded to ``[0.1·t, shrink·t]`` (plain ``shrink·t`` after a NaN/Inf).

    Example:
        >>> r = armijo(lambda t: ((t - 3.0) ** 2, 2.0 * (t - 3.0)), 9.0, -6.0, 10.0)
        >>> r.success, r.t < 10.0
        (True, True)
    """
    t = t0
    nonfinite = False
    for n in range(1, max_eval + 1):
        f, d = phi(t)
        if not _finite(f, d):
            nonfinite = True
            t *= shrink
            continue
        if f <= f0 + c1 * t * dphi0 + f_noise:
            return LineSearchResult(t, f, d, True, n, nonfinite)
        den = 2.0 * (f - f0 - dphi0 * t)
        t_q = -dphi0 * t * t / den if den > 0 else shrink * t
        t = min(max(t_q, 0.1 * t), shrink * t)
    return LineSearchResult(
        0.0,
        f0,
        dphi0,
        False,
        max_eval,
        nonfinite,
        "no sufficient decrease within the evaluation budget",
    )
