"""Muon's update options against plain float64 references of the published algorithms:
NorMuon (per-neuron second moments after Newton–Schulz), cautious weight decay, and
Newton–Schulz on row blocks (split q/k/v, per head) and on transposed (in, out) weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optkit.optim import Muon
from optkit.optim.newton_schulz import ns_schedule

from .test_newton_schulz import reference_ns

F64 = torch.float64


def reference_step(p, g, state, *, lr, mu, wd, normuon, beta2, eps, cautious, blocks=None,
                   transposed=False, steps=5):  # fmt: skip
    """One step for one matrix, written plainly after microsoft/dion's NorMuon and
    modded-nanogpt's cautious decay: every block is a separate parameter."""
    buf = state.setdefault("buf", torch.zeros_like(g))
    buf.mul_(mu).add_(g, alpha=1 - mu)
    u = (1 - mu) * g + mu * buf
    m = u.T if transposed else u
    sched = ns_schedule("quintic")
    sizes = blocks or [m.shape[0]]
    v = state.setdefault("v", torch.zeros(m.shape[0], 1, dtype=F64))
    outs, r0 = [], 0
    for size in sizes:
        b = m[r0 : r0 + size]
        O = reference_ns(b, sched.coefficients, steps, norm_scale=sched.norm_scale)
        if normuon:
            vb = v[r0 : r0 + size]
            vb.mul_(beta2).add_((O * O).mean(dim=1, keepdim=True), alpha=1 - beta2)
            N = O / (vb.sqrt() + eps)
            O = N * (torch.linalg.norm(O) / torch.linalg.norm(N))
        rows, cols = O.shape
        outs.append(O * max(1, rows / cols) ** 0.5)
        r0 += size
    O = torch.cat(outs)
    O = O.T if transposed else O
    mask = (O * p >= 0).to(F64) if cautious else torch.ones_like(p)
    p.sub_(lr * wd * p * mask + lr * O)


CASES = [
    dict(normuon=True),
    dict(normuon=True, normuon_beta2=0.5, weight_decay=0.3),
    dict(cautious_wd=True, weight_decay=0.5),
    dict(normuon=True, cautious_wd=True, weight_decay=0.5, momentum=0.8),
]


@pytest.mark.parametrize("cfg", CASES)
def test_normuon_and_cautious_wd_match_reference(cfg):
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 10), (12, 5), (8, 8)]
    init = [torch.randn(*s, dtype=F64, generator=g) for s in shapes]
    params = [nn.Parameter(t.clone()) for t in init]
    opt = Muon(params, lr=0.05, **cfg)
    ref, states = [t.clone() for t in init], [{} for _ in init]
    kw = dict(lr=0.05, mu=cfg.get("momentum", 0.95), wd=cfg.get("weight_decay", 0.0),
              normuon=cfg.get("normuon", False), beta2=cfg.get("normuon_beta2", 0.95),
              eps=1e-8, cautious=cfg.get("cautious_wd", False))  # fmt: skip
    for _ in range(4):
        grads = [torch.randn(t.shape, dtype=F64, generator=g) for t in init]
        for p, gr in zip(params, grads):
            p.grad = gr.clone()
        opt.step()
        for p, gr, st in zip(ref, grads, states):
            reference_step(p, gr, st, **kw)
    for p, r in zip(params, ref):
        assert (p.detach() - r).abs().max().item() < 1e-10
    if cfg.get("normuon"):
        assert opt.state[params[1]]["second_momentum_buffer"].shape == (12, 1)


def test_cautious_wd_decays_only_where_signs_agree():
    p = nn.Parameter(torch.tensor([[1.0, -1.0], [1.0, -1.0]], dtype=F64))
    opt = Muon([p], lr=0.1, weight_decay=1.0, cautious_wd=True, momentum=0.0, nesterov=False,
               adjust_lr=None)  # fmt: skip
    p.grad = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=F64)  # O = rank-1 sign pattern
    before = p.detach().clone()
    opt.step()
    O = -(p.detach() - before)  # what the step subtracted, decay included
    # entries where O·θ < 0 carry no decay term
    plain = Muon([nn.Parameter(before.clone())], lr=0.1, momentum=0.0, nesterov=False,
                 adjust_lr=None)  # fmt: skip
    q = plain.param_groups[0]["params"][0]
    q.grad = p.grad.clone()
    plain.step()
    step_only = before - q.detach()
    decay = O - step_only
    agree = step_only * before >= 0  # O = 0 counts as agreeing (modded-nanogpt: >= 0)
    assert torch.allclose(decay[agree], 0.1 * before[agree])
    assert (~agree).any() and torch.all(decay[~agree] == 0)


@pytest.mark.parametrize(
    "blocks, transposed", [((8, 4, 4), False), ((4, 4, 4, 4), False), ((6, 6, 4), True)]
)
@pytest.mark.parametrize("normuon", [False, True])
def test_row_blocks_equal_separate_matrices(blocks, transposed, normuon):
    g = torch.Generator().manual_seed(1)
    shape = (10, 16) if transposed else (16, 10)
    init = torch.randn(*shape, dtype=F64, generator=g)
    p = nn.Parameter(init.clone())
    opt = Muon([{"params": [p], "matrix_views": [(transposed, blocks)]}], lr=0.05,
               weight_decay=0.1, normuon=normuon)  # fmt: skip
    ref, st = init.clone(), {}
    for _ in range(3):
        gr = torch.randn(shape, dtype=F64, generator=g)
        p.grad = gr.clone()
        opt.step()
        reference_step(
            ref,
            gr,
            st,
            lr=0.05,
            mu=0.95,
            wd=0.1,
            normuon=normuon,
            beta2=0.95,
            eps=1e-8,
            cautious=False,
            blocks=list(blocks),
            transposed=transposed,
        )
    assert (p.detach() - ref).abs().max().item() < 1e-10


