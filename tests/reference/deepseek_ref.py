"""Independent float64 reference of the forward pass of the DeepSeek-V2/V3/R1 family and its dense
R1-Distill students (Qwen2, Llama-3), written from /work/shared/spec/deepseek.md (section numbers below).

Owns: the model math on a dict of float64 weights keyed by Hugging Face tensor names and a config dict with
the HF config.json field names. Does not own: file formats or number codecs (tensor_io.py), fixture
generation (make_golden.py). numpy only, so it runs anywhere; every op is plain float64 so the C++ engine
can be compared against it with tolerances derived from its own (f32/bf16) arithmetic.
"""
from __future__ import annotations

import math

import numpy as np

# =============================================================================================
# Basic ops (§3)
# =============================================================================================


def rms_norm(x, w, eps):
    """§3: y = w * x / sqrt(mean(x^2) + eps), over the last axis."""
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def linear(x, w, b=None):
    """y = x W^T (+ b); W stored [out, in]."""
    y = x @ w.T
    return y if b is None else y + b


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def swiglu_mlp(x, w_gate, w_up, w_down):
    """§3: MLP(x) = W_down (silu(W_gate x) * (W_up x))."""
    return linear(silu(linear(x, w_gate)) * linear(x, w_up), w_down)


def causal_softmax(scores):
    """scores [..., T_q, T_k] over positions 0..T-1 on both axes -> causal softmax (j <= t)."""
    tq, tk = scores.shape[-2:]
    mask = np.arange(tk)[None, :] <= np.arange(tq)[:, None]
    return softmax(np.where(mask, scores, -np.inf), axis=-1)


# =============================================================================================
# RoPE (§5)
# =============================================================================================


