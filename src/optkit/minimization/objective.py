"""Objective wrappers: f, g = ∇f, H = ∇²f and H·v at flat points, with caching and counters.

Every method works on flat 1-D tensors ``x ∈ Rⁿ``; the wrapper reshapes to the user's shape. It
computes f and g together (one forward and one backward pass), remembers the last point so the
line search's accepted trial is never evaluated twice, and counts ``nfev`` / ``njev`` / ``nhev``.

Derivatives come from one of two places:

* **autograd** (``jac=None``): ``fun`` is differentiated by torch. When the method needs second
  derivatives, the gradient is built with ``create_graph=True`` and kept, so H·v is one double
  backward on the stored graph (no extra forward pass) and the dense H is n of them, batched.
* **user callables** (``jac=callable`` or ``jac=True`` meaning ``fun`` returns ``(f, g)``, the
  SciPy conventions), optionally ``hess`` / ``hessp``. Without either, H·v is a forward difference
  of the gradient, as SciPy does. When ``x0`` is a NumPy array (or a list), these callables receive
  and may return NumPy arrays: the NumPy bridge.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FD_SCHEMES",
    "AutogradObjective",
    "CallableObjective",
    "Objective",
    "fd_gradient",
    "symmetrize",
    "to_float",
]


def symmetrize(H: torch.Tensor) -> torch.Tensor:
    """``(H + Hᵀ) / 2``: Hessians built column by column (autograd, finite differences) are
    symmetric only up to rounding; Cholesky and the eigen-solver assume exact symmetry."""
    return 0.5 * (H + H.T)


def to_float(value: Any, what: str = "fun") -> float:
    """Convert a scalar returned by user code to a Python float, or raise.

    Raises:
        ValueError: ``value`` has more than one element.
        TypeError: ``value`` is not a number.
    """
    if isinstance(value, (float, np.floating)):  # float, NumPy scalars (the common cases)
        return float(value)
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{what} must return a scalar, got a tensor of shape {tuple(value.shape)}"
            )
        return float(value.detach().reshape(()).item())
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{what} must return a scalar, got {type(value).__name__}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{what} must return a real scalar, got {value!r}")
    if arr.size != 1:
        raise ValueError(f"{what} must return a scalar, got an array of shape {arr.shape}")
    return float(arr.reshape(()))


class Objective:
    """Caching, counters and the Hessian fall-backs shared by both wrappers.

    Subclasses implement ``_evaluate(x) -> (f, g)`` and may override ``_hessp`` / ``_hess``.

    Attributes:
        n: Number of variables.
        dtype, device: Those of every flat vector handed to the methods.
        nfev, njev, nhev: Evaluation counters.
    """

    def __init__(self, n: int, dtype: torch.dtype, device: torch.device) -> None:
        self.n, self.dtype, self.device = n, dtype, device
        self.nfev = self.njev = self.nhev = 0
        self._x: torch.Tensor | None = None
        self._f = math.nan
        self._g: torch.Tensor | None = None

    # -- f and g -------------------------------------------------------------------------------
    def _is_cached(self, x: torch.Tensor) -> bool:
        c = self._x
        return c is not None and (c is x or (c.shape == x.shape and bool((c == x).all())))

    def value_and_grad(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        """Return ``(f(x), ∇f(x))``; f is a Python float, g a flat tensor. Cached on x."""
        if not self._is_cached(x):
            f, g = self._evaluate(x)
            self.nfev += 1
            self.njev += 1
            self._x, self._f, self._g = x, f, g
        return self._f, self._g

    def _evaluate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    # -- second derivatives -----------------------------------------------------------------
    def hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Return ``∇²f(x) · v`` (flat)."""
        self.nhev += 1
        return self._hessp(x, v)

    def hess(self, x: torch.Tensor) -> torch.Tensor:
        """Return the dense ``n × n`` Hessian ``∇²f(x)``."""
        self.nhev += 1
        return self._hess(x)

    def _hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        # Forward difference of the gradient (SciPy's default when only jac is known).
        vnorm = float(torch.linalg.vector_norm(v))
        if vnorm == 0.0:
            return torch.zeros_like(v)
        _, g = self.value_and_grad(x)
        eps = math.sqrt(torch.finfo(self.dtype).eps) * (1.0 + float(torch.linalg.vector_norm(x)))
        h = eps / vnorm
        _, g_h = self._evaluate(x + h * v)
        self.njev += 1
        return (g_h - g) / h

    def _hess(self, x: torch.Tensor) -> torch.Tensor:
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return symmetrize(torch.stack([self._hessp(x, eye[i]) for i in range(self.n)]))


