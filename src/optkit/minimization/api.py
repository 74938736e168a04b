"""``optkit.minimize`` and ``optkit.minimize_module``; the :data:`METHODS` registry.

The registry is data: for each method, what it needs from the objective (gradient only, dense
Hessian, or Hessian-vector products), its options under SciPy's names with their defaults, its
other spellings (SciPy's), and the function that runs it. :func:`minimize` validates every option
from this table and dispatches with one lookup.

How a function is recognized as NumPy or torch: by ``x0``. A torch tensor ``x0`` means a torch
function — derivatives by autograd when ``jac`` is None, tensors in and out, dtype and device
kept. A NumPy array, list or number ``x0`` means a NumPy function, called with NumPy arrays as
SciPy calls it — finite differences when ``jac`` is None (SciPy's ``'2-point'`` with the absolute
step ``eps``), NumPy out. No probe call is made: the kind never depends on what ``fun`` happens
to return.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .._checks import check_choice, check_int, check_number, check_pair
from . import directions
from ._loop import LoopResult, descent_loop
from .first_order import first_order_loop
from .lbfgsb import LbfgsInvHessProduct
from .objective import (
    FD_SCHEMES,
    AutogradObjective,
    CallableObjective,
    Objective,
    UserHessianObjective,
)
from .result import OptimizeResult, Status, Trajectory

__all__ = ["METHODS", "Method", "minimize", "minimize_module"]

_SQRT_EPS = float(np.sqrt(np.finfo(float).eps))  # SciPy's default finite-difference step


# --- option checks: one row per option name, shared by every method that has it ---------------
def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _flag(name: str, value: Any) -> bool:  # SciPy's disp: a bool, or an int (iprint-like)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return check_int(name, value, 0) > 0


def _max_iter(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, 0)


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, 1)


def _norm(name: str, value: Any) -> float:
    v = float(value) if isinstance(value, (int, float, np.number)) else None
    if v is None or math.isnan(v) or isinstance(value, bool):
        raise ValueError(f"{name} must be a number (inf, -inf or an order p), got {value!r}")
    return v


def _rel_step(name: str, value: Any) -> Any:
    if value is None:
        return None
    return check_number(name, value, 0.0, low_open=True)


def _any(name: str, value: Any) -> Any:  # validated where it is used (shape known there)
    return value


OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "maxiter": _max_iter,
    "gtol": lambda n, v: check_number(n, v, 0.0),
    "ftol": lambda n, v: check_number(n, v, 0.0),
    "xtol": lambda n, v: check_number(n, v, 0.0),
    "xrtol": lambda n, v: check_number(n, v, 0.0),
    "norm": _norm,
    "record": _bool,
    "disp": _flag,
    "return_all": _bool,
    "iprint": lambda n, v: check_int(n, v, -(10**9)),
    "lr": lambda n, v: check_number(n, v, 0.0, low_open=True),
    "momentum": lambda n, v: check_number(n, v, 0.0, 1.0, high_open=True),
    "dampening": lambda n, v: check_number(n, v, 0.0, 1.0),
    "alpha": lambda n, v: check_number(n, v, 0.0, 1.0, high_open=True),
    "betas": lambda n, v: check_pair(n, v, 0.0, 1.0),
    "eps": lambda n, v: check_number(n, v, 0.0),
    "finite_diff_rel_step": _rel_step,
    "weight_decay": lambda n, v: check_number(n, v, 0.0),
    "amsgrad": _bool,
    "centered": _bool,
    "maxcor": lambda n, v: check_int(n, v, 1),
    "maxfun": _optional_int,
    "maxls": lambda n, v: check_int(n, v, 1),
    "max_cg": _optional_int,
    "h0": lambda n, v: check_choice(n, v, ("scaled", "identity")),
    "hess_inv0": _any,
    "line_search": lambda n, v: check_choice(n, v, ("strong-wolfe", "armijo")),
    "c1": lambda n, v: check_number(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "c2": lambda n, v: check_number(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "engine": lambda n, v: check_choice(n, v, ("auto", "c", "numpy")),
}

#: optkit's earlier option names, accepted as aliases of SciPy's (used by existing callers:
#: ``max_iter`` by ``optkit compare`` / ``advise`` and user scripts, ``history`` by
#: ``optkit compare --options lbfgs.history=…`` and the benchmarks).
OPTION_ALIASES = {"max_iter": "maxiter", "history": "maxcor"}

#: Other spellings of method names (SciPy's, and SciPy-style ones), lower case.
METHOD_ALIASES = {"l-bfgs": "lbfgs"}

COMMON_OPTIONS = {"maxiter": None, "gtol": 1e-5, "ftol": 0.0, "disp": False, "record": False}
LINE_SEARCH_OPTIONS = {"line_search": "strong-wolfe", "c1": 1e-4, "c2": 0.9}
FD_OPTIONS = {"eps": _SQRT_EPS, "finite_diff_rel_step": None}


@dataclass(frozen=True)
class Method:
    """One row of :data:`METHODS`.

    Attributes:
        name: The ``method=`` string (optkit's name; case and ``_``/``-`` are ignored).
        summary: One line for listings (``optkit advise``, docs).
        needs: ``"grad"``, ``"hess"`` (dense Hessian) or ``"hessp"`` (Hessian-vector products).
        options: Method options and defaults (the common ones included), under SciPy's names.
        max_iter: Default iteration limit as a function of n.
        run: ``run(objective, x0_flat, options, report) -> LoopResult``.
        hyper: Options passed on to the ``optkit.optim`` optimizer (first-order methods).
        scipy: SciPy's spelling of the method, when SciPy has it.
        tol: The options that ``minimize(tol=...)`` sets (SciPy's mapping).
        bounds: Whether the method takes ``bounds``.
        numpy_path: Whether NumPy functions run on the NumPy/BLAS fast path (gradient-only
            methods of the descent loop).
    """

    name: str
    summary: str
    needs: str
    options: Mapping[str, Any]
    max_iter: Callable[[int], int]
    run: Callable[..., LoopResult]
    hyper: tuple[str, ...] = field(default=())
    scipy: str | None = None
    tol: tuple[str, ...] = ("gtol",)
    bounds: bool = False
    numpy_path: bool = False


def _loop_options(o: dict) -> dict:
    out = {"max_iter": o["maxiter"], "gtol": o["gtol"], "ftol": o["ftol"], "record": o["record"]}
    for k in ("line_search", "c1", "c2", "xtol", "xrtol", "norm"):
        if k in o:
            out[k] = o[k]
    return out


def _descent(make: Callable[[dict], Any], **fixed) -> Callable[..., LoopResult]:
    def run(objective, x0, o, report):
        direction = make(o)
        out = descent_loop(objective, x0, direction, report=report, **_loop_options(o), **fixed)
        out.hess_inv = _inverse_hessian(direction, x0)
        return out

    return run


def _inverse_hessian(direction, x0) -> Any:
    if isinstance(direction, directions.BFGS):
        H = direction.H
        if H is None:  # no update yet: H₀ (SciPy returns its identity too)
            n = x0.shape[0]
            H = (
                np.eye(n, dtype=x0.dtype)
                if isinstance(x0, np.ndarray)
                else torch.eye(n, dtype=x0.dtype, device=x0.device)
            )
        return H
    if isinstance(direction, directions.LBFGS):
        H = direction.inverse_hessian()
        if H is None:
            empty = (
                np.empty((0, x0.shape[0]), dtype=x0.dtype)
                if isinstance(x0, np.ndarray)
                else x0.new_empty((0, x0.shape[0]))
            )
            H = LbfgsInvHessProduct(empty, empty, 1.0, numpy=isinstance(x0, np.ndarray))
        return H
    return None


def _first_order(name: str, hyper: tuple[str, ...]) -> Callable[..., LoopResult]:
    def run(objective, x0, o, report):
        if o.get("line_search") is not None:  # gd with a line search: steepest descent
            return _descent(lambda _: directions.SteepestDescent())(objective, x0, o, report)
        return first_order_loop(
            objective,
            x0,
            name,
            {k: o[k] for k in hyper},
            max_iter=o["maxiter"],
            gtol=o["gtol"],
            ftol=o["ftol"],
            record=o["record"],
            report=report,
        )

    return run


def _first_order_method(name, summary, defaults, extra=None) -> Method:
    hyper = tuple(defaults)
    return Method(
        name,
        summary,
        "grad",
        {**COMMON_OPTIONS, "return_all": False, **defaults, **(extra or {})},
        lambda n: 1000,
        _first_order(name, hyper),
        hyper,
    )


def _bfgs(o: dict) -> directions.BFGS:
    return directions.BFGS(o["h0"], o["hess_inv0"])


def _run_lbfgsb(objective, x0, o, report, bounds=None) -> LoopResult:
    """L-BFGS-B, with or without bounds: :func:`optkit.minimization.lbfgsb.minimize_lbfgsb`
    (without bounds every bound is infinite, and the iteration is L-BFGS with B₀ = θI and
    L-BFGS-B's line search and stopping tests, as SciPy's ``L-BFGS-B`` without bounds)."""
    from .lbfgsb import minimize_lbfgsb

    if bounds is None:  # (minimize_lbfgsb casts the bounds to x0's dtype)
        n = x0.size if isinstance(x0, np.ndarray) else x0.numel()
        lower, upper = np.full(n, -np.inf), np.full(n, np.inf)
    else:
        lower, upper = (b.cpu().numpy() for b in bounds)  # the iteration runs in NumPy
        if isinstance(objective, CallableObjective):  # finite differences stay inside the box
            objective.bounds = (lower, upper)
    stopped = []  # (minimize_lbfgsb starts from x0 clipped to the box, as SciPy)
    step = [0]

    def callback(intermediate_result):
        step[0] += 1
        if report is not None and report(
            intermediate_result.x, intermediate_result.fun, None, step[0]
        ):
            stopped.append(True)
            raise StopIteration

    trace: list | None = [] if o["record"] else None
    r = minimize_lbfgsb(
        objective,
        x0,
        lower,
        upper,
        maxcor=o["maxcor"],
        ftol=o["ftol"],
        gtol=o["gtol"],
        maxiter=o["maxiter"],
        maxfun=o["maxfun"],
        maxls=o["maxls"],
        callback=callback if report is not None else None,
        engine=o.get("engine", "auto"),
        _trace=trace,
    )
    status = Status.CALLBACK if stopped else Status(int(r.status))
    out = LoopResult(r.x, float(r.fun), r.jac, int(r.nit), status)
    out.message = "" if stopped else str(r.get("message", ""))
    out.hess_inv = r.get("hess_inv")
    if trace is not None:
        out.xs, out.fs = [x for x, _ in trace], [f for _, f in trace]
    return out


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        _first_order_method(
            "gd",
            "gradient descent, fixed step lr (or a line search: line_search=...)",
            {"lr": 1e-3, "weight_decay": 0.0},
            {"line_search": None, "c1": 1e-4, "c2": 0.9},
        ),
        _first_order_method(
            "momentum",
            "heavy-ball momentum (optkit.SGD)",
            {"lr": 1e-3, "momentum": 0.9, "dampening": 0.0, "weight_decay": 0.0},
        ),
        _first_order_method(
            "nesterov",
            "Nesterov momentum (optkit.SGD, nesterov=True)",
            {"lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0},
        ),
        _first_order_method(
            "rmsprop",
            "RMSprop (optkit.RMSprop)",
            {
                "lr": 1e-2,
                "alpha": 0.99,
                "eps": 1e-8,
                "weight_decay": 0.0,
                "momentum": 0.0,
                "centered": False,
            },
        ),
        _first_order_method(
            "adam",
            "Adam (optkit.Adam)",
            {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "amsgrad": False},
        ),
        _first_order_method(
            "adamw",
            "AdamW, decoupled weight decay (optkit.AdamW)",
            {
                "lr": 1e-3,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 1e-2,
                "amsgrad": False,
            },
        ),
        Method(
            "newton",
            "Newton, dense Hessian by autograd, Cholesky with added multiple of I",
            "hess",
            {**COMMON_OPTIONS, "return_all": False, **LINE_SEARCH_OPTIONS, **FD_OPTIONS},
            lambda n: 200 * n,
            _descent(lambda o: directions.Newton()),
        ),
        Method(
            "newton-cg",
            "truncated Newton: CG on Hessian-vector products (double backward)",
            "hessp",
            {
                **COMMON_OPTIONS,
                "return_all": False,
                "xtol": 0.0,  # SciPy's 1e-5 stops on the step; optkit on gtol unless given
                **LINE_SEARCH_OPTIONS,
                **FD_OPTIONS,
                "max_cg": None,
            },
            lambda n: 200 * n,
            _descent(lambda o: directions.NewtonCG(o["max_cg"])),
            scipy="Newton-CG",
            tol=("xtol", "gtol"),
        ),
        Method(
            "bfgs",
            "BFGS, dense inverse-Hessian approximation, O(n²) memory",
            "grad",
            {
                **COMMON_OPTIONS,
                "return_all": False,
                "norm": math.inf,
                "xrtol": 0.0,
                **LINE_SEARCH_OPTIONS,
                **FD_OPTIONS,
                "hess_inv0": None,
                "h0": "identity",
            },
            lambda n: 200 * n,
            _descent(_bfgs),
            scipy="BFGS",
            numpy_path=True,
        ),
        Method(
            "lbfgs",
            "L-BFGS, two-loop recursion over the last `maxcor` pairs, O(m·n)",
            "grad",
            {
                **COMMON_OPTIONS,
                "return_all": False,
                **LINE_SEARCH_OPTIONS,
                **FD_OPTIONS,
                "maxcor": 10,
            },
            lambda n: 15000,
            _descent(lambda o: directions.LBFGS(o["maxcor"])),
            numpy_path=True,
        ),
        Method(
            "l-bfgs-b",
            "L-BFGS-B (Byrd, Lu, Nocedal & Zhu): L-BFGS with box bounds, SciPy's algorithm",
            "grad",
            {
                "maxcor": 10,
                "ftol": 2.2204460492503131e-09,
                "gtol": 1e-5,
                "eps": 1e-8,
                "maxfun": 15000,
                "maxiter": 15000,
                "maxls": 20,
                "finite_diff_rel_step": None,
                "iprint": -1,
                "disp": False,
                "record": False,
                "engine": "auto",
            },
            lambda n: 15000,
            _run_lbfgsb,
            scipy="L-BFGS-B",
            tol=("ftol", "gtol"),
            bounds=True,
            numpy_path=True,
        ),
    )
}


def _method(method: Any, bounds: Any) -> Method:
    if method is None:  # SciPy's default: BFGS, or L-BFGS-B when there are bounds
        return METHODS["bfgs" if bounds is None else "l-bfgs-b"]
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    key = method.lower().replace("_", "-")
    key = METHOD_ALIASES.get(key, key)
    if key not in METHODS:
        names = [m.scipy or m.name for m in METHODS.values()]
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(names)}")
    return METHODS[key]


def _options(spec: Method, options: Any, tol: Any, n: int) -> dict:
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    given: dict[str, Any] = {}
    for k, v in options.items():
        key = OPTION_ALIASES.get(k, k)
        if key in given:
            raise ValueError(f"options: {k!r} is another name of {key!r}; give one of them")
        given[key] = (k, v)
    unknown = [k for k, (orig, _) in given.items() if k not in spec.options]
    if unknown:
        raise ValueError(
            f"unknown option(s) for method {spec.name!r}: "
            f"{', '.join(repr(given[k][0]) for k in unknown)}; "
            f"valid options: {', '.join(spec.options)}"
        )
    o = dict(spec.options)
    if tol is not None:
        t = check_number("tol", tol, 0.0)
        for k in spec.tol:
            o[k] = t
    for k, (orig, v) in given.items():
        if not (k == "line_search" and v is None and spec.options[k] is None):
            v = OPTION_CHECKS[k](f"options[{orig!r}]", v)
        o[k] = v
    if spec.name == "newton-cg" and "xtol" in given and "gtol" not in given and tol is None:
        o["gtol"] = 0.0  # SciPy's Newton-CG call: its step test alone decides
    if "c1" in o and "c2" in o and not o["c1"] < o["c2"]:
        raise ValueError(f"options: need c1 < c2, got c1={o['c1']} and c2={o['c2']}")
    if o["maxiter"] is None:
        o["maxiter"] = spec.max_iter(n)
    return o


def _prepare_x0(x0: Any) -> tuple[torch.Tensor, str, tuple[int, ...]]:
    """Return (flat float copy, kind "torch"/"numpy", shape)."""
    if isinstance(x0, torch.Tensor):
        kind, t = "torch", x0.detach()
        if t.is_complex():
            raise TypeError("x0 must be real, got a complex tensor")
        if not t.is_floating_point():
            t = t.to(torch.get_default_dtype())
    else:
        kind = "numpy"
        try:
            arr = np.asarray(x0)
        except Exception as exc:
            raise TypeError(f"x0 must be a tensor, array or list of numbers: {exc}") from exc
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"x0 must hold real numbers, got dtype {arr.dtype}")
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        if arr.size == 0:
            raise ValueError("x0 must have at least one element")
        flat = arr.reshape(-1).copy()  # checked and converted in NumPy: no torch call per run
        if not np.isfinite(flat).all():
            raise ValueError("x0 must be finite (it contains NaN or Inf)")
        return torch.from_numpy(flat), kind, arr.shape if arr.ndim > 0 else (1,)
    if t.numel() == 0:
        raise ValueError("x0 must have at least one element")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("x0 must be finite (it contains NaN or Inf)")
    shape = tuple(t.shape) if t.dim() > 0 else (1,)  # a number x0 is SciPy's 1-element x
    return t.reshape(-1).clone(), kind, shape


def _converter(kind: str, shape: tuple[int, ...]) -> Callable[[Any], Any]:
    if kind == "torch":
        return lambda v: v.detach().view(shape)
    if len(shape) == 1:  # flat NumPy vectors (the NumPy path) are handed over as copies

        def to_user(v):
            return v.copy() if isinstance(v, np.ndarray) else v.detach().cpu().numpy().copy()

        return to_user
    return lambda v: (
        (v if isinstance(v, np.ndarray) else v.detach().cpu().numpy()).reshape(shape).copy()
    )


def _with_args(fn: Callable | None, args: tuple, extra: int = 0) -> Callable | None:
    """``fn(x, [v,] *args)`` as a function of x (and v)."""
    if fn is None or not callable(fn) or not args:
        return fn
    if extra:
        return lambda x, v: fn(x, v, *args)
    return lambda x: fn(x, *args)


def _check_jac(jac: Any) -> Any:
    if jac is False:
        return None
    if jac is None or jac is True or callable(jac) or jac in FD_SCHEMES:
        return jac
    raise TypeError(
        "jac must be None (autograd for torch functions, finite differences for NumPy ones), "
        f"True (fun returns (f, g)), a callable or one of {', '.join(map(repr, FD_SCHEMES))}; "
        f"got {jac!r}"
    )


def _check_hess(name: str, h: Any) -> Any:
    if h is None or (callable(h) and not inspect.isclass(h)):
        if h is not None and hasattr(h, "initialize") and hasattr(h, "update"):
            raise TypeError(f"{name}: HessianUpdateStrategy objects are not supported")
        return h
    if name == "hess" and h in FD_SCHEMES:
        return None  # finite differences of the gradient: optkit's default without hess
    raise TypeError(f"{name} must be callable or None, got {type(h).__name__}")


def _objective(fun, jac, hess, hessp, spec, o, x0, kind, shape, numpy_flat) -> Objective:
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if spec.needs == "grad" and (hess is not None or hessp is not None):
        warnings.warn(
            f"method {spec.name!r} does not use hess / hessp", RuntimeWarning, stacklevel=3
        )
    n, dtype, device = x0.numel(), x0.dtype, x0.device
    if jac is None and kind == "torch":
        own = spec.needs != "grad" and hess is None and hessp is None
        obj = AutogradObjective.from_function(fun, shape, dtype, device, keep_graph=own)
        if spec.needs != "grad" and not own:
            obj = UserHessianObjective(obj, hess, hessp, shape)
        return obj
    fd_abs = None
    if jac is None:  # a NumPy function without derivatives: SciPy's '2-point', step eps
        # the step is the method's option eps where it has one (Adam's eps is something else)
        fd_abs = o["eps"] if "finite_diff_rel_step" in spec.options else _SQRT_EPS
        jac = "2-point"
    to_user = _converter(kind, shape)
    return CallableObjective(
        fun,
        jac,
        hess,
        hessp,
        to_user,
        n,
        dtype,
        device,
        fd_abs_step=fd_abs,
        fd_rel_step=o.get("finite_diff_rel_step"),
        numpy_flat=numpy_flat,
    )


def _bounds(bounds: Any, n: int, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(lower, upper)`` flat tensors from a ``scipy.optimize.Bounds`` or a sequence of
    ``(min, max)`` pairs (None = unbounded), or None when every bound is infinite."""
    if bounds is None:
        return None
    if hasattr(bounds, "lb") and hasattr(bounds, "ub"):  # scipy.optimize.Bounds
        lb = np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,)).copy()
        ub = np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,)).copy()
    else:
        try:
            pairs = list(bounds)
        except TypeError as exc:
            raise TypeError(
                f"bounds must be a scipy.optimize.Bounds or a sequence of (min, max) pairs, "
                f"got {type(bounds).__name__}"
            ) from exc
        if len(pairs) != n:
            raise ValueError(
                f"bounds must have one (min, max) pair per variable ({n}), got {len(pairs)}"
            )
        lb, ub = np.empty(n), np.empty(n)
        for i, pair in enumerate(pairs):
            try:
                lo, hi = pair
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bounds[{i}] must be a (min, max) pair, got {pair!r}") from exc
            lb[i] = -np.inf if lo is None else float(lo)
            ub[i] = np.inf if hi is None else float(hi)
    if np.isnan(lb).any() or np.isnan(ub).any():
        raise ValueError("bounds must not contain NaN")
    bad = np.flatnonzero(lb > ub)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"bounds[{i}]: the lower bound {lb[i]} exceeds the upper bound {ub[i]}")
    if np.isinf(lb).all() and np.isinf(ub).all() and (lb < 0).all() and (ub > 0).all():
        return None
    as_t = lambda a: torch.from_numpy(a).to(dtype=x0.dtype, device=x0.device)  # noqa: E731
    return as_t(lb), as_t(ub)


