"""Independent PyTorch reference of one training step of a DeepSeek-V3-style model (main model + MTP).

Written from docs/training.md (the contract; "contract" below) and shared/spec/deepseek.md (section
numbers §N). The forward math is the same as deepseek_ref.py (numpy inference reference) and is checked
against it by make_train_golden.py; the gradients come from torch autograd.

Owns: parameter naming/shapes of the trainable set, the training forward (masks, CE, MTP, balance loss),
the routing with its decision margins, gradient clipping, AdamW, the LR schedule and the bias update.
Does not own: weight initialisation, batches, files (make_train_golden.py).

Everything runs in the dtype given to the functions (float64 for the fixtures; float32 only to estimate
how far an f32 engine drifts). Parameters are a dict {HF name: leaf tensor}; the MoE correction biases
are a separate dict {HF name of e_score_correction_bias: tensor}, never optimised.
"""
from __future__ import annotations

import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deepseek_ref import deepseek_rope_params  # noqa: E402  (one YaRN/softmax-scale implementation)

# =============================================================================================
# Parameter set
# =============================================================================================


def is_moe_layer(cfg, layer):
    """§2.1 (HF rule). The MTP block (layer >= num_hidden_layers) follows the same rule, hence is MoE in V3."""
    return (cfg.get("n_routed_experts") is not None and layer >= cfg["first_k_dense_replace"]
            and layer % cfg.get("moe_layer_freq", 1) == 0)


def n_mtp(cfg):
    return int(cfg.get("num_nextn_predict_layers") or 0)


def moe_layers(cfg):
    """Indices of every MoE layer, main layers first, then the MTP blocks (the contract's maxvio order)."""
    return [l for l in range(cfg["num_hidden_layers"] + n_mtp(cfg)) if is_moe_layer(cfg, l)]


def bias_name(layer):
    return f"model.layers.{layer}.mlp.gate.e_score_correction_bias"


def param_shapes(cfg):
    """Ordered {name: shape} of the trainable parameters (§12.1 names).

    The MTP module's embed_tokens / shared_head.head are NOT here: in training they are the main
    model's embed_tokens / lm_head (contract, "MTP module k"); they only exist as copies in a saved
    checkpoint. The correction biases are not here either (not optimiser parameters, §9.1)."""
    d, V, H = cfg["hidden_size"], cfg["vocab_size"], cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rq, rkv = cfg.get("q_lora_rank"), cfg["kv_lora_rank"]
    f, fm, E = cfg["intermediate_size"], cfg["moe_intermediate_size"], cfg["n_routed_experts"]
    Es = cfg.get("n_shared_experts") or 0
    L = cfg["num_hidden_layers"]
    S = {"model.embed_tokens.weight": (V, d)}
    for layer in range(L + n_mtp(cfg)):
        p = f"model.layers.{layer}."
        if layer >= L:
            S[p + "enorm.weight"] = (d,)
            S[p + "hnorm.weight"] = (d,)
            S[p + "eh_proj.weight"] = (d, 2 * d)
            S[p + "shared_head.norm.weight"] = (d,)
        S[p + "input_layernorm.weight"] = (d,)
        a = p + "self_attn."
        if rq:
            S[a + "q_a_proj.weight"] = (rq, d)
            S[a + "q_a_layernorm.weight"] = (rq,)
            S[a + "q_b_proj.weight"] = (H * (dn + dr), rq)
        else:
            S[a + "q_proj.weight"] = (H * (dn + dr), d)
        S[a + "kv_a_proj_with_mqa.weight"] = (rkv + dr, d)
        S[a + "kv_a_layernorm.weight"] = (rkv,)
        S[a + "kv_b_proj.weight"] = (H * (dn + dv), rkv)
        S[a + "o_proj.weight"] = (d, H * dv)
        S[p + "post_attention_layernorm.weight"] = (d,)
        m = p + "mlp."
        if is_moe_layer(cfg, layer):
            S[m + "gate.weight"] = (E, d)
            for e in range(E):
                S[f"{m}experts.{e}.gate_proj.weight"] = (fm, d)
                S[f"{m}experts.{e}.up_proj.weight"] = (fm, d)
                S[f"{m}experts.{e}.down_proj.weight"] = (d, fm)
            if Es:
                S[m + "shared_experts.gate_proj.weight"] = (Es * fm, d)
                S[m + "shared_experts.up_proj.weight"] = (Es * fm, d)
                S[m + "shared_experts.down_proj.weight"] = (d, Es * fm)
        else:
            S[m + "gate_proj.weight"] = (f, d)
            S[m + "up_proj.weight"] = (f, d)
            S[m + "down_proj.weight"] = (d, f)
    S["model.norm.weight"] = (d,)
    S["lm_head.weight"] = (V, d)
    return S


