"""Generic tests for SGD / RMSprop / Adam / AdamW, driven by the rows of optim_db."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import optkit

from .optim_db import CASE_IDS, CASES, ERROR_CASES, ERROR_IDS, OPTIM_DB

STEPS = 120


def make_model(dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(
        dtype
    )


def make_data(dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 6, generator=g, dtype=dtype)
    y = torch.randn(32, 3, generator=g, dtype=dtype)
    return x, y


def two_groups(model, cfg):
    """Two param groups with different lr, so group handling is exercised."""
    first, second = model[0], model[2]
    return [
        {"params": list(first.parameters())},
        {"params": list(second.parameters()), "lr": cfg.get("lr", 1e-3) * 0.5},
    ]


def ascends(opt):
    groups = getattr(opt, "param_groups", None) or opt.separate[0].param_groups
    return groups[0].get("maximize", False)


def train(model, opt, steps, data, sched=None):
    """Minimize the MSE (maximize its negative for maximize=True configurations)."""
    x, y = data
    sign = -1.0 if ascends(opt) else 1.0
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        (sign * loss).backward()
        opt.step()
        if sched is not None:
            sched.step()
        losses.append(loss.item())
    return losses


def params_of(model):
    return [p.detach().clone() for p in model.parameters()]


def assert_same_params(a, b, rtol=1e-12, atol=1e-14):
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb, rtol=rtol, atol=atol)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_parity_with_torch_groups_scheduler(info, cfg):
    """float64, two param groups, a StepLR scheduler, 120 steps: equal to torch.optim."""
    data = make_data()
    m1, m2 = make_model(), make_model()
    o1 = info.cls(two_groups(m1, cfg), **cfg)
    o2 = info.reference(two_groups(m2, cfg), **cfg)
    s1 = torch.optim.lr_scheduler.StepLR(o1, step_size=30, gamma=0.5)
    s2 = torch.optim.lr_scheduler.StepLR(o2, step_size=30, gamma=0.5)
    train(m1, o1, STEPS, data, s1)
    train(m2, o2, STEPS, data, s2)
    assert_same_params(params_of(m1), params_of(m2))
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        st1, st2 = o1.state[p1], o2.state[p2]
        assert set(st1) == set(st2)
        for key, value in st2.items():
            torch.testing.assert_close(st1[key].double(), value.double(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_state_dict_resume_is_bit_exact(info, cfg):
    """Save mid-run, load into a fresh optimizer, continue: same bits as an uninterrupted run."""
    data = make_data()
    m1 = make_model()
    o1 = info.cls(two_groups(m1, cfg), **cfg)
    train(m1, o1, STEPS, data)

    m2 = make_model()
    o2 = info.cls(two_groups(m2, cfg), **cfg)
    train(m2, o2, STEPS // 2, data)
    saved_model = copy.deepcopy(m2.state_dict())
    saved_opt = copy.deepcopy(o2.state_dict())
    m3 = make_model(seed=5)
    m3.load_state_dict(saved_model)
    o3 = info.cls(two_groups(m3, {"lr": 123.0}), **cfg)
    o3.load_state_dict(saved_opt)
    train(m3, o3, STEPS - STEPS // 2, data)
    assert_same_params(params_of(m1), params_of(m3), rtol=0, atol=0)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_state_dicts_interchange_with_torch(info, cfg):
    """A torch.optim state dict loads into optkit and vice versa, and the runs continue equal."""
    data = make_data()
    m_t, m_o = make_model(), make_model()
    o_t = info.reference(m_t.parameters(), **cfg)
    train(m_t, o_t, 40, data)
    m_o.load_state_dict(m_t.state_dict())
    o_o = info.cls(m_o.parameters(), **cfg)
    o_o.load_state_dict(copy.deepcopy(o_t.state_dict()))
    train(m_t, o_t, 40, data)
    train(m_o, o_o, 40, data)
    assert_same_params(params_of(m_o), params_of(m_t))

    m_back = make_model()
    m_back.load_state_dict(m_o.state_dict())
    o_back = info.reference(m_back.parameters(), **cfg)
    o_back.load_state_dict(copy.deepcopy(o_o.state_dict()))
    train(m_back, o_back, 20, data)
    train(m_o, o_o, 20, data)
    assert_same_params(params_of(m_o), params_of(m_back))


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_param_groups_equal_separate_optimizers(info, cfg):
    data = make_data()
    m1, m2 = make_model(), make_model()
    groups = two_groups(m1, cfg)
    o1 = info.cls(groups, **cfg)
    separate = separate_optimizers = [
        info.cls(g["params"], **{**cfg, **{k: v for k, v in g.items() if k != "params"}})
        for g in two_groups(m2, cfg)
    ]

    class Both:
        separate = separate_optimizers

        def zero_grad(self):
            for o in separate:
                o.zero_grad()

        def step(self):
            for o in separate:
                o.step()

    train(m1, o1, 30, data)
    train(m2, Both(), 30, data)
    assert_same_params(params_of(m1), params_of(m2), rtol=0, atol=0)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_loss_decreases(info, cfg):
    m = make_model()
    losses = train(m, info.cls(m.parameters(), **cfg), 60, make_data())
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_fused_and_foreach_paths_agree(info, cfg):
    if not info.has_fused:
        pytest.skip("no fused kernel for this rule")
    data = make_data()
    m1, m2 = make_model(), make_model()
    o1 = info.cls(m1.parameters(), **cfg, fused=True)
    o2 = info.cls(m2.parameters(), **cfg, fused=False)
    train(m1, o1, 60, data)
    train(m2, o2, 60, data)
    assert_same_params(params_of(m1), params_of(m2), rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_low_precision_params(info, cfg, dtype):
    """float32 and bfloat16 parameters train and stay close to a float32 torch.optim run."""
    data = make_data(torch.float32)
    m1, m2 = make_model(dtype), make_model(torch.float32)
    o1 = info.cls(m1.parameters(), **cfg)
    o2 = info.reference(m2.parameters(), **cfg)
    x, y = data
    for _ in range(10):
        for m, o in ((m1, o1), (m2, o2)):
            o.zero_grad()
            xm = x.to(next(m.parameters()).dtype)
            torch.nn.functional.mse_loss(m(xm).float(), y).backward()
            o.step()
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert p1.dtype == dtype
        tol = 1e-5 if dtype == torch.float32 else 5e-2
        torch.testing.assert_close(p1.float(), p2, rtol=tol, atol=tol)


@pytest.mark.parametrize(("info", "kwargs", "message"), ERROR_CASES, ids=ERROR_IDS)
def test_bad_hyperparameters_raise(info, kwargs, message):
    with pytest.raises(ValueError, match=message):
        info.cls([torch.nn.Parameter(torch.zeros(2))], **kwargs)


@pytest.mark.parametrize("info", OPTIM_DB, ids=lambda i: i.name)
def test_bad_param_group_raises(info):
    opt = info.cls([torch.nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match="lr must be finite and >= 0"):
        opt.add_param_group({"params": [torch.nn.Parameter(torch.zeros(2))], "lr": -1.0})


@pytest.mark.parametrize("info", OPTIM_DB, ids=lambda i: i.name)
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sparse_gradients_as_torch(info, momentum):
    """Where torch.optim takes sparse gradients (SGD) the steps equal torch's (float64,
    repeated indices; torch refuses weight decay with them); elsewhere torch's RuntimeError."""
    kw = dict(lr=0.1)
    if info.name in ("SGD", "RMSprop"):
        kw["momentum"] = momentum
    embs = [torch.nn.Embedding(10, 3, sparse=True).double() for _ in range(2)]
    embs[1].load_state_dict(embs[0].state_dict())
    opts = [info.cls(embs[0].parameters(), **kw), info.reference(embs[1].parameters(), **kw)]
    idx = torch.tensor([1, 2, 2, 7])
    for _ in range(3):
        for emb in embs:
            emb.zero_grad()
            (emb(idx) ** 2).sum().backward()
        if not info.has("sparse"):
            with pytest.raises(RuntimeError, match="does not support sparse gradients"):
                opts[0].step()
            return
        for opt in opts:
            opt.step()
    torch.testing.assert_close(embs[0].weight, embs[1].weight, rtol=1e-14, atol=1e-15)
    assert not torch.equal(embs[0].weight, torch.nn.Embedding(10, 3).double().weight)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_closure_returns_loss(info, cfg):
    m = make_model()
    x, y = make_data()
    opt = info.cls(m.parameters(), **cfg)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(m(x), y)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert isinstance(loss, torch.Tensor) and loss.item() > 0


