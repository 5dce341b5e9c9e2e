// `tern convert`'s GGUF export, checked two independent ways:
//  * llama.cpp itself: tests/golden/llama_cpp holds GGUFs that the exporter wrote (one per
//    layout: qwen2, llama, deepseek2 with split attn_k_b/attn_v_b, and a q8_0 deepseek2) and the
//    logits llama.cpp computed for them (tests/reference/llama_cpp/make_fixtures.sh). tern must
//    read each file back to llama.cpp's logits, so a layout llama.cpp reads differently fails.
//  * the Python reference: every golden fixture converted here must give its reference logits.
// Plus the Q8_0/Q4_0 row quantisers against bytes written by the reference (ggml's formulas).
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "fixtures.h"
#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "formats/npy.h"
#include "kernels/quantize.h"
#include "kernels/ref/ref_ops.h"
#include "model/gguf_export.h"
#include "model/model.h"

using namespace tern;
using namespace tern::model;
using tern::test::golden;
using tern::test::read_case;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "tern_export_XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    path_ = t;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string file(const std::string& n) const { return path_ + "/" + n; }

 private:
  std::string path_;
};

Tensor logits_of(const Model& m, const std::vector<int32_t>& ids) {
  const int64_t T = int64_t(ids.size());
  Tensor out = Tensor::zeros(DType::f32, {T, m.config().vocab_size});
  KvCache cache = m.make_cache(T);
  m.forward(ids, cache, out.span_as<float>());
  return out;
}

struct Diff {
  float worst = 0, mean = 0, max_abs = 0;
  bool same_argmax = true;  // at every row whose top-2 margin in `want` exceeds the threshold
};

// `argmax_margin`: rows where want's best two logits are closer than this are not compared
// for argmax (a rounding difference may legitimately swap them).
Diff compare(const Tensor& want, const Tensor& got, float argmax_margin = 0) {
  Diff d;
  const int64_t V = want.size(1);
  const float *w = want.data_as<float>(), *g = got.data_as<float>();
  for (int64_t r = 0; r < want.size(0); ++r) {
    int64_t aw = 0, ag = 0;
    float best = -INFINITY, second = -INFINITY;
    for (int64_t v = 0; v < V; ++v) {
      if (w[r * V + v] > best)
        second = best, best = w[r * V + v];
      else if (w[r * V + v] > second)
        second = w[r * V + v];
      const int64_t i = r * V + v;
      d.max_abs = std::max(d.max_abs, std::fabs(w[i]));
      d.worst = std::max(d.worst, std::fabs(w[i] - g[i]));
      d.mean += std::fabs(w[i] - g[i]);
      if (w[i] > w[r * V + aw]) aw = v;
      if (g[i] > g[r * V + ag]) ag = v;
    }
    if (best - second > argmax_margin) d.same_argmax = d.same_argmax && aw == ag;
  }
  d.mean /= float(want.numel());
  return d;
}

// Writes `m` as GGUF to `path` as `tern convert` does.
void export_to(const Model& m, const std::string& path, std::optional<DType> type) {
  GgufExportOptions o;
  o.type = type;
  GgufExport plan = plan_gguf_export(m, o);
  formats::write_gguf(path, plan.metadata, plan.specs,
                      [&](size_t i, const formats::GgufSink& sink) { plan.writers[i](sink); });
}

// ---- llama.cpp's own logits ----

// f32 weights, f32 KV cache on both sides: only summation order differs. Observed worst
// |error| <= 2.7e-6 on logits of magnitude ~3.5; the same tolerance as the reference goldens
// (3e-5 * max|logit| + 1e-6) leaves ~30x headroom, while a transposed k_b, an unpermuted q/k or
// a wrong YaRN key moves logits by 1e-2 or more.
TEST(LlamaCppGolden, F32FilesGiveLlamaCppsLogits) {
  for (const char* name : {"qwen2", "llama", "deepseek2"}) {
    SCOPED_TRACE(name);
    const std::string dir = golden(std::string("llama_cpp/") + name);
    const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
    const Model m = Model::load(dir + "/model.gguf");
    const Tensor want = formats::read_npy(dir + "/llama_cpp_logits.npy");
    const Diff d = compare(want, logits_of(m, ids));
    std::printf("%-10s worst |tern - llama.cpp| %.3g (max |logit| %.3g)\n", name, double(d.worst),
                double(d.max_abs));
    EXPECT_LE(d.worst, 3e-5f * d.max_abs + 1e-6f);
    EXPECT_TRUE(d.same_argmax);
  }
}

