#include "train/pipeline_sim.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "train/svg_plot.h"

namespace tern::train {
namespace {

constexpr double kNotYet = std::numeric_limits<double>::quiet_NaN();

enum Part { kF = 0, kB = 1, kW = 2 };

// When each part of each chunk finished, per stage: NaN until it has run.
class Finish {
 public:
  Finish(int stages, int per_direction, int directions)
      : stages_(stages),
        per_dir_(per_direction),
        dirs_(directions),
        t_(size_t(3 * directions * per_direction * stages), kNotYet) {}

  double& at(Part p, PipeChunk c, int stage) {
    TERN_CHECK(c.dir >= 0 && c.dir < dirs_ && c.micro >= 0 && c.micro < per_dir_ && stage >= 0 &&
               stage < stages_);
    return t_[((size_t(p) * size_t(dirs_) + size_t(c.dir)) * size_t(per_dir_) + size_t(c.micro)) *
                  size_t(stages_) +
              size_t(stage)];
  }
  bool all_done() const {
    return std::none_of(t_.begin(), t_.end(), [](double v) { return v != v; });
  }

 private:
  int stages_, per_dir_, dirs_;
  std::vector<double> t_;
};

bool done(double t) {
  return t == t;
}

const char* kind_name(PipeOpKind k) {
  switch (k) {
    case PipeOpKind::forward:
      return "F";
    case PipeOpKind::backward:
      return "B";
    case PipeOpKind::weight:
      return "W";
    case PipeOpKind::forward_backward:
      return "F&B";
  }
  return "?";
}

}  // namespace

double PipeTimeline::max_bubble() const {
  return bubble.empty() ? 0.0 : *std::max_element(bubble.begin(), bubble.end());
}

PipeTimeline simulate(const PipeSchedule& s, const ChunkCosts& c) {
  return simulate(s, std::vector<ChunkCosts>(size_t(s.stages), c));
}

PipeTimeline simulate(const PipeSchedule& s, const std::vector<ChunkCosts>& per_stage) {
  const int P = s.stages;
  TERN_CHECK(int(per_stage.size()) == P);
  const int per_dir = (s.micro_batches + s.directions - 1) / s.directions;
  Finish fin(P, per_dir, s.directions);
  PipeTimeline tl;
  tl.busy.assign(size_t(P), 0.0);
  tl.spans.assign(size_t(P), {});
  std::vector<size_t> next(size_t(P), 0);
  std::vector<double> clock(size_t(P), 0.0);
  std::vector<int> live(size_t(P), 0);
  tl.peak_activations.assign(size_t(P), 0);

  // When the op's inputs are all there (NaN: not yet), for rank r.
  auto ready_at = [&](int r, const PipeOp& op) {
    double t = 0;
    auto need = [&](double v) { t = done(v) && done(t) ? std::max(t, v) : kNotYet; };
    if (op.kind == PipeOpKind::forward || op.kind == PipeOpKind::forward_backward) {
      const int st = s.stage_of(op.f.dir, r);
      if (st > 0) need(fin.at(kF, op.f, st - 1) + per_stage[size_t(st)].hand_off);
    }
    if (op.kind == PipeOpKind::backward || op.kind == PipeOpKind::forward_backward) {
      const int st = s.stage_of(op.b.dir, r);
      need(fin.at(kF, op.b, st));
      if (st < P - 1) need(fin.at(kB, op.b, st + 1) + per_stage[size_t(st)].hand_off);
    }
    if (op.kind == PipeOpKind::weight) need(fin.at(kB, op.b, s.stage_of(op.b.dir, r)));
    return t;
  };
  auto record = [&](Part p, PipeChunk ch, int st, double t, int r) {
    double& slot = fin.at(p, ch, st);
    if (done(slot))
      fail(ErrorKind::internal, "pipeline schedule " + s.name + ": rank " + std::to_string(r) +
                                    " repeats a chunk (direction " + std::to_string(ch.dir) +
                                    ", micro-batch " + std::to_string(ch.micro) + ")");
    slot = t;
  };

  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < P; ++r) {
      const std::vector<PipeOp>& ops = s.ranks[size_t(r)];
      while (next[size_t(r)] < ops.size()) {
        const PipeOp& op = ops[next[size_t(r)]];
        const double ready = ready_at(r, op);
        if (!done(ready)) break;
        const double start = std::max(clock[size_t(r)], ready);
        double cost = 0;
        switch (op.kind) {
          case PipeOpKind::forward: {
            const int st = s.stage_of(op.f.dir, r);
            cost = per_stage[size_t(st)].forward;
            record(kF, op.f, st, start + cost, r);
            ++live[size_t(r)];
            break;
          }
          case PipeOpKind::backward: {
            const int st = s.stage_of(op.b.dir, r);
            const ChunkCosts& c = per_stage[size_t(st)];
            cost = c.backward + (op.with_weight ? c.weight : 0.0);
            // Unsplit, the backward hands its input gradient on only when it ends: B and W
            // interleave layer by layer, the first layer's input gradient coming last.
            record(kB, op.b, st, start + cost, r);
            if (op.with_weight) record(kW, op.b, st, start + cost, r);
            --live[size_t(r)];
            break;
          }
          case PipeOpKind::weight: {
            const int st = s.stage_of(op.b.dir, r);
            cost = per_stage[size_t(st)].weight;
            record(kW, op.b, st, start + cost, r);
            break;
          }
          case PipeOpKind::forward_backward: {
            const int sf = s.stage_of(op.f.dir, r), sb = s.stage_of(op.b.dir, r);
            const ChunkCosts &cf = per_stage[size_t(sf)], &cb = per_stage[size_t(sb)];
            cost = cf.forward_backward >= 0 ? cf.forward_backward
                                            : cf.forward + cb.backward + cb.weight;
            record(kF, op.f, sf, start + cost, r);
            record(kB, op.b, sb, start + cost, r);
            record(kW, op.b, sb, start + cost, r);
            ++live[size_t(r)];  // the forward's activations exist before the backward frees its
            tl.peak_activations[size_t(r)] =
                std::max(tl.peak_activations[size_t(r)], live[size_t(r)]);
            --live[size_t(r)];
            break;
          }
        }
        tl.peak_activations[size_t(r)] = std::max(tl.peak_activations[size_t(r)], live[size_t(r)]);
        clock[size_t(r)] = start + cost;
        tl.busy[size_t(r)] += cost;
        tl.spans[size_t(r)].push_back({int(next[size_t(r)]), start, start + cost});
        ++next[size_t(r)];
        progress = true;
      }
    }
  }
  for (int r = 0; r < P; ++r)
    if (next[size_t(r)] < s.ranks[size_t(r)].size()) {
      const PipeOp& op = s.ranks[size_t(r)][next[size_t(r)]];
      fail(ErrorKind::internal, "pipeline schedule " + s.name + " deadlocks: rank " +
                                    std::to_string(r) + " waits forever at op " +
                                    std::to_string(next[size_t(r)]) + " (" + kind_name(op.kind) +
                                    ")");
    }
  if (!fin.all_done())
    fail(ErrorKind::internal,
         "pipeline schedule " + s.name + " leaves some chunk's F, B or W unrun on some stage");
  for (int r = 0; r < P; ++r) tl.makespan = std::max(tl.makespan, clock[size_t(r)]);
  for (int r = 0; r < P; ++r) tl.bubble.push_back(tl.makespan - tl.busy[size_t(r)]);
  return tl;
}

