#include "train/pipeline_runner.h"

#include <algorithm>
#include <chrono>
#include <list>

#include "core/error.h"
#include "train/stage_placement.h"

namespace tern::train {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void add_into(model::grad::StepResult& sum, const model::grad::StepResult& r) {
  sum.loss += r.loss;
  sum.main += r.main;
  sum.mtp += r.mtp;
  sum.balance += r.balance;
  sum.main_targets += r.main_targets;
  if (sum.expert_counts.empty()) {
    sum.expert_counts = r.expert_counts;
    return;
  }
  for (size_t l = 0; l < sum.expert_counts.size(); ++l)
    for (size_t e = 0; e < sum.expert_counts[l].size(); ++e)
      sum.expert_counts[l][e] += r.expert_counts[l][e];
}

constexpr int kActivation = 0, kGradient = 1;

}  // namespace

PipelineRunner::PipelineRunner(dist::Communicator& comm, const model::ModelConfig& c,
                               const std::string& schedule, int micro_batches, int64_t batch,
                               int64_t T, bool recompute)
    : comm_(comm), c_(c), micro_(micro_batches), T_(T), recompute_(recompute) {
  const int P = comm.size();
  if (c.num_hidden_layers < P)
    fail(ErrorKind::request, "--pp " + std::to_string(P) + " needs at least as many layers; the " +
                                 "model has " + std::to_string(c.num_hidden_layers));
  if (micro_batches < 1 || batch % micro_batches != 0)
    fail(ErrorKind::request, "--micro-batches " + std::to_string(micro_batches) +
                                 " must divide --batch " + std::to_string(batch) +
                                 " (each micro-batch holds --batch / --micro-batches windows)");
  if (micro_batches > 8000)
    fail(ErrorKind::request, "--micro-batches above 8000 are not supported (message tags)");
  schedule_ = make_pipe_schedule(schedule, P, micro_batches);
  windows_ = batch / micro_batches;
  S_ = model::grad::window_tokens(c, T);
  const size_t act = size_t(windows_ * T * c.hidden_size);
  in_.resize(act);
  grad_in_.resize(act);
}

std::pair<int64_t, int64_t> PipelineRunner::stage_layers(int stage) const {
  return pipeline_stage_layers(c_.num_hidden_layers, schedule_.stages, stage);
}

bool PipelineRunner::runs_last_stage() const {
  for (int d = 0; d < schedule_.directions; ++d)
    if (schedule_.stage_of(d, comm_.rank()) == schedule_.stages - 1) return true;
  return false;
}

model::grad::ModelGrad& PipelineRunner::acquire(int dir) {
  if (idle_[dir].empty()) {
    all_.push_back(std::make_unique<model::grad::ModelGrad>(c_, windows_, T_, recompute_));
    const auto [first, end] = stage_layers(schedule_.stage_of(dir, comm_.rank()));
    all_.back()->set_stage(first, end);
    if (ep_.active()) all_.back()->set_expert_parallel(ep_);
    idle_[dir].push_back(all_.back().get());
  }
  model::grad::ModelGrad* net = idle_[dir].back();
  idle_[dir].pop_back();
  return *net;
}

int PipelineRunner::global_micro(PipeChunk c) const {
  return c.dir == 0 ? c.micro : micro_ / 2 + c.micro;
}

int PipelineRunner::tag(PipeChunk c, int kind) const {
  return (global_micro(c) * 2 + kind) % 32768;
}

