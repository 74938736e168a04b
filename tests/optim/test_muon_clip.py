"""QK-clip: chunked per-head max logits, the rescale (MHA, GQA, fused qkv), MuonClip state."""

from __future__ import annotations

import copy
import io
import math

import pytest
import torch
import torch.nn.functional as F

from optkit.optim import Muon, MuonClip
from optkit.optim.muon_clip import (
    AttentionSpec,
    QKClip,
    find_attention,
    head_max_logits,
    project,
)
from optkit.testing import ToyGPT

from . import tiny_hf

F64 = torch.float64


def brute_force(q, k, H, Hkv, causal):
    B, T, _ = q.shape
    d = q.shape[-1] // H
    q = q.view(B, T, H, d).transpose(1, 2)
    k = k.view(B, T, Hkv, d).transpose(1, 2).repeat_interleave(H // Hkv, dim=1)
    S = q @ k.mT / math.sqrt(d)
    if causal:
        S = S.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), -math.inf)
    return S.amax(dim=(0, 2, 3))


@pytest.mark.parametrize("H, Hkv", [(4, 4), (4, 2), (4, 1)])
@pytest.mark.parametrize("causal", [True, False])
def test_head_max_logits_chunked_equals_full(H, Hkv, causal):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(3, 10, H * 8, dtype=F64, generator=g)
    k = torch.randn(3, 10, Hkv * 8, dtype=F64, generator=g)
    got = head_max_logits(q, k, H, Hkv, causal=causal, chunk_elements=50)  # chunks of 1 query
    assert torch.allclose(got.double(), brute_force(q, k, H, Hkv, causal), rtol=1e-6)


def logits_of(model, x):
    """Recompute every layer's per-head max logit on batch x (hooks of a throwaway MuonClip)."""
    tracker = QKClip(find_attention(model), 1e30, measure="forward")
    model(x)
    out = {k: v.clone() for k, v in tracker.max_logits.items()}
    tracker.remove()
    return out


@pytest.mark.parametrize(
    "kw", [dict(), dict(num_kv_heads=2), dict(fused_qkv=True), dict(fused_qkv=True, num_kv_heads=1)]
)
def test_clip_brings_heads_to_tau_and_leaves_others_bit_exact(kw):
    # one layer: the guarantee is per layer for the layer's input, which a clip in an earlier
    # layer would change
    torch.manual_seed(0)
    model = ToyGPT(layers=1, d=32, num_heads=4, **kw)
    with torch.no_grad():  # make some heads large
        for block in model.blocks:
            for p in block.attn.parameters():
                p.mul_(3.0)
    x = torch.randint(0, 64, (4, 16))
    before = logits_of(model, x)
    all_S = torch.cat(list(before.values()))
    tau = all_S.median().item()
    old = copy.deepcopy(model.state_dict())
    opt = MuonClip(model, lr=0.0, adamw_lr=0.0, qk_clip_tau=tau)  # step changes nothing else
    F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
    opt.step()
    after = logits_of(model, x)
    for name, S in before.items():
        assert torch.equal(opt.max_logits[name], S)
        above = S > tau
        assert 0 < above.sum() < len(S)
        assert (after[name][above] <= tau * (1 + 1e-6)).all()
        assert (after[name][above] >= tau * (1 - 1e-4)).all()  # clipped to τ, not below
        assert torch.equal(after[name][~above], S[~above])
    spec = next(iter(opt.qk_clip.specs.values()))
    d = spec.dim
    for name, S in before.items():  # weights of heads below τ: bit for bit
        prefix = name + "."
        for key in old:
            if not key.startswith(prefix):
                continue
            new = model.state_dict()[key]
            for h in torch.nonzero(S <= tau).flatten().tolist():
                rows = slice(h * d, (h + 1) * d)
                if key.endswith(("q_proj.weight", "q_proj.bias", "qkv_proj.weight")):
                    assert torch.equal(new[rows], old[key][rows]), key
            if key.split(".")[-2] in ("v_proj", "o_proj"):
                assert torch.equal(new, old[key]), key


def test_find_attention_and_errors():
    model = ToyGPT(layers=2, num_heads=4, num_kv_heads=2)
    specs = find_attention(model)
    assert [(s.name, s.num_heads, s.kv_heads, s.dim) for s in specs] == [
        ("blocks.0.attn", 4, 2, 8), ("blocks.1.attn", 4, 2, 8)
    ]  # fmt: skip
    attn = model.blocks[0].attn
    with pytest.raises(ValueError, match=r"num_kv_heads \(3\) must divide num_heads \(4\)"):
        AttentionSpec(q_proj=attn.q_proj, k_proj=attn.k_proj, num_heads=4, num_kv_heads=3)
    with pytest.raises(ValueError, match="q_proj has 32 output rows"):
        AttentionSpec(q_proj=attn.q_proj, k_proj=attn.k_proj, num_heads=4, head_dim=4)
    with pytest.raises(ValueError, match="qk_clip_tau must be finite and > 0"):
        MuonClip(model, qk_clip_tau=0.0)
    with pytest.raises(ValueError, match="no attention layer found in the model"):
        MuonClip(torch.nn.Linear(3, 3))