def _callback(callback: Any, to_user: Callable, objective: Objective, spec: Method):
    """SciPy's two callback forms: ``callback(intermediate_result)`` when the only parameter is
    named ``intermediate_result`` (an :class:`OptimizeResult`), else ``callback(xk)``. Raising
    ``StopIteration`` (or, optkit's extension, returning True) ends the run with status 99."""
    if callback is None:
        return None
    if not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    try:
        params = set(inspect.signature(callback).parameters)
    except (TypeError, ValueError):  # builtins without a signature: the legacy form
        params = set()
    new_style = params == {"intermediate_result"}

    def report(x, f, g, k):
        if new_style:
            arg = OptimizeResult(
                x=to_user(x), fun=f, nit=k, nfev=objective.nfev, njev=objective.njev
            )
            if g is not None:
                arg["jac"] = to_user(g)
            call = lambda: callback(intermediate_result=arg)  # noqa: E731
        else:
            call = lambda: callback(to_user(x))  # noqa: E731
        try:
            return bool(call())
        except StopIteration:
            return True

    return report


def _user_kind(value: Any, kind: str) -> Any:
    """A flat vector, matrix or inverse-Hessian operator in the user's kind (NumPy or torch)."""
    if value is None:
        return None
    if isinstance(value, LbfgsInvHessProduct):  # L-BFGS-B's: NumPy in, NumPy out already
        value.numpy = kind == "numpy"
        return value
    if kind == "numpy" and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return value


