"""The training step of `tern train` (docs/training.md) written the way a PyTorch user tunes it for
CPU speed: the PyTorch side of the training-speed race (issue #16).

Same model, loss and update as tests/reference/train_ref.py (which is written for clarity and is
checked against the contract); check_fast_model.py asserts that the two give the same loss and
gradients. What is different is only how it is computed:

- every projection is one nn.functional.linear over all B*T rows;
- attention is one batched matmul per side over [B, H, T, dn + dr] (q_nope|q_pe against
  k_nope|k_pe, the softmax scale folded into q) with a precomputed additive causal mask
  (torch 1.13 has no scaled_dot_product_attention);
- routing is topk on [N, E] (group scores by topk over [N, G, E/G]), no sort of every row;
- the MoE runs grouped by expert: the N*K (token, slot) pairs are sorted by expert once, the rows
  gathered with one index_select, one SwiGLU per expert on its contiguous block, scaled by the
  gate weights and summed back into the tokens with one index_add;
- one embedding lookup for all S positions (the MTP module reads a shifted slice of it), one
  lm_head matmul and one cross_entropy over the main and MTP rows together;
- torch.optim.AdamW (foreach) with two groups (decay on matrices only), clip_grad_norm_.

Parameters are a dict {HF name: leaf tensor} with exactly train_ref.param_shapes(cfg); the MoE
correction biases a dict {bias name: tensor}, as in train_ref.
"""
from __future__ import annotations

import math
import os
import sys

import torch
import torch.nn.functional as F

_REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference")
sys.path.insert(0, _REF)
from deepseek_ref import deepseek_rope_params  # noqa: E402  (config -> rope frequencies / scale only)
from train_ref import bias_name, is_moe_layer, lr_at, n_mtp, param_shapes  # noqa: E402,F401


def rms_norm(x, w, eps):
    """In at least f32 (as HF's DeepseekV3RMSNorm): under autocast the q/kv latents come out of
    their projections in bf16."""
    if x.dtype in (torch.bfloat16, torch.float16):
        x = x.float()
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def swiglu(x, wg, wu, wd):
    return F.linear(F.silu(F.linear(x, wg)) * F.linear(x, wu), wd)


