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


# --- torch.optim.Muon's forms, state dicts both ways, copies --------------------------------

needs_torch_muon = pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch < 2.9")
KJ = (3.4445, -4.7750, 2.0315)


def _matrices(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 12, generator=g), torch.randn(12, 6, generator=g)]


def _grads(params, k):
    g = torch.Generator().manual_seed(50 + k)
    for p in params:
        p.grad = torch.randn(p.shape, generator=g)


def _steps(opt, params, start, stop):
    for k in range(start, stop):
        _grads(params, k)
        opt.step()


TORCH_FORM = dict(lr=0.02, weight_decay=0.1, momentum=0.9, ns_coefficients=KJ, eps=1e-7,
                  adjust_lr_fn="match_rms_adamw")  # fmt: skip


@needs_torch_muon
def test_torch_muon_arguments_give_torch_muon_steps():
    ours = [nn.Parameter(t) for t in _matrices()]
    theirs = [nn.Parameter(t) for t in _matrices()]
    opt = Muon(ours, ns_dtype=torch.bfloat16, **TORCH_FORM)
    ref = torch.optim.Muon(theirs, **TORCH_FORM)
    assert opt.param_groups[0]["adjust_lr"] == "match_rms_adamw"
    _steps(opt, ours, 0, 3)
    _steps(ref, theirs, 0, 3)
    for a, b in zip(ours, theirs):
        assert (a - b).abs().max() < 2e-3 * b.abs().max()  # both NS in bf16
    with pytest.raises(ValueError, match="adjust_lr_fn must be None, 'original' or"):
        Muon(ours, adjust_lr_fn="rms")
    with pytest.raises(ValueError, match="eps and ns_eps name the same"):
        Muon(ours, eps=1e-6, ns_eps=1e-5)


@needs_torch_muon
@pytest.mark.parametrize("direction", ["torch->optkit", "optkit->torch"])
def test_state_dicts_load_both_ways_with_torch_muon(direction):
    """Three steps with one, load into the other, two more: equal (to bf16 rounding) to the
    source continuing; the momentum buffers carry over exactly."""
    kw = dict(lr=0.02, weight_decay=0.1, momentum=0.9, adjust_lr_fn=None)
    src_cls, dst_cls = (
        (torch.optim.Muon, Muon) if direction == "torch->optkit" else (Muon, torch.optim.Muon)
    )

    def build(cls, params):
        return cls(params, **kw, **({"ns_dtype": torch.bfloat16} if cls is Muon else {}))

    src_params = [nn.Parameter(t) for t in _matrices()]
    src = build(src_cls, src_params)
    _steps(src, src_params, 0, 3)
    dst_params = [nn.Parameter(p.detach().clone()) for p in src_params]
    dst = build(dst_cls, dst_params)
    dst.load_state_dict(copy.deepcopy(src.state_dict()))
    for a, b in zip(src_params, dst_params):
        assert torch.equal(src.state[a]["momentum_buffer"], dst.state[b]["momentum_buffer"])
    _steps(src, src_params, 3, 5)
    _steps(dst, dst_params, 3, 5)
    for a, b in zip(src_params, dst_params):
        assert (a - b).abs().max() < 2e-3 * a.abs().max()
    if dst_cls is Muon:
        group = dst.param_groups[0]
        assert group["algorithm"] == "muon" and group["adjust_lr"] == "spectral"
        assert "adjust_lr_fn" not in group


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copies_keep_partition_records(how):
    torch.manual_seed(0)
    model = ToyGPT(layers=1)
    opt = Muon(model, weight_decay=0.01)
    run(model, opt, gpt_batches(2))
    if how == "deepcopy":
        model2, opt2 = copy.deepcopy((model, opt))
    else:
        buf = io.BytesIO()
        torch.save((model, opt), buf)
        buf.seek(0)
        model2, opt2 = torch.load(buf, weights_only=False)
    assert opt2.describe() == opt.describe()
    assert {r.name for r in opt2.records} == {r.name for r in opt.records}
    assert all(r.param is p for r, p in zip(opt2.records, model2.parameters()) if r.name)
    run(model, opt, gpt_batches(4), 2)
    run(model2, opt2, gpt_batches(4), 2)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)


def test_copies_keep_the_process_group():
    import pickle

    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        opt = Muon([nn.Parameter(torch.randn(4, 4))], process_group=dist.group.WORLD)
        assert copy.deepcopy(opt).process_group is dist.group.WORLD
        assert pickle.loads(pickle.dumps(opt)).process_group is dist.group.WORLD
        sub = dist.new_group([0])
        opt_sub = Muon([nn.Parameter(torch.randn(4, 4))], process_group=sub)
        assert copy.deepcopy(opt_sub).process_group is sub
        with pytest.raises(ValueError, match=r"other than the default \(WORLD\) cannot be pickled"):
            pickle.dumps(opt_sub)
    finally:
        dist.destroy_process_group()


def test_eps_names_one_thing_per_group_kind():
    """'eps' is Newton–Schulz's ε in "muon" groups (torch.optim.Muon's key), 'adam_eps' is
    Adam's ε in "adamw" groups; older state dicts with 'eps' in AdamW groups still load."""
    opt = Muon(ToyMoE(), ns_eps=1e-6, adamw_eps=1e-9)
    kinds = {g["algorithm"]: g for g in opt.param_groups}
    assert kinds["muon"]["eps"] == 1e-6 and "adam_eps" not in kinds["muon"]
    assert kinds["adamw"]["adam_eps"] == 1e-9 and "eps" not in kinds["adamw"]
    with pytest.raises(ValueError, match="names Adam's ε 'adam_eps'"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(3))], "algorithm": "adamw",
                             "eps": 1e-8})  # fmt: skip
    old = opt.state_dict()
    for g in old["param_groups"]:
        if g["algorithm"] == "adamw":
            g["eps"] = g.pop("adam_eps")
    opt2 = Muon(ToyMoE())
    opt2.load_state_dict(old)
    assert [g.get("adam_eps") for g in opt2.param_groups if g["algorithm"] == "adamw"] == [1e-9]


def test_tensor_lr_is_one_tensor_per_group():
    """The automatic partition makes several groups; a scheduler scales each group's tensor
    lr once per step (a shared tensor would be scaled once per group)."""
    opt = Muon(ToyMoE(), lr=torch.tensor(0.02), adamw_lr=torch.tensor(1e-3))
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    opt.step()
    sched.step()
    lrs = [g["lr"].item() for g in opt.param_groups]
    assert lrs == pytest.approx([0.01, 0.01, 5e-4])