def _print_disp(res: OptimizeResult, message: str) -> None:
    """SciPy's ``disp=True`` report."""
    print(message if res.status == Status.SUCCESS else "Warning: " + message)
    print(f"         Current function value: {res.fun:f}")
    print(f"         Iterations: {res.nit:d}")
    print(f"         Function evaluations: {res.nfev:d}")
    print(f"         Gradient evaluations: {res.njev:d}")
    if res.nhev:
        print(f"         Hessian evaluations: {res.nhev:d}")


def _solve(objective, x0, spec, o, report, to_user, kind, bounds=None) -> OptimizeResult:
    record = o["record"] or o.get("return_all", False)
    if bounds is not None:
        out = _run_lbfgsb(objective, x0, {**o, "record": record}, report, bounds)
    else:
        out = spec.run(objective, x0, o if record == o["record"] else {**o, "record": True}, report)
    base = out.message or out.status.message
    message = base + (f" ({out.detail})" if out.detail and not out.message else "")
    res = OptimizeResult(
        x=to_user(out.x),
        fun=out.f,
        jac=to_user(out.g),
        nit=out.nit,
        nfev=objective.nfev,
        njev=objective.njev,
        nhev=objective.nhev,
        status=out.status,
        success=out.status == Status.SUCCESS,
        message=message,
    )
    if out.status == Status.CALLBACK:
        res.message = Status.CALLBACK.message
    if out.hess_inv is not None:
        res.hess_inv = _user_kind(out.hess_inv, kind)
    if o["record"]:
        like = to_user(x0)
        xs = torch.stack([torch.as_tensor(v) for v in out.xs]).reshape(len(out.xs), *like.shape)
        fs = torch.tensor(out.fs, dtype=torch.float64)
        if not isinstance(like, torch.Tensor):
            xs, fs = xs.cpu().numpy(), fs.numpy()
        res.trajectory = Trajectory(xs, fs)
    else:
        res.trajectory = None
    if o.get("return_all"):
        res.allvecs = [to_user(v) for v in out.xs]
    res.method = spec.name
    if o.get("disp"):
        _print_disp(res, base)
    return res