# =============================================================================================
# Layers (§3, §5, §6.2, §7.2)
# =============================================================================================


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def swiglu(x, wg, wu, wd):
    return (torch.nn.functional.silu(x @ wg.T) * (x @ wu.T)) @ wd.T


class Rope:
    """Interleaved-pair RoPE (§5.4: raw DeepSeek checkpoints rotate (x[2i], x[2i+1]) with frequency i)
    over positions 0..T-1 (positions restart in every window, contract "A batch")."""

    def __init__(self, cfg, T, dtype):
        inv, mult, self.softmax_scale = deepseek_rope_params(cfg)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]          # [T, dr/2]
        # tables in float64, then cast: the same numbers whatever dtype the model runs in
        self.cos = torch.tensor(np.cos(ang) * mult, dtype=dtype)
        self.sin = torch.tensor(np.sin(ang) * mult, dtype=dtype)

    def __call__(self, x):
        """x [B, T, ..., dr]"""
        shape = (1, x.shape[1]) + (1,) * (x.dim() - 3) + (self.cos.shape[1],)
        c, s = self.cos.reshape(shape), self.sin.reshape(shape)
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1).flatten(-2)


def mla(cfg, P, p, x, rope):
    """§6.2 naive MLA, causal within the window. x [B, T, d] (input_layernorm output)."""
    B, T, _ = x.shape
    H = cfg["num_attention_heads"]
    dn, dr, dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    rkv, eps = cfg["kv_lora_rank"], cfg["rms_norm_eps"]
    if cfg.get("q_lora_rank"):
        cq = rms_norm(x @ P[p + "q_a_proj.weight"].T, P[p + "q_a_layernorm.weight"], eps)
        q = cq @ P[p + "q_b_proj.weight"].T
    else:
        q = x @ P[p + "q_proj.weight"].T
    q = q.reshape(B, T, H, dn + dr)
    q_nope, q_pe = q[..., :dn], rope(q[..., dn:])
    a = x @ P[p + "kv_a_proj_with_mqa.weight"].T                           # [B, T, rkv + dr]
    c_kv = rms_norm(a[..., :rkv], P[p + "kv_a_layernorm.weight"], eps)
    k_pe = rope(a[..., rkv:])                                              # raw slice, shared by heads
    kv = (c_kv @ P[p + "kv_b_proj.weight"].T).reshape(B, T, H, dn + dv)
    k_nope, v = kv[..., :dn], kv[..., dn:]
    scores = torch.einsum("bthd,bshd->bhts", q_nope, k_nope) + torch.einsum("bthd,bsd->bhts", q_pe, k_pe)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    att = torch.softmax((rope.softmax_scale * scores).masked_fill(~causal, -math.inf), dim=-1)
    o = torch.einsum("bhts,bshd->bthd", att, v).reshape(B, T, H * dv)
    return o @ P[p + "o_proj.weight"].T


