"""Devices and per-device tolerances for the device-generic tests (fixture in conftest.py).

Every device test runs on ``cpu`` and, where ``torch.cuda.is_available()``, on ``cuda``; the
CUDA cases are skipped with a reason elsewhere, so ``make test`` on a CPU-only machine runs
exactly the CPU cases.

Tolerances (relative and absolute, for :func:`torch.testing.assert_close`) against a reference
computed *on the same device* (e.g. torch.optim next to optkit): float64 on CPU agrees to
rounding; on CUDA, reductions run in another order and fused multiply-adds round once, so a
few ulps per step accumulate over a run. float32 likewise (CUDA float32 matmuls run in full
float32: torch leaves TF32 off for matmuls by default). bfloat16: 8 bits of mantissa.
"""

from __future__ import annotations

import pytest
import torch

CUDA = torch.cuda.is_available()
DEVICES = [
    "cpu",
    pytest.param(
        "cuda", marks=pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU (torch.cuda)")
    ),
]

# (device type, dtype) -> (rtol, atol) of a same-device comparison after a short run
TOLERANCES = {
    ("cpu", torch.float64): (1e-12, 1e-14),
    ("cuda", torch.float64): (1e-10, 1e-12),
    ("cpu", torch.float32): (1e-5, 1e-6),
    ("cuda", torch.float32): (1e-4, 1e-5),
    ("cpu", torch.bfloat16): (2e-2, 1e-3),
    ("cuda", torch.bfloat16): (2e-2, 1e-3),
}


def tolerance(device: str | torch.device, dtype: torch.dtype) -> dict[str, float]:
    """``rtol``/``atol`` keyword arguments for ``torch.testing.assert_close`` on ``device``."""
    rtol, atol = TOLERANCES[(torch.device(device).type, dtype)]
    return {"rtol": rtol, "atol": atol}
