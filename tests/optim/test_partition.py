"""Muon/AdamW routing of real architectures, every tensor's group and reason asserted:
transformers (GPT-2, Llama, BERT, T5, ViT, Mixtral) built from configs, torch.nn.Transformer,
optkit's toy models, hand-written edge cases (head registered first, functional tied head,
learned position matrix), overrides and errors."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from optkit.optim import Muon
from optkit.optim.partition import describe, partition
from optkit.testing import ToyCNN, ToyGPT, ToyMoE

from . import tiny_hf
from .tiny_hf import SMALL

EMB = ("adamw", "embedding (looked up by index)")
HIDDEN = ("muon", "hidden matrix")
BIAS = ("adamw", "bias")
NORM = ("adamw", "normalization gain")
FWD_HEAD = ("adamw", "output head (example forward: produces the output)")
FWD_INPUT = ("adamw", "input layer (example forward: consumes the input)")
ADDED = ("adamw", "embedding-like: added or concatenated to activations, not multiplied")


def table(records):
    return {r.name: (r.algorithm, r.reason, r.batch_dims) for r in records}


def check(records, expected):
    """Every record matches exactly one (regex → (algorithm, reason)) row; every row is used."""
    used = set()
    for r in records:
        hits = [k for k in expected if re.fullmatch(k, r.name)]
        assert len(hits) == 1, (r.name, hits)
        used.add(hits[0])
        assert (r.algorithm, r.reason) == expected[hits[0]], r.name
    assert used == set(expected)


# --- optkit's toy models and hand-written cases ------------------------------------------------
@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("traced", [False, True])
def test_gpt_like(tied, traced):
    model = ToyGPT(layers=2, tied=tied)
    example = torch.randint(0, 64, (2, 8)) if traced else None
    head = FWD_HEAD if traced else ("adamw", "output head (ToyGPT.get_output_embeddings())")
    expected = {
        r"(tok|pos)_emb\.weight": EMB,
        r"blocks\.\d\.attn\.[qkvo]_proj\.weight": HIDDEN,
        r"blocks\.\d\.(fc|proj)\.weight": HIDDEN,
        r".*\.bias": BIAS,
        r".*ln(1|2|_f)\.weight": NORM,
    }
    if not tied:  # tied: the head *is* the embedding, listed once
        expected[r"lm_head\.weight"] = head
    check(partition(model, example_input=example), expected)


def test_cnn_input_layer_and_head():
    for example, how in ((None, "ToyCNN.get_{}_embeddings()"), (torch.randn(2, 3, 8, 8), None)):
        check(
            partition(ToyCNN(), example_input=example),
            {
                r"conv1\.weight": ("adamw", f"input layer ({how.format('input')})")
                if how else FWD_INPUT,
                r"conv2\.weight": ("muon", "conv kernel (flattened to out × in·k)"),
                r"conv1\.bias": BIAS,
                r"bn\d\.weight": NORM,
                r"bn\d\.bias": BIAS,
                r"fc\.(weight|bias)": ("adamw", f"output head ({how.format('output')})")
                if how else FWD_HEAD,
            },
        )  # fmt: skip


def test_moe_experts_are_batched_matrices():
    for example in (None, torch.randn(5, 8)):
        t = table(partition(ToyMoE(), example_input=example))
        stacked = ("muon", "stacked expert matrices (4 experts): one per leading index", 1)
        assert t["w_in"] == stacked and t["w_out"] == stacked
        assert t["router.weight"] == (*HIDDEN, 0)
        assert t["embed.weight"][0] == "adamw" and t["head.weight"][0] == "adamw"


class HeadFirst(nn.Module):
    """The classifier is registered before the backbone: registration order misleads."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(16, 3)
        self.backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU())

    def forward(self, x):
        return self.classifier(self.backbone(x))


