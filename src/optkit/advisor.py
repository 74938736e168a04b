r"""Which method for my problem? Measure it, then answer in the lecture's terms.

:func:`advise` times the pieces every method is made of on *your* function at *your* x0 —
f, f with ∇f, a Hessian-vector product, a dense Hessian, the per-iteration linear algebra of
Newton (Cholesky, O(n³)), BFGS (an n × n update, O(n²)) and L-BFGS (the two-loop recursion,
O(m·n)), and the fixed cost of one iteration of :func:`optkit.minimize` — and the memory each
method keeps (dense Hessian / BFGS matrix 8n² bytes in float64, L-BFGS history 2·m·n numbers).
It also measures the curvature at x0 (extreme eigenvalues of ∇²f by Lanczos on H·v products)
and whether f is quadratic (H·v identical at two points).

The lecture's "when to use which" then decides:

- **Minibatched data** (``minibatched=True``): second-order methods need the full batch (the
  lecture: they must be trained *in batch*) and large data rewards fast updates, so a
  first-order optimizer: AdamW (the state of the art until 2025), runner-up SGD with momentum.
- **Full batch**: each candidate's time to solution is estimated as (iterations) × (measured
  cost of one iteration) and the two cheapest are the answer and the runner-up. The iteration
  counts are rough, from the methods' convergence theory and this library's test set:

  ============  ==================================  =====================================
  method        iterations (f quadratic)            iterations (otherwise)
  ============  ==================================  =====================================
  newton        1 (exact on a quadratic)            15 (quadratic local convergence)
  newton-cg     10 outer × min(n, 2 + √κ/2) H·v     20 outer × min(n, 2 + √κ/2) H·v
  bfgs          10 + min(n, 3√κ)                    40 (superlinear, quasi-Newton)
  lbfgs         10 + 5√κ                            40 (45 when n > m: less history)
  gd (lr=1/L)   κ·ln(10⁸)                           κ·ln(10⁸), at least 1000
  ============  ==================================  =====================================

  (κ = condition number of ∇²f(x0); 1e3 when ∇²f(x0) is indefinite.) Methods whose memory
  exceeds ``memory_limit`` are excluded — the lecture's "BFGS is O(n²) in memory".

The check ``benchmarks/advise_check.py`` races the methods on the test set and reports how often
the advised one is within 1.5× of the fastest.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

__all__ = ["Advice", "advise"]

_HISTORY = 10  # L-BFGS m, optkit.minimize's default
_GD_TOL = math.log(1e8)  # gd needs about κ·ln(1/ε) iterations for a relative accuracy ε


@dataclass
class Advice:
    """What :func:`advise` measured and recommends.

    Attributes:
        method: The recommended :func:`optkit.minimize` method (or, minibatched, the
            ``optkit`` optimizer's method name: ``"adamw"``, ``"momentum"``).
        options: Options to pass with it (e.g. ``{"lr": 1/L}`` for gd), possibly empty.
        reasons: Why, one sentence each, in the lecture's terms with the measured numbers.
        runner_up: The second choice.
        runner_up_reason: Why it is second.
        n: Number of variables.
        minibatched: As given.
        dtype: dtype of x0.
        time_f: Seconds for one f(x).
        time_grad: Seconds for f and ∇f together (one forward + one backward).
        time_hvp: Seconds for one Hessian-vector product (double backward), or None.
        time_hess: Seconds for a dense Hessian, or None; ``hess_estimated`` says whether it
            was measured or estimated as n × ``time_hvp`` (large n).
        hess_estimated: See ``time_hess``.
        time_iteration: Fixed cost of one :func:`optkit.minimize` iteration on this machine.
        linalg: Seconds per iteration of each method's own linear algebra (``"newton"``:
            Cholesky solve, ``"bfgs"``: n × n update, ``"lbfgs"``: two-loop recursion).
        memory: Bytes each method keeps: ``"x"``, ``"dense_hessian"`` (Newton),
            ``"bfgs_matrix"``, ``"lbfgs_history"`` (m = 10).
        curvature: ``(λ_min, λ_max)`` of ∇²f(x0) (estimates by Lanczos when n > 30), or None.
        quadratic: Whether H·v was the same at two points (f quadratic).
        estimates: Seconds to solution per candidate method (full batch): measured by the
            trial run when it finished, else the cost model's estimate.
        trial: Per method tried: ``{"seconds", "solved", "fun", "nit"}`` of its trial run.
        seconds: Time spent measuring.
    """

    method: str
    options: dict[str, Any]
    reasons: list[str]
    runner_up: str
    runner_up_reason: str
    n: int
    minibatched: bool
    dtype: str
    time_f: float
    time_grad: float
    time_hvp: float | None
    time_hess: float | None
    hess_estimated: bool
    time_iteration: float
    linalg: dict[str, float]
    memory: dict[str, int]
    curvature: tuple[float, float] | None
    quadratic: bool
    estimates: dict[str, float] = field(default_factory=dict)
    trial: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def condition(self) -> float | None:
        """κ = ``|λ_max| / λ_min`` when ∇²f(x0) is positive definite, else None."""
        if self.curvature is None:
            return None
        lo, hi = self.curvature
        return abs(hi) / lo if lo > 0 else None

    def summary(self) -> str:
        """The advice as text (what ``optkit advise`` prints)."""
        lines = [f"recommended: {self.method}" + (f" {self.options}" if self.options else "")]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"runner-up: {self.runner_up} — {self.runner_up_reason}")
        return "\n".join(lines)


# --- measuring ------------------------------------------------------------------------------
def _timeit(fn: Callable[[], Any], budget: float = 0.05, max_reps: int = 20) -> float:
    """Best time of ``fn`` over a few calls after an untimed warm-up, within about ``budget``
    seconds (at least two timed calls)."""
    fn()
    best, spent, reps = math.inf, 0.0, 0
    while reps < 2 or (spent < budget and reps < max_reps):
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent, reps = min(best, dt), spent + dt, reps + 1
    return best


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if b < 1000 or unit == "PB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.3g} {unit}"
        b /= 1000
    return ""  # pragma: no cover


def _fmt_s(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


@functools.cache
def _iteration_overhead() -> float:
    """Seconds of fixed cost per :func:`optkit.minimize` iteration on this machine: BFGS on the
    2-D Rosenbrock function, minus the time of its f and ∇f evaluations, per iteration."""
    from .minimization import minimize

    x0 = torch.tensor([-1.2, 1.0], dtype=torch.float64)

    def fun(x):
        return 100.0 * (x[1] - x[0] ** 2) ** 2 + (1.0 - x[0]) ** 2

    res = minimize(fun, x0, method="bfgs")
    total = _timeit(lambda: minimize(fun, x0, method="bfgs"), budget=0.05, max_reps=3)
    xr = x0.clone().requires_grad_(True)
    fg = _timeit(lambda: torch.autograd.grad(fun(xr), xr), budget=0.01)
    return max((total - res.nfev * fg) / max(res.nit, 1), 1e-5)


class _Probe:
    """f, ∇f and H·v of a user function at one point, by autograd."""

    def __init__(self, fun: Callable, x0: torch.Tensor) -> None:
        self.fun, self.shape = fun, x0.shape
        self.x0 = x0.detach().clone()

    def f(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.fun(x.view(self.shape))

    def grad(self, x: torch.Tensor, create_graph: bool = False):
        x = x.detach().view(self.shape).requires_grad_(True)
        with torch.enable_grad():
            f = self.fun(x)
            if not isinstance(f, torch.Tensor) or f.numel() != 1:
                raise ValueError("fun must return a scalar torch tensor (derivatives by autograd)")
            (g,) = torch.autograd.grad(
                f.reshape(()), x, create_graph=create_graph, allow_unused=True
            )
        if g is None:
            g = torch.zeros_like(x)
        return x, g

    def hvp_at(self, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        xg, g = self.grad(x, create_graph=True)
        if not g.requires_grad:  # f is (at most) linear
            return lambda v: torch.zeros(v.numel(), dtype=v.dtype, device=v.device)

        def hvp(v: torch.Tensor) -> torch.Tensor:
            (hv,) = torch.autograd.grad(
                g, xg, v.view(self.shape), retain_graph=True, allow_unused=True
            )
            return torch.zeros_like(v) if hv is None else hv.reshape(-1).detach()

        return hvp


def _lanczos(hvp: Callable, n: int, like: torch.Tensor, steps: int) -> tuple[float, float]:
    """Extreme eigenvalues of H from ``steps`` Lanczos steps (full reorthogonalization)."""
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(n, generator=gen, dtype=torch.float64).to(like)
    q = q / torch.linalg.vector_norm(q)
    Q, alphas, betas = [q], [], []
    for j in range(steps):
        w = hvp(Q[j])
        a = float(w @ Q[j])
        alphas.append(a)
        for qi in Q:  # full reorthogonalization: twice is enough
            w = w - (w @ qi) * qi
        for qi in Q:
            w = w - (w @ qi) * qi
        b = float(torch.linalg.vector_norm(w))
        if j == steps - 1 or b <= 1e-12 * max(1.0, max(abs(x) for x in alphas)):
            break
        betas.append(b)
        Q.append(w / b)
    T = (
        np.diag(alphas)
        + np.diag(betas[: len(alphas) - 1], 1)
        + np.diag(betas[: len(alphas) - 1], -1)
    )
    ev = np.linalg.eigvalsh(T)
    return float(ev[0]), float(ev[-1])


def advise(
    fun: Callable,
    x0: Any,
    minibatched: bool = False,
    *,
    memory_limit: float = 2e9,
    history: int = _HISTORY,
    trial: float = 1.0,
) -> Advice:
    """Measure ``fun`` at ``x0`` and recommend a method, with reasons and a runner-up.

    Args:
        fun: ``fun(x) -> scalar tensor``, differentiable by torch autograd (as for
            :func:`optkit.minimize` with ``jac=None``).
        x0: Starting point (tensor, array or list); its dtype is kept (floats become float64).
        minibatched: Whether ``fun`` is a loss on a minibatch (stochastic; the full batch is
            too large). Then a first-order optimizer is recommended.
        memory_limit: Bytes a method may keep (dense Hessian, BFGS matrix); default 2 GB.
        history: L-BFGS m, for its memory and cost.
        trial: Seconds (in total) for trial runs of the second-order candidates; a trial that
            reaches the solution is the best measurement there is and replaces the model's
            estimate. 0 disables them (the cost model alone decides).

    Returns:
        An :class:`Advice` (measurements, recommendation, reasons, runner-up).

    Raises:
        ValueError: ``x0`` empty or not finite, or ``fun`` not returning a scalar tensor.

    Example:
        >>> import torch, optkit
        >>> rosen = lambda x: (100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2).sum()
        >>> a = optkit.advise(rosen, torch.tensor([-1.2, 1.0], dtype=torch.float64))
        >>> a.method in ("newton", "newton-cg", "bfgs", "lbfgs"), a.n, a.memory["dense_hessian"]
        (True, 2, 32)
        >>> optkit.advise(rosen, [-1.2, 1.0], minibatched=True).method
        'adamw'
    """
    start = time.perf_counter()
    x = _as_tensor(x0)
    n = x.numel()
    itemsize = x.element_size()
    probe = _Probe(fun, x)
    flat = x.reshape(-1)

    time_f = _timeit(lambda: probe.f(flat))
    time_grad = _timeit(lambda: probe.grad(flat))
    memory = {
        "x": n * itemsize,
        "dense_hessian": n * n * itemsize,
        "bfgs_matrix": n * n * itemsize,
        "lbfgs_history": 2 * history * n * itemsize,
    }
    time_iteration = _iteration_overhead()

    # Second-order information: H·v, curvature, quadratic or not.
    time_hvp = time_hess = None
    hess_estimated = False
    curvature = None
    quadratic = False
    try:
        hvp = probe.hvp_at(flat)
        v = torch.ones_like(flat) / math.sqrt(n)
        time_hvp = _timeit(lambda: hvp(v), budget=0.03)
        curvature = _lanczos(hvp, n, flat, min(n, 30))
        quadratic = _is_quadratic(probe, flat, hvp)
    except RuntimeError:  # no double backward for some op: first-order information only
        pass

    linalg = _linalg_costs(n, x.dtype, history, memory, memory_limit)
    if time_hvp is not None and memory["dense_hessian"] <= memory_limit:
        if n <= 2000 and n * time_hvp <= 2.0:
            time_hess = _dense_hessian_time(fun, x)
        else:
            time_hess, hess_estimated = n * time_hvp, True

    advice = Advice(
        method="",
        options={},
        reasons=[],
        runner_up="",
        runner_up_reason="",
        n=n,
        minibatched=bool(minibatched),
        dtype=str(x.dtype).replace("torch.", ""),
        time_f=time_f,
        time_grad=time_grad,
        time_hvp=time_hvp,
        time_hess=time_hess,
        hess_estimated=hess_estimated,
        time_iteration=time_iteration,
        linalg=linalg,
        memory=memory,
        curvature=curvature,
        quadratic=quadratic,
    )
    if minibatched:
        _advise_minibatched(advice)
    else:
        _advise_full_batch(advice, fun, x, memory_limit, history, trial)
    advice.seconds = time.perf_counter() - start
    return advice


def _as_tensor(x0: Any) -> torch.Tensor:
    if isinstance(x0, torch.Tensor):
        x = x0.detach().clone()
        if not x.is_floating_point():
            x = x.to(torch.get_default_dtype())
    else:
        x = torch.as_tensor(np.asarray(x0, dtype=np.float64))
    if x.numel() == 0:
        raise ValueError("x0 must have at least one element")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x0 must be finite (it contains NaN or Inf)")
    return x


def _is_quadratic(probe: _Probe, x: torch.Tensor, hvp: Callable) -> bool:
    """H·v at x and at a second point agree to rounding: the Hessian is constant."""
    gen = torch.Generator().manual_seed(1)
    v = torch.randn(x.numel(), generator=gen, dtype=torch.float64).to(x)
    step = torch.randn(x.numel(), generator=gen, dtype=torch.float64).to(x)
    scale = 0.1 * (1.0 + float(torch.linalg.vector_norm(x))) / math.sqrt(x.numel())
    hv0 = hvp(v)
    hv1 = probe.hvp_at(x + scale * step)(v)
    size = float(torch.linalg.vector_norm(hv0)) + float(torch.linalg.vector_norm(hv1))
    tol = 1e3 * torch.finfo(x.dtype).eps * max(size, 1e-300)
    return size > 0 and float(torch.linalg.vector_norm(hv1 - hv0)) <= tol


def _dense_hessian_time(fun: Callable, x: torch.Tensor) -> float:
    """Time a dense Hessian exactly as ``minimize(method="newton")`` builds it."""
    from .minimization.objective import AutogradObjective

    flat = x.reshape(-1).clone()
    obj = AutogradObjective.from_function(fun, x.shape, x.dtype, x.device, keep_graph=True)
    obj.value_and_grad(flat)
    return _timeit(lambda: obj.hess(flat), budget=0.05, max_reps=5)


def _linalg_costs(n, dtype, history, memory, memory_limit) -> dict[str, float]:
    """Seconds per iteration of each method's own algebra, timed at size n (or extrapolated)."""
    g = torch.randn(n, dtype=dtype, generator=torch.Generator().manual_seed(2))
    out: dict[str, float] = {}
    # L-BFGS two-loop: 2m dot products and 2m axpys on n-vectors.
    s = [torch.randn(n, dtype=dtype) for _ in range(2)]

    def two_loop():
        q = g.clone()
        for i in range(2 * history):
            a = float(s[i % 2] @ q)
            q.add_(s[(i + 1) % 2], alpha=1e-3 * a)
        return q

    out["lbfgs"] = _timeit(two_loop, budget=0.02)
    m = min(n, 1500)  # time dense algebra at a size that fits; scale as n² and n³
    if memory["bfgs_matrix"] <= memory_limit:
        H = torch.eye(m, dtype=dtype)
        v = g[:m].clone()

        def bfgs_update():
            Hy = H @ v
            H.addr_(v, v, alpha=1e-12)
            H.addr_(Hy, v, alpha=-1e-12)
            H.addr_(v, Hy, alpha=-1e-12)
            return H @ v

        out["bfgs"] = _timeit(bfgs_update, budget=0.02) * (n / m) ** 2
        A = torch.eye(m, dtype=dtype) * 2.0
        out["newton"] = (
            _timeit(lambda: torch.cholesky_solve(v[:, None], torch.linalg.cholesky(A)), budget=0.02)
            * (n / m) ** 3
        )
    return out


