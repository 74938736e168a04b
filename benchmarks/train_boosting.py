"""Thin wrapper: `python benchmarks/train_boosting.py [--seeds N] [--quick] [--out DIR]`.

Same as `optkit bench boosting`; see :mod:`optkit.bench.boosting` for what it measures.

Results, with the machine and date they were measured on: docs/benchmarks/boosting.md.
"""

import sys

from optkit.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["boosting", *sys.argv[1:]]))
