"""NorMuon and cautious weight decay beside plain Muon and AdamW: grokking and digits, 3 seeds.

``python benchmarks/train_normuon.py grokking|digits [--only NAME] [--out DIR]``

- grokking: :mod:`optkit.bench.grokking` with ``muon_normuon`` and ``muon_cautious`` (Muon's
  settings: ``adjust_lr="match_rms_adamw"``, weight decay 1) on the lr grid around plain
  Muon's best (0.1): 0.1, 0.2, 0.05, 0.01, then seeds 1 and 2 at the best. AdamW and Muon
  use the full grid of the benchmark; runs already saved under ``DIR/runs`` with the same
  settings are reused (``--only`` trains one variant, so two processes can share the work;
  ``--cached-only`` assembles what ``DIR/runs`` holds, an interrupted run counting as not
  reached after the steps it ran).
- digits: :mod:`optkit.bench.digits` with ``muon_wd`` (decoupled decay 0.1 or 0.5),
  ``muon_cautious`` (the same grid, cautious) and ``muon_normuon`` beside AdamW and Muon.

The results page is ``docs/benchmarks/normuon.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from optkit.bench import digits, grokking
from optkit.bench.cli import markdown_summary

VARIANT_LRS = (0.1, 0.2, 0.05, 0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=["grokking", "digits"])
    parser.add_argument("--only", default=None, help="train only this optimizer")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--cached-only", action="store_true", help="grokking: assemble DIR/runs, train nothing"
    )
    args = parser.parse_args()
    out = Path(args.out or f"bench-output/normuon-{args.task}")
    if args.task == "grokking":
        names = ("adamw", "muon", "muon_normuon", "muon_cautious")
        base = grokking.GrokkingConfig.full()
        lrs = {**base.lrs, **{n: VARIANT_LRS for n in grokking.MUON_VARIANTS}}
        cfg = dataclasses.replace(base, optimizers=(args.only,) if args.only else names, lrs=lrs)
        results = grokking.run(cfg, out, train=not args.cached_only)
    else:
        names = ("adamw", "muon", "muon_wd", "muon_cautious", "muon_normuon")
        cfg = dataclasses.replace(digits.DigitsConfig.full(), optimizers=names)
        results = digits.run(cfg, out)
    command = f"python benchmarks/train_normuon.py {args.task} --out {out}"
    command += " --cached-only" if args.cached_only else ""
    (out / "summary.md").write_text(markdown_summary(results, command))
    print((out / "summary.md").read_text())


if __name__ == "__main__":
    main()