# --- deciding -------------------------------------------------------------------------------
_MINIBATCH_REASON = (
    "minibatched: second-order methods need the full batch (the lecture: they train in batch "
    "only), and for large data or models fast updates pay"
)


def _advise_minibatched(a: Advice) -> None:
    a.method, a.options = "adamw", {"lr": 1e-3, "weight_decay": 1e-2}
    a.reasons = [
        _MINIBATCH_REASON,
        f"one gradient costs {_fmt_s(a.time_grad)}; AdamW keeps two EWMAs of it (v, s: "
        f"{_fmt_bytes(2 * a.memory['x'])}), is robust to the scale of each coordinate "
        "(RMSProp's rescaling) and was the state of the art until 2025",
    ]
    a.runner_up = "momentum"
    a.runner_up_reason = (
        f"SGD with momentum keeps one buffer ({_fmt_bytes(a.memory['x'])}) instead of two; "
        "often as good with a tuned learning rate, but more sensitive to it"
    )


def _iterations(a: Advice, history: int) -> dict[str, tuple[float, float]]:
    """(iterations, H·v products) per method — the table in the module docstring."""
    lo, hi = a.curvature if a.curvature is not None else (math.nan, math.nan)
    kappa = abs(hi) / lo if lo > 0 else 1e3
    root = math.sqrt(kappa)
    cg = min(a.n, 2 + root / 2)
    if a.quadratic:
        its = {
            "newton": (1, 0),
            "newton-cg": (10, 10 * cg),
            "bfgs": (10 + min(a.n, 3 * root), 0),
            "lbfgs": (10 + 5 * root, 0),
        }
    else:
        its = {
            "newton": (15, 0),
            "newton-cg": (20, 20 * cg),
            "bfgs": (40, 0),
            "lbfgs": (40 if a.n <= history else 45, 0),
        }
    its["gd"] = (max(kappa * _GD_TOL, 1.0 if a.quadratic else 1000.0), 0)
    return its


