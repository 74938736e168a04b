"""The symmetric Triton kernel (one triangle computed, both stored) against full products, and
Newton–Schulz with it against the plain products: on CUDA, and on the CPU under
``TRITON_INTERPRET=1`` (triton's interpreter runs the same kernel on CPU tensors; its ``dot``
misreads bf16 operands, so there the kernel upcasts them to float32 first)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import optkit.optim._ns_cuda as ns_cuda
import optkit.optim._ns_triton as ns_triton
from optkit.optim.newton_schulz import _run, ns_schedule

from ..devices import tolerance

pytest.importorskip("triton", reason="triton is an optional test dependency")

F64 = torch.float64


INTERPRETING = os.environ.get("TRITON_INTERPRET") == "1"


@pytest.fixture
def kernel_device(device):
    """``device``; the CPU only under ``TRITON_INTERPRET=1``, which triton reads when it is
    imported (:func:`test_kernel_under_the_interpreter_on_cpu` runs this file so)."""
    if device.type == "cpu" and not INTERPRETING:
        pytest.skip("the CPU runs the kernel under TRITON_INTERPRET=1 (a subprocess test)")
    return device


def test_kernel_under_the_interpreter_on_cpu():
    """This file's CPU cases in a fresh process with TRITON_INTERPRET=1 set before triton is
    imported (setting it later leaves triton's jit half in compiled mode)."""
    if INTERPRETING:
        pytest.skip("already under the interpreter")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-k", "cpu",
           __file__]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and " failed" not in done.stdout


def rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["float32", "bfloat16"])
@pytest.mark.parametrize("m, k", [(20, 37), (33, 5), (48, 48), (70, 130)])
def test_sym_matmul_equals_full_product(m, k, dtype, kernel_device):
    """Gram matrix XXᵀ (strided Xᵀ view) and β·C + α·A·A, tiles of 16 so that several tiles,
    ragged edges and mirrored tiles occur; every entry written (compared with the full one)."""
    g = torch.Generator().manual_seed(m * k)
    X = torch.randn(2, m, k, generator=g).to(kernel_device, dtype)
    A = ns_triton.sym_matmul(X, X.mT, block=16, block_k=16)
    full = X.double() @ X.double().mT
    assert A.shape == (2, m, m) and A.dtype == dtype and torch.equal(A, A.mT)
    limit = 1e-6 if dtype == torch.float32 else 1e-2
    assert rel(A, full) < limit
    B = ns_triton.sym_matmul(A, A, A, alpha=2.0315, beta=-4.775, block=16, block_k=16)
    ref = -4.775 * A.double() + 2.0315 * A.double() @ A.double()
    assert torch.equal(B, B.mT) and rel(B, ref) < limit


def test_sym_matmul_rejects_mismatched_shapes(kernel_device):
    X = torch.randn(1, 4, 6, device=kernel_device)
    with pytest.raises(ValueError, match=r"R must have shape \(1, 6, 4\)"):
        ns_triton.sym_matmul(X, X)


@pytest.mark.parametrize("groups", [(1, 1, 1, 1, 1), (3, 2)])
@pytest.mark.parametrize("shape", [(1, 80, 160), (1, 160, 80), (1, 70, 70)])
def test_newton_schulz_with_the_kernel_equals_plain_products(
    shape, groups, kernel_device, monkeypatch
):
    """The CUDA backend's iteration with the triangle kernel against the same iteration with
    full products, float32; 32-wide tiles (3 per side here: mirrored and ragged ones; the
    GPU's 128-wide tiles are checked by gpu_step.py on GPU-sized matrices)."""
    monkeypatch.setattr(ns_triton, "BLOCK", 32)
    monkeypatch.setattr(ns_triton, "BLOCK_K", 32)
    X = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(kernel_device)
    sched = ns_schedule("quintic")
    args = (tuple(sched.steps(5)), groups, sched.norm_scale, 1e-7)
    dense = _run(X, *args, ns_cuda.DenseKernels, False, False)
    tri = _run(X, *args, ns_cuda.TriangleKernels, False, False)
    torch.testing.assert_close(tri, dense, **tolerance(kernel_device, torch.float32))
    assert rel(tri, dense) < 1e-5


def test_triangle_kernel_chosen_only_on_cuda_from_triton_min(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    assert ns_cuda.kernels(ns_cuda.TRITON_MIN, cuda) is ns_cuda.TriangleKernels
    assert ns_cuda.kernels(ns_cuda.TRITON_MIN - 1, cuda) is ns_cuda.DenseKernels
    assert ns_cuda.kernels(4096, cpu) is ns_cuda.DenseKernels
    monkeypatch.setattr(ns_cuda, "TRITON", False)
    assert ns_cuda.kernels(4096, cuda) is ns_cuda.DenseKernels
