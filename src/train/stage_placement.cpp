#include "train/stage_placement.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"

namespace tern::train {

StagePlacement::StagePlacement(const model::ModelConfig& c, const PipeSchedule& schedule,
                               int position)
    : schedule_(schedule),
      L_(c.num_hidden_layers),
      P_(schedule.stages),
      position_(position),
      last_needs_embedding_(c.tie_word_embeddings || c.num_nextn_predict_layers > 0) {
  TERN_CHECK(P_ >= 1 && L_ >= P_ && position >= 0 && position < P_);
}

std::vector<int> StagePlacement::stages_of(const std::string& slot) const {
  const std::string layers = "model.layers.";
  if (slot.rfind(layers, 0) == 0) {
    const int64_t l = std::atoll(slot.c_str() + layers.size());
    if (l >= L_) return {P_ - 1};  // an MTP module: the last stage's
    for (int s = 0; s < P_; ++s)
      if (l < pipeline_stage_layers(L_, P_, s).second) return {s};
  }
  if (slot.rfind("model.embed_tokens.", 0) == 0)
    return last_needs_embedding_ ? std::vector<int>{0, P_ - 1} : std::vector<int>{0};
  if (slot.rfind("model.norm.", 0) == 0 || slot.rfind("lm_head.", 0) == 0) return {P_ - 1};
  fail(ErrorKind::internal, "pipeline placement: no stage holds '" + slot + "'");
}

std::vector<int> StagePlacement::holders(const std::string& slot) const {
  std::vector<int> out;
  for (int s : stages_of(slot))
    for (int d = 0; d < schedule_.directions; ++d) out.push_back(schedule_.rank_of(d, s));
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

bool StagePlacement::holds(const std::string& slot) const {
  const std::vector<int> h = holders(slot);
  return std::find(h.begin(), h.end(), position_) != h.end();
}

}  // namespace tern::train
