"""``optkit.minimize`` and ``optkit.minimize_module``; the :data:`METHODS` registry.

The registry is data: for each method, what it needs from the objective (gradient only, dense
Hessian, or Hessian-vector products), its options with their defaults, and the function that
runs it. :func:`minimize` validates every option from this table and dispatches with one lookup.
"""

from __future__ import annotations

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
from .objective import AutogradObjective, CallableObjective, Objective, UserHessianObjective
from .result import OptimizeResult, Status, Trajectory

__all__ = ["METHODS", "Method", "minimize", "minimize_module"]


# --- option checks: one row per option name, shared by every method that has it ---------------
def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _max_iter(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, 0)


def _optional_int(name: str, value: Any) -> int | None:
    return None if value is None else check_int(name, value, 1)


OPTION_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "max_iter": _max_iter,
    "gtol": lambda n, v: check_number(n, v, 0.0),
    "ftol": lambda n, v: check_number(n, v, 0.0),
    "record": _bool,
    "lr": lambda n, v: check_number(n, v, 0.0, low_open=True),
    "momentum": lambda n, v: check_number(n, v, 0.0, 1.0, high_open=True),
    "dampening": lambda n, v: check_number(n, v, 0.0, 1.0),
    "alpha": lambda n, v: check_number(n, v, 0.0, 1.0, high_open=True),
    "betas": lambda n, v: check_pair(n, v, 0.0, 1.0),
    "eps": lambda n, v: check_number(n, v, 0.0),
    "weight_decay": lambda n, v: check_number(n, v, 0.0),
    "amsgrad": _bool,
    "centered": _bool,
    "history": lambda n, v: check_int(n, v, 1),
    "max_cg": _optional_int,
    "h0": lambda n, v: check_choice(n, v, ("scaled", "identity")),
    "line_search": lambda n, v: check_choice(n, v, ("strong-wolfe", "armijo")),
    "c1": lambda n, v: check_number(n, v, 0.0, 1.0, low_open=True, high_open=True),
    "c2": lambda n, v: check_number(n, v, 0.0, 1.0, low_open=True, high_open=True),
}

COMMON_OPTIONS = {"max_iter": None, "gtol": 1e-5, "ftol": 0.0, "record": False}
LINE_SEARCH_OPTIONS = {"line_search": "strong-wolfe", "c1": 1e-4, "c2": 0.9}


@dataclass(frozen=True)
class Method:
    """One row of :data:`METHODS`.

    Attributes:
        name: The ``method=`` string.
        summary: One line for listings (``optkit advise``, docs).
        needs: ``"grad"``, ``"hess"`` (dense Hessian) or ``"hessp"`` (Hessian-vector products).
        options: Method options and defaults (the common ones included).
        max_iter: Default iteration limit as a function of n.
        run: ``run(objective, x0_flat, options, report) -> LoopResult``.
        hyper: Options passed on to the ``optkit.optim`` optimizer (first-order methods).
    """

    name: str
    summary: str
    needs: str
    options: Mapping[str, Any]
    max_iter: Callable[[int], int]
    run: Callable[..., LoopResult]
    hyper: tuple[str, ...] = field(default=())


def _loop_options(o: dict) -> dict:
    return {k: o[k] for k in ("max_iter", "gtol", "ftol", "record", "line_search", "c1", "c2")}


def _descent(make: Callable[[dict], Any]) -> Callable[..., LoopResult]:
    def run(objective, x0, o, report):
        return descent_loop(objective, x0, make(o), report=report, **_loop_options(o))

    return run