def minimize(
    fun: Callable,
    x0: Any,
    args: tuple = (),
    method: str | None = None,
    jac: Callable | bool | str | None = None,
    hess: Callable | str | None = None,
    hessp: Callable | None = None,
    bounds: Any = None,
    constraints: Any = (),
    tol: float | None = None,
    callback: Callable | None = None,
    options: Mapping[str, Any] | None = None,
) -> OptimizeResult:
    """Minimize a scalar function, with ``scipy.optimize.minimize``'s calling conventions.

    ``x* = argmin f(x)`` from ``x0`` by one of :data:`METHODS`: the lecture's first-order methods
    (gd, momentum, nesterov, rmsprop, adam, adamw — run by the ``optkit.optim`` optimizers on x)
    or its second-order ones (newton, newton-cg, bfgs, lbfgs, L-BFGS-B — a direction and a
    strong-Wolfe line search, see :mod:`optkit.minimization.directions`). The arguments are
    SciPy's, in SciPy's order; the guide (``docs/guide/minimize.md``) lists every method's
    options and the status table.

    Torch or NumPy: a torch tensor ``x0`` means a torch function (derivatives by autograd unless
    given; tensors in and out, dtype and device kept); a NumPy array, list or number means a
    NumPy function, called with NumPy arrays (finite differences unless ``jac`` is given, as in
    SciPy; NumPy out).

    Args:
        fun: ``fun(x, *args) -> f``, a scalar (0-d or one-element tensor, or a number). With
            ``jac=True`` it returns ``(f, g)``.
        x0: Starting point, any shape. A torch tensor keeps its dtype (float32 / float64) and
            device; a NumPy array or list becomes float64 (float32 kept) on the CPU.
        args: Extra arguments of ``fun``, ``jac``, ``hess`` and ``hessp`` (a non-tuple is one
            argument, as in SciPy).
        method: SciPy's ``"BFGS"`` (default without bounds), ``"L-BFGS-B"`` (default with
            bounds), ``"Newton-CG"``, or optkit's ``"gd"``, ``"momentum"``, ``"nesterov"``,
            ``"rmsprop"``, ``"adam"``, ``"adamw"``, ``"newton"``, ``"lbfgs"``; case and
            ``_``/``-`` are ignored.
        jac: ``None``: autograd (torch) or ``'2-point'`` differences with step ``eps`` (NumPy).
            ``True``: ``fun`` returns ``(f, g)``. A callable ``jac(x, *args) -> g``. ``'2-point'``,
            ``'3-point'``, ``'cs'``: finite differences with a relative step
            (``finite_diff_rel_step``).
        hess: Optional ``hess(x, *args) -> n × n`` (newton, newton-cg); ``'2-point'`` /
            ``'3-point'`` / ``'cs'`` mean differences of the gradient (the default without one).
        hessp: Optional ``hessp(x, p, *args) -> H·p`` (newton-cg, newton).
        bounds: For L-BFGS-B: a ``scipy.optimize.Bounds`` or one ``(min, max)`` pair per
            variable, ``None`` or ``±inf`` for no bound. ``x0`` outside is clipped into the box.
            Other methods warn and ignore them, as SciPy does.
        constraints: Not supported: must be empty.
        tol: Sets the method's tolerances as SciPy's ``tol`` does (gtol for BFGS / lbfgs /
            newton / first-order, ftol and gtol for L-BFGS-B, xtol and gtol for Newton-CG).
        callback: ``callback(intermediate_result)`` (the parameter must have that name) with an
            :class:`OptimizeResult` holding x, fun, jac and nit, or ``callback(xk)``; called after
            each iteration. Raise ``StopIteration`` (or return True) to stop: status 99.
        options: The method's options under SciPy's names — ``maxiter``, ``disp``, ``gtol``,
            ``norm``, ``xrtol``, ``eps``, ``finite_diff_rel_step``, ``return_all``,
            ``hess_inv0``, ``c1``, ``c2`` (BFGS); ``maxcor``, ``ftol``, ``gtol``, ``eps``,
            ``maxfun``, ``maxiter``, ``maxls`` (L-BFGS-B); ``xtol``, ``eps``, ``maxiter``,
            ``c1``, ``c2`` (Newton-CG) — and optkit's (``record``, ``line_search``, ``h0``,
            ``max_cg``, ``lr``, ``momentum``, ``betas``, …). ``max_iter`` and ``history`` are
            accepted for ``maxiter`` and ``maxcor``. ``METHODS[m].options`` lists every method's
            options with their defaults.

    Returns:
        An :class:`OptimizeResult` (a dict with attribute access): x, fun, jac, hess_inv
        (bfgs, lbfgs, L-BFGS-B), nit, nfev, njev, nhev, status, success, message. Numerical
        trouble (NaN/Inf, a failed line search, the iteration limit) is reported in
        ``status`` / ``message`` with ``success=False`` and the best point found, never raised.

    Raises:
        ValueError: Unknown method (the valid ones are listed), unknown options (named), an
            option out of range, a non-finite or empty ``x0``, ``fun`` returning a non-scalar,
            bad ``bounds``, ``constraints``.
        TypeError: ``fun`` / ``jac`` / ``hess`` / ``callback`` of the wrong kind, a complex
            ``x0``.

    Example:
        >>> import numpy as np, torch, optkit
        >>> from scipy.optimize import rosen, rosen_der
        >>> res = optkit.minimize(rosen, [1.3, 0.7, 0.8, 1.9, 1.2], method="BFGS", jac=rosen_der)
        >>> res.success, np.round(res.x, 4).tolist()
        (True, [1.0, 1.0, 1.0, 1.0, 1.0])
        >>> res = optkit.minimize(rosen, [2.0, 2.0], method="L-BFGS-B", jac=rosen_der)
        >>> res.message, res.hess_inv.shape
        ('CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL', (2, 2))
        >>> trosen = lambda x: (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        >>> res = optkit.minimize(trosen, torch.zeros(5, dtype=torch.float64), method="newton")
        >>> res.message  # doctest: +ELLIPSIS
        'Optimization terminated successfully. (‖g‖∞ = ... <= gtol = 1e-05)'
    """
    if constraints is not None and not (isinstance(constraints, (tuple, list)) and not constraints):
        raise ValueError("constraints are not supported by optkit.minimize (only bounds)")
    if not isinstance(args, tuple):
        args = (args,)
    spec = _method(method, bounds)
    x0_flat, kind, shape = _prepare_x0(x0)
    n = x0_flat.numel()
    o = _options(spec, options, tol, n)
    box = None
    if bounds is not None:
        if spec.bounds:
            box = _bounds(bounds, n, x0_flat)
        else:
            warnings.warn(f"Method {spec.name} cannot handle bounds.", RuntimeWarning, stacklevel=2)
    jac = _check_jac(jac)
    hess, hessp = _check_hess("hess", hess), _check_hess("hessp", hessp)
    fun_a, jac_a = _with_args(fun, args), _with_args(jac, args)
    hess_a, hessp_a = _with_args(hess, args), _with_args(hessp, args, 1)
    numpy_flat = (
        kind == "numpy" and spec.numpy_path and x0_flat.dtype in (torch.float32, torch.float64)
    )
    objective = _objective(fun_a, jac_a, hess_a, hessp_a, spec, o, x0_flat, kind, shape, numpy_flat)
    to_user = _converter(kind, shape)
    if o.get("hess_inv0") is not None:
        H0 = (
            np.asarray(o["hess_inv0"], dtype=float)
            if kind == "numpy"
            else torch.as_tensor(o["hess_inv0"], dtype=x0_flat.dtype, device=x0_flat.device)
        )
        if tuple(H0.shape) != (n, n):
            raise ValueError(
                f"options['hess_inv0'] must have shape ({n}, {n}), got {tuple(H0.shape)}"
            )
        o["hess_inv0"] = (
            H0 if numpy_flat or kind == "torch" else torch.from_numpy(H0).to(x0_flat.dtype)
        )
    start = x0_flat.numpy().copy() if numpy_flat else x0_flat
    report = _callback(callback, to_user, objective, spec)
    return _solve(objective, start, spec, o, report, to_user, kind, box)


