// `tern convert MODEL --to gguf OUT.gguf [--type ...]`: a model (HF directory or GGUF) written
// as a llama.cpp GGUF (deepseek2, qwen2, llama layouts), so it runs in llama.cpp / ollama and
// both engines can be measured on the same bytes. The file is written atomically; the
// tokenizer comes from the model's folder (tokenizer.json) or, for a GGUF, its own keys.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/progress.h"
#include "formats/ggml_types.h"
#include "formats/gguf.h"
#include "model/gguf_export.h"
#include "model/model.h"
#include "tokenizer/gguf_vocab.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;

struct ConvertArgs {
  std::string model, out, to = "gguf", type = "auto", name, tokenizer, tokenizer_pre;
  bool force = false;
  ThreadsFlag threads;
};

// The tokenizer keys: from --tokenizer DIR, else a GGUF's own, else those of tokenizer.json
// beside the weights.
formats::GgufMetadata tokenizer_keys(const std::string& path, const model::Model& m,
                                     const ConvertArgs& a, std::vector<std::string>* notes) {
  formats::GgufMetadata keys;
  if (path.ends_with(".gguf") && a.tokenizer.empty()) {
    const formats::GgufFile f = formats::GgufFile::open(path);
    for (const auto& k : f.metadata().keys())
      if (k.starts_with("tokenizer.")) keys.add(k, f.metadata().get(k));
    if (keys.size() == 0) notes->push_back("the source GGUF has no tokenizer keys");
    return keys;
  }
  const std::string dir = resolve_model_dir(a.tokenizer.empty() ? path : a.tokenizer);
  if (!a.tokenizer.empty() && !fs::exists(fs::path(dir) / "tokenizer.json"))
    fail(ErrorKind::io, "--tokenizer " + a.tokenizer + ": no tokenizer.json there");
  if (!fs::exists(fs::path(dir) / "tokenizer.json")) {
    notes->push_back(
        "no tokenizer.json beside the weights: the GGUF has no vocabulary, which "
        "llama.cpp needs to load it");
    return keys;
  }
  tokenizer::GgufVocab v =
      tokenizer::gguf_vocab_from_dir(dir, m.config().vocab_size, a.tokenizer_pre);
  notes->insert(notes->end(), v.notes.begin(), v.notes.end());
  return std::move(v.keys);
}

void run_convert(const ConvertArgs& a) {
  apply_threads(a.threads);
  require_new_output(a.out, a.force);
  if (a.out == "-") fail(ErrorKind::request, "convert writes a file; '-' (stdout) is not one");
  model::GgufExportOptions o;
  model::parse_gguf_export_type(a.type, &o);
  const std::string path = resolve_model_path(a.model);
  const auto start = std::chrono::steady_clock::now();
  const model::Model m = model::Model::load(path);
  std::vector<std::string> notes;
  o.extra = tokenizer_keys(path, m, a, &notes);
  o.name = a.name.empty() ? fs::path(resolve_model_dir(path)).filename().string() : a.name;
  model::GgufExport plan = model::plan_gguf_export(m, o);
  notes.insert(notes.end(), plan.notes.begin(), plan.notes.end());

  const uint64_t total = plan.data_bytes();
  // Counted in MB (10^6 bytes) so the progress lines stay readable for 100 GB files.
  Progress progress("writing " + a.out, int64_t((total + 999999) / 1000000), "MB");
  uint64_t written = 0;
  formats::write_gguf(a.out, plan.metadata, plan.specs,
                      [&](size_t i, const formats::GgufSink& sink) {
                        plan.writers[i]([&](const void* data, size_t n) {
                          sink(data, n);
                          const uint64_t before = written / 1000000;
                          written += n;
                          progress.advance(int64_t(written / 1000000 - before));
                        });
                      });
  progress.finish();
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::map<std::string, int> by_type;
  for (const auto& s : plan.specs) ++by_type[formats::ggml_type_name(s.ggml_type)];
  std::string types;
  for (const auto& [t, n] : by_type)
    types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + t;
  for (const auto& n : notes) std::fprintf(stderr, "note: %s\n", n.c_str());
  std::printf("wrote %s: %s %s, %zu tensors (%s), %s of tensor data in %.1f s\n", a.out.c_str(),
              plan.metadata.get_string("general.architecture").c_str(),
              a.type == "auto" ? "(source types)" : a.type.c_str(), plan.specs.size(),
              types.c_str(), account::human_bytes(double(total)).c_str(), secs);
}

void setup_convert(CLI::App& sub) {
  auto args = std::make_shared<ConvertArgs>();
  sub.add_option("MODEL", args->model, "model directory or .gguf file")->required();
  sub.add_option("OUT", args->out, "output file (.gguf)")->required();
  add_choice(sub, "--to", args->to, "output format", {"gguf"});
  add_choice(
      sub, "--type", args->type,
      "storage of the matrices (norms, biases and MoE routers stay f32); auto keeps the "
      "source's where GGUF has it (FP8 becomes bf16); q4_k_m / q5_k_m: llama.cpp's "
      "medium mixes (head, and attn_v / ffn_down of some layers, in q6_k)",
      {"auto", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"});
  sub.add_option("--name", args->name, "general.name (default: the model folder's name)");
  sub.add_option("--tokenizer", args->tokenizer,
                 "folder with the tokenizer.json to write (default: the model's own)");
  sub.add_option("--tokenizer-pre", args->tokenizer_pre,
                 "llama.cpp pre-tokenizer name to write (default: recognised from tokenizer.json)");
  sub.add_flag("--force", args->force,
               "replace OUT if it exists (only once the new file is complete)");
  add_threads(sub, args->threads);
  example(sub, "tern convert models/R1-Distill-Qwen-1.5B --to gguf /tmp/r1.gguf --type q8_0");
  sub.callback([args] { run_convert(*args); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("convert", "write a model as a llama.cpp GGUF (deepseek2, qwen2, llama)",
                      tern::app::setup_convert);
