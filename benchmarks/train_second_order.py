"""Thin wrapper: `python benchmarks/train_second_order.py [--seeds N] [--quick] [--out DIR]`.

Same as `optkit bench second-order`; see :mod:`optkit.bench.second_order` for what it measures.

Results, with the machine and date they were measured on: docs/benchmarks/second_order.md.
"""

import sys

from optkit.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["second-order", *sys.argv[1:]]))
