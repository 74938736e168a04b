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
    CALLBACK = 99, "Stopped by the callback."

    def __new__(cls, value: int, message: str) -> Status:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.message = message
        return obj


@dataclass
class Trajectory:
    """Iterates recorded with ``options={"record": True}``.

    Attributes:
        x: Stacked iterates, shape ``(nit + 1, *x0.shape)``; row 0 is ``x0``.
        fun: Objective values at those iterates, shape ``(nit + 1,)``.
    """

    x: Any
    fun: Any

    def __len__(self) -> int:
        return len(self.fun)


@dataclass
class OptimizeResult:
    """What :func:`optkit.minimize` returns (the fields of SciPy's ``OptimizeResult``).

    Attributes:
        x: The solution, same shape, dtype and kind as ``x0`` (a torch tensor for a tensor
            ``x0``, a NumPy array for a NumPy / list ``x0``). On failure, the best point reached.
        fun: ``f(x)`` as a Python float.
        jac: ``∇f(x)``, same shape and kind as ``x``.
        nit: Iterations performed.
        nfev: Objective evaluations (each autograd evaluation of f and ∇f together counts one
            here and one in ``njev``).
        njev: Gradient evaluations.
        nhev: Hessian evaluations (a dense Hessian or a Hessian-vector product counts one).
        status: A :class:`Status` (an ``int`` subclass, SciPy's numbers).
        success: ``status == Status.SUCCESS``.
        message: The status message, with a detail when there is one.
        trajectory: A :class:`Trajectory` when ``record=True``, else ``None``.
        method: The method name.
        hess_inv: L-BFGS-B's inverse-Hessian operator
            (:class:`~optkit.minimization.lbfgsb.LbfgsInvHessProduct`), else None.
    """

    x: Any
    fun: float
    jac: Any
    nit: int
    nfev: int
    njev: int
    nhev: int
    status: Status
    success: bool
    message: str
    trajectory: Trajectory | None = None
    method: str = ""
    hess_inv: Any = None

    def __repr__(self) -> str:
        return (
            f"OptimizeResult(method={self.method!r}, success={self.success}, "
            f"status={int(self.status)}, fun={self.fun:.6g}, nit={self.nit}, nfev={self.nfev}, "
            f"njev={self.njev}, nhev={self.nhev}, message={self.message!r})"
        )
