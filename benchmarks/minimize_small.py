"""optkit.minimize vs scipy.optimize.minimize on small problems with NumPy callables.

The question: is optkit at least as fast as SciPy where SciPy is at home — a NumPy function of
2–200 variables with its gradient, called as SciPy's tutorial calls it? Every problem is written
once in NumPy (f and ∇f as separate callables, ``jac=callable``) and both libraries run with
their defaults (gtol = 1e-5, default line searches, default stopping tests), the whole
``minimize`` call timed. Pairings: optkit BFGS / SciPy BFGS, optkit L-BFGS-B / SciPy L-BFGS-B
and optkit's own lbfgs / SciPy L-BFGS-B; a fourth, optkit L-BFGS-B / SciPy L-BFGS-B with the
same bounds, runs its own problems (BOUNDED).

Problems: Rosenbrock n = 2, 5, 10, 20, 50 (the tutorial's start for n = 5, [-1.2, 1, ...]
otherwise), convex quadratics ½xᵀAx − bᵀx with κ = 100, n = 20, 50, 100, 200, and an
L2-regularized logistic regression (200 samples, 10 and 20 features). Bounded: Rosenbrock
n = 2, 5, 10, 20, 50 with [-2, 0.8] on every coordinate (active at the solution) and on every
other one (None elsewhere), box-constrained quadratics (κ = 100, n = 20 … 200, box [-0.5, 0.5],
active), nonnegative least squares (100 × 20, 200 × 50) and the logistic regression of 20
features with its weights boxed in [-0.2, 0.2].

Timing: ``--rounds`` interleaved rounds (each round runs every problem and pairing once, the
two libraries in alternating order); per problem the median over rounds; the ratio optkit /
SciPy per problem, and its median over problems. The clock is the CPU time of the calling
thread (``time.thread_time``) by default: on a shared machine a run of a millisecond is often
preempted, and wall-clock time then measures the neighbours; ``--clock wall`` for wall time.
BLAS runs single-threaded for both libraries (threadpoolctl): a multi-threaded BLAS on a
50-vector spends its time waking threads, and every thread's work then counts. Printed with the
load average.

    python benchmarks/minimize_small.py [--rounds 15] [--clock cpu|wall] [--engine c|numpy]

Targets: median time ratio <= 1.0 and median nfev ratio <= 1.0 in the pairings of the same
algorithm (BFGS, L-BFGS-B, L-BFGS-B with bounds). optkit lbfgs / SciPy L-BFGS-B is printed for
reference: optkit's own L-BFGS (the lecture's two-loop recursion, a strong-Wolfe search, the
gradient test alone) is another algorithm, and takes more evaluations on the quadratics by
design (no relative-reduction test).

optkit's L-BFGS-B runs its C engine here (float64, optkit.minimization.lbfgsb.HAVE_CORE);
``--engine numpy`` runs the NumPy engine instead, for the comparison between the two.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import scipy
import scipy.optimize as so
from scipy.optimize import rosen, rosen_der
from threadpoolctl import threadpool_limits

import optkit

PAIRS = [("BFGS", "BFGS"), ("L-BFGS-B", "L-BFGS-B"), ("lbfgs", "L-BFGS-B")]


def rosenbrock(n):
    x0 = np.array([1.3, 0.7, 0.8, 1.9, 1.2]) if n == 5 else np.resize([-1.2, 1.0], n)
    return f"rosenbrock n={n}", rosen, rosen_der, x0


def quadratic(n, cond=100.0, seed=0):
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (Q * np.geomspace(1.0, cond, n)) @ Q.T
    A = 0.5 * (A + A.T)
    b = rng.standard_normal(n)

    def f(x):
        return 0.5 * x @ A @ x - b @ x

    def g(x):
        return A @ x - b

    return f"quadratic n={n}", f, g, np.zeros(n)


def logistic(d, m=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((m, d))
    y = np.where(X @ rng.standard_normal(d) + 0.5 * rng.standard_normal(m) > 0, 1.0, -1.0)

    def f(w):
        return np.sum(np.logaddexp(0.0, -y * (X @ w))) + 0.5 * w @ w

    def g(w):
        return -X.T @ (y / (1.0 + np.exp(y * (X @ w)))) + w

    return f"logistic {m}x{d}", f, g, np.zeros(d)


PROBLEMS = [
    *(rosenbrock(n) for n in (2, 5, 10, 20, 50)),
    *(quadratic(n) for n in (20, 50, 100, 200)),
    logistic(10),
    logistic(20),
]


def nnls(m, n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    b = A @ rng.standard_normal(n) + 0.1 * rng.standard_normal(m)  # ~half the signs negative

    def f(x):
        r = A @ x - b
        return 0.5 * r @ r

    def g(x):
        return A.T @ (A @ x - b)

    return f"nnls {m}x{n}", f, g, np.ones(n), [(0.0, None)] * n


def bounded(problem, pairs, label):
    name, f, g, x0 = problem
    return f"{name} {label}", f, g, x0, pairs


BOUNDED = [
    *(bounded(rosenbrock(n), [(-2.0, 0.8)] * n, "all") for n in (2, 5, 10, 20, 50)),
    *(
        bounded(
            rosenbrock(n), [(-2.0, 0.8) if i % 2 == 0 else (None, None) for i in range(n)], "half"
        )
        for n in (2, 5, 10, 20, 50)
    ),
    *(bounded(quadratic(n), [(-0.5, 0.5)] * n, "box") for n in (20, 50, 100, 200)),
    nnls(100, 20),
    nnls(200, 50),
    bounded(logistic(20), [(-0.2, 0.2)] * 20, "box"),
]
BOUNDED_PAIR = ("L-BFGS-B bounds", "L-BFGS-B")


CLOCK = {"cpu": time.thread_time, "wall": time.perf_counter}


ENGINE = {"engine": "auto"}  # optkit L-BFGS-B's engine (--engine)


def run(lib, method, fun, jac, x0, clock=time.thread_time, bounds=None):
    method = method.removesuffix(" bounds")
    options = ENGINE if lib == "optkit" and method == "L-BFGS-B" else None
    minimize = optkit.minimize if lib == "optkit" else so.minimize
    t = clock()
    r = minimize(fun, x0, method=method, jac=jac, bounds=bounds, options=options)
    return clock() - t, int(r.nfev), float(r.fun), bool(r.success)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--clock", choices=sorted(CLOCK), default="cpu")
    ap.add_argument("--engine", choices=["c", "numpy"], default="c")
    args = ap.parse_args()
    ENGINE["engine"] = args.engine
    clock = CLOCK[args.clock]
    times: dict = {}
    info: dict = {}
    with threadpool_limits(1):
        for _, fun, jac, x0 in PROBLEMS[:2]:  # warm up imports and first calls
            for ours, theirs in PAIRS:
                run("optkit", ours, fun, jac, x0)
                run("scipy", theirs, fun, jac, x0)
        for r in range(args.rounds):
            for name, fun, jac, x0 in PROBLEMS:
                for ours, theirs in PAIRS:
                    order = [("optkit", ours), ("scipy", theirs)]
                    for lib, method in order if r % 2 == 0 else order[::-1]:
                        sec, nfev, f, ok = run(lib, method, fun, jac, x0, clock)
                        times.setdefault((name, ours, lib), []).append(sec)
                        info[name, ours, lib] = (nfev, f, ok)
            ours, theirs = BOUNDED_PAIR
            for name, fun, jac, x0, pairs in BOUNDED:
                order = [("optkit", ours), ("scipy", theirs)]
                for lib, method in order if r % 2 == 0 else order[::-1]:
                    sec, nfev, f, ok = run(lib, method, fun, jac, x0, clock, pairs)
                    times.setdefault((name, ours, lib), []).append(sec)
                    info[name, ours, lib] = (nfev, f, ok)
    load = os.getloadavg()
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; numpy {np.__version__}, scipy "
        f"{scipy.__version__}, optkit {optkit.__version__} (L-BFGS-B engine: {args.engine}); "
        f"{args.clock} time, medians of "
        f"{args.rounds} interleaved rounds, BLAS single-threaded\n"
    )
    for (ours, theirs), problems in [*((p, PROBLEMS) for p in PAIRS), (BOUNDED_PAIR, BOUNDED)]:
        print(f"optkit {ours} vs SciPy {theirs}")
        print(
            f"  {'problem':22s} {'optkit ms':>10s} {'SciPy ms':>9s} {'time ratio':>10s} "
            f"{'nfev':>9s} {'nfev ratio':>10s}  f optkit / SciPy"
        )
        t_ratios, n_ratios = [], []
        for name, *_ in problems:
            a = statistics.median(times[name, ours, "optkit"])
            b = statistics.median(times[name, ours, "scipy"])
            (na, fa, oka), (nb, fb, okb) = info[name, ours, "optkit"], info[name, ours, "scipy"]
            t_ratios.append(a / b)
            n_ratios.append(na / nb)
            flag = (
                ""
                if oka and okb
                else "  (not converged: " + ("optkit" if not oka else "SciPy") + ")"
            )
            print(
                f"  {name:22s} {a * 1e3:10.2f} {b * 1e3:9.2f} {a / b:10.2f} "
                f"{f'{na}/{nb}':>9s} {na / nb:10.2f}  {fa:.3g} / {fb:.3g}{flag}"
            )
        print(
            f"  {'median':22s} {'':10s} {'':9s} {statistics.median(t_ratios):10.2f} "
            f"{'':9s} {statistics.median(n_ratios):10.2f}\n"
        )


if __name__ == "__main__":
    main()
