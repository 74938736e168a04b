"""Muon: float64 parity with a plain reference, AdamW groups = optkit.AdamW, errors, state_dict,
schedulers, frozen regression values."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optkit.optim import AdamW, Muon
from optkit.optim.newton_schulz import ns_schedule
from optkit.testing import ToyCNN, ToyGPT, ToyMoE

from .test_newton_schulz import reference_ns

F64 = torch.float64


def reference_muon_step(p, g, buf, *, lr, mu, nesterov, wd, adjust, steps, batch_dims,
                        coefficients="quintic"):  # fmt: skip
    """One Muon step for one tensor, written plainly (KJ's muon_update + torch's adjust_lr)."""
    buf.mul_(mu).add_(g, alpha=1 - mu)
    u = (1 - mu) * g + mu * buf if nesterov else buf
    sched = ns_schedule(coefficients)
    mats = u.reshape(*u.shape[: batch_dims + 1], -1)
    rows, cols = mats.shape[-2:]
    flat = mats.reshape(-1, rows, cols)
    O = torch.stack([reference_ns(m, sched.coefficients, steps, norm_scale=sched.norm_scale)
                     for m in flat]).reshape(p.shape)  # fmt: skip
    r = {"spectral": max(1, rows / cols) ** 0.5, "match_rms_adamw": 0.2 * max(rows, cols) ** 0.5,
         None: 1.0}[adjust]  # fmt: skip
    p.mul_(1 - lr * wd).add_(O, alpha=-lr * r)


def tensors(seed=0):
    g = torch.Generator().manual_seed(seed)
    shapes = [(6, 10), (10, 6), (6, 10), (4, 3, 3, 3)]
    return [torch.randn(*s, dtype=F64, generator=g) for s in shapes], torch.randn(
        3, 5, 7, dtype=F64, generator=g
    )


@pytest.mark.parametrize(
    "cfg",
    [
        dict(),
        dict(nesterov=False, weight_decay=0.1, adjust_lr="match_rms_adamw", ns_steps=3),
        dict(adjust_lr=None, momentum=0.5, ns_coefficients="polar_express", ns_steps=6),
    ],
)
def test_parity_with_float64_reference(cfg):
    mats, experts = tensors()
    params = [nn.Parameter(t.clone()) for t in mats]
    expert = nn.Parameter(experts.clone())
    opt = Muon([{"params": params}, {"params": [expert], "batch_dims": 1}], lr=0.05, **cfg)
    ref = [t.clone() for t in [*mats, experts]]
    bufs = [torch.zeros_like(t) for t in ref]
    kw = dict(
        lr=0.05, mu=cfg.get("momentum", 0.95), nesterov=cfg.get("nesterov", True),
        wd=cfg.get("weight_decay", 0.0), adjust=cfg.get("adjust_lr", "spectral"),
        steps=cfg.get("ns_steps", 5), coefficients=cfg.get("ns_coefficients", "quintic"),
    )  # fmt: skip
    g = torch.Generator().manual_seed(5)
    for _ in range(4):
        grads = [torch.randn(t.shape, dtype=F64, generator=g) for t in ref]
        for p, gr in zip([*params, expert], grads):
            p.grad = gr.clone()
        opt.step()
        for i, (p, gr) in enumerate(zip(ref, grads)):
            reference_muon_step(p, gr, bufs[i], batch_dims=int(i == len(ref) - 1), **kw)
    for p, r in zip([*params, expert], ref):
        assert (p.detach() - r).abs().max().item() < 1e-10


def test_momentum_buffer_matches_torch_muon():
    w = torch.randn(8, 12, generator=torch.Generator().manual_seed(0))
    a, b = nn.Parameter(w.clone()), nn.Parameter(w.clone())
    ours = Muon([a], lr=0.02, ns_dtype=torch.bfloat16)
    theirs = torch.optim.Muon([b], lr=0.02, weight_decay=0.0)
    for k in range(3):
        grad = torch.randn(8, 12, generator=torch.Generator().manual_seed(k + 1))
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    assert torch.equal(ours.state[a]["momentum_buffer"], theirs.state[b]["momentum_buffer"])
    assert torch.allclose(a, b, atol=2e-3)  # both run NS in bf16


def test_adamw_groups_equal_optkit_adamw():
    torch.manual_seed(0)
    model = ToyGPT(layers=1)
    twin = copy.deepcopy(model)
    opt = Muon(model, adamw_lr=1e-2, adamw_betas=(0.8, 0.9), adamw_weight_decay=0.1)
    adamw_names = {r.name for r in opt.records if r.algorithm == "adamw"}
    params = dict(twin.named_parameters())
    ref = AdamW([params[n] for n in adamw_names], lr=1e-2, betas=(0.8, 0.9), weight_decay=0.1)
    ref_muon = Muon([p for n, p in params.items() if n not in adamw_names])
    x = torch.randint(0, 64, (2, 8))
    for _ in range(3):
        for m, opts in ((model, [opt]), (twin, [ref, ref_muon])):
            m.zero_grad()
            F.cross_entropy(m(x).flatten(0, 1), x.flatten()).backward()
            for o in opts:
                o.step()
    for name, p in model.named_parameters():
        if name in adamw_names:
            assert torch.equal(p, params[name]), name


def test_groups_and_describe():
    opt = Muon(ToyMoE())
    assert [(g["algorithm"], g.get("batch_dims")) for g in opt.param_groups] == [
        ("muon", 0), ("muon", 1), ("adamw", None)
    ]  # fmt: skip
    assert opt.param_groups[2]["lr"] == 3e-4 and "momentum" not in opt.param_groups[2]
    assert "stacked expert matrices (4 experts)" in opt.describe()
    opt2 = Muon([torch.zeros(3, 3, requires_grad=True)])
    opt2.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "algorithm": "adamw"})
    assert "param_groups[1][0]  (3,)    adamw" in opt2.describe()


def test_loss_decreases_cnn():
    torch.manual_seed(0)
    model = ToyCNN()
    opt = Muon(model, lr=0.02, adamw_lr=3e-3)
    x, y = torch.randn(32, 3, 8, 8), torch.randint(0, 10, (32,))
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


W = nn.Parameter(torch.zeros(3, 3))
V = nn.Parameter(torch.zeros(3))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Muon([V]), r"params\[0\] has shape \(3,\): a 'muon' group needs ndim >= 2"),
        (lambda: Muon([{"params": [W], "algorithm": "sgd"}]), "algorithm must be one of 'muon'"),
        (lambda: Muon([W], ns_steps=0), "ns_steps must be an integer >= 1, got 0"),
        (lambda: Muon([W], lr=-1.0), "lr must be finite and >= 0, got -1.0"),
        (lambda: Muon([W], momentum=1.0), r"momentum must be in \[0, 1\), got 1.0"),
        (lambda: Muon([W], weight_decay=-0.1), "weight_decay must be finite and >= 0"),
        (lambda: Muon([W], adjust_lr="rms"), "adjust_lr must be one of"),
        (lambda: Muon([W], adamw_lr=-1.0), "adamw_lr must be finite and >= 0"),
        (lambda: Muon([W], adamw_betas=(0.9, 1.0)), r"adamw_betas\[1\] must be in \[0, 1\)"),
        (lambda: Muon([W], ns_coefficients="cubic"), "ns_coefficients must be one of"),
        (lambda: Muon([W], ns_dtype="bf16"), "ns_dtype must be None or a floating torch.dtype"),
        (lambda: Muon([{"params": [W], "algorithm": "adamw", "betas": (1.0, 0.9)}]), r"betas\[0\]"),
        (lambda: Muon([{"params": [W], "batch_dims": 1}]), "ndim >= 3"),
    ],
)  # fmt: skip
def test_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def run(model, opt, batches, start=0, stop=None):
    for x in batches[start:stop]:
        opt.zero_grad()
        F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
        opt.step()


def gpt_batches(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (2, 12), generator=g) for _ in range(n)]


def test_state_dict_round_trip_is_bit_exact():
    torch.manual_seed(0)
    model = ToyGPT(layers=1, tied=True)
    twin = copy.deepcopy(model)
    batches = gpt_batches()
    opt = Muon(model, weight_decay=0.01)
    run(model, opt, batches)  # uninterrupted
    opt2 = Muon(twin, weight_decay=0.01)
    run(twin, opt2, batches, 0, 3)
    buf = io.BytesIO()
    torch.save({"model": twin.state_dict(), "opt": opt2.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    torch.manual_seed(123)
    resumed = ToyGPT(layers=1, tied=True)
    resumed.load_state_dict(saved["model"])
    opt3 = Muon(resumed, weight_decay=0.01)
    opt3.load_state_dict(saved["opt"])
    run(resumed, opt3, batches, 3)
    for (name, a), b in zip(model.named_parameters(), resumed.parameters()):
        assert torch.equal(a, b), name


def test_scheduler_acts_on_both_kinds():
    torch.manual_seed(0)
    model = ToyGPT(layers=1)
    opt = Muon(model, lr=0.02, adamw_lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    run(model, opt, gpt_batches(2))
    sched.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.02 / 4, 1e-3 / 4]
    # and the scaled lr is the one applied: a zero lr freezes both kinds
    for g in opt.param_groups:
        g["lr"] = 0.0
    before = [p.clone() for p in model.parameters()]
    run(model, opt, gpt_batches(1))
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_frozen_regression_values():
    # Frozen from this implementation (commit "Muon, MuonClip ..."), float64 so that BLAS and
    # bf16 support do not matter; the float64 reference parity test above pins the algorithm,
    # this pins the full pipeline (partition, groups, AdamW part, defaults). Do not update
    # without knowing why they moved.
    torch.manual_seed(0)
    model = ToyGPT(layers=1).to(F64)
    opt = Muon(model, lr=0.02, adamw_lr=1e-2, weight_decay=0.01)
    run(model, opt, gpt_batches(5))
    sums = {n: round(p.sum().item(), 10) for n, p in model.named_parameters()}
    got = (sums["blocks.0.attn.q_proj.weight"], sums["blocks.0.fc.weight"],
           sums["lm_head.weight"], sums["tok_emb.weight"])  # fmt: skip
    assert got == pytest.approx(FROZEN_MUON, abs=1e-8)


FROZEN_MUON = (-3.1067617235, 10.4508154607, 0.4080259808, 27.2692521042)
