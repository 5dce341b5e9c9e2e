// Tables for `tern plan train|serve|hardware` (see plan_report.h). Numbers use the engineering
// forms of account/quantity.h (docs/cli.md, "numbers and units"); --json keeps exact values.
#include "apps/tern/plan_report.h"

#include <algorithm>

#include "account/quantity.h"

namespace tern::app {

using account::fixed;
using account::grouped;
using account::human;
using account::human_bytes;
using account::si;

void Table::print(std::FILE* out) const {
  // Each heading starts a block whose columns are aligned among themselves only.
  size_t begin = 0;
  while (begin < rows_.size()) {
    size_t end = begin + 1;
    while (end < rows_.size() && rows_[end].size() != 1) ++end;
    std::vector<size_t> width;
    for (size_t r = begin; r < end; ++r)
      if (rows_[r].size() > 1)
        for (size_t i = 0; i < rows_[r].size(); ++i) {
          if (width.size() <= i) width.push_back(0);
          width[i] = std::max(width[i], rows_[r][i].size());
        }
    for (size_t r = begin; r < end; ++r) {
      const auto& row = rows_[r];
      if (row.size() == 1) {
        std::fprintf(out, "\n%s\n", row[0].c_str());
        continue;
      }
      std::string line = " ";
      for (size_t i = 0; i < row.size(); ++i) {
        line += " " + row[i];
        if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::fprintf(out, "%s\n", line.c_str());
    }
    begin = end;
  }
}

namespace {

std::string gpu_hours(double h) {
  return human(h);
}
std::string dollars(double d) {
  return account::dollars(d);
}
std::string flop(double f) {
  return si(f, "FLOP");
}
std::string energy(const account::EnergyReading& e) {
  return si(e.kwh() * 1e3, "Wh");
}

void model_rows(Table& t, const account::ModelFigures& m) {
  t.heading("model  " + m.name);
  t.row({"parameters (total)", human(double(m.params_total)), grouped(double(m.params_total))});
  t.row({"activated per token", human(double(m.params_activated)),
         grouped(double(m.params_activated)) + ", excluding the input embedding"});
  if (m.mtp_layers > 0)
    t.row({"MTP modules", human(double(m.mtp_params_total)),
           human(double(m.mtp_params_activated)) + " activated"});
}

}  // namespace

void print_train(std::FILE* out, const account::TrainPlan& p, const account::TrainMemory& mem,
                 const account::TrainComm& comm, const account::TrainCommTime& comm_time,
                 const account::Parallelism& par, const account::TrainRecipe& recipe,
                 const TrainReportExtras& extras) {
  const auto& hw = p.hardware;
  const auto& in = p.inputs;
  const auto& main = p.stages.front();
  Table t;
  model_rows(t, p.model);

  t.heading("training FLOPs per token at seq " + std::to_string(in.seq));
  t.row({"matmuls (6 x activated)", flop(main.flops_per_token.matmul)});
  t.row({"attention (causal, 3 x fwd)", flop(main.flops_per_token.attention)});
  if (main.flops_per_token.mtp > 0) t.row({"MTP module", flop(main.flops_per_token.mtp)});
  t.row({"total", flop(main.flops_per_token.total()),
         flop(main.flops) + " for " + human(in.tokens) + " tokens"});

  t.heading("throughput on " + std::to_string(in.gpus) + " x " + hw.description);
  t.row({"MFU (bf16-peak basis)", fixed(in.mfu, 4) + (extras.mfu_from_target ? " (implied)" : ""),
         si(p.achieved_flops_per_gpu, "FLOP/s") + " per GPU of " +
             si(hw.bf16_tflops * 1e12, "FLOP/s") + " bf16 peak"});
  if (in.precision == "fp8" && hw.fp8_tflops > 0)
    t.row({"  = fraction of fp8 peak", fixed(p.achieved_flops_per_gpu / hw.peak_flops("fp8"), 4),
           si(hw.fp8_tflops * 1e12, "FLOP/s") + " dense fp8"});
  if (extras.target_gpu_hours > 0)
    t.row({"MFU implied by " + gpu_hours(extras.target_gpu_hours) + " GPU-hours",
           fixed(extras.implied_mfu, 4),
           si(extras.implied_mfu * hw.bf16_tflops * 1e12, "FLOP/s") + " per GPU" +
               (hw.fp8_tflops > 0
                    ? ", " + fixed(extras.implied_mfu * hw.bf16_tflops / hw.fp8_tflops, 4) +
                          " of fp8 peak"
                    : "")});

  t.heading("cost (price " + dollars(in.price_per_gpu_hour) + " per GPU-hour; energy " +
            "estimated: " + fixed(hw.power_w, 0) + " W board power x time x PUE " +
            fixed(in.pue, 2) + ")");
  t.row({"stage", "tokens", "seq", "MFU", "GPU-hours", "days", "dollars", "energy"});
  for (const auto& s : p.stages)
    t.row({s.name, s.tokens > 0 ? human(s.tokens) : "-", s.seq > 0 ? std::to_string(s.seq) : "-",
           s.given ? "given" : fixed(s.mfu, 3), gpu_hours(s.gpu_hours), human(s.days),
           dollars(s.dollars), energy(s.energy)});
  if (p.stages.size() > 1)
    t.row({"total", human(p.total.tokens), "", "", gpu_hours(p.total.gpu_hours),
           human(p.total.days), dollars(p.total.dollars), energy(p.total.energy)});

  t.heading("memory per GPU (" + recipe.precision + " recipe; tp " + std::to_string(par.tp) +
            ", pp " + std::to_string(par.pp) + ", ep " + std::to_string(par.ep) + ", dp " +
            std::to_string(par.dp()) + ", ZeRO-" + std::to_string(par.zero) + ", micro-batch " +
            std::to_string(par.micro_batch) + " x " + std::to_string(in.seq) + ")");
  t.row({"parameters held", human(mem.dense_params_per_gpu + mem.expert_params_per_gpu),
         human(mem.dense_params_per_gpu) + " dense + " + human(mem.expert_params_per_gpu) +
             " expert"});
  t.row({"weights", human_bytes(mem.weights), fixed(recipe.weight, 0) + " B/param"});
  t.row({"gradients", human_bytes(mem.gradients), fixed(recipe.gradient, 0) + " B/param"});
  t.row({"optimizer state", human_bytes(mem.optimizer),
         "fp32 master + AdamW moments " + fixed(recipe.moments, 0) + " B/param"});
  t.row({"activations (estimate)", human_bytes(mem.activations),
         human_bytes(mem.activation_bytes_per_token) + " per token, logits " +
             human_bytes(mem.logits)});
  t.row({"total", human_bytes(mem.total()),
         std::string(mem.fits() ? "fits" : "DOES NOT FIT") + " in " + human_bytes(mem.capacity)});

  t.heading("communication per GPU (ring collectives, uniform routing; docs/scale-out.md)");
  // The time on the device's links, bandwidth-bound and before any overlap.
  const auto at = [&](double seconds) {
    const double ms = seconds * 1e3;
    return comm_time.known ? ", " + fixed(ms, ms < 10 ? 2 : 1) + " ms on the links" : std::string();
  };
  t.row({"data-parallel reduction", human_bytes(comm.dp_bytes_per_step),
         (par.zero >= 1 ? "per optimizer step: reduce-scatter gradients + all-gather weights"
                        : "per optimizer step: all-reduce gradients") +
             at(comm_time.dp_seconds_per_step)});
  t.row({"expert all-to-all", human_bytes(comm.ep_bytes_per_micro_batch),
         "per micro-batch: dispatch + combine, forward and backward (" +
             human_bytes(comm.ep_bytes_per_token_layer) + " per token and MoE layer)" +
             at(comm_time.ep_seconds_per_micro_batch)});
  t.row({"pipeline hand-offs", human_bytes(comm.pp_bytes_per_micro_batch),
         "per micro-batch, a middle stage: activations out, gradients back" +
             at(comm_time.pp_seconds_per_micro_batch)});
  if (comm_time.known)
    t.row({"links", fixed(hw.nvlink_gbs, 0) + " / " + fixed(hw.network_gbs, 0) + " GB/s",
           "per GPU and direction: inside a node of " + std::to_string(hw.gpus_per_node) +
               " / between nodes"});
  t.print(out);
}

void print_serve(std::FILE* out, const account::ServePlan& p) {
  const auto& in = p.inputs;
  const auto& hw = p.hardware;
  Table t;
  model_rows(t, p.model);
  t.heading("memory on " + std::to_string(in.gpus) + " x " + hw.description + " (" +
            human_bytes(p.capacity) + " usable at " + fixed(in.memory_utilisation, 2) + ")");
  t.row({"weights (" + in.quant + ")", human_bytes(p.weights),
         fixed(p.weight_bytes_per_param, 4) + " B/param"});
  const std::string what = p.model.mla ? "MLA latent" : "K/V";
  t.row({"KV cache per token (" + in.kv_dtype + ")", human_bytes(p.kv_bytes_per_token), what});
  t.row({"KV cache, " + std::to_string(in.batch) + " x " + std::to_string(in.context) + " tokens",
         human_bytes(p.kv_cache),
         std::string(p.fits ? "fits" : "DOES NOT FIT") + ", max batch at this context " +
             std::to_string(p.max_batch)});
  t.row({p.model.mla ? "  same with full K/V" : "  same as full MHA", human_bytes(p.kv_cache_full),
         human_bytes(p.kv_full_bytes_per_token) + " per token; " +
             (p.fits_full_kv ? "fits" : "does not fit") + ", max batch " +
             std::to_string(p.max_batch_full_kv)});
  t.heading("decode at context " + std::to_string(in.context) + " (roofline upper bounds: " +
            si(hw.bandwidth_gbs * 1e9, "B/s") + ", " + si(p.peak_flops, "FLOP/s") + " per device)");
  t.row({"batch", "tokens/s", "per sequence", "bound", "bytes/step", "$ per M tokens"});
  auto point = [&](const account::DecodePoint& d, double dollars_m) {
    t.row({human(d.batch), human(d.tokens_per_s()), human(d.tokens_per_s() / d.batch),
           d.compute_bound() ? "compute" : "memory", human_bytes(d.bytes), dollars(dollars_m)});
  };
  point(p.batch1, p.dollars_per_million_batch1);
  if (in.batch > 1) point(p.at_batch, p.dollars_per_million);
  t.heading("summary");
  t.row({"compute/bandwidth crossover batch",
         p.crossover_batch > 0 ? grouped(p.crossover_batch) : "none (memory-bound at any batch)"});
  t.row({"energy per M tokens at batch " + std::to_string(in.batch), energy(p.energy_per_million),
         "estimate: " + fixed(hw.power_w, 0) + " W x time x PUE " + fixed(in.pue, 2)});
  t.row({"price", dollars(in.price_per_gpu_hour) + " per device-hour"});
  t.print(out);
  std::fprintf(out, "\nhardware figures: %s\n", hw.source.c_str());
}

void print_hardware(std::FILE* out, const std::vector<account::Hardware>& list) {
  Table t;
  t.row({"name", "bf16 TFLOP/s", "fp8 TFLOP/s", "GB/s", "memory GB", "power W", "description"});
  for (const auto& h : list)
    t.row({h.name, fixed(h.bf16_tflops, 1), h.fp8_tflops > 0 ? fixed(h.fp8_tflops, 1) : "-",
           fixed(h.bandwidth_gbs, 0), fixed(h.memory_gb, 0), fixed(h.power_w, 0), h.description});
  t.print(out);
  std::fprintf(out, "\ndense figures (without 2:4 sparsity); sources in docs/accounting.md\n");
}

}  // namespace tern::app
