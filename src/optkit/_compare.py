"""Running several methods on one problem, as data: what ``optkit compare`` draws and tabulates.

:func:`run_method` wraps :func:`optkit.minimization.minimize` with the trajectory recorded and a
wall-clock time for every iterate (taken in ``callback``, so the times include the callback's
own small cost, equally for every method). :func:`default_options` holds the step sizes the
command uses out of the box; :func:`parse_set` reads ``--set method.option=value``.

Default step sizes (``optkit compare`` without ``--set``):

============================  =====================================================
gd, momentum, nesterov        lr = 1/L, L = largest |eigenvalue| of ∇²f(x0), measured by
                              power iteration on Hessian-vector products (the classic safe
                              step for gradient descent; momentum 0.9 keeps it stable);
                              1e-3 when the curvature cannot be measured
rmsprop                       lr = 1e-2 (torch's default), alpha = 0.99
adam, adamw                   lr = 0.05 (each coordinate moves about lr per step), adamw
                              weight_decay = 0 (a minimizer of f, not of a regularized f)
newton, newton-cg, bfgs,      no step size: a strong-Wolfe line search tries t = 1 first
lbfgs
============================  =====================================================
"""

from __future__ import annotations

import ast
import difflib
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .minimization import METHODS, OptimizeResult, minimize
from .minimization.api import OPTION_ALIASES

__all__ = [
    "CURVATURE_STEP",
    "DEFAULT_METHODS",
    "FIXED_DEFAULTS",
    "Run",
    "default_options",
    "did_you_mean",
    "parse_set",
    "run_method",
    "warm_up",
]

#: The lecture's methods, first order then second order: the default of ``optkit compare``.
DEFAULT_METHODS = ("gd", "momentum", "rmsprop", "adam", "newton", "bfgs", "lbfgs")

#: Methods whose default lr is 1/L (L measured at x0).
CURVATURE_STEP = ("gd", "momentum", "nesterov")

#: Fixed defaults that differ from :data:`optkit.minimization.METHODS` (see the module docstring).
FIXED_DEFAULTS: dict[str, dict[str, Any]] = {
    "rmsprop": {"lr": 1e-2},
    "adam": {"lr": 0.05},
    "adamw": {"lr": 0.05, "weight_decay": 0.0},
}