minimize.METHODS = METHODS  # type: ignore[attr-defined]  # optkit.minimize.METHODS, as documented


def minimize_module(
    model: torch.nn.Module,
    closure: Callable[[], torch.Tensor],
    method: str = "lbfgs",
    options: Mapping[str, Any] | None = None,
    *,
    tol: float | None = None,
    callback: Callable | None = None,
) -> OptimizeResult:
    """Fit a small ``nn.Module`` full batch with any method (the lecture's "second order for
    small models"): its trainable parameters are flattened into one vector x, minimized, and the
    solution is written back into them.

    Args:
        model: The module; every parameter with ``requires_grad`` is optimized. All must share
            one dtype and device.
        closure: ``closure() -> loss`` computing the full-batch loss from the model's current
            parameters. Unlike ``torch.optim.LBFGS`` closures it must NOT call ``backward()``
            (derivatives, including Hessian-vector products, are taken here).
        method, options, tol, callback: As in :func:`minimize`.

    Returns:
        An :class:`OptimizeResult` whose ``x`` / ``jac`` are flat tensors (parameters in
        ``model.parameters()`` order); the model holds ``x`` on return.

    Example:
        >>> import torch, optkit
        >>> torch.manual_seed(0) and None
        >>> X = torch.randn(64, 3, dtype=torch.float64); y = X @ torch.tensor([1.0, -2.0, 0.5],
        ...     dtype=torch.float64) + 0.3
        >>> model = torch.nn.Linear(3, 1).double()
        >>> res = optkit.minimize_module(model, lambda: ((model(X).squeeze(1) - y) ** 2).mean(),
        ...                              method="newton")
        >>> res.success, round(model.bias.item(), 6)
        (True, 0.3)
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(closure):
        raise TypeError(f"closure must be callable, got {type(closure).__name__}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no parameters with requires_grad=True")
    if len({(p.dtype, p.device) for p in params}) != 1:
        raise TypeError("all trainable parameters must share one dtype and device")
    spec = _method("lbfgs" if method is None else method, None)
    x0 = torch.cat([p.detach().reshape(-1) for p in params]).clone()
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("the model's parameters must be finite (they contain NaN or Inf)")
    o = _options(spec, options, tol, x0.numel())

    def bind(x: torch.Tensor) -> list[torch.Tensor]:
        with torch.no_grad():
            i = 0
            for p in params:
                k = p.numel()
                p.copy_(x[i : i + k].view_as(p))
                i += k
        return params

    def call(_inputs):
        return closure()

    objective = AutogradObjective(
        call, bind, x0.numel(), x0.dtype, x0.device, keep_graph=spec.needs != "grad"
    )
    to_user = lambda v: v.detach()  # noqa: E731
    report = _callback(callback, to_user, objective, spec)
    res = _solve(objective, x0, spec, o, report, to_user, "torch")
    bind(res.x)
    return res