double one_f_one_b_bubble_formula(int stages, const ChunkCosts& c) {
  return double(stages - 1) * (c.forward + c.backward + c.weight);
}

double dualpipe_bubble_formula(int stages, const ChunkCosts& c) {
  return double(stages / 2 - 1) * (c.pair() + (c.backward + c.weight) - 3 * c.weight);
}

std::string pipeline_timelines_svg(const std::vector<const PipeSchedule*>& schedules,
                                   const std::vector<const PipeTimeline*>& timelines,
                                   const std::string& unit) {
  TERN_CHECK(schedules.size() == timelines.size());
  enum { kForward, kUnsplit, kInput, kPair, kWeight };  // colour indexes, as the legend
  auto label = [](PipeChunk c) { return std::to_string(c.micro) + (c.dir ? "'" : ""); };
  std::vector<TimelineRow> rows;
  std::string title;
  for (size_t i = 0; i < schedules.size(); ++i) {
    const PipeSchedule& s = *schedules[i];
    const PipeTimeline& t = *timelines[i];
    if (i > 0) rows.push_back({});
    title += (i ? " vs " : "") + s.name;
    for (int r = 0; r < s.stages; ++r) {
      TimelineRow row{s.name + " rank " + std::to_string(r), {}};
      for (const PipeSpan& sp : t.spans[size_t(r)]) {
        const PipeOp& op = s.ranks[size_t(r)][size_t(sp.op)];
        switch (op.kind) {
          case PipeOpKind::forward:
            row.boxes.push_back({sp.start, sp.end, label(op.f), kForward});
            break;
          case PipeOpKind::backward:
            row.boxes.push_back(
                {sp.start, sp.end, label(op.b), op.with_weight ? kUnsplit : kInput});
            break;
          case PipeOpKind::weight:
            row.boxes.push_back({sp.start, sp.end, label(op.b), kWeight});
            break;
          case PipeOpKind::forward_backward:
            row.boxes.push_back({sp.start, sp.end, label(op.f) + "/" + label(op.b), kPair});
            break;
        }
      }
      rows.push_back(std::move(row));
    }
  }
  return timeline_svg(
      "Pipeline schedules: " + title, "time (" + unit + ")", rows,
      {"F", "B+W (unsplit)", "B (input gradient)", "F&B (overlapped)", "W (weight gradient)"});
}

}  // namespace tern::train
