#!/usr/bin/env python3
"""Reference LLaMA trainer in PyTorch (CPU), for a side-by-side training-throughput comparison.

The model is llama.cpp's LLaMA: token embedding tied with the LM head; per layer
RMSNorm (eps 1e-5, with weight) -> multi-head causal self-attention with RoPE -> residual,
RMSNorm -> SwiGLU FFN (gate, up, down) -> residual; final RMSNorm; LM head. No biases.
RoPE rotates adjacent pairs (x[2i], x[2i+1]) with theta_i = 10000^(-2i/head_dim).

--layerskip adds the LayerSkip recipe (Elhoushi et al., 2024):
  * an early-exit loss at every layer through the shared final norm + LM head, weighted
    e(l) = e_scale * sum_{i<=l} i            for l < L-1
    e(L-1) = L-1 + e_scale * sum_{i<=L-2} i
    normalised to sum 1 over the exits enabled at that step;
  * rotational curriculum: exit l is enabled when (l + step) % R == 0, the last one always;
  * layer dropout per sample with p(l) = p_max * (2^(l/(L-1)) - 1), no rescale, training only.
Exits whose weight is 0 (layer 0, since e(0) = 0) are not computed. A dropped layer is not
computed for the samples that drop it.

Prints one line per step to stderr and, last, one JSON line to stdout:
  {"threads":N,"layerskip":bool,"tokens_per_s":X,"step_ms":Y,"params":P}
measured over the steps after a warm-up of 3 (tokens = batch * context per step).
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

WARMUP_STEPS = 3


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rope_tables(context: int, head_dim: int, base: float = 10000.0):
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # [hd/2]
    ang = torch.arange(context, dtype=torch.float32)[:, None] * inv[None, :]  # [T, hd/2]
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: [B, H, T, hd]; rotate the pairs (x[2i], x[2i+1]) by angle pos * theta_i.
    T = x.shape[-2]
    xp = x.unflatten(-1, (-1, 2))
    x0, x1 = xp[..., 0], xp[..., 1]
    c, s = cos[:T], sin[:T]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.wq = nn.Linear(dim, dim, bias=False)
        self.wk = nn.Linear(dim, dim, bias=False)
        self.wv = nn.Linear(dim, dim, bias=False)
        self.wo = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin):
        B, T, D = x.shape
        shape = (B, T, self.heads, D // self.heads)
        q = self.wq(x).view(shape).transpose(1, 2)
        k = self.wk(x).view(shape).transpose(1, 2)
        v = self.wv(x).view(shape).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(head_dim)
        return self.wo(y.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ff: int):
        super().__init__()
        self.gate = nn.Linear(dim, ff, bias=False)
        self.up = nn.Linear(dim, ff, bias=False)
        self.down = nn.Linear(ff, dim, bias=False)

    def forward(self, x):
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, ff: int):
        super().__init__()
        self.attn_norm = RMSNorm(dim)
        self.attn = Attention(dim, heads)
        self.ffn_norm = RMSNorm(dim)
        self.ffn = FeedForward(dim, ff)

    def forward(self, x, cos, sin):
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, layers, dim, heads, ff, vocab, context):
        super().__init__()
        assert dim % heads == 0 and (dim // heads) % 2 == 0
        self.tok = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(Block(dim, heads, ff) for _ in range(layers))
        self.norm = RMSNorm(dim)
        cos, sin = rope_tables(context, dim // heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)

    def head(self, h):
        # Shared final norm + LM head tied with the token embedding.
        return F.linear(self.norm(h), self.tok.weight)

    def forward(self, x):
        h = self.tok(x)
        for blk in self.blocks:
            h = blk(h, self.cos, self.sin)
        return self.head(h)


def exit_scales(L: int, e_scale: float):
    """Un-normalised LayerSkip early-exit loss scales e(l), l = 0..L-1."""
    e = [e_scale * sum(range(l + 1)) for l in range(L - 1)]
    e.append((L - 1) + e_scale * sum(range(L - 1)))
    return e


def dropout_rates(L: int, p_max: float):
    return [p_max * (2 ** (l / (L - 1)) - 1) if L > 1 else 0.0 for l in range(L)]


def loss_plain(model: Llama, x, y):
    return F.cross_entropy(model(x).flatten(0, 1), y.flatten())


def loss_layerskip(model: Llama, x, y, step, scales, p_drop, rotation, gen):
    L = len(model.blocks)
    B = x.shape[0]
    enabled = [l for l in range(L) if l == L - 1 or (l + step) % rotation == 0]
    enabled = [l for l in enabled if scales[l] > 0]
    total = sum(scales[l] for l in enabled)
    weights = {l: scales[l] / total for l in enabled}

    h = model.tok(x)
    loss = h.new_zeros(())
    for l, blk in enumerate(model.blocks):
        if p_drop[l] > 0:
            keep = torch.rand(B, generator=gen) >= p_drop[l]
        else:
            keep = None
        if keep is None or bool(keep.all()):
            h = blk(h, model.cos, model.sin)
        elif bool(keep.any()):
            idx = keep.nonzero().squeeze(1)
            h = h.index_copy(0, idx, blk(h.index_select(0, idx), model.cos, model.sin))
        # else: every sample skips this layer; h passes through unchanged.
        if l in weights:
            logits = model.head(h)
            loss = loss + weights[l] * F.cross_entropy(logits.flatten(0, 1), y.flatten())
    return loss


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=384)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--context", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=20, help=f"total steps, the first {WARMUP_STEPS} are warm-up")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--layerskip", action="store_true")
    ap.add_argument("--e-scale", type=float, default=0.2)
    ap.add_argument("--rotation", type=int, default=4)
    ap.add_argument("--p-max", type=float, default=0.1)
    ap.add_argument("--tokens", type=str, default=None, help="raw little-endian int32 token file")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    if a.steps <= WARMUP_STEPS:
        ap.error(f"--steps must be more than the {WARMUP_STEPS} warm-up steps")

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)

    if a.tokens:
        data = torch.from_numpy(np.fromfile(a.tokens, dtype="<i4").astype(np.int64))
        if data.numel() < a.context + 1:
            sys.exit(f"{a.tokens}: {data.numel()} tokens, fewer than context + 1 = {a.context + 1}")
        if int(data.min()) < 0 or int(data.max()) >= a.vocab:
            sys.exit(f"{a.tokens}: token ids outside [0, {a.vocab})")
    else:
        data = torch.randint(0, a.vocab, (max(1 << 20, a.context + 1),), generator=gen)

    model = Llama(a.layers, a.dim, a.heads, a.ff, a.vocab, a.context)
    model.train()
    params = sum(p.numel() for p in model.parameters())  # the tied embedding counts once
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    scales = exit_scales(a.layers, a.e_scale)
    p_drop = dropout_rates(a.layers, a.p_max)
    offs = torch.arange(a.context + 1)

    t0 = None
    for step in range(a.steps):
        if step == WARMUP_STEPS:
            t0 = time.perf_counter()
        ts = time.perf_counter()
        starts = torch.randint(0, data.numel() - a.context, (a.batch,), generator=gen)
        win = data[starts[:, None] + offs[None, :]]
        x, y = win[:, :-1], win[:, 1:]
        if a.layerskip:
            loss = loss_layerskip(model, x, y, step, scales, p_drop, a.rotation, gen)
        else:
            loss = loss_plain(model, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        print(f"step {step} loss {loss.item():.4f} {1000 * (time.perf_counter() - ts):.1f} ms", file=sys.stderr)
    elapsed = time.perf_counter() - t0
    timed = a.steps - WARMUP_STEPS
    print(json.dumps({
        "threads": a.threads,
        "layerskip": a.layerskip,
        "tokens_per_s": round(a.batch * a.context * timed / elapsed, 1),
        "step_ms": round(1000 * elapsed / timed, 2),
        "params": params,
    }, separators=(",", ":")))


if __name__ == "__main__":
    main()