def yarn_get_mscale(scale, mscale=1.0):
    """§5.3: get_mscale(s, m) = 1 if s <= 1 else 0.1 m ln(s) + 1."""
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def deepseek_rope_params(cfg):
    """§5.2/§5.3 -> (inv_freq [dr/2], cos/sin multiplier, softmax_scale).

    YaRN is applied whenever config.rope_scaling is present (HF behaviour; §5.2 "always apply YaRN").
    Defaults follow the HF remote code: mscale 1, mscale_all_dim 0 (-> get_mscale = 1), beta_fast 32,
    beta_slow 1."""
    dr = cfg["qk_rope_head_dim"]
    dq = cfg["qk_nope_head_dim"] + dr
    theta = float(cfg["rope_theta"])
    inv_extra = theta ** (-np.arange(0, dr, 2, dtype=np.float64) / dr)
    softmax_scale = dq ** -0.5
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv_extra, 1.0, softmax_scale
    rtype = rs.get("type", rs.get("rope_type"))
    if rtype != "yarn":
        raise ValueError(f"deepseek rope_scaling type {rtype!r} not supported by the reference")
    factor = float(rs["factor"])
    orig = float(rs["original_max_position_embeddings"])
    beta_fast = float(rs.get("beta_fast", 32))
    beta_slow = float(rs.get("beta_slow", 1))
    mscale = float(rs.get("mscale", 1.0))
    mscale_all_dim = float(rs.get("mscale_all_dim", 0.0))

    def corr_dim(n_rot):
        return dr * math.log(orig / (n_rot * 2 * math.pi)) / (2 * math.log(theta))

    low = max(math.floor(corr_dim(beta_fast)), 0)
    high = min(math.ceil(corr_dim(beta_slow)), dr - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(dr // 2, dtype=np.float64) - low) / (high - low), 0.0, 1.0)
    inv_freq = (inv_extra / factor) * ramp + inv_extra * (1.0 - ramp)
    mult = yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim)
    m_all = yarn_get_mscale(factor, mscale_all_dim) if mscale_all_dim else 1.0
    return inv_freq, mult, softmax_scale * m_all * m_all


def _cos_sin(pos, inv_freq, mult, extra_dims):
    ang = np.asarray(pos, dtype=np.float64)[:, None] * inv_freq[None, :]  # [T, n/2]
    shape = (ang.shape[0],) + (1,) * extra_dims + (ang.shape[1],)
    return (np.cos(ang) * mult).reshape(shape), (np.sin(ang) * mult).reshape(shape)


def rope_interleaved(x, pos, inv_freq, mult=1.0):
    """§5.4 adjacent pairs: frequency i rotates (x[2i], x[2i+1]). x [T, ..., n]; pos [T]."""
    c, s = _cos_sin(pos, inv_freq, mult, x.ndim - 2)
    x0, x1 = x[..., 0::2], x[..., 1::2]
    y = np.empty_like(x)
    y[..., 0::2] = x0 * c - x1 * s
    y[..., 1::2] = x0 * s + x1 * c
    return y


def rope_half(x, pos, inv_freq, mult=1.0):
    """§5.4 / §11 half rotation ("NEOX", HF rotate_half): frequency i rotates (x[i], x[i + n/2])."""
    c, s = _cos_sin(pos, inv_freq, mult, x.ndim - 2)
    n2 = x.shape[-1] // 2
    x0, x1 = x[..., :n2], x[..., n2:]
    return np.concatenate([x0 * c - x1 * s, x1 * c + x0 * s], axis=-1)


def dense_inv_freq(cfg, head_dim):
    """§11: inv[i] = theta^(-2i/hd); llama3 scaling (§11.2) when rope_scaling.rope_type == 'llama3'."""
    theta = float(cfg["rope_theta"])
    inv = theta ** (-np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv
    rtype = rs.get("rope_type", rs.get("type"))
    if rtype != "llama3":
        raise ValueError(f"dense rope_scaling type {rtype!r} not supported by the reference")
    factor = float(rs["factor"])
    lo_f, hi_f = float(rs["low_freq_factor"]), float(rs["high_freq_factor"])
    orig = float(rs["original_max_position_embeddings"])
    lo_w, hi_w = orig / lo_f, orig / hi_f
    out = np.empty_like(inv)
    for i, f in enumerate(inv):
        wavelen = 2 * math.pi / f
        if wavelen < hi_w:
            out[i] = f
        elif wavelen > lo_w:
            out[i] = f / factor
        else:
            sm = (orig / wavelen - lo_f) / (hi_f - lo_f)
            out[i] = (1 - sm) * f / factor + sm * f
    return out


# =============================================================================================
# MLA (§6)
# =============================================================================================


class Rope:
    """RoPE settings of a DeepSeek model: inv_freq, cos/sin multiplier, pairing style.

    style 'interleaved' is the raw-checkpoint layout (§5.4); 'half' is only valid on weights permuted
    by permute_rope_rows (used by the self-check that both layouts agree)."""

    def __init__(self, cfg, style="interleaved"):
        self.inv_freq, self.mult, self.softmax_scale = deepseek_rope_params(cfg)
        self.style = style

    def __call__(self, x, pos):
        f = rope_interleaved if self.style == "interleaved" else rope_half
        return f(x, pos, self.inv_freq, self.mult)


def mla(cfg, W, p, x, pos, rope, impl="naive"):
    """§6.2 (impl='naive') or §6.3 (impl='absorbed') multi-head latent attention, causal.

    x [T, d] (already input_layernorm'ed); p = 'model.layers.N.self_attn.'; returns [T, d]."""
    T = x.shape[0]
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rkv = cfg["kv_lora_rank"]
    eps = cfg["rms_norm_eps"]
    # queries: c_q = RMSNorm(W_qa x); q = W_qb c_q      (q_lora_rank null -> q = W_q x, V2-Lite)
    if cfg.get("q_lora_rank"):
        cq = rms_norm(linear(x, W[p + "q_a_proj.weight"]), W[p + "q_a_layernorm.weight"], eps)
        q = linear(cq, W[p + "q_b_proj.weight"])
    else:
        q = linear(x, W[p + "q_proj.weight"])
    q = q.reshape(T, H, dn + dr)
    q_nope = q[..., :dn]                           # [T, H, dn]
    q_pe = rope(q[..., dn:], pos)                  # [T, H, dr]
    # keys/values: a = W_kva x; latent normalised, RoPE on the raw (un-normalised) slice (§6.2, §15.3)
    a = linear(x, W[p + "kv_a_proj_with_mqa.weight"])            # [T, rkv + dr]
    c_kv = rms_norm(a[:, :rkv], W[p + "kv_a_layernorm.weight"], eps)  # [T, rkv]
    k_pe = rope(a[:, rkv:], pos)                                  # [T, dr], shared by all heads
    w_kvb = W[p + "kv_b_proj.weight"].reshape(H, dn + dv, rkv)
    scale = rope.softmax_scale                     # multiplies the WHOLE score (§5.3)
    if impl == "naive":
        kv = (c_kv @ w_kvb.reshape(H * (dn + dv), rkv).T).reshape(T, H, dn + dv)
        k_nope, v = kv[..., :dn], kv[..., dn:]     # [T, H, dn], [T, H, dv]
        scores = np.einsum("thd,shd->hts", q_nope, k_nope) + np.einsum("thd,sd->hts", q_pe, k_pe)
        P = causal_softmax(scale * scores)         # [H, T, T]
        o = np.einsum("hts,shd->thd", P, v)        # [T, H, dv]
    elif impl == "absorbed":
        w_uk, w_uv = w_kvb[:, :dn, :], w_kvb[:, dn:, :]          # [H, dn, rkv], [H, dv, rkv]
        q_abs = np.einsum("thd,hdc->thc", q_nope, w_uk)          # [T, H, rkv]
        scores = np.einsum("thc,sc->hts", q_abs, c_kv) + np.einsum("thd,sd->hts", q_pe, k_pe)
        P = causal_softmax(scale * scores)
        o_lat = np.einsum("hts,sc->thc", P, c_kv)                # [T, H, rkv]
        o = np.einsum("thc,hvc->thv", o_lat, w_uv)               # [T, H, dv]
    else:
        raise ValueError(impl)
    return linear(o.reshape(T, H * dv), W[p + "o_proj.weight"])


def permute_rope_rows(cfg, W):
    """§5.4: permute the rope rows of q_b_proj/q_proj (per head) and kv_a_proj_with_mqa (last dr rows)
    so that half-rotation on the permuted weights equals interleaved rotation on the raw ones."""
    H = cfg["num_attention_heads"]
    dn, dr = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"]
    perm = np.concatenate([np.arange(0, dr, 2), np.arange(1, dr, 2)])  # new j <- old perm[j]
    out = dict(W)
    for name, w in W.items():
        if name.endswith("q_b_proj.weight") or name.endswith("self_attn.q_proj.weight"):
            w = w.reshape(H, dn + dr, -1).copy()
            w[:, dn:, :] = w[:, dn:, :][:, perm, :]
            out[name] = w.reshape(H * (dn + dr), -1)
        elif name.endswith("kv_a_proj_with_mqa.weight"):
            w = w.copy()
            rkv = w.shape[0] - dr
            w[rkv:] = w[rkv:][perm]
            out[name] = w
    return out


# =============================================================================================
# MoE (§7)
# =============================================================================================


def select_experts(sel, n_group, topk_group, top_k, group_rule):
    """Group-limited top-K on selection scores sel [T, E].

    group_rule: None (no group limit), 'max' (V2 group_limited_greedy) or 'top2sum' (V3 noaux_tc).
    Experts of non-kept groups are masked with -inf (§7.2). Returns idx [T, K] (descending by sel) and the
    decision margins: min over tokens of (K-th - (K+1)-th eligible sel) and of (Gk-th - (Gk+1)-th group score)."""
    T, E = sel.shape
    masked = sel.copy()
    g_margin = math.inf
    if group_rule is not None and n_group > 1:
        g = sel.reshape(T, n_group, E // n_group)
        if group_rule == "max":
            gs = g.max(axis=-1)
        elif group_rule == "top2sum":
            gs = np.sort(g, axis=-1)[..., -2:].sum(axis=-1)
        else:
            raise ValueError(group_rule)
        order = np.argsort(-gs, axis=-1, kind="stable")
        keep = np.zeros((T, n_group), dtype=bool)
        np.put_along_axis(keep, order[:, :topk_group], True, axis=-1)
        masked = np.where(np.repeat(keep, E // n_group, axis=-1), sel, -np.inf)
        if topk_group < n_group:
            gsorted = -np.sort(-gs, axis=-1)
            g_margin = float(np.min(gsorted[:, topk_group - 1] - gsorted[:, topk_group]))
    order = np.argsort(-masked, axis=-1, kind="stable")
    idx = order[:, :top_k]
    vals = np.take_along_axis(masked, order, axis=-1)
    k_margin = math.inf
    if top_k < E:
        nxt = vals[:, top_k]
        gaps = np.where(np.isfinite(nxt), vals[:, top_k - 1] - nxt, np.inf)
        k_margin = float(np.min(gaps))
    return idx, k_margin, g_margin


def route(cfg, gate_w, bias, u):
    """§7.2 / §7.3 router. u [T, d] (post_attention_layernorm output).

    Returns dict: idx [T, K], weight [T, K] (final gating weights incl. norm and routed scaling),
    margins, and the raw scores (for coverage checks)."""
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    G, Gk = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    logits = linear(u, gate_w)                                   # [T, E]
    scoring = cfg.get("scoring_func", "softmax")
    s = sigmoid(logits) if scoring == "sigmoid" else softmax(logits)
    method = cfg.get("topk_method", "greedy")
    if method == "noaux_tc":
        sel = s + bias[None, :]                                  # bias only for selection
        rule = "top2sum"
    elif method == "group_limited_greedy":
        sel, rule = s, "max"
    elif method == "greedy":
        sel, rule = s, None
    else:
        raise ValueError(f"topk_method {method!r}")
    idx, k_margin, g_margin = select_experts(sel, G, Gk, K, rule)
    w = np.take_along_axis(s, idx, axis=-1)                     # original scores, never the bias
    rsf = float(cfg.get("routed_scaling_factor", 1.0))
    norm = bool(cfg.get("norm_topk_prob")) and K > 1
    if cfg["model_type"] == "deepseek_v3":
        # V3 ([HF] V3 remote code, [ref]): renormalise, then always scale
        if norm:
            w = w / (w.sum(axis=-1, keepdims=True) + 1e-20)
        w = w * rsf
    else:
        # V2 family ([HF] V2 remote code): scale only when NOT renormalising (§7.3)
        if norm:
            w = w / (w.sum(axis=-1, keepdims=True) + 1e-20)
        else:
            w = w * rsf
    return {"idx": idx, "weight": w, "k_margin": k_margin, "g_margin": g_margin,
            "scores": s, "sel": sel, "rule": rule}


def moe(cfg, W, p, u, trace=None):
    """§7: y = sum_k w_k Expert_{idx_k}(u) + SharedMLP(u). p = 'model.layers.N.mlp.'."""
    E = cfg["n_routed_experts"]
    bias = W.get(p + "gate.e_score_correction_bias")
    if cfg.get("topk_method") == "noaux_tc":
        assert bias is not None, "noaux_tc needs e_score_correction_bias"
    r = route(cfg, W[p + "gate.weight"], bias, u)
    T = u.shape[0]
    y = np.zeros_like(u)
    for e in range(E):
        tok, slot = np.nonzero(r["idx"] == e)
        if len(tok) == 0:
            continue
        pe = f"{p}experts.{e}."
        out = swiglu_mlp(u[tok], W[pe + "gate_proj.weight"], W[pe + "up_proj.weight"], W[pe + "down_proj.weight"])
        y[tok] += r["weight"][tok, slot][:, None] * out
    if cfg.get("n_shared_experts"):
        ps = p + "shared_experts."
        y = y + swiglu_mlp(u, W[ps + "gate_proj.weight"], W[ps + "up_proj.weight"], W[ps + "down_proj.weight"])
    if trace is not None:
        trace.append(r)
    assert y.shape == (T, u.shape[1])
    return y


# =============================================================================================
# DeepSeek-V2/V3 model (§3) and MTP (§8)
# =============================================================================================


def is_moe_layer(cfg, layer):
    """HF remote code rule (§2.1): MoE iff routed experts exist, layer >= first_k_dense_replace and
    layer % moe_layer_freq == 0."""
    return (cfg.get("n_routed_experts") is not None and layer >= cfg["first_k_dense_replace"]
            and layer % cfg.get("moe_layer_freq", 1) == 0)


def deepseek_block(cfg, W, layer, h, pos, rope, impl="naive", routing=None):
    """§3 pre-norm block: h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h)). Returns the new residual."""
    p = f"model.layers.{layer}."
    eps = cfg["rms_norm_eps"]
    x = rms_norm(h, W[p + "input_layernorm.weight"], eps)
    h = h + mla(cfg, W, p + "self_attn.", x, pos, rope, impl)
    x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
    if is_moe_layer(cfg, layer):
        trace = []
        h = h + moe(cfg, W, p + "mlp.", x, trace)
        if routing is not None:
            routing[layer] = trace[0]
    else:
        h = h + swiglu_mlp(x, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                           W[p + "mlp.down_proj.weight"])
    return h


def lm_head_weight(cfg, W):
    if cfg.get("tie_word_embeddings"):
        assert "lm_head.weight" not in W
        return W["model.embed_tokens.weight"]
    return W["lm_head.weight"]


def deepseek_forward(cfg, W, ids, impl="naive", rope_style="interleaved"):
    """§3: returns dict logits [T, V], hidden (post final norm) [T, d], layers [L, T, d] (residual after
    each block), routing {layer: route dict}."""
    ids = np.asarray(ids)
    rope = Rope(cfg, rope_style)
    pos = np.arange(len(ids))
    h = W["model.embed_tokens.weight"][ids]       # no sqrt(d) scaling
    routing, layers = {}, []
    for layer in range(cfg["num_hidden_layers"]):
        h = deepseek_block(cfg, W, layer, h, pos, rope, impl, routing)
        layers.append(h)
    hn = rms_norm(h, W["model.norm.weight"], cfg["rms_norm_eps"])
    return {"logits": linear(hn, lm_head_weight(cfg, W)), "hidden": hn,
            "layers": np.stack(layers), "routing": routing}


def deepseek_mtp_forward(cfg, W, ids, hidden, impl="naive", rope_style="interleaved", depth=0):
    """§8 MTP module k = depth+1 (layer index num_hidden_layers + depth), serving convention:

    z_i = eh_proj([enorm(Emb_mtp(t_{i+1})) ; hnorm(h_i)]) for i = 0..T-2, with h_i the main model's hidden
    state AFTER model.norm (vLLM/SGLang) and Emb_mtp the MTP layer's own embed_tokens; then a full block
    (MLA + MoE) at positions 0..T-2, then shared_head.norm and shared_head.head -> logits [T-1, V].
    No zeroing of the position-0 embedding (vLLM does that; the paper does not)."""
    assert depth == 0, "only the first MTP module is modelled"
    layer = cfg["num_hidden_layers"] + depth
    p = f"model.layers.{layer}."
    eps = cfg["rms_norm_eps"]
    ids = np.asarray(ids)
    e = rms_norm(W[p + "embed_tokens.weight"][ids[1:]], W[p + "enorm.weight"], eps)
    hh = rms_norm(hidden[:-1], W[p + "hnorm.weight"], eps)
    z = linear(np.concatenate([e, hh], axis=-1), W[p + "eh_proj.weight"])  # embedding first (§8.2)
    rope = Rope(cfg, rope_style)
    routing = {}
    h = deepseek_block(cfg, W, layer, z, np.arange(len(ids) - 1), rope, impl, routing)
    hn = rms_norm(h, W[p + "shared_head.norm.weight"], eps)
    return {"logits": linear(hn, W[p + "shared_head.head.weight"]), "routing": routing, "out": h}


# =============================================================================================
# Dense distills: Qwen2 (§11.1) and Llama-3 (§11.2)
# =============================================================================================


def dense_forward(cfg, W, ids):
    """§11: pre-norm GQA + SwiGLU; half-rotation RoPE on HF weights; scale hd^-1/2; biases where the
    architecture has them (Qwen2: q/k/v, never o; Llama: none unless attention_bias)."""
    ids = np.asarray(ids)
    mt = cfg["model_type"]
    d, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim") or d // H
    eps = cfg["rms_norm_eps"]
    qkv_bias = mt == "qwen2" or bool(cfg.get("attention_bias"))
    o_bias = mt != "qwen2" and bool(cfg.get("attention_bias"))
    inv_freq = dense_inv_freq(cfg, hd)
    T = len(ids)
    pos = np.arange(T)
    h = W["model.embed_tokens.weight"][ids]
    layers = []
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        a = p + "self_attn."
        x = rms_norm(h, W[p + "input_layernorm.weight"], eps)
        bq = W[a + "q_proj.bias"] if qkv_bias else None
        bk = W[a + "k_proj.bias"] if qkv_bias else None
        bv = W[a + "v_proj.bias"] if qkv_bias else None
        q = linear(x, W[a + "q_proj.weight"], bq).reshape(T, H, hd)
        k = linear(x, W[a + "k_proj.weight"], bk).reshape(T, Hkv, hd)
        v = linear(x, W[a + "v_proj.weight"], bv).reshape(T, Hkv, hd)
        q = rope_half(q, pos, inv_freq)
        k = rope_half(k, pos, inv_freq)
        kv_of = np.arange(H) // (H // Hkv)                       # query head h -> KV head h // (H/Hkv)
        scores = np.einsum("thd,shd->hts", q, k[:, kv_of, :]) * hd ** -0.5
        P = causal_softmax(scores)
        o = np.einsum("hts,shd->thd", P, v[:, kv_of, :]).reshape(T, H * hd)
        h = h + linear(o, W[a + "o_proj.weight"], W[a + "o_proj.bias"] if o_bias else None)
        x = rms_norm(h, W[p + "post_attention_layernorm.weight"], eps)
        h = h + swiglu_mlp(x, W[p + "mlp.gate_proj.weight"], W[p + "mlp.up_proj.weight"],
                           W[p + "mlp.down_proj.weight"])
        layers.append(h)
    hn = rms_norm(h, W["model.norm.weight"], eps)
    return {"logits": linear(hn, lm_head_weight(cfg, W)), "hidden": hn, "layers": np.stack(layers)}


# =============================================================================================
# Llama as llama.cpp runs a GGUF (§12.2 last paragraph, §11.2): GGUF names, hyperparameters from the
# metadata, NORM (adjacent-pair) RoPE on the un-permuted q/k weights, llama3 scaling via rope_freqs
# =============================================================================================


def llama_gguf_inv_freq(meta, T):
    """inv[i] = freq_base^(-2i/n_rot) / rope_freqs[i] (rope_freqs holds per-frequency DIVISORS; absent = 1)."""
    n_rot = int(meta["llama.rope.dimension_count"])
    inv = float(meta["llama.rope.freq_base"]) ** (-np.arange(0, n_rot, 2, dtype=np.float64) / n_rot)
    if "rope_freqs.weight" in T:
        inv = inv / T["rope_freqs.weight"]
    return inv


def llama_gguf_forward(meta, T, ids, inv_freq=None):
    """Forward pass of a GGUF of architecture 'llama' on float64 tensors keyed by GGUF names (torch order,
    i.e. [out, in]). Independent of the HF path: q/k rows are in llama.cpp's un-permuted layout, so RoPE
    rotates adjacent pairs (x[2i], x[2i+1]) with inv_freq[i]. No output.weight -> tied to token_embd.
    inv_freq overrides llama_gguf_inv_freq (used by the self-check)."""
    assert meta["general.architecture"] == "llama"

    def hp(key):
        return meta["llama." + key]

    ids = np.asarray(ids)
    L, H, Hkv, d = hp("block_count"), hp("attention.head_count"), hp("attention.head_count_kv"), hp("embedding_length")
    hd = d // H
    n_rot = hp("rope.dimension_count")
    assert n_rot == hd, "partial rotary not modelled"
    eps = float(hp("attention.layer_norm_rms_epsilon"))
    inv = llama_gguf_inv_freq(meta, T) if inv_freq is None else inv_freq
    n = len(ids)
    pos = np.arange(n)
    h = T["token_embd.weight"][ids]
    layers = []
    for layer in range(L):
        b = f"blk.{layer}."
        x = rms_norm(h, T[b + "attn_norm.weight"], eps)
        q = rope_interleaved(linear(x, T[b + "attn_q.weight"]).reshape(n, H, hd), pos, inv)
        k = rope_interleaved(linear(x, T[b + "attn_k.weight"]).reshape(n, Hkv, hd), pos, inv)
        v = linear(x, T[b + "attn_v.weight"]).reshape(n, Hkv, hd)
        kv_of = np.arange(H) // (H // Hkv)
        P = causal_softmax(np.einsum("thd,shd->hts", q, k[:, kv_of, :]) / math.sqrt(hd))
        o = np.einsum("hts,shd->thd", P, v[:, kv_of, :]).reshape(n, H * hd)
        h = h + linear(o, T[b + "attn_output.weight"])
        x = rms_norm(h, T[b + "ffn_norm.weight"], eps)
        h = h + swiglu_mlp(x, T[b + "ffn_gate.weight"], T[b + "ffn_up.weight"], T[b + "ffn_down.weight"])
        layers.append(h)
    hn = rms_norm(h, T["output_norm.weight"], eps)
    head = T["output.weight"] if "output.weight" in T else T["token_embd.weight"]
    return {"logits": linear(hn, head), "hidden": hn, "layers": np.stack(layers)}
