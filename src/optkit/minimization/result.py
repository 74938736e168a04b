"""The result of :func:`optkit.minimize`: :class:`OptimizeResult` and the :class:`Status` table.

Status numbers follow SciPy where SciPy has one (0 success, 1 iteration limit, 2 line search
failure / precision loss, 3 non-finite value, 99 stopped by the callback). A status is *returned*,
never raised: numerical trouble ends the run with ``success=False`` and the best point reached.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = ["OptimizeResult", "Status", "Trajectory"]


class Status(enum.IntEnum):
    """Why a run stopped. Each member carries its message in ``.message``.

    Example:
        >>> Status.MAX_ITER.message
        'Maximum number of iterations has been exceeded.'
        >>> int(Status.NONFINITE)
        3
    """

    SUCCESS = 0, "Optimization terminated successfully."
    MAX_ITER = 1, "Maximum number of iterations has been exceeded."
    LINE_SEARCH = (
        2,
        "Desired error not necessarily achieved due to precision loss: the line search "
        "found no acceptable step.",
    )
    NONFINITE = 3, "A non-finite value (NaN or Inf) was encountered in the objective or gradient."
    CALLBACK = 99, "`callback` raised `StopIteration`."

    def __new__(cls, value: int, message: str) -> Status:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.message = message
        return obj


@dataclass
class Trajectory:
    """Iterates recorded with ``options={"record": True}``.

    Attributes:
        x: Stacked iterates, shape ``(nit + 1, *x0.shape)``; row 0 is ``x0`` (for L-BFGS-B
            with bounds, x0 projected on the box, where the run starts).
        fun: Objective values at those iterates, shape ``(nit + 1,)``.
    """

    x: Any
    fun: Any

    def __len__(self) -> int:
        return len(self.fun)


class OptimizeResult(dict):
    """What :func:`optkit.minimize` returns: SciPy's ``OptimizeResult``, a dict with attribute
    access (``res.x`` is ``res["x"]``; ``res.keys()`` lists the fields present).

    Attributes:
        x: The solution, same shape, dtype and kind as ``x0`` (a torch tensor for a tensor
            ``x0``, a NumPy array for a NumPy / list ``x0``). On failure, the best point reached.
        fun: ``f(x)`` as a Python float.
        jac: ``∇f(x)``, same shape and kind as ``x``.
        hess_inv: The inverse-Hessian approximation at ``x``: an ``n × n`` matrix (bfgs, NumPy
            array or tensor as ``x``) or an
            :class:`~optkit.minimization.lbfgsb.LbfgsInvHessProduct` (lbfgs, L-BFGS-B); absent
            for the other methods.
        nit: Iterations performed.
        nfev: Objective evaluations (each autograd evaluation of f and ∇f together counts one
            here and one in ``njev``; finite differences count each call of ``fun``).
        njev: Gradient evaluations.
        nhev: Hessian evaluations (a dense Hessian or a Hessian-vector product counts one).
        status: A :class:`Status` (an ``int`` subclass, SciPy's numbers).
        success: ``status == Status.SUCCESS``.
        message: The status message, with a detail when there is one.
        trajectory: A :class:`Trajectory` when ``record=True``, else ``None``.
        allvecs: The iterates as a list, with ``return_all=True`` (SciPy's option).
        method: The method name.

    Example:
        >>> r = OptimizeResult(x=1.0, fun=0.5)
        >>> r.fun, r["x"], sorted(r)
        (0.5, 1.0, ['fun', 'x'])
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(name) from exc

    __setattr__ = dict.__setitem__  # type: ignore[assignment]
    __delattr__ = dict.__delitem__  # type: ignore[assignment]

    def __dir__(self) -> list[str]:
        return list(self.keys())

    def __repr__(self) -> str:
        if not self:
            return "OptimizeResult()"
        width = max(map(len, self)) + 1
        lines = []
        for k, v in self.items():
            text = repr(v) if not isinstance(v, Status) else f"{int(v)}"
            text = text.replace("\n", "\n" + " " * (width + 2))
            lines.append(f"{k.rjust(width)}: {text}")
        return "\n".join(lines)
