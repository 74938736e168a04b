"""ms/step of optkit's SGD / RMSprop / Adam / AdamW against torch.optim, in the same run.

The GPT-like parameter set of ``_gpt_params`` (23.1M parameters, 75 tensors) with fixed random
gradients. For each algorithm, torch.optim's single-tensor, foreach and fused variants (where
torch has one) are the anchors; the ratio is optkit's time over torch's fastest variant of the
same algorithm measured here. Runs are interleaved round-robin and the median is reported, so
load from other processes hits every variant alike. Target (issue 4): ratio ≤ 1.05.

Usage: python benchmarks/step_time.py [--rounds 15] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _gpt_params import gpt_like_model, set_random_grads  # noqa: E402

import optkit  # noqa: E402

ALGORITHMS = {
    # name: (optkit class, torch class, kwargs, torch variants)
    "SGD+momentum": (optkit.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9),
                     ("single", "foreach", "fused")),
    "RMSprop": (optkit.RMSprop, torch.optim.RMSprop, dict(lr=1e-3), ("single", "foreach")),
    "Adam": (optkit.Adam, torch.optim.Adam, dict(lr=1e-3), ("single", "foreach", "fused")),
    "AdamW": (optkit.AdamW, torch.optim.AdamW, dict(lr=1e-3, weight_decay=0.01),
              ("single", "foreach", "fused")),
}  # fmt: skip

VARIANT_KW = {"single": dict(foreach=False), "foreach": dict(foreach=True), "fused": dict(fused=True)}


def make(factory):
    model = gpt_like_model()
    set_random_grads(model)
    opt = factory(model.parameters())
    opt.step()  # allocate state outside the timed region
    return opt


def time_step(opt) -> float:
    t0 = time.perf_counter()
    opt.step()
    return (time.perf_counter() - t0) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds, median ms/step")
    print(f"{'algorithm':14s} {'optkit':>8s} " + " ".join(f"{v:>9s}" for v in VARIANT_KW)
          + f" {'best torch':>11s} {'ratio':>6s}")  # fmt: skip
    rows = []
    for name, (ours, theirs, kw, variants) in ALGORITHMS.items():
        contenders = {"optkit": make(lambda p, o=ours: o(p, **kw))}
        for v in variants:
            contenders[v] = make(lambda p, t=theirs, v=v: t(p, **kw, **VARIANT_KW[v]))
        times = {k: [] for k in contenders}
        for _ in range(args.rounds):
            for k, opt in contenders.items():
                times[k].append(time_step(opt))
        med = {k: statistics.median(v) for k, v in times.items()}
        best_variant = min(variants, key=lambda v: med[v])
        ratio = med["optkit"] / med[best_variant]
        cells = " ".join(f"{med[v]:9.2f}" if v in med else f"{'-':>9s}" for v in VARIANT_KW)
        print(f"{name:14s} {med['optkit']:8.2f} {cells} {best_variant:>11s} {ratio:6.2f}")
        rows.append((name, ratio))
        del contenders
    worst = max(r for _, r in rows)
    print(f"worst ratio {worst:.2f} (target <= 1.05): {'met' if worst <= 1.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
