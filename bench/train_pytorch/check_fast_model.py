"""Checks bench/train_pytorch/fast_model.py against tests/reference/train_ref.py in float64 on tiny
configs shrunk from ../shared/bench/train-small-v3.json: same routing, loss within 1e-5 relative,
every parameter gradient within 1e-4 relative (per tensor, in norm), and after one full training
step (clip, AdamW, schedule, bias update) the same parameters and correction biases.

    /usr/bin/python3 bench/train_pytorch/check_fast_model.py [CONFIG]

Prints PASS or FAIL (with the offending quantities), exits 1 on failure.
"""
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fast_model  # noqa: E402
import train_ref  # noqa: E402  (fast_model put tests/reference on the path)

LOSS_RTOL, GRAD_RTOL, STEP_RTOL = 1e-5, 1e-4, 1e-6
DEFAULT_CFG = os.path.join(HERE, "..", "..", "..", "shared", "bench", "train-small-v3.json")


def shrink(cfg, **over):
    c = dict(cfg)
    c.update({"hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "num_hidden_layers": 3,
              "num_attention_heads": 2, "num_key_value_heads": 2, "q_lora_rank": 32, "kv_lora_rank": 16,
              "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16, "vocab_size": 256,
              "max_position_embeddings": 64})
    c.update(over)
    return c