// q8_0: llama.cpp also rounds the activations to 8 bits before every matmul (tern keeps them
// f32), and over three layers with top-2-of-8 routing that moves the logits by up to ~0.12
// (observed worst 0.12, mean 0.019). The check is that llama.cpp reads the same Q8_0 blocks
// and the same model: errors of that size, not of order 1, and the same argmax wherever
// llama.cpp's top-2 margin exceeds the error bound.
TEST(LlamaCppGolden, Q8FileGivesLlamaCppsLogitsWithinActivationRounding) {
  const std::string dir = golden("llama_cpp/deepseek2_q8_0");
  const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
  const Model m = Model::load(dir + "/model.gguf");
  const Diff d =
      compare(formats::read_npy(dir + "/llama_cpp_logits.npy"), logits_of(m, ids), 0.25f);
  std::printf("q8_0 worst |tern - llama.cpp| %.3g, mean %.3g\n", double(d.worst), double(d.mean));
  EXPECT_LE(d.worst, 0.25f);
  EXPECT_LE(d.mean, 0.03f);
  EXPECT_TRUE(d.same_argmax);
}

// ---- round trips against the Python reference ----

struct RoundTrip {
  const char* fixture;
  std::optional<DType> type;
  float rel_tol;  // of max|logit|
};

// f32 and the source's own types reproduce the reference to the golden tolerance; a Q8_0/Q4_0
// source re-quantised from its own dequantised values gets back the same blocks.
TEST(GgufExport, ConvertedFixturesGiveTheReferenceLogits) {
  const RoundTrip cases[] = {
      {"qwen2_tiny", DType::f32, 3e-5f},       {"llama3_tiny", DType::f32, 3e-5f},
      {"v2_lite_tiny", DType::f32, 3e-5f},     {"v2_tiny", DType::f32, 3e-5f},
      {"qwen2_gguf", std::nullopt, 3e-5f},     {"llama3_gguf", std::nullopt, 3e-5f},
      {"deepseek2_gguf", std::nullopt, 3e-5f}, {"deepseek3_gguf", std::nullopt, 3e-5f},
      {"qwen2_tiny", std::nullopt, 3e-5f},  // bf16 source kept as bf16
  };
  for (const RoundTrip& rt : cases) {
    SCOPED_TRACE(rt.fixture);
    const std::string dir = golden(rt.fixture);
    const nlohmann::json cs = read_case(dir);
    const auto ids = cs.at("ids").get<std::vector<int32_t>>();
    const bool is_gguf = std::filesystem::exists(dir + "/model.gguf");
    TempDir tmp;
    {
      const Model src = Model::load(is_gguf ? dir + "/model.gguf" : dir);
      export_to(src, tmp.file("m.gguf"), rt.type);
    }
    const Model back = Model::load(tmp.file("m.gguf"));
    const Diff d = compare(formats::read_npy(dir + "/logits.npy"), logits_of(back, ids));
    EXPECT_LE(d.worst, rt.rel_tol * d.max_abs + 1e-6f) << "worst " << d.worst;
    EXPECT_TRUE(d.same_argmax);
  }
}