def _out_of_time(start: float, share: float, gnorms: list[float]) -> Callable[..., bool]:
    """A :func:`optkit.minimize` callback that records ‖g‖∞ and stops after ``share`` seconds."""

    def callback(intermediate_result) -> bool:
        g = torch.as_tensor(intermediate_result.jac).reshape(-1)
        gnorms.append(float(torch.linalg.vector_norm(g, math.inf)))
        return time.perf_counter() - start > share

    return callback


def _trial_runs(fun, x, a: Advice, budget: float) -> None:
    """Run each second-order candidate for at most its share of ``budget`` seconds; a run that
    converges gives the measured time to solution (best of two when it is fast).

    Each method first runs one untimed iteration: the first call of a method in a process pays
    one-time costs (lazy imports, torch's first batched double backward, LAPACK set-up) that
    can exceed a whole solve of a small problem, so without it the advice would depend on what
    the process had run before.
    """
    from .minimization import minimize

    candidates = [m for m in ("newton", "newton-cg", "bfgs", "lbfgs") if m in a.estimates]
    candidates = [m for m in candidates if a.estimates[m] <= 100 * budget]
    if not candidates:
        return
    share = budget / len(candidates)
    for m in candidates:
        minimize(fun, x, method=m, options={"maxiter": 1})  # warm-up, not timed
        best, res, gnorms = math.inf, None, []
        for _ in range(2):
            start = time.perf_counter()
            gnorms = []

            res = minimize(fun, x, method=m, callback=_out_of_time(start, share, gnorms))
            elapsed = time.perf_counter() - start
            if not res.success:
                best = elapsed
                break
            best = min(best, elapsed)
            if elapsed > share / 4:
                break
        a.trial[m] = {
            "seconds": best,
            "solved": bool(res.success),
            "fun": float(res.fun),
            "nit": int(res.nit),
            "projected": _projected(gnorms, best),
        }
    solved = [t["fun"] for t in a.trial.values() if t["solved"] and math.isfinite(t["fun"])]
    f_best = min(solved, default=math.inf)
    for m, t in a.trial.items():
        if t["solved"] and t["fun"] - f_best <= 1e-6 * max(1.0, abs(f_best)):
            a.estimates[m] = t["seconds"]
        elif t["solved"]:  # converged, but to a worse stationary point
            t["worse"] = True
            a.estimates[m] = math.inf
        else:  # not finished in its share: at least twice that, or what its progress says
            a.estimates[m] = max(a.estimates[m], 2 * t["seconds"], t["projected"])


