#include "train/trainable.h"

#include <cmath>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "formats/checkpoint.h"
#include "formats/safetensors_writer.h"
#include "formats/text_file.h"
#include "model/grad/f32_weights.h"
#include "model/load_weights.h"
#include "model/lora_merge.h"
#include "model/lora_peft.h"
#include "model/tensor_source.h"
#include "train/expert_shards.h"

namespace tern::train {
namespace {

namespace fs = std::filesystem;

// Drops every Linear::lora of w (a shallow copy's own Linears; the tensors stay shared).
void detach(const model::ModelConfig& c, model::ModelWeights& w) {
  model::visit_weights(c, w, !w.mtp.empty(), [](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::linear) s.linear->lora = nullptr;
  });
}

void copy_into(const Tensor& t, const model::grad::ParamSlot& slot, const std::string& what) {
  if (t.dtype() != DType::f32 || t.numel() != slot.size)
    fail(ErrorKind::format, what + ": '" + slot.name + "' is not f32 of the adapter's shape");
  std::copy_n(t.data_as<const float>(), slot.size, slot.data);
}

}  // namespace

std::unique_ptr<Trainable> Trainable::f32_weights(const model::ModelConfig& c,
                                                  const model::ExpertParallel* ep) {
  std::unique_ptr<Trainable> t(new Trainable());
  if (ep && ep->active()) t->ep_ = *ep;
  t->params_ = model::grad::make_f32_weights(c, t->placement());
  t->grads_ = model::grad::make_f32_weights(c, t->placement());
  return t;
}

std::unique_ptr<Trainable> Trainable::full(const model::ModelConfig& c, const AdamWConfig& cfg,
                                           const model::ExpertParallel* ep) {
  std::unique_ptr<Trainable> t = f32_weights(c, ep);
  t->adam_ = std::make_unique<AdamW>(c, t->params_, t->grads_, cfg, t->placement());
  return t;
}

std::unique_ptr<Trainable> Trainable::stage_local(const model::ModelConfig& c,
                                                  const AdamWConfig& cfg,
                                                  const StageLayout& layout) {
  std::unique_ptr<Trainable> t(new Trainable());
  t->pipeline_ = layout.pipeline;
  t->stages_ = layout.stages;
  t->gathers_ = layout.gathers;
  if (layout.ep && layout.ep->active()) t->ep_ = *layout.ep;
  t->params_ = model::grad::make_f32_weights(c, t->placement(), t->held());
  t->grads_ = model::grad::make_f32_weights(c, t->placement(), t->held());
  if (!layout.zero_world) {
    t->adam_ = std::make_unique<AdamW>(c, t->params_, t->grads_, cfg, t->placement(), t->held());
    return t;
  }
  t->holder_groups_ =
      holder_groups(*layout.zero_world, c, *layout.stages, t->grads_, t->placement());
  for (const HolderGroup& g : t->holder_groups_.mine)
    t->stage_zeros_.push_back(std::make_unique<ZeroAdamW>(*g.comm, c, t->params_, t->grads_, cfg,
                                                          layout.bucket_bytes, false, g.tensors));
  return t;
}

double Trainable::reduce_stage_grads() {
  double seconds = 0;
  for (auto& z : stage_zeros_) seconds += z->reduce();
  return seconds;
}

model::grad::HeldSlots Trainable::held() const {
  if (!stages_) return {};
  const StagePlacement* stages = stages_;
  return [stages](const std::string& name) { return stages->holds(name); };
}

model::ModelWeights Trainable::gather_stages(const model::ModelConfig& c,
                                             model::ModelWeights& local) {
  const StagePlacement* stages = stages_;
  model::ModelWeights position;  // this position's tensors, every expert of them
  if (ep_.active()) {
    const int64_t E = c.n_routed_experts;
    const model::ExpertParallel& ep = ep_;
    position = gather_slots(
        c, *ep.comm,
        [&ep, E](const std::string& name) {
          int64_t e = -1;
          return model::grad::routed_expert_slot(name, &e) ? ep.owner(e, E) : 0;
        },
        local, held());
    if (ep.rank() != 0) return {};
  }
  return gather_slots(
      c, *pipeline_, [stages](const std::string& name) { return stages->owner(name); },
      ep_.active() ? position : local);
}

