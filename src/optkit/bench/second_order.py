"""Second-order benchmark: the lecture's "when to use which", measured.

Full-batch second-order fits with ``optkit.minimize_module`` (``newton-cg``: truncated CG on
Hessian-vector products; ``lbfgs``: two-loop recursion, m = 10; both with a strong-Wolfe line
search) against ``optkit.Adam``, full batch and mini-batch (the lecture: large models reward
fast updates). The data is sklearn's bundled digits (1797 × 64, 10 classes), all of it as
the training set: this is about optimization speed, not generalization.

1. Multinomial logistic regression (650 parameters) with an L2 term λ/2‖W‖², float64: convex,
   so f* is known (the lowest value any method reaches); the measure is time until the
   relative gap (f − f*)/(f₀ − f*) falls below 1e-2, 1e-4 and 1e-6.
2. A one-hidden-layer MLP 64 → h → 10 (ReLU, float32), h swept: time until the full-batch
   training cross-entropy falls below ``mlp_target``. The crossover is the width from which
   the fastest Adam variant beats the fastest second-order method.

Times are process CPU seconds with one torch thread (``time.process_time``): the machine these
runs are made on is shared, and CPU time is what an idle machine's wall time would be. Adam's
learning rate is the best (fastest) of a small sweep; full-batch evaluations done only to record
Adam's mini-batch curve are not counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    NullProgress,
    machine_info,
    new_figure,
    save_figure,
    seed_everything,
    threads,
    write_json,
)

__all__ = ["SecondOrderConfig", "fit", "run"]

METHODS = ("newton-cg", "lbfgs", "adam", "adam-minibatch")


@dataclass(frozen=True)
class SecondOrderConfig:
    """Settings of the second-order benchmark (``full()``, ``quick()`` or ``tiny()`` presets).

    Args:
        l2: λ of the logistic regression's L2 term.
        logreg_budget: CPU seconds per logistic-regression run.
        widths: Hidden widths h of the MLP sweep.
        mlp_target: Full-batch training cross-entropy that counts as fitted.
        mlp_budget: CPU seconds per MLP run (a run not at the target by then: "not reached").
        adam_lrs: Adam's learning-rate sweep (full batch and mini-batch).
        batch_size: Adam's mini-batch size.
        seeds: Initializations per width (the median time is reported).
        limit: Use only the first ``limit`` samples (tests).
        num_threads: ``torch.set_num_threads`` during the runs.
    """

    l2: float = 1e-3
    logreg_budget: float = 5.0
    widths: tuple[int, ...] = (8, 64, 512, 2048)
    mlp_target: float = 0.05
    mlp_budget: float = 6.0
    adam_lrs: tuple[float, ...] = (3e-3, 1e-2)
    batch_size: int = 64
    seeds: int = 1
    limit: int | None = None
    num_threads: int | None = 1

    @classmethod
    def full(cls, seeds: int = 1) -> SecondOrderConfig:
        return cls(seeds=seeds)

    @classmethod
    def quick(cls, seeds: int = 1) -> SecondOrderConfig:
        return cls(
            logreg_budget=2.0, widths=(16, 256), mlp_budget=2.0, adam_lrs=(1e-2,), seeds=seeds
        )

    @classmethod
    def tiny(cls) -> SecondOrderConfig:
        return cls(
            logreg_budget=0.5,
            widths=(8, 32),
            mlp_target=0.5,
            mlp_budget=0.5,
            adam_lrs=(1e-2,),
            limit=300,
        )


def _minimize_module():
    import optkit

    f = getattr(optkit, "minimize_module", None)
    if f is None:  # not exported at the top level yet
        from optkit.minimization import minimize_module as f
    return f


def load_data(limit: int | None, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    if limit is not None:
        X, y = X[:limit], y[:limit]
    return torch.tensor(X / 16.0, dtype=dtype), torch.tensor(y)


class _Stop(Exception):
    pass


def fit(
    model: nn.Module,
    loss_fn,
    method: str,
    *,
    budget: float,
    target: float = -math.inf,
    lr: float = 1e-3,
    batches=None,
) -> dict[str, list[float]]:
    """Minimize ``loss_fn()`` (full batch) over ``model``'s parameters with ``method``.

    ``method``: ``newton-cg`` / ``lbfgs`` (``optkit.minimize_module``), ``adam`` (full batch)
    or ``adam-minibatch`` (``batches()`` yields ``(loss_on_batch_fn)`` closures; the full-batch
    loss is evaluated about 20 times per second of budget, off the clock). Stops when the
    full-batch loss ≤ ``target`` or after ``budget`` CPU seconds. Returns the curve
    ``time`` (CPU s) / ``loss`` (full batch) and ``reached`` (CPU s to target, or inf).
    """
    curve = {"time": [0.0], "loss": [float(loss_fn().detach())]}
    clock = {"used": 0.0, "t0": time.process_time()}

    def now() -> float:
        return clock["used"] + time.process_time() - clock["t0"]

    def record(value: float) -> bool:
        curve["time"].append(now())
        curve["loss"].append(value)
        return value <= target or curve["time"][-1] >= budget or not math.isfinite(value)

    if method in ("newton-cg", "lbfgs"):

        def callback(intermediate_result) -> bool:
            return record(float(intermediate_result.fun))

        options = {"max_iter": 10**6, "gtol": 1e-10}
        _minimize_module()(model, loss_fn, method=method, options=options, callback=callback)
    else:
        import optkit

        opt = optkit.Adam(model.parameters(), lr=lr)
        if method == "adam":
            while True:
                loss = loss_fn()
                if record(float(loss.detach())) and len(curve["loss"]) > 2:
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        else:
            every = max(1e-3, budget / 200)
            last = 0.0
            done = False
            while not done:
                for batch_loss in batches():
                    opt.zero_grad(set_to_none=True)
                    batch_loss().backward()
                    opt.step()
                    if now() - last >= every:
                        clock["used"] = now()  # pause the clock during the full-batch loss
                        with torch.no_grad():
                            value = float(loss_fn())
                        clock["t0"] = time.process_time()
                        last = now()
                        if record(value):
                            done = True
                            break
    reached = next((t for t, v in zip(curve["time"], curve["loss"]) if v <= target), math.inf)
    return {**curve, "reached": reached}


# --- the two problems --------------------------------------------------------------------------
def _logreg_problem(cfg: SecondOrderConfig, X: torch.Tensor, y: torch.Tensor):
    model = nn.Linear(X.shape[1], 10).double()
    nn.init.zeros_(model.weight)
    nn.init.zeros_(model.bias)

    def loss_fn() -> torch.Tensor:
        return F.cross_entropy(model(X), y) + 0.5 * cfg.l2 * model.weight.pow(2).sum()

    def batches():
        perm = torch.randperm(len(y))
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            yield (
                lambda idx=idx: (
                    F.cross_entropy(model(X[idx]), y[idx])
                    + 0.5 * cfg.l2 * model.weight.pow(2).sum()
                )
            )

    return model, loss_fn, batches


def _mlp_problem(cfg: SecondOrderConfig, X: torch.Tensor, y: torch.Tensor, width: int, seed: int):
    seed_everything(seed)
    model = nn.Sequential(nn.Linear(X.shape[1], width), nn.ReLU(), nn.Linear(width, 10))

    def loss_fn() -> torch.Tensor:
        return F.cross_entropy(model(X), y)

    def batches():
        perm = torch.randperm(len(y))
        for i in range(0, len(y), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            yield lambda idx=idx: F.cross_entropy(model(X[idx]), y[idx])

    return model, loss_fn, batches


def _best_adam(make, method, cfg, budget, target, progress, task):
    """Adam at each lr of the sweep; the fastest to the target (else the lowest final loss)."""
    best = None
    for lr in cfg.adam_lrs:
        model, loss_fn, batches = make()
        cap = budget if best is None or not math.isfinite(best["reached"]) else best["reached"]
        r = fit(model, loss_fn, method, budget=cap, target=target, lr=lr, batches=batches)
        r["lr"] = lr
        progress.advance(task)
        key = lambda z: (z["reached"], min(z["loss"]))  # noqa: E731
        if best is None or key(r) < key(best):
            best = r
    return best


def run(
    cfg: SecondOrderConfig | None = None,
    out_dir: str | Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Both experiments; write ``results.json``, ``logreg.png`` and ``crossover.png``."""
    cfg = cfg or SecondOrderConfig.full()
    progress = progress or NullProgress()
    n_adam = len(cfg.adam_lrs)
    total = (2 + 2 * n_adam) * (1 + len(cfg.widths) * cfg.seeds)
    task = progress.add_task("second-order", total=total)
    with threads(cfg.num_threads):
        # 1. logistic regression: run everything for the whole budget, then measure the gaps
        X, y = load_data(cfg.limit, torch.float64)
        make = lambda: _logreg_problem(cfg, X, y)  # noqa: E731
        logreg: dict[str, Any] = {}
        for method in ("newton-cg", "lbfgs"):
            model, loss_fn, _ = make()
            logreg[method] = fit(model, loss_fn, method, budget=cfg.logreg_budget)
            progress.advance(task)
        for method in ("adam", "adam-minibatch"):
            # best lr = lowest final loss within the budget
            tried = []
            for lr in cfg.adam_lrs:
                model, loss_fn, batches = make()
                r = fit(model, loss_fn, method, budget=cfg.logreg_budget, lr=lr, batches=batches)
                tried.append({**r, "lr": lr})
                progress.advance(task)
            logreg[method] = min(tried, key=lambda r: min(r["loss"]))
        f_star = min(min(r["loss"]) for r in logreg.values())
        f0 = logreg["lbfgs"]["loss"][0]
        gaps = (1e-2, 1e-4, 1e-6)
        for r in logreg.values():
            r["time_to_gap"] = {
                f"{g:g}": next(
                    (t for t, v in zip(r["time"], r["loss"]) if (v - f_star) <= g * (f0 - f_star)),
                    math.inf,
                )
                for g in gaps
            }
        # 2. MLP width sweep
        X, y = load_data(cfg.limit, torch.float32)
        mlp: dict[str, dict[str, list[dict[str, Any]]]] = {}
        for width in cfg.widths:
            per: dict[str, list[dict[str, Any]]] = {m: [] for m in METHODS}
            for seed in range(cfg.seeds):
                make = lambda w=width, s=seed: _mlp_problem(cfg, X, y, w, s)  # noqa: E731
                for method in ("newton-cg", "lbfgs"):
                    progress.update(task, description=f"second-order h={width} {method}")
                    model, loss_fn, _ = make()
                    per[method].append(
                        fit(model, loss_fn, method, budget=cfg.mlp_budget, target=cfg.mlp_target)
                    )
                    progress.advance(task)
                for method in ("adam", "adam-minibatch"):
                    progress.update(task, description=f"second-order h={width} {method}")
                    per[method].append(
                        _best_adam(
                            make, method, cfg, cfg.mlp_budget, cfg.mlp_target, progress, task
                        )
                    )
            mlp[str(width)] = per
    progress.remove_task(task)

    params = {str(w): 64 * w + w + w * 10 + 10 for w in cfg.widths}
    rows = []
    for m in METHODS:
        r = logreg[m]
        rows.append({
            "problem": "logreg (650 params)", "method": m, "lr": r.get("lr"),
            **{f"cpu_s_to_gap_{k}": v for k, v in r["time_to_gap"].items()},
            "final_loss": r["loss"][-1],
        })  # fmt: skip
    crossover = None
    for w in cfg.widths:
        med = {m: float(np.median([r["reached"] for r in mlp[str(w)][m]])) for m in METHODS}
        second = min(med["newton-cg"], med["lbfgs"])
        first = min(med["adam"], med["adam-minibatch"])
        if crossover is None and first < second:
            crossover = w
        rows.append({
            "problem": f"mlp h={w} ({params[str(w)]} params)",
            **{f"cpu_s_{m}": med[m] for m in METHODS},
            "winner": min(med, key=med.get) if math.isfinite(min(med.values())) else None,
        })  # fmt: skip
    results = {
        "task": "second-order",
        "config": asdict(cfg),
        "machine": machine_info(),
        "f_star": f_star,
        "logreg": logreg,
        "mlp": mlp,
        "params": params,
        "crossover_width": crossover,
        "rows": rows,
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "results.json", results)
        _figures(results, out)
    return results


