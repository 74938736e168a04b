"""Tiny transformers models built from configs (no weights), shared by the partition and
MuonClip tests: one attention layer of two heads, width 16, vocabulary 50."""

from __future__ import annotations

from typing import Any

#: The common sizes of the Llama / BERT / Mixtral configs.
SMALL = dict(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
             intermediate_size=32)  # fmt: skip


def gpt2(hf: Any) -> Any:
    """GPT-2 with its tied head and Conv1D (in, out) weights."""
    return hf.GPT2LMHeadModel(
        hf.GPT2Config(
            vocab_size=50,
            n_embd=16,
            n_layer=1,
            n_head=2,
            n_positions=16,
            bos_token_id=0,
            eos_token_id=0,
        )
    )


def t5(hf: Any) -> Any:
    """T5: encoder self-attention, decoder self- and cross-attention, unscaled logits."""
    return hf.T5ForConditionalGeneration(
        hf.T5Config(
            vocab_size=50,
            d_model=16,
            d_kv=8,
            d_ff=32,
            num_layers=1,
            num_decoder_layers=1,
            num_heads=2,
        )
    )
