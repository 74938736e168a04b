"""The optimizer tests on every available device (``device`` fixture: cpu, and cuda when
present): the optim_db rows against torch.optim on the same device, Muon against its float64
reference, Newton–Schulz in each backend's form, MuonClip's clip bound."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import optkit
import optkit.optim._ns_cuda as ns_cuda
from optkit.optim.newton_schulz import (
    _backend,
    _run,
    newton_schulz,
    ns_schedule,
    orthogonalize_many,
)
from optkit.testing import ToyGPT

from ..devices import tolerance
from .optim_db import CASE_IDS, CASES
from .test_muon import reference_muon_step
from .test_muon_clip import logits_of
from .test_newton_schulz import polar_error, reference_ns, spectrum_matrix

F64 = torch.float64
STEPS = 30


def model_on(device, dtype, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(device, dtype)


def data_on(device, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(32, 6, generator=g), torch.randn(32, 3, generator=g)
    return x.to(device, dtype), y.to(device, dtype)


def run_steps(model, opt, data, steps=STEPS):
    x, y = data
    sign = -1.0 if opt.param_groups[0].get("maximize", False) else 1.0
    for _ in range(steps):
        opt.zero_grad()
        (sign * F.mse_loss(model(x), y)).backward()
        opt.step()


@pytest.mark.parametrize("dtype", [F64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_first_order_equals_torch_optim_on_device(info, cfg, dtype, device):
    """Each optim_db row, 30 steps, against the torch.optim class on the same device."""
    data = data_on(device, dtype)
    ours, theirs = model_on(device, dtype), model_on(device, dtype)
    run_steps(ours, info.cls(ours.parameters(), **cfg), data)
    run_steps(theirs, info.reference(theirs.parameters(), **cfg), data)
    for p, q in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert p.device.type == device.type and p.dtype == dtype
        torch.testing.assert_close(p, q, **tolerance(device, dtype))


def test_muon_equals_float64_reference_on_device(device):
    """Muon (matrices, a stacked expert batch) in float64 against the plain reference, which
    runs on the CPU: the device's products agree to a few ulps per step."""
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 10), (10, 6), (6, 10), (4, 3, 3, 3)]
    start = [torch.randn(*s, dtype=F64, generator=g) for s in shapes]
    params = [nn.Parameter(t.to(device)) for t in start]
    opt = optkit.Muon([{"params": params}], lr=0.05, weight_decay=0.1)
    ref, bufs = [t.clone() for t in start], [torch.zeros_like(t) for t in start]
    for _ in range(5):
        grads = [torch.randn(*s, dtype=F64, generator=g) for s in shapes]
        for p, gr in zip(params, grads):
            p.grad = gr.to(device)
        opt.step()
        for r, gr, b in zip(ref, grads, bufs):
            reference_muon_step(r, gr, b, lr=0.05, mu=0.95, nesterov=True, wd=0.1,
                                adjust="spectral", steps=5, batch_dims=0)  # fmt: skip
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.cpu(), r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("schedule", ["quintic", "polar_express"])
@pytest.mark.parametrize("shape", [(3, 8, 8), (2, 6, 20), (2, 20, 6), (2, 40, 300)])
def test_newton_schulz_float64_on_device_equals_reference(shape, schedule, device):
    """Whatever form the device's backend picks (plain, Gram groups or Gram with restarts)."""
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    sched = ns_schedule(schedule)
    O = newton_schulz(X.to(device), 5, schedule)
    ref = torch.stack([reference_ns(M, sched.coefficients, 5, norm_scale=sched.norm_scale)
                       for M in X])  # fmt: skip
    assert O.device.type == device.type
    torch.testing.assert_close(O.cpu(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("groups", [(1, 1, 1, 1, 1), (3, 2), (2, 3), (5,)])
@pytest.mark.parametrize("tall", [False, True])
def test_cuda_backend_forms_equal_plain_form_in_float64(groups, tall, device):
    """The CUDA backend's iteration (fresh tensors, dense or any grouping), run on any device,
    is the plain iteration in exact arithmetic."""
    shape = (2, 48, 12) if tall else (2, 12, 48)
    X = torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(2)).to(device)
    sched = ns_schedule("polar_express")
    coefficients = tuple(sched.steps(5))
    O = _run(X, coefficients, groups, sched.norm_scale, 1e-7, ns_cuda.DenseKernels, False, False)
    ref = torch.stack([reference_ns(M, sched.coefficients, 5, norm_scale=sched.norm_scale)
                       for M in X.cpu()])  # fmt: skip
    torch.testing.assert_close(O.cpu(), ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape", [(256, 256), (256, 1024), (1024, 256)])
def test_bfloat16_orthogonality_on_device(shape, device):
    """The default (bf16 where the device has it) is as close to UVᵀ as a float32 plain
    reference, within 5% (the quintic's own error dominates bf16 rounding)."""
    G = spectrum_matrix(*shape, seed=3)
    ref_err = polar_error(reference_ns(G.float(), [optkit.optim.newton_schulz.QUINTIC], 5), G)
    O = orthogonalize_many([G.float().to(device)])[0]
    assert O.dtype == torch.float32 and O.device.type == device.type
    assert polar_error(O.cpu(), G) <= ref_err * 1.05


def test_backend_switch_per_device(device):
    """One switch: CPU tensors take the CPU module, all others the CUDA module."""
    expected = "_ns_cpu" if device.type == "cpu" else "_ns_cuda"
    assert _backend(device).__name__.endswith(expected)


def test_muonclip_brings_heads_to_tau_on_device(device):
    """MuonClip on the device: heads above τ end at τ on the batch, the others are untouched."""
    torch.manual_seed(0)
    model = ToyGPT(layers=1, d=32, num_heads=4).to(device)
    with torch.no_grad():  # make some heads large
        for p in model.blocks[0].attn.parameters():
            p.mul_(3.0)
    x = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0)).to(device)
    before = logits_of(model, x)
    tau = torch.cat(list(before.values())).median().item()
    opt = optkit.MuonClip(model, lr=0.0, adamw_lr=0.0, qk_clip_tau=tau)  # only the clip acts
    F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    opt.step()
    after = logits_of(model, x)
    rtol = tolerance(device, torch.float32)["rtol"]
    for name, S in before.items():
        above = S > tau
        assert S.device.type == device.type and 0 < above.sum() < len(S)
        torch.testing.assert_close(after[name][above], torch.full_like(S[above], tau), rtol=rtol,
                                   atol=0)  # fmt: skip
        assert torch.equal(after[name][~above], S[~above])
