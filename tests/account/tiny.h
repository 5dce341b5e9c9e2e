// Tiny hand-sized model figures shared by the formula tests: every expected number in the
// tests is computed by hand from these (the arithmetic is written next to each assertion).
#pragma once

#include "account/hardware.h"
#include "account/model_figures.h"

namespace tern::account::testing {

// MLA + MoE: d 8, 2 heads, qk 6 (nope 4 + rope 2), v 4, no q compression, kv_lora 4,
// 2 layers (1 dense with f 6, 1 MoE with 4 experts of width 2, top-2, 1 shared), vocab 16,
// one MTP module. Parameter counts are chosen round numbers, not derived from the dims.
inline ModelFigures tiny_mla() {
  ModelFigures m;
  m.name = "tiny-mla";
  m.params_total = 3000;
  m.params_activated = 1000;
  m.params_embedding = 128;  // 16 * 8
  m.params_head = 128;
  m.params_expert = 50;
  m.params_routed_experts = 200;  // 1 MoE layer x 4 experts x 50
  m.vocab_size = 16;
  m.hidden_size = 8;
  m.layers = 2;
  m.dense_layers = 1;
  m.moe_layers = 1;
  m.intermediate_size = 6;
  m.mla = true;
  m.heads = 2;
  m.kv_heads = 2;
  m.qk_head_dim = 6;
  m.v_head_dim = 4;
  m.q_lora_rank = 0;
  m.kv_lora_rank = 4;
  m.qk_rope_head_dim = 2;
  m.n_routed_experts = 4;
  m.n_shared_experts = 1;
  m.experts_per_token = 2;
  m.moe_intermediate_size = 2;
  m.mtp_layers = 1;
  m.mtp_params_total = 300;
  m.mtp_params_activated = 100;
  m.mtp_params_routed_experts = 200;
  return m;
}

// Dense GQA: d 32, 4 heads of 8, 2 KV heads, 3 layers, f 64, vocab 10, tied embeddings.
inline ModelFigures tiny_gqa() {
  ModelFigures m;
  m.name = "tiny-gqa";
  m.params_total = 5000;
  m.params_activated = 4680;
  m.params_embedding = 320;
  m.params_head = 0;
  m.vocab_size = 10;
  m.hidden_size = 32;
  m.layers = 3;
  m.dense_layers = 3;
  m.intermediate_size = 64;
  m.heads = 4;
  m.kv_heads = 2;
  m.qk_head_dim = 8;
  m.v_head_dim = 8;
  return m;
}

// A device with round figures: 4 MFLOP/s, 1 MB/s, 10 KB, 100 W.
inline Hardware tiny_device() {
  Hardware h;
  h.name = "tiny";
  h.description = "tiny test device";
  h.bf16_tflops = 4e-6;
  h.fp8_tflops = 8e-6;
  h.bandwidth_gbs = 1e-3;
  h.memory_gb = 1e-5;
  h.power_w = 100;
  h.source = "test";
  return h;
}

}  // namespace tern::account::testing