def test_params_without_grad_are_left_alone():
    a = torch.nn.Parameter(torch.ones(3))
    b = torch.nn.Parameter(torch.ones(3))
    opt = optkit.AdamW([a, b], lr=0.1)
    a.grad = torch.ones(3)
    opt.step()
    assert torch.equal(b, torch.ones(3)) and b not in opt.state
    assert not torch.equal(a, torch.ones(3))


def test_sgd_momentum_first_step_mixed_with_later_steps():
    """A parameter that receives its first gradient late still gets b = g on its first step."""
    a, b = (torch.nn.Parameter(torch.ones(2, dtype=torch.float64)) for _ in range(2))
    ta, tb = (torch.nn.Parameter(torch.ones(2, dtype=torch.float64)) for _ in range(2))
    opt = optkit.SGD([a, b], lr=0.1, momentum=0.9)
    ref = torch.optim.SGD([ta, tb], lr=0.1, momentum=0.9)
    for step in range(5):
        for p in (a, ta):
            p.grad = torch.full((2,), 1.0 + step, dtype=torch.float64)
        for p in (b, tb):
            p.grad = None if step < 2 else torch.full((2,), 2.0 * step, dtype=torch.float64)
        opt.step()
        ref.step()
    torch.testing.assert_close(a, ta, rtol=0, atol=1e-15)
    torch.testing.assert_close(b, tb, rtol=0, atol=1e-15)


