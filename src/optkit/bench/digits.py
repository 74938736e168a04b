"""Digits benchmark: sklearn's bundled 8×8 handwritten digits, an MLP and a small CNN.

Optimizers (all optkit):

- ``sgd``: SGD with momentum 0.9;
- ``rmsprop``: RMSprop;
- ``adam``: Adam without regularization;
- ``adam_l2``: Adam with an L2 penalty in the gradient (``Adam(weight_decay=λ)``: g ← g + λθ,
  the lecture's "L² in Adam");
- ``adamw``: AdamW, decoupled decay (θ ← θ − γλθ before the Adam step);
- ``muon``: ``optkit.Muon(model)`` (hidden matrices and conv kernels by Muon, the rest by its
  AdamW part).

Protocol: a fixed stratified 60/20/20 split into train / validation / test (the same for all
runs); mini-batches of ``batch_size``; every optimizer gets a small learning-rate sweep (and
Adam+L2 / AdamW a weight-decay sweep) on seed 0, the best configuration by final validation
accuracy (ties: lower validation loss) then runs on every seed. Test loss and accuracy are
recorded against optimizer steps and against training time (evaluation excluded). Time is
process CPU seconds with one torch thread (``time.process_time``; the wall clock is kept too, as
``wall``): on a shared machine that is what an idle machine's wall time would be.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._common import (
    NullProgress,
    machine_info,
    median,
    new_figure,
    save_figure,
    seed_everything,
    threads,
    write_json,
)

__all__ = ["DigitsConfig", "load_data", "make_model", "make_optimizer", "run", "train_one"]

OPTIMIZERS = ("sgd", "rmsprop", "adam", "adam_l2", "adamw", "muon")
# Muon with one of its update options (opt-in by name, e.g. ``optkit bench digits
# --optimizers adamw,muon,muon_normuon``); lrs as muon's, weight decays from the config.
MUON_VARIANTS: dict[str, dict[str, Any]] = {
    "muon_wd": {},
    "muon_cautious": {"cautious_wd": True},
    "muon_normuon": {"normuon": True},
    "muon_input_layer": {"input_layer": False},  # the first layer by Muon too
}
MODELS = ("mlp", "cnn")


@dataclass(frozen=True)
class DigitsConfig:
    """Settings of the digits benchmark (``full()``, ``quick()`` or ``tiny()`` presets).

    Args:
        models: ``mlp`` and/or ``cnn``.
        optimizers: Names from :data:`OPTIMIZERS` or :data:`MUON_VARIANTS` (Muon with
            decoupled weight decay, cautious weight decay, NorMuon, or with its input layer
            by Muon instead of AdamW; their lrs default to muon's).
        epochs: Passes over the training set.
        batch_size: Mini-batch size.
        evals_per_epoch: Test evaluations per epoch (curve resolution).
        seeds: Seeds (seed 0 also selects hyperparameters).
        lrs: Learning-rate sweep per optimizer.
        weight_decays: Weight-decay sweep for ``adam_l2`` (λ of the L2 term), ``adamw`` and
            the Muon variants (Muon groups' decoupled decay; none for ``muon``).
        muon_adamw_lr: Learning rate of Muon's AdamW part (head, biases).
        limit: Use only the first ``limit`` samples (tests); None: all 1797.
        num_threads: ``torch.set_num_threads`` during training.
    """

    models: tuple[str, ...] = MODELS
    optimizers: tuple[str, ...] = OPTIMIZERS
    epochs: int = 20
    batch_size: int = 64
    evals_per_epoch: int = 2
    seeds: int = 3
    lrs: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "sgd": (0.03, 0.1),
            "rmsprop": (3e-4, 1e-3),
            "adam": (1e-3, 3e-3),
            "adam_l2": (1e-3, 3e-3),
            "adamw": (1e-3, 3e-3),
            "muon": (0.02, 0.05),
        }
    )
    weight_decays: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {
            "adam_l2": (1e-4, 1e-3),
            "adamw": (1e-2, 1e-1),
            "muon_wd": (0.1, 0.5),  # decoupled: θ shrinks by lr·wd per step
            "muon_cautious": (0.1, 0.5),
        }
    )
    muon_adamw_lr: float = 3e-3
    limit: int | None = None
    num_threads: int | None = 1

    @classmethod
    def full(cls, seeds: int = 3) -> DigitsConfig:
        return cls(seeds=seeds)

    @classmethod
    def quick(cls, seeds: int = 1) -> DigitsConfig:
        """A smoke run: 6 epochs, one setting per optimizer (no sweep)."""
        return cls(
            epochs=6,
            seeds=seeds,
            lrs={"sgd": (0.1,), "rmsprop": (1e-3,), "adam": (3e-3,), "adam_l2": (3e-3,),
                 "adamw": (3e-3,), "muon": (0.02,)},
            weight_decays={"adam_l2": (1e-3,), "adamw": (1e-1,)},
        )  # fmt: skip

    @classmethod
    def tiny(cls) -> DigitsConfig:
        return cls(
            epochs=2,
            batch_size=64,
            seeds=1,
            limit=600,
            lrs={"sgd": (0.1,), "rmsprop": (1e-3,), "adam": (3e-3,), "adam_l2": (3e-3,),
                 "adamw": (3e-3,), "muon": (0.02,)},
            weight_decays={"adam_l2": (1e-3,), "adamw": (1e-1,)},
        )  # fmt: skip


def load_data(limit: int | None = None) -> dict[str, torch.Tensor]:
    """sklearn's digits (bundled), pixels scaled to [0, 1], stratified 60/20/20 split (fixed).

    Example:
        >>> d = load_data()
        >>> d["x_train"].shape, d["x_val"].shape, d["x_test"].shape
        (torch.Size([1078, 1, 8, 8]), torch.Size([359, 1, 8, 8]), torch.Size([360, 1, 8, 8]))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    if limit is not None:
        X, y = X[:limit], y[:limit]
    X = (X / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    X_tr, X_rest, y_tr, y_rest = train_test_split(X, y, test_size=0.4, stratify=y, random_state=0)
    X_va, X_te, y_va, y_te = train_test_split(
        X_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0
    )
    t = torch.from_numpy
    return {
        "x_train": t(X_tr), "y_train": t(y_tr), "x_val": t(X_va), "y_val": t(y_va),
        "x_test": t(X_te), "y_test": t(y_te),
    }  # fmt: skip


def make_model(kind: str) -> nn.Module:
    """``mlp``: 64-128-128-10 ReLU; ``cnn``: two 3×3 convs (16, 32), max-pool, 64 hidden."""
    if kind == "mlp":
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )  # fmt: skip
    if kind == "cnn":
        return nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10),
        )  # fmt: skip
    raise ValueError(f"model must be one of {MODELS}, got {kind!r}")


