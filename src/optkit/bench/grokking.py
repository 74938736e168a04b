"""Grokking benchmark: modular addition a + b mod p with a small decoder-only transformer.

Every pair (a, b) with 0 ≤ a, b < p is a sequence ``[a, b, =]``; the model reads it causally
and predicts ``(a + b) mod p`` at the last position. A fixed random fraction of the p² pairs is
the training set (full batch: every step sees all of it); the rest is validation. Small
transformers first memorize the training pairs, then — much later, pushed by weight decay —
generalize ("grokking"). The measure is the number of optimizer steps until validation
accuracy first reaches 99%, for

- ``adamw``: ``optkit.AdamW`` on every parameter, weight decay 1 (the classic grokking setup);
- ``muon``: ``optkit.Muon(model, adjust_lr="match_rms_adamw")``: hidden matrices (q, k, v, o,
  MLP) by Muon with AdamW-sized updates and weight decay 1, embeddings and the output head by
  its AdamW part (AdamW's best lr, weight decay 1);
- ``muonclip``: ``optkit.MuonClip(model)``, the same plus QK-clip at ``qk_clip_tau``.

Each optimizer runs at the best learning rate (fewest steps, seed 0) of the same lr grid
(``LR_GRID``), then on the other seeds. Runs stop at the target or at ``max_steps`` (then
"not reached"). The model is the one-layer, no-LayerNorm transformer of Nanda et al. (2023),
d = 128, 4 heads, ReLU MLP; the last block computes its MLP only at the last position (the only
output used), which gives the same loss and gradients as computing every position.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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

__all__ = ["GrokkingConfig", "Transformer", "make_data", "make_optimizer", "run", "train_one"]

OPTIMIZERS = ("adamw", "muon", "muonclip")
# Muon with one of its update options, at muon's settings otherwise (opt-in by name:
# ``optimizers=("adamw", "muon", "muon_normuon", ...)`` or ``optkit bench --optimizers``).
MUON_VARIANTS: dict[str, dict[str, Any]] = {
    "muon_normuon": {"normuon": True},
    "muon_cautious": {"cautious_wd": True},
    "muon_normuon_cautious": {"normuon": True, "cautious_wd": True},
}
# One lr grid for every optimizer (Muon's "match_rms_adamw" makes its lr AdamW-like). Order
# only saves compute: a sweep run stops at the best step count so far, so likely winners first.
LR_GRID = (1e-2, 2e-2, 3e-2, 5e-2, 1e-1, 2e-1, 5e-3, 3e-3)


@dataclass(frozen=True)
class GrokkingConfig:
    """Settings of the grokking benchmark (``full()``, ``quick()`` or ``tiny()`` presets).

    Args:
        p: The modulus (97).
        train_frac: Fraction of the p² pairs used for training (0.3–0.5 in the literature).
        d_model, heads, d_mlp, layers: The transformer.
        max_steps: Step cap per run.
        eval_every: Steps between validation evaluations (steps-to-target has this resolution).
        target_acc: Validation accuracy that counts as grokked.
        seeds: Seeds per optimizer (seed 0 is also the sweep seed).
        optimizers: Which of ``adamw``, ``muon``, ``muonclip`` (and of :data:`MUON_VARIANTS`:
            Muon with NorMuon and/or cautious weight decay) to run.
        lrs: Learning-rate sweep per optimizer (for Muon: the Muon groups' lr; a variant
            without an entry uses muon's).
        weight_decay: AdamW's decoupled weight decay (also Muon's AdamW part).
        muon_weight_decay: Decoupled weight decay of the Muon groups.
        muon_adjust_lr: Muon's ``adjust_lr``. ``"match_rms_adamw"`` (Moonlight: updates with
            AdamW's RMS, so AdamW's lr and weight decay carry over and one lr grid serves
            both) grokked in 170–450 steps at lr 0.01–0.2; KJ's ``"spectral"`` plateaued at
            75–96% validation accuracy within 2500 steps at lr 0.01–0.05 (docs/bench/grokking).
        adamw_lr: Learning rate of Muon's AdamW part (embeddings, head): AdamW's best lr.
        betas: AdamW's betas (also Muon's AdamW part).
        qk_clip_tau: τ of MuonClip.
        num_threads: ``torch.set_num_threads`` during training (None: leave).
    """

    p: int = 97
    train_frac: float = 0.5
    d_model: int = 128
    heads: int = 4
    d_mlp: int = 512
    layers: int = 1
    max_steps: int = 2500
    eval_every: int = 10
    target_acc: float = 0.99
    seeds: int = 3
    optimizers: tuple[str, ...] = OPTIMIZERS
    lrs: dict[str, tuple[float, ...]] = field(
        default_factory=lambda: {name: LR_GRID for name in OPTIMIZERS}
    )
    weight_decay: float = 1.0
    muon_weight_decay: float = 1.0
    muon_adjust_lr: str | None = "match_rms_adamw"
    adamw_lr: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.98)
    qk_clip_tau: float = 20.0
    num_threads: int | None = 1

    @classmethod
    def full(cls, seeds: int = 3) -> GrokkingConfig:
        return cls(seeds=seeds)

    @classmethod
    def quick(cls, seeds: int = 1) -> GrokkingConfig:
        """A smoke run: p = 23, few steps, one lr each (does not aim to grok fully)."""
        return cls(
            p=23,
            train_frac=0.5,
            max_steps=300,
            eval_every=10,
            seeds=seeds,
            lrs={"adamw": (3e-3,), "muon": (0.02,), "muonclip": (0.02,)},
        )

    @classmethod
    def tiny(cls) -> GrokkingConfig:
        return cls(
            p=11,
            d_model=32,
            heads=2,
            d_mlp=64,
            max_steps=30,
            eval_every=5,
            seeds=1,
            lrs={"adamw": (3e-3,), "muon": (0.02,), "muonclip": (0.02,)},
        )


# --- data and model --------------------------------------------------------------------------
def make_data(p: int, train_frac: float, seed: int = 0) -> dict[str, torch.Tensor]:
    """All p² sequences ``[a, b, p]`` and labels ``(a + b) % p``, split at random by ``seed``.

    Example:
        >>> d = make_data(5, 0.4)
        >>> d["x_train"].shape, d["x_val"].shape, d["x_train"][0, 2].item()
        (torch.Size([10, 3]), torch.Size([15, 3]), 5)
    """
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.reshape(-1), b.reshape(-1), torch.full((p * p,), p)], dim=1)
    y = (a + b).reshape(-1) % p
    perm = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = round(train_frac * p * p)
    tr, va = perm[:n], perm[n:]
    return {"x_train": x[tr], "y_train": y[tr], "x_val": x[va], "y_val": y[va]}


class Attention(nn.Module):
    """Causal multi-head self-attention with separate q/k/v/o projections (no biases)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.num_heads = heads
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.o_proj = nn.Linear(d, d, bias=False)

    def forward(self, h: torch.Tensor, last_only: bool) -> torch.Tensor:
        b, t, d = h.shape
        split = lambda z: z.view(b, -1, self.num_heads, d // self.num_heads).transpose(1, 2)  # noqa: E731
        q, k, v = split(self.q_proj(h)), split(self.k_proj(h)), split(self.v_proj(h))
        if last_only:  # the last query sees every key: no mask needed
            out = F.scaled_dot_product_attention(q[:, :, -1:], k, v)
            return self.o_proj(out.transpose(1, 2).reshape(b, 1, d))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, d: int, heads: int, d_mlp: int) -> None:
        super().__init__()
        self.attn = Attention(d, heads)
        self.fc_in = nn.Linear(d, d_mlp)
        self.fc_out = nn.Linear(d_mlp, d)

    def forward(self, h: torch.Tensor, last_only: bool) -> torch.Tensor:
        a = self.attn(h, last_only)
        h = (h[:, -1:] if last_only else h) + a
        return h + self.fc_out(F.relu(self.fc_in(h)))


