#!/usr/bin/python3
"""Generate tests/golden/train_tiny_v3/: five training steps of the tiny DeepSeek-V3 model of
shared/bench/train-tiny-v3.json, computed by train_ref.py in float64, for the C++ trainer to match.

    /usr/bin/python3 tests/reference/make_train_golden.py [--out tests/golden/train_tiny_v3]

Owns: weight initialisation, the batches, hyper-parameters, the choice of seed (routing robustness),
the self-checks of train_ref.py (forward vs deepseek_ref.py, finite differences) and the files.
Deterministic: seeded numpy RNG, torch on one thread; rerunning rewrites byte-identical files.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import deepseek_ref as R  # noqa: E402
import tensor_io as io  # noqa: E402
import train_ref as TR  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
CONFIG = os.path.join(os.path.dirname(REPO), "shared", "bench", "train-tiny-v3.json")

# Seeds tried in order (numpy default_rng(seed) draws init, then batch); the first that passes every
# robustness test below is used and recorded in case.json.
SEED_BASE = 20250101
MAX_SEED_TRIES = 200
STEPS, B, T = 5, 2, 16
# An f32 engine must take exactly the same routing decisions (see attempt()): every margin of s + b
# must exceed MARGIN_MIN and ROBUST_FACTOR x the drift the perturbed runs show at that step.
MARGIN_MIN = 1e-3
ROBUST_FACTOR = 100.0
# The perturbed runs: torch float32, and N_NOISY_RUNS float64 runs whose gradients get Gaussian noise
# of GRAD_NOISE x the tensor's max |g| (torch f32's own step-0 gradient error is ~1e-7 rms of that).
N_NOISY_RUNS = 3
GRAD_NOISE = 2e-7
# Same idea for the clip decision: no run's grad_norm within 1% of the threshold.
CLIP_REL_GAP = 1e-2

# The brief's values except lr: 1e-2 made every trajectory chaotic for an f32 engine (see
# case.json hyper_note), so the peak is 1e-3 (lr_min stays 0.1 lr).
HP = {
    "lr": 1e-3, "lr_min": 1e-4, "warmup": 2, "total_steps": STEPS, "schedule": "cosine",
    "beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1, "clip": 1.0,
    "mtp_lambda": 0.3, "balance_alpha": 0.01, "bias_gamma": 0.01, "grad_accum": 1,
}

torch.set_num_threads(1)  # reductions in a fixed order -> byte-identical reruns

# =============================================================================================
# Inputs
# =============================================================================================


def make_init(cfg, rng):
    """float32 initial parameters and correction biases.

    Matrices N(0, 0.02) except the router (N(0, 0.3): decisive routing, large margins); norm weights
    1 + 0.1 N(0, 1) so that their gradients are not all alike; biases 0.01 N(0, 1) so the selection
    path with a non-zero bias is exercised from step 0."""
    params = {}
    for name, shape in TR.param_shapes(cfg).items():
        if len(shape) == 1:
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("mlp.gate.weight"):
            x = 0.3 * rng.standard_normal(shape)
        else:
            x = 0.02 * rng.standard_normal(shape)
        params[name] = x.astype(np.float32)
    biases = {TR.bias_name(l): (0.01 * rng.standard_normal(cfg["n_routed_experts"])).astype(np.float32)
              for l in TR.moe_layers(cfg)}
    return params, biases


def make_batch(cfg, rng):
    """tokens, docs int32 [STEPS, B, S]. Every window has 1-2 document boundaries at random positions
    1..S-1 (a boundary at j means docs[j] != docs[j-1]); document ids increase along the stream."""
    S = T + TR.n_mtp(cfg)
    tokens = rng.integers(0, cfg["vocab_size"], size=(STEPS, B, S)).astype(np.int32)
    docs = np.zeros((STEPS, B, S), dtype=np.int32)
    next_doc = 0
    for st in range(STEPS):
        for b in range(B):
            cuts = np.sort(rng.choice(np.arange(1, S), size=int(rng.integers(1, 3)), replace=False))
            start = np.zeros(S, dtype=np.int32)
            start[cuts] = 1
            docs[st, b] = next_doc + np.cumsum(start)
            next_doc = int(docs[st, b, -1]) + 1
    return tokens, docs


# =============================================================================================
# The run
# =============================================================================================


def run(cfg, init, binit, tokens, docs, hp, dtype, noise_seed=None):
    """STEPS training steps from (init, binit). Returns per-step records, the step-0 gradients, the final
    parameters / biases (float64 numpy) and the per-step routing (train_ref.train_step).

    noise_seed: add N(0, (GRAD_NOISE * max|g|)^2) per tensor to every non-zero raw gradient entry, a
    stand-in for the gradient error of an f32 engine."""
    P = TR.to_torch(init, dtype, requires_grad=True)
    bias = TR.to_torch(binit, dtype)
    opt = TR.AdamW(P, hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"])
    perturb = None
    if noise_seed is not None:
        nrng = np.random.default_rng(noise_seed)

        def perturb(grads):
            # exact zeros (unrouted experts, absent tokens) stay zero, as in any engine
            return {n: g + torch.tensor(nrng.standard_normal(tuple(g.shape)), dtype=g.dtype) * (g != 0)
                    * (GRAD_NOISE * float(g.abs().max())) for n, g in grads.items()}
    recs, routing, grads0 = [], [], None
    for s in range(STEPS):
        rec, grads, rt = TR.train_step(cfg, P, bias, opt, tokens[s], docs[s], s, hp, perturb)
        if s == 0:
            grads0 = {n: g.detach().double().numpy() for n, g in grads.items()}
        recs.append(rec)
        routing.append(rt)
    final = {n: p.detach().double().numpy() for n, p in P.items()}
    fbias = {n: b.double().numpy() for n, b in bias.items()}
    return {"records": recs, "grads0": grads0, "params": final, "biases": fbias, "routing": routing}


def step_margins(res):
    """[per step] min over MoE layers and tokens of both decision margins."""
    return [min(min(r["k_margin"], r["g_margin"]) for r in rt.values()) for rt in res["routing"]]


def attempt(cfg, seed):
    """Draw everything from `seed`, run in float64, and judge whether an f32 engine will take exactly the
    same discrete decisions (expert selection, clip or not) in all STEPS steps.

    Why more than a fixed margin: with Adam, eps 1e-8 and lr 1e-2 against 0.02-sized weights, a gradient
    entry of ~1e-8 whose sign the engine gets wrong moves that weight by ~lr in the other direction, so
    f32-vs-f64 differences grow from 1e-7 at step 0 to 1e-3 on some router scores by step 4. The
    perturbed runs (torch f32, and f64 with emulated gradient error) measure that drift per step; every
    margin must exceed ROBUST_FACTOR times it (and MARGIN_MIN), and every run must route and clip alike.

    Returns (ok, why, payload). The clip threshold is 1.0 unless no step's gradient norm exceeds it, in
    which case it is lowered to one significant digit below 0.8 x the step-0 norm (so step 0 clips)."""
    rng = np.random.default_rng(seed)
    init, binit = make_init(cfg, rng)
    tokens, docs = make_batch(cfg, rng)
    hp = dict(HP)
    res = run(cfg, init, binit, tokens, docs, hp, torch.float64)
    if not any(r["clipped"] for r in res["records"]):
        n0 = res["records"][0]["grad_norm"]
        e = math.floor(math.log10(n0))
        hp["clip"] = math.floor(0.8 * n0 / 10 ** e) * 10 ** e or 10 ** (e - 1)
        res = run(cfg, init, binit, tokens, docs, hp, torch.float64)
    margins = step_margins(res)
    payload = {"seed": seed, "init": init, "binit": binit, "tokens": tokens, "docs": docs, "hp": hp,
               "res": res, "margins": margins, "min_margin": min(margins)}
    if min(margins) <= MARGIN_MIN:
        return False, f"routing margin {min(margins):.3g}", payload
    others = {"f32": run(cfg, init, binit, tokens, docs, hp, torch.float32)}
    for k in range(N_NOISY_RUNS):
        others[f"noise{k}"] = run(cfg, init, binit, tokens, docs, hp, torch.float64, noise_seed=seed * 100 + k)
    drift = [0.0] * STEPS
    for name, o in others.items():
        for s in range(STEPS):
            if o["records"][s]["clipped"] != res["records"][s]["clipped"]:
                return False, f"{name} run clips differently at step {s}", payload
            for l, r in res["routing"][s].items():
                if not torch.equal(r["idx"], o["routing"][s][l]["idx"]):
                    return False, f"{name} run routes differently at step {s} layer {l}", payload
                drift[s] = max(drift[s], float((r["sel"] - o["routing"][s][l]["sel"].double()).abs().max()))
    payload.update(drift=drift, others=others)
    for s in range(STEPS):
        if margins[s] <= ROBUST_FACTOR * drift[s]:
            return False, f"step {s}: margin {margins[s]:.3g} <= {ROBUST_FACTOR} x drift {drift[s]:.3g}", payload
        norms = [o["records"][s]["grad_norm"] for o in others.values()] + [res["records"][s]["grad_norm"]]
        if min(abs(n / hp["clip"] - 1) for n in norms) < CLIP_REL_GAP:
            return False, f"step {s}: grad_norm within {CLIP_REL_GAP} of clip", payload
    return True, f"ok (margins {[f'{m:.2g}' for m in margins]}, drift {[f'{d:.2g}' for d in drift]})", payload


# =============================================================================================
# Self-checks
# =============================================================================================


def check_forward(cfg, init, binit, tokens, docs):
    """Main and MTP logits of train_ref (torch) vs deepseek_ref (numpy), float64, every window of step 0.

    deepseek_ref's MTP takes the module's own embed_tokens / shared_head.head: give it copies of the
    main ones (the training tie). Its MTP convention is post-norm h with ids[1:] / hidden[:-1], so passing
    the S = T+1 tokens and the T hidden rows plus one dummy row yields exactly the T training positions
    (only for D = 1, which is all deepseek_ref models)."""
    assert TR.n_mtp(cfg) == 1
    W = {n: a.astype(np.float64) for n, a in {**init, **binit}.items()}
    L = cfg["num_hidden_layers"]
    W[f"model.layers.{L}.embed_tokens.weight"] = W["model.embed_tokens.weight"]
    W[f"model.layers.{L}.shared_head.head.weight"] = W["lm_head.weight"]
    P = TR.to_torch(init, torch.float64)
    out = TR.forward_loss(cfg, P, TR.to_torch(binit, torch.float64), tokens[0], docs[0], 0.3, 0.01)
    d_main = d_mtp = 0.0
    for b in range(tokens.shape[1]):
        ref = R.deepseek_forward(cfg, W, tokens[0, b, :T])
        d_main = max(d_main, float(np.abs(ref["logits"] - out["logits"][b].numpy()).max()))
        hid = np.concatenate([ref["hidden"], np.zeros((1, ref["hidden"].shape[1]))])
        mref = R.deepseek_mtp_forward(cfg, W, tokens[0, b, :T + 1], hid)
        d_mtp = max(d_mtp, float(np.abs(mref["logits"] - out["mtp_logits"][0][b].numpy()).max()))
    assert d_main < 1e-10 and d_mtp < 1e-10, (d_main, d_mtp)
    return {"main_logits_max_abs_diff": d_main, "mtp_logits_max_abs_diff": d_mtp}


def check_fd(cfg, init, binit, tokens, docs, hp, grads0, seed):
    """Finite differences of L at step 0 (float64), routing held at the unperturbed selection (the
    forward asserts that no perturbation flips it), for every parameter tensor with a non-zero gradient:

    (1) one entry, central differences with h = 1e-6, the entry drawn among those with |g| >= 0.1 max|g|
        of the tensor. L is ~8, so one ulp of L is 9e-16 and the difference quotient has an absolute
        rounding floor of ~5e-10: entries with |g| >= 1e-3 must agree to 1e-6 relative, smaller ones
        (attention q path, MTP block: near-uniform attention at init) to 2e-9 absolute.
    (2) the directional derivative along the tensor's own gradient u = g/|g|, steps h = 1e-7/|g| and h/2
        (so that L moves by ~1e-7 whatever the gradient size; h reaches ~0.05 on the smallest gradients,
        hence Richardson extrapolation of the two central differences), must equal |g| to 1e-6 relative:
        this reaches the 1e-6 relative test on the tiny-gradient tensors that (1) cannot resolve.

    Also checks that the tensors with an all-zero gradient are exactly the experts that no token chose."""
    rng = np.random.default_rng(seed + 1)
    h = 1e-6
    P = TR.to_torch(init, torch.float64)
    bias = TR.to_torch(binit, torch.float64)

    def loss(Q, fixed=None):
        return TR.forward_loss(cfg, Q, bias, tokens[0], docs[0], hp["mtp_lambda"], hp["balance_alpha"], fixed)

    base = loss(P)
    fixed = {l: tr["idx"] for l, tr in base["traces"].items()}
    routed = {(l, int(e)) for l, tr in base["traces"].items() for e in np.unique(tr["idx"].numpy())}

    def shifted(name, delta):
        """L with P[name] + delta (a fresh tensor: the stored parameters are never modified)."""
        with torch.no_grad():
            return float(loss({**P, name: P[name] + delta}, fixed)["loss"])

    rel_strict, abs_small, rel_dir, n_strict, zero = 0.0, 0.0, 0.0, 0, []
    for name, g in grads0.items():
        gf = g.reshape(-1)
        gmax = np.abs(gf).max()
        if gmax == 0.0:
            zero.append(name)
            continue
        # (1) one entry
        flat = int(rng.choice(np.nonzero(np.abs(gf) >= 0.1 * gmax)[0]))
        e = torch.zeros(gf.size, dtype=torch.float64)
        e[flat] = h
        e = e.reshape(g.shape)
        fd = (shifted(name, e) - shifted(name, -e)) / (2 * h)
        err = abs(fd - gf[flat])
        if abs(gf[flat]) >= 1e-3:
            n_strict += 1
            rel_strict = max(rel_strict, err / abs(gf[flat]))
            assert err / abs(gf[flat]) < 1e-6, (name, flat, fd, gf[flat])
        else:
            abs_small = max(abs_small, err)
            assert err < 2e-9, (name, flat, fd, gf[flat])
        # (2) along the gradient
        gn = float(np.linalg.norm(gf))
        hd = 1e-7 / gn
        u = torch.tensor(g / gn, dtype=torch.float64)
        d1 = (shifted(name, hd * u) - shifted(name, -hd * u)) / (2 * hd)
        d2 = (shifted(name, 0.5 * hd * u) - shifted(name, -0.5 * hd * u)) / hd
        dd = (4 * d2 - d1) / 3    # Richardson: removes the h^2 term, which large steps make visible
        rel_dir = max(rel_dir, abs(dd / gn - 1))
        assert abs(dd / gn - 1) < 1e-6, (name, dd, gn)
    for name in zero:
        parts = name.split(".")
        assert parts[3] == "mlp" and parts[4] == "experts", f"unexpected zero gradient: {name}"
        assert (int(parts[2]), int(parts[5])) not in routed, f"routed expert with zero gradient: {name}"
    return {"fd_step": h, "fd_tensors_checked": len(grads0) - len(zero),
            "fd_entry_max_rel_err_large_grad": rel_strict, "fd_entries_large_grad": n_strict,
            "fd_entry_max_abs_err_small_grad": abs_small,
            "fd_directional_max_rel_err": rel_dir,
            "zero_grad_tensors (experts no token chose at step 0)": zero}


def check_optimizer(hp):
    """The hand-written AdamW (decay on 2-D tensors only) against torch.optim.AdamW with the 1-D tensors
    in a weight_decay 0 group, and the clip rule against torch's clip_grad_norm_, over STEPS steps of
    random gradients with the scheduled lr."""
    rng = np.random.default_rng(7)
    init = {"w": rng.standard_normal((5, 3)), "n": rng.standard_normal(4)}
    mine = TR.to_torch(init, torch.float64)
    ref = TR.to_torch(init, torch.float64, requires_grad=True)
    opt = TR.AdamW(mine, hp["beta1"], hp["beta2"], hp["eps"], hp["weight_decay"])
    topt = torch.optim.AdamW([{"params": [ref["w"]], "weight_decay": hp["weight_decay"]},
                              {"params": [ref["n"]], "weight_decay": 0.0}],
                             lr=hp["lr"], betas=(hp["beta1"], hp["beta2"]), eps=hp["eps"])
    worst_clip = 0.0
    for s in range(STEPS):
        g = {n: torch.tensor(rng.standard_normal(a.shape) * (10.0 ** -s)) for n, a in init.items()}
        _, gc = TR.clip_by_global_norm(g, hp["clip"])
        for n in ref:
            ref[n].grad = g[n].clone()
        torch.nn.utils.clip_grad_norm_(list(ref.values()), hp["clip"])
        worst_clip = max(worst_clip, max(float((gc[n] - ref[n].grad).abs().max()) for n in ref))
        for n in ref:
            ref[n].grad = gc[n].clone()   # continue from the same clipped gradient either way
        lr = TR.lr_at(s, hp)
        for grp in topt.param_groups:
            grp["lr"] = lr
        topt.step()
        opt.step(mine, gc, lr)
    d = max(float((mine[n] - ref[n].detach()).abs().max()) for n in init)
    assert d < 1e-14 and worst_clip < 1e-15, (d, worst_clip)
    return {"adamw_vs_torch_optim_max_abs_diff": d, "clip_vs_torch_clip_grad_norm_max_abs_diff": worst_clip}


# =============================================================================================
# Output
# =============================================================================================


def f32(d):
    return {n: ("F32", io.encode_for_storage("F32", a)) for n, a in d.items()}


def drift_summary(res, others):
    """How far the perturbed runs (torch f32; f64 + emulated gradient error) land from the stored float64
    values: a guide for the C++ tolerances. Adam turns a wrong sign on a ~1e-8 gradient entry into a
    ~lr-sized move of that weight, so after5 has a few such outliers and a tight bulk."""
    def worst(fn):
        return max(fn(o) for o in others.values())

    def rel_to_max(a, b):
        return max(float(np.abs(a[n] - b[n]).max() / max(np.abs(a[n]).max(), 1e-30)) for n in a)

    def after5_abs(o):
        return np.concatenate([np.abs(res["params"][n] - o["params"][n]).ravel() for n in res["params"]])

    f32 = others["f32"]
    d32 = after5_abs(f32)
    return {
        "note": "Deviations of the perturbed runs from the stored float64 values. 'f32' = train_ref.py in "
                "torch float32; 'all' = max over f32 and the f64 runs with N(0, (%g max|g|)^2) added to every "
                "non-zero gradient entry. Every run takes the same routing and clip decisions (seed "
                "acceptance)." % GRAD_NOISE,
        "f32_loss_abs_diff_per_step": [abs(a["loss"] - b["loss"]) for a, b in zip(res["records"], f32["records"])],
        "f32_grad_norm_rel_diff_per_step": [abs(a["grad_norm"] / b["grad_norm"] - 1)
                                            for a, b in zip(res["records"], f32["records"])],
        "f32_grads0_max_abs_diff_over_tensor_max": rel_to_max(res["grads0"], f32["grads0"]),
        "f32_after5_params_abs_diff": {"max": float(d32.max()), "p99.9": float(np.percentile(d32, 99.9)),
                                       "p99": float(np.percentile(d32, 99)), "count_gt_1e-4": int((d32 > 1e-4).sum()),
                                       "of": int(d32.size)},
        "all_loss_abs_diff_max": worst(lambda o: max(abs(a["loss"] - b["loss"])
                                                     for a, b in zip(res["records"], o["records"]))),
        "all_after5_params_abs_diff_max": worst(lambda o: float(after5_abs(o).max())),
        "all_after5_params_count_gt_1e-4": worst(lambda o: int((after5_abs(o) > 1e-4).sum())),
        "all_after5_biases_abs_diff_max": worst(lambda o: max(float(np.abs(res["biases"][n] - o["biases"][n]).max())
                                                              for n in res["biases"])),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(REPO, "tests", "golden", "train_tiny_v3"))
    args = ap.parse_args()
    with open(CONFIG) as f:
        cfg = json.load(f)
    assert cfg["rope_scaling"] is None and TR.n_mtp(cfg) == 1

    tried = []
    for seed in range(SEED_BASE, SEED_BASE + MAX_SEED_TRIES):
        ok, why, pay = attempt(cfg, seed)
        print(f"seed {seed}: {why}")
        if ok:
            break
        tried.append({"seed": seed, "rejected": why})
    else:
        raise SystemExit("no seed passed the robustness tests")
    init, binit, tokens, docs, hp, res = (pay[k] for k in ("init", "binit", "tokens", "docs", "hp", "res"))

    selfcheck = check_forward(cfg, init, binit, tokens, docs)
    selfcheck.update(check_fd(cfg, init, binit, tokens, docs, hp, res["grads0"], pay["seed"]))
    selfcheck.update(check_optimizer(hp))
    print("selfcheck", json.dumps(selfcheck))

    out = args.out
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    shutil.copyfile(CONFIG, os.path.join(out, "config.json"))
    io.write_safetensors(os.path.join(out, "init.safetensors"), f32({**init, **binit}))
    io.write_safetensors(os.path.join(out, "batch.safetensors"),
                         {"tokens": ("I32", tokens), "docs": ("I32", docs)})
    io.write_safetensors(os.path.join(out, "grads0.safetensors"), f32(res["grads0"]))
    io.write_safetensors(os.path.join(out, "after5.safetensors"), f32({**res["params"], **res["biases"]}))

    layers = TR.moe_layers(cfg)
    L = cfg["num_hidden_layers"]
    case = {
        "description": "5 training steps (G=1) of the tiny DeepSeek-V3 model of config.json, float64 reference "
                       "tests/reference/train_ref.py, contract docs/training.md; regenerate with "
                       "/usr/bin/python3 tests/reference/make_train_golden.py",
        "seed": pay["seed"], "seeds_rejected": tried,
        "steps": STEPS, "batch": B, "seq": T, "mtp_depth": TR.n_mtp(cfg), "window": T + TR.n_mtp(cfg),
        "hyper": hp,
        "hyper_note": "lr is 1e-3, not 1e-2: at 1e-2 (against 0.02-sized weights, Adam eps 1e-8) f32 gradient "
                      "rounding flips the sign of a few tiny gradient entries, Adam moves each such weight by "
                      "~lr the wrong way, and by steps 2-4 the router scores of the perturbed runs drift by "
                      "1e-4..1e-2: none of the first 40 seeds passed even with robust_factor 10 (most routed "
                      "differently). At 1e-3 the drift is ~1e-5 (robustness.score_drift_per_step).",
        "lr_schedule": [TR.lr_at(s, hp) for s in range(STEPS)],
        "moe_layers": layers,
        "maxvio_order": f"main MoE layers in index order, then the MTP block: {layers}",
        "files": {
            "config.json": "copy of shared/bench/train-tiny-v3.json",
            "init.safetensors": "F32 initial trainable parameters + e_score_correction_bias of every MoE layer",
            "batch.safetensors": "tokens, docs: I32 [steps, B, T+D]; step s uses tokens[s], docs[s]",
            "grads0.safetensors": "F32 dL/dp at step 0 (before clipping) for every trainable parameter",
            "after5.safetensors": "F32 every trainable parameter and every e_score_correction_bias after 5 steps",
        },
        "not_trainable": [f"model.layers.{L}.embed_tokens.weight", f"model.layers.{L}.shared_head.head.weight"],
        "not_trainable_note": "tied to model.embed_tokens.weight / lm_head.weight in training; absent from every file",
        "n_params": int(sum(a.size for a in init.values())),
        "per_step": res["records"],
        "clip_triggered_steps": [r["step"] for r in res["records"] if r["clipped"]],
        "router_min_margin": pay["min_margin"],
        "router_margin_per_step": [
            {str(l): {"topk": r["k_margin"], "group": r["g_margin"]} for l, r in sorted(rt.items())}
            for rt in res["routing"]],
        "robustness": {"margin_min": MARGIN_MIN, "robust_factor": ROBUST_FACTOR,
                       "score_drift_per_step": pay["drift"], **drift_summary(res, pay["others"])},
        "selfcheck": selfcheck,
        "notes": [
            "Init (numpy default_rng(seed): init, then batch): matrices N(0,0.02), mlp.gate.weight N(0,0.3), "
            "1-D norm weights 1+0.1 N(0,1), e_score_correction_bias 0.01 N(0,1); all stored F32.",
            "The reference computes in float64 from the float32 values stored in init.safetensors.",
            "Balance loss f_i uses the actual routed set (bias and group limit included); n = T for every MoE "
            "layer incl. the MTP block, which runs over all T positions.",
            "mtp_loss is the unweighted sum over k of L_mtp_k; balance_loss the unweighted sum over MoE layers.",
            "Routing margins: K-th minus (K+1)-th eligible s+b, and topk_group-th minus next group score "
            "(sum of the group's top-2 s+b), minimum over every token and MoE layer of the step.",
            "grad_norm is before clipping; clipped gradient = g * clip/(norm+1e-6) when norm > clip.",
            "Bias update uses the counts of the step's own forward (before that step's AdamW update); "
            "expert_counts are those c_i.",
        ],
    }
    with open(os.path.join(out, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    print(f"wrote {out} ({total} bytes), seed {pay['seed']}, min margin {pay['min_margin']:.3g}, "
          f"clip {hp['clip']} triggered at {case['clip_triggered_steps']}")
    for r in res["records"]:
        print(f"  step {r['step']}: lr {r['lr']:.6g} loss {r['loss']!r} main {r['main_loss']!r} "
              f"mtp {r['mtp_loss']!r} bal {r['balance_loss']!r} |g| {r['grad_norm']!r} maxvio {r['maxvio']}")


if __name__ == "__main__":
    main()
