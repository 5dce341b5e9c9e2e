#include "train/run_files.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "account/cpu_probe.h"
#include "account/ledger.h"
#include "core/error.h"
#include "formats/text_file.h"
#include "model/param_count.h"
#include "tokenizer/bpe_trainer.h"
#include "train/checkpoint_io.h"
#include "train/svg_plot.h"

namespace tern::train {
namespace fs = std::filesystem;

namespace {

// DeepSeek-V3's conversation format (spec §13.2): system text first, then user turns after
// <｜User｜> and assistant turns after <｜Assistant｜>, each assistant turn closed by EOS.
const char* kChatTemplate =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ message['content'] }}{% endif %}{% endfor %}{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}"
    "{% elif message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + "
    "eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}"
    "{% endif %}";

}  // namespace

std::vector<nlohmann::json> read_log(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      out.push_back(nlohmann::json::parse(line));
    } catch (const std::exception&) {
      // A line cut by a kill mid-write: the rest of the log is still good.
    }
  }
  return out;
}

RunFiles RunFiles::create(const std::string& dir, bool force) {
  RunFiles r;
  r.dir_ = dir;
  if (fs::exists(dir) && !fs::is_directory(dir))
    fail(ErrorKind::request, "--out '" + dir + "' exists and is not a directory");
  if (fs::exists(dir) && !fs::is_empty(dir)) {
    if (!force)
      fail(ErrorKind::request, "--out '" + dir + "' is not empty; use --resume " + dir +
                                   " to continue that run, or --force to start over in it");
    // Only what a run writes goes: --out pointed at a folder with other files keeps them.
    std::vector<fs::path> old;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      const bool ours = n == "config.json" || n == "tokenizer" || n == "data" || n == "log.jsonl" ||
                        n == "loss.svg" || n == "expert_load.svg" || n == "ledger.json" ||
                        n.rfind("checkpoint-", 0) == 0 || n.rfind(".checkpoint-", 0) == 0;
      if (ours) old.push_back(e.path());
    }
    for (const fs::path& p : old) fs::remove_all(p);
  }
  fs::create_directories(dir);
  return r;
}

RunFiles RunFiles::open(const std::string& dir) {
  RunFiles r;
  r.dir_ = dir;
  if (!fs::is_directory(dir))
    fail(ErrorKind::request, "--resume '" + dir + "': no such run directory");
  if (list_checkpoints(dir).empty())
    fail(ErrorKind::request,
         "--resume '" + dir + "': the run has no complete checkpoint to resume from");
  // Temporary folders of saves that a kill interrupted: never complete, safe to drop.
  std::error_code ec;
  std::vector<fs::path> stale;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(".checkpoint-", 0) == 0) stale.push_back(e.path());
  for (const fs::path& p : stale) fs::remove_all(p, ec);
  return r;
}

RunFiles RunFiles::attach(const std::string& dir) {
  RunFiles r;
  r.dir_ = dir;
  return r;
}

std::string RunFiles::latest_checkpoint() const {
  return list_checkpoints(dir_).back().second;
}

nlohmann::json RunFiles::latest_state() const {
  const std::string path = latest_checkpoint() + "/trainer_state.json";
  try {
    return nlohmann::json::parse(formats::read_text_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, path + ": " + e.what());
  }
}

void RunFiles::write_tokenizer(const std::string& from, const std::vector<CorpusSpec>& corpora,
                               const model::ModelConfig& c) {
  fs::create_directories(tokenizer_dir());
  if (!from.empty()) {
    for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
      const fs::path src = fs::path(from) / name;
      if (fs::exists(src))
        formats::write_text_file(tokenizer_dir() + "/" + name,
                                 formats::read_text_file(src.string()));
      else if (std::string(name) == "tokenizer.json")
        fail(ErrorKind::io, "--tokenizer '" + from + "' has no tokenizer.json");
    }
    return;
  }
  tokenizer::BpeTrainOptions opts;
  opts.vocab_size = size_t(c.vocab_size);
  opts.special_tokens = {"<｜User｜>", "<｜Assistant｜>", "<think>", "</think>", "<｜▁pad▁｜>"};
  opts.progress = true;
  std::vector<std::string> paths;
  for (const CorpusSpec& s : corpora) paths.push_back(s.path);
  tokenizer::BpeTrainResult r = tokenizer::train_bpe_files(paths, opts);
  r.tokenizer_config["pad_token"] = "<｜▁pad▁｜>";
  r.tokenizer_config["chat_template"] = kChatTemplate;
  tokenizer::save_trained(r, tokenizer_dir());
}