std::unique_ptr<Trainable> Trainable::full_sharded(const model::ModelConfig& c,
                                                   const AdamWConfig& cfg, dist::Communicator& comm,
                                                   int64_t bucket_bytes,
                                                   const model::ExpertParallel* ep) {
  std::unique_ptr<Trainable> t = f32_weights(c, ep);
  t->zero_ = std::make_unique<ZeroAdamW>(comm, c, t->params_, t->grads_, cfg, bucket_bytes,
                                         t->ep_.active());
  if (!t->ep_.active()) return t;
  using model::grad::ParamSlot;
  std::vector<ParamSlot> p, g, m, v;
  const std::vector<ParamSlot> ps = model::grad::param_slots(c, t->params_);
  const std::vector<ParamSlot> gs = model::grad::param_slots(c, t->grads_);
  for (size_t i = 0; i < ps.size(); ++i) {
    if (!ps[i].trainable || !model::grad::routed_expert_slot(ps[i].name)) continue;
    p.push_back(ps[i]);
    g.push_back(gs[i]);
    for (std::vector<ParamSlot>* moments : {&m, &v}) {
      std::vector<float>& store = t->expert_moments_.emplace_back(size_t(ps[i].size), 0.0f);
      ParamSlot s = ps[i];
      s.data = store.data();
      moments->push_back(s);
    }
  }
  t->expert_adam_ = std::make_unique<AdamW>(p, g, m, v, cfg);
  return t;
}

void Trainable::copy_expert_moments(const model::ModelConfig& c, model::ModelWeights& m,
                                    model::ModelWeights& v, bool to_weights) {
  const auto ms = model::grad::param_slots(c, m), vs = model::grad::param_slots(c, v);
  size_t k = 0;  // expert_moments_: m then v of each of this rank's expert slots, in slot order
  for (size_t i = 0; i < ms.size(); ++i) {
    if (!ms[i].trainable || !model::grad::routed_expert_slot(ms[i].name)) continue;
    for (const model::grad::ParamSlot* w : {&ms[i], &vs[i]}) {
      std::vector<float>& store = expert_moments_[k++];
      if (to_weights)
        std::copy(store.begin(), store.end(), w->data);
      else
        std::copy_n(w->data, w->size, store.begin());
    }
  }
}

AdamW& Trainable::adam() {
  TERN_CHECK(adam_ != nullptr);
  return *adam_;
}

double Trainable::grad_norm() {
  if (stages_) {
    // A tensor two ranks of the pipeline hold (the embedding, DualPipe's stages) counts once:
    // from its owner. Summed over the pipeline in rank order: every rank gets the same norm.
    const StagePlacement* stages = stages_;
    // With expert groups, each rank's routed experts are its own: their squares are summed over
    // the pipeline and then over the group.
    const bool split = ep_.active();
    double mine[2] = {0, 0};
    if (stage_zeros_.empty()) {
      for (int experts = 0; experts < 2; ++experts)
        mine[experts] = adam_->sum_squares([stages, split, experts](const std::string& name) {
          return stages->owner(name) == stages->position() &&
                 (split && model::grad::routed_expert_slot(name)) == bool(experts);
        });
    } else {
      // ZeRO: each holder group's norm over its shards (a collective in the group), counted by
      // the group's lowest position.
      for (size_t i = 0; i < stage_zeros_.size(); ++i) {
        const double n = stage_zeros_[i]->grad_norm();
        const HolderGroup& g = holder_groups_.mine[i];
        if (g.holders.front() == stages->position()) mine[g.split_experts ? 1 : 0] += n * n;
      }
    }
    std::vector<double> all(static_cast<size_t>(2 * pipeline_->size()));
    pipeline_->all_gather(mine, all.data(), sizeof mine)->wait();
    double shared = 0, own = 0;
    for (size_t r = 0; r < all.size(); r += 2) shared += all[r], own += all[r + 1];
    if (split) {
      std::vector<double> group(static_cast<size_t>(ep_.ranks()));
      ep_.comm->all_gather(&own, group.data(), sizeof own)->wait();
      own = 0;
      for (double x : group) own += x;
    }
    return std::sqrt(shared + own);
  }
  if (!ep_.active()) return zero_ ? zero_->grad_norm() : adam_->grad_norm();
  // Replicated gradients count once (ZeRO: over its shards); each rank's experts are its own:
  // their squares summed over ranks (in rank order, so every rank gets the same norm).
  const double replicated = zero_ ? std::pow(zero_->grad_norm(), 2) : adam_->sum_squares(false);
  const double mine = zero_ ? expert_adam_->sum_squares(true) : adam_->sum_squares(true);
  std::vector<double> all(static_cast<size_t>(ep_.ranks()));
  ep_.comm->all_gather(&mine, all.data(), sizeof mine)->wait();
  double ss = replicated;
  for (double x : all) ss += x;
  return std::sqrt(ss);
}

