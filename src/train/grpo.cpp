#include "train/grpo.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <numeric>
#include <random>

#include "account/energy.h"
#include "account/ledger.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "formats/text_file.h"
#include "model/grad/f32_weights.h"
#include "model/load_weights.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "train/adamw.h"
#include "train/checkpoint_io.h"
#include "train/rewards.h"
#include "train/rollouts.h"
#include "train/run_files.h"
#include "train/svg_plot.h"
#include "train/tasks.h"
#include "train/trainable.h"

namespace tern::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

nlohmann::json grpo_options_json(const GrpoOptions& o) {
  return {{"model", o.model},
          {"task", o.task},
          {"steps", o.steps},
          {"group_size", o.group_size},
          {"prompts_per_step", o.prompts_per_step},
          {"max_tokens", o.max_tokens},
          {"seq", o.seq},
          {"passes", o.passes},
          {"batch", o.batch},
          {"parallel", o.parallel},
          {"kl", o.kl},
          {"clip", o.clip},
          {"dr_grpo", o.dr_grpo},
          {"lr", o.lr},
          {"warmup", o.warmup},
          {"weight_decay", o.weight_decay},
          {"grad_clip", o.grad_clip},
          {"beta1", o.beta1},
          {"beta2", o.beta2},
          {"temperature", o.temperature},
          {"top_p", o.top_p},
          {"reward_weights", o.reward_weights},
          {"seed", o.seed},
          {"task_seed", o.task_seed},
          {"save_every", o.save_every},
          {"keep", o.keep},
          {"exact_rollouts", o.exact_rollouts},
          {"lora", {{"rank", o.lora.rank}, {"alpha", o.lora.alpha}, {"targets", o.lora.targets}}}};
}

void apply_grpo_options(const nlohmann::json& j, GrpoOptions& o) {
  const int64_t steps_now = o.steps;  // a --steps given with --resume wins
  try {
    o.model = j.at("model");
    o.task = j.at("task");
    o.steps = j.at("steps");
    o.group_size = j.at("group_size");
    o.prompts_per_step = j.at("prompts_per_step");
    o.max_tokens = j.at("max_tokens");
    o.seq = j.at("seq");
    o.passes = j.at("passes");
    o.batch = j.at("batch");
    o.parallel = j.at("parallel");
    o.kl = j.at("kl");
    o.clip = j.at("clip");
    o.dr_grpo = j.at("dr_grpo");
    o.lr = j.at("lr");
    o.warmup = j.at("warmup");
    o.weight_decay = j.at("weight_decay");
    o.grad_clip = j.at("grad_clip");
    o.beta1 = j.at("beta1");
    o.beta2 = j.at("beta2");
    o.temperature = j.at("temperature");
    o.top_p = j.at("top_p");
    o.reward_weights = j.at("reward_weights");
    o.seed = j.at("seed");
    o.task_seed = j.at("task_seed");
    o.save_every = j.at("save_every");
    o.keep = j.at("keep");
    o.exact_rollouts = j.at("exact_rollouts");
    if (j.contains("lora")) {
      o.lora.rank = j["lora"].at("rank");
      o.lora.alpha = j["lora"].at("alpha");
      o.lora.targets = j["lora"].at("targets").get<std::vector<std::string>>();
    }
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, std::string("the run's trainer_state.json options: ") + e.what());
  }
  if (steps_now > 0) o.steps = steps_now;
}