def _figures(results: dict[str, Any], out: Path) -> None:
    colors = {"newton-cg": "C0", "lbfgs": "C1", "adam": "C2", "adam-minibatch": "C3"}
    fig, axes = new_figure(1, 1, (6.0, 4.2))
    ax = axes[0, 0]
    f_star = results["f_star"]
    for m, r in results["logreg"].items():
        gap = np.maximum(np.array(r["loss"]) - f_star, 1e-16)
        label = m + (f" (lr={r['lr']:g})" if "lr" in r else "")
        ax.plot(r["time"], gap, color=colors[m], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("CPU seconds (1 thread)")
    ax.set_ylabel("f − f*")
    ax.set_title("L2 logistic regression on digits (650 params), full batch")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, out / "logreg.png")

    fig, axes = new_figure(1, 2, (5.5, 4.2))
    widths = [int(w) for w in results["mlp"]]
    params = [results["params"][str(w)] for w in widths]
    budget = results["config"]["mlp_budget"]
    for m in METHODS:
        med = [np.median([r["reached"] for r in results["mlp"][str(w)][m]]) for w in widths]
        shown = [v if math.isfinite(v) else np.nan for v in med]
        axes[0, 0].plot(params, shown, "o-", color=colors[m], label=m)
        missed = [p for p, v in zip(params, med) if not math.isfinite(v)]
        axes[0, 0].plot(missed, [budget] * len(missed), "x", color=colors[m])
    if results["crossover_width"] is not None:
        axes[0, 0].axvline(results["params"][str(results["crossover_width"])], color="k", lw=0.6)
    axes[0, 0].set_xscale("log")
    axes[0, 0].set_yscale("log")
    axes[0, 0].set_xlabel("MLP parameters (64 → h → 10)")
    axes[0, 0].set_ylabel(f"CPU s to train loss ≤ {results['config']['mlp_target']:g}")
    axes[0, 0].set_title("time to target vs model size (x: not reached in budget)")
    axes[0, 0].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    w_big = str(widths[-1])
    for m in METHODS:
        r = results["mlp"][w_big][m][0]
        axes[0, 1].plot(r["time"], r["loss"], color=colors[m], label=m)
    axes[0, 1].axhline(results["config"]["mlp_target"], color="k", lw=0.6)
    axes[0, 1].set_yscale("log")
    axes[0, 1].set_xlabel("CPU seconds (1 thread)")
    axes[0, 1].set_ylabel("full-batch train loss")
    axes[0, 1].set_title(f"h = {w_big}: loss vs time")
    axes[0, 1].grid(alpha=0.3)
    axes[0, 1].legend(fontsize=8)
    save_figure(fig, out / "crossover.png")
