"""ms/step of optkit's SGD / RMSprop / Adam / AdamW against torch.optim, in the same run.

The GPT-like parameter set of ``_gpt_params`` (23.1M parameters, 75 tensors) with fixed random
gradients. For each algorithm, torch.optim's single-tensor, foreach and fused variants (where
torch has one) are the anchors; the ratio is optkit's time over torch's fastest variant of the
same algorithm measured here. Runs are interleaved round-robin, the starting contender rotating
from round to round, and the median is reported, so load from other processes hits every
variant alike; the process CPU time per step is reported
beside the wall time, since it is far less disturbed by other processes on a shared machine.
Target (issue 4): ratio ≤ 1.05.

Usage: python benchmarks/step_time.py [--rounds 15] [--threads N] [--copies 3]

Results, with the machine and date they were measured on: docs/benchmarks/step_time.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from _gpt_params import gpt_like_model, set_random_grads

import optkit

ALGORITHMS = {
    # name: (optkit class, torch class, kwargs, torch variants)
    "SGD+momentum": (optkit.SGD, torch.optim.SGD, dict(lr=1e-3, momentum=0.9),
                     ("single", "foreach", "fused")),
    "RMSprop": (optkit.RMSprop, torch.optim.RMSprop, dict(lr=1e-3), ("single", "foreach")),
    "Adam": (optkit.Adam, torch.optim.Adam, dict(lr=1e-3), ("single", "foreach", "fused")),
    "AdamW": (optkit.AdamW, torch.optim.AdamW, dict(lr=1e-3, weight_decay=0.01),
              ("single", "foreach", "fused")),
}  # fmt: skip

VARIANT_KW = {
    "single": dict(foreach=False),
    "foreach": dict(foreach=True),
    "fused": dict(fused=True),
}


def make(cls, kw):
    model = gpt_like_model()
    set_random_grads(model)
    opt = cls(model.parameters(), **kw)
    opt.step()  # allocate state outside the timed region
    return opt


def time_step(opt) -> tuple[float, float]:
    """(wall ms, process CPU ms) of one step: CPU time is less sensitive to other processes."""
    c0, t0 = time.process_time(), time.perf_counter()
    opt.step()
    return (time.perf_counter() - t0) * 1e3, (time.process_time() - c0) * 1e3


def measure(ours, theirs, kw, variants, rounds, n_copies):
    """Median (wall, cpu) ms/step of optkit and each torch variant, interleaved round-robin.

    Where a model's tensors land in memory moves its step time by up to ~10% here (the same
    fused kernel on two copies of the same data differs that much, either way, from run to
    run), so each contender is built ``n_copies`` times, in rotated and mirrored orders, and
    its median is over all its copies' steps.
    """
    factories = {"optkit": (ours, kw)}
    factories.update({v: (theirs, {**kw, **VARIANT_KW[v]}) for v in variants})
    names = list(factories)
    orders = [names[c:] + names[:c] for c in range(n_copies)]
    orders = [o if c % 2 == 0 else o[::-1] for c, o in enumerate(orders)]
    copies = [(k, make(*factories[k])) for order in orders for k in order]
    times = {k: [] for k in factories}
    for r in range(rounds):
        # rotate who goes first: the position in a round also moves a step's time
        shift = r % len(copies)
        for k, opt in copies[shift:] + copies[:shift]:
            times[k].append(time_step(opt))
    return {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v))
        for k, v in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--copies", type=int, default=3, help="instances of each contender")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds, "
          "median ms/step as wall / process-CPU")  # fmt: skip
    print(f"{'algorithm':14s} {'optkit':>13s} " + " ".join(f"{v:>13s}" for v in VARIANT_KW)
          + f" {'best torch':>11s} {'ratio wall':>10s} {'ratio cpu':>9s}")  # fmt: skip
    ratios = []
    for name, (ours, theirs, kw, variants) in ALGORITHMS.items():
        med = measure(ours, theirs, kw, variants, args.rounds, args.copies)
        best = min(variants, key=lambda v: med[v][0])
        ratio = med["optkit"][0] / med[best][0]
        ratio_cpu = med["optkit"][1] / min(med[v][1] for v in variants)
        cells = [f"{med[k][0]:6.1f}/{med[k][1]:6.1f}" if k in med else f"{'-':>13s}"
                 for k in ("optkit", *VARIANT_KW)]  # fmt: skip
        print(f"{name:14s} {' '.join(cells)} {best:>11s} {ratio:10.2f} {ratio_cpu:9.2f}")
        ratios.append(ratio)
    worst = max(ratios)
    print(f"worst wall ratio {worst:.2f} (target <= 1.05): {'met' if worst <= 1.05 else 'NOT met'}")


if __name__ == "__main__":
    main()
