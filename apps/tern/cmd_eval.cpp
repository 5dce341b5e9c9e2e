// `tern eval MODEL --task TASK`: accuracy on a verifiable task (train/tasks.h) with rule-based
// checking (train/rewards.h). Every sample of every problem goes through the serving engine's
// continuous batching (serve/engine.h), so `--parallel` sequences decode together; with
// `--samples k` it reports pass@1, majority-vote accuracy and pass@k (train/eval_scores.h).
// `tern eval MODEL --data FILE`: perplexity over a text file with sliding windows
// (infer/perplexity.h).
#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "account/ledger.h"
#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/generation_ledger.h"
#include "apps/tern/input.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "model/imatrix.h"
#include "model/lora_merge.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/random.h"
#include "infer/perplexity.h"
#include "infer/saved_logprobs.h"
#include "kernels/matmul.h"
#include "serve/api_error.h"
#include "serve/engine.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/eval_scores.h"
#include "train/rewards.h"
#include "train/task_prompt.h"
#include "train/tasks.h"

namespace tern::app {
namespace {

struct EvalArgs {
  std::string model, task, data, ref, ledger, imatrix, save_logits, ref_logits;
  int64_t limit = 500, samples = 1, parallel = 8, seed = 0, stride = 0;
  bool json = false, no_mtp = false;
  GenerationFlags gen;
};

// The job's account: into --json's "ledger", appended to --ledger FILE, one line of text.
void report_ledger(const EvalArgs& a, const account::Ledger& l, nlohmann::ordered_json* j) {
  if (!a.ledger.empty()) account::append_ledger(a.ledger, l);
  if (j) {
    (*j)["ledger"] = nlohmann::ordered_json::parse(account::to_json(l).dump());
    return;
  }
  std::printf("  cost                %s FLOPs, %.0f J (%s)\n", account::human(l.flops).c_str(),
              l.energy.joules, l.energy.detail.c_str());
}

void eval_perplexity(const EvalArgs& a) {
  apply_threads(a.gen.threads);
  const std::string model_path = resolve_model_path(a.model);
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, model_path);
  const std::vector<int32_t> ids = tok.encode(read_input(a.data), /*add_special_tokens=*/true);
  model::Model m = model::Model::load(model_path);
  if (!a.gen.lora.empty()) m = model::merge_lora_adapter(m, a.gen.lora);
  check_ids_in_vocab(ids, m.config());
  infer::PerplexityOptions o;
  o.ctx = a.gen.ctx > 0 ? a.gen.ctx : std::min<int64_t>(512, m.config().max_position_embeddings);
  o.stride = a.stride > 0 ? a.stride : std::max<int64_t>(1, o.ctx / 2);
  if (int64_t(ids.size()) < 2)
    fail(ErrorKind::request, a.data + " holds " + std::to_string(ids.size()) +
                                 " token(s); perplexity needs at least two");
  const kernels::ScopedServingKernels kernels(!a.gen.exact);
  const auto t0 = std::chrono::steady_clock::now();
  GenerationMeter meter;
  std::unique_ptr<Progress> progress;
  const auto on_window = [&](int64_t, int64_t total) {
    if (!progress) progress = std::make_unique<Progress>("tern eval", total, "windows");
    progress->advance();
  };
  std::optional<infer::Comparison> cmp;
  infer::PerplexityResult r;
  std::unique_ptr<model::ImatrixCollector> imatrix;
  if (!a.imatrix.empty()) imatrix = std::make_unique<model::ImatrixCollector>(m);
  if (int(!a.ref.empty()) + int(!a.ref_logits.empty()) + int(!a.save_logits.empty()) > 1)
    malformed("--ref, --ref-logits and --save-logits: at most one of them");
  if (!a.ref.empty()) {
    const model::Model ref = model::Model::load(resolve_model_path(a.ref));
    cmp = infer::compare_models(m, ref, ids, o, on_window);
    r = cmp->model;
  } else if (!a.ref_logits.empty()) {
    cmp = infer::compare_with_saved(m, ids, o, a.ref_logits, on_window);
    r = cmp->model;
  } else if (!a.save_logits.empty()) {
    r = infer::save_logprobs(m, ids, o, a.save_logits, on_window);
  } else {
    r = infer::perplexity(m, ids, o, on_window);
  }
  if (progress) progress->finish();
  if (imatrix) {
    imatrix->add_tokens(int64_t(ids.size()));
    model::write_imatrix(a.imatrix, imatrix->result());
    std::fprintf(stderr, "wrote the importance matrix of %lld calibration tokens to %s\n",
                 (long long)ids.size(), a.imatrix.c_str());
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tps = seconds > 0 ? double(r.windows * o.ctx) / seconds : 0;
  // Every window's prefill (of both models when a --ref runs).
  meter.add(r.windows * o.ctx * (a.ref.empty() ? 1 : 2), 0);
  const account::Ledger ledger = meter.ledger(m.config(), "eval:perplexity");
  if (a.json) {
    nlohmann::ordered_json j = {{"data", a.data},           {"tokens", ids.size()},
                                {"scored", r.scored},       {"ctx", o.ctx},
                                {"stride", o.stride},       {"windows", r.windows},
                                {"mean_nll", r.mean_nll()}, {"perplexity", r.perplexity()},
                                {"tokens_per_s", tps},      {"seconds", seconds}};
    if (cmp) {
      j["ref_perplexity"] = cmp->ref.perplexity();
      j["delta_perplexity"] = r.perplexity() / cmp->ref.perplexity() - 1;
      j["kl_mean"] = cmp->kl_mean();
      j["kl_median"] = cmp->kl_quantile(0.5);
      j["kl_p99"] = cmp->kl_quantile(0.99);
      j["top1_agreement"] = cmp->top1_agreement();
    }
    report_ledger(a, ledger, &j);
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("%s: perplexity %.4f over %lld tokens (%lld windows of %lld, stride %lld)\n",
              a.data.c_str(), r.perplexity(), (long long)r.scored, (long long)r.windows,
              (long long)o.ctx, (long long)o.stride);
  std::printf("  mean NLL %.5f nats; %s tok/s over %.1f s%s\n", r.mean_nll(),
              account::human(tps).c_str(), seconds, a.gen.exact ? " (exact kernels)" : "");
  if (cmp)
    std::printf(
        "  against %s: its perplexity %.4f (%+.2f%%), KL mean %.5f median %.5f p99 %.5f, "
        "top-1 agreement %.2f%%\n",
        (a.ref.empty() ? a.ref_logits : a.ref).c_str(), cmp->ref.perplexity(), 100 * (r.perplexity() / cmp->ref.perplexity() - 1),
        cmp->kl_mean(), cmp->kl_quantile(0.5), cmp->kl_quantile(0.99), 100 * cmp->top1_agreement());
  report_ledger(a, ledger, nullptr);
}

void eval(const EvalArgs& a) {
  if (a.data.empty() == a.task.empty()) malformed("give --task TASK or --data FILE (one of them)");
  if (a.data.empty() && (!a.ref.empty() || !a.imatrix.empty() || !a.save_logits.empty() ||
                         !a.ref_logits.empty()))
    malformed("--ref, --imatrix, --save-logits and --ref-logits measure --data FILE, not --task");
  if (!a.data.empty()) return eval_perplexity(a);
  apply_threads(a.gen.threads);
  const std::string model_path = resolve_model_path(a.model);
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, model_path);
  std::unique_ptr<tokenizer::ChatTemplate> tmpl;
  if (tok.config().chat_templates.count("default"))
    tmpl = std::make_unique<tokenizer::ChatTemplate>(tokenizer::ChatTemplate::from_tokenizer(tok));
  const std::vector<train::Problem> problems = train::load_task(a.task, a.limit, uint64_t(a.seed));
  if (a.samples > 1 && a.gen.temp == 0)
    log_warn("--samples " + std::to_string(a.samples) +
             " at --temp 0 gives the same answer every time; pass@k equals pass@1");

  const std::unique_ptr<Engine> e =
      open_engine(a.gen, model_path, std::max(a.gen.chunk, 2 * a.parallel), "tern eval", !a.no_mtp,
                  2 * a.parallel, a.parallel);
  const int64_t total = int64_t(problems.size()) * a.samples;
  serve::Engine engine(e->model, e->pool, e->state,
                       {a.parallel, total, e->context, e->mtp_pool ? &*e->mtp_pool : nullptr});
  infer::SamplingParams params = sampling_params(a.gen);
  const std::vector<int32_t> stops = stop_ids(tok, e->model.config());

  const auto t0 = std::chrono::steady_clock::now();
  GenerationMeter meter;
  std::vector<std::vector<std::shared_ptr<serve::Generation>>> gens(problems.size());
  std::vector<train::TaskPrompt> prompts;
  for (size_t i = 0; i < problems.size(); ++i) {
    prompts.push_back(train::task_prompt(tok, tmpl.get(), problems[i].prompt));
    const std::vector<int32_t>& ids = prompts.back().ids;
    check_ids_in_vocab(ids, e->model.config());
    for (int64_t k = 0; k < a.samples; ++k) {
      serve::GenerationRequest r;
      r.prompt = ids;
      r.max_tokens = std::min(a.gen.n, e->context - int64_t(ids.size()));
      r.stop_ids = stops;
      r.sampling = params;
      r.stream = rng::stream_id("eval/" + std::to_string(i) + "/" + std::to_string(k));
      try {
        gens[i].push_back(engine.submit(std::move(r)));
      } catch (const serve::ApiError& err) {
        fail(ErrorKind::request, "problem " + std::to_string(i + 1) + ": " + err.what());
      }
    }
  }

  std::vector<std::vector<train::SampleScore>> scores(problems.size());
  Progress progress("tern eval", total, "samples");
  int64_t generated = 0, right = 0, done = 0;
  for (size_t i = 0; i < problems.size(); ++i) {
    for (const auto& g : gens[i]) {
      std::vector<serve::TokenEvent> events;
      std::optional<serve::GenerationResult> res;
      while (!(res = g->wait(events, std::chrono::milliseconds(500)))) {
      }
      if (res->reason == serve::FinishReason::error)
        fail(ErrorKind::resource, "generation failed: " + res->error);
      std::vector<int32_t> ids;
      for (const auto& ev : events) ids.push_back(ev.token);
      const std::string text = train::response_text(tok, prompts[i], ids);
      train::SampleScore s;
      s.answer = train::extract_answer(text);
      s.correct = train::accuracy_reward(problems[i], text) > 0;
      s.formatted = train::well_formatted(text);
      s.tokens = int64_t(ids.size());
      generated += s.tokens;
      meter.add(int64_t(prompts[i].ids.size()), s.tokens);
      right += s.correct;
      scores[i].push_back(std::move(s));
      ++done;
      progress.set_detail("accuracy " + std::to_string(int(100.0 * double(right) / double(done))) +
                          "%");
      progress.advance();
    }
  }
  progress.finish();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const train::EvalScores s = train::score_eval(scores);
  const double tps = seconds > 0 ? double(generated) / seconds : 0;
  const account::Ledger ledger = meter.ledger(e->model.config(), "eval:" + a.task);
  if (a.json) {
    nlohmann::ordered_json j = {{"task", a.task},
                                {"problems", s.problems},
                                {"samples_per_problem", a.samples},
                                {"accuracy", s.accuracy},
                                {"majority_accuracy", s.majority_accuracy},
                                {"pass_at_k", s.pass_at_k},
                                {"format_rate", s.format_rate},
                                {"mean_response_tokens", s.mean_response_tokens},
                                {"tokens_per_s", tps},
                                {"seconds", seconds}};
    report_ledger(a, ledger, &j);
    std::printf("%s\n", j.dump(2).c_str());
    return;
  }
  std::printf("task %s: %lld problems x %lld samples\n", a.task.c_str(), (long long)s.problems,
              (long long)a.samples);
  std::printf("  accuracy (pass@1)   %.1f%%\n", 100 * s.accuracy);
  if (a.samples > 1) {
    std::printf("  majority vote       %.1f%%\n", 100 * s.majority_accuracy);
    std::printf("  pass@%-3lld           %.1f%%\n", (long long)a.samples, 100 * s.pass_at_k);
  }
  std::printf("  format (<think>)    %.1f%%\n", 100 * s.format_rate);
  std::printf("  mean response       %.1f tokens\n", s.mean_response_tokens);
  std::printf("  generation          %s tok/s over %.1f s (%lld sequences at once)\n",
              account::human(tps).c_str(), seconds, (long long)a.parallel);
  report_ledger(a, ledger, nullptr);
}

void setup_eval(CLI::App& sub) {
  auto a = std::make_shared<EvalArgs>();
  sub.add_option("model", a->model, "model directory (or a file in it) or .gguf file")->required();
  sub.add_option("--task", a->task,
                 "arithmetic, countdown (generated from --task-seed) or a JSONL file of "
                 "{\"prompt\", \"answer\", \"check\": \"exact|numeric|regex\"}");
  sub.add_option("--data", a->data,
                 "perplexity over this text file instead (sliding windows of --ctx tokens, "
                 "default 512)");
  sub.add_option("--save-logits", a->save_logits,
                 "--data: also save this model's next-token log-probabilities (f16) of every "
                 "scored token, to compare against later with --ref-logits");
  sub.add_option("--ref-logits", a->ref_logits,
                 "--data: compare with log-probabilities saved by --save-logits (same text, "
                 "--ctx and --stride) instead of running a --ref model");
  sub.add_option("--imatrix", a->imatrix,
                 "--data: also write the importance matrix (mean squared input of every matrix's "
                 "columns) over this calibration text, for `tern quantize --imatrix`");
  sub.add_option("--ref", a->ref,
                 "--data: also KL divergence from this reference model (same vocabulary), top-1 "
                 "agreement and the change in perplexity");
  add_number(sub, "--stride", a->stride, "--data: tokens between window starts (default ctx/2)", 0,
             int64_t(1) << 40);
  add_number(sub, "--limit", a->limit, "problems to evaluate (a file: its first N)", 1, 1000000);
  add_number(sub, "--samples", a->samples,
             "samples per problem: with more than one, majority-vote accuracy and pass@k", 1, 1024);
  add_number(sub, "--parallel", a->parallel, "sequences generated at once", 1, 256);
  add_number(sub, "--task-seed", a->seed,
             "seed of the generated problems (arithmetic, countdown); --seed is the sampling's", 0,
             int64_t(1) << 62);
  sub.add_flag("--json", a->json,
               "one JSON object: accuracy, majority_accuracy, pass_at_k, format_rate, "
               "mean_response_tokens, tokens_per_s");
  sub.add_flag("--no-mtp", a->no_mtp, "do not draft with the checkpoint's MTP module");
  sub.add_option("--ledger", a->ledger,
                 "append the job's ledger (FLOPs, time, energy) as a JSON line to this file");
  a->gen.n = 256;
  add_generation_flags(sub, a->gen);
  add_lora_adapter_flag(sub, a->gen);
  example(sub, "tern eval MODEL --task arithmetic --limit 200 --samples 4 --temp 0.6");
  sub.callback([a] { eval(*a); });
}

}  // namespace

TERN_REGISTER_COMMAND("eval", "accuracy on a verifiable task (pass@1, majority vote, pass@k)",
                      setup_eval);

}  // namespace tern::app