def _first_order(name: str, hyper: tuple[str, ...]) -> Callable[..., LoopResult]:
    def run(objective, x0, o, report):
        if o.get("line_search") is not None:  # gd with a line search: steepest descent
            return _descent(lambda _: directions.SteepestDescent())(objective, x0, o, report)
        return first_order_loop(
            objective,
            x0,
            name,
            {k: o[k] for k in hyper},
            max_iter=o["max_iter"],
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
        {**COMMON_OPTIONS, **defaults, **(extra or {})},
        lambda n: 1000,
        _first_order(name, hyper),
        hyper,
    )


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
            {**COMMON_OPTIONS, **LINE_SEARCH_OPTIONS},
            lambda n: 200 * n,
            _descent(lambda o: directions.Newton()),
        ),
        Method(
            "newton-cg",
            "truncated Newton: CG on Hessian-vector products (double backward)",
            "hessp",
            {**COMMON_OPTIONS, **LINE_SEARCH_OPTIONS, "max_cg": None},
            lambda n: 200 * n,
            _descent(lambda o: directions.NewtonCG(o["max_cg"])),
        ),
        Method(
            "bfgs",
            "BFGS, dense inverse-Hessian approximation, O(n²) memory",
            "grad",
            {**COMMON_OPTIONS, **LINE_SEARCH_OPTIONS, "h0": "identity"},
            lambda n: 200 * n,
            _descent(lambda o: directions.BFGS(o["h0"])),
        ),
        Method(
            "lbfgs",
            "L-BFGS, two-loop recursion over the last `history` pairs, O(m·n)",
            "grad",
            {**COMMON_OPTIONS, **LINE_SEARCH_OPTIONS, "history": 10},
            lambda n: 15000,
            _descent(lambda o: directions.LBFGS(o["history"])),
        ),
    )
}


def _method(method: Any) -> Method:
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, got {type(method).__name__}")
    key = method.lower().replace("_", "-")
    if key not in METHODS:
        raise ValueError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[key]


def _options(spec: Method, options: Any, tol: Any, n: int) -> dict:
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a dict, got {type(options).__name__}")
    unknown = [k for k in options if k not in spec.options]
    if unknown:
        raise ValueError(
            f"unknown option(s) for method {spec.name!r}: {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(spec.options)}"
        )
    o = dict(spec.options)
    if tol is not None:
        o["gtol"] = check_number("tol", tol, 0.0)
    for k, v in options.items():
        if not (k == "line_search" and v is None and spec.options[k] is None):
            v = OPTION_CHECKS[k](f"options[{k!r}]", v)
        o[k] = v
    if "c1" in o and "c2" in o and not o["c1"] < o["c2"]:
        raise ValueError(f"options: need c1 < c2, got c1={o['c1']} and c2={o['c2']}")
    if o["max_iter"] is None:
        o["max_iter"] = spec.max_iter(n)
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
        t = torch.from_numpy(np.array(arr, copy=True))
    if t.numel() == 0:
        raise ValueError("x0 must have at least one element")
    if not bool(torch.isfinite(t).all()):
        raise ValueError("x0 must be finite (it contains NaN or Inf)")
    return t.reshape(-1).clone(), kind, tuple(t.shape)


def _converter(kind: str, shape: tuple[int, ...]) -> Callable[[torch.Tensor], Any]:
    if kind == "torch":
        return lambda v: v.detach().view(shape)
    return lambda v: v.detach().cpu().numpy().reshape(shape).copy()


def _objective(fun, jac, hess, hessp, spec, x0, kind, shape) -> Objective:
    if not callable(fun):
        raise TypeError(f"fun must be callable, got {type(fun).__name__}")
    if jac is False:
        jac = None
    if jac is not None and jac is not True and not callable(jac):
        raise TypeError(
            f"jac must be None (autograd), True (fun returns (f, g)) or a callable; got {jac!r}"
        )
    for name, h in (("hess", hess), ("hessp", hessp)):
        if h is not None and not callable(h):
            raise TypeError(f"{name} must be callable or None, got {type(h).__name__}")
    if spec.needs == "grad" and (hess is not None or hessp is not None):
        warnings.warn(
            f"method {spec.name!r} does not use hess / hessp", RuntimeWarning, stacklevel=3
        )
    n, dtype, device = x0.numel(), x0.dtype, x0.device
    if jac is None:
        own = spec.needs != "grad" and hess is None and hessp is None
        obj = AutogradObjective.from_function(fun, shape, dtype, device, keep_graph=own)
        if spec.needs != "grad" and not own:
            obj = UserHessianObjective(obj, hess, hessp, shape)
        return obj
    to_user = _converter(kind, shape)
    return CallableObjective(fun, jac, hess, hessp, to_user, n, dtype, device)