def _projected(gnorms: list[float], seconds: float, gtol: float = 1e-5) -> float:
    """Seconds to reach ‖g‖∞ ≤ gtol at the rate log‖g‖ fell over the second half of a trial."""
    logs = [math.log(g) for g in gnorms if g > 0 and math.isfinite(g)]
    if len(logs) < 4:
        return 0.0
    half = len(logs) // 2
    rate = (logs[half] - logs[-1]) / (len(logs) - 1 - half)  # decrease per iteration
    if rate <= 0:
        return math.inf  # no progress: it will not finish soon
    remaining = (logs[-1] - math.log(gtol)) / rate
    return seconds + max(remaining, 0.0) * seconds / len(logs)


def _advise_full_batch(a, fun, x, memory_limit: float, history: int, trial: float) -> None:
    its = _iterations(a, history)
    per_iter = {
        "gd": a.time_grad + a.time_iteration,
        "lbfgs": 1.2 * a.time_grad + a.time_iteration + a.linalg["lbfgs"],
    }
    if "bfgs" in a.linalg:
        per_iter["bfgs"] = 1.2 * a.time_grad + a.time_iteration + a.linalg["bfgs"]
    if a.time_hvp is not None:
        hv_per_outer = its["newton-cg"][1] / its["newton-cg"][0]
        per_iter["newton-cg"] = 1.2 * a.time_grad + a.time_iteration + hv_per_outer * a.time_hvp
        if a.time_hess is not None and "newton" in a.linalg:
            per_iter["newton"] = (
                1.2 * a.time_grad + a.time_iteration + a.time_hess + a.linalg["newton"]
            )
    a.estimates = {m: its[m][0] * c for m, c in per_iter.items()}
    if trial > 0:
        _trial_runs(fun, x, a, trial)
    ranked = sorted(a.estimates, key=a.estimates.get)
    a.method, a.runner_up = ranked[0], ranked[1]
    if a.method == "gd":
        a.options = {"lr": 1.0 / abs(a.curvature[1])} if a.curvature else {}

    kappa = a.condition
    reasons = [
        f"full batch, n = {a.n}: the lecture's regime for second-order methods (small data sets "
        "and models with few parameters)"
        if a.memory["dense_hessian"] <= memory_limit
        else f"full batch, but n = {a.n}: a dense Hessian or BFGS matrix would take "
        f"{_fmt_bytes(a.memory['dense_hessian'])} (O(n²), over the {_fmt_bytes(memory_limit)} "
        f"limit); L-BFGS keeps m = {history} pairs (s, y): {_fmt_bytes(a.memory['lbfgs_history'])}"
        " (O(mn))",
        f"measured: ∇f {_fmt_s(a.time_grad)}"
        + (
            f", H·v {_fmt_s(a.time_hvp)}"
            if a.time_hvp is not None
            else ", no H·v (no double backward)"
        )
        + (
            f", dense Hessian {_fmt_s(a.time_hess)}"
            f"{' (estimated n·H·v)' if a.hess_estimated else ''}"
            f" = {a.time_hess / a.time_grad:.3g} gradients"
            if a.time_hess is not None
            else ""
        )
        + f"; fixed cost per iteration {_fmt_s(a.time_iteration)}",
    ]
    if a.quadratic:
        reasons.append("f is quadratic (H·v is the same at two points): a Newton step is exact")
    elif a.curvature is not None:
        lo, _hi = a.curvature
        reasons.append(
            f"∇²f(x0) has condition number ≈ {kappa:.3g}"
            if kappa is not None
            else f"∇²f(x0) is indefinite (λ_min ≈ {lo:.3g}): Newton needs its Hessian modified"
        )
    reasons.append(_why(a.method, a, history))
    if a.trial:
        reasons.append(
            "trial runs: " + ", ".join(_trial_text(m, a) for m in ranked if m in a.trial)
        )
    reasons.append(
        "time to solution (measured, else estimated): "
        + ", ".join(f"{m} {_fmt_s(a.estimates[m])}" for m in ranked)
    )
    a.reasons = reasons
    a.runner_up_reason = _why(a.runner_up, a, history) + (
        f" (estimated {a.estimates[a.runner_up] / a.estimates[a.method]:.2g}× the time)"
    )


