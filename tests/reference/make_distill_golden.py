#!/usr/bin/python3
"""Generate tests/golden/distill_tiny_v3/: the logit-distillation loss
    L = mean over positions with a next token of (1 - a) tau^2 KL(softmax(t/tau) || softmax(s/tau))
        + a CE(s, next token)
and its gradient with respect to every parameter of the tiny DeepSeek-V3 student, in float64, for
the C++ trainer to match (tests/train/test_distill.cpp).

    /usr/bin/python3 tests/reference/make_distill_golden.py [--out tests/golden/distill_tiny_v3]

Written from the formula with torch's log_softmax and autograd, not from tern's code. The student,
its weights and the token windows (with their document boundaries: a position whose next token
starts another document has no target) are those of tests/golden/train_tiny_v3 (step 0), whose
routing an f32 engine reproduces; the teacher's logits are seeded normal draws (scale 3).
Deterministic: rerunning rewrites byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tensor_io as io  # noqa: E402
import train_golden_case as G  # noqa: E402
import train_ref as TR  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
TAU, HARD = 2.0, 0.3
SEED = 20251204

torch.set_num_threads(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "distill_tiny_v3"))
    args = ap.parse_args()
    cfg, P, bias, tokens, docs = G.load_step0()
    B, S = tokens.shape
    T = S - TR.n_mtp(cfg)
    V = cfg["vocab_size"]
    teacher = np.random.default_rng(SEED).normal(0.0, 3.0, size=(B, T, V)).astype(np.float32)

    out = TR.forward_loss(cfg, P, bias, tokens, docs, 0.0, 0.0)
    s = out["logits"]                                              # [B, T, V]
    t = torch.tensor(teacher.astype(np.float64))
    mask = torch.as_tensor(docs[:, 1:T + 1] == docs[:, :T]).to(torch.float64)
    lt, ls = torch.log_softmax(t / TAU, -1), torch.log_softmax(s / TAU, -1)
    kl = (lt.exp() * (lt - ls)).sum(-1)
    ce = -torch.log_softmax(s, -1).gather(-1, torch.as_tensor(tokens[:, 1:T + 1])[..., None])[..., 0]
    per = (1 - HARD) * TAU * TAU * kl + HARD * ce
    loss = (per * mask).sum() / mask.sum()
    loss.backward()
    grads = {n: (p.grad.detach().numpy() if p.grad is not None else np.zeros(p.shape))
             for n, p in P.items()}

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    case = {"temperature": TAU, "hard_weight": HARD, "loss": float(loss),
            "targets": int(mask.sum()),
            "note": "teacher.safetensors: teacher logits [B, T, V] for step 0 of train_tiny_v3's "
                    "batch; grads.safetensors: d loss / d parameter (float64 rounded to f32)"}
    with open(os.path.join(args.out, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
        f.write("\n")
    io.write_safetensors(os.path.join(args.out, "teacher.safetensors"),
                         {"logits": ("F32", io.encode_for_storage("F32", teacher))})
    io.write_safetensors(os.path.join(args.out, "grads.safetensors"),
                         {n: ("F32", io.encode_for_storage("F32", g)) for n, g in sorted(grads.items())})
    print(f"loss {float(loss):.8f} over {int(mask.sum())} positions")


if __name__ == "__main__":
    main()