def train(model, opt, batches):
    for x in batches:
        opt.zero_grad()
        F.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
        opt.step()


def batches(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (2, 12), generator=g) for _ in range(n)]


def test_muonclip_state_dict_round_trip_is_bit_exact():
    torch.manual_seed(0)
    model = ToyGPT(layers=1)
    twin = copy.deepcopy(model)
    data = batches(6)
    opt = MuonClip(model, lr=0.05, qk_clip_tau=1.0)
    train(model, opt, data)
    opt2 = MuonClip(twin, lr=0.05, qk_clip_tau=1.0)
    train(twin, opt2, data[:3])
    buf = io.BytesIO()
    torch.save({"model": twin.state_dict(), "opt": opt2.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf)
    resumed = ToyGPT(layers=1)
    resumed.load_state_dict(saved["model"])
    opt3 = MuonClip(resumed, lr=0.05, qk_clip_tau=5.0)
    opt3.load_state_dict(saved["opt"])
    assert opt3.qk_clip.tau == 1.0
    train(resumed, opt3, data[3:])
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_muonclip_differs_from_muon_only_in_clipped_rows_and_frozen_values():
    # Frozen from this implementation (float64, seed 0), like test_muon's regression values.
    torch.manual_seed(0)
    model = ToyGPT(layers=1).to(F64)
    plain = copy.deepcopy(model)
    opt = MuonClip(model, lr=0.05, qk_clip_tau=1.0)
    ref = Muon(plain, lr=0.05)
    train(model, opt, batches(4))
    train(plain, ref, batches(4))
    S = opt.max_logits["blocks.0.attn"]
    got = tuple(round(v, 10) for v in S.tolist())
    assert got == pytest.approx(FROZEN_MAX_LOGITS, abs=1e-8)
    q = model.blocks[0].attn.q_proj.weight
    assert q.sum().item() == pytest.approx(FROZEN_Q_SUM, abs=1e-8)
    same = [n for (n, a), b in zip(model.named_parameters(), plain.parameters())
            if torch.equal(a, b)]  # fmt: skip
    assert "blocks.0.fc.weight" not in same  # trajectories diverge after the first clip
    assert "blocks.0.attn.q_proj.weight" not in same


FROZEN_MAX_LOGITS = (0.940954566, 0.8296678662, 0.6391803622, 1.2505477667)
FROZEN_Q_SUM = -2.7629949377


@pytest.mark.parametrize("kw", [dict(), dict(fused_qkv=True, num_kv_heads=2)])
def test_after_step_measure_bounds_the_updated_weights(kw):
    # default measure: with a real (large) update, the last batch's logits under the weights
    # training continues with are ~<= τ ("forward" measures before the update and cannot promise
    # it). Not exactly τ: the q/k inputs were kept from the forward, and the step also moved the
    # layers below (embeddings, norm gains by AdamW), so a fresh forward sees slightly other inputs
    torch.manual_seed(0)
    model = ToyGPT(layers=1, **kw)
    opt = MuonClip(model, lr=0.2, qk_clip_tau=0.5)
    data = batches(3)
    train(model, opt, data)
    after = logits_of(model, data[-1])
    for S in after.values():
        assert (S <= 0.5 * (1 + 1e-3)).all()


# --- MuonClip without specs on real layouts ------------------------------------------------------
class EncoderLM(torch.nn.Module):
    """Embedding → nn.TransformerEncoder (nn.MultiheadAttention, fused in_proj_weight) → head."""

    def __init__(self, vocab=50, d=16, batch_first=True):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, d)
        layer = torch.nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=batch_first)
        self.encoder = torch.nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)
        self.batch_first = batch_first

    def forward(self, input_ids):
        h = self.emb(input_ids if self.batch_first else input_ids.T)
        out = self.head(self.encoder(h))
        return out if self.batch_first else out.transpose(0, 1)


def _families():
    hf = pytest.importorskip("transformers")
    small = tiny_hf.SMALL
    return {
        "gpt2": lambda: tiny_hf.gpt2(hf),
        "llama_gqa": lambda: hf.LlamaForCausalLM(hf.LlamaConfig(**small, num_key_value_heads=1)),
        "bert": lambda: hf.BertForMaskedLM(hf.BertConfig(**small, max_position_embeddings=16)),
        "mixtral": lambda: hf.MixtralForCausalLM(
            hf.MixtralConfig(
                **small, num_key_value_heads=1, num_local_experts=2, num_experts_per_tok=1
            )
        ),
        "mha": lambda: EncoderLM(),
        "mha_seq_first": lambda: EncoderLM(batch_first=False),
    }