def make_optimizer(name: str, model: nn.Module, lr: float, wd: float, cfg: DigitsConfig):
    """The optimizer ``name`` for ``model`` (``wd`` is used by adam_l2 and adamw only)."""
    import optkit
    import optkit.optim

    params = model.parameters()
    if name == "sgd":
        return optkit.SGD(params, lr=lr, momentum=0.9)
    if name == "rmsprop":
        return optkit.RMSprop(params, lr=lr)
    if name == "adam":
        return optkit.Adam(params, lr=lr)
    if name == "adam_l2":
        return optkit.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optkit.AdamW(params, lr=lr, weight_decay=wd)
    if name == "muon" or name in MUON_VARIANTS:
        return optkit.optim.Muon(
            model, lr=lr, weight_decay=wd, adamw_lr=cfg.muon_adamw_lr, **MUON_VARIANTS.get(name, {})
        )
    raise ValueError(f"optimizer must be one of {(*OPTIMIZERS, *MUON_VARIANTS)}, got {name!r}")


def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


def train_one(
    cfg: DigitsConfig,
    data: dict[str, torch.Tensor],
    model_kind: str,
    name: str,
    lr: float,
    wd: float,
    seed: int,
    on_step=None,
) -> dict[str, Any]:
    """Train one model; return final val/test metrics and curves against steps and time."""
    seed_everything(seed)
    model = make_model(model_kind)
    opt = make_optimizer(name, model, lr, wd, cfg)
    x, y = data["x_train"], data["y_train"]
    n = len(y)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    gen = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {
        k: [] for k in ("step", "time", "train_loss", "test_loss", "test_acc", "wall")
    }
    loss0, acc0 = _evaluate(model, data["x_test"], data["y_test"])
    for k, v in zip(curves, (0, 0.0, math.nan, loss0, acc0, 0.0), strict=True):
        curves[k].append(v)
    step, elapsed, wall, running, count = 0, 0.0, 0.0, 0.0, 0
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            t0, w0 = time.process_time(), time.perf_counter()
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            elapsed += time.process_time() - t0
            wall += time.perf_counter() - w0
            step += 1
            running += loss.item()
            count += 1
            if on_step is not None:
                on_step()
            if step % every == 0:
                test_loss, test_acc = _evaluate(model, data["x_test"], data["y_test"])
                for k, v in zip(
                    curves,
                    (step, elapsed, running / count, test_loss, test_acc, wall),
                    strict=True,
                ):
                    curves[k].append(v)
                running, count = 0.0, 0
    val_loss, val_acc = _evaluate(model, data["x_val"], data["y_val"])
    test_loss, test_acc = _evaluate(model, data["x_test"], data["y_test"])
    return {
        "model": model_kind, "optimizer": name, "lr": lr, "weight_decay": wd, "seed": seed,
        "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss, "test_acc": test_acc,
        "steps": step, "time": elapsed, "wall": wall, "curves": curves,
    }  # fmt: skip


def _grid(cfg: DigitsConfig, name: str) -> list[tuple[float, float]]:
    wds = cfg.weight_decays.get(name, (0.0,))
    return list(itertools.product(cfg.lrs.get(name, cfg.lrs["muon"]), wds))


