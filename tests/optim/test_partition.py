"""Muon/AdamW routing of real model layouts: GPT-like (tied, untied, fused qkv), CNN, MoE."""

from __future__ import annotations

import pytest
from torch import nn

from optkit.optim.partition import describe, partition
from optkit.testing import ToyCNN, ToyGPT, ToyMoE


def table(records):
    return {r.name: (r.algorithm, r.reason, r.batch_dims) for r in records}


@pytest.mark.parametrize("tied", [False, True])
def test_gpt_like(tied):
    t = table(partition(ToyGPT(layers=2, tied=tied)))
    for layer in (0, 1):
        for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
            assert t[f"blocks.{layer}.attn.{proj}.weight"] == ("muon", "hidden matrix", 0)
            assert t[f"blocks.{layer}.attn.{proj}.bias"][:2] == ("adamw", "bias")
        assert t[f"blocks.{layer}.fc.weight"][0] == "muon"
        assert t[f"blocks.{layer}.proj.weight"][0] == "muon"
        assert t[f"blocks.{layer}.ln1.weight"][:2] == ("adamw", "normalization gain")
    assert t["tok_emb.weight"][:2] == ("adamw", "embedding")
    assert t["pos_emb.weight"][:2] == ("adamw", "embedding")
    if tied:  # the head *is* the embedding: listed once
        assert "lm_head.weight" not in t
    else:
        assert t["lm_head.weight"][:2] == (
            "adamw",
            "output head (last Linear: produces the logits)",
        )
    assert sum(a == "muon" for a, _, _ in t.values()) == 12


def test_fused_qkv_and_gqa():
    t = table(partition(ToyGPT(layers=1, num_heads=4, num_kv_heads=2, fused_qkv=True)))
    assert t["blocks.0.attn.qkv_proj.weight"][0] == "muon"


def test_cnn():
    t = table(partition(ToyCNN()))
    assert t["conv1.weight"] == ("muon", "conv kernel (flattened to out × in·k)", 0)
    assert t["conv2.weight"][0] == "muon"
    assert t["conv1.bias"][0] == "adamw"
    assert t["bn1.weight"][:2] == ("adamw", "normalization gain")
    assert t["fc.weight"][0] == "adamw" and t["fc.bias"][0] == "adamw"


def test_moe_experts_are_batched_matrices():
    t = table(partition(ToyMoE()))
    assert t["w_in"][0] == "muon" and t["w_in"][2] == 1
    assert t["w_out"][2] == 1
    assert t["router.weight"] == ("muon", "hidden matrix", 0)


def test_head_override_and_describe():
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 8), nn.Linear(8, 2))
    assert table(partition(model))["2.weight"][0] == "adamw"
    assert table(partition(model, head=False))["2.weight"][0] == "muon"
    assert table(partition(model, head="1"))["1.weight"][0] == "adamw"
    assert table(partition(model, head=[model[0]]))["0.weight"][0] == "adamw"
    text = describe(partition(model))
    assert text.splitlines()[0].split() == ["name", "shape", "algorithm", "reason"]
    assert "muon: 2 tensors, 96 values; adamw: 4 tensors" in text
    with pytest.raises(ValueError, match="head must name a submodule"):
        partition(model, head="nope")
