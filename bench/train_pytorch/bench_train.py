"""Training throughput of the PyTorch reference model (tests/reference/train_ref.py) in float32:
the same DeepSeek-V3-style step as `tern train` (MLA, MoE with bias balancing, MTP, AdamW with
clipping) on random tokens, for a side-by-side figure in one run. The reference is written for
clarity, not speed (routing and the MTP loop are plain PyTorch), so read the ratio as "against
a straightforward PyTorch implementation on Debian's python3-torch".

    /usr/bin/python3 bench/train_pytorch/bench_train.py ../shared/bench/train-small-v3.json \
        --batch 8 --seq 256 --steps 4 --threads 1
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tests", "reference"))
import train_ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    cfg = json.load(open(a.config))
    rng = np.random.default_rng(0)
    params = {n: rng.normal(0, 0.02, s) if len(s) == 2 else np.ones(s)
              for n, s in train_ref.param_shapes(cfg).items()}
    P = train_ref.to_torch(params, torch.float32, requires_grad=True)
    biases = {train_ref.bias_name(l): torch.zeros(cfg["n_routed_experts"])
              for l in train_ref.moe_layers(cfg)}
    opt = train_ref.AdamW(P, 0.9, 0.95, 1e-8, 0.1)
    hp = {"lr": 1e-3, "lr_min": 1e-4, "warmup": 1, "total_steps": a.steps + 1, "schedule": "cosine",
          "clip": 1.0, "mtp_lambda": 0.3, "balance_alpha": 1e-4, "bias_gamma": 1e-3}
    S = a.seq + train_ref.n_mtp(cfg)
    times = []
    for s in range(a.steps + 1):  # step 0 warms up
        tokens = rng.integers(0, cfg["vocab_size"], (a.batch, S))
        docs = np.zeros((a.batch, S), dtype=np.int64)
        t0 = time.perf_counter()
        train_ref.train_step(cfg, P, biases, opt, tokens, docs, s, hp)
        times.append(time.perf_counter() - t0)
    per_step = sum(times[1:]) / a.steps
    print(json.dumps({"framework": "pytorch " + torch.__version__, "threads": a.threads,
                      "batch": a.batch, "seq": a.seq, "tokens_per_s": a.batch * a.seq / per_step}))


if __name__ == "__main__":
    main()
