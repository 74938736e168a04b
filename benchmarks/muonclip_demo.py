"""MuonClip keeps attention max logits at τ where plain Muon lets them grow; loss unchanged.

    .venv/bin/python benchmarks/muonclip_demo.py [--steps 300] [--tau 12]

A small decoder-only transformer (``optkit.testing.ToyGPT``: d=64, 2 layers, 4 heads,
vocab 32) learns a copy task — a random first half, then the same tokens again — which needs
sharp attention, so Muon at a high learning rate drives the q·k logits up. Both runs start from
the same weights and see the same batches; only the optimizer differs: ``optkit.Muon`` vs
``optkit.MuonClip(qk_clip_tau=τ)``. The max logit over all heads is recorded at every step by
the same forward hooks (for Muon, a tracker with τ = ∞). Prints the numbers and saves
``docs/muonclip.png``.

Results, with the machine and date they were measured on: docs/benchmarks/muonclip.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from optkit.optim import Muon, MuonClip
from optkit.optim.muon_clip import QKClip, find_attention
from optkit.testing import ToyGPT

VOCAB, HALF = 32, 16


def batch(g: torch.Generator, size: int = 32) -> torch.Tensor:
    first = torch.randint(1, VOCAB, (size, HALF), generator=g)
    return torch.cat([first, first], dim=1)


def loss_fn(model, x):
    logits = model(x[:, :-1])
    return F.cross_entropy(logits[:, HALF - 1 :].flatten(0, 1), x[:, HALF:].flatten())


def run(clip: bool, steps: int, tau: float, lr: float, seed: int = 0, batch_size: int = 256):
    torch.manual_seed(seed)
    model = ToyGPT(VOCAB, d=64, layers=2, num_heads=4, block_size=2 * HALF)
    kw = dict(lr=lr, adamw_lr=3e-3)
    opt = MuonClip(model, qk_clip_tau=tau, **kw) if clip else Muon(model, **kw)
    # the logits the softmax sees in each forward, same probe for both runs (never clips)
    probe = QKClip(find_attention(model), tau=1e30, measure="forward")
    g = torch.Generator().manual_seed(seed + 1)
    losses, max_logits = [], []
    for _ in range(steps):
        x = batch(g, batch_size)
        opt.zero_grad()
        loss = loss_fn(model, x)
        loss.backward()
        max_logits.append(max(S.max().item() for S in probe.max_logits.values()))
        opt.step()
        probe.clip()  # reset (also drops what MuonClip's re-measurement passed through)
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        final = statistics_loss(model, torch.Generator().manual_seed(999))
    return losses, max_logits, final


def statistics_loss(model, g, batches: int = 8) -> float:
    return sum(loss_fn(model, batch(g, 64)).item() for _ in range(batches)) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--tau", type=float, default=12.0)
    parser.add_argument("--lr", type=float, default=0.08)
    parser.add_argument("--batch", type=int, default=256, help="sequences per step")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    args = parser.parse_args()
    t0 = time.perf_counter()
    muon = run(False, args.steps, args.tau, args.lr, batch_size=args.batch)
    clip = run(True, args.steps, args.tau, args.lr, batch_size=args.batch)
    elapsed = time.perf_counter() - t0

    print(f"copy task, {args.steps} steps of {args.batch} sequences, lr={args.lr}, τ={args.tau}  "
          f"({elapsed:.0f} s)")  # fmt: skip
    print(
        f"{'':10s} {'max logit (peak)':>17s} {'(last 50 steps)':>16s} {'final held-out loss':>20s}"
    )
    for name, (_, logits, final) in (("Muon", muon), ("MuonClip", clip)):
        print(f"{name:10s} {max(logits):17.2f} {max(logits[-50:]):16.2f} {final:20.4f}")
    rel = clip[2] / muon[2] - 1
    first = next((i for i, v in enumerate(clip[1]) if v > args.tau), len(clip[1]))
    after = clip[1][first + 1 :]
    peak = max(after, default=float("nan"))
    above = sum(v > args.tau * 1.01 for v in after)
    typical = statistics.median(after) if after else float("nan")
    print(f"MuonClip after its first clip (step {first}): max logit on each new batch "
          f"{peak:.2f} at most, median {typical:.2f}, {above}/{len(after)} steps above τ·1.01; "
          f"final loss vs Muon: {rel:+.1%} (target: not worse than +3%)")  # fmt: skip

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(muon[1], label="Muon")
    ax1.plot(clip[1], label=f"MuonClip (τ = {args.tau:g})")
    ax1.axhline(args.tau, color="gray", ls="--", lw=0.8)
    ax1.set(xlabel="step", ylabel="max attention logit (all heads)", title="max logit")
    ax1.legend()
    ax2.plot(muon[0], label="Muon", alpha=0.8)
    ax2.plot(clip[0], label="MuonClip", alpha=0.8)
    ax2.set(xlabel="step", ylabel="training loss", yscale="log", title="loss")
    ax2.legend()
    fig.tight_layout()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "muonclip.png", dpi=120)
    print(f"saved {out / 'muonclip.png'}")


if __name__ == "__main__":
    main()
