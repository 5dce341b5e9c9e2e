#!/usr/bin/python3
"""Second, structurally different implementation used only to cross-check the committed fixtures.

    /usr/bin/python3 tests/reference/hf_style_check.py tests/golden

Written in torch (float64) in the shape of the Hugging Face code paths the spec cites: HF remote-code
DeepSeek attention (de-interleave q_pe/k_pe, then rotate_half with cat(freqs, freqs) tables scaled by the
YaRN mscale ratio), the HF MoEGate (torch.topk, scatter group masks, gather), vLLM-style MTP, and HF
Qwen2/Llama attention with repeat_kv. It shares nothing with deepseek_ref.py except the file readers
(tensor_io.py). Recomputes every fixture's logits (and MTP logits) and fails if they differ from the stored
float32 files by more than float32 rounding.
"""
from __future__ import annotations

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as MG  # noqa: E402  (GGUF name mapping only)
import tensor_io as io  # noqa: E402

torch.set_default_dtype(torch.float64)


def rmsnorm(x, w, eps):
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def mlp(x, W, p):
    return F.linear(F.silu(F.linear(x, W[p + "gate_proj.weight"])) * F.linear(x, W[p + "up_proj.weight"]),
                    W[p + "down_proj.weight"])


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


# ---------------------------------------------------------------------------------------------
# DeepSeek (HF remote code shape)
# ---------------------------------------------------------------------------------------------


def yarn_find_correction_dim(num_rotations, dim, base, max_pos):
    return (dim * math.log(max_pos / (num_rotations * 2 * math.pi))) / (2 * math.log(base))


def yarn_get_mscale(scale=1, mscale=1):
    if scale <= 1:
        return 1.0
    return 0.1 * mscale * math.log(scale) + 1.0


