#!/usr/bin/python3
"""Generate tests/golden/grpo_tiny_v3/: the GRPO loss (DeepSeekMath eq. 3) and its gradient with
respect to every parameter of the tiny DeepSeek-V3 model, in float64, for the C++ trainer to match.

    /usr/bin/python3 tests/reference/make_grpo_golden.py [--out tests/golden/grpo_tiny_v3]

Written from the formula, not from tern's code: the policy's log-probabilities come from
train_ref.py's forward; advantages, the clipped ratio and the k3 KL estimator are computed here
with torch and differentiated by autograd. The model, its weights and the token windows are those
of tests/golden/train_tiny_v3 (step 0), whose routing margins make_train_golden.py showed an f32
engine reproduces. Two responses form one group: response 0 is tokens 5..13 of window 0 after a
5-token prompt, response 1 tokens 4..16 of window 1 after a 4-token prompt. The old policy's and
the reference's log-probabilities are the current ones moved by seeded noise, kept clear of the
clipping edges so an f32 engine takes the same branch at every token.
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

PROMPT = [5, 4]          # prompt tokens of window 0, 1
COMPLETION = [9, 13]     # response tokens that follow
REWARDS = [1.0, 0.2]
CLIP, BETA = 0.2, 0.04
EDGE_GAP = 0.02          # |ratio - (1 ± clip)| of every token at least this
SEED = 20251203

torch.set_num_threads(1)


def advantages(r, dr):
    r = torch.tensor(r, dtype=torch.float64)
    c = r - r.mean()
    return c if dr else c / (r.std(unbiased=True) + 1e-4)


def objective(logp, old, ref, adv, lengths, dr, max_tokens):
    """-J over the responses: lists of per-token tensors; returns (loss, mean kl, clipped count)."""
    n = len(logp)
    loss, kl_sum, clipped, tokens = 0, 0.0, 0, 0
    for i in range(n):
        ratio = torch.exp(logp[i] - old[i])
        surr = torch.minimum(ratio * adv[i], torch.clamp(ratio, 1 - CLIP, 1 + CLIP) * adv[i])
        kl = torch.exp(ref[i] - logp[i]) - (ref[i] - logp[i]) - 1
        denom = max_tokens if dr else lengths[i]
        loss = loss - (surr - BETA * kl).sum() / (n * denom)
        kl_sum += float(kl.sum())
        clipped += int(((torch.clamp(ratio, 1 - CLIP, 1 + CLIP) * adv[i]) < ratio * adv[i]).sum())
        tokens += lengths[i]
    return loss, kl_sum / tokens, clipped


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "grpo_tiny_v3"))
    args = ap.parse_args()
    cfg, P, bias, tokens, _ = G.load_step0()
    B, S = tokens.shape
    T = S - TR.n_mtp(cfg)
    assert B == 2 and all(p + c <= T + 1 for p, c in zip(PROMPT, COMPLETION))
    docs = np.zeros((B, S), dtype=np.int64)            # one document per window: no boundary

    out = TR.forward_loss(cfg, P, bias, tokens, docs, 0.0, 0.0)
    lsm = torch.log_softmax(out["logits"], dim=-1)     # [B, T, V]
    # Row i predicts token i+1: response token j of window b sits at row PROMPT[b] - 1 + j.
    logp = []
    for b in range(B):
        rows = torch.arange(PROMPT[b] - 1, PROMPT[b] - 1 + COMPLETION[b])
        tgt = torch.as_tensor(tokens[b, rows + 1])
        logp.append(lsm[b, rows, tgt])

    rng = np.random.default_rng(SEED)
    old, ref = [], []
    for b in range(B):
        cur = logp[b].detach().numpy()
        shift = np.empty_like(cur)
        for j in range(len(cur)):
            while True:  # log(ratio) = cur - old; keep the ratio off both clipping edges
                s = rng.uniform(-0.45, 0.45)
                r = np.exp(s)
                if abs(r - (1 - CLIP)) > EDGE_GAP and abs(r - (1 + CLIP)) > EDGE_GAP:
                    break
            shift[j] = s
        old.append(torch.tensor(cur - shift))
        ref.append(torch.tensor(cur + rng.normal(0.0, 0.3, size=len(cur))))
    adv = advantages(REWARDS, False)
    loss, kl_mean, clipped = objective(logp, old, ref, adv, COMPLETION, False, T)
    loss.backward()
    grads = {n: (p.grad.detach().numpy() if p.grad is not None else np.zeros(p.shape))
             for n, p in P.items()}
    with torch.no_grad():
        dr_loss, _, _ = objective(logp, old, ref, advantages(REWARDS, True), COMPLETION, True, T)
    assert 0 < clipped < sum(COMPLETION), "the case must clip some tokens and not all"

    case = {
        "prompt_tokens": PROMPT, "completion_tokens": COMPLETION, "rewards": REWARDS,
        "clip": CLIP, "kl": BETA, "max_tokens_dr": T,
        "advantages": adv.tolist(), "dr_advantages": advantages(REWARDS, True).tolist(),
        "logp": [x.detach().tolist() for x in logp],
        "old_logp": [x.tolist() for x in old], "ref_logp": [x.tolist() for x in ref],
        "loss": float(loss), "dr_loss": float(dr_loss), "kl_mean": kl_mean, "clipped": clipped,
        "note": "loss = -J of DeepSeekMath eq. 3 over one group of two responses; grads.safetensors "
                "is d loss / d parameter (float64 rounded to f32); MTP parameters get none",
    }
    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    with open(os.path.join(args.out, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
        f.write("\n")
    io.write_safetensors(os.path.join(args.out, "grads.safetensors"),
                         {n: ("F32", io.encode_for_storage("F32", g)) for n, g in sorted(grads.items())})
    print(f"loss {float(loss):.8f}, clipped {clipped} of {sum(COMPLETION)} tokens, kl {kl_mean:.5f}")


if __name__ == "__main__":
    main()