def _solve(objective, x0, spec, o, callback, to_user) -> OptimizeResult:
    report = None
    if callback is not None:
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")

        def report(x, f, g, k):
            interim = OptimizeResult(
                to_user(x),
                f,
                to_user(g),
                k,
                objective.nfev,
                objective.njev,
                objective.nhev,
                Status.SUCCESS,
                True,
                "in progress",
                None,
                spec.name,
            )
            try:
                return bool(callback(interim))
            except StopIteration:
                return True

    out = spec.run(objective, x0, o, report)
    message = out.status.message + (f" ({out.detail})" if out.detail else "")
    trajectory = None
    if o["record"]:
        like = to_user(x0)
        xs = torch.stack(out.xs).detach().reshape(len(out.xs), *like.shape)
        fs = torch.tensor(out.fs, dtype=torch.float64)
        if not isinstance(like, torch.Tensor):
            xs, fs = xs.cpu().numpy(), fs.numpy()
        trajectory = Trajectory(xs, fs)
    return OptimizeResult(
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
        trajectory=trajectory,
        method=spec.name,
    )


def minimize(
    fun: Callable,
    x0: Any,
    method: str = "bfgs",
    jac: Callable | bool | None = None,
    hess: Callable | None = None,
    hessp: Callable | None = None,
    tol: float | None = None,
    callback: Callable | None = None,
    options: Mapping[str, Any] | None = None,
    bounds: Any = None,
) -> OptimizeResult:
    """Minimize a scalar function of a tensor, SciPy-style, on torch.

    ``x* = argmin f(x)`` from ``x0`` by one of :data:`METHODS`: the lecture's first-order methods
    (gd, momentum, nesterov, rmsprop, adam, adamw — run by the ``optkit.optim`` optimizers on x)
    or its second-order ones (newton, newton-cg, bfgs, lbfgs — a direction and a strong-Wolfe line
    search, see :mod:`optkit.minimization.directions`). Derivatives come from torch autograd unless
    you pass them.

    Args:
        fun: ``fun(x) -> f``, a scalar (0-d or one-element tensor; a number when ``jac`` is
            given). With ``jac=True`` it returns ``(f, g)``.
        x0: Starting point, any shape. A torch tensor keeps its dtype (float32 / float64) and
            device; a NumPy array or list becomes float64 (float32 kept) on the CPU.
        method: ``"gd"``, ``"momentum"``, ``"nesterov"``, ``"rmsprop"``, ``"adam"``,
            ``"adamw"``, ``"newton"``, ``"newton-cg"``, ``"bfgs"`` (default) or ``"lbfgs"``.
        jac: ``None``: autograd. ``True``: ``fun`` returns ``(f, g)``. A callable:
            ``jac(x) -> g``. User callables receive NumPy arrays when ``x0`` is not a tensor
            (the NumPy bridge) and may return NumPy or torch values.
        hess: Optional ``hess(x) -> n × n`` (newton, newton-cg). Default: autograd, or forward
            differences of ``jac`` when ``jac`` is given.
        hessp: Optional ``hessp(x, v) -> H·v`` (newton-cg, newton).
        tol: Sets ``gtol`` (as SciPy's ``tol`` does for BFGS).
        callback: ``callback(intermediate_result)`` after each iteration, with an
            :class:`OptimizeResult` holding x, fun, jac and nit; return True or raise
            ``StopIteration`` to stop (status 99).
        bounds: Box constraints for ``method="L-BFGS-B"``: a sequence of ``(low, high)`` pairs
            (``None`` for no bound) or an object with ``lb`` / ``ub`` (SciPy's ``Bounds``);
            runs :func:`optkit.minimization.lbfgsb.minimize_lbfgsb` with SciPy's options
            ``maxcor``, ``ftol``, ``gtol``, ``maxiter``, ``maxfun``, ``maxls``.
        options: ``max_iter`` (default 200·n; 15000 for lbfgs; 1000 for first-order),
            ``gtol`` (‖∇f‖∞ target, 1e-5), ``ftol`` (relative decrease of f, off by default),
            ``record`` (keep the trajectory), and per method: ``lr``, ``momentum``,
            ``dampening``, ``alpha``, ``betas``, ``eps``, ``weight_decay``, ``amsgrad``,
            ``centered`` (first-order, torch's names and defaults), ``line_search``
            (``"strong-wolfe"`` or ``"armijo"``; for gd ``None`` = fixed lr), ``c1``, ``c2``,
            ``history`` (lbfgs m, 10), ``h0`` (bfgs: ``"identity"``, the lecture's H₀ = I, or
            ``"scaled"``, H₀ = (yᵀs / yᵀy)·I before the first update),
            ``max_cg`` (newton-cg CG iterations, default 20·n). ``METHODS[m].options`` lists
            them with their defaults.

    Returns:
        An :class:`OptimizeResult`. Numerical trouble (NaN/Inf, a failed line search, the
        iteration limit) is reported in ``status`` / ``message`` with ``success=False`` and the
        best point found, never raised.

    Raises:
        ValueError: Unknown method (the valid ones are listed), unknown options (named), an
            option out of range, a non-finite or empty ``x0``, ``fun`` returning a non-scalar.
        TypeError: ``fun`` / ``jac`` / ``hess`` / ``callback`` of the wrong kind, a complex
            ``x0``, or a NumPy ``fun`` without ``jac``.

    Example:
        >>> import torch, optkit
        >>> rosen = lambda x: (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        >>> res = optkit.minimize(rosen, torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> res.success, [round(v, 4) for v in res.x.tolist()]
        (True, [1.0, 1.0])
        >>> res = optkit.minimize(rosen, torch.zeros(5, dtype=torch.float64), method="newton")
        >>> res.message  # doctest: +ELLIPSIS
        'Optimization terminated successfully. (‖g‖∞ = ... <= gtol = 1e-05)'
    """
    if bounds is not None or (isinstance(method, str) and method.upper() == "L-BFGS-B"):
        return _minimize_bounded(fun, x0, jac, bounds, tol, callback, options)
    spec = _method(method)
    x0_flat, kind, shape = _prepare_x0(x0)
    o = _options(spec, options, tol, x0_flat.numel())
    objective = _objective(fun, jac, hess, hessp, spec, x0_flat, kind, shape)
    return _solve(objective, x0_flat, spec, o, callback, _converter(kind, shape))


