"""The Moré–Thuente line search (MINPACK-2 ``dcsrch`` / ``dcstep``), as L-BFGS-B and SciPy use it.

On phi(t) = f(x + t·d) with phi(0) = f₀, phi′(0) = g₀ < 0, find t in [stpmin, stpmax] with::

    phi(t)     <= f₀ + ftol·t·g₀          (sufficient decrease)
    |phi′(t)|  <= gtol·|g₀|                (curvature)

keeping an interval of uncertainty [stx, sty] that contains such a t once bracketed; each trial
comes from a safeguarded cubic or quadratic interpolation (:func:`dcstep`). Until a trial has
phi(t) <= f₀ + ftol·t·g₀ and phi′(t) >= 0 the search works on the modified function
psi(t) = phi(t) − f₀ − ftol·t·g₀ (Moré & Thuente §3). L-BFGS-B calls it with ftol = 10⁻³,
gtol = 0.9, xtol = 0.1.

Reference:
    J. J. Moré and D. J. Thuente, "Line search algorithms with guaranteed sufficient
    decrease", ACM TOMS 20(3), 286–307 (1994).
"""

from __future__ import annotations

import math

__all__ = ["MoreThuente", "dcstep"]


def dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
    """One safeguarded step of the Moré–Thuente search: the new trial and the updated interval.

    Returns (stx, fx, dx, sty, fy, dy, stp, brackt). Cases as Moré & Thuente §4: 1) higher f,
    2) derivative sign change, 3) smaller ``|derivative|``, 4) otherwise.
    """
    sgnd = dp * (dx / abs(dx)) if dx != 0.0 else math.nan  # NaN (no case 2) as MINPACK-2
    if fp > fx:  # case 1: cubic or the midpoint toward the quadratic minimizer
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max((theta / s) ** 2 - (dx / s) * (dp / s), 0.0))
        if stp < stx:
            gamma = -gamma
        p = (gamma - dx) + theta
        q = ((gamma - dx) + gamma) + dp
        stpc = stx + (p / q) * (stp - stx)
        stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
        stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
        brackt = True
    elif sgnd < 0.0:  # case 2: cubic or secant, whichever is farther from stp
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max((theta / s) ** 2 - (dx / s) * (dp / s), 0.0))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = ((gamma - dp) + gamma) + dx
        stpc = stp + (p / q) * (stx - stp)
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
        brackt = True
    elif abs(dp) < abs(dx):  # case 3: the cubic only if it tends to infinity in the step's way
        theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
        s = max(abs(theta), abs(dx), abs(dp))
        gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
        if stp > stx:
            gamma = -gamma
        p = (gamma - dp) + theta
        q = (gamma + (dx - dp)) + gamma
        r = p / q
        if r < 0.0 and gamma != 0.0:
            stpc = stp + r * (stx - stp)
        elif stp > stx:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp + (dp / (dp - dx)) * (stx - stp)
        if brackt:
            stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
            if stp > stx:
                stpf = min(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = max(stp + 0.66 * (sty - stp), stpf)
        else:
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            stpf = max(stpmin, min(stpmax, stpf))
    else:  # case 4: cubic through stp and sty, or the end of the interval
        if brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), abs(dy), abs(dp))
            gamma = s * math.sqrt(max((theta / s) ** 2 - (dy / s) * (dp / s), 0.0))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        elif stp > stx:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx:
        sty, fy, dy = stp, fp, dp
    else:
        if sgnd < 0.0:
            sty, fy, dy = stx, fx, dx
        stx, fx, dx = stp, fp, dp
    return stx, fx, dx, sty, fy, dy, stpf, brackt