def _steps_to(curves: dict[str, list[float]], key: str, level: float) -> tuple[float, float]:
    for s, t, v in zip(curves["step"], curves["time"], curves[key], strict=True):
        if v >= level:
            return s, t
    return math.inf, math.inf


def run(
    cfg: DigitsConfig | None = None,
    out_dir: str | Path | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Sweep on seed 0, then all seeds at each optimizer's best; write ``results.json`` and
    ``digits_<model>.png`` into ``out_dir`` if given.

    Returns ``config``, ``machine``, ``best`` (model → optimizer → lr, wd), ``rows`` (the table:
    median over seeds of test accuracy / loss, steps and seconds to 97% test accuracy),
    ``sweep`` (seed-0 scores of every setting) and ``runs`` (curves).
    """
    cfg = cfg or DigitsConfig.full()
    progress = progress or NullProgress()
    data = load_data(cfg.limit)
    steps_per_run = cfg.epochs * math.ceil(len(data["y_train"]) / cfg.batch_size)
    n_runs = len(cfg.models) * sum(len(_grid(cfg, o)) + cfg.seeds - 1 for o in cfg.optimizers)
    task = progress.add_task("digits", total=n_runs * steps_per_run)
    advance = lambda: progress.advance(task)  # noqa: E731
    sweep: dict[str, dict[str, list[dict[str, Any]]]] = {}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
    best: dict[str, dict[str, dict[str, float]]] = {}
    with threads(cfg.num_threads):
        for kind in cfg.models:
            sweep[kind], runs[kind], best[kind] = {}, {}, {}
            for name in cfg.optimizers:
                progress.update(task, description=f"digits {kind} {name}")
                tried = [
                    train_one(cfg, data, kind, name, lr, wd, 0, advance)
                    for lr, wd in _grid(cfg, name)
                ]
                top = max(tried, key=lambda r: (r["val_acc"], -r["val_loss"]))
                best[kind][name] = {"lr": top["lr"], "weight_decay": top["weight_decay"]}
                sweep[kind][name] = [
                    {k: r[k] for k in ("lr", "weight_decay", "val_acc", "val_loss", "test_acc")}
                    for r in tried
                ]
                runs[kind][name] = [top] + [
                    train_one(cfg, data, kind, name, top["lr"], top["weight_decay"], s, advance)
                    for s in range(1, cfg.seeds)
                ]
    progress.remove_task(task)
    rows = []
    for kind in cfg.models:
        for name in cfg.optimizers:
            rs = runs[kind][name]
            to97 = [_steps_to(r["curves"], "test_acc", 0.97) for r in rs]
            rows.append({
                "model": kind, "optimizer": name, **best[kind][name],
                "test_acc": median(r["test_acc"] for r in rs),
                "test_acc_min": min(r["test_acc"] for r in rs),
                "test_acc_max": max(r["test_acc"] for r in rs),
                "test_loss": median(r["test_loss"] for r in rs),
                "steps_to_97": median(s for s, _ in to97),
                "cpu_s_to_97": median(t for _, t in to97),
                "train_cpu_s": median(r["time"] for r in rs),
            })  # fmt: skip
    results = {
        "task": "digits",
        "config": asdict(cfg),
        "machine": machine_info(),
        "best": best,
        "rows": rows,
        "sweep": sweep,
        "runs": runs,
    }
    if out_dir is not None:
        out = Path(out_dir)
        write_json(out / "results.json", results)
        for kind in cfg.models:
            _figure(runs[kind], kind, out / f"digits_{kind}.png")
    return results


def _figure(runs: dict[str, list[dict[str, Any]]], kind: str, path: Path) -> None:
    fig, axes = new_figure(2, 2, (5.5, 3.8))
    for i, (name, rs) in enumerate(runs.items()):
        color = f"C{i}"
        steps = np.array(rs[0]["curves"]["step"])
        for row, key in enumerate(("test_acc", "test_loss")):
            vals = np.median(np.array([r["curves"][key] for r in rs]), axis=0)
            times = np.median(np.array([r["curves"]["time"] for r in rs]), axis=0)
            label = f"{name} (lr={rs[0]['lr']:g}" + (
                f", wd={rs[0]['weight_decay']:g})" if name in ("adam_l2", "adamw") else ")"
            )
            axes[row, 0].plot(steps, vals, color=color, label=label)
            axes[row, 1].plot(times, vals, color=color, label=label)
    for col, xlabel in enumerate(("optimizer steps", "training time (CPU s, 1 thread)")):
        axes[0, col].set_ylabel("test accuracy")
        axes[0, col].set_ylim(0.8, 1.0)
        axes[1, col].set_ylabel("test loss")
        axes[1, col].set_yscale("log")
        for row in range(2):
            axes[row, col].set_xlabel(xlabel)
            axes[row, col].grid(alpha=0.3)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"digits 8×8, {kind.upper()}: median over seeds at each optimizer's best setting")
    save_figure(fig, path)