def case(name, cfg, B, T, docs_kind, seed, pad_rows=1):
    D = train_ref.n_mtp(cfg)
    S = T + D
    rng = np.random.default_rng(seed)
    shapes = train_ref.param_shapes(cfg)
    arrays = {n: rng.normal(0, 0.05, s) if len(s) == 2 else 1 + 0.1 * rng.normal(size=s) for n, s in shapes.items()}
    bias_np = {train_ref.bias_name(l): rng.normal(0, 0.01, cfg["n_routed_experts"]) for l in train_ref.moe_layers(cfg)}
    tokens = rng.integers(0, cfg["vocab_size"], (B, S))
    if docs_kind == "boundaries":   # a few document boundaries inside each window
        docs = np.cumsum(rng.random((B, S)) < 0.1, axis=1)
    else:
        docs = np.zeros((B, S), dtype=np.int64)
    lam, alpha = 0.3, 0.01   # alpha larger than the default so the balance-loss gradient is visible
    dt = torch.float64
    fails = []

    # --- forward + gradients --------------------------------------------------------------
    Pr = train_ref.to_torch(arrays, dt, requires_grad=True)
    br = {n: torch.tensor(b, dtype=dt) for n, b in bias_np.items()}
    ref = train_ref.forward_loss(cfg, Pr, br, tokens, docs, lam, alpha)
    names = list(Pr)
    gr = torch.autograd.grad(ref["loss"], [Pr[n] for n in names], allow_unused=True)
    gr = {n: (g if g is not None else torch.zeros_like(Pr[n])) for n, g in zip(names, gr)}

    Pf = train_ref.to_torch(arrays, dt, requires_grad=True)
    bf = {n: torch.tensor(b, dtype=dt) for n, b in bias_np.items()}
    model = fast_model.FastModel(cfg, T, dt, pad_rows=pad_rows)
    tok, doc = torch.as_tensor(tokens), torch.as_tensor(docs, dtype=torch.long)
    loss, parts, routing = model.forward_loss(Pf, bf, tok, doc, lam, alpha)
    gf = torch.autograd.grad(loss, [Pf[n] for n in names], allow_unused=True)
    gf = {n: (g if g is not None else torch.zeros_like(Pf[n])) for n, g in zip(names, gf)}

    for layer, tr in ref["traces"].items():
        a = torch.sort(tr["idx"].reshape(-1, tr["idx"].shape[-1]), dim=-1).values
        b = torch.sort(routing[layer], dim=-1).values
        if not torch.equal(a, b):
            fails.append(f"layer {layer}: routing differs on {(a != b).any(-1).sum().item()} tokens "
                         f"(k margin {tr['k_margin']:.3g}, group margin {tr['g_margin']:.3g})")
    rl, fl = float(ref["loss"]), float(loss)
    rel = abs(fl - rl) / abs(rl)
    if rel > LOSS_RTOL:
        fails.append(f"loss {fl!r} vs ref {rl!r} (rel {rel:.2e})")
    for key, r, f in [("main_loss", ref["main_loss"], parts["main_loss"]),
                      ("balance_loss", sum(ref["bal_losses"].values()), parts["balance_loss"])] + \
                     [(f"mtp_loss[{k}]", r_, f_) for k, (r_, f_) in enumerate(zip(ref["mtp_losses"], parts["mtp_losses"]))]:
        if abs(float(f) - float(r)) > LOSS_RTOL * abs(float(r)):
            fails.append(f"{key} {float(f)!r} vs ref {float(r)!r}")
    worst, worst_name = 0.0, ""
    gscale = max(float(g.norm()) for g in gr.values())
    for n in names:
        d = float((gf[n] - gr[n]).norm())
        rnorm = float(gr[n].norm())
        r = d / max(rnorm, 1e-12 * gscale)
        if r > worst:
            worst, worst_name = r, n
        if r > GRAD_RTOL:
            fails.append(f"grad {n}: rel diff {r:.2e} (ref norm {rnorm:.3e})")

    # --- one full training step -------------------------------------------------------------
    hp = {"lr": 1e-3, "lr_min": 1e-4, "warmup": 1, "total_steps": 4, "schedule": "cosine",
          "clip": 1.0, "mtp_lambda": lam, "balance_alpha": alpha, "bias_gamma": 1e-3}
    worst_step = 0.0
    for clip in (1.0, 1e6):   # clipped, and not clipped
        hp["clip"] = clip
        Pr = train_ref.to_torch(arrays, dt, requires_grad=True)
        br = {n: torch.tensor(b, dtype=dt) for n, b in bias_np.items()}
        Pf = train_ref.to_torch(arrays, dt, requires_grad=True)
        bf = {n: torch.tensor(b, dtype=dt) for n, b in bias_np.items()}
        opt_r = train_ref.AdamW(Pr, 0.9, 0.95, 1e-8, 0.1)
        opt_f = fast_model.make_optimizer(Pf, lr=hp["lr"])
        for s in range(2):   # two updates: the second one exercises moments and the bias update
            rec, _, _ = train_ref.train_step(cfg, Pr, br, opt_r, tokens, docs, s, hp)
            sl, norm = fast_model.train_step(model, Pf, bf, opt_f, tok, doc, s, hp)
            if abs(sl - rec["loss"]) > LOSS_RTOL * abs(rec["loss"]) or \
                    abs(norm - rec["grad_norm"]) > GRAD_RTOL * rec["grad_norm"]:
                fails.append(f"train step {s} (clip {clip}): loss {sl!r} / norm {norm!r} vs ref "
                             f"{rec['loss']!r} / {rec['grad_norm']!r}")
        for n in names:   # parameters moved by ~lr per step: compare the change
            d0 = torch.tensor(arrays[n], dtype=dt)
            dr, df = Pr[n].detach() - d0, Pf[n].detach() - d0
            r = float((df - dr).norm()) / max(float(dr.norm()), 1e-30)
            worst_step = max(worst_step, r)
            if r > STEP_RTOL:
                fails.append(f"after 2 steps (clip {clip}) {n}: rel diff of the update {r:.2e}")
        for n in br:
            if not torch.allclose(br[n], bf[n], rtol=0, atol=1e-15):
                fails.append(f"correction bias {n} differs after the bias update")
    print(f"{name}: loss {fl:.10f} (ref {rl:.10f}, rel {rel:.1e}), worst grad rel diff {worst:.1e} "
          f"({worst_name}), worst 2-step update rel diff {worst_step:.1e}: {'ok' if not fails else 'FAIL'}")
    for f in fails:
        print("  " + f)
    return not fails


def main():
    base = json.load(open(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_CFG))
    cases = [
        ("V3 shrunk (q_lora, 4 groups top-2, norm_topk, x2.5)", shrink(base), 2, 16, "one doc", 0),
        ("V3 shrunk, document boundaries", shrink(base), 2, 16, "boundaries", 1),
        ("no q_lora, 1 group, no norm_topk, 2 MTP, 2 shared, 8 experts top-3",
         shrink(base, q_lora_rank=None, n_group=1, topk_group=1, norm_topk_prob=False, routed_scaling_factor=1.0,
                num_nextn_predict_layers=2, n_shared_experts=2, n_routed_experts=8, num_experts_per_tok=3),
         2, 16, "boundaries", 2),
        ("8 groups top-3, moe every layer", shrink(base, first_k_dense_replace=0, n_routed_experts=16, n_group=8,
                                                   topk_group=3, num_experts_per_tok=6), 3, 12, "one doc", 3),
        ("V3 shrunk, expert blocks padded to 8 rows", shrink(base), 2, 16, "boundaries", 4, 8),
    ]
    ok = all([case(*c) for c in cases])
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
