#!/usr/bin/python3
"""Generate tern's golden fixtures: tiny random checkpoints of every supported architecture plus the
float64 reference outputs of deepseek_ref.py.

    /usr/bin/python3 tests/reference/make_golden.py --out tests/golden [--only v3_tiny,...] [--skip-selftest]

Owns: fixture configs, deterministic weight generation, checkpoint writing (HF safetensors and GGUF),
self-checks of the reference (codecs, RoPE tables, naive vs absorbed MLA, RoPE layouts), case.json.
Every reference output is computed from the weights as READ BACK from the written files, so what the C++
loader sees is exactly what the reference used. numpy only (torch, if present, is used for one cross-check).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import deepseek_ref as R  # noqa: E402
import tensor_io as io  # noqa: E402

MARGIN_THRESHOLD = 2e-3  # minimum gap of every routing decision (scores are in [0,1] + bias)

# =============================================================================================
# Self-checks
# =============================================================================================


def selftest():
    rng = np.random.default_rng(0)
    # --- BF16: against torch's RNE conversion when available; always against hand cases
    x = np.concatenate([rng.standard_normal(20000) * 10.0 ** rng.integers(-30, 30, 20000),
                        [0.0, -0.0, 1.0, 1.00390625, 1.005859375, 1.01171875, 3.4e38, -1e-40, np.inf, -np.inf]])
    x = x.astype(np.float32)
    enc = io.bf16_encode(x)
    assert enc[-7] == 0x3F80, "tie 1+2^-8 rounds to even (1.0)"
    assert enc[-6] == 0x3F81, "1+1.5*2^-8 rounds up"
    assert enc[-5] == 0x3F82, "tie 1+3*2^-8 rounds to even (1+2^-6)"
    try:
        import torch
        ref = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        assert np.array_equal(ref, enc), "bf16 encoder disagrees with torch"
        torch_checked = True
    except ImportError:
        torch_checked = False
    allbits = np.arange(65536, dtype=np.uint32).astype(np.uint16)
    dec = io.bf16_decode(allbits)
    fin = np.isfinite(dec)
    assert np.array_equal(io.bf16_encode(dec[fin]), allbits[fin]), "bf16 round trip"
    # --- FP8 E4M3FN: every code round-trips; ties go to even; saturation; special values
    codes = np.arange(256, dtype=np.uint8)
    vals = io.fp8_e4m3_decode(codes)
    ok = ~np.isnan(vals)
    assert np.isnan(vals[0x7F]) and np.isnan(vals[0xFF]) and ok.sum() == 254
    assert np.array_equal(io.fp8_e4m3_encode(vals[ok]), codes[ok]), "fp8 round trip"
    assert vals[0x7E] == 448.0 and vals[0x01] == 2.0 ** -9 and vals[0x08] == 2.0 ** -6 and vals[0x38] == 1.0
    pos = np.sort(vals[(codes < 0x7F)])
    mids = (pos[:-1] + pos[1:]) / 2
    got = io.fp8_e4m3_encode(mids)
    want = np.where(np.arange(len(mids)) % 2 == 0, np.arange(len(mids)), np.arange(1, len(mids) + 1))
    assert np.array_equal(got, want.astype(np.uint8)), "fp8 ties to even"
    assert io.fp8_e4m3_encode(np.array([1e9, -500.0, 449.0]))[0] == 0x7E
    assert io.fp8_e4m3_encode(np.array([-500.0]))[0] == 0xFE
    assert io.fp8_e4m3_encode(np.array([2.0 ** -10]))[0] == 0x00  # tie between 0 and 2^-9 -> even (0)
    assert io.fp8_e4m3_encode(np.array([1.0625]))[0] == 0x38 and io.fp8_e4m3_encode(np.array([1.1875]))[0] == 0x3A
    w = rng.standard_normal((300, 200)) * np.exp(rng.standard_normal((300, 1)))
    q, s = io.fp8_block_quantize(w)
    assert s.shape == (3, 2)
    wd = io.fp8_block_dequantize(q, s)
    rel = np.abs(wd - w) / np.repeat(np.repeat(s.astype(np.float64), 128, 0), 128, 1)[:300, :200]
    assert rel.max() <= 16.0 + 1e-9, "fp8 block error must be <= half an ulp at 448 (=16) in scaled units"
    # --- GGUF quantisers
    v = rng.standard_normal((4, 64)).astype(np.float32)
    d8 = io.dequantize_q8_0(io.quantize_q8_0(v), v.size).reshape(v.shape)
    d4 = io.dequantize_q4_0(io.quantize_q4_0(v), v.size).reshape(v.shape)
    amax = np.abs(v.reshape(-1, 32)).max(1).repeat(32).reshape(v.shape)
    assert np.all(np.abs(d8 - v) <= amax / 127 * 0.51 + 1e-3 * amax / 127)
    assert np.all(np.abs(d4 - v) <= amax / 8 * 0.51 + 1e-3 * amax / 8)
    # --- RoPE tables against the spec's reference values (§5.2, §5.3, §11.2)
    v3 = {"qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "rope_theta": 10000,
          "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                           "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0}}
    inv, mult, scale = R.deepseek_rope_params(v3)
    want = {0: 1.0, 1: 0.74989421, 10: 0.0562341325, 11: 0.0390069266, 12: 0.0268793601,
            22: 1.77827941e-4, 23: 3.33380358e-5, 31: 3.33380358e-6}
    for i, wv in want.items():
        assert abs(inv[i] / wv - 1) < 1e-8, (i, inv[i], wv)
    assert mult == 1.0 and abs(scale - 0.1352337789) < 1e-10
    v3["rope_scaling"].update(mscale=0.707, mscale_all_dim=0.707)
    assert abs(R.deepseek_rope_params(v3)[2] - 0.1147213868) < 1e-10
    ll = {"rope_theta": 500000, "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    li = R.dense_inv_freq(ll, 128)
    for i, wv in {0: 1.0, 20: 0.0165604401, 40: 3.4281022e-5, 63: 3.0689260e-7}.items():
        assert abs(li[i] / wv - 1) < 1e-7, (i, li[i], wv)
    # --- interleaved RoPE == half rotation after the §5.4 permutation (single vector)
    xv = rng.standard_normal((5, 3, 16))
    perm = np.concatenate([np.arange(0, 16, 2), np.arange(1, 16, 2)])
    a = R.rope_interleaved(xv, np.arange(5), inv[:8], 0.9)
    b = R.rope_half(xv[..., perm], np.arange(5), inv[:8], 0.9)
    assert np.allclose(a[..., perm], b, atol=1e-14)
    print(f"selftest ok (bf16 vs torch: {'checked' if torch_checked else 'torch missing, skipped'})")


# =============================================================================================
# Weight generation
# =============================================================================================


class Gen:
    """Deterministic weight generator: linear weights ~ N(0, 1/fan_in), norms ~ U(0.6, 1.4)."""

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def lin(self, out, inp, gain=1.0):
        return self.rng.standard_normal((out, inp)) * (gain / math.sqrt(inp))

    def norm(self, n):
        return self.rng.uniform(0.6, 1.4, n)

    def emb(self, v, d):
        return self.rng.standard_normal((v, d))

    def vec(self, n, scale):
        return self.rng.standard_normal(n) * scale


def deepseek_weights(cfg, seed):
    """All tensors of a DeepSeek-V2/V3 checkpoint (§12.1) as float64 'intended' values."""
    g = Gen(seed)
    d, V, H = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv = cfg.get("q_lora_rank"), cfg["kv_lora_rank"]
    f, fm, E = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    Es = cfg.get("n_shared_experts") or 0
    W = {"model.embed_tokens.weight": g.emb(V, d)}
    n_mtp = cfg.get("num_nextn_predict_layers", 0) if cfg["model_type"] == "deepseek_v3" else 0
    for layer in range(cfg["num_hidden_layers"] + n_mtp):
        p = f"model.layers.{layer}."
        if layer >= cfg["num_hidden_layers"]:  # MTP extras (§8.1): own embedding and head, not copies
            W[p + "embed_tokens.weight"] = g.emb(V, d)
            W[p + "enorm.weight"] = g.norm(d)
            W[p + "hnorm.weight"] = g.norm(d)
            W[p + "eh_proj.weight"] = g.lin(d, 2 * d)
            W[p + "shared_head.norm.weight"] = g.norm(d)
            W[p + "shared_head.head.weight"] = g.lin(V, d)
        W[p + "input_layernorm.weight"] = g.norm(d)
        W[p + "post_attention_layernorm.weight"] = g.norm(d)
        a = p + "self_attn."
        if rq:
            W[a + "q_a_proj.weight"] = g.lin(rq, d)
            W[a + "q_a_layernorm.weight"] = g.norm(rq)
            W[a + "q_b_proj.weight"] = g.lin(H * (dn + dr), rq)
        else:
            W[a + "q_proj.weight"] = g.lin(H * (dn + dr), d)
        W[a + "kv_a_proj_with_mqa.weight"] = g.lin(rkv + dr, d)
        W[a + "kv_a_layernorm.weight"] = g.norm(rkv)
        W[a + "kv_b_proj.weight"] = g.lin(H * (dn + dv), rkv)
        W[a + "o_proj.weight"] = g.lin(d, H * dv)
        m = p + "mlp."
        if R.is_moe_layer(cfg, layer):
            W[m + "gate.weight"] = g.lin(E, d, gain=1.5)
            if cfg.get("topk_method") == "noaux_tc":
                W[m + "gate.e_score_correction_bias"] = g.vec(E, 0.08)
            for e in range(E):
                pe = f"{m}experts.{e}."
                W[pe + "gate_proj.weight"] = g.lin(fm, d)
                W[pe + "up_proj.weight"] = g.lin(fm, d)
                W[pe + "down_proj.weight"] = g.lin(d, fm)
            if Es:
                W[m + "shared_experts.gate_proj.weight"] = g.lin(Es * fm, d)
                W[m + "shared_experts.up_proj.weight"] = g.lin(Es * fm, d)
                W[m + "shared_experts.down_proj.weight"] = g.lin(d, Es * fm)
        else:
            W[m + "gate_proj.weight"] = g.lin(f, d)
            W[m + "up_proj.weight"] = g.lin(f, d)
            W[m + "down_proj.weight"] = g.lin(d, f)
    W["model.norm.weight"] = g.norm(d)
    W["lm_head.weight"] = g.lin(V, d)
    return W


def dense_weights(cfg, seed):
    """Qwen2 / Llama tensors (§11) as float64 values."""
    g = Gen(seed)
    d, V, H, Hkv = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // H
    f = cfg["intermediate_size"]
    qwen = cfg["model_type"] == "qwen2"
    # tied: the embedding doubles as the head, so give it the head's N(0, 1/d) scale
    W = {"model.embed_tokens.weight": g.emb(V, d) / (math.sqrt(d) if cfg.get("tie_word_embeddings") else 1.0)}
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        W[p + "input_layernorm.weight"] = g.norm(d)
        W[p + "post_attention_layernorm.weight"] = g.norm(d)
        a = p + "self_attn."
        W[a + "q_proj.weight"] = g.lin(H * hd, d)
        W[a + "k_proj.weight"] = g.lin(Hkv * hd, d)
        W[a + "v_proj.weight"] = g.lin(Hkv * hd, d)
        if qwen:
            W[a + "q_proj.bias"] = g.vec(H * hd, 0.5)
            W[a + "k_proj.bias"] = g.vec(Hkv * hd, 0.5)
            W[a + "v_proj.bias"] = g.vec(Hkv * hd, 0.5)
        W[a + "o_proj.weight"] = g.lin(d, H * hd)
        W[p + "mlp.gate_proj.weight"] = g.lin(f, d)
        W[p + "mlp.up_proj.weight"] = g.lin(f, d)
        W[p + "mlp.down_proj.weight"] = g.lin(d, f)
    W["model.norm.weight"] = g.norm(d)
    if not cfg.get("tie_word_embeddings"):
        W["lm_head.weight"] = g.lin(V, d)
    return W


FP8_LINEAR_SUFFIXES = ("q_a_proj.weight", "q_b_proj.weight", "q_proj.weight", "kv_a_proj_with_mqa.weight",
                       "kv_b_proj.weight", "o_proj.weight", "gate_proj.weight", "up_proj.weight",
                       "down_proj.weight")


def to_storage(W, scheme, block=(128, 128)):
    """float64 values -> safetensors storage {name: (dtype, array)} for a dtype scheme:
    'f32' everything F32; 'bf16' everything BF16 except e_score_correction_bias (F32);
    'fp8' like bf16 but every Linear of attention / dense MLP / experts / shared experts stored as F8_E4M3
    with an F32 `<name>_scale_inv` (§10.1). eh_proj stays BF16 (believed BF16 in the release, §8.1)."""
    out = {}
    for name, x in W.items():
        if scheme == "f32" or name.endswith("e_score_correction_bias"):
            out[name] = ("F32", io.encode_for_storage("F32", x))
        elif scheme == "bf16" or (scheme == "fp8" and not name.endswith(FP8_LINEAR_SUFFIXES)):
            out[name] = ("BF16", io.encode_for_storage("BF16", x))
        elif scheme == "fp8":
            q, s = io.fp8_block_quantize(x, block)
            out[name] = ("F8_E4M3", q)
            out[name + "_scale_inv"] = ("F32", s)
        else:
            raise ValueError(scheme)
    return out


def write_hf_checkpoint(out_dir, cfg, storage, shards=None):
    """config.json + model.safetensors, or shards + model.safetensors.index.json.
    shards: list of predicates name -> bool, one per file (first match wins)."""
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    if not shards:
        io.write_safetensors(os.path.join(out_dir, "model.safetensors"), storage)
        return ["config.json", "model.safetensors"]
    n = len(shards)
    files = [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    parts = [dict() for _ in range(n)]
    for name, v in storage.items():
        i = next(i for i, pred in enumerate(shards) if pred(name))
        parts[i][name] = v
    total = 0
    wm = {}
    for fname, part in zip(files, parts):
        total += io.write_safetensors(os.path.join(out_dir, fname), part)
        wm.update({k: fname for k in part})
    with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(wm.items()))}, f, indent=2)
        f.write("\n")
    return ["config.json", "model.safetensors.index.json"] + files


# =============================================================================================
# Configs (HF config.json with every field of the real configs, spec §2.2-§2.4, tiny dims)
# =============================================================================================


def v3_config(**kw):
    c = {
        "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
        "attention_bias": False, "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001, "seq_aux": True, "ep_size": 1,
        "bos_token_id": 0, "eos_token_id": 1,
        "first_k_dense_replace": 1, "moe_layer_freq": 1,
        "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 128, "moe_intermediate_size": 32,
        "kv_lora_rank": 32, "q_lora_rank": 32,
        "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": 16,
        "max_position_embeddings": 32,
        "n_group": 4, "topk_group": 2, "n_routed_experts": 8, "n_shared_experts": 1,
        "num_experts_per_tok": 2, "norm_topk_prob": True, "routed_scaling_factor": 2.5,
        "scoring_func": "sigmoid", "topk_method": "noaux_tc",
        "num_attention_heads": 4, "num_key_value_heads": 4,
        "num_hidden_layers": 3, "num_nextn_predict_layers": 1,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-06,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 0.9, "mscale_all_dim": 0.8},
        "rope_theta": 10000,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16", "use_cache": True,
        "vocab_size": 256,
    }
    c.update(kw)
    return c


def v2_config(**kw):
    c = {
        "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
        "attention_bias": False, "attention_dropout": 0.0,
        "aux_loss_alpha": 0.001, "seq_aux": True,
        "bos_token_id": 0, "eos_token_id": 1,
        "first_k_dense_replace": 1, "moe_layer_freq": 1,
        "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 128, "moe_intermediate_size": 32,
        "kv_lora_rank": 32, "q_lora_rank": None,
        "qk_nope_head_dim": 16, "qk_rope_head_dim": 16, "v_head_dim": 24,
        "max_position_embeddings": 512,
        "n_group": 1, "topk_group": 1, "n_routed_experts": 8, "n_shared_experts": 2,
        "num_experts_per_tok": 3, "norm_topk_prob": False, "routed_scaling_factor": 1.5,
        "scoring_func": "softmax", "topk_method": "greedy",
        "num_attention_heads": 4, "num_key_value_heads": 4, "num_hidden_layers": 2,
        "pretraining_tp": 1, "rms_norm_eps": 1e-06,
        "rope_scaling": {"type": "yarn", "factor": 8.0, "original_max_position_embeddings": 64,
                         "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
        "rope_theta": 10000, "tie_word_embeddings": False, "torch_dtype": "float32",
        "use_cache": True, "vocab_size": 200,
    }
    c.update(kw)
    return c


def qwen2_config(**kw):
    c = {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 1,
        "hidden_act": "silu", "hidden_size": 64, "initializer_range": 0.02,
        "intermediate_size": 96, "max_position_embeddings": 128, "max_window_layers": 2,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-06, "rope_theta": 10000, "sliding_window": 4096,
        "tie_word_embeddings": False, "torch_dtype": "bfloat16",
        "use_cache": True, "use_mrope": False, "use_sliding_window": False,
        "vocab_size": 256,
    }
    c.update(kw)
    return c


def llama3_config(**kw):
    c = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "attention_bias": False, "attention_dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 1,
        "head_dim": 32, "hidden_act": "silu", "hidden_size": 128, "initializer_range": 0.02,
        "intermediate_size": 128, "max_position_embeddings": 512, "mlp_bias": False,
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2,
        "pretraining_tp": 1, "rms_norm_eps": 1e-05,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
        "rope_theta": 500000.0,
        "tie_word_embeddings": True, "torch_dtype": "float32", "use_cache": True,
        "vocab_size": 256,
    }
    c.update(kw)
    return c


# =============================================================================================
# Routing bookkeeping
# =============================================================================================


def routing_stats(cfg, routings):
    """Minimum decision margins and coverage flags over every routed layer (main + MTP)."""
    G, Gk, K = cfg.get("n_group") or 1, cfg.get("topk_group") or 1, cfg["num_experts_per_tok"]
    k_m, g_m = math.inf, math.inf
    cov = {"group_limit_changes_selection": False}
    if cfg.get("topk_method") == "noaux_tc":
        cov["bias_changes_selection"] = False
    if cfg.get("topk_method") == "group_limited_greedy":
        cov["max_rule_differs_from_top2sum"] = False
    for r in routings:
        k_m, g_m = min(k_m, r["k_margin"]), min(g_m, r["g_margin"])
        chosen = [set(row) for row in r["idx"].tolist()]

        def differs(idx):
            return any(set(row) != c for row, c in zip(idx.tolist(), chosen))

        if G > 1:
            cov["group_limit_changes_selection"] |= differs(R.select_experts(r["sel"], G, Gk, K, None)[0])
        if "bias_changes_selection" in cov:
            cov["bias_changes_selection"] |= differs(R.select_experts(r["scores"], G, Gk, K, "top2sum")[0])
        if "max_rule_differs_from_top2sum" in cov:
            cov["max_rule_differs_from_top2sum"] |= differs(R.select_experts(r["sel"], G, Gk, K, "top2sum")[0])
    return k_m, g_m, cov


def routing_json(r):
    """idx sorted ascending per token, weights in the same order."""
    order = np.argsort(r["idx"], axis=-1)
    idx = np.take_along_axis(r["idx"], order, axis=-1)
    w = np.take_along_axis(r["weight"], order, axis=-1)
    return idx.tolist(), [[float(v) for v in row] for row in w]


# =============================================================================================
# Fixture drivers
# =============================================================================================


def fresh_dir(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.makedirs(path)


def run_deepseek(cfg, W, ids):
    main = R.deepseek_forward(cfg, W, ids)
    out = {"main": main, "routings": list(main["routing"].values())}
    if cfg["model_type"] == "deepseek_v3" and cfg.get("num_nextn_predict_layers", 0) >= 1:
        mtp = R.deepseek_mtp_forward(cfg, W, ids, main["hidden"])
        out["mtp"] = mtp
        out["routings"] += list(mtp["routing"].values())
    return out


def pick_ids(cfg, W, T, seed, need_cov=(), extra_cov=None):
    """Draw token ids until every routing decision has a margin >= MARGIN_THRESHOLD (so a correct f32
    engine cannot route differently) and the requested coverage flags hold. extra_cov(cfg, routings) ->
    dict of further flags, merged into the coverage dict (all of them must hold)."""
    V = cfg["vocab_size"]
    for attempt in range(5000):
        ids = np.random.default_rng([seed, attempt]).integers(0, V, T)
        res = run_deepseek(cfg, W, ids)
        if not res["routings"]:
            return ids, res, attempt, (math.inf, math.inf, {})
        k_m, g_m, cov = routing_stats(cfg, res["routings"])
        extra = extra_cov(cfg, res["routings"]) if extra_cov else {}
        cov.update(extra)
        if (min(k_m, g_m) >= MARGIN_THRESHOLD and all(cov[c] for c in need_cov)
                and all(extra.values())):
            return ids, res, attempt, (k_m, g_m, cov)
    raise RuntimeError(f"no id sequence met the routing margin after 5000 attempts (seed {seed})")


def deepseek_selfchecks(cfg, W, ids, res):
    """Naive vs absorbed MLA (§6.3) and interleaved vs permuted-half RoPE (§5.4) on the whole model."""
    ab = run_deepseek_impl(cfg, W, ids, impl="absorbed")
    Wp = R.permute_rope_rows(cfg, W)
    hf = run_deepseek_impl(cfg, Wp, ids, rope_style="half")
    out = {}
    for key, other in (("naive_vs_absorbed_max_abs_diff", ab), ("interleaved_vs_half_rope_max_abs_diff", hf)):
        diff = float(np.max(np.abs(other["main"]["logits"] - res["main"]["logits"])))
        if "mtp" in res:
            diff = max(diff, float(np.max(np.abs(other["mtp"]["logits"] - res["mtp"]["logits"]))))
        scale = float(np.max(np.abs(res["main"]["logits"])))
        assert diff <= 1e-12 * max(1.0, scale), f"{key}: {diff}"
        out[key] = diff
    return out


def run_deepseek_impl(cfg, W, ids, impl="naive", rope_style="interleaved"):
    main = R.deepseek_forward(cfg, W, ids, impl=impl, rope_style=rope_style)
    out = {"main": main}
    if cfg["model_type"] == "deepseek_v3" and cfg.get("num_nextn_predict_layers", 0) >= 1:
        out["mtp"] = R.deepseek_mtp_forward(cfg, W, ids, main["hidden"], impl=impl, rope_style=rope_style)
    return out


def write_outputs(out_dir, res):
    io.write_npy(os.path.join(out_dir, "logits.npy"), res["main"]["logits"])
    io.write_npy(os.path.join(out_dir, "hidden.npy"), res["main"]["hidden"])
    io.write_npy(os.path.join(out_dir, "layer_outputs.npy"), res["main"]["layers"])
    if "mtp" in res:
        io.write_npy(os.path.join(out_dir, "mtp_logits.npy"), res["mtp"]["logits"])


def write_case(out_dir, case):
    with open(os.path.join(out_dir, "case.json"), "w") as f:
        json.dump(case, f, indent=1)
        f.write("\n")


def deepseek_case(cfg, ids, res, files, attempt, stats, checks, notes, weights_dtype):
    rope = R.Rope(cfg)
    k_m, g_m, cov = stats
    case = {
        "ids": [int(i) for i in ids],
        "logits": "logits.npy",
        "logits_shape": list(res["main"]["logits"].shape),
    }
    if "mtp" in res:
        case["mtp_logits"] = "mtp_logits.npy"
        case["mtp_logits_shape"] = list(res["mtp"]["logits"].shape)
    case.update({
        "hidden": "hidden.npy",
        "hidden_note": "[T, hidden_size] main-model hidden state after model.norm (also the MTP input h_i)",
        "layer_outputs": "layer_outputs.npy",
        "layer_outputs_note": "[num_hidden_layers, T, hidden_size] residual stream after each main block",
        "files": files,
        "weights_dtype": weights_dtype,
        "softmax_scale": rope.softmax_scale,
        "rope_cos_sin_multiplier": rope.mult,
        "rope_inv_freq": [float(v) for v in rope.inv_freq],
        "rope_layout": "interleaved pairs (x[2i], x[2i+1]) on the raw weights (spec 5.4)",
    })
    routed = sorted(res["main"]["routing"].items()) + (sorted(res["mtp"]["routing"].items()) if "mtp" in res else [])
    if routed:
        first_layer, first = routed[0]
        idx, w = routing_json(first)
        case["router_layer"] = first_layer
        case["router_topk_idx"] = idx
        case["router_topk_weight"] = w
        case["router"] = {}
        for layer, r in routed:
            i2, w2 = routing_json(r)
            key = str(layer) + (" (mtp)" if layer >= cfg["num_hidden_layers"] else "")
            case["router"][key] = {"idx": i2, "weight": w2}
        case["router_note"] = ("idx: selected routed experts per token, ascending; weight: the final gating "
                               "weight of each (after norm_topk_prob and routed_scaling_factor)")
        case["router_min_margin"] = {"topk": k_m, "group": g_m if math.isfinite(g_m) else None,
                                     "threshold": MARGIN_THRESHOLD}
        case["coverage"] = cov
    case["ids_attempt"] = attempt
    case["selfcheck"] = checks
    case["notes"] = notes
    return case


def make_deepseek_fixture(root, name, cfg, scheme, seed, T, shards=None, need_cov=(), notes=""):
    out_dir = os.path.join(root, name)
    fresh_dir(out_dir)
    W0 = deepseek_weights(cfg, seed)
    if scheme == "fp8":  # uneven row gains so that the 128x128 blocks of one weight get different scales
        g = np.random.default_rng([seed, 8])
        for n in sorted(W0):
            if n.endswith(FP8_LINEAR_SUFFIXES):
                W0[n] = W0[n] * np.exp(0.5 * g.standard_normal((W0[n].shape[0], 1)))
    files = write_hf_checkpoint(out_dir, cfg, to_storage(W0, scheme), shards)
    W = io.load_hf_weights(out_dir)              # exactly what the files hold
    assert set(W) == set(W0)
    ids, res, attempt, stats = pick_ids(cfg, W, T, seed, need_cov)
    checks = deepseek_selfchecks(cfg, W, ids, res)
    write_outputs(out_dir, res)
    dtype_note = {"bf16": "BF16 (e_score_correction_bias F32)", "f32": "F32",
                  "fp8": "F8_E4M3 + F32 weight_scale_inv for Linear weights; BF16 embed/lm_head/norms/router/"
                         "eh_proj/MTP embed+head; F32 e_score_correction_bias"}[scheme]
    write_case(out_dir, deepseek_case(cfg, ids, res, files, attempt, stats, checks, notes, dtype_note))
    print(f"{name}: T={T} attempt={attempt} margins={stats[0]:.4g}/{stats[1]:.4g} cov={stats[2]} "
          f"checks={checks} |logits|max={np.abs(res['main']['logits']).max():.3f}")


def make_dense_fixture(root, name, cfg, scheme, seed, T, notes=""):
    out_dir = os.path.join(root, name)
    fresh_dir(out_dir)
    W0 = dense_weights(cfg, seed)
    files = write_hf_checkpoint(out_dir, cfg, to_storage(W0, scheme))
    W = io.load_hf_weights(out_dir)
    ids = np.random.default_rng([seed, 0]).integers(0, cfg["vocab_size"], T)
    res = {"main": R.dense_forward(cfg, W, ids)}
    write_outputs(out_dir, res)
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    inv = R.dense_inv_freq(cfg, hd)
    case = {
        "ids": [int(i) for i in ids], "logits": "logits.npy", "logits_shape": list(res["main"]["logits"].shape),
        "hidden": "hidden.npy", "hidden_note": "[T, hidden_size] hidden state after model.norm",
        "layer_outputs": "layer_outputs.npy",
        "layer_outputs_note": "[num_hidden_layers, T, hidden_size] residual stream after each block",
        "files": files, "weights_dtype": {"bf16": "BF16", "f32": "F32"}[scheme],
        "attention_scale": hd ** -0.5, "rope_inv_freq": [float(v) for v in inv],
        "rope_layout": "half rotation (x[i], x[i+hd/2]) on the HF weights (spec 11)",
        "notes": notes,
    }
    write_case(out_dir, case)
    print(f"{name}: T={T} |logits|max={np.abs(res['main']['logits']).max():.3f}")
    return inv


# =============================================================================================
# The fixtures
# =============================================================================================


def fx_v3_tiny(root):
    cfg = v3_config()
    L = cfg["num_hidden_layers"]

    def shard1(n):  # embed + layers 0..1 in the first shard; layer 2, MTP layer 3, norm, head in the second
        return n == "model.embed_tokens.weight" or any(n.startswith(f"model.layers.{i}.") for i in range(L - 1))

    make_deepseek_fixture(
        root, "v3_tiny", cfg, "bf16", seed=301, T=20, shards=[shard1, lambda n: True],
        need_cov=("group_limit_changes_selection", "bias_changes_selection"),
        notes=("DeepSeek-V3 path: q_lora MLA, YaRN (factor 4, orig 8, mscale 0.9 / mscale_all_dim 0.8 -> cos/sin "
               "multiplier != 1), 1 dense + 2 MoE layers, sigmoid noaux_tc routing with F32 "
               "e_score_correction_bias, group limit 4->2, norm_topk_prob, routed_scaling_factor 2.5, 1 shared "
               "expert, MTP layer 3 (own embed_tokens/shared_head.head, distinct from the main ones). MTP input "
               "h_i is the main hidden AFTER model.norm; no zeroing of the position-0 embedding. Two shards + "
               "index. Reference in float64 from the BF16 values."))


def fx_v2_lite_tiny(root):
    cfg = v2_config()
    make_deepseek_fixture(
        root, "v2_lite_tiny", cfg, "f32", seed=202, T=18,
        notes=("DeepSeek-V2-Lite path: q_lora_rank null (q_proj), v_head_dim 24 != qk_nope_head_dim 16, "
               "qk_rope_head_dim 16 (YaRN factor 8, orig 64 -> partially blended frequencies), mscale = "
               "mscale_all_dim = 0.707, softmax greedy top-3, norm_topk_prob false so routed_scaling_factor 1.5 "
               "is applied, 2 shared experts (one MLP of width 64). F32 weights, single file."))


def fx_v2_tiny(root):
    cfg = v2_config(hidden_size=64, q_lora_rank=24, kv_lora_rank=32, num_attention_heads=3,
                    num_key_value_heads=3, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16,
                    num_hidden_layers=3, intermediate_size=96, moe_intermediate_size=16,
                    n_routed_experts=8, n_group=4, topk_group=2, num_experts_per_tok=3, n_shared_experts=2,
                    topk_method="group_limited_greedy", norm_topk_prob=True, routed_scaling_factor=1.0,
                    rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
                                  "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
                    max_position_embeddings=128, vocab_size=160)
    make_deepseek_fixture(
        root, "v2_tiny", cfg, "f32", seed=203, T=16,
        need_cov=("group_limit_changes_selection", "max_rule_differs_from_top2sum"),
        notes=("DeepSeek-V2 (236B) path: q_lora MLA with 3 heads, softmax group_limited_greedy routing "
               "(group score = MAX of the group's scores, keep 2 of 4 groups, top-3; with the max rule the group "
               "limit can only matter when num_experts_per_tok > topk_group); the ids were chosen so "
               "that the max rule and the V3 top-2-sum rule route at least one token differently, and the group "
               "limit changes at least one selection. norm_topk_prob true with routed_scaling_factor 1.0 "
               "(unambiguous under both V2 scaling conventions). 1 dense + 2 MoE layers, F32."))


def fx_v3_fp8(root):
    cfg = v3_config(hidden_size=160, q_lora_rank=80, kv_lora_rank=64, num_attention_heads=4,
                    num_key_value_heads=4, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
                    num_hidden_layers=2, first_k_dense_replace=1, intermediate_size=288,
                    moe_intermediate_size=144, n_routed_experts=8, n_group=4, topk_group=2,
                    num_experts_per_tok=2, n_shared_experts=1, num_nextn_predict_layers=1,
                    max_position_embeddings=163840,
                    rope_scaling={"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                                  "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
                    quantization_config={"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                         "weight_block_size": [128, 128]},
                    vocab_size=128)
    make_deepseek_fixture(
        root, "v3_fp8", cfg, "fp8", seed=304, T=16,
        notes=("DeepSeek-V3 FP8 checkpoint format: every Linear weight of attention, dense MLP, routed and shared "
               "experts (main layers and MTP layer 2) is F8_E4M3 with an F32 weight_scale_inv of shape "
               "[ceil(M/128), ceil(N/128)] (partial edge blocks: 160, 80, 288, 144 are not multiples of 128; "
               "rows of each weight carry random gains so block scales differ). Reference logits use W = fp8 * scale_inv[m//128, n//128] in float64. Real V3 "
               "rope_scaling (factor 40, orig 4096, mscale 1/1) with qk_rope_head_dim 16 -> ramp low 2, high 6."))


def fx_qwen2_tiny(root):
    cfg = qwen2_config()
    make_dense_fixture(root, "qwen2_tiny", cfg, "bf16", seed=501, T=16,
                       notes=("Qwen2 / R1-Distill-Qwen path: GQA 4 query heads over 2 KV heads, head_dim 16, "
                              "q/k/v biases (no o bias), half-rotation RoPE theta 10000, untied lm_head, BF16."))


def fx_llama3_tiny(root):
    cfg = llama3_config()
    inv = make_dense_fixture(
        root, "llama3_tiny", cfg, "f32", seed=601, T=16,
        notes=("Llama-3 / R1-Distill-Llama path: GQA 4/2, head_dim 32, no biases, llama3 rope scaling "
               "(factor 8, low 1, high 4, orig 64, theta 5e5: all three frequency bands occur), half rotation on "
               "HF weights, rms_norm_eps 1e-5, tie_word_embeddings true (no lm_head tensor in the file), F32."))
    theta, hd = 500000.0, 32
    base = theta ** (-np.arange(0, hd, 2) / hd)
    wl = 2 * np.pi / base
    bands = (int(np.sum(wl < 16)), int(np.sum((wl >= 16) & (wl <= 64))), int(np.sum(wl > 64)))
    assert all(b > 0 for b in bands), bands
    assert np.allclose(inv[wl < 16], base[wl < 16]) and np.allclose(inv[wl > 64], base[wl > 64] / 8)


# ---------------------------------------------------------------------------------------------
# GGUF fixtures (spec §12.2)
# ---------------------------------------------------------------------------------------------

QWEN2_GGUF_TYPES = {
    "token_embd.weight": io.GGML_F16, "output_norm.weight": io.GGML_F32, "output.weight": io.GGML_Q8_0,
    "attn_norm.weight": io.GGML_F32, "ffn_norm.weight": io.GGML_F32,
    "attn_q.weight": io.GGML_Q8_0, "attn_k.weight": io.GGML_Q4_0, "attn_v.weight": io.GGML_Q8_0,
    "attn_q.bias": io.GGML_F32, "attn_k.bias": io.GGML_F32, "attn_v.bias": io.GGML_F32,
    "attn_output.weight": io.GGML_Q4_0,
    "ffn_gate.weight": io.GGML_Q8_0, "ffn_up.weight": io.GGML_Q4_0, "ffn_down.weight": io.GGML_Q8_0,
}

DS2_GGUF_TYPES = {
    "token_embd.weight": io.GGML_BF16, "output_norm.weight": io.GGML_F32, "output.weight": io.GGML_Q8_0,
    "attn_norm.weight": io.GGML_F32, "ffn_norm.weight": io.GGML_F32,
    "attn_q.weight": io.GGML_Q8_0, "attn_q_a.weight": io.GGML_Q8_0, "attn_q_a_norm.weight": io.GGML_F32,
    "attn_q_b.weight": io.GGML_Q4_0,
    "attn_kv_a_mqa.weight": io.GGML_Q4_0, "attn_kv_a_norm.weight": io.GGML_F32,
    "attn_k_b.weight": io.GGML_F16, "attn_v_b.weight": io.GGML_Q8_0, "attn_output.weight": io.GGML_Q4_0,
    "ffn_gate.weight": io.GGML_Q8_0, "ffn_up.weight": io.GGML_Q4_0, "ffn_down.weight": io.GGML_Q8_0,
    "ffn_gate_inp.weight": io.GGML_F32, "exp_probs_b.bias": io.GGML_F32,
    "ffn_gate_exps.weight": io.GGML_Q4_0, "ffn_up_exps.weight": io.GGML_Q8_0, "ffn_down_exps.weight": io.GGML_Q4_0,
    "ffn_gate_shexp.weight": io.GGML_F16, "ffn_up_shexp.weight": io.GGML_F16, "ffn_down_shexp.weight": io.GGML_Q8_0,
}

_QWEN2_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_DS2_LAYER_MAP = {
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_a_proj.weight": "attn_q_a.weight",
    "self_attn.q_a_layernorm.weight": "attn_q_a_norm.weight", "self_attn.q_b_proj.weight": "attn_q_b.weight",
    "self_attn.kv_a_proj_with_mqa.weight": "attn_kv_a_mqa.weight",
    "self_attn.kv_a_layernorm.weight": "attn_kv_a_norm.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight", "mlp.gate.weight": "ffn_gate_inp.weight",
    "mlp.gate.e_score_correction_bias": "exp_probs_b.bias",
    "mlp.shared_experts.gate_proj.weight": "ffn_gate_shexp.weight",
    "mlp.shared_experts.up_proj.weight": "ffn_up_shexp.weight",
    "mlp.shared_experts.down_proj.weight": "ffn_down_shexp.weight",
}
_GLOBAL_MAP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
               "lm_head.weight": "output.weight"}


def hf_to_gguf_tensors(cfg, W, layer_map):
    """HF-named float64 tensors -> GGUF-named float64 tensors (torch order). DeepSeek experts are stacked
    (e outermost) and kv_b_proj is split into attn_k_b [H, rkv, dn] / attn_v_b [H, dv, rkv] (§6.3, §12.2)
    unless layer_map maps it to the old single attn_kv_b."""
    out = {}
    for hf, gg in _GLOBAL_MAP.items():
        if hf in W:
            out[gg] = W[hf]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        for hf, gg in layer_map.items():
            if p + hf in W:
                out[f"blk.{layer}.{gg}"] = W[p + hf]
        if cfg["model_type"].startswith("deepseek"):
            if "self_attn.kv_b_proj.weight" not in layer_map:  # NEW layout; the OLD one maps attn_kv_b 1:1
                H, dn, dv = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["v_head_dim"]
                kvb = W[p + "self_attn.kv_b_proj.weight"].reshape(H, dn + dv, cfg["kv_lora_rank"])
                out[f"blk.{layer}.attn_k_b.weight"] = np.ascontiguousarray(kvb[:, :dn, :].transpose(0, 2, 1))
                out[f"blk.{layer}.attn_v_b.weight"] = np.ascontiguousarray(kvb[:, dn:, :])
            if R.is_moe_layer(cfg, layer):
                for proj, gg in (("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"),
                                 ("down_proj", "ffn_down_exps")):
                    out[f"blk.{layer}.{gg}.weight"] = np.stack(
                        [W[f"{p}mlp.experts.{e}.{proj}.weight"] for e in range(cfg["n_routed_experts"])])
    return out


def gguf_to_hf_tensors(cfg, T, layer_map):
    """Inverse of hf_to_gguf_tensors on the tensors read back from the file."""
    inv_global = {v: k for k, v in _GLOBAL_MAP.items()}
    inv_layer = {v: k for k, v in layer_map.items()}
    W = {}
    for name, x in T.items():
        if name in inv_global:
            W[inv_global[name]] = x
            continue
        _, layer, rest = name.split(".", 2)
        p = f"model.layers.{layer}."
        if rest in inv_layer:
            W[p + inv_layer[rest]] = x
        elif rest.endswith("_exps.weight"):
            proj = {"ffn_gate_exps.weight": "gate_proj", "ffn_up_exps.weight": "up_proj",
                    "ffn_down_exps.weight": "down_proj"}[rest]
            for e in range(x.shape[0]):
                W[f"{p}mlp.experts.{e}.{proj}.weight"] = x[e]
        elif rest == "attn_k_b.weight":
            vb = T[f"blk.{layer}.attn_v_b.weight"]
            kvb = np.concatenate([x.transpose(0, 2, 1), vb], axis=1)   # [H, dn+dv, rkv]
            W[p + "self_attn.kv_b_proj.weight"] = kvb.reshape(-1, kvb.shape[-1])
        elif rest == "attn_v_b.weight":
            pass
        else:
            raise KeyError(name)
    return W


def write_gguf(path, meta, tensors, types, alignment, write_alignment_key):
    w = io.GGUFWriter(alignment=alignment, write_alignment_key=write_alignment_key)
    for key, vt, val in meta:
        w.add(key, vt, val)
    for name in tensors:  # insertion order: globals first, then per layer
        short = name.split(".", 2)[-1] if name.startswith("blk.") else name
        w.add_tensor(name, types[short], tensors[name])
    w.write(path)
    return {name: io.GGML_NAME[types[name.split(".", 2)[-1] if name.startswith("blk.") else name]]
            for name in tensors}


def gguf_rewrite_check(path, meta, alignment, write_alignment_key):
    """Round trip: re-encode what read_gguf returns (metadata values with the writer's value types, the
    DEQUANTISED tensors re-quantised with their ggml types) and require the identical bytes. Holds because
    ggml's Q8_0 / Q4_0 quantisers are idempotent on their own output (the block's extreme value maps back
    to the same f16 scale) and F16 / BF16 / F32 decode exactly."""
    rmeta, rt = io.read_gguf(path)
    w = io.GGUFWriter(alignment=alignment, write_alignment_key=write_alignment_key)
    assert len(rmeta) == len(meta) + (1 if write_alignment_key else 0)
    for key, vt, _ in meta:
        w.add(key, vt, rmeta[key])
    for name, (gt, _, x) in rt.items():
        w.add_tensor(name, gt, x)
    with open(path, "rb") as f:
        assert w.to_bytes() == f.read(), f"{path}: GGUF read/re-encode round trip differs"
    return True


def ordered_gguf(tensors):
    g = [n for n in ("token_embd.weight",) if n in tensors]
    blk = sorted((n for n in tensors if n.startswith("blk.")), key=lambda n: (int(n.split(".")[1]), n))
    tail = [n for n in ("output_norm.weight", "output.weight") if n in tensors]
    return {n: tensors[n] for n in g + blk + tail}


def fx_qwen2_gguf(root):
    cfg = qwen2_config(torch_dtype="float32")
    out_dir = os.path.join(root, "qwen2_gguf")
    fresh_dir(out_dir)
    W0 = dense_weights(cfg, seed=701)
    G0 = ordered_gguf(hf_to_gguf_tensors(cfg, W0, _QWEN2_LAYER_MAP))
    U32, F32, STR = io.GV_U32, io.GV_F32, io.GV_STR
    meta = [
        ("general.architecture", STR, "qwen2"), ("general.name", STR, "tern qwen2 tiny"),
        ("qwen2.block_count", U32, cfg["num_hidden_layers"]),
        ("qwen2.context_length", U32, cfg["max_position_embeddings"]),
        ("qwen2.embedding_length", U32, cfg["hidden_size"]),
        ("qwen2.feed_forward_length", U32, cfg["intermediate_size"]),
        ("qwen2.attention.head_count", U32, cfg["num_attention_heads"]),
        ("qwen2.attention.head_count_kv", U32, cfg["num_key_value_heads"]),
        ("qwen2.rope.freq_base", F32, float(cfg["rope_theta"])),
        ("qwen2.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]),
        ("qwen2.vocab_size", U32, cfg["vocab_size"]),
    ]
    types = write_gguf(os.path.join(out_dir, "model.gguf"), meta, G0, QWEN2_GGUF_TYPES, 32, False)
    rmeta, rt = io.read_gguf(os.path.join(out_dir, "model.gguf"))
    assert rmeta["general.architecture"] == "qwen2" and list(rt) == list(G0)
    W = gguf_to_hf_tensors(cfg, {k: v[2] for k, v in rt.items()}, _QWEN2_LAYER_MAP)
    assert set(W) == set(W0)
    ids = np.random.default_rng([701, 0]).integers(0, cfg["vocab_size"], 14)
    res = {"main": R.dense_forward(cfg, W, ids)}
    write_outputs(out_dir, res)
    write_case(out_dir, {
        "ids": [int(i) for i in ids], "logits": "logits.npy", "logits_shape": list(res["main"]["logits"].shape),
        "hidden": "hidden.npy", "layer_outputs": "layer_outputs.npy", "files": ["model.gguf"],
        "gguf_tensor_types": types, "gguf_alignment": 32, "general_alignment_key_present": False,
        "equivalent_hf_config": cfg,
        "notes": ("GGUF v3, arch qwen2 (rope NEOX on unpermuted HF weights). Mixed Q8_0 / Q4_0 / F16 / F32 tensors; "
                  "logits computed in float64 from the DEQUANTISED GGUF values read back from the file. No "
                  "tokenizer metadata; qwen2.vocab_size given explicitly. Same math as qwen2_tiny."),
    })
    print(f"qwen2_gguf: T={len(ids)} |logits|max={np.abs(res['main']['logits']).max():.3f}")


def fx_deepseek2_gguf(root):
    cfg = v2_config(hidden_size=64, q_lora_rank=None, kv_lora_rank=64, num_attention_heads=4,
                    num_key_value_heads=4, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=32,
                    num_hidden_layers=2, intermediate_size=128, moe_intermediate_size=32,
                    n_routed_experts=8, n_group=1, topk_group=1, num_experts_per_tok=2, n_shared_experts=2,
                    topk_method="greedy", norm_topk_prob=False, routed_scaling_factor=1.5,
                    rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                                  "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
                    max_position_embeddings=256, vocab_size=256)
    out_dir = os.path.join(root, "deepseek2_gguf")
    fresh_dir(out_dir)
    W0 = deepseek_weights(cfg, seed=702)
    G0 = ordered_gguf(hf_to_gguf_tensors(cfg, W0, _DS2_LAYER_MAP))
    U32, F32, STR, BOOL = io.GV_U32, io.GV_F32, io.GV_STR, io.GV_BOOL
    rs = cfg["rope_scaling"]
    dn, dr, dv, rkv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    meta = [
        ("general.architecture", STR, "deepseek2"), ("general.name", STR, "tern deepseek2 tiny (V2-Lite style)"),
        ("deepseek2.block_count", U32, cfg["num_hidden_layers"]),
        ("deepseek2.context_length", U32, cfg["max_position_embeddings"]),
        ("deepseek2.embedding_length", U32, cfg["hidden_size"]),
        ("deepseek2.feed_forward_length", U32, cfg["intermediate_size"]),
        ("deepseek2.attention.head_count", U32, cfg["num_attention_heads"]),
        ("deepseek2.attention.head_count_kv", U32, 1),
        ("deepseek2.attention.key_length", U32, rkv + dr),
        ("deepseek2.attention.value_length", U32, rkv),
        ("deepseek2.attention.key_length_mla", U32, dn + dr),
        ("deepseek2.attention.value_length_mla", U32, dv),
        ("deepseek2.attention.kv_lora_rank", U32, rkv),
        ("deepseek2.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]),
        ("deepseek2.rope.freq_base", F32, float(cfg["rope_theta"])),
        ("deepseek2.rope.dimension_count", U32, dr),
        ("deepseek2.rope.scaling.type", STR, "yarn"),
        ("deepseek2.rope.scaling.factor", F32, rs["factor"]),
        ("deepseek2.rope.scaling.original_context_length", U32, rs["original_max_position_embeddings"]),
        ("deepseek2.rope.scaling.yarn_log_multiplier", F32, 0.1 * rs["mscale_all_dim"]),
        ("deepseek2.leading_dense_block_count", U32, cfg["first_k_dense_replace"]),
        ("deepseek2.vocab_size", U32, cfg["vocab_size"]),
        ("deepseek2.expert_count", U32, cfg["n_routed_experts"]),
        ("deepseek2.expert_used_count", U32, cfg["num_experts_per_tok"]),
        ("deepseek2.expert_shared_count", U32, cfg["n_shared_experts"]),
        ("deepseek2.expert_feed_forward_length", U32, cfg["moe_intermediate_size"]),
        ("deepseek2.expert_weights_scale", F32, cfg["routed_scaling_factor"]),
        ("deepseek2.expert_weights_norm", BOOL, cfg["norm_topk_prob"]),
        ("deepseek2.expert_gating_func", U32, 1),
        ("deepseek2.expert_group_count", U32, cfg["n_group"]),
        ("deepseek2.expert_group_used_count", U32, cfg["topk_group"]),
    ]
    types = write_gguf(os.path.join(out_dir, "model.gguf"), meta, G0, DS2_GGUF_TYPES, 64, True)
    rmeta, rt = io.read_gguf(os.path.join(out_dir, "model.gguf"))
    assert rmeta["general.alignment"] == 64 and list(rt) == list(G0)
    assert rt["blk.1.ffn_down_exps.weight"][1] == [cfg["moe_intermediate_size"], cfg["hidden_size"], 8]
    assert rt["blk.0.attn_k_b.weight"][1] == [dn, rkv, cfg["num_attention_heads"]]
    W = gguf_to_hf_tensors(cfg, {k: v[2] for k, v in rt.items()}, _DS2_LAYER_MAP)
    assert set(W) == set(W0), set(W) ^ set(W0)
    ids, res, attempt, stats = pick_ids(cfg, W, 16, 702)
    checks = deepseek_selfchecks(cfg, W, ids, res)
    write_outputs(out_dir, res)
    case = deepseek_case(
        cfg, ids, res, ["model.gguf"], attempt, stats, checks,
        ("GGUF v3, arch deepseek2, V2-Lite style (attn_q, no q_lora), NEW MLA layout: attn_k_b "
         "(ne {dn, rkv, H}) and attn_v_b (ne {rkv, dv, H}) instead of attn_kv_b, head_count_kv 1, key_length "
         "rkv+dr, value_length rkv, key_length_mla dn+dr, value_length_mla dv. Routed experts stacked in 3-D "
         "ffn_*_exps tensors (ne {in, out, E}). general.alignment = 64 (non-default, written explicitly). YaRN "
         "from rope.scaling.* with yarn_log_multiplier = 0.1*mscale_all_dim (mscale == mscale_all_dim, so the "
         "cos/sin multiplier is 1); beta_fast/beta_slow are not in GGUF, llama.cpp defaults 32/1 used. Softmax "
         "greedy top-2, expert_weights_norm false, expert_weights_scale 1.5 applied. Logits from the "
         "DEQUANTISED GGUF values read back from the file (kv_b_proj rebuilt from k_b/v_b)."),
        "GGUF mixed: see gguf_tensor_types")
    case["gguf_tensor_types"] = types
    case["gguf_alignment"] = 64
    case["general_alignment_key_present"] = True
    case["equivalent_hf_config"] = cfg
    write_case(out_dir, case)
    print(f"deepseek2_gguf: attempt={attempt} margins={stats[0]:.4g} checks={checks} "
          f"|logits|max={np.abs(res['main']['logits']).max():.3f}")



# ---------------------------------------------------------------------------------------------
# llama3_gguf: llama3_tiny as llama.cpp's convert_hf_to_gguf.py converts a HF Llama checkpoint
# ---------------------------------------------------------------------------------------------

LLAMA_GGUF_TYPES = {
    "rope_freqs.weight": io.GGML_F32, "token_embd.weight": io.GGML_Q8_0, "output_norm.weight": io.GGML_F32,
    "attn_norm.weight": io.GGML_F32, "ffn_norm.weight": io.GGML_F32,
    "attn_q.weight": io.GGML_Q8_0, "attn_k.weight": io.GGML_F16, "attn_v.weight": io.GGML_Q8_0,
    "attn_output.weight": io.GGML_Q8_0,
    "ffn_gate.weight": io.GGML_Q8_0, "ffn_up.weight": io.GGML_Q8_0, "ffn_down.weight": io.GGML_Q8_0,
}


def llama_permute(w, n_head):
    """llama.cpp LlamaModel.permute: HF half-rotation rows -> adjacent-pair (NORM) rows, per head.
    Row c*(hd/2)+i of a head moves to row 2i+c."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama_unpermute(w, n_head):
    """Inverse of llama_permute (GGUF NORM rows -> HF half-rotation rows)."""
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(cfg, hd):
    """convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors): per-frequency DIVISORS for llama3 rope
    scaling: 1 for wavelen < high_freq_wavelen, factor for wavelen > low_freq_wavelen, else
    1 / ((1 - smooth) / factor + smooth). Computed in float64 from rope_scaling.original_max_position_embeddings
    (see README: the converter reads that key from the top level of config.json, default 8192)."""
    rs = cfg["rope_scaling"]
    theta = float(cfg["rope_theta"])
    freqs = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    factor, lo_f, hi_f = float(rs["factor"]), float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    old = float(rs["original_max_position_embeddings"])
    lo_w, hi_w = old / lo_f, old / hi_f
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < hi_w:
            out.append(1.0)
        elif wavelen > lo_w:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo_f) / (hi_f - lo_f)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out)


