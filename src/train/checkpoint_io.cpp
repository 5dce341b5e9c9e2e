#include "train/checkpoint_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "core/error.h"
#include "formats/atomic_file.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "model/grad/f32_weights.h"
#include "model/load_weights.h"

namespace tern::train {
namespace fs = std::filesystem;

namespace {

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

std::vector<formats::NamedTensor> named(const model::ModelConfig& c, model::ModelWeights& w,
                                        const std::string& prefix, bool with_aliases) {
  std::vector<formats::NamedTensor> out;
  for (const auto& p : model::grad::param_slots(c, w)) {
    if (p.alias && !with_aliases) continue;
    if (!prefix.empty() && !p.trainable) continue;  // moments exist for trained slots only
    out.push_back({prefix + p.name, Tensor(DType::f32, p.shape, p.data)});
  }
  return out;
}

}  // namespace

std::string write_checkpoint_dir(const std::string& run_dir, int64_t step,
                                 const std::function<void(const std::string& tmp)>& write) {
  const std::string final_dir =
      (fs::path(run_dir) / ("checkpoint-" + std::to_string(step))).string();
  const std::string tmp = (fs::path(run_dir) / (".checkpoint-" + std::to_string(step) + ".tmp-" +
                                                std::to_string(::getpid())))
                              .string();
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write(tmp);
    if (const char* pause = std::getenv("TERN_TEST_PAUSE_IN_SAVE"))
      std::this_thread::sleep_for(std::chrono::duration<double>(std::atof(pause)));
    fsync_dir(tmp);
    if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a rerun of the same step
    fs::rename(tmp, final_dir);
    fsync_dir(run_dir);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  return final_dir;
}

std::string save_checkpoint(const std::string& run_dir, int64_t step, const model::ModelConfig& c,
                            model::ModelWeights& params, model::ModelWeights& m,
                            model::ModelWeights& v, const CheckpointFiles& files) {
  return write_checkpoint_dir(run_dir, step, [&](const std::string& tmp) {
    formats::write_text_file(tmp + "/config.json", files.config_json);
    copy_tokenizer_files(files.tokenizer_dir, tmp);
    // The MTP embedding/head copies are written so the directory loads like a released model.
    formats::write_safetensors(tmp + "/model.safetensors", named(c, params, "", true),
                               {{"format", "pt"}});
    std::vector<formats::NamedTensor> moments = named(c, m, "exp_avg.", false);
    for (auto& t : named(c, v, "exp_avg_sq.", false)) moments.push_back(std::move(t));
    formats::write_safetensors(tmp + "/optimizer.safetensors", moments);
    formats::write_text_file(tmp + "/trainer_state.json", files.trainer_state.dump(2) + "\n");
  });
}

void copy_tokenizer_files(const std::string& tokenizer_dir, const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path src = fs::path(tokenizer_dir) / name;
    if (fs::exists(src))
      formats::write_text_file(dir + "/" + name, formats::read_text_file(src.string()));
  }
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(run_dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("checkpoint-", 0) != 0 || !fs::exists(e.path() / "trainer_state.json")) continue;
    const std::string num = name.substr(11);
    if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(num), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void prune_checkpoints(const std::string& run_dir, int64_t keep) {
  if (keep <= 0) return;
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep) < all.size(); ++i) fs::remove_all(all[i].second);
}

void load_params(const std::string& dir, const model::ModelConfig& c, model::ModelWeights& params,
                 const model::ExpertParallel* ep) {
  const auto src = model::open_safetensors_source(dir);
  model::ModelWeights loaded = model::load_weights(c, *src, c.num_nextn_predict_layers > 0, false,
                                                   ep ? *ep : model::ExpertParallel{});
  // Each slot's stored value, in param_slots order: matrices stay views of the mapped file and
  // are dequantised only where params holds them, so a rank holding part of the model (expert or
  // pipeline parallel) never has a whole f32 copy.
  struct Stored {
    Tensor t;
    const kernels::WeightView* view = nullptr;
  };
  std::vector<Stored> values;
  model::visit_weights(c, loaded, c.num_nextn_predict_layers > 0, [&](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::vector) {
      values.push_back({s.vector->data});
      return;
    }
    values.push_back({Tensor(), s.linear->view.data ? &s.linear->view : nullptr});
    if (s.has_bias) values.push_back({s.linear->bias});
  });
  auto slots = model::grad::param_slots(c, params);
  TERN_CHECK(slots.size() == values.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    if (slots[i].alias) continue;  // the module's copies: training shares the main tensors
    if (slots[i].elsewhere) continue;
    const Tensor t = values[i].view ? model::dequantize(*values[i].view) : values[i].t;
    TERN_CHECK(t.numel() == slots[i].size && t.dtype() == DType::f32);
    std::copy_n(t.data_as<const float>(), slots[i].size, slots[i].data);
  }
}

void load_moments(const std::string& dir, const model::ModelConfig& c, model::ModelWeights& m,
                  model::ModelWeights& v) {
  const auto ck = formats::Checkpoint::open((fs::path(dir) / "optimizer.safetensors").string());
  for (auto [w, prefix] : {std::pair{&m, "exp_avg."}, {&v, "exp_avg_sq."}})
    for (const auto& p : model::grad::param_slots(c, *w)) {
      if (!p.trainable) continue;
      const Tensor& t = ck.get(prefix + p.name);
      if (t.dtype() != DType::f32 || t.numel() != p.size)
        fail(ErrorKind::format, dir + "/optimizer.safetensors: '" + prefix + p.name +
                                    "' is not f32 of the parameter's shape");
      std::copy_n(t.data_as<const float>(), p.size, p.data);
    }
}

int64_t resume_from_checkpoint(const std::string& dir, const nlohmann::json& state,
                               const model::ModelConfig& c, model::ModelWeights& params,
                               AdamW& adam, const model::ExpertParallel* ep) {
  load_params(dir, c, params, ep);
  load_moments(dir, c, adam.m(), adam.v());
  adam.set_steps(state.at("optimizer_steps").get<int64_t>());
  return state.at("step").get<int64_t>();
}

}  // namespace tern::train
