"""Does ``optkit.advise`` pick a fast method? Race the methods on the test set and count.

For every problem of :data:`optkit.problems.PROBLEMS` (plus a few larger instances from its
factories), ask :func:`optkit.advise` for a method, then run newton, newton-cg, bfgs, lbfgs and
gd (lr = 1/L, as advised) with :func:`optkit.minimize` (gtol 1e-5) and time each to solution:
the best of ``--repeats`` runs, counted only if the run converged (status 0) to the best value any
method reached (within 1e-6 relative). A run is cut off at 10× the fastest time so far.

Prints, per problem, the advised method, its time and the fastest method's, and at the end the
share of problems (solved by at least one method) where the advised method is within 1.5× of the
fastest. Target: ≥ 80 %.

    python benchmarks/advise_check.py [--repeats 3] [--quick]

Results, with the machine and date they were measured on: docs/benchmarks/advise_check.md.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import optkit
from optkit.minimization import minimize
from optkit.problems import (
    PROBLEMS,
    extended_rosenbrock,
    logistic_regression,
    quadratic,
    rosenbrock,
)

METHODS = ("newton", "newton-cg", "bfgs", "lbfgs", "gd")
FACTOR = 1.5


def problem_set(quick: bool) -> dict:
    probs = dict(PROBLEMS)
    if not quick:
        for p in (
            rosenbrock(100),
            extended_rosenbrock(1000),
            quadratic(200, 1e4),
            quadratic(1000, 1e3),
            logistic_regression(5000, 200),
        ):
            probs[p.name] = p
    return probs


def timed_run(p, method, options, limit):
    start = time.perf_counter()

    def stop_when_slow(_):
        return time.perf_counter() - start > limit

    res = minimize(
        p.fun,
        p.start(),
        method=method,
        callback=stop_when_slow,
        options={"max_iter": 20000, **options},
    )
    return time.perf_counter() - start, res


def race(p, gd_lr, repeats):
    """{method: (best seconds or inf, final f)}"""
    out = {}
    fastest = math.inf
    for m in METHODS:
        opts = {"lr": gd_lr} if m == "gd" else {}
        best, f = math.inf, math.nan
        for _ in range(repeats):
            limit = max(10 * fastest, 0.05) if math.isfinite(fastest) else 60.0
            dt, res = timed_run(p, m, opts, limit)
            f = res.fun
            if not res.success:
                break
            best = min(best, dt)
        out[m] = (best, f)
        fastest = min(fastest, best)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="only the standard set")
    ap.add_argument("--json", help="write every time and the advice here")
    args = ap.parse_args()
    # One thread: on a shared, oversubscribed machine OpenMP wake-ups cost ~20 ms per LAPACK
    # call (a 2×2 Cholesky took 20 ms with 2 threads, 4 µs with 1); the race should time the
    # methods, not the scheduler.
    torch.set_num_threads(1)
    probs = problem_set(args.quick)
    hits = counted = 0
    fixed_hits = dict.fromkeys(METHODS, 0)
    records = []
    print(
        f"{'problem':30s} {'n':>5s}  {'advised':10s} {'time':>9s}  {'fastest':10s} "
        f"{'time':>9s}  ratio"
    )
    for name, p in probs.items():
        a = optkit.advise(p.fun, p.start())
        gd_lr = 1.0 / abs(a.curvature[1]) if a.curvature and a.curvature[1] else 1e-3
        results = race(p, gd_lr, args.repeats)
        f_best = min(f for _, f in results.values() if math.isfinite(f))
        tol = 1e-6 * max(1.0, abs(f_best))
        times = {m: (t if f - f_best <= tol else math.inf) for m, (t, f) in results.items()}
        fastest = min(times, key=times.get)
        if not math.isfinite(times[fastest]):
            print(f"{name:30s} {p.dim:5d}  no method solved it (excluded)")
            continue
        counted += 1
        for m in METHODS:
            fixed_hits[m] += times[m] <= FACTOR * times[fastest]
        records.append(
            {
                "problem": name,
                "n": p.dim,
                "advised": a.method,
                "runner_up": a.runner_up,
                "estimates": a.estimates,
                "times": {m: (t if math.isfinite(t) else None) for m, t in times.items()},
            }
        )
        ratio = times[a.method] / times[fastest]
        ok = ratio <= FACTOR
        hits += ok
        print(
            f"{name:30s} {p.dim:5d}  {a.method:10s} {times[a.method] * 1e3:7.1f}ms  "
            f"{fastest:10s} {times[fastest] * 1e3:7.1f}ms  {ratio:5.2f} {'' if ok else '  MISS'}",
            flush=True,
        )
    share = hits / counted if counted else 0.0
    print(
        f"\nadvised method within {FACTOR}x of the fastest on {hits}/{counted} problems = "
        f"{100 * share:.0f}% (target >= 80%)"
    )
    print(
        "anchors, always the same method: "
        + ", ".join(f"{m} {100 * k / max(counted, 1):.0f}%" for m, k in fixed_hits.items())
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