class FunctionalTiedLM(nn.Module):
    """LM whose head is ``F.linear(h, emb.weight)``; a learned position *matrix* parameter."""

    def __init__(self, vocab=20, d=8, T=6):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(T, d) * 0.02)
        self.mlp = nn.Linear(d, d)
        self.last = nn.Linear(d, d)

    def forward(self, ids):
        h = self.emb(ids) + self.pos[: ids.shape[1]]
        h = self.last(F.relu(self.mlp(h)))
        return F.linear(h, self.emb.weight)


class ViTLike(nn.Module):
    """cls token (1, 1, d), position embeddings (1, N, d), patch conv, a relative-bias table."""

    def __init__(self, d=8):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos = nn.Parameter(torch.randn(1, 5, d) * 0.02)
        self.rel_bias = nn.Parameter(torch.zeros(9, 2))
        self.q, self.k = nn.Linear(d, d), nn.Linear(d, d)
        self.head = nn.Linear(d, 3)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        h = torch.cat([self.cls_token.expand(len(x), -1, -1), p], dim=1) + self.pos
        idx = torch.arange(5)[:, None] - torch.arange(5)[None] + 4
        logits = self.q(h) @ self.k(h).mT + self.rel_bias[idx][..., 0]
        return self.head((logits.softmax(-1) @ h)[:, 0])


def test_head_registered_first_is_found_by_the_forward():
    model = HeadFirst()
    with pytest.raises(ValueError, match=r"cannot tell the output head of HeadFirst .* pass "
                       r"example_input="):  # fmt: skip
        partition(model)
    check(
        partition(model, example_input=torch.randn(4, 8)),
        {
            r"classifier\.(weight|bias)": FWD_HEAD,
            r"backbone\.0\.weight": FWD_INPUT,
            r"backbone\.2\.weight": HIDDEN,
            r"backbone\.\d\.bias": BIAS,
        },
    )


def test_functional_tied_head_and_position_matrix():
    model = FunctionalTiedLM()
    with pytest.raises(ValueError, match=r"cannot tell whether pos \(6, 8\) .* example_input="):
        partition(model, head=False)
    check(
        partition(model, example_input=torch.randint(0, 20, (2, 6))),
        {
            r"emb\.weight": EMB,
            r"pos": ADDED,
            r"(mlp|last)\.weight": HIDDEN,  # the last hidden layer stays Muon's
            r".*\.bias": BIAS,
        },
    )


def test_vit_like_tokens_positions_patches():
    check(
        partition(ViTLike(), example_input=torch.randn(2, 3, 8, 8)),
        {
            r"cls_token|pos|rel_bias": ADDED,
            r"patch\.weight": FWD_INPUT,
            r"[qk]\.weight": HIDDEN,
            r"head\.(weight|bias)": FWD_HEAD,
            r"(patch|q|k)\.bias": BIAS,
        },
    )


def test_overrides_named_parameters_and_errors():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    t = table(partition(model))
    assert t["0.weight"][:2] == ("adamw", "input layer (first layer of the nn.Sequential)")
    assert t["2.weight"][:2] == ("adamw", "output head (last layer of the nn.Sequential)")
    assert t["1.weight"][:2] == HIDDEN
    t = table(partition(model, head=False, input_layer=False))
    assert t["0.weight"][:2] == HIDDEN and t["2.weight"][:2] == HIDDEN
    assert table(partition(model, head="1"))["1.weight"][:2] == ("adamw", "output head (head=)")
    t = table(partition(model, input_layer=[model[1]], exclude=["2.weight"]))
    assert t["1.weight"][:2] == ("adamw", "input layer (input_layer=)")
    assert t["2.weight"][:2] == ("adamw", "excluded (exclude=)")
    text = describe(partition(model))
    assert text.splitlines()[0].split() == ["name", "shape", "algorithm", "reason"]
    assert "muon: 1 tensors, 64 values; adamw: 5 tensors" in text
    with pytest.raises(ValueError, match="head must name a submodule"):
        partition(model, head="nope")
    with pytest.raises(ValueError, match="exclude: no parameter or module named 'x'"):
        partition(model, exclude=["x"])
    named = table(partition(model.named_parameters(), exclude=["0", "2.weight"]))
    assert named["0.weight"][:2] == named["2.weight"][:2] == ("adamw", "excluded (exclude=)")
    assert named["1.weight"][0] == "muon" and named["1.bias"][0] == "adamw"
    opt = Muon(model.named_parameters())
    assert [len(g["params"]) for g in opt.param_groups] == [3, 3]


