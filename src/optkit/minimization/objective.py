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

__all__ = ["AutogradObjective", "CallableObjective", "Objective", "to_float"]


def to_float(value: Any, what: str = "fun") -> float:
    """Convert a scalar returned by user code to a Python float, or raise.

    Raises:
        ValueError: ``value`` has more than one element.
        TypeError: ``value`` is not a number.
    """
    if type(value) is float:
        return value
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
        return c is not None and (c is x or (c.shape == x.shape and torch.equal(c, x)))

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
        H = torch.stack([self._hessp(x, eye[i]) for i in range(self.n)])
        return 0.5 * (H + H.T)


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
                H = H.reshape(self.n, self.n).detach()
                return 0.5 * (H + H.T)
            except RuntimeError:
                pass  # an op without a batching rule: fall back to n passes below
        H = torch.stack([self._hessp(x, eye[i]) for i in range(self.n)])
        return 0.5 * (H + H.T)


class CallableObjective(Objective):
    """Derivatives from user callables, SciPy conventions; the NumPy bridge lives here.

    Args:
        fun: ``fun(x) -> f``, or ``(f, g)`` when ``jac is True``.
        jac: ``True`` or ``jac(x) -> g``.
        hess: Optional ``hess(x) -> n × n``.
        hessp: Optional ``hessp(x, v) -> H·v``.
        to_user: Flat torch tensor -> what the callables receive (user shape, torch or NumPy).
        n, dtype, device: Shape of the flat problem.
    """

    def __init__(self, fun, jac, hess, hessp, to_user, n, dtype, device) -> None:
        super().__init__(n, dtype, device)
        self._fun, self._jac, self._hess_fn, self._hessp_fn = fun, jac, hess, hessp
        self._to_user = to_user

    def _to_torch(self, value: Any, what: str, size: int) -> torch.Tensor:
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

    def _evaluate(self, x: torch.Tensor) -> tuple[float, torch.Tensor]:
        xu = self._to_user(x)
        if self._jac is True:
            out = self._fun(xu)
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError("with jac=True, fun must return a pair (f, g)")
            f, g = out
        else:
            f, g = self._fun(xu), self._jac(xu)
        return to_float(f), self._to_torch(g, "jac", self.n)

    def _hessp(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self._hessp_fn is not None:
            return self._to_torch(
                self._hessp_fn(self._to_user(x), self._to_user(v)), "hessp", self.n
            )
        if self._hess_fn is not None:
            return self._hess_matrix(x) @ v
        return super()._hessp(x, v)

    def _hess_matrix(self, x: torch.Tensor) -> torch.Tensor:
        return self._to_torch(self._hess_fn(self._to_user(x)), "hess", self.n * self.n).view(
            self.n, self.n
        )

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
        return torch.stack([self._hessp(x, eye[i]) for i in range(self.n)])