namespace {

void check_options(const GrpoOptions& o) {
  if (o.steps < 1) fail(ErrorKind::request, "--steps must be >= 1");
  if (o.group_size < 2)
    fail(ErrorKind::request, "--group-size must be >= 2: advantages compare a group's samples");
  if (o.prompts_per_step < 1 || o.max_tokens < 1 || o.passes < 1 || o.batch < 1)
    fail(ErrorKind::request, "--prompts-per-step, -n, --passes and --batch must be >= 1");
  if (!(o.lr > 0) || !std::isfinite(o.lr)) fail(ErrorKind::request, "--lr must be positive");
  if (!(o.clip > 0 && o.clip < 1)) fail(ErrorKind::request, "--clip must be in (0, 1)");
  if (!(o.kl >= 0) || !std::isfinite(o.kl)) fail(ErrorKind::request, "--kl must be >= 0");
  if (!(o.temperature > 0))
    fail(ErrorKind::request, "--temp must be > 0: GRPO needs different samples per prompt");
  parse_reward_weights(o.reward_weights);
}

// The step's problems: generated tasks hold a fresh problem for every prompt of the run, taken
// in order; a file is walked in a seeded order, reshuffled every pass over it.
std::vector<size_t> step_problems(int64_t step, int64_t per_step, size_t n, uint64_t seed,
                                  bool generated) {
  std::vector<size_t> out;
  if (generated) {
    for (int64_t k = 0; k < per_step; ++k) out.push_back(size_t(step * per_step + k) % n);
    return out;
  }
  std::vector<size_t> perm;
  uint64_t perm_epoch = ~uint64_t(0);
  for (int64_t k = 0; k < per_step; ++k) {
    const uint64_t at = uint64_t(step * per_step + k), epoch = at / n;
    if (epoch != perm_epoch) {
      // Fisher-Yates with mt19937_64 (fully specified by the standard): the same order on
      // every machine, unlike std::shuffle.
      perm.resize(n);
      std::iota(perm.begin(), perm.end(), size_t(0));
      std::mt19937_64 gen(seed * 0x9E3779B97F4A7C15ull + epoch);
      for (size_t i = n; i > 1; --i) std::swap(perm[i - 1], perm[size_t(gen() % i)]);
      perm_epoch = epoch;
    }
    out.push_back(perm[at % n]);
  }
  return out;
}

double mean_of(const std::vector<double>& v) {
  return v.empty() ? 0 : std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
}

void write_pictures(const std::string& dir) {
  const std::vector<nlohmann::json> log = read_log(dir + "/log.jsonl");
  Series reward{"mean reward", {}, {}}, acc{"accuracy", {}, {}}, fmt{"format rate", {}, {}};
  Series len{"mean response tokens", {}, {}};
  for (const nlohmann::json& j : log) {
    if (!j.contains("reward")) continue;
    const double s = j.value("step", 0.0);
    reward.x.push_back(s), reward.y.push_back(j.value("reward", 0.0));
    acc.x.push_back(s), acc.y.push_back(j.value("accuracy", 0.0));
    fmt.x.push_back(s), fmt.y.push_back(j.value("format_rate", 0.0));
    len.x.push_back(s), len.y.push_back(j.value("response_tokens", 0.0));
  }
  formats::write_text_file(dir + "/reward.svg", line_chart_svg("GRPO reward", "step",
                                                               "per response", {reward, acc, fmt}));
  formats::write_text_file(dir + "/response_length.svg",
                           line_chart_svg("Response length", "step", "tokens", {len}));
}

}  // namespace

