"""Training throughput of the tuned PyTorch implementation (fast_model.py) of `tern train`'s step:
forward + backward + global-norm clip + AdamW + bias update, the hyperparameters of bench_train.py,
random tokens (one document per window), step 0 excluded as warm-up.

    /usr/bin/python3 bench/train_pytorch/bench_fast.py ../shared/bench/train-small-v3.json \
        --batch 8 --seq 256 --steps 4 --threads 1 --precision fp32

--precision bf16 runs the forward under torch.autocast("cpu", dtype=torch.bfloat16) (matmuls in
bf16, master weights, gradients and AdamW in f32; the router, norms, softmax and the CE stay f32).
Prints one line, e.g.
    pytorch precision=fp32 threads=1 intra_threads=1 blas_threads=1 omp_wait=default batch=8 seq=256
    steps=4 tokens_per_s=1860.8 step_s=1.101 loss=10.8619 torch=1.13.0a0      (one line)

Threads: --threads T is the number of cores PyTorch may use. Debian's torch runs fp32 GEMMs in
OpenBLAS (its own pthread pool, sized by OPENBLAS_NUM_THREADS, which torch.set_num_threads does
not touch: left unset it takes every core whatever --threads says) and everything else, the bf16
GEMMs (oneDNN) included, on torch's OpenMP pool. So the script sets, before importing torch,
OPENBLAS_NUM_THREADS = --blas-threads (default T) and torch.set_num_threads(--intra-threads,
default T); OMP_WAIT_POLICY is left to the caller (bench/train_vs_pytorch.sh tries the
combinations for T = 2 and keeps every row).
"""
import argparse
import json
import os
import sys
import time


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=4, help="timed steps, after one warm-up step")
    ap.add_argument("--threads", type=int, default=1, help="cores PyTorch may use")
    ap.add_argument("--intra-threads", type=int, default=0, help="torch.set_num_threads (default --threads)")
    ap.add_argument("--blas-threads", type=int, default=0, help="OPENBLAS_NUM_THREADS (default --threads)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--pad-rows", type=int, default=0,
                    help="pad each expert's rows to a multiple of this (default: 64 for bf16, 1 for fp32)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    a.intra_threads = a.intra_threads or a.threads
    a.blas_threads = a.blas_threads or a.threads
    a.pad_rows = a.pad_rows or (64 if a.precision == "bf16" else 1)
    return a


def main():
    a = parse()
    os.environ["OPENBLAS_NUM_THREADS"] = str(a.blas_threads)   # read when torch loads OpenBLAS
    import numpy as np
    import torch
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import fast_model
    torch.set_num_threads(a.intra_threads)
    torch.manual_seed(a.seed)
    cfg = json.load(open(a.config))
    rng = np.random.default_rng(a.seed)
    P = {n: (torch.tensor(rng.normal(0, 0.02, s), dtype=torch.float32) if len(s) == 2
             else torch.ones(s, dtype=torch.float32)).requires_grad_(True)
         for n, s in fast_model.param_shapes(cfg).items()}
    biases = {fast_model.bias_name(l): torch.zeros(cfg["n_routed_experts"])
              for l in range(cfg["num_hidden_layers"] + fast_model.n_mtp(cfg))
              if fast_model.is_moe_layer(cfg, l)}
    hp = {"lr": 1e-3, "lr_min": 1e-4, "warmup": 1, "total_steps": a.steps + 1, "schedule": "cosine",
          "clip": 1.0, "mtp_lambda": 0.3, "balance_alpha": 1e-4, "bias_gamma": 1e-3}
    opt = fast_model.make_optimizer(P, lr=hp["lr"], betas=(0.9, 0.95), eps=1e-8, wd=0.1)
    model = fast_model.FastModel(cfg, a.seq, torch.float32, pad_rows=a.pad_rows)
    S = a.seq + fast_model.n_mtp(cfg)
    batches = [torch.as_tensor(rng.integers(0, cfg["vocab_size"], (a.batch, S))) for _ in range(a.steps + 1)]
    doc = torch.zeros(a.batch, S, dtype=torch.long)
    ac = torch.bfloat16 if a.precision == "bf16" else None
    times, loss = [], float("nan")
    for s in range(a.steps + 1):   # step 0 warms up (allocator, oneDNN primitives)
        t0 = time.perf_counter()
        loss, _ = fast_model.train_step(model, P, biases, opt, batches[s], doc, s, hp, autocast_dtype=ac)
        times.append(time.perf_counter() - t0)
    step_s = sum(times[1:]) / max(1, a.steps)
    print(f"pytorch precision={a.precision} threads={a.threads} intra_threads={a.intra_threads} "
          f"blas_threads={a.blas_threads} omp_wait={os.environ.get('OMP_WAIT_POLICY', 'default')} batch={a.batch} seq={a.seq} steps={a.steps} "
          f"tokens_per_s={a.batch * a.seq / step_s:.1f} step_s={step_s:.3f} loss={loss:.4f} "
          f"torch={torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