def ds_rotary(cfg, seq_len):
    dim, base = cfg["qk_rope_head_dim"], cfg["rope_theta"]
    rs = cfg["rope_scaling"]
    factor = rs["factor"]
    freq_extra = 1.0 / (base ** (torch.arange(0, dim, 2) / dim))
    freq_inter = 1.0 / (factor * base ** (torch.arange(0, dim, 2) / dim))
    low = math.floor(yarn_find_correction_dim(rs.get("beta_fast", 32), dim, base, rs["original_max_position_embeddings"]))
    high = math.ceil(yarn_find_correction_dim(rs.get("beta_slow", 1), dim, base, rs["original_max_position_embeddings"]))
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = torch.clamp((torch.arange(dim // 2) - low) / (high - low), 0, 1)
    inv_freq_mask = 1.0 - ramp
    inv_freq = freq_inter * (1 - inv_freq_mask) + freq_extra * inv_freq_mask
    t = torch.arange(seq_len)
    freqs = torch.outer(t, inv_freq)
    m = yarn_get_mscale(factor, rs.get("mscale", 1)) / yarn_get_mscale(factor, rs.get("mscale_all_dim", 0))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * m, emb.sin() * m


def ds_apply_rotary(q, k, cos, sin):
    # q [b, h, s, d]; HF de-interleaves (view [d/2, 2], transpose, flatten) then rotate_half
    b, h, s, d = q.shape
    q = q.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    b, h, s, d = k.shape
    k = k.view(b, h, s, d // 2, 2).transpose(4, 3).reshape(b, h, s, d)
    cos, sin = cos[None, None], sin[None, None]
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


def ds_attention(cfg, W, p, hidden):
    bsz, q_len, _ = hidden.shape
    H = cfg["num_attention_heads"]
    dn, dr, dv, rkv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"], cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank") is None:
        q = F.linear(hidden, W[p + "q_proj.weight"])
    else:
        q = F.linear(rmsnorm(F.linear(hidden, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"], eps),
                     W[p + "q_b_proj.weight"])
    q = q.view(bsz, q_len, H, dn + dr).transpose(1, 2)
    q_nope, q_pe = torch.split(q, [dn, dr], dim=-1)
    compressed_kv = F.linear(hidden, W[p + "kv_a_proj_with_mqa.weight"])
    compressed_kv, k_pe = torch.split(compressed_kv, [rkv, dr], dim=-1)
    k_pe = k_pe.view(bsz, q_len, 1, dr).transpose(1, 2)
    kv = F.linear(rmsnorm(compressed_kv, W[p + "kv_a_layernorm.weight"], eps), W[p + "kv_b_proj.weight"])
    kv = kv.view(bsz, q_len, H, dn + dv).transpose(1, 2)
    k_nope, value_states = torch.split(kv, [dn, dv], dim=-1)
    cos, sin = ds_rotary(cfg, q_len)
    q_pe, k_pe = ds_apply_rotary(q_pe, k_pe, cos, sin)
    query_states = torch.cat([q_nope, q_pe], dim=-1)
    key_states = torch.cat([k_nope, k_pe.expand(bsz, H, q_len, dr)], dim=-1)
    softmax_scale = (dn + dr) ** (-0.5)
    rs = cfg.get("rope_scaling")
    if rs is not None:
        mad = rs.get("mscale_all_dim", 0)
        if mad:
            ms = yarn_get_mscale(rs["factor"], mad)
            softmax_scale = softmax_scale * ms * ms
    attn = torch.matmul(query_states, key_states.transpose(2, 3)) * softmax_scale
    mask = torch.full((q_len, q_len), float("-inf")).triu(1)
    attn = F.softmax(attn + mask, dim=-1)
    out = torch.matmul(attn, value_states).transpose(1, 2).reshape(bsz, q_len, H * dv)
    return F.linear(out, W[p + "o_proj.weight"])


def ds_gate(cfg, W, p, hidden):
    h = hidden.view(-1, hidden.shape[-1])
    n = h.shape[0]
    logits = F.linear(h, W[p + "gate.weight"])
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, Gk = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    method = cfg["topk_method"]
    if cfg["scoring_func"] == "sigmoid":
        scores = logits.sigmoid()
    else:
        scores = logits.softmax(dim=-1)
    if method == "noaux_tc":
        sfc = scores + W[p + "gate.e_score_correction_bias"].unsqueeze(0)
        group_scores = sfc.view(n, G, -1).topk(2, dim=-1)[0].sum(dim=-1)
    elif method == "group_limited_greedy":
        sfc = scores
        group_scores = sfc.view(n, G, -1).max(dim=-1).values
    else:
        sfc = scores
        group_scores = None
    if group_scores is not None:
        group_idx = torch.topk(group_scores, k=Gk, dim=-1, sorted=False)[1]
        group_mask = torch.zeros_like(group_scores)
        group_mask.scatter_(1, group_idx, 1)
        score_mask = group_mask.unsqueeze(-1).expand(n, G, E // G).reshape(n, -1)
        sfc = sfc.masked_fill(~score_mask.bool(), float("-inf"))
    _, topk_idx = torch.topk(sfc, k=K, dim=-1, sorted=False)
    topk_weight = scores.gather(1, topk_idx)
    rsf = cfg["routed_scaling_factor"]
    if cfg["model_type"] == "deepseek_v3":
        if K > 1 and cfg["norm_topk_prob"]:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        topk_weight = topk_weight * rsf
    else:
        if K > 1 and cfg["norm_topk_prob"]:
            topk_weight = topk_weight / (topk_weight.sum(dim=-1, keepdim=True) + 1e-20)
        else:
            topk_weight = topk_weight * rsf
    return topk_idx, topk_weight


def ds_moe(cfg, W, p, hidden):
    shape = hidden.shape
    idx, w = ds_gate(cfg, W, p, hidden)
    x = hidden.view(-1, shape[-1])
    y = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for k in range(idx.shape[1]):
            e = int(idx[t, k])
            y[t] += w[t, k] * mlp(x[t:t + 1], W, f"{p}experts.{e}.")[0]
    y = y.view(*shape)
    if cfg.get("n_shared_experts"):
        y = y + mlp(hidden, W, p + "shared_experts.")
    return y


def ds_layer(cfg, W, i, h):
    p = f"model.layers.{i}."
    eps = cfg["rms_norm_eps"]
    residual = h
    h = residual + ds_attention(cfg, W, p + "self_attn.", rmsnorm(h, W[p + "input_layernorm.weight"], eps))
    residual = h
    x = rmsnorm(h, W[p + "post_attention_layernorm.weight"], eps)
    moe = (cfg["n_routed_experts"] is not None and i >= cfg["first_k_dense_replace"]
           and i % cfg["moe_layer_freq"] == 0)
    return residual + (ds_moe(cfg, W, p + "mlp.", x) if moe else mlp(x, W, p + "mlp."))


def ds_model(cfg, W, ids):
    h = F.embedding(ids, W["model.embed_tokens.weight"])[None]
    for i in range(cfg["num_hidden_layers"]):
        h = ds_layer(cfg, W, i, h)
    hn = rmsnorm(h, W["model.norm.weight"], cfg["rms_norm_eps"])
    logits = F.linear(hn, W["lm_head.weight"])[0]
    out = {"logits": logits}
    if cfg["model_type"] == "deepseek_v3" and cfg.get("num_nextn_predict_layers", 0) >= 1:
        # vLLM DeepSeekMultiTokenPredictorLayer (without its position-0 embedding zeroing)
        L = cfg["num_hidden_layers"]
        p = f"model.layers.{L}."
        eps = cfg["rms_norm_eps"]
        inputs_embeds = F.embedding(ids[1:], W[p + "embed_tokens.weight"])[None]
        prev = hn[:, :-1]
        z = F.linear(torch.cat([rmsnorm(inputs_embeds, W[p + "enorm.weight"], eps),
                                rmsnorm(prev, W[p + "hnorm.weight"], eps)], dim=-1), W[p + "eh_proj.weight"])
        z = ds_layer(cfg, W, L, z)
        out["mtp_logits"] = F.linear(rmsnorm(z, W[p + "shared_head.norm.weight"], eps),
                                     W[p + "shared_head.head.weight"])[0]
    return out


# ---------------------------------------------------------------------------------------------
# Qwen2 / Llama (HF shape)
# ---------------------------------------------------------------------------------------------


def llama3_inv_freq(cfg, dim):
    base = cfg["rope_theta"]
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2) / dim))
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv_freq
    factor, lff, hff = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
    old = rs["original_max_position_embeddings"]
    low_w, high_w = old / lff, old / hff
    wavelen = 2 * math.pi / inv_freq
    inv_l = torch.where(wavelen > low_w, inv_freq / factor, inv_freq)
    smooth = (old / wavelen - lff) / (hff - lff)
    smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
    is_medium = ~(wavelen < high_w) * ~(wavelen > low_w)
    return torch.where(is_medium, smoothed, inv_l)


def dense_model(cfg, W, ids, inv=None):
    d, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    T = ids.shape[0]
    if inv is None:
        inv = llama3_inv_freq(cfg, hd)
    freqs = torch.outer(torch.arange(T), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos()[None, None], emb.sin()[None, None]
    h = F.embedding(ids, W["model.embed_tokens.weight"])[None]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}.self_attn."
        x = rmsnorm(h, W[f"model.layers.{i}.input_layernorm.weight"], eps)
        q = F.linear(x, W[p + "q_proj.weight"], W.get(p + "q_proj.bias")).view(1, T, H, hd).transpose(1, 2)
        k = F.linear(x, W[p + "k_proj.weight"], W.get(p + "k_proj.bias")).view(1, T, Hkv, hd).transpose(1, 2)
        v = F.linear(x, W[p + "v_proj.weight"], W.get(p + "v_proj.bias")).view(1, T, Hkv, hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        rep = H // Hkv
        k = k[:, :, None].expand(1, Hkv, rep, T, hd).reshape(1, H, T, hd)   # repeat_kv
        v = v[:, :, None].expand(1, Hkv, rep, T, hd).reshape(1, H, T, hd)
        a = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd) + torch.full((T, T), float("-inf")).triu(1)
        o = torch.matmul(F.softmax(a, dim=-1), v).transpose(1, 2).reshape(1, T, H * hd)
        h = h + F.linear(o, W[p + "o_proj.weight"])
        x = rmsnorm(h, W[f"model.layers.{i}.post_attention_layernorm.weight"], eps)
        h = h + mlp(x, W, f"model.layers.{i}.mlp.")
    hn = rmsnorm(h, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return {"logits": F.linear(hn, head)[0]}


# ---------------------------------------------------------------------------------------------


def llama_gguf_to_hf_rows(w, n_head):
    """GGUF (llama.cpp, adjacent-pair) q/k rows -> HF half-rotation rows: per head, row 2i+c -> c*hd/2+i."""
    w = torch.from_numpy(np.ascontiguousarray(w))
    out_dim, in_dim = w.shape
    hd = out_dim // n_head
    return w.view(n_head, hd // 2, 2, in_dim).permute(0, 2, 1, 3).reshape(out_dim, in_dim).numpy()


def load(fixture_dir):
    """-> cfg, HF-named torch weights, case, inv_freq override (llama GGUF: from rope_freqs) or None."""
    case = json.load(open(os.path.join(fixture_dir, "case.json")))
    inv = None
    if os.path.exists(os.path.join(fixture_dir, "model.gguf")):
        cfg = case["equivalent_hf_config"]
        meta, T = io.read_gguf(os.path.join(fixture_dir, "model.gguf"))
        T = {k: v[2] for k, v in T.items()}
        arch = meta["general.architecture"]
        if arch == "llama":
            # llama.cpp convention: rope_freqs are divisors of the plain inv_freq; q/k rows un-permuted
            hd = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
            base = 1.0 / (meta["llama.rope.freq_base"] ** (torch.arange(0, hd, 2) / hd))
            inv = base / torch.from_numpy(T.pop("rope_freqs.weight"))
            assert torch.allclose(inv, llama3_inv_freq(cfg, hd), rtol=1e-6, atol=0), "rope_freqs vs config"
            for name in list(T):
                if name.endswith(".attn_q.weight"):
                    T[name] = llama_gguf_to_hf_rows(T[name], meta["llama.attention.head_count"])
                elif name.endswith(".attn_k.weight"):
                    T[name] = llama_gguf_to_hf_rows(T[name], meta["llama.attention.head_count_kv"])
        W = MG.gguf_to_hf_tensors(cfg, T, MG.gguf_layer_map(arch, T))
    else:
        cfg = json.load(open(os.path.join(fixture_dir, "config.json")))
        W = io.load_hf_weights(fixture_dir)
    return cfg, {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in W.items()}, case, inv


def main():
    root = sys.argv[1]
    worst = 0.0
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        if not os.path.exists(os.path.join(d, "case.json")):
            continue
        cfg, W, case, inv = load(d)
        ids = torch.tensor(case["ids"])
        out = ds_model(cfg, W, ids) if cfg["model_type"].startswith("deepseek") else dense_model(cfg, W, ids, inv)
        for key in ("logits", "mtp_logits"):
            if key not in case:
                continue
            ref = np.load(os.path.join(d, case[key])).astype(np.float64)
            got = out[key].numpy()
            err = float(np.max(np.abs(got - ref) / (np.abs(ref) + 1e-3)))
            worst = max(worst, err)
            status = "ok" if err < 1e-6 else "MISMATCH"
            print(f"{name:16s} {key:11s} shape {tuple(ref.shape)} max rel err {err:.2e} {status}")
            assert err < 1e-6, f"{name} {key}"
    print(f"all fixtures agree with the HF-style implementation (worst rel err {worst:.2e})")


if __name__ == "__main__":
    main()