def select(cfg, sel):
    """§7.2 group-limited top-K on the selection scores sel = s + b, [N, E]; no gradient.

    Returns idx [N, K] (descending by sel) and the two decision margins over all rows: K-th minus
    (K+1)-th eligible score, and Gk-th minus (Gk+1)-th group score (group score = sum of the top-2
    scores of the group; non-kept groups masked with -inf)."""
    N, E = sel.shape
    K, G, Gk = cfg["num_experts_per_tok"], cfg.get("n_group") or 1, cfg.get("topk_group") or 1
    g_margin = math.inf
    masked = sel
    if G > 1:
        gs = sel.reshape(N, G, E // G).topk(min(2, E // G), dim=-1).values.sum(-1)   # [N, G]
        gsorted, gorder = gs.sort(dim=-1, descending=True, stable=True)
        keep = torch.zeros(N, G, dtype=torch.bool)
        keep.scatter_(1, gorder[:, :Gk], True)
        masked = sel.masked_fill(~keep.repeat_interleave(E // G, dim=1), -math.inf)
        if Gk < G:
            g_margin = float((gsorted[:, Gk - 1] - gsorted[:, Gk]).min())
    vals, order = masked.sort(dim=-1, descending=True, stable=True)
    k_margin = math.inf
    if K < E:
        gap = vals[:, K - 1] - vals[:, K]
        gap = gap[torch.isfinite(vals[:, K])]
        if gap.numel():
            k_margin = float(gap.min())
    return order[:, :K], k_margin, g_margin


def moe(cfg, P, p, u, bias, trace, fixed_idx=None):
    """§7.2 MoE with V3 sigmoid / noaux_tc routing. u [B, T, d] (post_attention_layernorm output).

    The selection is a constant (contract "Router gradients"); the gating weights are gathered from the
    differentiable scores, renormalised and scaled. Appends to `trace` what the loss and the bias
    update need: the scores s [B, T, E] (with gradient), idx [B, T, K], margins."""
    assert cfg["scoring_func"] == "sigmoid" and cfg["topk_method"] == "noaux_tc", "V3 routing only"
    B, T, d = u.shape
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    x = u.reshape(B * T, d)
    s = torch.sigmoid(x @ P[p + "gate.weight"].T)                          # [N, E]
    with torch.no_grad():
        idx, k_margin, g_margin = select(cfg, s + bias[None, :])
    if fixed_idx is not None:   # finite differences: hold the selection of the unperturbed point
        assert torch.equal(idx, fixed_idx.reshape(idx.shape)), "routing flipped under perturbation"
    w = s.gather(1, idx)                                                   # scores, never the bias
    if cfg.get("norm_topk_prob") and K > 1:
        w = w / (w.sum(-1, keepdim=True) + 1e-20)
    w = w * float(cfg.get("routed_scaling_factor", 1.0))
    y = torch.zeros_like(x)
    for e in range(E):
        tok, slot = (idx == e).nonzero(as_tuple=True)
        if tok.numel() == 0:
            continue
        pe = f"{p}experts.{e}."
        out = swiglu(x[tok], P[pe + "gate_proj.weight"], P[pe + "up_proj.weight"], P[pe + "down_proj.weight"])
        y = y.index_add(0, tok, w[tok, slot][:, None] * out)
    if cfg.get("n_shared_experts"):
        ps = p + "shared_experts."
        y = y + swiglu(x, P[ps + "gate_proj.weight"], P[ps + "up_proj.weight"], P[ps + "down_proj.weight"])
    trace.append({"s": s.reshape(B, T, E), "idx": idx.reshape(B, T, K), "k_margin": k_margin,
                  "g_margin": g_margin})
    return y.reshape(B, T, d)


def block(cfg, P, layer, h, rope, biases, traces, fixed=None):
    """§3 pre-norm block. traces[layer] receives the MoE routing record."""
    p = f"model.layers.{layer}."
    eps = cfg["rms_norm_eps"]
    h = h + mla(cfg, P, p + "self_attn.", rms_norm(h, P[p + "input_layernorm.weight"], eps), rope)
    x = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
    if is_moe_layer(cfg, layer):
        tr = []
        h = h + moe(cfg, P, p + "mlp.", x, biases[bias_name(layer)], tr,
                    None if fixed is None else fixed[layer])
        traces[layer] = tr[0]
    else:
        h = h + swiglu(x, P[p + "mlp.gate_proj.weight"], P[p + "mlp.up_proj.weight"], P[p + "mlp.down_proj.weight"])
    return h


# =============================================================================================
# Training forward and loss (contract "A batch", "Loss")
# =============================================================================================


def cross_entropy_sum(logits, target, mask):
    """sum over counted positions of logsumexp(logits) - logits[target]."""
    ce = torch.logsumexp(logits, dim=-1) - logits.gather(-1, target[..., None])[..., 0]
    return (ce * mask).sum()


def balance_loss(cfg, tr):
    """§9.2 per layer: mean over windows of sum_i f_i P_i, f from the ACTUAL routed set (bias and group
    limit included, contract), n = the T positions the layer ran on. Only P carries gradient."""
    s, idx = tr["s"], tr["idx"]                                            # [B, T, E], [B, T, K]
    B, T, E = s.shape
    K = idx.shape[-1]
    counts = torch.zeros(B, E, dtype=s.dtype)
    counts.scatter_add_(1, idx.reshape(B, T * K), torch.ones(B, T * K, dtype=s.dtype))
    f = counts * (E / (K * T))
    Pi = (s / s.sum(-1, keepdim=True)).mean(1)                             # [B, E]
    return (f * Pi).sum(-1).mean()


def forward_loss(cfg, P, biases, tokens, docs, lam, alpha, fixed=None):
    """One micro-batch. tokens, docs: int arrays [B, S], S = T + D.

    Returns dict: loss (tensor with graph), main_loss, mtp_losses [D], bal_losses {layer}, n_main,
    logits [B, T, V], mtp_logits [D][B, T, V], hidden (after model.norm), traces {layer: routing record}.
    `fixed` {layer: idx [B*T, K]} asserts the selection equals a given one (finite differences)."""
    D = n_mtp(cfg)
    tok = torch.as_tensor(np.asarray(tokens), dtype=torch.long)
    doc = torch.as_tensor(np.asarray(docs), dtype=torch.long)
    B, S = tok.shape
    T = S - D
    L, eps = cfg["num_hidden_layers"], cfg["rms_norm_eps"]
    dtype = P["lm_head.weight"].dtype
    rope = Rope(cfg, T, dtype)
    emb, head = P["model.embed_tokens.weight"], P["lm_head.weight"]
    traces = {}

    # main model: reads tokens[:, 0:T], predicts tokens[:, 1:T+1]; never across a document boundary
    h = emb[tok[:, :T]]
    for layer in range(L):
        h = block(cfg, P, layer, h, rope, biases, traces, fixed)
    hn = rms_norm(h, P["model.norm.weight"], eps)
    logits = hn @ head.T
    main_mask = (doc[:, 1:T + 1] == doc[:, :T]).to(dtype)
    n_main = int(main_mask.sum())
    denom = max(n_main, 1)
    main_loss = cross_entropy_sum(logits, tok[:, 1:T + 1], main_mask) / denom

    # MTP module k (§8.2, contract): position i reads h^{k-1}_i and Emb(tokens[i+k]), predicts
    # tokens[i+k+1]; counted iff i+k+1 < S and the document is the same as at i. h^0 = post-norm hidden.
    mtp_losses, mtp_logits = [], []
    h_prev = hn
    pos = torch.arange(T)
    for k in range(1, D + 1):
        layer = L + k - 1
        p = f"model.layers.{layer}."
        e = rms_norm(emb[tok[:, k:k + T]], P[p + "enorm.weight"], eps)
        z = torch.cat([e, rms_norm(h_prev, P[p + "hnorm.weight"], eps)], dim=-1) @ P[p + "eh_proj.weight"].T
        hk = rms_norm(block(cfg, P, layer, z, rope, biases, traces, fixed), P[p + "shared_head.norm.weight"], eps)
        lg = hk @ head.T
        tgt_pos = (pos + k + 1).clamp(max=S - 1)
        valid = (pos + k + 1 < S)[None, :] & (doc.gather(1, tgt_pos.expand(B, T)) == doc[:, :T])
        mtp_losses.append(cross_entropy_sum(lg, tok.gather(1, tgt_pos.expand(B, T)), valid.to(dtype)) / denom)
        mtp_logits.append(lg)
        h_prev = hk

    bal_losses = {layer: balance_loss(cfg, tr) for layer, tr in traces.items()}
    loss = main_loss
    if D:
        loss = loss + (lam / D) * sum(mtp_losses)
    if bal_losses:
        loss = loss + alpha * sum(bal_losses[l] for l in sorted(bal_losses))
    return {"loss": loss, "main_loss": main_loss, "mtp_losses": mtp_losses, "bal_losses": bal_losses,
            "n_main": n_main, "logits": logits, "mtp_logits": mtp_logits, "hidden": hn, "traces": traces}


# =============================================================================================
# Optimiser, schedule, bias balancing (contract "Optimizer", "Learning-rate schedule", "Bias balancing")
# =============================================================================================


def lr_at(s, hp):
    """LR of 0-based update s. hp: lr, lr_min, warmup, total_steps, schedule ('cosine' | 'wsd')."""
    lr, lr_min, W, N = hp["lr"], hp["lr_min"], hp["warmup"], hp["total_steps"]
    if s < W:
        return lr * (s + 1) / W
    if hp["schedule"] == "cosine":
        return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * (s - W) / max(1, N - W)))
    if hp["schedule"] == "wsd":
        decay_start = N - max(1, int(math.ceil(0.2 * N)))   # NOTE: contract does not pin the rounding
        if s < decay_start:
            return lr
        return lr + (lr_min - lr) * (s - decay_start) / max(1, N - 1 - decay_start)
    raise ValueError(hp["schedule"])


def clip_by_global_norm(grads, clip):
    """-> (norm before clipping, clipped grads). Scale clip / (norm + 1e-6) only when norm > clip."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
    if norm > clip:
        c = clip / (norm + 1e-6)
        grads = {n: g * c for n, g in grads.items()}
    return norm, grads


class AdamW:
    """PyTorch AdamW semantics written out (contract): decoupled decay on 2-D tensors only, bias-corrected
    moments, eps outside the square root, step count from 1."""

    def __init__(self, params, beta1, beta2, eps, wd):
        self.b1, self.b2, self.eps, self.wd = beta1, beta2, eps, wd
        self.m = {n: torch.zeros_like(p) for n, p in params.items()}
        self.v = {n: torch.zeros_like(p) for n, p in params.items()}
        self.t = 0

    @torch.no_grad()
    def step(self, params, grads, lr):
        self.t += 1
        bc1, bc2 = 1 - self.b1 ** self.t, 1 - self.b2 ** self.t
        for n, p in params.items():
            g = grads[n]
            if p.dim() == 2:
                p.mul_(1 - lr * self.wd)
            self.m[n].mul_(self.b1).add_((1 - self.b1) * g)
            self.v[n].mul_(self.b2).add_((1 - self.b2) * g * g)
            p.sub_(lr * (self.m[n] / bc1) / (torch.sqrt(self.v[n] / bc2) + self.eps))


def expert_counts(cfg, tr):
    """c_i = tokens routed to expert i in this layer, over the whole micro-batch."""
    return np.bincount(tr["idx"].reshape(-1).numpy(), minlength=cfg["n_routed_experts"])


def bias_update(cfg, biases, counts, n_tokens, gamma):
    """§9.1: b_i += gamma * sign(c_bar - c_i), c_bar = K N / E; returns {layer: maxvio}."""
    E, K = cfg["n_routed_experts"], cfg["num_experts_per_tok"]
    maxvio = {}
    for layer, c in counts.items():
        cbar = K * n_tokens[layer] / E
        with torch.no_grad():
            biases[bias_name(layer)] += gamma * torch.as_tensor(np.sign(cbar - c), dtype=biases[bias_name(layer)].dtype)
        maxvio[layer] = float(np.max((c - cbar) / cbar))
    return maxvio


def train_step(cfg, P, biases, opt, tokens, docs, s, hp, perturb=None):
    """One update s (0-based) on one micro-batch (G = 1): forward + backward, global-norm clip, AdamW with
    lr_at(s), then the bias update from this step's routing. Mutates P, biases, opt.

    perturb(grads) -> grads, if given, is applied to the raw gradients (make_train_golden uses it to
    emulate an f32 engine's gradient error when it measures how robust the routing decisions are).
    Returns (log record, unclipped gradients, routing {layer: idx [B,T,K], sel = s+b [B,T,E], margins})."""
    out = forward_loss(cfg, P, biases, tokens, docs, hp["mtp_lambda"], hp["balance_alpha"])
    routing = {l: {"idx": tr["idx"].clone(), "k_margin": tr["k_margin"], "g_margin": tr["g_margin"],
                   "sel": (tr["s"].detach() + biases[bias_name(l)]).clone()}
               for l, tr in out["traces"].items()}
    names = list(P)
    g = torch.autograd.grad(out["loss"], [P[n] for n in names], allow_unused=True)
    grads = {n: (gi if gi is not None else torch.zeros_like(P[n])) for n, gi in zip(names, g)}
    if perturb is not None:
        grads = perturb(grads)
    norm, clipped = clip_by_global_norm(grads, hp["clip"])
    lr = lr_at(s, hp)
    opt.step(P, clipped, lr)
    counts = {l: expert_counts(cfg, tr) for l, tr in out["traces"].items()}
    ntok = {l: tr["idx"].shape[0] * tr["idx"].shape[1] for l, tr in out["traces"].items()}
    maxvio = bias_update(cfg, biases, counts, ntok, hp["bias_gamma"])
    layers = sorted(maxvio)
    rec = {
        "step": s, "lr": lr,
        "loss": float(out["loss"]), "main_loss": float(out["main_loss"]),
        "mtp_loss": float(sum(out["mtp_losses"])) if out["mtp_losses"] else 0.0,
        "balance_loss": float(sum(out["bal_losses"][l] for l in layers)),
        "grad_norm": norm, "clipped": norm > hp["clip"],
        "maxvio": [maxvio[l] for l in layers], "maxvio_global": max(maxvio.values()),
        "n_main": out["n_main"],
        "expert_counts": {str(l): counts[l].tolist() for l in layers},
    }
    return rec, grads, routing


def to_torch(arrays, dtype, requires_grad=False):
    return {n: torch.tensor(np.asarray(a, dtype=np.float64), dtype=dtype, requires_grad=requires_grad)
            for n, a in arrays.items()}