class AutogradObjective(Objective):
    """Derivatives by torch autograd.

    Args:
        call: ``call(inputs) -> f`` where ``inputs`` is the list built by ``bind``.
        bind: ``bind(x_flat) -> list of leaf tensors requiring grad`` whose values are x.
        n, dtype, device: Shape of the flat problem.
        keep_graph: Build the gradient with ``create_graph=True`` so H·v can reuse it.
    """

    def __init__(
        self,
        call: Callable[[list[torch.Tensor]], Any],
        bind: Callable[[torch.Tensor], list[torch.Tensor]],
        n: int,
        dtype: torch.dtype,
        device: torch.device,
        *,
        keep_graph: bool = False,
    ) -> None:
        super().__init__(n, dtype, device)
        self._call, self._bind, self.keep_graph = call, bind, keep_graph
        self._graph: tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]] | None = None

    @classmethod
    def from_function(
        cls, fun: Callable, shape: Sequence[int], dtype, device, *, keep_graph: bool = False
    ) -> AutogradObjective:
        """Wrap ``fun(x)`` where x has the user's ``shape``."""
        shape = tuple(shape)

        def bind(x: torch.Tensor) -> list[torch.Tensor]:
            return [x.detach().view(shape).requires_grad_(True)]

        def call(inputs: list[torch.Tensor]) -> Any:
            return fun(inputs[0])

        n = math.prod(shape)
        return cls(call, bind, n, dtype, device, keep_graph=keep_graph)

    def _forward(self, x: torch.Tensor, create_graph: bool):
        inputs = self._bind(x)
        with torch.enable_grad():
            f = self._call(inputs)
            if not isinstance(f, torch.Tensor):
                raise TypeError(
                    "fun must return a torch tensor when jac=None (derivatives by autograd); got "
                    f"{type(f).__name__}. For a NumPy function pass jac=callable or jac=True."
                )
            if f.numel() != 1:
                raise ValueError(
                    f"fun must return a scalar, got a tensor of shape {tuple(f.shape)}"
                )
            f = f.reshape(())
            if f.requires_grad:
                try:
                    grads = torch.autograd.grad(
                        f, inputs, create_graph=create_graph, allow_unused=True
                    )
                except RuntimeError as exc:
                    if "second time" not in str(exc):
                        raise
                    raise RuntimeError(
                        "the objective's graph was already freed: the closure / fun must return "
                        "the loss without calling backward() (derivatives are taken here)"
                    ) from exc
            else:
                grads = (None,) * len(inputs)
        grads = [
            torch.zeros_like(p) if gi is None else gi for gi, p in zip(grads, inputs, strict=True)
        ]
        return f, inputs, grads

    @staticmethod
    def _flat(parts: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(parts) == 1:
            return parts[0].reshape(-1)
        return torch.cat([p.reshape(-1) for p in parts])

    def _evaluate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        f, inputs, grads = self._forward(x, self.keep_graph)
        g = self._flat(grads).detach()
        self._graph = (x, inputs, grads) if self.keep_graph else None
        return float(f.detach()), g

    def _graph_at(self, x: torch.Tensor):
        graph = self._graph
        if graph is None or not (graph[0] is x or torch.equal(graph[0], x)):
            _, inputs, grads = self._forward(x, True)
            self.nfev += 1
            self.njev += 1
            graph = self._graph = (x, inputs, grads)
        return graph

    def _split(self, v: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
        out, i = [], 0
        for p in like:
            k = p.numel()
            out.append(v[i : i + k].view(p.shape))
            i += k
        return out

    def _hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        _, inputs, grads = self._graph_at(x)
        needs = [gi.requires_grad for gi in grads]
        if not any(needs):  # gradient constant in x: f is (at most) linear
            return torch.zeros_like(v)
        gs = [gi for gi, k in zip(grads, needs, strict=True) if k]
        vs = [vi for vi, k in zip(self._split(v, inputs), needs, strict=True) if k]
        hv = torch.autograd.grad(gs, inputs, vs, retain_graph=True, allow_unused=True)
        hv = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, inputs, strict=True)]
        return self._flat(hv).detach()

    def _hess(self, x: torch.Tensor) -> torch.Tensor:
        _, inputs, grads = self._graph_at(x)
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        if len(inputs) == 1 and grads[0].requires_grad:
            try:  # all n double-backward passes at once (vmap over the backward graph)
                (H,) = torch.autograd.grad(
                    grads[0],
                    inputs,
                    eye.view(self.n, *inputs[0].shape),
                    retain_graph=True,
                    is_grads_batched=True,
                )
                return symmetrize(H.reshape(self.n, self.n).detach())
            except RuntimeError:
                pass  # an op without a batching rule: fall back to n passes below
        return symmetrize(torch.stack([self._hessp(x, eye[i]) for i in range(self.n)]))