void Trainable::step(double lr, double norm, ThreadPool& pool, bool zero_grads) {
  grads_zeroed_ = false;
  for (auto& z : stage_zeros_) z->step(lr, norm, pool);
  if (!stage_zeros_.empty()) return;
  if (zero_) {
    zero_->step(lr, norm, pool);
  } else {
    adam_->step(lr, norm, pool, zero_grads);
    grads_zeroed_ = zero_grads;
  }
  if (expert_adam_) expert_adam_->step(lr, norm, pool);
}

int64_t Trainable::optimizer_steps() const {
  if (!stage_zeros_.empty()) return stage_zeros_.front()->steps();
  return zero_ ? zero_->steps() : adam_->steps();
}

std::unique_ptr<Trainable> Trainable::lora(const model::ModelConfig& c, const std::string& base_dir,
                                           const model::LoraOptions& o, uint64_t seed,
                                           const AdamWConfig& cfg) {
  std::unique_ptr<Trainable> t(new Trainable());
  t->base_dir_ = base_dir;
  const auto src = model::open_safetensors_source(base_dir);
  t->params_ = model::load_weights(c, *src, c.num_nextn_predict_layers > 0);
  t->grads_ = model::make_frozen_grads(c);
  model::visit_weights(c, t->grads_, c.num_nextn_predict_layers > 0, [&](model::WeightSlot& s) {
    if (s.kind == model::SlotKind::vector)
      t->frozen_vectors_.emplace_back(s.vector->data.data_as<float>(), s.vector->data.numel());
  });
  t->adapters_ =
      std::make_unique<model::LoraAdapters>(model::LoraAdapters::create(c, t->params_, o, seed));
  t->adapters_->allocate_training();
  t->adapters_->attach(c, t->params_, &t->grads_);
  using Part = model::LoraAdapters::Part;
  t->adam_ =
      std::make_unique<AdamW>(t->adapters_->slots(Part::param), t->adapters_->slots(Part::grad),
                              t->adapters_->slots(Part::m), t->adapters_->slots(Part::v), cfg);
  return t;
}

model::ModelWeights Trainable::base_weights(const model::ModelConfig& c) const {
  TERN_CHECK(is_lora());
  model::ModelWeights w = params_;
  detach(c, w);
  return w;
}

int64_t Trainable::trained_parameters(const model::ModelConfig& c) {
  if (adapters_) return adapters_->parameter_count();
  int64_t n = 0;
  for (const auto& s : model::grad::param_slots(c, params_)) n += s.trainable ? s.size : 0;
  return n;
}

void Trainable::zero_grad() {
  if (grads_zeroed_)
    grads_zeroed_ = false;
  else if (!stage_zeros_.empty())
    stage_zeros_.front()->zero_grad();  // every gradient of this rank, not only its group's
  else if (zero_)
    zero_->zero_grad();
  else
    adam_->zero_grad();
  // The frozen base's norm-weight accumulators: written by the backward, read by nobody.
  for (auto [data, n] : frozen_vectors_) std::fill_n(data, n, 0.0f);
}