FAMILIES = ["gpt2", "llama_gqa", "bert", "mixtral", "mha", "mha_seq_first"]
EXPECTED_LAYOUT = {"gpt2": ("fused_qkv", 2, 2), "llama_gqa": ("separate", 2, 1),
                   "bert": ("separate", 2, 2), "mixtral": ("separate", 2, 1),
                   "mha": ("mha", 2, 2), "mha_seq_first": ("mha", 2, 2)}  # fmt: skip


@pytest.mark.parametrize("family", FAMILIES)
def test_muonclip_finds_attention_and_bounds_clipped_heads(family):
    torch.manual_seed(0)
    model = _families()[family]()
    model.train()
    ids = torch.randint(0, 50, (2, 7), generator=torch.Generator().manual_seed(0))
    tau = 0.05
    opt = MuonClip(model, lr=0.05, qk_clip_tau=tau, example_input={"input_ids": ids})
    (spec,) = opt.qk_clip.specs.values()
    assert (spec.layout, spec.num_heads, spec.kv_heads) == EXPECTED_LAYOUT[family]
    # the q/k inputs of the batch, kept by an independent hook, to re-measure after the step
    seen = {}
    module = spec.q_proj

    def keep(m, args, kwargs):
        seen["q"] = (args[0] if args else kwargs["query"]).detach()
        seen["k"] = (args[1] if len(args) > 1 else kwargs.get("key", seen["q"])).detach()

    kmod = spec.k_proj if spec.layout == "separate" else module
    handles = [module.register_forward_pre_hook(keep, with_kwargs=True)]
    if kmod is not module:
        handles.append(
            kmod.register_forward_pre_hook(
                lambda m, a, kw: seen.__setitem__("k", a[0].detach()), with_kwargs=True
            )
        )
    with torch.no_grad():  # large q/k weights: logits far above τ
        for w in {id(p): p for p in module.parameters()}.values():
            w.mul_(8)
        for w in kmod.parameters():
            w.mul_(8)
    out = model(input_ids=ids)
    logits = out.logits if hasattr(out, "logits") else out
    F.cross_entropy(logits.flatten(0, 1), ids.flatten()).backward()
    opt.step()
    for h in handles:
        h.remove()
    before = opt.max_logits[spec.name]
    assert (before > tau).any(), before  # something was clipped
    q, k = seen["q"], seen["k"]
    if spec.layout == "mha" and not spec.q_proj.batch_first:
        q, k = q.transpose(0, 1), k.transpose(0, 1)
    with torch.no_grad():
        after = head_max_logits(project(spec, "q", q), project(spec, "k", k), spec.num_heads,
                                spec.kv_heads, scale=spec.scale, causal=spec.causal)  # fmt: skip
    clipped = before > tau
    assert (after[clipped] <= tau * (1 + 1e-6)).all(), (before, after)
    assert torch.allclose(after[~clipped], before[~clipped], rtol=1e-5)


def test_muonclip_num_heads_argument_and_conv1d_rows():
    class Bare(torch.nn.Module):  # no head count anywhere on the module
        def __init__(self):
            super().__init__()
            self.q_proj, self.k_proj = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)

        def forward(self, x):
            return (self.q_proj(x) * self.k_proj(x)).sum()

    with pytest.raises(ValueError, match="pass num_heads"):
        MuonClip(Bare(), head=False, input_layer=False)
    opt = MuonClip(Bare(), num_heads=4, head=False, input_layer=False)
    assert next(iter(opt.qk_clip.specs.values())).dim == 2


def test_head_max_logits_cross_attention_keys_of_their_own_length():
    g = torch.Generator().manual_seed(4)
    q = torch.randn(2, 5, 2 * 4, dtype=F64, generator=g)
    k = torch.randn(2, 9, 2 * 4, dtype=F64, generator=g)
    S = (q.view(2, 5, 2, 4).transpose(1, 2) @ k.view(2, 9, 2, 4).transpose(1, 2).mT) / 2.0
    got = head_max_logits(q, k, 2, causal=True, chunk_elements=20)  # causal ignored: Tk ≠ T
    assert torch.allclose(got.double(), S.amax(dim=(0, 2, 3)), rtol=1e-6)


def test_found_softmax_scale_is_the_models_own():
    """The clip's bound needs the model's real logit scale: 1/√d for BERT-style attention, 1
    for T5, which folds 1/√d into its initialization and takes q·k as it is."""
    hf = pytest.importorskip("transformers")
    t5 = tiny_hf.t5(hf)
    specs = find_attention(t5)
    assert len(specs) == 3  # encoder self, decoder self, decoder cross
    assert all(s.scale == 1.0 for s in specs), [s.scale for s in specs]
    bert = _families()["bert"]()
    assert [s.scale for s in find_attention(bert)] == [pytest.approx(1 / 8**0.5)]