void RunFiles::write_config(const std::string& text) {
  formats::write_text_file(config_path(), text);
}

void RunFiles::check_memory(const model::ModelConfig& c, int64_t batch, int64_t seq,
                            double state_bytes, double activation_share) const {
  const double params = double(model::count_parameters(c).total);
  const double d = double(c.hidden_size), H = double(c.num_attention_heads);
  const double dq = double(c.qk_head_dim()), dv = double(c.v_head_dim);
  const double ffn =
      std::max(double(c.intermediate_size), double(c.num_experts_per_tok + c.n_shared_experts) *
                                                double(c.moe_intermediate_size) * 2.0);
  // Saved floats per token and layer: block (6 d), MLA (q, k, v, o, latents, P row), FFN (3 f).
  const double per_token_layer = 6 * d + H * (3 * dq + 2 * dv) + 3 * double(c.q_lora_rank) +
                                 3 * double(c.kv_lora_rank + c.qk_rope_head_dim) + H * double(seq) +
                                 3 * ffn + double(c.n_routed_experts) * 2;
  const double layers = double(c.num_hidden_layers + c.num_nextn_predict_layers);
  const double act =
      activation_share * 4.0 * double(batch * seq) * (per_token_layer * layers + 8 * d);
  // Weights, gradients and two moments in f32 — unless the caller knows (LoRA: the base as
  // stored plus the adapters' four copies).
  const double state = state_bytes >= 0 ? state_bytes : 4.0 * 4.0 * params;
  const double have = account::system_memory_bytes();
  if (have > 0 && state + act > 0.9 * have) {
    char msg[400];
    std::snprintf(msg, sizeof msg,
                  "this run needs about %.1f GiB (weights, gradients and AdamW moments %.1f GiB "
                  "for %.3g parameters; activations %.1f GiB for --batch %lld --seq %lld) but the "
                  "machine has %.1f GiB; lower --batch or --seq or use a smaller config",
                  (state + act) / 1073741824.0, state / 1073741824.0, params, act / 1073741824.0,
                  (long long)batch, (long long)seq, have / 1073741824.0);
    fail(ErrorKind::resource, msg);
  }
}

void RunFiles::append_log(const nlohmann::json& line, const std::string& name) {
  std::ofstream out(dir_ + "/" + name, std::ios::app);
  out << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  if (!out) fail(ErrorKind::io, "cannot append to " + dir_ + "/" + name);
}

void RunFiles::truncate_log(int64_t step, const std::string& name) {
  const std::string path = dir_ + "/" + name;
  if (!fs::exists(path)) return;
  std::string kept;
  for (const nlohmann::json& j : read_log(path))
    if (j.value("step", int64_t(0)) <= step)
      kept += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  formats::write_text_file(path, kept);
}