std::string Trainable::save(const std::string& run_dir, int64_t step, const model::ModelConfig& c,
                            const CheckpointFiles& files) {
  grads_zeroed_ = false;  // the gradients' storage may carry moments to the checkpoint
  if (stages_) {
    // ZeRO: each holder group's moments gathered to its first rank (one of the gathering
    // pipelines, at the group's lowest position: the tensors' owner there), in this rank's
    // local layout. Then the pipeline's rank 0 gathers every stage's weights and moments
    // (experts first within the expert group) and writes the whole model.
    model::ModelWeights m_local, v_local;
    if (!stage_zeros_.empty()) {
      if (gathers_) {
        m_local = model::grad::make_f32_weights(c, placement(), held());
        v_local = model::grad::make_f32_weights(c, placement(), held());
      }
      for (auto& z : stage_zeros_) {
        TERN_CHECK(!z->lead() || gathers_);
        z->gather_moments(z->lead() ? &m_local : nullptr, z->lead() ? &v_local : nullptr);
      }
    }
    if (!gathers_) return "";
    model::ModelWeights& m_mine = stage_zeros_.empty() ? adam_->m() : m_local;
    model::ModelWeights& v_mine = stage_zeros_.empty() ? adam_->v() : v_local;
    model::ModelWeights p = gather_stages(c, params_);
    model::ModelWeights m = gather_stages(c, m_mine);
    model::ModelWeights v = gather_stages(c, v_mine);
    if (pipeline_->rank() != 0 || ep_.rank() != 0) return "";
    return save_checkpoint(run_dir, step, c, p, m, v, files);
  }
  if (ep_.active() && zero_) {
    // Moments in the local layout on every rank: ZeRO's shares gathered on rank 0 (the first
    // moment into the gradient buffers, which a save does not need), each rank's experts' own
    // copied in; then rank 0 gathers the experts and writes the whole model.
    model::ModelWeights v = model::grad::make_f32_weights(c, &ep_);
    if (zero_->lead())
      zero_->gather_moments(&grads_, &v);
    else
      zero_->gather_moments(nullptr, nullptr);
    copy_expert_moments(c, grads_, v, true);
    model::ModelWeights p = gather_experts(c, ep_, params_);
    model::ModelWeights m = gather_experts(c, ep_, grads_);
    model::ModelWeights vf = gather_experts(c, ep_, v);
    if (ep_.rank() != 0) return "";
    return save_checkpoint(run_dir, step, c, p, m, vf, files);
  }
  if (ep_.active()) {
    // Rank 0 gathers every rank's experts (weights and moments) and writes the whole model.
    model::ModelWeights p = gather_experts(c, ep_, params_);
    model::ModelWeights m = gather_experts(c, ep_, adam_->m());
    model::ModelWeights v = gather_experts(c, ep_, adam_->v());
    if (ep_.rank() != 0) return "";
    return save_checkpoint(run_dir, step, c, p, m, v, files);
  }
  if (zero_) {
    // The gradients are not needed between steps: rank 0 gathers the first moments into them.
    if (!zero_->lead()) {
      zero_->gather_moments(nullptr, nullptr);
      return "";
    }
    model::ModelWeights v = model::grad::make_f32_weights(c);
    zero_->gather_moments(&grads_, &v);
    return save_checkpoint(run_dir, step, c, params_, grads_, v, files);
  }
  if (!adapters_) return save_checkpoint(run_dir, step, c, params_, adam_->m(), adam_->v(), files);
  return write_checkpoint_dir(run_dir, step, [&](const std::string& tmp) {
    model::save_peft_adapter(tmp, *adapters_, base_dir_);
    copy_tokenizer_files(files.tokenizer_dir, tmp);
    using Part = model::LoraAdapters::Part;
    std::vector<formats::NamedTensor> moments;
    for (auto [part, prefix] : {std::pair{Part::m, "exp_avg."}, {Part::v, "exp_avg_sq."}})
      for (const auto& s : adapters_->slots(part))
        moments.push_back({prefix + s.name, Tensor(DType::f32, s.shape, s.data)});
    formats::write_safetensors(tmp + "/optimizer.safetensors", moments);
    formats::write_text_file(tmp + "/trainer_state.json", files.trainer_state.dump(2) + "\n");
  });
}

