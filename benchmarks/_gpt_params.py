"""The GPT-like parameter set shared by the step-time benchmarks.

d=512, 6 layers, vocab 8192, MLP 4·d, tied embedding/head: about 23M parameters in ~75 tensors
(embedding, per layer: fused qkv, attention output, two MLP matrices, biases and LayerNorm
gains). The forward pass is never run by the step benchmarks; gradients are random.
"""

from __future__ import annotations

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        att = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.out(nn.functional.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, d: int = 512, layers: int = 6, vocab: int = 8192, heads: int = 8) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied, as GPT-2

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))

    # the transformers convention: optkit.Muon(model) reads the input layer and the head here
    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.head


def gpt_like_model(d: int = 512, layers: int = 6, vocab: int = 8192, seed: int = 0) -> GPT:
    """The benchmark model, deterministic for a seed."""
    torch.manual_seed(seed)
    return GPT(d, layers, vocab)


def set_random_grads(model: nn.Module, seed: int = 1) -> None:
    """Give every parameter a random gradient (a fixed draw, so runs are comparable)."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype) * 1e-2