class MoreThuente:
    """MINPACK-2's ``dcsrch`` as a stateful object: ``start``, then ``step`` per evaluation.

    ``step(f, g)`` takes phi and phi′ at the trial ``self.stp`` and returns ``"fg"`` (evaluate
    at the new ``self.stp``), ``"converged"`` (both conditions of the module docstring hold
    at the trial) or ``"warning"`` (rounding errors, the interval below xtol, or the trial at
    stpmax / stpmin: the caller accepts the last trial, as L-BFGS-B does).

    Example:
        >>> phi = lambda t: ((t - 3.0) ** 2, 2.0 * (t - 3.0))  # f₀ = 9, g₀ = −6
        >>> ls = MoreThuente()  # gtol = 0.9: t = 1 already meets both conditions
        >>> ls.start(9.0, -6.0, stp=1.0, stpmin=0.0, stpmax=100.0)
        >>> ls.step(*phi(ls.stp)), ls.stp
        ('converged', 1.0)
        >>> ls = MoreThuente(gtol=0.01)  # |phi′(t)| <= 0.06: t within 0.03 of 3
        >>> ls.start(9.0, -6.0, stp=1.0, stpmin=0.0, stpmax=100.0)
        >>> while (task := ls.step(*phi(ls.stp))) == "fg":
        ...     pass
        >>> task, abs(ls.stp - 3.0) <= 0.03
        ('converged', True)
    """

    def __init__(self, ftol=1e-3, gtol=0.9, xtol=0.1) -> None:
        self.ftol, self.gtol, self.xtol = ftol, gtol, xtol

    def start(self, f: float, g: float, stp: float, stpmin: float, stpmax: float) -> None:
        self.stp, self.stpmin, self.stpmax = stp, stpmin, stpmax
        self.brackt, self.stage = False, 1
        self.finit, self.ginit = f, g
        self.gtest = self.ftol * g
        self.width = stpmax - stpmin
        self.width1 = self.width / 0.5
        self.stx, self.fx, self.gx = 0.0, f, g
        self.sty, self.fy, self.gy = 0.0, f, g
        self.stmin, self.stmax = 0.0, stp + 4.0 * stp

    def accepts_first(self, f0: float, g0: float, stp: float, stpmax: float, f, g) -> bool:
        """Whether :meth:`step` would end the search at its first trial ``stp`` (phi = f,
        phi′ = g there; phi(0) = f0, phi′(0) = g0) — "converged", or "warning" at stpmax —,
        without :meth:`start`: a caller tests its first trial here and starts the search only
        when it fails. No other "warning" can occur at a first trial (nothing is bracketed
        yet, and stp > stpmin = 0)."""
        ftest = f0 + stp * (self.ftol * g0)
        return f <= ftest and (abs(g) <= self.gtol * -g0 or (stp == stpmax and g <= self.ftol * g0))

    def step(self, f: float, g: float) -> str:
        stp = self.stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        task = "fg"
        if self.brackt and (stp <= self.stmin or stp >= self.stmax):
            task = "warning"
        if self.brackt and self.stmax - self.stmin <= self.xtol * self.stmax:
            task = "warning"
        if stp == self.stpmax and f <= ftest and g <= self.gtest:
            task = "warning"
        if stp == self.stpmin and (f > ftest or g >= self.gtest):
            task = "warning"
        if f <= ftest and abs(g) <= self.gtol * (-self.ginit):
            task = "converged"
        if task != "fg":
            return task
        gt = self.gtest
        if self.stage == 1 and f <= self.fx and f > ftest:  # the modified function ψ
            out = dcstep(
                self.stx, self.fx - self.stx * gt, self.gx - gt,
                self.sty, self.fy - self.sty * gt, self.gy - gt,
                stp, f - stp * gt, g - gt, self.brackt, self.stmin, self.stmax,
            )  # fmt: skip
            stx, fxm, gxm, sty, fym, gym, stp, self.brackt = out
            self.stx, self.sty = stx, sty
            self.fx, self.fy = fxm + stx * gt, fym + sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            out = dcstep(
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy,
                stp, f, g, self.brackt, self.stmin, self.stmax,
            )  # fmt: skip
            self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, self.brackt = out
        if self.brackt:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin, self.stmax = min(self.stx, self.sty), max(self.stx, self.sty)
        else:
            self.stmin = stp + 1.1 * (stp - self.stx)
            self.stmax = stp + 4.0 * (stp - self.stx)
        stp = min(max(stp, self.stpmin), self.stpmax)
        if self.brackt and (
            stp <= self.stmin
            or stp >= self.stmax
            or self.stmax - self.stmin <= self.xtol * self.stmax
        ):
            stp = self.stx
        self.stp = stp
        return "fg"