FD_SCHEMES = ("2-point", "3-point", "cs")
_EPS64 = float(np.finfo(np.float64).eps)


def fd_gradient(
    call: Callable[[np.ndarray], Any],
    x: np.ndarray,
    f0: float,
    scheme: str = "2-point",
    abs_step: float | None = None,
    rel_step: float | None = None,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Finite-difference gradient, SciPy's ``approx_derivative`` steps; returns (g, calls).

    Steps: ``h_i = abs_step`` when given (SciPy's ``eps`` option, used when ``jac=None``), else
    ``h_i = rel_step·sign(x_i)·max(1, |x_i|)`` with ``rel_step`` defaulting to ``√ε`` (2-point,
    complex step) or ``ε^(1/3)`` (3-point). Forward differences ``(f(x + h_i e_i) − f0)/h_i``
    (2-point), central ``(f(x + h e_i) − f(x − h e_i))/(2h)`` (3-point) or the complex step
    ``Im f(x + i·h e_i)/h`` (cs). Inside bounds, a forward step that would leave the box is taken
    backwards (2-point) and a central one becomes one-sided (3-point), as SciPy does.
    """
    n = x.size
    dtype_eps = float(np.finfo(x.dtype).eps) if x.dtype.kind == "f" else _EPS64
    sign = np.where(x >= 0, 1.0, -1.0)
    if abs_step is not None and scheme == "2-point":
        h = np.full(n, float(abs_step))
        zero = (x + h) - x == 0  # a step lost to rounding: fall back to the relative one
        h = np.where(zero, dtype_eps**0.5 * sign * np.maximum(1.0, np.abs(x)), h)
    else:
        rel = (
            rel_step
            if rel_step is not None
            else dtype_eps ** (1 / 3 if scheme == "3-point" else 0.5)
        )
        h = rel * sign * np.maximum(1.0, np.abs(x))
    one_sided = np.zeros(n, dtype=bool)
    if lower is not None and upper is not None and scheme != "cs":
        if scheme == "2-point":
            out = (x + h < lower) | (x + h > upper)
            h = np.where(out, -h, h)
        else:
            hh = np.abs(h)
            fwd_ok, bwd_ok = x + 2 * hh <= upper, x - 2 * hh >= lower
            both = (x - hh >= lower) & (x + hh <= upper)
            one_sided = ~both
            h = np.where(both, hh, np.where(fwd_ok, hh, np.where(bwd_ok, -hh, hh)))
    g = np.empty(n)
    calls = 0
    for i in range(n):
        xi = x[i]
        if scheme == "cs":
            xc = x.astype(complex)
            xc[i] = xi + 1j * h[i]
            g[i] = np.imag(complex(np.asarray(call(xc)).reshape(()))) / h[i]
            calls += 1
            continue
        xp = x.copy()
        xp[i] = xi + h[i]
        dx = xp[i] - xi  # the step as represented
        if scheme == "2-point":
            g[i] = (to_float(call(xp)) - f0) / dx
            calls += 1
        elif one_sided[i]:  # one-sided 3-point: (−3f0 + 4f(x+h) − f(x+2h)) / 2h
            x2 = x.copy()
            x2[i] = xi + 2 * h[i]
            g[i] = (-3 * f0 + 4 * to_float(call(xp)) - to_float(call(x2))) / (2 * dx)
            calls += 2
        else:
            xm = x.copy()
            xm[i] = xi - h[i]
            g[i] = (to_float(call(xp)) - to_float(call(xm))) / (2 * dx)
            calls += 2
    return g, calls


class CallableObjective(Objective):
    """Derivatives from user callables, SciPy conventions; the NumPy bridge lives here.

    The flat vectors handed to the methods are torch tensors, or NumPy arrays on the NumPy fast
    path (``numpy_flat=True``: a NumPy function and a method that needs only gradients; then no
    torch call happens per evaluation). ``fun`` receives the user's shape and kind (a copy, as
    SciPy passes).

    Args:
        fun: ``fun(x) -> f``, or ``(f, g)`` when ``jac is True``.
        jac: ``True``, ``jac(x) -> g``, or a finite-difference scheme (``"2-point"``,
            ``"3-point"``, ``"cs"``; see :func:`fd_gradient`).
        hess: Optional ``hess(x) -> n × n``.
        hessp: Optional ``hessp(x, v) -> H·v``.
        to_user: Flat vector -> what the callables receive (user shape, torch or NumPy).
        n, dtype, device: Shape of the flat problem (torch dtype and device).
        fd_abs_step, fd_rel_step: Finite-difference steps (SciPy's ``eps`` when ``jac`` was
            None, ``finite_diff_rel_step``).
        numpy_flat: Flat vectors are NumPy arrays.

    Attributes:
        bounds: ``(lower, upper)`` NumPy arrays, set by L-BFGS-B: finite differences stay
            inside them.
    """

    def __init__(
        self,
        fun,
        jac,
        hess,
        hessp,
        to_user,
        n,
        dtype,
        device,
        *,
        fd_abs_step: float | None = None,
        fd_rel_step: float | None = None,
        numpy_flat: bool = False,
    ) -> None:
        super().__init__(n, dtype, device)
        self._fun, self._jac, self._hess_fn, self._hessp_fn = fun, jac, hess, hessp
        self._to_user = to_user
        self._fd = jac if isinstance(jac, str) else None
        self._fd_abs, self._fd_rel = fd_abs_step, fd_rel_step
        self.numpy_flat = numpy_flat
        self._np_dtype = np.dtype(np.float32 if dtype == torch.float32 else np.float64)
        self._flat_shape = (n,)
        self._plain = numpy_flat and callable(jac) and self._fd is None
        self.bounds: tuple[np.ndarray, np.ndarray] | None = None

    def _is_cached(self, x) -> bool:
        if not self.numpy_flat:
            return super()._is_cached(x)
        # the loop hands back the very array it evaluated; comparing values would cost as much
        # as the rest of the bookkeeping of an evaluation
        return self._x is x

    def value_and_grad(self, x):
        if self._x is x:  # as Objective.value_and_grad, one call less on the hot path
            return self._f, self._g
        if self._plain:
            return self._numpy_value_and_grad(x)
        return super().value_and_grad(x)

    def _numpy_value_and_grad(self, x):
        """The NumPy path with ``jac`` a callable: :meth:`_evaluate` and the counters in one
        frame, the common return types (a float or NumPy scalar, a flat array of x's dtype)
        taken without conversion. The gradient is copied (0.1 µs): a ``jac`` that fills and
        returns one buffer would otherwise change the previous gradient, which the loop keeps."""
        xu = self._to_user(x)
        f, g = self._fun(xu), self._jac(xu)
        f = float(f) if type(f) is float or type(f) is np.float64 else to_float(f)
        if type(g) is np.ndarray and g.dtype == self._np_dtype and g.shape == self._flat_shape:
            g = g.copy()
        else:
            g = self._to_flat(g, "jac", self.n)
        self.nfev += 1
        self.njev += 1
        self._x, self._f, self._g = x, f, g
        return f, g

    def _to_flat(self, value: Any, what: str, size: int):
        if self.numpy_flat:
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().numpy()
            a = np.array(value, dtype=self._np_dtype).reshape(-1)  # a copy: see above
            if a.size != size:
                raise ValueError(f"{what} must return {size} values, got {a.size}")
            return a
        if isinstance(value, torch.Tensor):
            t = value if value.dtype == self.dtype and value.device == self.device else None
        else:
            value, t = np.asarray(value), None
        if t is None:
            t = torch.as_tensor(value).to(dtype=self.dtype, device=self.device)
        t = t.reshape(-1)
        if t.numel() != size:
            raise ValueError(f"{what} must return {size} values, got {t.numel()}")
        return t

    def _fd_grad(self, x, f0: float):
        xn = x if self.numpy_flat else x.detach().cpu().numpy()
        if self.numpy_flat:

            def call(v):
                return self._fun(self._to_user(v))
        else:

            def call(v):
                t = torch.from_numpy(v).to(device=self.device)
                t = t if v.dtype.kind == "c" else t.to(self.dtype)
                return self._fun(self._to_user(t))

        lower, upper = self.bounds if self.bounds is not None else (None, None)
        g, calls = fd_gradient(call, xn, f0, self._fd, self._fd_abs, self._fd_rel, lower, upper)
        self.nfev += calls
        return self._to_flat(g, "jac", self.n)

    def _evaluate(self, x) -> tuple[float, Any]:
        xu = self._to_user(x)
        if self._jac is True:
            out = self._fun(xu)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("with jac=True, fun must return a pair (f, g)")
            f, g = out
        elif self._fd is not None:
            f = to_float(self._fun(xu))
            return f, self._fd_grad(x, f)
        else:
            f, g = self._fun(xu), self._jac(xu)
        return to_float(f), self._to_flat(g, "jac", self.n)

    def _hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._hessp_fn is not None:
            hv = self._hessp_fn(self._to_user(x), self._to_user(v))
            return self._to_flat(hv, "hessp", self.n)
        if self._hess_fn is not None:
            return self._hess_matrix(x) @ v
        return super()._hessp(x, v)

    def _hess_matrix(self, x: torch.Tensor) -> torch.Tensor:
        H = self._hess_fn(self._to_user(x))
        if hasattr(H, "toarray"):  # a SciPy sparse matrix
            H = H.toarray()
        return self._to_flat(H, "hess", self.n * self.n).reshape(self.n, self.n)

    def _hess(self, x: torch.Tensor) -> torch.Tensor:
        if self._hess_fn is not None:
            return self._hess_matrix(x)
        return super()._hess(x)


class UserHessianObjective(AutogradObjective):
    """Autograd f and g, with the user's ``hess`` / ``hessp`` (torch tensors in and out)."""

    def __init__(self, base: AutogradObjective, hess, hessp, shape) -> None:
        super().__init__(base._call, base._bind, base.n, base.dtype, base.device)
        self._hess_fn, self._hessp_fn, self._shape = hess, hessp, tuple(shape)

    def _u(self, t: torch.Tensor) -> torch.Tensor:
        return t.detach().view(self._shape)

    def _hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._hessp_fn is not None:
            return torch.as_tensor(self._hessp_fn(self._u(x), self._u(v))).to(x).reshape(-1)
        return self._hess(x) @ v

    def _hess(self, x: torch.Tensor) -> torch.Tensor:
        if self._hess_fn is not None:
            return torch.as_tensor(self._hess_fn(self._u(x))).to(x).reshape(self.n, self.n)
        eye = torch.eye(self.n, dtype=self.dtype, device=self.device)
        return symmetrize(torch.stack([self._hessp(x, eye[i]) for i in range(self.n)]))