def did_you_mean(word: str, valid: Iterable[str]) -> str:
    """``" (did you mean 'lbfgs'?)"`` when ``word`` is close to one of ``valid``, else ``""``.

    Example:
        >>> did_you_mean("lbgfs", ["bfgs", "lbfgs"])
        " (did you mean 'lbfgs'?)"
    """
    close = difflib.get_close_matches(word, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_methods(methods: Iterable[str]) -> list[str]:
    """Normalize method names (``newton_cg`` → ``newton-cg``); unknown ones raise ValueError."""
    out = []
    for m in methods:
        key = m.strip().lower().replace("_", "-")
        if key not in METHODS:
            raise ValueError(
                f"unknown method {m!r}{did_you_mean(key, METHODS)}; "
                f"valid methods: {', '.join(METHODS)}"
            )
        if key not in out:
            out.append(key)
    if not out:
        raise ValueError("no method given")
    return out


def default_options(method: str, curvature: float | None) -> dict[str, Any]:
    """The options ``optkit compare`` passes for ``method`` (see the module docstring).

    Args:
        method: A :data:`~optkit.minimization.METHODS` name.
        curvature: L, the largest |eigenvalue| of ∇²f(x0), or None if unknown.

    Example:
        >>> default_options("gd", curvature=1000.0)
        {'lr': 0.001}
        >>> default_options("adam", curvature=None)
        {'lr': 0.05}
    """
    if method in CURVATURE_STEP:
        ok = curvature is not None and math.isfinite(curvature) and curvature > 0
        return {"lr": 1.0 / curvature if ok else 1e-3}
    return dict(FIXED_DEFAULTS.get(method, {}))


def _literal(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    try:
        value = ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()  # a bare word such as armijo
    if isinstance(value, list):
        value = tuple(value)
    return value


def parse_set(items: Iterable[str], methods: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``method.option=value`` strings into ``{method: {option: value}}``.

    Values are Python literals (``0.05``, ``1e-3``, ``0.9,0.99`` → a tuple, ``true``) or bare
    words (``armijo``). The method must be one of ``methods`` and the option one it knows;
    value ranges are checked later by :func:`optkit.minimization.minimize`.

    Raises:
        ValueError: Malformed item, unknown method or unknown option (the message names it).

    Example:
        >>> parse_set(["adam.lr=0.1", "adam.betas=0.9,0.99"], ["adam"])
        {'adam': {'lr': 0.1, 'betas': (0.9, 0.99)}}
    """
    methods = list(methods)
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, text = item.partition("=")
        method, dot, option = key.strip().rpartition(".")
        if not eq or not dot or not method or not option or not text.strip():
            raise ValueError(f"bad --set {item!r}: expected METHOD.OPTION=VALUE, e.g. adam.lr=0.05")
        method = method.lower().replace("_", "-")
        if method not in METHODS:
            raise ValueError(
                f"bad --set {item!r}: unknown method {method!r}{did_you_mean(method, METHODS)}; "
                f"valid methods: {', '.join(METHODS)}"
            )
        if method not in methods:
            raise ValueError(
                f"bad --set {item!r}: method {method!r} is not being run "
                f"(--methods {','.join(methods)})"
            )
        known = METHODS[method].options
        if option not in known and OPTION_ALIASES.get(option) not in known:
            raise ValueError(
                f"bad --set {item!r}: {method} has no option {option!r}"
                f"{did_you_mean(option, known)}; "
                f"its options: {', '.join(known)}"
            )
        out.setdefault(method, {})[option] = _literal(text)
    return out


@dataclass
class Run:
    """One method's run, ready to plot and tabulate.

    Attributes:
        method: Method name.
        options: The options it ran with.
        result: The :class:`~optkit.minimization.OptimizeResult`.
        xs: Iterates, shape (nit + 1, n), float64.
        fs: f at each iterate, shape (nit + 1,).
        times: Seconds since the start at each iterate (0 for x0), shape (nit + 1,).
        seconds: Total wall time of the run.
        grad_norm: ‖∇f‖∞ at the returned point.
    """

    method: str
    options: dict[str, Any]
    result: OptimizeResult
    xs: np.ndarray
    fs: np.ndarray
    times: np.ndarray
    seconds: float
    grad_norm: float = field(default=math.nan)

    def as_dict(self, f_star: float | None = None) -> dict[str, Any]:
        """A JSON-ready summary (histories of f and time included, iterates only for n ≤ 10)."""
        r = self.result
        x = np.asarray(torch.as_tensor(r.x).detach().cpu().to(torch.float64)).reshape(-1)
        d = {
            "method": self.method,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()},
            "nit": r.nit,
            "nfev": r.nfev,
            "njev": r.njev,
            "nhev": r.nhev,
            "fun": _finite_or_none(r.fun),
            "gap": None if f_star is None else _finite_or_none(r.fun - f_star),
            "grad_inf_norm": _finite_or_none(self.grad_norm),
            "seconds": self.seconds,
            "status": int(r.status),
            "status_name": r.status.name,
            "success": r.success,
            "message": r.message,
            "x": [_finite_or_none(v) for v in x] if x.size <= 10 else None,
            "f_history": [_finite_or_none(v) for v in self.fs],
            "time_history": [float(t) for t in self.times],
        }
        return d


def _finite_or_none(v: float) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def warm_up(fun: Callable, x0: torch.Tensor, method: str) -> None:
    """Two untimed iterations, so one-off costs (imports, first kernels) stay out of the times."""
    try:
        minimize(fun, x0, method=method, options={"max_iter": 2})
    except (ValueError, TypeError):
        pass  # the timed run reports it


def run_method(
    fun: Callable,
    x0: torch.Tensor,
    method: str,
    options: Mapping[str, Any],
    on_iteration: Callable[[int], None] | None = None,
) -> Run:
    """Run ``minimize(fun, x0, method, options={**options, "record": True})`` and time it.

    Args:
        fun: The objective (torch, autograd derivatives).
        x0: Start.
        method: Method name.
        options: Options for :func:`~optkit.minimization.minimize` (``max_iter`` included).
        on_iteration: Called with the iteration number after each iteration (progress bars).

    Raises:
        ValueError: An option value out of range (from :func:`~optkit.minimization.minimize`).
    """
    stamps: dict[int, float] = {}
    start = time.perf_counter()

    def callback(intermediate_result: OptimizeResult) -> bool:
        interim = intermediate_result
        stamps[interim.nit] = time.perf_counter() - start
        if on_iteration is not None:
            on_iteration(interim.nit)
        return False

    result = minimize(
        fun, x0, method=method, callback=callback, options={**options, "record": True}
    )
    seconds = time.perf_counter() - start
    traj = result.trajectory
    xs = np.asarray(torch.as_tensor(traj.x).detach().cpu().to(torch.float64))
    xs = xs.reshape(len(xs), -1)
    fs = np.asarray(torch.as_tensor(traj.fun).detach().cpu().to(torch.float64))
    times = np.full(len(fs), np.nan)
    times[0] = 0.0
    times[-1] = seconds
    for k, t in stamps.items():
        if 0 < k < len(times) - 1:
            times[k] = t
    known = np.flatnonzero(np.isfinite(times))
    times = np.interp(np.arange(len(times)), known, times[known])
    g = torch.as_tensor(result.jac).detach().reshape(-1)
    gnorm = float(torch.linalg.vector_norm(g, math.inf)) if g.numel() else 0.0
    return Run(method, dict(options), result, xs, fs, times, seconds, gnorm)