def llama_hf_to_gguf(cfg, W, rope_factors):
    """HF Llama tensors -> GGUF tensors in convert_hf_to_gguf.py order (rope_freqs first, then the
    checkpoint's tensors); q/k un-permuted; tied embeddings -> no output.weight."""
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    G = {"rope_freqs.weight": rope_factors}
    G.update(hf_to_gguf_tensors(cfg, W, _QWEN2_LAYER_MAP))
    for layer in range(cfg["num_hidden_layers"]):
        G[f"blk.{layer}.attn_q.weight"] = llama_permute(G[f"blk.{layer}.attn_q.weight"], H)
        G[f"blk.{layer}.attn_k.weight"] = llama_permute(G[f"blk.{layer}.attn_k.weight"], Hkv)
    assert "output.weight" not in G
    order = ["rope_freqs.weight"] + list(ordered_gguf({k: v for k, v in G.items() if k != "rope_freqs.weight"}))
    return {k: G[k] for k in order}


def llama_gguf_meta(cfg):
    U32, F32, STR = io.GV_U32, io.GV_F32, io.GV_STR
    hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
    assert hd == cfg["hidden_size"] // cfg["num_attention_heads"]
    return [
        ("general.architecture", STR, "llama"), ("general.name", STR, "tern llama3 tiny"),
        ("llama.block_count", U32, cfg["num_hidden_layers"]),
        ("llama.context_length", U32, cfg["max_position_embeddings"]),
        ("llama.embedding_length", U32, cfg["hidden_size"]),
        ("llama.feed_forward_length", U32, cfg["intermediate_size"]),
        ("llama.attention.head_count", U32, cfg["num_attention_heads"]),
        ("llama.attention.head_count_kv", U32, cfg["num_key_value_heads"]),
        ("llama.rope.freq_base", F32, float(cfg["rope_theta"])),
        ("llama.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]),
        ("llama.rope.dimension_count", U32, hd),
        ("llama.vocab_size", U32, cfg["vocab_size"]),
    ]


def fx_llama3_gguf(root):
    cfg = llama3_config()
    out_dir = os.path.join(root, "llama3_gguf")
    fresh_dir(out_dir)
    H, Hkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    # exactly llama3_tiny's stored (F32) weights and ids
    W0 = {k: io.decode_storage("F32", io.encode_for_storage("F32", v)) for k, v in dense_weights(cfg, 601).items()}
    ids = np.random.default_rng([601, 0]).integers(0, cfg["vocab_size"], 16)
    factors = llama3_rope_factors(cfg, hd)
    G0 = llama_hf_to_gguf(cfg, W0, factors)
    meta = llama_gguf_meta(cfg)
    meta_d = {k: v for k, _, v in meta}
    # --- self-check: unquantised GGUF path (float64 rope_freqs) == HF path (llama3_tiny's math) to 1e-12
    hf = R.dense_forward(cfg, W0, ids)["logits"]
    scale = float(np.max(np.abs(hf)))

    def diff(T, inv=None):
        return float(np.max(np.abs(R.llama_gguf_forward(meta_d, T, ids, inv)["logits"] - hf)))

    checks = {"f32_gguf_path_vs_llama3_tiny_max_abs_diff": diff(G0)}
    assert checks["f32_gguf_path_vs_llama3_tiny_max_abs_diff"] <= 1e-12 * max(1.0, scale), checks
    assert np.allclose(R.llama_gguf_inv_freq(meta_d, G0), R.dense_inv_freq(cfg, hd), rtol=1e-14, atol=0)
    G32 = dict(G0, **{"rope_freqs.weight": factors.astype(np.float32).astype(np.float64)})
    checks["f32_gguf_path_f32_rope_freqs_vs_llama3_tiny_max_abs_diff"] = diff(G32)
    assert checks["f32_gguf_path_f32_rope_freqs_vs_llama3_tiny_max_abs_diff"] <= 1e-5
    # ... and the checks discriminate: skipping the un-permutation or multiplying by rope_freqs is wrong
    Gnp = dict(G0)
    for layer in range(cfg["num_hidden_layers"]):
        Gnp[f"blk.{layer}.attn_q.weight"] = W0[f"model.layers.{layer}.self_attn.q_proj.weight"]
        Gnp[f"blk.{layer}.attn_k.weight"] = W0[f"model.layers.{layer}.self_attn.k_proj.weight"]
    checks["norm_rope_on_hf_rows_max_abs_diff"] = diff(Gnp)
    base = float(cfg["rope_theta"]) ** (-np.arange(0, hd, 2) / hd)
    checks["rope_freqs_multiplied_max_abs_diff"] = diff(G0, base * factors)
    checks["no_rope_freqs_max_abs_diff"] = diff(G0, base)
    for k in ("norm_rope_on_hf_rows_max_abs_diff", "rope_freqs_multiplied_max_abs_diff", "no_rope_freqs_max_abs_diff"):
        assert checks[k] > 1e-2, (k, checks[k])
    # inverse permutation round trip
    assert all(np.array_equal(llama_unpermute(llama_permute(W0[n], h), h), W0[n])
               for n, h in (("model.layers.0.self_attn.q_proj.weight", H), ("model.layers.0.self_attn.k_proj.weight", Hkv)))
    # --- write, read back, reference from the DEQUANTISED file contents
    types = write_gguf(os.path.join(out_dir, "model.gguf"), meta, G0, LLAMA_GGUF_TYPES, 32, False)
    assert gguf_rewrite_check(os.path.join(out_dir, "model.gguf"), meta, 32, False)
    rmeta, rt = io.read_gguf(os.path.join(out_dir, "model.gguf"))
    assert list(rt) == list(G0) and "output.weight" not in rt
    for key, _, val in meta:
        got = rmeta[key]
        assert (got == val) if not isinstance(val, float) else got == float(np.float32(val)), (key, got, val)
    for name, (gt, ne, _) in rt.items():
        assert ne == list(reversed(G0[name].shape)) and io.GGML_NAME[gt] == types[name], name
    T = {k: v[2] for k, v in rt.items()}
    assert np.array_equal(T["rope_freqs.weight"], factors.astype(np.float32))
    for name, x in T.items():  # F32/F16 exact or within quantisation error
        err = float(np.max(np.abs(x - G0[name])))
        assert err <= {"F32": 1e-6, "F16": 1e-2, "Q8_0": 0.05}[types[name]] * max(1.0, np.abs(G0[name]).max()), (name, err)
    main = R.llama_gguf_forward(rmeta, T, ids)
    res = {"main": main}
    checks["quantised_vs_llama3_tiny_max_abs_diff"] = float(np.max(np.abs(main["logits"] - hf)))
    write_outputs(out_dir, res)
    inv = R.llama_gguf_inv_freq(rmeta, T)
    write_case(out_dir, {
        "ids": [int(i) for i in ids], "logits": "logits.npy", "logits_shape": list(main["logits"].shape),
        "hidden": "hidden.npy", "hidden_note": "[T, hidden_size] hidden state after output_norm",
        "layer_outputs": "layer_outputs.npy",
        "layer_outputs_note": "[block_count, T, embedding_length] residual stream after each block",
        "files": ["model.gguf"], "weights_dtype": "GGUF mixed: see gguf_tensor_types",
        "gguf_tensor_types": types, "gguf_alignment": 32, "general_alignment_key_present": False,
        "attention_scale": hd ** -0.5,
        "rope_freqs": [float(v) for v in T["rope_freqs.weight"]],
        "rope_inv_freq": [float(v) for v in inv],
        "rope_inv_freq_note": "freq_base^(-2i/n_rot) / rope_freqs[i] in float64 (rope_freqs are divisors)",
        "rope_layout": ("adjacent pairs (x[2i], x[2i+1]) on the un-permuted GGUF q/k weights "
                        "(llama.cpp rope type NORM); NOT half rotation"),
        "selfcheck": checks,
        "equivalent_hf_config": cfg,
        "notes": ("GGUF v3, arch llama: llama3_tiny (same weights, same ids) converted as convert_hf_to_gguf.py "
                  "does. attn_q / attn_k rows un-permuted from HF half-rotation to adjacent-pair layout "
                  "(permute(w, n_head, n_head_kv): k uses head_count_kv); llama3 rope scaling stored only as the "
                  "F32 tensor rope_freqs.weight [head_dim/2] of per-frequency DIVISORS (factor 8 for low "
                  "frequencies, 1 for high, 1/((1-smooth)/factor+smooth) between) so inv_freq_scaled = "
                  "inv_freq / rope_freqs; no rope.scaling.* keys. Tied embeddings: no output.weight, the head is "
                  "token_embd (Q8_0). Tensor order: rope_freqs first. Logits computed in float64 from the "
                  "DEQUANTISED tensors with NORM RoPE on the GGUF rows, independently of the HF path; with "
                  "unquantised weights that path equals llama3_tiny to 1e-12 (selfcheck)."),
    })
    print(f"llama3_gguf: T={len(ids)} checks={checks} |logits|max={np.abs(main['logits']).max():.3f}")


# ---------------------------------------------------------------------------------------------
# deepseek3_gguf: V3-style (sigmoid, noaux_tc) deepseek2 GGUF in the OLD kv layout (single attn_kv_b)
# ---------------------------------------------------------------------------------------------

DS3_GGUF_TYPES = {
    "token_embd.weight": io.GGML_BF16, "output_norm.weight": io.GGML_F32, "output.weight": io.GGML_Q8_0,
    "attn_norm.weight": io.GGML_F32, "ffn_norm.weight": io.GGML_F32,
    "attn_q_a.weight": io.GGML_Q8_0, "attn_q_a_norm.weight": io.GGML_F32, "attn_q_b.weight": io.GGML_Q4_0,
    "attn_kv_a_mqa.weight": io.GGML_Q8_0, "attn_kv_a_norm.weight": io.GGML_F32,
    "attn_kv_b.weight": io.GGML_Q8_0, "attn_output.weight": io.GGML_Q4_0,
    "ffn_gate.weight": io.GGML_Q4_0, "ffn_up.weight": io.GGML_Q8_0, "ffn_down.weight": io.GGML_Q4_0,
    "ffn_gate_inp.weight": io.GGML_F32, "exp_probs_b.bias": io.GGML_F32,
    "ffn_gate_exps.weight": io.GGML_Q8_0, "ffn_up_exps.weight": io.GGML_Q4_0, "ffn_down_exps.weight": io.GGML_Q4_0,
    "ffn_gate_shexp.weight": io.GGML_Q4_0, "ffn_up_shexp.weight": io.GGML_BF16, "ffn_down_shexp.weight": io.GGML_Q8_0,
}

_DS3_OLD_LAYER_MAP = dict(_DS2_LAYER_MAP, **{"self_attn.kv_b_proj.weight": "attn_kv_b.weight"})


def gguf_layer_map(arch, names):
    """The HF<->GGUF per-layer name map for a GGUF's tensor names (qwen2 / llama / both deepseek2 layouts)."""
    if arch in ("qwen2", "llama"):
        return _QWEN2_LAYER_MAP
    return _DS3_OLD_LAYER_MAP if any(n.endswith(".attn_kv_b.weight") for n in names) else _DS2_LAYER_MAP


def group_rule_coverage(cfg, routings):
    """noaux_tc: the top-2-sum group rule selects differently from the max rule and from the sum over the
    whole group for at least one token (so an engine using either wrong rule fails)."""
    G, Gk, K = cfg["n_group"], cfg["topk_group"], cfg["num_experts_per_tok"]
    out = {"top2sum_differs_from_max_rule": False, "top2sum_differs_from_groupsum_rule": False}
    for r in routings:
        chosen = [set(row) for row in r["idx"].tolist()]
        mx = R.select_experts(r["sel"], G, Gk, K, "max")[0]
        out["top2sum_differs_from_max_rule"] |= any(set(a) != c for a, c in zip(mx.tolist(), chosen))
        T, E = r["sel"].shape
        gs = r["sel"].reshape(T, G, E // G).sum(-1)
        keep = np.zeros((T, G), dtype=bool)
        np.put_along_axis(keep, np.argsort(-gs, axis=-1, kind="stable")[:, :Gk], True, axis=-1)
        masked = np.where(np.repeat(keep, E // G, axis=-1), r["sel"], -np.inf)
        alls = np.argsort(-masked, axis=-1, kind="stable")[:, :K]
        out["top2sum_differs_from_groupsum_rule"] |= any(set(a) != c for a, c in zip(alls.tolist(), chosen))
    return out


def fx_deepseek3_gguf(root):
    cfg = v3_config(hidden_size=64, q_lora_rank=32, kv_lora_rank=32, num_attention_heads=4,
                    num_key_value_heads=4, qk_nope_head_dim=32, qk_rope_head_dim=16, v_head_dim=16,
                    num_hidden_layers=3, first_k_dense_replace=1, intermediate_size=128,
                    moe_intermediate_size=32, n_routed_experts=16, n_group=4, topk_group=2,
                    num_experts_per_tok=3, n_shared_experts=1, num_nextn_predict_layers=0,
                    norm_topk_prob=True, routed_scaling_factor=2.5,
                    rope_scaling={"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64,
                                  "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
                    max_position_embeddings=256, vocab_size=128)
    out_dir = os.path.join(root, "deepseek3_gguf")
    fresh_dir(out_dir)
    W0 = deepseek_weights(cfg, seed=703)
    G0 = ordered_gguf(hf_to_gguf_tensors(cfg, W0, _DS3_OLD_LAYER_MAP))
    assert not any(n.endswith(("attn_k_b.weight", "attn_v_b.weight")) for n in G0)
    U32, F32, STR, BOOL = io.GV_U32, io.GV_F32, io.GV_STR, io.GV_BOOL
    rs = cfg["rope_scaling"]
    assert rs["mscale"] == rs["mscale_all_dim"]
    H, dn, dr, dv = cfg["num_attention_heads"], cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    meta = [
        ("general.architecture", STR, "deepseek2"), ("general.name", STR, "tern deepseek3 tiny (V3 style, old kv_b)"),
        ("deepseek2.block_count", U32, cfg["num_hidden_layers"]),
        ("deepseek2.context_length", U32, cfg["max_position_embeddings"]),
        ("deepseek2.embedding_length", U32, cfg["hidden_size"]),
        ("deepseek2.feed_forward_length", U32, cfg["intermediate_size"]),
        ("deepseek2.attention.head_count", U32, H),
        ("deepseek2.attention.head_count_kv", U32, H),
        ("deepseek2.attention.key_length", U32, dn + dr),
        ("deepseek2.attention.value_length", U32, dv),
        ("deepseek2.attention.q_lora_rank", U32, cfg["q_lora_rank"]),
        ("deepseek2.attention.kv_lora_rank", U32, cfg["kv_lora_rank"]),
        ("deepseek2.attention.layer_norm_rms_epsilon", F32, cfg["rms_norm_eps"]),
        ("deepseek2.rope.freq_base", F32, float(cfg["rope_theta"])),
        ("deepseek2.rope.dimension_count", U32, dr),
        ("deepseek2.rope.scaling.type", STR, "yarn"),
        ("deepseek2.rope.scaling.factor", F32, rs["factor"]),
        ("deepseek2.rope.scaling.original_context_length", U32, rs["original_max_position_embeddings"]),
        ("deepseek2.rope.scaling.yarn_log_multiplier", F32, 0.1 * rs["mscale_all_dim"]),
        ("deepseek2.leading_dense_block_count", U32, cfg["first_k_dense_replace"]),
        ("deepseek2.vocab_size", U32, cfg["vocab_size"]),
        ("deepseek2.expert_count", U32, cfg["n_routed_experts"]),
        ("deepseek2.expert_used_count", U32, cfg["num_experts_per_tok"]),
        ("deepseek2.expert_shared_count", U32, cfg["n_shared_experts"]),
        ("deepseek2.expert_feed_forward_length", U32, cfg["moe_intermediate_size"]),
        ("deepseek2.expert_weights_scale", F32, cfg["routed_scaling_factor"]),
        ("deepseek2.expert_weights_norm", BOOL, cfg["norm_topk_prob"]),
        ("deepseek2.expert_gating_func", U32, 2),
        ("deepseek2.expert_group_count", U32, cfg["n_group"]),
        ("deepseek2.expert_group_used_count", U32, cfg["topk_group"]),
    ]
    types = write_gguf(os.path.join(out_dir, "model.gguf"), meta, G0, DS3_GGUF_TYPES, 32, False)
    assert gguf_rewrite_check(os.path.join(out_dir, "model.gguf"), meta, 32, False)
    rmeta, rt = io.read_gguf(os.path.join(out_dir, "model.gguf"))
    assert "general.alignment" not in rmeta and list(rt) == list(G0)
    for key, _, val in meta:
        got = rmeta[key]
        assert (got == val) if not isinstance(val, float) else got == float(np.float32(val)), (key, got, val)
    for name, (gt, ne, _) in rt.items():
        assert ne == list(reversed(G0[name].shape)) and io.GGML_NAME[gt] == types[name], name
    E, fm, d, rkv = cfg["n_routed_experts"], cfg["moe_intermediate_size"], cfg["hidden_size"], cfg["kv_lora_rank"]
    assert rt["blk.1.ffn_down_exps.weight"][1] == [fm, d, E] and rt["blk.2.ffn_gate_exps.weight"][1] == [d, fm, E]
    assert rt["blk.0.attn_kv_b.weight"][1] == [rkv, H * (dn + dv)]
    assert rt["blk.1.exp_probs_b.bias"][1] == [E] and "blk.0.exp_probs_b.bias" not in rt
    W = gguf_to_hf_tensors(cfg, {k: v[2] for k, v in rt.items()}, gguf_layer_map("deepseek2", rt))
    assert set(W) == set(W0), set(W) ^ set(W0)
    ids, res, attempt, stats = pick_ids(cfg, W, 16, 703,
                                        need_cov=("group_limit_changes_selection", "bias_changes_selection"),
                                        extra_cov=group_rule_coverage)
    checks = deepseek_selfchecks(cfg, W, ids, res)
    write_outputs(out_dir, res)
    case = deepseek_case(
        cfg, ids, res, ["model.gguf"], attempt, stats, checks,
        ("GGUF v3, arch deepseek2, V3 style: q_lora (attn_q_a, attn_q_a_norm, attn_q_b; attention.q_lora_rank), "
         "OLD kv layout: one attn_kv_b.weight (ne {rkv, H*(dn+dv)}, rows per head [dn K rows ; dv V rows], "
         "exactly HF kv_b_proj) with head_count_kv = H, key_length = dn+dr, value_length = dv and no "
         "*_mla keys (an engine must split kv_b itself; dn 32 != dv 16). Sigmoid gating "
         "(expert_gating_func 2) with exp_probs_b.bias (e_score_correction_bias, F32) added for selection "
         "only; group limit expert_group_count 4 / expert_group_used_count 2 with group score = sum of the "
         "top-2 BIASED scores in each group (4 experts per group; ids chosen so that the max rule and the "
         "whole-group-sum rule each route some token differently, see coverage); top-3; expert_weights_norm "
         "true then expert_weights_scale 2.5 (V3 rule: always scaled). leading_dense_block_count 1 (layer 0 "
         "dense ffn_*, layers 1-2 MoE), routed experts stacked in 3-D ffn_*_exps (ne {in, out, E}), 1 shared "
         "expert ffn_*_shexp. YaRN factor 4, orig 64, mscale == mscale_all_dim == 1.0 stored as "
         "yarn_log_multiplier 0.1 (cos/sin multiplier 1, softmax_scale (dn+dr)^-0.5 * (1+0.1 ln 4)^2); "
         "beta_fast/beta_slow not stored, llama.cpp defaults 32/1. No MTP tensors (the deepseek2 converter "
         "drops them). Logits from the DEQUANTISED GGUF values read back from the file."),
        "GGUF mixed: see gguf_tensor_types")
    case["gguf_tensor_types"] = types
    case["gguf_alignment"] = 32
    case["general_alignment_key_present"] = False
    case["equivalent_hf_config"] = cfg
    write_case(out_dir, case)
    print(f"deepseek3_gguf: attempt={attempt} margins={stats[0]:.4g}/{stats[1]:.4g} cov={stats[2]} "
          f"checks={checks} |logits|max={np.abs(res['main']['logits']).max():.3f}")


FIXTURES = {
    "v3_tiny": fx_v3_tiny, "v2_lite_tiny": fx_v2_lite_tiny, "v2_tiny": fx_v2_tiny, "v3_fp8": fx_v3_fp8,
    "qwen2_tiny": fx_qwen2_tiny, "llama3_tiny": fx_llama3_tiny,
    "qwen2_gguf": fx_qwen2_gguf, "deepseek2_gguf": fx_deepseek2_gguf,
    "llama3_gguf": fx_llama3_gguf, "deepseek3_gguf": fx_deepseek3_gguf,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="fixture root, normally tests/golden")
    ap.add_argument("--only", default="", help="comma-separated fixture names")
    ap.add_argument("--skip-selftest", action="store_true")
    a = ap.parse_args()
    if not a.skip_selftest:
        selftest()
    os.makedirs(a.out, exist_ok=True)
    names = [n for n in a.only.split(",") if n] or list(FIXTURES)
    for n in names:
        FIXTURES[n](a.out)


if __name__ == "__main__":
    main()