_NAMES = {info.name: info for info in OPTIM_DB}


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(_NAMES)),
    lr=st.floats(1e-4, 0.5),
    beta=st.floats(0.0, 0.999),
    beta2=st.floats(0.5, 0.9999),
    wd=st.floats(0.0, 1.0),
    flag=st.booleans(),
)
def test_random_hyperparameters_match_torch(name, lr, beta, beta2, wd, flag):
    """Property: for any valid hyperparameters, 15 float64 steps equal torch.optim's."""
    info = _NAMES[name]
    cfg = {
        "SGD": dict(lr=lr, momentum=beta, weight_decay=wd, nesterov=flag and beta > 0),
        "RMSprop": dict(lr=lr * 0.1, alpha=beta2, weight_decay=wd, centered=flag, momentum=beta),
        "Adam": dict(lr=lr, betas=(beta, beta2), weight_decay=wd, amsgrad=flag),
        "AdamW": dict(lr=lr, betas=(beta, beta2), weight_decay=wd, amsgrad=flag),
    }[name]
    data = make_data()
    m1, m2 = make_model(), make_model()
    train(m1, info.cls(m1.parameters(), **cfg), 15, data)
    train(m2, info.reference(m2.parameters(), **cfg), 15, data)
    assert_same_params(params_of(m1), params_of(m2), rtol=1e-10, atol=1e-12)


def test_sgd_avoids_torch_cpu_fused_kernel_for_bfloat16():
    """torch 2.13's CPU _fused_sgd_ miscomputes bfloat16; the automatic path must not use it."""
    g = torch.Generator().manual_seed(0)
    p0, grad = torch.randn(1000, generator=g), torch.randn(1000, generator=g)
    p = torch.nn.Parameter(p0.bfloat16())
    p.grad = grad.bfloat16()
    optkit.SGD([p], lr=0.1).step()
    torch.testing.assert_close(p.detach().float(), p0 - 0.1 * grad, rtol=0, atol=0.05)


@pytest.mark.parametrize(("info", "cfg"), CASES, ids=CASE_IDS)
def test_foreach_path_cut_into_small_blocks_matches_torch(info, cfg, monkeypatch):
    """Blocks of 7 elements: every tensor is cut into views, and still equals torch.optim."""
    import optkit.optim._cpu as base

    monkeypatch.setattr(base, "CPU_BLOCK_NUMEL", 7)
    extra = {"fused": False} if info.has_fused else {}
    data = make_data()
    m1, m2 = make_model(), make_model()
    train(m1, info.cls(two_groups(m1, cfg), **cfg, **extra), 30, data)
    train(m2, info.reference(two_groups(m2, cfg), **cfg), 30, data)
    assert_same_params(params_of(m1), params_of(m2))