GrpoSummary grpo(GrpoOptions o) {
  const bool resuming = !o.resume.empty();
  RunFiles run;
  nlohmann::json state;
  if (resuming) {
    run = RunFiles::open(o.resume);
    state = run.latest_state();
    if (!state.contains("grpo"))
      fail(ErrorKind::request, "--resume " + o.resume + " is not a `tern grpo` run");
    apply_grpo_options(state.at("grpo"), o);
  }
  check_options(o);
  if (o.model.empty()) fail(ErrorKind::request, "--model CHECKPOINT is required");
  if (o.task.empty()) fail(ErrorKind::request, "--task TASK is required");
  const std::string model_dir =
      fs::is_directory(o.model) ? o.model : fs::path(o.model).parent_path().string();
  if (!fs::is_regular_file(model_dir + "/config.json"))
    fail(ErrorKind::io, "--model " + o.model + ": no config.json there");
  if (!fs::is_regular_file(model_dir + "/tokenizer.json"))
    fail(ErrorKind::request, "--model " + o.model + ": no tokenizer.json beside the weights");
  std::string config_text = formats::read_text_file(model_dir + "/config.json");
  model::ModelConfig c =
      model::ModelConfig::from_json(nlohmann::json::parse(config_text), model_dir + "/config.json");
  c.validate();
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(model_dir);
  const RewardWeights rw = parse_reward_weights(o.reward_weights);
  const bool generated = o.task == "arithmetic" || o.task == "countdown";
  const std::vector<Problem> problems =
      load_task(o.task, generated ? o.steps * o.prompts_per_step : 0, o.task_seed);
  std::unique_ptr<tokenizer::ChatTemplate> tmpl;
  if (tok.config().chat_templates.count("default"))
    tmpl = std::make_unique<tokenizer::ChatTemplate>(tokenizer::ChatTemplate::from_tokenizer(tok));
  std::vector<TaskPrompt> prompts;
  int64_t longest = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    prompts.push_back(task_prompt(tok, tmpl.get(), problems[i].prompt));
    for (int32_t id : prompts.back().ids)
      if (id < 0 || id >= c.vocab_size)
        fail(ErrorKind::request, "problem " + std::to_string(i + 1) + " encodes to token " +
                                     std::to_string(id) + ", outside the model's vocabulary");
    longest = std::max<int64_t>(longest, int64_t(prompts.back().ids.size()));
  }
  // A window holds the longest prompt and a full response with its end token.
  if (o.seq > 0) {
    if (o.seq <= longest)
      fail(ErrorKind::request,
           "--seq " + std::to_string(o.seq) + " leaves no room for a response " +
               "after the longest prompt (" + std::to_string(longest) + " tokens)");
    o.max_tokens = std::min(o.max_tokens, o.seq - longest);
  }
  const int64_t T_max = longest + o.max_tokens;
  if (T_max > c.max_position_embeddings)
    fail(ErrorKind::request, "the longest prompt (" + std::to_string(longest) + " tokens) and -n " +
                                 std::to_string(o.max_tokens) + " exceed the model's context of " +
                                 std::to_string(c.max_position_embeddings) + "; lower -n or --seq");
  if (!resuming) {
    if (o.out.empty()) fail(ErrorKind::request, "--out RUN_DIR is required");
    run = RunFiles::create(o.out, o.force);
    run.write_tokenizer(model_dir, {}, c);
    config_text = checkpoint_config_text(config_text, tok);
    run.write_config(config_text);
  } else {
    config_text = formats::read_text_file(run.config_path());
  }
  if (o.lora.rank <= 0) run.check_memory(c, o.batch, T_max);
  if (o.threads > 0) ThreadPool::set_global_threads(o.threads);
  ThreadPool& pool = ThreadPool::global();

  // The policy (every weight in f32, or LoRA adapters on the frozen base), its gradients and
  // optimizer; the reference is a separate frozen copy — or, with LoRA, the base itself.
  const AdamWConfig adam_cfg{o.beta1, o.beta2, 1e-8, o.weight_decay, o.grad_clip};
  std::unique_ptr<Trainable> trainable =
      o.lora.rank > 0 ? Trainable::lora(c, model_dir, o.lora, o.seed, adam_cfg)
                      : Trainable::full(c, adam_cfg);
  if (trainable->is_lora())
    run.check_memory(c, o.batch, T_max,
                     double(model::resident_weight_bytes(trainable->params())) +
                         16.0 * double(trainable->trained_parameters(c)));
  model::ModelWeights& params = trainable->params();
  model::ModelWeights& grads = trainable->grads();
  AdamW& adam = trainable->adam();
  int64_t step = 0;
  if (resuming) {
    const std::string ck = run.latest_checkpoint();
    step = trainable->resume(ck, state, c);
    run.truncate_log(step);
    run.truncate_log(step, "rollouts.jsonl");
    log_info("resuming " + ck + " at step " + std::to_string(step) + " of " +
             std::to_string(o.steps));
  } else if (!trainable->is_lora()) {
    load_params(model_dir, c, params);
  }
  model::ModelWeights ref;
  if (trainable->is_lora()) {
    ref = trainable->base_weights(c);
  } else if (o.kl > 0) {
    ref = model::grad::make_f32_weights(c);
    load_params(model_dir, c, ref);
  }
  // What the rollouts run: the parameters themselves (full), or the base with the adapters
  // merged, re-merged after every update (its tensors are shared with the policy's view).
  model::ModelWeights serving = trainable->serving_weights(c);
  model::ModelWeights main_view = serving;
  main_view.mtp.clear();
  model::Model policy = model::Model::from_weights(c, std::move(main_view));

  // Training nets by window length (powers of two up to T_max), so short responses do not
  // pay for the longest possible window.
  std::map<int64_t, std::unique_ptr<model::grad::ModelGrad>> nets;
  auto window_for = [&](int64_t need) {
    int64_t T = 32;
    while (T < need) T *= 2;
    return std::min(T, T_max);
  };
  auto net_for = [&](int64_t T) -> model::grad::ModelGrad& {
    auto& slot = nets[T];
    if (!slot) slot = std::make_unique<model::grad::ModelGrad>(c, o.batch, T);
    return *slot;
  };

  RolloutOptions ro;
  ro.samples = o.group_size;
  ro.max_tokens = o.max_tokens;
  ro.parallel =
      o.parallel > 0 ? o.parallel : std::min<int64_t>(64, o.group_size * o.prompts_per_step);
  ro.sampling.temperature = float(o.temperature);
  ro.sampling.top_p = float(o.top_p);
  ro.sampling.seed = o.seed;
  ro.stop_ids = o.stop_ids;
  if (ro.stop_ids.empty() && tok.eos_id() >= 0) ro.stop_ids = {tok.eos_id()};
  ro.serving_kernels = !o.exact_rollouts;

  const GrpoSettings settings{o.clip, o.kl, o.dr_grpo};
  account::EnergyMeter energy;
  energy.start();
  const auto run_start = Clock::now();
  double rollout_s = 0, update_s = 0, flops = 0, rollout_tokens = 0, trained_tokens = 0;
  const int64_t first_step = step;
  GrpoSummary sum;
  sum.run_dir = run.dir();
  auto save = [&] {
    nlohmann::json st = {{"step", step},
                         {"optimizer_steps", adam.steps()},
                         {"grpo", grpo_options_json(o)},
                         {"rng", {{"generator", "philox4x32-10"}, {"seed", o.seed}}}};
    sum.last_checkpoint =
        trainable->save(run.dir(), step, c, {config_text, run.tokenizer_dir(), st});
    prune_checkpoints(run.dir(), o.keep);
  };

  Progress progress("grpo", o.steps, "steps");
  progress.advance(step);
  while (step < o.steps) {
    // Rollouts on the serving engine over the current weights.
    const std::vector<size_t> picked =
        step_problems(step, o.prompts_per_step, problems.size(), o.seed, generated);
    std::vector<TaskPrompt> step_prompts;
    for (size_t i : picked) step_prompts.push_back(prompts[i]);
    ro.stream = "grpo/" + std::to_string(step);
    std::vector<std::string> texts;
    const auto t0 = Clock::now();
    RolloutStats rstats;
    std::vector<Rollout> rs = generate_rollouts(policy, tok, step_prompts, ro, texts, &rstats);
    const double t_roll = std::chrono::duration<double>(Clock::now() - t0).count();

    // Rewards and group advantages.
    std::vector<double> rewards, correct, formatted, lengths;
    for (size_t k = 0; k < rs.size(); ++k) {
      const Problem& p = problems[picked[size_t(rs[k].problem)]];
      rs[k].correct = accuracy_reward(p, texts[k]) > 0;
      rs[k].formatted = format_reward(texts[k]) > 0;
      rs[k].reward = total_reward(p, texts[k], rw);
      rewards.push_back(rs[k].reward);
      correct.push_back(rs[k].correct);
      formatted.push_back(rs[k].formatted);
      lengths.push_back(double(rs[k].completion.size()));
    }
    for (size_t g0 = 0; g0 < rs.size(); g0 += size_t(o.group_size)) {
      const std::vector<double> group(rewards.begin() + long(g0),
                                      rewards.begin() + long(g0 + size_t(o.group_size)));
      const std::vector<double> adv = group_advantages(group, o.dr_grpo);
      for (size_t k = 0; k < adv.size(); ++k) rs[g0 + k].advantage = adv[k];
    }
    // Every response with its scores, for reading what the policy writes as it learns.
    for (size_t k = 0; k < rs.size(); ++k) {
      const Problem& p = problems[picked[size_t(rs[k].problem)]];
      run.append_log({{"step", step + 1},
                      {"problem", p.prompt},
                      {"answer", p.answer},
                      {"response", texts[k]},
                      {"tokens", rs[k].completion.size()},
                      {"correct", rs[k].correct},
                      {"formatted", rs[k].formatted},
                      {"reward", rs[k].reward},
                      {"advantage", rs[k].advantage}},
                     "rollouts.jsonl");
    }
    const int64_t n_responses = int64_t(rs.size());
    // Without a KL term a zero advantage gives no gradient: such responses are not trained on.
    std::vector<Rollout> train_rs;
    for (Rollout& r : rs)
      if (o.kl > 0 || r.advantage != 0) train_rs.push_back(std::move(r));
    // Similar lengths share micro-batches (and the shortest window that holds them).
    std::stable_sort(train_rs.begin(), train_rs.end(), [](const Rollout& a, const Rollout& b) {
      return a.prompt.size() + a.completion.size() < b.prompt.size() + b.completion.size();
    });
    auto for_each_micro = [&](auto&& body) {
      for (int64_t first = 0; first < int64_t(train_rs.size()); first += o.batch) {
        int64_t need = 1;
        for (int64_t i = first; i < std::min<int64_t>(first + o.batch, int64_t(train_rs.size()));
             ++i)
          need = std::max<int64_t>(need, int64_t(train_rs[size_t(i)].prompt.size() +
                                                 train_rs[size_t(i)].completion.size()) -
                                             1);
        const int64_t T = window_for(need);
        RolloutBatch rb(c, o.batch, T);
        rb.pack(train_rs, first);
        model::grad::ModelGrad& net = net_for(T);
        body(net, rb);
      }
    };

    // Updates: the reference's log-probabilities, then `passes` AdamW steps on −J.
    const auto t1 = Clock::now();
    int64_t update_tokens = 0;
    if (o.kl > 0)
      for_each_micro([&](model::grad::ModelGrad& net, RolloutBatch& rb) {
        record_logprobs(net, ref, rb, train_rs, LogpSlot::reference, pool);
        update_tokens += rb.B() * rb.T();
      });
    GrpoTotals tot;
    double norm = 0;
    const double lr =
        o.lr * (o.warmup > 0 ? std::min(1.0, double(step + 1) / double(o.warmup)) : 1.0);
    for (int64_t pass = 0; pass < o.passes; ++pass) {
      trainable->zero_grad();
      tot = {};
      GrpoStepOptions so;
      so.settings = settings;
      so.n_responses = n_responses;
      so.max_tokens = o.max_tokens;
      so.record_old = pass == 0;
      so.use_ref = o.kl > 0;
      for_each_micro([&](model::grad::ModelGrad& net, RolloutBatch& rb) {
        tot.add(grpo_backward(net, params, grads, rb, train_rs, so, pool));
        // Forward and backward (LoRA: no weight gradients for the frozen base).
        update_tokens += (trainable->is_lora() ? 2 : 3) * rb.B() * rb.T();
      });
      norm = adam.grad_norm();
      if (!std::isfinite(norm) || !std::isfinite(tot.objective)) {
        progress.finish();
        fail(ErrorKind::resource, "GRPO diverged at step " + std::to_string(step + 1) +
                                      ": objective " + std::to_string(tot.objective) +
                                      ", gradient norm " + std::to_string(norm) +
                                      "; the weights were not updated (try a lower --lr)");
      }
      if (!train_rs.empty()) adam.step(lr, norm, pool);
    }
    trainable->refresh_serving(c, serving);
    policy.refresh_derived();
    const double t_update = std::chrono::duration<double>(Clock::now() - t1).count();
    ++step;

    // Accounting: rollouts are forwards over prompts and responses; updates run the training
    // forward and backward (and the reference's forward) over whole windows, padding included.
    double gen_tokens = 0, prompt_tokens = 0;
    for (double l : lengths) gen_tokens += l;
    for (const TaskPrompt& p : step_prompts) prompt_tokens += double(p.ids.size());
    flops += (gen_tokens + prompt_tokens + double(update_tokens)) * o.forward_flops_per_token;
    rollout_s += t_roll;
    update_s += t_update;
    rollout_tokens += gen_tokens;
    trained_tokens += double(tot.tokens);

    const double reward = mean_of(rewards), acc = mean_of(correct);
    if (step == first_step + 1) sum.first_reward = reward, sum.first_accuracy = acc;
    sum.last_reward = reward, sum.last_accuracy = acc;
    const double kl_mean = tot.tokens ? tot.kl_sum / double(tot.tokens) : 0;
    const double clip_frac = tot.tokens ? double(tot.clipped) / double(tot.tokens) : 0;
    run.append_log(
        {{"step", step},
         {"reward", reward},
         {"accuracy", acc},
         {"format_rate", mean_of(formatted)},
         {"response_tokens", mean_of(lengths)},
         {"objective", tot.objective},
         {"kl", kl_mean},
         {"clip_fraction", clip_frac},
         {"grad_norm", norm},
         {"lr", lr},
         {"trained_responses", train_rs.size()},
         {"rollout_s", t_roll},
         {"prompt_cache_fraction",
          rstats.prompt_tokens ? double(rstats.cached_tokens) / double(rstats.prompt_tokens) : 0.0},
         {"update_s", t_update},
         {"rollout_tokens_per_s", t_roll > 0 ? gen_tokens / t_roll : 0}});
    char detail[200];
    std::snprintf(detail, sizeof detail,
                  "reward %.3f acc %.0f%% len %.0f kl %.4f | rollout %.1fs update %.1fs", reward,
                  100 * acc, mean_of(lengths), kl_mean, t_roll, t_update);
    progress.set_detail(detail);
    progress.advance();
    if ((o.save_every > 0 && step % o.save_every == 0) || step == o.steps) save();
  }
  progress.finish();
  write_pictures(run.dir());
  account::Ledger l;
  l.stage = "grpo";
  l.hardware = "cpu";
  l.tokens = rollout_tokens;
  l.flops = flops;
  l.wall_seconds = std::chrono::duration<double>(Clock::now() - run_start).count();
  l.energy = energy.stop(o.watts, 1, 1.0);
  l.price_per_device_hour = o.price_per_hour;
  nlohmann::json ledger = account::to_json(l);
  ledger["first_step"] = first_step + 1;
  ledger["last_step"] = step;
  ledger["rollout_seconds"] = rollout_s;
  ledger["update_seconds"] = update_s;
  ledger["generated_tokens"] = rollout_tokens;
  ledger["trained_tokens"] = trained_tokens;
  ledger["rollout_tokens_per_s"] = rollout_s > 0 ? rollout_tokens / rollout_s : 0;
  run.write_ledger(ledger);
  sum.steps = step;
  sum.seconds = l.wall_seconds;
  sum.rollout_seconds = rollout_s;
  sum.update_seconds = update_s;
  sum.rollout_tokens_per_s = rollout_s > 0 ? rollout_tokens / rollout_s : 0;
  return sum;
}

}  // namespace tern::train
