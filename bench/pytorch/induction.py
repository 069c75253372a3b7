#!/usr/bin/env python3
"""How many training tokens an induction head takes here: a calibration for the lookup benchmark.

Context lookup pays on "quote" and "edit" only with a model that copies a passage it has seen,
which takes an induction head. This trains a small llama.cpp-style LLaMA (the model of
layerskip_train.py) from scratch on sequences that only copying predicts: each 256-token sequence
is built of units of 8-32 uniform random tokens, and each unit is, with probability 1/2, a copy of
an earlier unit of the same sequence. Copies sit at varied distances, so no positional rule
predicts them (a fixed distance is learnt as a positional copy in ~0.4M tokens).

Reported every 50 steps: the loss over all tokens (uniform floor ln(vocab): 6.24 for 512) and
"copyacc", the argmax accuracy on the predictable tokens of copies (every token of a copy but its
first). A model that copies scores near 1 there and brings the loss towards 0.55 * ln(vocab).

    python3 bench/pytorch/induction.py --minutes 55          # 2 layers, width 64, 1 thread
    python3 bench/pytorch/induction.py --context 64 --batch 128 --lr 3e-3 --minutes 20

Measured (BENCHMARKS.md section 16): copying appears after ~49M tokens with the defaults (256
tokens, 1e-3) and after ~13.5M with 64-token sequences at 3e-3.
"""
import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from layerskip_train import Llama  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ff", type=int, default=192)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--init", type=float, default=0.125, help="weight init std (0.02 leaves attention logits near 0 at width 64)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=60)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    m = Llama(a.layers, a.dim, a.heads, a.ff, a.vocab, a.context)
    for mod in m.modules():
        if isinstance(mod, (nn.Linear, nn.Embedding)):
            nn.init.normal_(mod.weight, std=a.init)
    opt = torch.optim.AdamW(m.parameters(), lr=a.lr, weight_decay=0)

    def sequence():
        toks, predictable, units = [], [], []
        while len(toks) < a.context + 1:
            if units and rng.random() < 0.5:
                u = rng.choice(units)
                toks += u
                predictable += [0] + [1] * (len(u) - 1)  # a copy's first token is not predictable
            else:
                u = [rng.randrange(a.vocab) for _ in range(rng.randint(8, 32))]
                units.append(u)
                toks += u
                predictable += [0] * len(u)
        return toks[: a.context + 1], predictable[: a.context + 1]

    t0 = time.time()
    tokens = 0
    step = 0
    while time.time() - t0 < a.minutes * 60:
        seqs = [sequence() for _ in range(a.batch)]
        w = torch.tensor([t for t, _ in seqs])
        mask = torch.tensor([p for _, p in seqs])[:, 1:].bool()
        x, y = w[:, :-1], w[:, 1:]
        logits = m(x)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        tokens += x.numel()
        if step % 50 == 0:
            acc = (logits.detach().argmax(-1) == y)[mask].float().mean().item()
            print(f"step {step} tokens {tokens / 1e6:.2f}M loss {loss.item():.3f} copyacc {acc:.3f} t {time.time() - t0:.0f}s", flush=True)
        step += 1


if __name__ == "__main__":
    main()