class FastModel:
    """Holds the per-shape constants (rope tables, causal mask) for windows of T positions."""

    def __init__(self, cfg, T, dtype=torch.float32, pad_rows=1, ce_rows=1024):
        """pad_rows > 1 pads every expert's row block to a multiple of it (for bf16, see moe);
        ce_rows: rows per chunk of the lm_head + cross-entropy."""
        self.cfg, self.T, self.dtype, self.pad_rows = cfg, T, dtype, pad_rows
        self.L, self.D = cfg["num_hidden_layers"], n_mtp(cfg)
        self.eps = cfg["rms_norm_eps"]
        self.H = cfg["num_attention_heads"]
        self.dn, self.dr, self.dv = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
        self.rkv = cfg["kv_lora_rank"]
        self.E, self.K = cfg.get("n_routed_experts"), cfg.get("num_experts_per_tok")
        self.G, self.Gk = cfg.get("n_group") or 1, cfg.get("topk_group") or 1
        self.norm_topk = bool(cfg.get("norm_topk_prob")) and (self.K or 0) > 1
        self.scale_w = float(cfg.get("routed_scaling_factor", 1.0))
        if self.E:
            assert cfg["scoring_func"] == "sigmoid" and cfg["topk_method"] == "noaux_tc", "V3 routing only"
        inv, mult, self.softmax_scale = deepseek_rope_params(cfg)
        pos = torch.arange(T, dtype=torch.float64)[:, None] * torch.as_tensor(inv, dtype=torch.float64)[None]
        self.cos = (torch.cos(pos) * mult).to(dtype)                       # [T, dr/2]
        self.sin = (torch.sin(pos) * mult).to(dtype)
        self.mask = torch.full((T, T), -math.inf, dtype=dtype).triu(1)     # additive causal mask
        self.ce_rows = ce_rows

    # -- layers ----------------------------------------------------------------------------

    def rope(self, x):
        """Interleaved pairs (x[2i], x[2i+1]) rotated by frequency i; x [..., T, dr]."""
        x2 = x.unflatten(-1, (-1, 2))
        x0, x1 = x2[..., 0], x2[..., 1]
        c, s = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)

    def mla(self, P, p, x):
        B, T, _ = x.shape
        H, dn, dr, dv, eps = self.H, self.dn, self.dr, self.dv, self.eps
        if self.cfg.get("q_lora_rank"):
            q = F.linear(rms_norm(F.linear(x, P[p + "q_a_proj.weight"]), P[p + "q_a_layernorm.weight"], eps),
                         P[p + "q_b_proj.weight"])
        else:
            q = F.linear(x, P[p + "q_proj.weight"])
        q = q.view(B, T, H, dn + dr).transpose(1, 2)                        # [B, H, T, dn + dr]
        a = F.linear(x, P[p + "kv_a_proj_with_mqa.weight"])                # [B, T, rkv + dr]
        c_kv = rms_norm(a[..., :self.rkv], P[p + "kv_a_layernorm.weight"], eps)
        k_pe = self.rope(a[..., self.rkv:]).unsqueeze(1)                   # [B, 1, T, dr]
        kv = F.linear(c_kv, P[p + "kv_b_proj.weight"]).view(B, T, H, dn + dv).transpose(1, 2)
        k = torch.cat((kv[..., :dn], k_pe.expand(B, H, T, dr).to(kv.dtype)), dim=-1)
        q = torch.cat((q[..., :dn], self.rope(q[..., dn:])), dim=-1) * self.softmax_scale
        scores = torch.matmul(q, k.transpose(-1, -2)) + self.mask        # f32 (f64) softmax
        att = torch.softmax(scores, dim=-1)
        o = torch.matmul(att.to(kv.dtype), kv[..., dn:])                    # [B, H, T, dv]
        return F.linear(o.transpose(1, 2).reshape(B, T, H * dv), P[p + "o_proj.weight"])

    def route(self, s, bias):
        """Group-limited top-K on s + bias (no gradient) -> idx [N, K]."""
        with torch.no_grad():
            sel = s + bias
            N, E = sel.shape
            if self.G > 1:
                g = sel.view(N, self.G, E // self.G)
                gs = g.topk(min(2, E // self.G), dim=-1).values.sum(-1)        # [N, G]
                keep = torch.zeros_like(gs, dtype=torch.bool)
                keep.scatter_(1, gs.topk(self.Gk, dim=-1).indices, True)
                sel = g.masked_fill(~keep.unsqueeze(-1), -math.inf).view(N, E)
            return sel.topk(self.K, dim=-1).indices

    def moe(self, P, p, u, bias):
        B, T, d = u.shape
        E, K = self.E, self.K
        x = u.reshape(B * T, d)
        with torch.autocast("cpu", enabled=False):  # router in full precision (as any bf16 recipe)
            s = torch.sigmoid(F.linear(x.to(P[p + "gate.weight"].dtype), P[p + "gate.weight"]))  # [N, E]
        idx = self.route(s.detach(), bias)                                  # [N, K]
        w = s.gather(1, idx)
        if self.norm_topk:
            w = w / (w.sum(-1, keepdim=True) + 1e-20)
        w = w * self.scale_w
        # grouped by expert: (token, slot) pairs sorted by expert, one GEMM chain per expert
        flat = idx.reshape(-1)
        order = torch.argsort(flat)
        cnt = torch.bincount(flat, minlength=E)
        tok = torch.div(order, K, rounding_mode="floor")
        if self.pad_rows > 1:
            # each expert's block padded to a multiple of pad_rows rows (padding rows read token 0
            # and are dropped after): few distinct GEMM shapes, so oneDNN reuses its primitives
            # instead of creating new ones for every expert's token count in every step
            pc = torch.div(cnt + self.pad_rows - 1, self.pad_rows, rounding_mode="floor") * self.pad_rows
            shift = (pc.cumsum(0) - pc) - (cnt.cumsum(0) - cnt)
            dest = shift.index_select(0, flat.index_select(0, order)) + torch.arange(flat.numel())
            rows = torch.zeros(int(pc.sum()), dtype=torch.long).index_copy_(0, dest, tok)
            counts = pc.tolist()
        else:
            rows, counts = tok, cnt.tolist()
        xs = x.index_select(0, rows)
        outs = []
        for e, xe in enumerate(torch.split(xs, counts)):
            if counts[e] == 0:
                continue
            pe = f"{p}experts.{e}."
            outs.append(swiglu(xe, P[pe + "gate_proj.weight"], P[pe + "up_proj.weight"], P[pe + "down_proj.weight"]))
        out = torch.cat(outs)
        if self.pad_rows > 1:
            out = out.index_select(0, dest)
        out = out * w.reshape(-1).index_select(0, order).unsqueeze(1).to(out.dtype)
        y = torch.zeros(B * T, d, dtype=out.dtype).index_add(0, tok, out)
        if self.cfg.get("n_shared_experts"):
            ps = p + "shared_experts."
            y = y + swiglu(x, P[ps + "gate_proj.weight"], P[ps + "up_proj.weight"], P[ps + "down_proj.weight"])
        # balance loss (§9.2, per window): f from the routed set, P from normalised scores
        cnt = torch.zeros(B, E, dtype=s.dtype).scatter_add_(
            1, idx.view(B, T * K), torch.ones(B, T * K, dtype=s.dtype))
        f = cnt * (E / (K * T))
        Pi = (s / s.sum(-1, keepdim=True)).view(B, T, E).mean(1)
        bal = (f * Pi).sum(-1).mean()
        return y.view(B, T, d), bal, idx

    def block(self, P, layer, h, biases, routing, bals):
        p = f"model.layers.{layer}."
        eps = self.eps
        h = h + self.mla(P, p + "self_attn.", rms_norm(h, P[p + "input_layernorm.weight"], eps))
        x = rms_norm(h, P[p + "post_attention_layernorm.weight"], eps)
        if is_moe_layer(self.cfg, layer):
            y, bal, idx = self.moe(P, p + "mlp.", x, biases[bias_name(layer)])
            routing[layer] = idx
            bals.append(bal)
            return h + y
        return h + swiglu(x, P[p + "mlp.gate_proj.weight"], P[p + "mlp.up_proj.weight"], P[p + "mlp.down_proj.weight"])

    # -- loss ------------------------------------------------------------------------------

    def forward_loss(self, P, biases, tok, doc, lam, alpha):
        """tok, doc: long tensors [B, S], S = T + D. -> (loss, parts dict, routing {layer: idx [N, K]})."""
        B, S = tok.shape
        T, D, L, eps = self.T, self.D, self.L, self.eps
        assert S == T + D
        emb_all = F.embedding(tok, P["model.embed_tokens.weight"])          # [B, S, d], one lookup
        routing, bals = {}, []
        h = emb_all[:, :T]
        for layer in range(L):
            h = self.block(P, layer, h, biases, routing, bals)
        hn = rms_norm(h, P["model.norm.weight"], eps)
        # targets and weights of every row of the one lm_head / CE: main rows, then MTP module rows
        main_mask = (doc[:, 1:T + 1] == doc[:, :T])
        n_main = int(main_mask.sum())
        denom = float(max(n_main, 1))
        hs, tgts, wts = [hn], [tok[:, 1:T + 1]], [main_mask.to(hn.dtype) / denom]
        pos = torch.arange(T)
        h_prev = hn
        for k in range(1, D + 1):
            layer = L + k - 1
            p = f"model.layers.{layer}."
            e = rms_norm(emb_all[:, k:k + T], P[p + "enorm.weight"], eps)
            z = F.linear(torch.cat((e, rms_norm(h_prev, P[p + "hnorm.weight"], eps)), dim=-1), P[p + "eh_proj.weight"])
            z = z.to(hn.dtype)   # the MTP block's residual stream in f32 too (eh_proj ran in bf16 under autocast)
            hk = rms_norm(self.block(P, layer, z, biases, routing, bals), P[p + "shared_head.norm.weight"], eps)
            tgt_pos = (pos + k + 1).clamp(max=S - 1).expand(B, T)
            valid = (pos + k + 1 < S)[None, :] & (doc.gather(1, tgt_pos) == doc[:, :T])
            hs.append(hk)
            tgts.append(tok.gather(1, tgt_pos))
            wts.append(valid.to(hn.dtype) * (lam / D / denom))
            h_prev = hk
        V = P["lm_head.weight"].shape[0]
        # one lm_head + CE over all (1 + D) B T rows, in row chunks of CE_ROWS: every logits tensor
        # stays below glibc's 32 MB mmap threshold (reused from the heap instead of page-faulted in
        # each step) and a chunk's logits are still in cache when the CE reads them
        x, tgt = torch.cat(hs, dim=0).reshape(-1, hn.shape[-1]), torch.cat(tgts).reshape(-1)
        ce = torch.cat([F.cross_entropy(F.linear(xc, P["lm_head.weight"]).to(self.dtype), tc, reduction="none")
                        for xc, tc in zip(x.split(self.ce_rows), tgt.split(self.ce_rows))])
        wt = torch.cat(wts).reshape(-1).to(self.dtype)   # CE in f32 (f64 for the check) also under autocast
        per = (ce * wt).view(1 + D, -1).sum(-1)                             # main, lam/D * mtp_k ...
        loss = per.sum()
        bal = torch.stack(bals).sum() if bals else torch.zeros((), dtype=loss.dtype)
        loss = loss + alpha * bal.to(loss.dtype)
        parts = {"main_loss": per[0], "mtp_losses": [per[k] * (D / lam) for k in range(1, D + 1)] if lam else [],
                 "balance_loss": bal, "n_main": n_main}
        return loss, parts, routing


# =============================================================================================
# The training step (contract "Optimizer", "Learning-rate schedule", "Bias balancing")
# =============================================================================================


def make_optimizer(P, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, wd=0.1):
    """PyTorch AdamW, decoupled decay on 2-D tensors only, foreach kernels. train_step gives every
    parameter a .grad (zeros for experts that received no token), so those still get decay and
    moment decay as the contract and train_ref do, instead of being skipped as grad=None."""
    mats = [t for t in P.values() if t.dim() == 2]
    vecs = [t for t in P.values() if t.dim() != 2]
    kw = {"foreach": True} if "foreach" in torch.optim.AdamW.__init__.__code__.co_varnames else {}
    return torch.optim.AdamW([{"params": mats, "weight_decay": wd}, {"params": vecs, "weight_decay": 0.0}],
                             lr=lr, betas=betas, eps=eps, **kw)


def train_step(model, P, biases, opt, tok, doc, s, hp, autocast_dtype=None):
    """One update s (0-based): forward (optionally under CPU autocast), backward, clip, AdamW at
    lr_at(s), bias update. Returns (loss float, grad norm before clipping float)."""
    opt.zero_grad(set_to_none=True)   # backward then stores each gradient instead of adding it
    if autocast_dtype is not None:
        with torch.autocast("cpu", dtype=autocast_dtype):
            loss, parts, routing = model.forward_loss(P, biases, tok, doc, hp["mtp_lambda"], hp["balance_alpha"])
    else:
        loss, parts, routing = model.forward_loss(P, biases, tok, doc, hp["mtp_lambda"], hp["balance_alpha"])
    loss.backward()
    for t in P.values():              # experts that got no token: zero gradient (decay and moments still run)
        if t.grad is None:
            t.grad = torch.zeros_like(t)
    norm = torch.nn.utils.clip_grad_norm_(list(P.values()), hp["clip"])
    lr = lr_at(s, hp)
    for g in opt.param_groups:
        g["lr"] = lr
    opt.step()
    with torch.no_grad():   # b_i += gamma * sign(K N / E - c_i)
        for layer, idx in routing.items():
            b = biases[bias_name(layer)]
            c = torch.bincount(idx.reshape(-1), minlength=b.numel()).to(b.dtype)
            b += hp["bias_gamma"] * torch.sign(idx.numel() / b.numel() - c)
    return float(loss), float(norm)