// FP8 blocks (GGUF has no FP8) become bf16 by default and f32 on request. f32 holds every
// dequantised weight to 2^-24, so its logits match the reference to the golden tolerance
// (observed 2.9e-6), which a lost or misplaced block scale could not. bf16 rounds each weight
// by up to 2^-9 relative; over two layers of width 160 that moves the logits by a mean 0.007
// and at most 0.078 of max|logit| 3.8 (observed); bounds 0.02 and 5% leave headroom.
TEST(GgufExport, Fp8WeightsBecomeBf16OrExactF32) {
  const std::string dir = golden("v3_fp8");
  const auto ids = read_case(dir).at("ids").get<std::vector<int32_t>>();
  const Tensor want = formats::read_npy(dir + "/logits.npy");
  TempDir tmp;
  {
    const Model src = Model::load(dir);
    const GgufExport plan = plan_gguf_export(src, GgufExportOptions());
    for (const auto& s : plan.specs)
      EXPECT_TRUE(s.ggml_type == formats::ggml_type_from_dtype(DType::bf16) ||
                  s.ggml_type == formats::ggml_type_from_dtype(DType::f32))
          << s.name << " is " << formats::ggml_type_name(s.ggml_type);
    export_to(src, tmp.file("bf16.gguf"), std::nullopt);
    export_to(src, tmp.file("f32.gguf"), DType::f32);
  }
  const formats::GgufFile f = formats::GgufFile::open(tmp.file("bf16.gguf"));
  EXPECT_EQ(f.find("blk.0.attn_q_a.weight")->ggml_type, formats::ggml_type_from_dtype(DType::bf16));
  EXPECT_EQ(f.metadata().get_u32("general.file_type"), 32u);  // LLAMA_FTYPE_MOSTLY_BF16
  const Diff exact = compare(want, logits_of(Model::load(tmp.file("f32.gguf")), ids));
  EXPECT_LE(exact.worst, 3e-5f * exact.max_abs + 1e-6f) << "worst " << exact.worst;
  const Diff rounded = compare(want, logits_of(Model::load(tmp.file("bf16.gguf")), ids));
  EXPECT_LE(rounded.mean, 0.02f);
  EXPECT_LE(rounded.worst, 0.05f * rounded.max_abs) << "worst " << rounded.worst;
  EXPECT_TRUE(rounded.same_argmax);
}

// The split MLA layout llama.cpp's deepseek2 requires, checked on the file itself.
TEST(GgufExport, DeepSeekUsesTheSplitMlaLayout) {
  TempDir tmp;
  const Model src = Model::load(golden("v2_lite_tiny"));
  const ModelConfig& c = src.config();
  export_to(src, tmp.file("m.gguf"), DType::f32);
  const formats::GgufFile f = formats::GgufFile::open(tmp.file("m.gguf"));
  const auto& md = f.metadata();
  EXPECT_EQ(md.get_string("general.architecture"), "deepseek2");
  EXPECT_EQ(md.get_u32("deepseek2.attention.head_count_kv"), 1u);
  EXPECT_EQ(md.get_u32("deepseek2.attention.key_length"),
            uint32_t(c.kv_lora_rank + c.qk_rope_head_dim));
  EXPECT_EQ(md.get_u32("deepseek2.attention.value_length"), uint32_t(c.kv_lora_rank));
  EXPECT_EQ(md.get_u32("deepseek2.attention.key_length_mla"), uint32_t(c.qk_head_dim()));
  EXPECT_EQ(md.get_u32("deepseek2.attention.value_length_mla"), uint32_t(c.v_head_dim));
  EXPECT_FALSE(f.has_tensor("blk.0.attn_kv_b.weight"));
  const uint64_t H = uint64_t(c.num_attention_heads);
  EXPECT_EQ(f.find("blk.0.attn_k_b.weight")->ne,
            (std::vector<uint64_t>{uint64_t(c.qk_nope_head_dim), uint64_t(c.kv_lora_rank), H}));
  EXPECT_EQ(f.find("blk.0.attn_v_b.weight")->ne,
            (std::vector<uint64_t>{uint64_t(c.kv_lora_rank), uint64_t(c.v_head_dim), H}));
  EXPECT_EQ(f.find("blk.1.ffn_gate_exps.weight")->ne,
            (std::vector<uint64_t>{uint64_t(c.hidden_size), uint64_t(c.moe_intermediate_size),
                                   uint64_t(c.n_routed_experts)}));
  EXPECT_EQ(f.find("blk.1.ffn_gate_inp.weight")->ggml_type, 0u);  // router stays f32
}

