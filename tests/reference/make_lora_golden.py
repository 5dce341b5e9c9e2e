#!/usr/bin/python3
"""Generate tests/golden/lora_tiny_v3/: the training loss of the tiny DeepSeek-V3 model with LoRA
adapters on every projection of its main layers, and the loss's gradient with respect to each
adapter's A and B, in float64, for the C++ trainer to match (tests/train/test_lora.cpp).

    /usr/bin/python3 tests/reference/make_lora_golden.py [--out tests/golden/lora_tiny_v3]

Written from the LoRA definition (Hu et al. 2021; PEFT's layout), not from tern's code: every
adapted matrix W becomes W + (alpha / r) * B @ A, A [r, in], B [out, r]; torch autograd gives
d loss / dA and d loss / dB through train_ref.py's model. The base weights, token windows and
loss weights (MTP lambda 0.3, balance alpha 0.01) are step 0 of tests/golden/train_tiny_v3. Two
bases: the f32 weights as they are, and the same rounded to bf16 (every matrix; norms stay f32),
which the engine keeps in bf16 while it trains the adapters. A and B are seeded normal draws
(B non-zero, so both gradients are). Every routing decision keeps a margin the f32 engine
reproduces (printed). Deterministic: rerunning rewrites byte-identical files.
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
RANK, ALPHA = 4, 8.0
SEED = 20251205
LAMBDA, BAL = 0.3, 0.01
PROJECTIONS = ("q_proj", "q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj",
               "gate_proj", "up_proj", "down_proj")

torch.set_num_threads(1)


def adapted(cfg, name):
    """Whether parameter `name` is an adapted matrix: a projection of a main (not MTP) layer."""
    parts = name.split(".")
    if len(parts) < 4 or parts[0] != "model" or parts[1] != "layers" or parts[-1] != "weight":
        return False
    return int(parts[2]) < cfg["num_hidden_layers"] and parts[-2] in PROJECTIONS


def bf16(t):
    return t.detach().to(torch.float32).to(torch.bfloat16).to(torch.float64)


def run_case(cfg, P, bias, tokens, docs, adapters, round_base):
    scale = ALPHA / RANK
    base = {n: (bf16(p) if round_base and p.dim() == 2 else p.detach()) for n, p in P.items()}
    eff = {}
    for n, w in base.items():
        eff[n] = w + scale * adapters[n][1] @ adapters[n][0] if n in adapters else w
    out = TR.forward_loss(cfg, eff, bias, tokens, docs, LAMBDA, BAL)
    out["loss"].backward()
    margin = min(min(r["k_margin"], r["g_margin"]) for r in out["traces"].values())
    grads = {}
    for n, (a, b) in adapters.items():
        grads[n] = (a.grad.detach().numpy().copy(), b.grad.detach().numpy().copy())
        a.grad, b.grad = None, None
    return float(out["loss"]), margin, grads


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "lora_tiny_v3"))
    args = ap.parse_args()
    cfg, P, bias, tokens, docs = G.load_step0()
    rng = np.random.default_rng(SEED)
    adapters = {}
    for n in sorted(P):
        if not adapted(cfg, n):
            continue
        rows, cols = P[n].shape
        a = rng.normal(0.0, 0.1, size=(RANK, cols)).astype(np.float32)
        b = rng.normal(0.0, 0.05, size=(rows, RANK)).astype(np.float32)
        adapters[n] = (torch.tensor(a.astype(np.float64), requires_grad=True),
                       torch.tensor(b.astype(np.float64), requires_grad=True))

    if os.path.isdir(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    module = lambda n: "base_model.model." + n[:-len(".weight")]  # noqa: E731
    tensors = {}
    for n, (a, b) in adapters.items():
        tensors[module(n) + ".lora_A.weight"] = ("F32", io.encode_for_storage("F32", a.detach().numpy()))
        tensors[module(n) + ".lora_B.weight"] = ("F32", io.encode_for_storage("F32", b.detach().numpy()))
    io.write_safetensors(os.path.join(args.out, "adapter_model.safetensors"), dict(sorted(tensors.items())))
    with open(os.path.join(args.out, "adapter_config.json"), "w") as f:
        json.dump({"peft_type": "LORA", "r": RANK, "lora_alpha": ALPHA, "use_rslora": False,
                   "target_modules": sorted(n[:-len(".weight")] for n in adapters)}, f, indent=1)
        f.write("\n")
    case = {"rank": RANK, "alpha": ALPHA, "mtp_lambda": LAMBDA, "balance_alpha": BAL,
            "note": "grads_<base>.safetensors: d loss / d lora_A and lora_B per module (PEFT "
                    "names), float64 rounded to f32; the base is train_tiny_v3's step-0 weights "
                    "(f32) or those rounded to bf16 (bf16)"}
    for base_kind in ("f32", "bf16"):
        loss, margin, grads = run_case(cfg, P, bias, tokens, docs, adapters, base_kind == "bf16")
        case["loss_" + base_kind] = loss
        case["min_routing_margin_" + base_kind] = margin
        g = {}
        for n, (ga, gb) in grads.items():
            g[module(n) + ".lora_A.weight"] = ("F32", io.encode_for_storage("F32", ga))
            g[module(n) + ".lora_B.weight"] = ("F32", io.encode_for_storage("F32", gb))
        io.write_safetensors(os.path.join(args.out, "grads_" + base_kind + ".safetensors"),
                             dict(sorted(g.items())))
        print(f"{base_kind}: loss {loss:.8f}, smallest routing margin {margin:.3g}")
    with open(os.path.join(args.out, "case.json"), "w") as f:
        json.dump(case, f, indent=1, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