def test_muon_with_nothing_to_orthogonalize_raises():
    # an embedding and a head only: all AdamW — Muon says so instead of running as AdamW
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10))
    with pytest.raises(ValueError, match=r"no parameter of the model is a hidden matrix .* use "
                       r"optkit\.AdamW"):  # fmt: skip
        Muon(model)


# --- torch.nn.Transformer* -----------------------------------------------------------------------
def test_torch_transformer():
    torch.manual_seed(0)
    model = nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                           dim_feedforward=16, batch_first=True)  # fmt: skip
    src, tgt = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    # a bare nn.Transformer has no head: the residual branches' last products are not one
    check(
        partition(model, example_input=(src, tgt)),
        {
            r"(en|de)coder\.layers\.0\.self_attn\.in_proj_weight": FWD_INPUT,
            r"decoder\.layers\.0\.multihead_attn\.in_proj_weight": HIDDEN,
            r".*out_proj\.weight|.*linear\d\.weight": HIDDEN,
            r".*bias": BIAS,
            r".*norm\d?\.weight": NORM,
        },
    )
    t = table(partition(model, example_input=(src, tgt), input_layer=False))
    assert t["encoder.layers.0.self_attn.in_proj_weight"][:2] == HIDDEN


class EncoderClassifier(nn.Module):
    def __init__(self, vocab=30, d=8):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 2, 16, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, 3)

    def forward(self, ids):
        return self.head(self.encoder(self.emb(ids)).mean(1))


def test_torch_transformer_encoder_classifier():
    check(
        partition(EncoderClassifier(), example_input=torch.randint(0, 30, (2, 5))),
        {
            r"emb\.weight": EMB,
            r".*in_proj_weight|.*out_proj\.weight|.*linear\d\.weight": HIDDEN,
            r"head\.(weight|bias)": FWD_HEAD,
            r"encoder.*bias": BIAS,
            r".*norm\d\.weight": NORM,
        },
    )


# --- transformers, built from configs (no weights) -----------------------------------------------
@pytest.fixture(scope="module")
def hf():
    return pytest.importorskip("transformers")


def ids(n=6):
    return torch.randint(0, 50, (2, n), generator=torch.Generator().manual_seed(0))


def test_gpt2_tied_conv1d(hf):
    model = tiny_hf.gpt2(hf)
    for example in (None, {"input_ids": ids()}):
        records = partition(model, example_input=example)
        check(records, {
            r"transformer\.w[tp]e\.weight": EMB,  # lm_head is wte (tied): listed once
            r".*\.c_(attn|proj|fc)\.weight": ("muon", "hidden matrix (Conv1D: stored in × out)"),
            r".*\.bias": BIAS,
            r".*ln_(1|2|f)\.weight": NORM,
        })  # fmt: skip
        assert all(r.transposed for r in records if r.algorithm == "muon")


@pytest.mark.parametrize("tied", [False, True])
def test_llama_untied_and_tied_gqa(hf, tied):
    cfg = hf.LlamaConfig(**SMALL, num_key_value_heads=1, tie_word_embeddings=tied)
    model = hf.LlamaForCausalLM(cfg)
    expected = {
        r"model\.embed_tokens\.weight": EMB,
        r".*self_attn\.[qkvo]_proj\.weight|.*mlp\.(gate|up|down)_proj\.weight": HIDDEN,
        r".*norm\.weight|.*layernorm\.weight": NORM,
    }
    if not tied:
        expected[r"lm_head\.weight"] = FWD_HEAD
    check(partition(model, example_input={"input_ids": ids()}), expected)
    if not tied:
        t = table(partition(model))
        assert t["lm_head.weight"][:2] == (
            "adamw", "output head (LlamaForCausalLM.get_output_embeddings())"
        )  # fmt: skip