// llama3 scaling is carried by rope_freqs divisors: the same values the reference's converter
// stored for the same model.
TEST(GgufExport, Llama3ScalingBecomesRopeFreqs) {
  TempDir tmp;
  export_to(Model::load(golden("llama3_tiny")), tmp.file("m.gguf"), DType::f32);
  const formats::GgufFile mine = formats::GgufFile::open(tmp.file("m.gguf"));
  const formats::GgufFile ref = formats::GgufFile::open(golden("llama3_gguf/model.gguf"));
  const Tensor a = mine.tensor("rope_freqs.weight"), b = ref.tensor("rope_freqs.weight");
  ASSERT_EQ(a.numel(), b.numel());
  for (int64_t i = 0; i < a.numel(); ++i)
    EXPECT_NEAR(a.data_as<float>()[i], b.data_as<float>()[i], 1e-6f * b.data_as<float>()[i]);
  EXPECT_FALSE(mine.has_tensor("output.weight"));  // tied head
}

TEST(GgufExport, RefusesWhatGgufCannotExpress) {
  const Model m = Model::load(golden("v3_tiny"));  // YaRN mscale 0.9, mscale_all_dim 0.8
  try {
    plan_gguf_export(m, GgufExportOptions());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("mscale"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot express"), std::string::npos) << e.what();
  }
}

TEST(GgufExport, NotesWhatIsLeftOutOrStoredDifferently) {
  GgufExportOptions o;
  o.type = DType::q4_0;
  const Model m = Model::load(golden("v2_lite_tiny"));
  const GgufExport plan = plan_gguf_export(m, o);
  std::string all;
  for (const auto& n : plan.notes) all += n + "\n";
  EXPECT_NE(all.find("not whole blocks of 32"), std::string::npos) << all;
  EXPECT_NE(all.find("attn_k_b matrices stored as f32"), std::string::npos) << all;
  EXPECT_NE(all.find("output head(s) stored as q8_0"), std::string::npos) << all;
  bool has_head = false;
  for (const auto& s : plan.specs) {
    if (s.name != "output.weight") continue;
    has_head = true;
    EXPECT_EQ(s.ggml_type, formats::ggml_type_from_dtype(DType::q8_0));
  }
  EXPECT_TRUE(has_head);
}

// ---- row quantisers ----

// The reference wrote its Q8_0/Q4_0 blocks with ggml's formulas; dequantising a row and
// quantising it again must give the same bytes (the scale d is recovered exactly from amax).
TEST(QuantizeRow, ReproducesGgmlBlocks) {
  int checked = 0;
  for (const char* name : {"qwen2_gguf", "deepseek3_gguf"}) {
    const formats::GgufFile f = formats::GgufFile::open(golden(std::string(name) + "/model.gguf"));
    for (const auto& t : f.tensors()) {
      if (!t.dtype || (*t.dtype != DType::q8_0 && *t.dtype != DType::q4_0)) continue;
      const Tensor raw = f.tensor(t);
      const int64_t cols = int64_t(t.ne[0]), rows = raw.numel() / cols;
      const kernels::WeightView v{*t.dtype, rows, cols, raw.data()};
      std::vector<float> x(static_cast<size_t>(cols));
      std::vector<uint8_t> q(size_t(v.row_bytes()));
      for (int64_t r = 0; r < rows; ++r) {
        kernels::ref::dequant_row(v, r, 0, cols, x.data());
        kernels::quantize_row(*t.dtype, x.data(), cols, q.data());
        ASSERT_EQ(std::memcmp(q.data(), v.row_ptr(r), q.size()), 0) << t.name << " row " << r;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 10);
}

TEST(QuantizeRow, ErrorIsWithinTheStep) {
  std::vector<float> x(64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(float(i) * 0.7f) * float(i % 7);
  x[3] = 0;
  for (DType t : {DType::q8_0, DType::q4_0}) {
    std::vector<uint8_t> q(size_t(dtype_bytes_for(t, 64)));
    kernels::quantize_row(t, x.data(), 64, q.data());
    std::vector<float> back(64);
    kernels::ref::dequant_row(kernels::WeightView{t, 1, 64, q.data()}, 0, 0, 64, back.data());
    for (int b = 0; b < 2; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[size_t(b * 32 + j)]));
      // Rounding costs half a step, the f16 scale up to |q| * 2^-11 steps more; Q4_0's codes
      // run -8..7 with the largest magnitude at -8, so its opposite extreme clamps (a step).
      const float step = t == DType::q8_0 ? amax / 127 : amax / 8;
      const float bound = t == DType::q8_0 ? 0.57f * step : 1.01f * step;
      for (int j = 0; j < 32; ++j)
        EXPECT_LE(std::fabs(back[size_t(b * 32 + j)] - x[size_t(b * 32 + j)]), bound + 1e-6f)
            << dtype_name(t) << " element " << b * 32 + j;
    }
  }
  EXPECT_THROW(kernels::quantize_row(DType::q8_0, x.data(), 33, nullptr), Error);
}

}  // namespace

// ---- k-quant export ----

namespace {

std::map<std::string, uint32_t> tensor_types(const std::string& path) {
  std::map<std::string, uint32_t> out;
  const formats::GgufFile f = formats::GgufFile::open(path);
  for (const auto& t : f.tensors()) out[t.name] = t.ggml_type;
  return out;
}

}  // namespace

// --type q4_k_m / q5_k_m pick each tensor's type as llama-quantize does for the same model
// (tests/golden/llama_cpp_quants: output head and the more-bits layers' attn_v / ffn_down in
// Q6_K, the rest in the base type).
TEST(GgufExport, MediumMixesChooseTypesAsLlamaQuantize) {
  for (const char* mix : {"q4_k_m", "q5_k_m"}) {
    SCOPED_TRACE(mix);
    const std::string llama = golden(std::string("llama_cpp_quants/qwen2_") + mix + "/model.gguf");
    TempDir tmp;
    {
      const Model src = Model::load(llama);
      GgufExportOptions o;
      parse_gguf_export_type(mix, &o);
      EXPECT_TRUE(o.medium_mix);
      GgufExport plan = plan_gguf_export(src, o);
      formats::write_gguf(tmp.file("m.gguf"), plan.metadata, plan.specs,
                          [&](size_t i, const formats::GgufSink& sink) { plan.writers[i](sink); });
    }
    EXPECT_EQ(tensor_types(tmp.file("m.gguf")), tensor_types(llama));
    const auto f = formats::GgufFile::open(tmp.file("m.gguf"));
    EXPECT_EQ(f.metadata().get_u32("general.file_type"), std::string(mix) == "q4_k_m" ? 15u : 17u);
  }
  GgufExportOptions o;
  try {
    parse_gguf_export_type("iq2_xxs", &o);
    ADD_FAILURE() << "iq2_xxs is not a type tern encodes";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    EXPECT_NE(std::string(e.what()).find("q4_k_m"), std::string::npos) << e.what();
  }
}

// A GGUF whose matrices are in ggml block types tern does not encode (IQ1_S, IQ2_XXS, ...) is
// written again with --type auto by copying each block matrix byte for byte (attn_k_b aside:
// the exporter stores it in f32, see matrix_type).
TEST(GgufExport, QuantisedSourcesAreCopiedAsStored) {
  const std::string src_path = golden("llama_cpp_quants/deepseek3_dynamic_iq1_s/model.gguf");
  TempDir tmp;
  {
    const Model src = Model::load(src_path);
    export_to(src, tmp.file("m.gguf"), std::nullopt);
  }
  const auto a = formats::GgufFile::open(src_path), b = formats::GgufFile::open(tmp.file("m.gguf"));
  int copied = 0;
  for (const auto& t : a.tensors()) {
    const formats::GgufTensorInfo* u = b.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    if (t.name.ends_with("attn_k_b.weight")) continue;
    EXPECT_EQ(u->ggml_type, t.ggml_type) << t.name;
    if (!t.dtype || !dtype_is_ggml_block(*t.dtype)) continue;
    ASSERT_EQ(u->nbytes, t.nbytes) << t.name;
    EXPECT_EQ(std::memcmp(a.file()->data() + t.file_offset, b.file()->data() + u->file_offset,
                          size_t(t.nbytes)),
              0)
        << t.name;
    ++copied;
  }
  EXPECT_GE(copied, 10);
}
