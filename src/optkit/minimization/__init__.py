"""``scipy.optimize.minimize``'s contract, torch-first: :func:`minimize`, :func:`minimize_module`.

:data:`METHODS` is the registry of methods (also reachable as ``optkit.minimize.METHODS``).
Layout: ``api`` (entry points and the registry), ``objective`` (f, ∇f, ∇²f by autograd, user
callables or finite differences; caching, counters, the NumPy bridge), ``line_search`` (strong
Wolfe and Armijo on a scalar phi), ``directions`` (steepest descent, Newton, Newton-CG, BFGS,
L-BFGS), ``_loop`` (the one descent loop), ``_cpu_blas`` (NumPy/BLAS fast paths for small CPU
problems), ``first_order`` (gd … adamw through ``optkit.optim``), ``lbfgsb`` (bound-constrained
L-BFGS-B, :class:`LbfgsInvHessProduct`), ``more_thuente`` (its line search, MINPACK-2's
dcsrch), ``result`` (:class:`OptimizeResult`, :class:`Status`).
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