def _trial_text(m: str, a: Advice) -> str:
    t = a.trial[m]
    if t.get("worse"):
        return f"{m} converged to a higher f ({t['fun']:.6g}: another stationary point)"
    if t["solved"]:
        return f"{m} solved it in {_fmt_s(t['seconds'])} ({_n_iterations(t['nit'])})"
    return f"{m} unfinished after {_fmt_s(t['seconds'])} ({_n_iterations(t['nit'])})"


def _n_iterations(k: int) -> str:
    """``"1 iteration"``, ``"2 iterations"``."""
    return f"{k} iteration" if k == 1 else f"{k} iterations"


def _why(method: str, a: Advice, history: int) -> str:
    if method == "newton":
        return (
            "Newton: quadratic local convergence, and here its cost — a dense Hessian "
            f"({_fmt_s(a.time_hess or 0)}) and an O(n³) Cholesky solve — is affordable"
        )
    if method == "newton-cg":
        return (
            "Newton-CG: Newton's step without forming H (conjugate gradients on H·v "
            "products), so the curvature is used at O(n) memory"
        )
    if method == "bfgs":
        return (
            "BFGS: approximates H⁻¹ from gradients alone (secant equation), superlinear, "
            f"its n × n matrix ({_fmt_bytes(a.memory['bfgs_matrix'])}) is small here"
        )
    if method == "lbfgs":
        return (
            f"L-BFGS: BFGS from the last m = {history} pairs (s, y), O(mn) memory "
            f"({_fmt_bytes(a.memory['lbfgs_history'])}) and cheap iterations; "
            "no Hessian needed"
        )
    return (
        "gradient descent with lr = 1/L: first-order updates are the cheapest, and the "
        "problem is well enough conditioned for them"
    )