void Trainable::join_save() {
  if (zero_) zero_->gather_moments(nullptr, nullptr);
}

int64_t Trainable::resume(const std::string& dir, const nlohmann::json& state,
                          const model::ModelConfig& c) {
  grads_zeroed_ = false;  // the gradients' storage may carry moments from the checkpoint
  if (!stage_zeros_.empty()) {
    // Every rank reads its tensors and keeps its groups' shares of their moments.
    load_params(dir, c, params_, placement());
    model::ModelWeights m = model::grad::make_f32_weights(c, placement(), held());
    model::ModelWeights v = model::grad::make_f32_weights(c, placement(), held());
    load_moments(dir, c, m, v);
    for (auto& z : stage_zeros_) {
      z->take_moments(m, v);
      z->zero_grad();
      z->set_steps(state.at("optimizer_steps").get<int64_t>());
    }
    return state.at("step").get<int64_t>();
  }
  if (zero_) {
    // Every rank reads the checkpoint (with --ep, only its experts) and keeps its shares of the
    // moments (and its experts').
    load_params(dir, c, params_, placement());
    model::ModelWeights v = model::grad::make_f32_weights(c, placement());
    load_moments(dir, c, grads_, v);
    zero_->take_moments(grads_, v);
    if (expert_adam_) {
      copy_expert_moments(c, grads_, v, false);
      expert_adam_->set_steps(state.at("optimizer_steps").get<int64_t>());
    }
    zero_->zero_grad();
    zero_->set_steps(state.at("optimizer_steps").get<int64_t>());
    return state.at("step").get<int64_t>();
  }
  if (!adapters_) return resume_from_checkpoint(dir, state, c, params_, *adam_, placement());
  // The saved adapter must be this run's (same modules and rank): loading it against the base
  // checks that; its values then replace the fresh ones.
  const model::LoraAdapters saved = model::load_peft_adapter(dir, c, params_);
  if (saved.modules().size() != adapters_->modules().size() || saved.rank() != adapters_->rank())
    fail(ErrorKind::config, dir + ": the saved adapter's modules or rank differ from this run's");
  using Part = model::LoraAdapters::Part;
  const auto saved_params = saved.slots(Part::param);
  const auto params = adapters_->slots(Part::param);
  for (size_t i = 0; i < params.size(); ++i) {
    if (saved_params[i].name != params[i].name)
      fail(ErrorKind::config, dir + ": adapter module '" + saved_params[i].name +
                                  "' is not this run's '" + params[i].name + "'");
    std::copy_n(saved_params[i].data, params[i].size, params[i].data);
  }
  const std::string opt = dir + "/optimizer.safetensors";
  const auto ck = formats::Checkpoint::open(opt);
  for (auto [part, prefix] : {std::pair{Part::m, "exp_avg."}, {Part::v, "exp_avg_sq."}})
    for (const auto& s : adapters_->slots(part)) copy_into(ck.get(prefix + s.name), s, opt);
  adam_->set_steps(state.at("optimizer_steps").get<int64_t>());
  return state.at("step").get<int64_t>();
}

model::ModelWeights Trainable::gather_serving_weights(const model::ModelConfig& c) {
  if (stages_) return gather_stages(c, params_);
  if (!ep_.active()) return serving_weights(c);
  return gather_experts(c, ep_, params_);
}

model::ModelWeights Trainable::serving_weights(const model::ModelConfig& c) const {
  if (!adapters_) return params_;
  model::ModelWeights merged = model::merge_lora(c, params_, *adapters_);
  detach(c, merged);
  return merged;
}

void Trainable::refresh_serving(const model::ModelConfig& c, model::ModelWeights& serving) const {
  if (adapters_) model::remerge_lora(c, params_, *adapters_, serving);
}

}  // namespace tern::train
