"""Step 0 of tests/golden/train_tiny_v3 (make_train_golden.py) as the GRPO and distillation
goldens start from it: the config, the initial parameters and correction biases as float64 torch
tensors (parameters requiring grad), and the step's token and document windows [B, S]."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

import tensor_io as io
import train_ref as TR

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "golden",
                   "train_tiny_v3")


def load_step0():
    """-> cfg, P (name -> float64 tensor, requires_grad), biases, tokens, docs (int64 numpy)."""
    with open(os.path.join(SRC, "config.json")) as f:
        cfg = json.load(f)
    init = {n: io.decode_storage(dt, a) for n, (dt, a) in
            io.read_safetensors(os.path.join(SRC, "init.safetensors")).items()}
    shapes = TR.param_shapes(cfg)
    P = TR.to_torch({n: init[n] for n in shapes}, torch.float64, requires_grad=True)
    biases = TR.to_torch({n: init[n] for n in init if n not in shapes}, torch.float64)
    batch = io.read_safetensors(os.path.join(SRC, "batch.safetensors"))
    tokens = batch["tokens"][1][0].astype(np.int64)
    docs = batch["docs"][1][0].astype(np.int64)
    return cfg, P, biases, tokens, docs
