"""A user's comparison: L2-regularized logistic regression, optkit.minimize vs scikit-learn.

For each data set, scikit-learn's ``LogisticRegression`` (solver lbfgs, then newton-cg; default
tol, C = 1) is fitted and timed; its solution's objective value F_sk is the bar. Each optkit
method then minimizes the same objective (float64, torch autograd, started at 0)::

    f(W, b) = (1/N) Σᵢ CE(softmax(xᵢW + b), yᵢ) + ‖W‖² / (2·C·N)     (binary: the logistic loss)

which has the same minimizer as scikit-learn's C·Σ CE + ½‖W‖². Reported: time for optkit to
first reach f <= F_sk (measured by a callback that only reads the clock), its ratio to
scikit-learn's fit time, and the optkit time to its own default stopping test.
Target: time-to-F_sk <= 1.0x scikit-learn's.

Three ways to write the objective, all reaching the same F_sk:

* ``plain``: the torch expression above on the user's (row-major) X, autograd;
* ``LogisticLoss``: ``optkit.problems.LogisticLoss(X, y)`` (X copied column-major, where
  single-threaded MKL matvecs are ~3x faster), autograd;
* ``LogisticLoss jac=True``: the same object's analytic ``value_and_grad`` (no autograd).

The LogisticLoss rows include building the object (the column-major copy) in their time.
Everything runs on one thread (torch.set_num_threads(1), and OMP/OpenBLAS/MKL_NUM_THREADS=1
set before NumPy loads, so scikit-learn's BLAS and OpenMP loss use one thread too); runs are
interleaved with scikit-learn's and the best of --repeat is kept for each.

Data: synthetic 50 000 x 200 (binary, NumPy PCG64 seed 0) and sklearn's digits (1797 x 64,
10 classes, multinomial).

    python benchmarks/minimize_logreg.py [--repeat 3] [--small]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy / torch load their BLAS

import argparse  # noqa: E402
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
    """One run: (time to reach bar, total time, result). ``objective() -> (fun, jac)`` is called
    inside the timed region (building it is part of the cost)."""
    reached = []
    t0 = time.perf_counter()

    def cb(r):
        if not reached and r.fun <= bar:
            reached.append(time.perf_counter() - t0)

    fun, jac = objective()
    res = optkit.minimize(
        fun, torch.zeros(shape, dtype=torch.float64), method=method, jac=jac, callback=cb
    )
    total = time.perf_counter() - t0
    if not reached and res.fun <= bar:
        reached.append(total)
    return (reached[0] if reached else float("inf")), total, res


def objectives(X, y, f):
    def loss():
        return optkit.problems.LogisticLoss(X, y, C=C)

    return {
        "plain": lambda: (f, None),
        "LogisticLoss": lambda: (loss(), None),
        "LogisticLoss jac=True": lambda: (loss().value_and_grad, True),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="5000 x 50 instead of 50 000 x 200")
    args = ap.parse_args()
    digits = load_digits()
    Xd = digits.data / 16.0
    datasets = {
        ("synthetic 5000x50" if args.small else "synthetic 50000x200"): (
            synthetic(5000, 50) if args.small else synthetic(50_000, 200)
        ),
        "digits 1797x64 (10 classes)": (Xd, digits.target.astype(np.int64)),
    }
    torch.set_num_threads(1)
    print(f"torch threads: {torch.get_num_threads()}, best of {args.repeat}, interleaved\n")
    for name, (X, y) in datasets.items():
        K = len(np.unique(y))
        f, shape, pack = make_objective(X, y, K)
        print(f"== {name}: {f(torch.zeros(shape, dtype=torch.float64)).item():.4f} at 0")
        print(
            f"{'sklearn solver':>14s} {'F_sk':>12s} {'t_sk':>8s} | {'optkit':>9s} "
            f"{'objective':>21s} {'t to F_sk':>9s} {'ratio':>7s} {'t total':>8s} "
            f"{'f final':>12s} {'nit':>4s}"
        )
        for solver in ("lbfgs", "newton-cg"):
            _, clf = time_sklearn(X, y, solver, 1)
            bar = float(f(pack(clf)))
            for method in METHODS:
                if method == "newton" and shape[0] * (shape[1] if len(shape) > 1 else 1) > 700:
                    continue  # dense Hessian of (d+1)·K > 700 variables: not this method's case
                objs = objectives(X, y, f)
                if method != "lbfgs":  # the other methods: plain and analytic only
                    objs = {k: v for k, v in objs.items() if k != "LogisticLoss"}
                if method == "newton":  # jac=True: the dense Hessian by gradient differences
                    objs = {"plain": objs["plain"]}
                # interleave: sklearn, then each objective, repeat times; best of each
                t_sk, best = float("inf"), {k: (float("inf"), float("inf"), None) for k in objs}
                for _ in range(args.repeat):
                    t_sk = min(t_sk, time_sklearn(X, y, solver, 1)[0])
                    for k, obj in objs.items():
                        reach, total, res = run_optkit(obj, shape, method, bar)
                        b = best[k]
                        best[k] = (min(b[0], reach), min(b[1], total), res)
                for k, (reach, total, res) in best.items():
                    print(
                        f"{solver:>14s} {bar:12.8f} {t_sk:7.3f}s | {method:>9s} {k:>21s} "
                        f"{reach:8.3f}s {reach / t_sk:6.2f}x {total:7.3f}s {res.fun:12.8f} "
                        f"{res.nit:4d}",
                        flush=True,
                    )
        print()


if __name__ == "__main__":
    main()