model::grad::StepResult PipelineRunner::step(const model::ModelWeights& w, model::ModelWeights& g,
                                             const int32_t* tokens, const int32_t* docs,
                                             const model::grad::LossWeights& lw, ThreadPool& pool,
                                             const MicroLoss* loss) {
  const int rank = comm_.rank(), P = schedule_.stages;
  const int64_t n_act = windows_ * T_ * c_.hidden_size;
  model::grad::StepResult sum;
  // Outgoing buffers live until their sends complete; completed ones are dropped at each new
  // send, so a rank holds the few still in flight rather than one per micro-batch.
  struct Outgoing {
    std::vector<float> buf;
    dist::Handle sending;
  };
  std::list<Outgoing> outgoing;
  PipeTiming timing;
  auto timed = [&](int dir, int part, double secs) {
    timing.seconds[dir][part] += secs;
    ++timing.count[dir][part];
  };
  comm_.barrier()->wait();  // a common start, for the measured step time
  const Clock::time_point t0 = Clock::now();
  auto send = [&](std::vector<float> buf, int to, int t) {
    outgoing.remove_if([](Outgoing& o) { return o.sending->test(); });
    outgoing.push_back({std::move(buf), nullptr});
    outgoing.back().sending = comm_.send(outgoing.back().buf.data(), n_act * 4, to, t);
    timing.peak_sends_held = std::max(timing.peak_sends_held, int(outgoing.size()));
  };

  auto forward = [&](PipeChunk ch) {
    const int st = schedule_.stage_of(ch.dir, rank);
    if (st > 0)
      comm_.recv(in_.data(), n_act * 4, schedule_.rank_of(ch.dir, st - 1), tag(ch, kActivation))
          ->wait();
    const Clock::time_point f0 = Clock::now();
    model::grad::ModelGrad& net = acquire(ch.dir);
    in_flight_[{ch.dir, ch.micro}] = &net;
    const int64_t first_window = int64_t(global_micro(ch)) * windows_;
    const model::grad::TrainBatch tb{windows_, T_, tokens + first_window * S_,
                                     docs + first_window * S_};
    std::vector<float> out(st < P - 1 ? size_t(n_act) : 0);
    model::grad::RowLoss row_loss;
    if (loss && st == P - 1) row_loss = (*loss)(tb, first_window);
    add_into(sum, net.forward_stage(w, g, tb, lw, st > 0 ? in_.data() : nullptr,
                                    out.empty() ? nullptr : out.data(), pool,
                                    row_loss ? &row_loss : nullptr));
    timed(ch.dir, 0, since(f0));
    if (st < P - 1) send(std::move(out), schedule_.rank_of(ch.dir, st + 1), tag(ch, kActivation));
  };
  auto backward = [&](PipeChunk ch, bool with_weight) {
    const int st = schedule_.stage_of(ch.dir, rank);
    if (st < P - 1)
      comm_.recv(grad_in_.data(), n_act * 4, schedule_.rank_of(ch.dir, st + 1), tag(ch, kGradient))
          ->wait();
    const Clock::time_point b0 = Clock::now();
    const Key key{ch.dir, ch.micro};
    model::grad::ModelGrad* net = in_flight_.at(key);
    in_flight_.erase(key);
    std::vector<float> dh_in(st > 0 ? size_t(n_act) : 0);
    model::grad::WeightGradClock clock;
    std::unique_ptr<model::grad::WeightGradDeferral> later;
    if (!with_weight) later = std::make_unique<model::grad::WeightGradDeferral>();
    {
      const model::grad::DeferWeightGrads scope(later.get());
      net->backward_stage(w, g, st < P - 1 ? grad_in_.data() : nullptr,
                          dh_in.empty() ? nullptr : dh_in.data(), pool);
    }
    idle_[ch.dir].push_back(net);  // its activations are spent (a deferred W holds copies)
    if (later) deferred_[key] = std::move(later);
    timed(ch.dir, 1, since(b0) - clock.seconds());
    if (with_weight) timed(ch.dir, 2, clock.seconds());
    if (st > 0) send(std::move(dh_in), schedule_.rank_of(ch.dir, st - 1), tag(ch, kGradient));
  };
  auto weight = [&](PipeChunk ch) {
    const Clock::time_point w0 = Clock::now();
    const Key key{ch.dir, ch.micro};
    deferred_.at(key)->run(pool);
    deferred_.erase(key);
    timed(ch.dir, 2, since(w0));
  };

  for (const PipeOp& op : schedule_.ranks[size_t(rank)]) {
    switch (op.kind) {
      case PipeOpKind::forward:
        forward(op.f);
        break;
      case PipeOpKind::backward:
        backward(op.b, op.with_weight);
        break;
      case PipeOpKind::weight:
        weight(op.b);
        break;
      case PipeOpKind::forward_backward:
        // On a CPU the pair runs one after the other; what DualPipe overlaps is communication,
        // which the non-blocking hand-offs already take off the critical path.
        forward(op.f);
        backward(op.b, op.with_weight);
        break;
    }
    comm_.progress();
  }
  for (Outgoing& o : outgoing) o.sending->wait();
  TERN_CHECK(in_flight_.empty() && deferred_.empty());
  timing.step = since(t0);
  timing_ = timing;
  return sum;
}

PipelineRunner::Check PipelineRunner::check_simulation() {
  const int P = comm_.size();
  constexpr int kPer = 13;  // [dir][part] seconds, then counts, then the step
  double mine[kPer] = {};
  for (int d = 0; d < 2; ++d)
    for (int k = 0; k < 3; ++k) {
      mine[d * 3 + k] = timing_.seconds[d][k];
      mine[6 + d * 3 + k] = timing_.count[d][k];
    }
  mine[12] = timing_.step;
  std::vector<double> all(size_t(kPer * P));
  comm_.all_gather(mine, all.data(), sizeof mine)->wait();
  std::vector<double> secs(size_t(3 * P), 0.0), counts(size_t(3 * P), 0.0);
  Check ch;
  for (int r = 0; r < P; ++r) {
    const double* v = all.data() + kPer * r;
    for (int d = 0; d < schedule_.directions; ++d)
      for (int k = 0; k < 3; ++k) {
        const int st = schedule_.stage_of(d, r);
        secs[size_t(3 * st + k)] += v[d * 3 + k];
        counts[size_t(3 * st + k)] += v[6 + d * 3 + k];
      }
    ch.measured = std::max(ch.measured, v[12]);
  }
  auto mean = [&](int st, int k) {
    const size_t i = size_t(3 * st + k);
    return counts[i] > 0 ? secs[i] / counts[i] : 0.0;
  };
  for (int st = 0; st < P; ++st) ch.stages.push_back({mean(st, 0), mean(st, 1), mean(st, 2)});
  ch.simulated = simulate(schedule_, ch.stages).makespan;
  return ch;
}

}  // namespace tern::train