class Transformer(nn.Module):
    """One- or two-layer decoder-only transformer without LayerNorm (Nanda et al. 2023).

    Example:
        >>> m = Transformer(p=7, d=16, heads=2, d_mlp=32)
        >>> m(torch.tensor([[1, 2, 7], [3, 4, 7]])).shape
        torch.Size([2, 7])
    """

    def __init__(self, p: int, d: int = 128, heads: int = 4, d_mlp: int = 512, layers: int = 1):
        super().__init__()
        self.embed = nn.Embedding(p + 1, d)  # tokens 0..p-1 and "=" (= p)
        self.pos = nn.Embedding(3, d)
        nn.init.normal_(self.pos.weight, std=0.02)  # small: a and b start nearly interchangeable
        self.blocks = nn.ModuleList(Block(d, heads, d_mlp) for _ in range(layers))
        self.unembed = nn.Linear(d, p, bias=False)  # Muon's output head (get_output_embeddings)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.unembed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x) + self.pos.weight[: x.shape[1]]
        for i, block in enumerate(self.blocks):
            h = block(h, last_only=i == len(self.blocks) - 1)
        return self.unembed(h[:, -1])


def make_optimizer(name: str, model: nn.Module, lr: float, cfg: GrokkingConfig):
    """The optimizer ``name`` (adamw / muon / muonclip) for ``model`` at learning rate ``lr``."""
    import optkit
    import optkit.optim

    if name == "adamw":
        return optkit.AdamW(
            model.parameters(), lr=lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
    common = dict(
        lr=lr,
        weight_decay=cfg.muon_weight_decay,
        adjust_lr=cfg.muon_adjust_lr,
        adamw_lr=cfg.adamw_lr,
        adamw_betas=cfg.betas,
        adamw_weight_decay=cfg.weight_decay,
    )
    if name == "muon" or name in MUON_VARIANTS:
        return optkit.optim.Muon(model, **common, **MUON_VARIANTS.get(name, {}))
    if name == "muonclip":
        return optkit.optim.MuonClip(model, qk_clip_tau=cfg.qk_clip_tau, **common)
    raise ValueError(f"optimizer must be one of {(*OPTIMIZERS, *MUON_VARIANTS)}, got {name!r}")


# --- one run -----------------------------------------------------------------------------------
def train_one(
    cfg: GrokkingConfig,
    name: str,
    lr: float,
    seed: int,
    *,
    max_steps: int | None = None,
    progress: Any = None,
    task: Any = None,
    on_eval: Any = None,
) -> dict[str, Any]:
    """Train one model full batch until validation accuracy ≥ ``cfg.target_acc`` or the cap.

    Returns ``steps_to_target`` (None if not reached), ``steps`` run, wall ``time`` (training
    only) and the curves ``step``, ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc``,
    ``time`` at each evaluation, and for MuonClip the largest attention logit per evaluation.
    """
    progress = progress or NullProgress()
    cap = cfg.max_steps if max_steps is None else max_steps
    data = make_data(cfg.p, cfg.train_frac, seed=0)  # one split for all runs; seeds vary init
    seed_everything(seed)
    model = Transformer(cfg.p, cfg.d_model, cfg.heads, cfg.d_mlp, cfg.layers)
    opt = make_optimizer(name, model, lr, cfg)
    xt, yt, xv, yv = data["x_train"], data["y_train"], data["x_val"], data["y_val"]
    curves: dict[str, list[float]] = {
        k: [] for k in ("step", "train_loss", "train_acc", "val_loss", "val_acc", "time")
    }
    if name == "muonclip":
        curves["max_logit"] = []
    reached, elapsed, step = None, 0.0, 0

    def result() -> dict[str, Any]:
        return {
            "optimizer": name,
            "lr": lr,
            "seed": seed,
            "steps_to_target": reached,
            "steps": step,
            "cap": cap,
            "time": elapsed,
            "curves": curves,
        }

    while step < cap:
        t0 = time.perf_counter()
        logits = model(xt)
        loss = F.cross_entropy(logits, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        elapsed += time.perf_counter() - t0
        step += 1
        if step % cfg.eval_every == 0 or step == cap:
            model.eval()  # QK-clip's hooks record training forwards only
            with torch.no_grad():
                val_logits = model(xv)
            model.train()
            val_acc = (val_logits.argmax(-1) == yv).float().mean().item()
            curves["step"].append(step)
            curves["train_loss"].append(loss.item())
            curves["train_acc"].append((logits.argmax(-1) == yt).float().mean().item())
            curves["val_loss"].append(F.cross_entropy(val_logits, yv).item())
            curves["val_acc"].append(val_acc)
            curves["time"].append(elapsed)
            if name == "muonclip":
                curves["max_logit"].append(
                    max(float(v.max()) for v in opt.max_logits.values()) if opt.max_logits else 0.0
                )
            progress.update(
                task, completed=step, description=f"{name} lr={lr:g} s{seed} acc={val_acc:.2f}"
            )
            if not math.isfinite(curves["train_loss"][-1]):
                break
            if val_acc >= cfg.target_acc:
                reached = step
                break
            if on_eval is not None:
                on_eval(result())
    return result()


# settings that cannot change a run of that optimizer (a saved run stays valid when they change)
_IRRELEVANT = {
    "adamw": ("muon_weight_decay", "muon_adjust_lr", "adamw_lr", "qk_clip_tau"),
    "muon": ("qk_clip_tau",),
    "muonclip": (),
    **{name: ("qk_clip_tau",) for name in MUON_VARIANTS},
}


def _run_key(cfg: GrokkingConfig, name: str) -> dict[str, Any]:
    d = asdict(cfg)
    for k in ("seeds", "optimizers", "lrs", "num_threads", "max_steps", *_IRRELEVANT[name]):
        d.pop(k)
    return d


def _cached(path: Path, cfg: GrokkingConfig, name: str, cap: int) -> dict[str, Any] | None:
    """A saved run with the same settings that either reached the target or ran ≥ cap steps."""
    if not path.exists():
        return None
    saved = json.loads(path.read_text())
    if saved.get("key") != json.loads(json.dumps(_run_key(cfg, name))) or saved.get("partial"):
        return None
    r = saved["result"]
    if r["steps_to_target"] is not None or r["steps"] >= cap:
        return r
    return None


def _train_cached(cfg, name, lr, seed, cap, runs_dir, progress, train=True):
    path = None if runs_dir is None else runs_dir / f"{name}_lr{lr:g}_seed{seed}.json"
    if path is not None and (r := _cached(path, cfg, name, cap)) is not None:
        if r["steps_to_target"] is not None and r["steps_to_target"] > cap:
            r = {**r, "steps_to_target": None}
        return r
    if not train:  # assemble only: an interrupted run's last checkpoint, or nothing
        if path is None or not path.exists():
            return None
        saved = json.loads(path.read_text())
        if saved.get("key") != json.loads(json.dumps(_run_key(cfg, name))):
            return None
        return {**saved["result"], "interrupted": True}

    def checkpoint(partial: dict[str, Any]) -> None:
        if path is not None and partial["steps"] % (10 * cfg.eval_every) == 0:
            write_json(path, {"key": _run_key(cfg, name), "result": partial, "partial": True})

    task = progress.add_task(f"{name} lr={lr:g} s{seed}", total=cap)
    r = train_one(
        cfg, name, lr, seed, max_steps=cap, progress=progress, task=task, on_eval=checkpoint
    )
    progress.remove_task(task)
    if path is not None:
        write_json(path, {"key": _run_key(cfg, name), "result": r})
    return r


def run(
    cfg: GrokkingConfig | None = None,
    out_dir: str | Path | None = None,
    progress: Any = None,
    train: bool = True,
) -> dict[str, Any]:
    """Sweep, then seeds; write ``results.json``, ``grokking.png`` (and per-run JSON under
    ``runs/``, reused on a rerun with the same settings) into ``out_dir`` if given.

    The sweep runs seed 0 at each learning rate; since only the fewest steps matter, a sweep
    run stops once it has used as many steps as the best so far (the answer cannot change).
    Runs save a checkpoint of their curves every 10 evaluations. ``train=False`` only
    assembles what ``out_dir/runs`` holds: missing runs are left out, interrupted ones count
    as "not reached after the steps they ran" (``interrupted`` in the summary).
    """
    cfg = cfg or GrokkingConfig.full()
    progress = progress or NullProgress()
    runs_dir = None if out_dir is None else Path(out_dir) / "runs"
    sweep: dict[str, list[dict[str, Any]]] = {}
    finals: dict[str, list[dict[str, Any]]] = {}
    best_lr: dict[str, float] = {}
    with threads(cfg.num_threads):
        for name in cfg.optimizers:
            best = None
            sweep[name] = []
            for lr in cfg.lrs.get(name, cfg.lrs.get("muon", LR_GRID)):
                cap = cfg.max_steps if best is None else min(cfg.max_steps, best["steps_to_target"])
                r = _train_cached(cfg, name, lr, 0, cap, runs_dir, progress, train)
                if r is None:
                    continue
                sweep[name].append(r)
                if r["steps_to_target"] is not None and (
                    best is None or r["steps_to_target"] < best["steps_to_target"]
                ):
                    best = r
            if best is None and not sweep[name]:
                continue
            if best is None:  # nobody reached the target: lowest final validation loss
                best = min(sweep[name], key=lambda r: r["curves"]["val_loss"][-1])
            best_lr[name] = best["lr"]
            finals[name] = [best]
            for seed in range(1, cfg.seeds):
                r = _train_cached(
                    cfg, name, best["lr"], seed, cfg.max_steps, runs_dir, progress, train
                )
                if r is not None:
                    finals[name].append(r)
    summary = _summarize(cfg, finals, best_lr)
    results = {
        "task": "grokking",
        "config": asdict(cfg),
        "machine": machine_info(),
        "best_lr": best_lr,
        "summary": summary,
        "rows": [_row(k, v) for k, v in summary.items()],
        "sweep": {k: [_brief(r) for r in v] for k, v in sweep.items()},
        "runs": finals,
    }
    if out_dir is not None:
        write_json(Path(out_dir) / "results.json", results)
        _figure(results, Path(out_dir) / "grokking.png")
    return results


def _row(name: str, v: dict[str, Any]) -> dict[str, Any]:
    steps = [
        f">{n} (interrupted)" if cut else (str(s) if math.isfinite(s) else f">{n}")
        for s, n, cut in zip(v["steps_to_target"], v["steps_run"], v["interrupted"], strict=True)
    ]
    return {
        "optimizer": name,
        "lr": v["lr"],
        "steps_to_99%_per_seed": ", ".join(steps),
        "median_steps": v["median_steps"],
        "reached": f"{v['reached']}/{v['runs']}",
        "ratio_vs_adamw": v.get("ratio_vs_adamw"),
        "final_val_acc": v["final_val_acc"],
    }


def _brief(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("optimizer", "lr", "seed", "steps_to_target", "steps", "cap", "time")
    return {**{k: r[k] for k in keys}, "interrupted": bool(r.get("interrupted"))}


def _summarize(cfg, finals, best_lr) -> dict[str, dict[str, Any]]:
    out = {}
    for name, rs in finals.items():
        steps = [r["steps_to_target"] if r["steps_to_target"] is not None else math.inf for r in rs]
        out[name] = {
            "lr": best_lr[name],
            "steps_to_target": steps,
            "steps_run": [r["steps"] for r in rs],
            "interrupted": [bool(r.get("interrupted")) for r in rs],
            "median_steps": median(steps),
            "reached": sum(math.isfinite(s) for s in steps),
            "runs": len(rs),
            "median_time_s": median(r["time"] for r in rs),
            "final_val_acc": median(r["curves"]["val_acc"][-1] for r in rs),
        }
    if "adamw" in out:
        base = out["adamw"]["median_steps"]
        for v in out.values():
            ratio = v["median_steps"] / base if math.isfinite(base) else math.nan
            v["ratio_vs_adamw"] = ratio
            # when AdamW never reached the target, the ratio is at most median / cap
            v["ratio_vs_adamw_upper_bound"] = (
                v["median_steps"] / cfg.max_steps if not math.isfinite(base) else ratio
            )
    return out


def _figure(results: dict[str, Any], path: Path) -> None:
    fig, axes = new_figure(1, 2, (5.5, 4.0))
    colors = {"adamw": "C0", "muon": "C3", "muonclip": "C2"}
    for name, rs in results["runs"].items():
        for i, r in enumerate(rs):
            c = r["curves"]
            label = f"{name} lr={r['lr']:g}" if i == 0 else None
            axes[0, 0].plot(c["step"], c["val_acc"], color=colors.get(name), alpha=0.8, label=label)
            axes[0, 0].plot(c["step"], c["train_acc"], ":", color=colors.get(name), alpha=0.5)
            axes[0, 1].plot(
                c["step"], c["val_loss"], color=colors.get(name), alpha=0.8, label=label
            )
    axes[0, 0].axhline(results["config"]["target_acc"], color="k", lw=0.5)
    axes[0, 0].set_ylabel("accuracy (solid: validation, dotted: train)")
    axes[0, 1].set_ylabel("validation loss")
    axes[0, 1].set_yscale("log")
    for ax in axes[0]:
        ax.set_xlabel("full-batch steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    p = results["config"]["p"]
    fig.suptitle(f"a + b mod {p}: every seed at each optimizer's best lr")
    save_figure(fig, path)
