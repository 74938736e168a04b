"""A user's comparison: L2-regularized logistic regression, optkit.minimize vs scikit-learn.

For each data set, scikit-learn's ``LogisticRegression`` (solver lbfgs, then newton-cg; default
tol, C = 1) is fitted and timed; its solution's objective value F_sk is the bar. Each optkit
method then minimizes the same objective (float64, torch autograd, started at 0)::

    f(W, b) = (1/N) Σᵢ CE(softmax(xᵢW + b), yᵢ) + ‖W‖² / (2·C·N)     (binary: the logistic loss)

which has the same minimizer as scikit-learn's C·Σ CE + ½‖W‖². Reported: time for optkit to
first reach f <= F_sk (measured by a callback that only reads the clock), its ratio to
scikit-learn's fit time, and the optkit time to its own default stopping test.
Target: time-to-F_sk <= 1.0x scikit-learn's.

Ways to write the objective, all reaching the same F_sk:

* ``plain``: the torch expression above on the user's (row-major) X, autograd;
* ``LogisticLoss``: ``optkit.problems.LogisticLoss(X, y)`` (X copied column-major, where
  single-threaded MKL products are faster), autograd;
* ``LogisticLoss jac=True``: the same object's analytic ``value_and_grad`` (no autograd);
* ``LogisticLoss jac=True, hessp`` (newton-cg only): also its analytic ``hessp``, as
  scikit-learn's newton-cg has (without it, H·v is a forward difference of two gradients).

The LogisticLoss rows include building the object (the column-major copy) in their time.
Everything runs on one thread (torch.set_num_threads(1), and OMP/OpenBLAS/MKL_NUM_THREADS=1
set before NumPy loads, so scikit-learn's BLAS and OpenMP loss use one thread too). Each of
--repeat rounds times scikit-learn once and then each optkit variant once; the ratio is taken
within a round (so a slow spell of this shared machine hits both sides), and the median ratio
over the rounds is printed with its range [min, max]. Times are medians too.

Data: synthetic 50 000 x 200 (binary, NumPy PCG64 seed 0) and sklearn's digits (1797 x 64,
10 classes, multinomial).

    python benchmarks/minimize_logreg.py [--repeat 7] [--small] [--data digits]
        [--methods lbfgs newton-cg]

Results, with the machine and date they were measured on: docs/benchmarks/minimize_logreg.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy / torch load their BLAS

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import optkit  # noqa: E402

C = 1.0
METHODS = ["lbfgs", "newton-cg", "bfgs", "newton"]


def synthetic(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) / np.sqrt(d)
    y = (X @ w + 0.5 * rng.standard_normal(n) > 0).astype(np.int64)
    return X, y


def make_objective(X, y, n_classes):
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    N = X.shape[0]
    if n_classes == 2:
        yf = yt.double()

        def f(x):  # x = [w (d), b]
            z = Xt @ x[:-1] + x[-1]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z, yf)
            return loss + (x[:-1] @ x[:-1]) / (2 * C * N)

        shape = (X.shape[1] + 1,)

        def pack(clf):
            return torch.from_numpy(np.concatenate([clf.coef_[0], clf.intercept_]))
    else:

        def f(x):  # x = [[W], [b]], shape (d + 1, K)
            z = Xt @ x[:-1] + x[-1]
            loss = torch.nn.functional.cross_entropy(z, yt)
            return loss + (x[:-1] ** 2).sum() / (2 * C * N)

        shape = (X.shape[1] + 1, n_classes)

        def pack(clf):
            return torch.from_numpy(np.vstack([clf.coef_.T, clf.intercept_[None, :]]))

    return f, shape, pack


def time_sklearn(X, y, solver, repeat):
    best, clf = float("inf"), None
    for _ in range(repeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t = time.perf_counter()
            clf = LogisticRegression(C=C, solver=solver, max_iter=10_000).fit(X, y)
            best = min(best, time.perf_counter() - t)
    return best, clf


def run_optkit(objective, shape, method, bar):
    """One run: (time to reach bar, total time, result). ``objective() -> (fun, jac, hessp)``
    is called inside the timed region (building it is part of the cost)."""
    reached = []
    t0 = time.perf_counter()

    def cb(intermediate_result):
        if not reached and intermediate_result.fun <= bar:
            reached.append(time.perf_counter() - t0)

    fun, jac, hessp = objective()
    x0 = torch.zeros(shape, dtype=torch.float64)
    res = optkit.minimize(fun, x0, method=method, jac=jac, hessp=hessp, callback=cb)
    total = time.perf_counter() - t0
    if not reached and res.fun <= bar:
        reached.append(total)
    return (reached[0] if reached else float("inf")), total, res


def objectives(X, y, f):
    def loss():
        return optkit.problems.LogisticLoss(X, y, C=C)

    def analytic(hessp):
        def build():
            obj = loss()
            return obj.value_and_grad, True, (obj.hessp if hessp else None)

        return build

    return {
        "plain": lambda: (f, None, None),
        "LogisticLoss": lambda: (loss(), None, None),
        "LogisticLoss jac=True": analytic(False),
        "LogisticLoss jac=True, hessp": analytic(True),
    }


def objectives_for(method, X, y, f):
    objs = objectives(X, y, f)
    keep = {
        "lbfgs": ["plain", "LogisticLoss", "LogisticLoss jac=True"],
        "newton-cg": ["plain", "LogisticLoss jac=True", "LogisticLoss jac=True, hessp"],
        "bfgs": ["plain", "LogisticLoss jac=True"],
        "newton": ["plain"],  # with jac=True the dense Hessian would be gradient differences
    }[method]
    return {k: objs[k] for k in keep}


def spread(values):
    values = sorted(values)
    return statistics.median(values), values[0], values[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--small", action="store_true", help="5000 x 50 instead of 50 000 x 200")
    ap.add_argument("--data", choices=["synthetic", "digits"], nargs="+")
    ap.add_argument("--methods", choices=METHODS, nargs="+", default=METHODS)
    args = ap.parse_args()
    digits = load_digits()
    Xd = digits.data / 16.0
    datasets = {}
    if not args.data or "synthetic" in args.data:
        name = "synthetic 5000x50" if args.small else "synthetic 50000x200"
        datasets[name] = synthetic(5000, 50) if args.small else synthetic(50_000, 200)
    if not args.data or "digits" in args.data:
        datasets["digits 1797x64 (10 classes)"] = (Xd, digits.target.astype(np.int64))
    torch.set_num_threads(1)
    print(
        f"torch threads: {torch.get_num_threads()}; {args.repeat} interleaved rounds; "
        "medians, ratio [min, max] over rounds\n"
    )
    for name, (X, y) in datasets.items():
        K = len(np.unique(y))
        f, shape, pack = make_objective(X, y, K)
        print(f"== {name}: {f(torch.zeros(shape, dtype=torch.float64)).item():.4f} at 0")
        print(
            f"{'sklearn solver':>14s} {'F_sk':>12s} {'t_sk':>8s} | {'optkit':>9s} "
            f"{'objective':>28s} {'t to F_sk':>9s} {'ratio [min, max]':>20s} {'t total':>8s} "
            f"{'f final':>12s} {'nit':>4s}"
        )
        for solver in ("lbfgs", "newton-cg"):
            _, clf = time_sklearn(X, y, solver, 1)
            bar = float(f(pack(clf)))
            for method in args.methods:
                if method == "newton" and shape[0] * (shape[1] if len(shape) > 1 else 1) > 700:
                    continue  # dense Hessian of (d+1)·K > 700 variables: not this method's case
                objs = objectives_for(method, X, y, f)
                # interleave: sklearn, then each objective, in every round
                t_sk, runs = [], {k: [] for k in objs}
                for _ in range(args.repeat):
                    t_round = time_sklearn(X, y, solver, 1)[0]
                    t_sk.append(t_round)
                    for k, obj in objs.items():
                        reach, total, res = run_optkit(obj, shape, method, bar)
                        runs[k].append((reach, total, reach / t_round, res))
                for k, rs in runs.items():
                    reach = statistics.median(r[0] for r in rs)
                    ratio, lo, hi = spread([r[2] for r in rs])
                    total = statistics.median(r[1] for r in rs)
                    res = rs[-1][3]
                    print(
                        f"{solver:>14s} {bar:12.8f} {statistics.median(t_sk):7.3f}s | "
                        f"{method:>9s} {k:>28s} {reach:8.3f}s "
                        f"{ratio:6.2f}x [{lo:5.2f}, {hi:5.2f}] {total:7.3f}s {res.fun:12.8f} "
                        f"{res.nit:4d}",
                        flush=True,
                    )
        print()


if __name__ == "__main__":
    main()
