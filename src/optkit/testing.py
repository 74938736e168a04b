"""Small reference networks for your tests, the docs' examples and the benchmarks.

Each has the parameter kinds an optimizer must treat differently, in a few thousand
parameters, so a test of an optimizer (or of your training loop) runs in milliseconds:

- :class:`ToyGPT`: a pre-norm decoder-only transformer — token and position embeddings, q/k/v/o
  and MLP matrices, biases, LayerNorm gains, an output head (optionally tied to the embedding),
  separate or fused qkv projections, grouped-query attention. What :class:`optkit.Muon`'s
  partition and :class:`optkit.MuonClip`'s attention discovery are tested on.
- :class:`ToyCNN`: conv kernels, batch norms and a linear classifier.
- :class:`ToyMoE`: stacked expert weights ``(experts, out, in)``, one matrix per expert.

These are public and stable: the constructors' arguments keep their names and meaning.

Example:
    >>> import torch, optkit
    >>> from optkit.testing import ToyGPT
    >>> gpt = ToyGPT(vocab=64, d=32, layers=2, num_heads=4, num_kv_heads=2)
    >>> gpt(torch.randint(0, 64, (2, 16))).shape
    torch.Size([2, 16, 64])
    >>> opt = optkit.MuonClip(gpt, lr=0.02, qk_clip_tau=30.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ToyCNN", "ToyGPT", "ToyMoE"]


class Attention(nn.Module):
    def __init__(self, d: int, num_heads: int, num_kv_heads: int, fused: bool, bias: bool):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, d // num_heads
        kv = num_kv_heads * self.head_dim
        if fused:
            self.qkv_proj = nn.Linear(d, d + 2 * kv, bias=bias)
        else:
            self.q_proj = nn.Linear(d, d, bias=bias)
            self.k_proj = nn.Linear(d, kv, bias=bias)
            self.v_proj = nn.Linear(d, kv, bias=bias)
        self.o_proj = nn.Linear(d, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        B, T, d = x.shape
        kv = self.num_kv_heads * self.head_dim
        if hasattr(self, "qkv_proj"):
            q, k, v = self.qkv_proj(x).split([d, kv, kv], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(B, T, self.num_heads, self.head_dim).transpose(1, 2)
        k = k.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(B, T, self.num_kv_heads, self.head_dim).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, enable_gqa=self.num_kv_heads != self.num_heads
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    def __init__(self, d: int, num_heads: int, num_kv_heads: int, fused: bool, bias: bool):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, num_heads, num_kv_heads, fused, bias)
        self.fc = nn.Linear(d, 4 * d, bias=bias)
        self.proj = nn.Linear(4 * d, d, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class ToyGPT(nn.Module):
    """Decoder-only transformer: ``forward(tokens (B, T)) -> logits (B, T, vocab)``.

    Args:
        vocab: Vocabulary size (embedding rows, head outputs).
        d: Model width; ``d % num_heads == 0``.
        layers: Number of transformer blocks.
        num_heads: Query heads.
        num_kv_heads: Key/value heads (grouped-query attention); default ``num_heads``.
        block_size: Longest sequence (position-embedding rows).
        fused_qkv: One ``qkv_proj`` instead of ``q_proj``, ``k_proj``, ``v_proj``.
        tied: Share the output head's weight with the token embedding.
        bias: Biases in the attention and MLP projections.
    """

    def __init__(
        self,
        vocab: int = 64,
        d: int = 32,
        layers: int = 2,
        num_heads: int = 4,
        num_kv_heads: int | None = None,
        *,
        block_size: int = 64,
        fused_qkv: bool = False,
        tied: bool = False,
        bias: bool = True,
    ) -> None:
        super().__init__()
        kv = num_heads if num_kv_heads is None else num_kv_heads
        self.tok_emb = nn.Embedding(vocab, d)
        self.pos_emb = nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(Block(d, num_heads, kv, fused_qkv, bias) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.tok_emb.weight

    def get_input_embeddings(self) -> nn.Module:
        return self.tok_emb

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def forward(self, tokens: Tensor) -> Tensor:
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.tok_emb(tokens) + self.pos_emb(pos)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))


class ToyCNN(nn.Module):
    """Two conv layers with batch norm and a linear classifier: ``(B, 3, H, W) -> (B, classes)``.

    Args:
        classes: Outputs of the classifier.
        width: Channels of the first conv layer (the second has twice as many).
    """

    def __init__(self, classes: int = 10, width: int = 8) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width, classes)

    def get_input_embeddings(self) -> nn.Module:
        return self.conv1

    def get_output_embeddings(self) -> nn.Module:
        return self.fc

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(-2, -1)))


class ToyMoE(nn.Module):
    """An input layer, a router and ``experts`` stacked MLP weights ``(experts, out, in)``,
    top-1 routing, a classifier: ``(B, features) -> (B, classes)``.

    Args:
        d: Model width (what the experts read and write).
        hidden: Hidden width of each expert.
        experts: Number of experts (the leading dimension of ``w_in`` and ``w_out``).
        classes: Outputs of the head.
        features: Width of the input (the input layer maps it to ``d``).
    """

    def __init__(
        self, d: int = 8, hidden: int = 16, experts: int = 4, classes: int = 3, features: int = 8
    ) -> None:
        super().__init__()
        self.num_experts = experts  # says that w_in, w_out are stacked per expert
        self.embed = nn.Linear(features, d)
        self.router = nn.Linear(d, experts, bias=False)
        self.w_in = nn.Parameter(torch.randn(experts, hidden, d) / d**0.5)
        self.w_out = nn.Parameter(torch.randn(experts, d, hidden) / hidden**0.5)
        self.head = nn.Linear(d, classes)

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def get_output_embeddings(self) -> nn.Module:
        return self.head

    def forward(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        gate = self.router(x).softmax(-1)
        expert = gate.argmax(-1)
        h = F.relu(torch.einsum("bd,bhd->bh", x, self.w_in[expert]))
        y = torch.einsum("bh,bdh->bd", h, self.w_out[expert]) * gate.amax(-1, keepdim=True)
        return self.head(x + y)
