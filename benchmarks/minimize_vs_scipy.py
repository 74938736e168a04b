"""optkit.minimize vs SciPy and pytorch-minimize on optkit.problems.

Every solver gets exact derivatives from the same torch code (SciPy through a NumPy wrapper of
torch autograd), float64, gtol = 1e-5 where the method has one (SciPy Newton-CG and
pytorch-minimize's newton-cg / newton-exact stop on a step tolerance, xtol = 1e-5, instead).

A problem counts as solved when f <= f_star + 1e-6·max(1, |f_star|) (f_star: the value in
optkit.problems — the global minimum, or the one MGH report from the standard start).
Printed per pairing: problems solved, median nfev ratio optkit / anchor over the problems both
solve, and total wall time (best of --repeat runs per problem).

    python benchmarks/minimize_vs_scipy.py [--repeat 3] [--problems a,b,...]

Results, with the machine and date they were measured on: docs/benchmarks/minimize_vs_scipy.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import scipy.optimize as so
import torch
import torchmin

import optkit
from optkit.problems import PROBLEMS

PAIRS = [  # optkit method, SciPy method, pytorch-minimize method
    ("bfgs", "BFGS", "bfgs"),
    ("lbfgs", "L-BFGS-B", "l-bfgs"),
    # the same, with L-BFGS-B's second stopping test (relative reduction of f <= factr·eps)
    ("lbfgs+ftol", "L-BFGS-B", "l-bfgs"),
    ("newton-cg", "Newton-CG", "newton-cg"),
    ("newton", "trust-exact", "newton-exact"),
]


def numpy_wrappers(fun):
    def fg(x):
        t = torch.from_numpy(x).requires_grad_(True)
        f = fun(t)
        (g,) = torch.autograd.grad(f, t)
        return float(f.detach()), g.numpy()

    def hess(x):
        return torch.autograd.functional.hessian(fun, torch.from_numpy(x)).numpy()

    def hessp(x, v):
        return torch.autograd.functional.hvp(fun, torch.from_numpy(x), torch.from_numpy(v))[
            1
        ].numpy()

    return fg, hess, hessp


LBFGSB_FTOL = 1e7 * np.finfo(float).eps  # SciPy's default factr = 1e7


def run_optkit(p, method):
    opts = {"gtol": 1e-5}
    if method == "lbfgs+ftol":
        method, opts["ftol"] = "lbfgs", LBFGSB_FTOL
    r = optkit.minimize(p.fun, p.start(), method=method, options=opts)
    return r.fun, r.nfev


def run_scipy(p, method):
    fg, hess, hessp = numpy_wrappers(p.fun)
    kw, opts = {}, {"gtol": 1e-5}
    if method == "Newton-CG":
        kw, opts = {"hessp": hessp}, {}
    elif method == "trust-exact":
        kw = {"hess": hess}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = so.minimize(fg, p.x0.numpy().copy(), jac=True, method=method, options=opts, **kw)
    return float(r.fun), int(r.nfev)


def run_torchmin(p, method):
    opts = {"gtol": 1e-5} if method in ("bfgs", "l-bfgs") else {}
    if method == "l-bfgs":
        opts["history_size"] = 10
    try:
        r = torchmin.minimize(p.fun, p.start(), method=method, options=opts)
        return float(r.fun), int(r.nfev)
    except Exception:  # a crash counts as unsolved
        return float("nan"), 0


RUNNERS = {"optkit": run_optkit, "scipy": run_scipy, "torchmin": run_torchmin}


def solved(p, f):
    return bool(np.isfinite(f)) and f <= p.f_star + 1e-6 * max(1.0, abs(p.f_star))


def timed(fn, p, method, repeat):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(p, method)
        best = min(best, time.perf_counter() - t)
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--problems", default="")
    args = ap.parse_args()
    names = args.problems.split(",") if args.problems else list(PROBLEMS)
    # warm up lazy imports / first-call costs of every library
    for lib, fn in RUNNERS.items():
        for pair in PAIRS:
            fn(PROBLEMS["booth"], pair[list(RUNNERS).index(lib)])

    print(f"{len(names)} problems, float64, exact derivatives, best of {args.repeat}\n")
    header = f"{'problem':28s}" + "".join(f"{m:>30s}" for m, _, _ in PAIRS)
    print(header + "\n" + " " * 28 + "    nfev optkit/scipy/torchmin" * len(PAIRS))
    table = {}
    for name in names:
        p = PROBLEMS[name]
        cells = []
        for pair in PAIRS:
            row = {}
            for lib, method in zip(RUNNERS, pair, strict=True):
                (f, nfev), sec = timed(RUNNERS[lib], p, method, args.repeat)
                row[lib] = (solved(p, f), nfev, sec)
            table[name, pair[0]] = row
            cells.append("/".join(f"{row[k][1]}{'' if row[k][0] else '✗'}" for k in RUNNERS))
        print(f"{name:28s}" + "".join(f"{c:>30s}" for c in cells), flush=True)

    print("\n✗ = not solved.  Summary:")
    print(
        f"{'optkit':11s} {'solved':>13s} {'anchor':>14s} {'solved':>7s} {'median nfev':>12s}"
        f" {'time optkit':>12s} {'time anchor':>12s} {'time ratio':>11s}"
    )
    for pair in PAIRS:
        ours = pair[0]
        for lib, anchor in (("scipy", pair[1]), ("torchmin", pair[2])):
            rows = [table[n, ours] for n in names]
            n_ours = sum(r["optkit"][0] for r in rows)
            n_anchor = sum(r[lib][0] for r in rows)
            both = [r for r in rows if r["optkit"][0] and r[lib][0] and r[lib][1] > 0]
            ratio = statistics.median(r["optkit"][1] / r[lib][1] for r in both) if both else 0
            t_ours = sum(r["optkit"][2] for r in rows)
            t_anchor = sum(r[lib][2] for r in rows)
            print(
                f"{ours:11s} {n_ours:>7d}/{len(rows):<5d} {anchor:>14s} {n_anchor:>7d} "
                f"{ratio:>11.2f}x {t_ours:>11.3f}s {t_anchor:>11.3f}s "
                f"{t_ours / t_anchor:>10.2f}x"
            )


if __name__ == "__main__":
    main()