void RunFiles::write_pictures() const {
  const std::vector<nlohmann::json> log = read_log(dir_ + "/log.jsonl");
  Series train{"train loss", {}, {}}, val{"validation loss", {}, {}}, mtp{"MTP loss", {}, {}};
  std::vector<std::vector<std::vector<int64_t>>> loads;  // [step][layer][expert]
  for (const nlohmann::json& j : log) {
    const double step = j.value("step", 0.0);
    if (j.value("split", std::string()) == "val") {
      val.x.push_back(step), val.y.push_back(j.value("loss", 0.0));
      continue;
    }
    train.x.push_back(step), train.y.push_back(j.value("main_loss", j.value("loss", 0.0)));
    if (j.value("mtp_loss", 0.0) > 0)
      mtp.x.push_back(step), mtp.y.push_back(j.value("mtp_loss", 0.0));
    if (j.contains("expert_load"))
      loads.push_back(j["expert_load"].get<std::vector<std::vector<int64_t>>>());
  }
  std::vector<Series> s{train};
  if (!val.x.empty()) s.push_back(val);
  if (!mtp.x.empty()) s.push_back(mtp);
  formats::write_text_file(dir_ + "/loss.svg",
                           line_chart_svg("Loss", "step", "cross-entropy (nats/token)", s));
  if (loads.empty() || loads[0].empty()) return;
  // Rows: (layer, expert); columns: steps bucketed to at most 200; value: load / balanced load.
  const size_t layers = loads[0].size(), experts = loads[0][0].size();
  const size_t buckets = std::min<size_t>(200, loads.size());
  std::vector<std::vector<double>> cells(layers * experts, std::vector<double>(buckets, 0.0));
  std::vector<std::string> labels;
  for (size_t l = 0; l < layers; ++l)
    for (size_t e = 0; e < experts; ++e)
      labels.push_back(e == 0 ? std::string("MoE layer ").append(std::to_string(l)).append(" e0")
                              : std::string("e").append(std::to_string(e)));
  for (size_t b = 0; b < buckets; ++b) {
    const size_t s0 = b * loads.size() / buckets, s1 = (b + 1) * loads.size() / buckets;
    for (size_t l = 0; l < layers; ++l)
      for (size_t e = 0; e < experts; ++e) {
        double load = 0, total = 0;
        for (size_t st = s0; st < s1; ++st) {
          load += double(loads[st][l][e]);
          for (int64_t x : loads[st][l]) total += double(x);
        }
        cells[l * experts + e][b] = total > 0 ? load * double(experts) / total : 0.0;
      }
  }
  formats::write_text_file(
      dir_ + "/expert_load.svg",
      heatmap_svg("Expert load over training (1 = balanced)", "training steps →", labels, cells,
                  0.0, 2.0, "colour: tokens routed / balanced share, white 0 → dark 2+"));
}

void RunFiles::write_ledger(const nlohmann::json& ledger) const {
  formats::write_text_file(dir_ + "/ledger.json", ledger.dump(2) + "\n");
}

std::string checkpoint_config_text(const std::string& config_text, const tokenizer::Tokenizer& t) {
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(config_text);
  j["bos_token_id"] = t.bos_id();
  j["eos_token_id"] = t.eos_id();
  return j.dump(2) + "\n";
}