def test_option_errors():
    p = nn.Parameter(torch.randn(4, 6))
    with pytest.raises(ValueError, match="normuon_beta2"):
        Muon([p], normuon=True, normuon_beta2=1.0)
    with pytest.raises(ValueError, match="cautious_wd must be True or False"):
        Muon([p], cautious_wd=1)
    with pytest.raises(ValueError, match=r"row blocks \[2, 3\] must be positive and sum"):
        Muon([{"params": [p], "matrix_views": [(False, (2, 3))]}])
    with pytest.raises(ValueError, match="one entry per parameter"):
        Muon([{"params": [p], "matrix_views": []}])


def _ns_blocks_reference(model, params_blocks, grads, lr=0.05):
    """Muon's first step (momentum 0.95, nesterov, spectral r) on each block as its own
    matrix, float64."""
    out = {}
    for name, (p, blocks, transposed) in params_blocks.items():
        st = {}
        ref = p.detach().clone()
        reference_step(ref, grads[name], st, lr=lr, mu=0.95, wd=0.0, normuon=False, beta2=0.95,
                       eps=1e-8, cautious=False, blocks=list(blocks) if blocks else None,
                       transposed=transposed)  # fmt: skip
        out[name] = ref
    return out


@pytest.mark.parametrize("mode", ["split_qkv", "per_head"])
@pytest.mark.parametrize("fused", [True, False])
def test_orthogonalize_blocks_from_the_attention_found(mode, fused):
    from optkit.testing import ToyGPT

    torch.manual_seed(0)
    model = ToyGPT(layers=1, num_heads=4, num_kv_heads=2, fused_qkv=fused).to(F64)
    opt = Muon(model, lr=0.05, orthogonalize=mode)
    attn = model.blocks[0].attn
    d, H, kv = 8, 4, 2
    if fused:
        blocks = {"qkv": (attn.qkv_proj.weight, (H * d, kv * d, kv * d) if mode == "split_qkv"
                          else (d,) * (H + 2 * kv), False)}  # fmt: skip
    else:
        blocks = {} if mode == "split_qkv" else {
            "q": (attn.q_proj.weight, (d,) * H, False), "k": (attn.k_proj.weight, (d,) * kv, False),
            "v": (attn.v_proj.weight, (d,) * kv, False),
        }  # fmt: skip
    reasons = {r.name: r.reason for r in opt.records}
    for w, _, _ in blocks.values():
        rname = next(n for n, p in model.named_parameters() if p is w)
        assert "orthogonalized as" in reasons[rname] and reasons[rname].startswith("hidden matrix")
    untouched = attn.o_proj.weight
    g = torch.Generator().manual_seed(3)
    grads = {n: torch.randn(p.shape, dtype=F64, generator=g) for n, p in model.named_parameters()}
    for n, p in model.named_parameters():
        p.grad = grads[n].clone()
    by_name = {n: p for n, p in model.named_parameters()}
    name_of = {id(p): n for n, p in by_name.items()}
    expected = _ns_blocks_reference(
        model, {name_of[id(w)]: (w, b, t) for w, b, t in blocks.values()},
        {name_of[id(w)]: grads[name_of[id(w)]] for w, _, _ in blocks.values()},
    )  # fmt: skip
    o_ref = _ns_blocks_reference(model, {"o": (untouched, None, False)},
                                 {"o": grads[name_of[id(untouched)]]})["o"]  # fmt: skip
    opt.step()
    for n, ref in expected.items():
        assert (by_name[n].detach() - ref).abs().max().item() < 1e-10, n
    assert (untouched.detach() - o_ref).abs().max().item() < 1e-10  # o_proj: whole matrix


def test_orthogonalize_errors():
    with pytest.raises(ValueError, match="orthogonalize must be one of"):
        Muon(nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 4), nn.Linear(4, 2)), orthogonalize="x")
    with pytest.raises(ValueError, match="no attention layer"):
        Muon(nn.Sequential(nn.Linear(2, 4), nn.Linear(4, 4), nn.Linear(4, 2)),
             orthogonalize="per_head")  # fmt: skip
    with pytest.raises(ValueError, match=r"needs the nn\.Module"):
        Muon([nn.Parameter(torch.randn(4, 4))], orthogonalize="per_head")


def test_gpt2_c_attn_is_split_on_its_output_features():
    hf = pytest.importorskip("transformers")
    cfg = hf.GPT2Config(vocab_size=50, n_embd=16, n_layer=1, n_head=2, n_positions=16,
                        bos_token_id=0, eos_token_id=0)  # fmt: skip
    model = hf.GPT2LMHeadModel(cfg)
    opt = Muon(model, orthogonalize="split_qkv")
    c_attn = model.transformer.h[0].attn.c_attn.weight  # (16, 48): in × out
    (group,) = [g for g in opt.param_groups if g["algorithm"] == "muon"]
    view = group["matrix_views"][next(i for i, p in enumerate(group["params"]) if p is c_attn)]
    assert view == (True, (16, 16, 16))
    reason = next(r.reason for r in opt.records if r.param is c_attn)
    assert reason == ("hidden matrix (Conv1D: stored in × out); orthogonalized as q | k | v "
                      "(16+16+16 rows)")  # fmt: skip