def _minimize_bounded(fun, x0, jac, bounds, tol, callback, options) -> OptimizeResult:
    """``method="L-BFGS-B"``: SciPy's options, bounds as pairs or ``Bounds``-like."""
    from .lbfgsb import minimize_lbfgsb

    x0_flat, kind, shape = _prepare_x0(x0)
    n = x0_flat.numel()
    opts = dict(options or {})
    if tol is not None:  # SciPy: tol sets both ftol and gtol for L-BFGS-B
        opts.setdefault("ftol", tol)
        opts.setdefault("gtol", tol)
    allowed = ("maxcor", "ftol", "gtol", "maxiter", "maxfun", "maxls")
    unknown = [k for k in opts if k not in allowed]
    if unknown:
        raise ValueError(
            f"unknown option(s) for method 'L-BFGS-B': {', '.join(map(repr, unknown))}; "
            f"valid options: {', '.join(allowed)}"
        )
    if bounds is None:
        lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    elif hasattr(bounds, "lb") and hasattr(bounds, "ub"):
        lo = np.broadcast_to(np.asarray(bounds.lb, dtype=float), (n,))
        hi = np.broadcast_to(np.asarray(bounds.ub, dtype=float), (n,))
    else:
        pairs = list(bounds)
        if len(pairs) != n:
            raise ValueError(f"bounds must have one (low, high) pair per variable: {n}")
        lo = np.array([-np.inf if a is None else a for a, _ in pairs], dtype=float)
        hi = np.array([np.inf if b is None else b for _, b in pairs], dtype=float)
    lower, upper = (torch.from_numpy(np.array(v)).reshape(shape) for v in (lo, hi))
    objective = _objective(fun, jac, None, None, METHODS["lbfgs"], x0_flat, kind, shape)
    to_user = _converter(kind, shape)
    cb = None
    if callback is not None:

        def cb(intermediate_result):
            intermediate_result.x = to_user(intermediate_result.x.reshape(-1))
            intermediate_result.jac = to_user(intermediate_result.jac.reshape(-1))
            return callback(intermediate_result)

    res = minimize_lbfgsb(objective, x0_flat.view(shape), lower, upper, callback=cb, **opts)
    res.x, res.jac = to_user(res.x.reshape(-1)), to_user(res.jac.reshape(-1))
    res.hess_inv.numpy = kind == "numpy"
    return res


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
    spec = _method(method)
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
    res = _solve(objective, x0, spec, o, callback, lambda v: v.detach())
    bind(res.x)
    return res