nlohmann::json saved_options(const TrainOptions& o) {
  return {{"data", o.data},
          {"sft", o.sft},
          {"teacher", o.teacher},
          {"kd_temperature", o.kd_temperature},
          {"kd_hard_weight", o.kd_hard_weight},
          {"tokenizer", o.tokenizer},
          {"doc_sep", o.doc_sep},
          {"steps", o.steps},
          {"batch", o.batch},
          {"seq", o.seq},
          {"grad_accum", o.grad_accum},
          {"lr", o.lr},
          {"lr_min", o.lr_min},
          {"schedule", schedule_name(o.schedule)},
          {"warmup", o.warmup},
          {"precision", o.precision},
          {"fp8_pow2_scales", o.fp8_pow2_scales},
          {"fp8_accumulator", o.fp8_accumulator},
          {"recompute", o.recompute},
          {"seed", o.seed},
          {"eval_every", o.eval_every},
          {"save_every", o.save_every},
          {"keep", o.keep},
          {"eval_windows", o.eval_windows},
          {"sample_tokens", o.sample_tokens},
          {"mtp_weight", o.mtp_weight},
          {"balance_alpha", o.balance_alpha},
          {"bias_speed", o.bias_speed},
          {"weight_decay", o.weight_decay},
          {"clip", o.clip},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"val_fraction", o.val_fraction},
          {"init", o.init},
          {"lora", {{"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"targets", o.lora.targets}}}};
}

void apply_saved_options(const nlohmann::json& j, TrainOptions& o) {
  const int64_t steps_now = o.steps;
  const std::string resume = o.resume;
  try {
    o.data = j.at("data").get<std::vector<std::string>>();
    o.sft = j.value("sft", std::string());
    o.teacher = j.value("teacher", std::string());
    o.kd_temperature = j.value("kd_temperature", 2.0);
    o.kd_hard_weight = j.value("kd_hard_weight", 0.0);
    o.tokenizer = j.at("tokenizer").get<std::string>();
    o.init = j.value("init", std::string());
    if (j.contains("lora")) {
      o.lora.rank = j["lora"].at("rank").get<int64_t>();
      o.lora.alpha = j["lora"].at("alpha").get<double>();
      o.lora.targets = j["lora"].at("targets").get<std::vector<std::string>>();
    }
    o.doc_sep = j.at("doc_sep").get<std::string>();
    o.steps = j.at("steps").get<int64_t>();
    o.batch = j.at("batch").get<int64_t>();
    o.seq = j.at("seq").get<int64_t>();
    o.grad_accum = j.at("grad_accum").get<int64_t>();
    o.lr = j.at("lr").get<double>();
    o.lr_min = j.at("lr_min").get<double>();
    o.schedule = parse_schedule(j.at("schedule").get<std::string>());
    o.warmup = j.at("warmup").get<int64_t>();
    o.precision = j.at("precision").get<std::string>();
    o.fp8_pow2_scales = j.value("fp8_pow2_scales", false);
    o.fp8_accumulator = j.value("fp8_accumulator", std::string("f32"));
    o.recompute = j.value("recompute", false);
    o.seed = j.at("seed").get<uint64_t>();
    o.eval_every = j.at("eval_every").get<int64_t>();
    o.save_every = j.at("save_every").get<int64_t>();
    o.keep = j.at("keep").get<int64_t>();
    o.eval_windows = j.at("eval_windows").get<int64_t>();
    o.sample_tokens = j.at("sample_tokens").get<int64_t>();
    o.mtp_weight = j.at("mtp_weight").get<double>();
    o.balance_alpha = j.at("balance_alpha").get<double>();
    o.bias_speed = j.at("bias_speed").get<double>();
    o.weight_decay = j.at("weight_decay").get<double>();
    o.clip = j.at("clip").get<double>();
    o.beta1 = j.at("beta1").get<double>();
    o.beta2 = j.at("beta2").get<double>();
    o.val_fraction = j.at("val_fraction").get<double>();
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, "trainer_state.json options: " + std::string(e.what()));
  }
  if (steps_now > 0) o.steps = steps_now;
  o.tokens = 0;
  o.resume = resume;
  o.out = resume;
}

RunMeter::RunMeter(const TrainOptions& o, const model::ModelConfig&)
    : flops_per_token_(o.flops_per_token),
      peak_(o.peak_flops),
      start_(std::chrono::steady_clock::now()) {
  energy_.start();
}

void RunMeter::add_step(double tokens, double seconds) {
  tokens_ += tokens;
  seconds_ += seconds;
}

double RunMeter::mfu() const {
  return peak_ > 0 && seconds_ > 0 ? tokens_ * flops_per_token_ / seconds_ / peak_ : 0.0;
}

nlohmann::json RunMeter::ledger(const TrainOptions& o) const {
  account::Ledger l;
  l.stage = "train";
  l.hardware = "cpu";
  l.tokens = tokens_;
  l.flops = tokens_ * flops_per_token_;
  l.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  l.energy = energy_.stop(o.watts, 1, 1.0);
  l.price_per_device_hour = o.price_per_hour;
  nlohmann::json j = account::to_json(l);
  j["step_seconds"] = seconds_;
  j["tokens_per_s"] = tokens_per_s();
  j["flops_per_token"] = flops_per_token_;
  j["achieved_flops_per_s"] = seconds_ > 0 ? l.flops / seconds_ : 0.0;
  j["peak_flops_per_s"] = peak_;
  j["mfu"] = mfu();
  j["cpu_seconds"] = double(std::clock()) / CLOCKS_PER_SEC;
  if (!o.plan.is_null()) j["plan"] = o.plan;
  return j;
}

}  // namespace tern::train
