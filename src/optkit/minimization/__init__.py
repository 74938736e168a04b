"""SciPy-style minimization on torch: :func:`minimize`, :func:`minimize_module`.

Layout: ``api`` (entry points and the :data:`METHODS` registry), ``objective`` (f, ∇f, ∇²f by
autograd or user callables, caching, counters, NumPy bridge), ``line_search`` (strong Wolfe and
Armijo on a scalar phi), ``directions`` (steepest descent, Newton, Newton-CG, BFGS, L-BFGS),
``_loop`` (the one descent loop), ``first_order`` (gd … adamw through ``optkit.optim``),
``lbfgsb`` (L-BFGS-B with bounds, :class:`LbfgsInvHessProduct`), ``more_thuente`` (its
line search, MINPACK-2's dcsrch), ``result`` (:class:`OptimizeResult`, :class:`Status`).
"""

from .api import METHODS, Method, minimize, minimize_module
from .lbfgsb import LbfgsInvHessProduct, minimize_lbfgsb
from .result import OptimizeResult, Status, Trajectory

__all__ = [
    "METHODS",
    "LbfgsInvHessProduct",
    "Method",
    "OptimizeResult",
    "Status",
    "Trajectory",
    "minimize",
    "minimize_lbfgsb",
    "minimize_module",
]