def test_bert_classifier(hf):
    cfg = hf.BertConfig(**SMALL, max_position_embeddings=16, num_labels=3)
    model = hf.BertForSequenceClassification(cfg)
    with pytest.raises(ValueError, match="output head of BertForSequenceClassification"):
        partition(model)  # get_output_embeddings() is None: the forward must tell
    check(
        partition(model, example_input={"input_ids": ids()}),
        {
            r".*_embeddings\.weight": EMB,
            r".*attention\.self\.(query|key|value)\.weight|.*dense\.weight": HIDDEN,
            r"classifier\.(weight|bias)": FWD_HEAD,
            r"bert.*\.bias": BIAS,
            r".*LayerNorm\.weight": NORM,
        },
    )


def test_t5_encoder_decoder(hf):
    model = tiny_hf.t5(hf)
    check(
        partition(model, example_input={"input_ids": ids(), "decoder_input_ids": ids(4)}),
        {
            r"shared\.weight|.*relative_attention_bias\.weight": EMB,
            r".*Attention\.[qkvo]\.weight|.*DenseReluDense\.w[io]\.weight": HIDDEN,
            r".*layer_norm\.weight": NORM,
        },
    )


def test_vit_classifier(hf):
    cfg = hf.ViTConfig(
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=8,
        patch_size=4,
        num_labels=3,
    )
    model = hf.ViTForImageClassification(cfg)
    records = partition(model, example_input={"pixel_values": torch.randn(2, 3, 8, 8)})
    names = {r.name for r in records}
    attn = (
        r".*attention\.(attention\.)?(query|key|value|[qkvo]_proj)\.weight|.*output\.dense\.weight"
    )
    check(records, {
        r"vit\.embeddings\.(cls_token|position_embeddings)": ADDED,
        r"vit\.embeddings\.patch_embeddings\.projection\.weight": FWD_INPUT,
        attn + r"|.*intermediate\.dense\.weight|.*mlp\.fc\d\.weight": HIDDEN,
        r"classifier\.(weight|bias)": FWD_HEAD,
        r"vit\..*\.bias": BIAS,
        r".*layernorm(_before|_after)?\.weight": NORM,
    })  # fmt: skip
    assert "vit.embeddings.cls_token" in names


def test_mixtral_stacked_experts(hf):
    cfg = hf.MixtralConfig(**SMALL, num_key_value_heads=1, num_local_experts=3,
                           num_experts_per_tok=2)  # fmt: skip
    model = hf.MixtralForCausalLM(cfg)
    records = partition(model, example_input={"input_ids": ids()})
    stacked = ("muon", "stacked expert matrices (3 experts): one per leading index")
    check(records, {
        r"model\.embed_tokens\.weight": EMB,
        r".*self_attn\.[qkvo]_proj\.weight|.*mlp\.gate\.weight": HIDDEN,
        r".*experts\.(gate_up|down)_proj": stacked,
        r".*norm\.weight|.*layernorm\.weight": NORM,
        r"lm_head\.weight": FWD_HEAD,
    })  # fmt: skip
    assert all(r.batch_dims == 1 for r in records if "experts" in r.name)


def test_example_forward_leaves_buffers_and_random_state_alone():
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 8),
                          nn.Linear(8, 2))  # fmt: skip
    before = [b.clone() for b in model.buffers()]
    x = torch.randn(6, 4) * 5
    torch.manual_seed(0)
    partition(model, example_input=x)
    after_rng = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after_rng, torch.rand(3))
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers()))
