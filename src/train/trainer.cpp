#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include <sys/resource.h>

#include "core/dtype.h"
#include "core/error.h"
#include "core/log.h"
#include "core/phase_timer.h"
#include "core/progress.h"
#include "core/random.h"
#include "core/thread_pool.h"
#include "dist/communicator.h"
#include "formats/text_file.h"
#include "model/config.h"
#include "model/grad/f32_weights.h"
#include "model/grad/model_grad.h"
#include "model/load_weights.h"
#include "model/param_count.h"
#include "tokenizer/bpe_trainer.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/balance.h"
#include "train/checkpoint_io.h"
#include "train/data.h"
#include "train/data_parallel.h"
#include "train/distill_loss.h"
#include "train/pipeline_runner.h"
#include "train/precision.h"
#include "train/run_files.h"
#include "train/sample_text.h"
#include "train/sft_data.h"
#include "train/stage_grads.h"
#include "train/stage_placement.h"
#include "train/teacher.h"
#include "train/trainable.h"
#include "train/zero_adamw.h"

namespace tern::train {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

void check_options(const TrainOptions& o) {
  PrecisionRecipe::make(o.precision, o.fp8_pow2_scales, o.fp8_accumulator);
  if (o.batch < 1 || o.seq < 2 || o.grad_accum < 1)
    fail(ErrorKind::request, "--batch and --grad-accum must be >= 1 and --seq >= 2");
  if (!(o.lr > 0) || !std::isfinite(o.lr))
    fail(ErrorKind::request, "--lr must be a positive number");
  if (o.steps <= 0 && o.tokens <= 0 && !(o.epochs > 0 && !o.sft.empty()))
    fail(ErrorKind::request, "give --steps N or --tokens N");
  if (!o.teacher.empty() && (!(o.kd_temperature > 0) || !std::isfinite(o.kd_temperature) ||
                             !(o.kd_hard_weight >= 0 && o.kd_hard_weight <= 1)))
    fail(ErrorKind::request, "--kd-temperature must be > 0 and --hard-weight in [0, 1]");
  if (o.lora.rank > 0 && o.init.empty())
    fail(ErrorKind::request, "--lora needs a base checkpoint to adapt");
  if (o.lora.rank > 0 && o.precision != "fp32")
    fail(ErrorKind::request,
         "--lora trains its adapters in f32; --precision applies to full training only");
  if (o.mtp_weight < 0 || o.balance_alpha < 0 || o.bias_speed < 0)
    fail(ErrorKind::request,
         "--mtp-weight, --balance-loss-weight and --bias-update-speed must be >= 0");
}

// TERN_TEST_PAUSE_AT_STEP=N: sleeps after step N is logged, so a test can kill -9 the run
// between two checkpoints at a known place.
void pause_for_tests(int64_t step) {
  const char* at = std::getenv("TERN_TEST_PAUSE_AT_STEP");
  if (at && std::atoll(at) == step) std::this_thread::sleep_for(std::chrono::seconds(30));
}

bool finite(double x) {
  return std::isfinite(x);
}

}  // namespace

TrainSummary train(TrainOptions o) {
  const bool resuming = !o.resume.empty();
  // Under mpirun: data parallel (train/data_parallel.h). Rank 0 (the lead) owns the run
  // directory, the log and the checkpoints; the others read what it writes.
  const std::unique_ptr<dist::Communicator> comm = dist::make_world_communicator();
  const int ranks = comm->size();
  const bool lead = comm->rank() == 0;
  if (!lead) set_log_level(LogLevel::warn);
  // Pipeline parallel: ranks d·P .. d·P + P−1 form pipeline d (its stages in order); the D =
  // N / P pipelines are data-parallel replicas, each training on its slice of the batch.
  const int pp = o.pp > 1 ? int(o.pp) : 1;
  if (pp > 1 && ranks % pp != 0)
    fail(ErrorKind::request, "--pp " + std::to_string(pp) + " but " + std::to_string(ranks) +
                                 " rank(s) were started: mpirun -np N needs N = --dp x --pp, "
                                 "each rank one pipeline stage");
  const int dp_ranks = ranks / pp, dp_rank = comm->rank() / pp;
  if (o.dp > 0 && o.dp != dp_ranks)
    fail(ErrorKind::request, "--dp " + std::to_string(o.dp) + " but " + std::to_string(ranks) +
                                 " rank(s) were started" +
                                 (pp > 1 ? " for " + std::to_string(pp) + " pipeline stages" : "") +
                                 " (mpirun -np N with N = --dp x --pp)");
  const std::unique_ptr<dist::Communicator> pp_comm =
      pp > 1 ? comm->split(dp_rank, comm->rank() % pp) : nullptr;
  // On the run's final options (a resume restores its own), before anything is written.
  auto check_parallel = [&] {
    if (ranks > 1 && o.lora.rank > 0)
      fail(ErrorKind::request,
           "data parallel (mpirun) trains full models (tern train, sft, distill --mode logits): "
           "LoRA runs in one process for now");
    if (o.zero > 1)
      fail(ErrorKind::request, "--zero " + std::to_string(o.zero) +
                                   ": only ZeRO stage 1 (sharded optimizer moments) is "
                                   "implemented; stages 2 and 3 are not");
    if (pp > 1 && o.ep > 1 && dp_ranks % o.ep != 0)
      fail(ErrorKind::request,
           "--ep " + std::to_string(o.ep) +
               " with --pp: expert groups form "
               "among the pipelines at each stage, so the pipeline count (--dp " +
               std::to_string(dp_ranks) + ") must be a multiple of --ep");
    if (o.ep > 1 && ranks % o.ep != 0)
      fail(ErrorKind::request,
           "--ep " + std::to_string(o.ep) + " but " + std::to_string(ranks) +
               " rank(s) were started: each group of --ep data-parallel ranks splits the "
               "experts (mpirun -np N with N a multiple of --ep)");
    if (o.zero == 1 && o.lora.rank > 0)
      fail(ErrorKind::request,
           "--zero 1 shards full training's optimizer; LoRA's adapter moments are small");
    if (o.batch % dp_ranks)
      fail(ErrorKind::request, "--batch " + std::to_string(o.batch) +
                                   " (the global batch) must be a multiple of the " +
                                   std::to_string(dp_ranks) + " data-parallel ranks");
    if (o.pp_schedule != "1f1b" && o.pp_schedule != "dualpipe")
      fail(ErrorKind::request, "--pp-schedule '" + o.pp_schedule + "': expected 1f1b or dualpipe");
  };
  RunFiles run;
  nlohmann::json state;
  std::vector<SftExample> sft_examples;
  if (resuming) {
    if (lead) run = RunFiles::open(o.resume);  // drops interrupted saves: before anyone reads
    comm->barrier()->wait();
    if (!lead) run = RunFiles::attach(o.resume);
    state = run.latest_state();
    apply_saved_options(state.at("options"), o);
    check_parallel();
  } else {
    check_parallel();
    check_options(o);
    if (o.config.empty()) fail(ErrorKind::request, "--config FILE is required");
    if (o.data.empty() && o.sft.empty()) fail(ErrorKind::request, "--data FILE... is required");
    if (!o.sft.empty() && !fs::is_regular_file(o.sft))
      fail(ErrorKind::io, "--data: no such chat file '" + o.sft + "'");
    if (!o.sft.empty() && o.tokenizer.empty())
      fail(ErrorKind::request, "fine-tuning needs the model's tokenizer (--tokenizer)");
    // Chats are read before the run directory exists: a bad line leaves nothing behind.
    if (!o.sft.empty())
      sft_examples =
          read_sft_chats(o.sft, tokenizer::Tokenizer::load(o.tokenizer),
                         model::ModelConfig::from_json(
                             nlohmann::json::parse(formats::read_text_file(o.config)), o.config)
                             .vocab_size);
    if (o.out.empty()) fail(ErrorKind::request, "--out RUN_DIR is required");
    // Saved in trainer_state.json and read again on --resume (a LoRA run's base), maybe from
    // another directory.
    if (!o.init.empty()) o.init = fs::absolute(o.init).string();
    // Every input is checked before the run directory is touched.
    for (const std::string& d : o.data)
      if (const CorpusSpec s = parse_corpus_spec(d); !fs::is_regular_file(s.path))
        fail(ErrorKind::io, "--data: no such file '" + s.path + "'");
    run = lead ? RunFiles::create(o.out, o.force) : RunFiles::attach(o.out);
  }
  check_options(o);
  const int64_t local_batch = o.batch / dp_ranks;
  if (o.threads > 0) ThreadPool::set_global_threads(o.threads);
  ThreadPool& pool = ThreadPool::global();

  // Model config and tokenizer.
  std::string config_text =
      resuming ? formats::read_text_file(run.config_path()) : formats::read_text_file(o.config);
  model::ModelConfig c = model::ModelConfig::from_json(nlohmann::json::parse(config_text),
                                                       resuming ? run.config_path() : o.config);
  c.validate();
  std::vector<CorpusSpec> specs;
  for (const std::string& d : o.data) specs.push_back(parse_corpus_spec(d));
  if (!resuming && lead) run.write_tokenizer(o.tokenizer, specs, c);
  comm->barrier()->wait();
  const tokenizer::Tokenizer tok = tokenizer::Tokenizer::load(run.tokenizer_dir());
  if (int64_t(tok.vocab_size()) > c.vocab_size)
    fail(ErrorKind::config, "the tokenizer has " + std::to_string(tok.vocab_size()) +
                                " tokens but the config's vocab_size is " +
                                std::to_string(c.vocab_size));
  config_text = checkpoint_config_text(config_text, tok);
  if (!resuming && lead) run.write_config(config_text);

  // Data: plain-text corpora (pretraining) or packed conversations (fine-tuning, --sft).
  const int64_t S = model::grad::window_tokens(c, o.seq);
  std::vector<Corpus> corpora;
  SftWindows sft;
  if (!o.sft.empty() && resuming) {
    sft = open_sft_windows(state.at("data").at("sft"), run.data_dir());
  } else if (!o.sft.empty()) {
    // The lead packs the conversations into the run directory; the other ranks open them.
    std::string manifest;
    if (lead) {
      sft = prepare_sft_windows(std::move(sft_examples), tok, S, o.val_fraction, run.data_dir());
      manifest = sft_manifest(sft, 0).dump();
    }
    dist::broadcast_text(*comm, manifest);
    if (!lead) sft = open_sft_windows(nlohmann::json::parse(manifest), run.data_dir());
  } else if (resuming) {
    corpora = open_corpora(state.at("data").at("corpora"), run.data_dir());
  } else {
    std::string manifest;
    if (lead) {
      log_info("tokenizing " + std::to_string(specs.size()) + " corpus file(s)");
      corpora = prepare_corpora(specs, tok, run.data_dir(), {o.doc_sep, o.val_fraction});
      manifest = corpora_manifest(corpora).dump();
    }
    dist::broadcast_text(*comm, manifest);
    if (!lead) corpora = open_corpora(nlohmann::json::parse(manifest), run.data_dir());
  }
  WindowSampler sampler(&corpora, o.seq, S, o.seed);
  WindowOrder sft_order(std::max<int64_t>(1, sft.train.n), o.seed);
  const int64_t tokens_per_step = o.batch * o.seq * o.grad_accum;
  if (o.steps <= 0 && o.epochs > 0 && !o.sft.empty())
    o.steps = std::max<int64_t>(
        1, int64_t(std::ceil(o.epochs * double(sft.train.n) / double(o.batch * o.grad_accum))));
  if (o.steps <= 0)
    o.steps = std::max<int64_t>(1, (o.tokens + tokens_per_step - 1) / tokens_per_step);
  if (o.warmup < 0) o.warmup = std::max<int64_t>(1, o.steps / 20);
  LrSchedule sched{o.schedule, o.lr, o.lr_min < 0 ? o.lr / 10 : o.lr_min, o.warmup, o.steps};
  // Parameters (or a frozen base with LoRA adapters), gradients, optimizer.
  const AdamWConfig adam_cfg{o.beta1, o.beta2, 1e-8, o.weight_decay, o.clip};
  // Full training allocates four f32 copies of the model: checked before, not after. (A LoRA
  // base is mapped, not read, so its check can wait until the adapters are counted.)
  // ZeRO-1: weights and gradients whole, the moments 2/N, and at a save one transient copy.
  const int64_t bucket_bytes = std::max<int64_t>(4, int64_t(o.bucket_mb * 1e6));
  const double zero_state_bytes =
      4.0 * double(model::count_parameters(c).total) * (3.0 + 2.0 / double(ranks));
  // (Pipeline stages are checked once their share is known, below.)
  if (o.lora.rank <= 0 && pp == 1)
    run.check_memory(c, o.batch, o.seq, o.zero ? zero_state_bytes : -1.0);
  // Expert parallel, nested in data parallelism as in DeepSeek-V3: ranks g·E .. g·E+E−1 form
  // expert group g and split the routed experts E ways (each expert's weights, gradients and
  // moments on its owner only); the ranks at the same place in every group hold the same
  // experts and sum their gradients (ep_peers). With pipeline stages the groups form among the
  // replicas of each position (pipelines g·E .. g·E+E−1), and the stage reducer sums the
  // experts' copies.
  const bool expert_parallel = o.ep > 1;
  const int ep = expert_parallel ? int(o.ep) : 1;
  const std::unique_ptr<dist::Communicator> position_peers =
      pp > 1 ? comm->split(comm->rank() % pp, dp_rank) : nullptr;
  const std::unique_ptr<dist::Communicator> ep_group =
      !expert_parallel || (pp == 1 && ep == ranks) ? nullptr
      : pp > 1 ? position_peers->split(dp_rank / ep, dp_rank % ep)
               : comm->split(comm->rank() / ep, comm->rank() % ep);
  const std::unique_ptr<dist::Communicator> ep_peers =
      expert_parallel && pp == 1 && ep < ranks ? comm->split(comm->rank() % ep, comm->rank() / ep)
                                               : nullptr;
  const model::ExpertParallel ep_place{expert_parallel ? (ep_group ? ep_group.get() : comm.get())
                                                       : nullptr};
  if (expert_parallel && c.n_routed_experts < ep)
    fail(ErrorKind::request, "--ep " + std::to_string(o.ep) +
                                 " needs at least as many routed experts as ranks; this model "
                                 "has " +
                                 std::to_string(c.n_routed_experts));
  // Pipeline parallel: this rank's stage(s) of each micro-batch, in the schedule's order, and
  // only those stages' weights (the replicas of a position are ranks position + d·P).
  const int micro_batches = pp > 1 ? int(o.micro_batches > 0 ? o.micro_batches : local_batch) : 1;
  std::unique_ptr<PipelineRunner> pipe =
      pp > 1 ? std::make_unique<PipelineRunner>(*pp_comm, c, o.pp_schedule, micro_batches,
                                                local_batch, o.seq, o.recompute)
             : nullptr;
  const std::unique_ptr<StagePlacement> stages =
      pipe ? std::make_unique<StagePlacement>(c, pipe->schedule(), pp_comm->rank()) : nullptr;
  if (stages) {
    // This rank's stages: weights, gradients and moments of the tensors it holds (the moments
    // shared over the replicas with ZeRO), activations of its layers for the micro-batches in
    // flight (at most P+1 of M); the lead also gathers the whole model's weights and moments
    // at each save.
    const double held = double(model::grad::f32_weight_count(
        c, expert_parallel ? &ep_place : nullptr,
        [&](const std::string& name) { return stages->holds(name); }));
    const double whole = double(model::grad::f32_weight_count(c));
    double bytes = 4.0 * held * (o.zero ? 2.0 + 2.0 / double(dp_ranks) : 4.0);
    if (lead) bytes += 12.0 * whole;
    int64_t stage_layers = 0;
    for (int d = 0; d < pipe->schedule().directions; ++d) {
      const auto [first, end] = pipe->stage_layers(pipe->schedule().stage_of(d, pp_comm->rank()));
      stage_layers += end - first;
    }
    const double share = double(stage_layers) / double(c.num_hidden_layers) *
                         std::min(1.0, double(pp + 1) / double(micro_batches));
    run.check_memory(c, local_batch, o.seq, bytes, share);
  }
  std::unique_ptr<Trainable> trainable =
      o.lora.rank > 0     ? Trainable::lora(c, o.init, o.lora, o.seed, adam_cfg)
      : o.zero && !stages ? Trainable::full_sharded(c, adam_cfg, *comm, bucket_bytes, &ep_place)
      : stages            ? Trainable::stage_local(c, adam_cfg,
                                                   {pp_comm.get(), stages.get(), &ep_place,
                                         o.zero ? comm.get() : nullptr, bucket_bytes, dp_rank < ep})
                          : Trainable::full(c, adam_cfg, &ep_place);
  model::ModelWeights& params = trainable->params();
  model::ModelWeights& grads = trainable->grads();
  ZeroAdamW* const zero = trainable->zero();
  // Every Linear's GEMM precision points into the recipe: it lives as long as the run.
  const PrecisionRecipe recipe =
      PrecisionRecipe::make(o.precision, o.fp8_pow2_scales, o.fp8_accumulator);
  if (trainable->is_lora()) {
    const double trained = double(trainable->trained_parameters(c));
    run.check_memory(c, o.batch, o.seq,
                     double(model::resident_weight_bytes(params)) + 16.0 * trained);
    log_info("LoRA rank " + std::to_string(o.lora.rank) + " on " +
             std::to_string(trainable->adapters()->modules().size()) + " matrices: " +
             std::to_string(int64_t(trained)) + " trained parameters; the base stays frozen");
  } else {
    recipe.apply(c, params);
    recipe.apply(c, grads);
  }
  int64_t step = 0;
  if (resuming) {
    const std::string ck = run.latest_checkpoint();
    step = trainable->resume(ck, state, c);
    if (o.sft.empty())
      sampler.restore(state.at("data").at("sampler"));
    else
      sft_order.restore(state.at("data").at("sft").at("given").get<int64_t>());
    if (lead) run.truncate_log(step);
    log_info("resuming " + ck + " at step " + std::to_string(step) + " of " +
             std::to_string(o.steps));
  } else if (trainable->is_lora()) {
    // The adapters start at B = 0: the base's own outputs.
  } else if (!o.init.empty()) {
    load_params(o.init, c, params, expert_parallel ? &ep_place : nullptr);
  } else {
    model::grad::init_random(c, params, o.seed, o.init_std);
  }
  model::grad::ModelGrad net(c, local_batch, o.seq, o.recompute);
  if (pipe && expert_parallel) pipe->set_expert_parallel(ep_place);
  if (expert_parallel) {
    // (A pipeline's lead validates alone on the gathered model: its net keeps every expert.)
    if (!pipe) net.set_expert_parallel(ep_place);
    log_info("expert parallel: each rank runs " + std::to_string(c.n_routed_experts / ep) + "-" +
             std::to_string((c.n_routed_experts + ep - 1) / ep) + " of " +
             std::to_string(c.n_routed_experts) + " routed experts per MoE layer" +
             (pipe       ? ", in groups of " + std::to_string(ep) + " pipelines at each stage"
              : ep_group ? ", in " + std::to_string(ranks / ep) + " groups of " +
                               std::to_string(ep) + " ranks"
                         : ""));
  }
  // Plain data parallelism all-reduces the gradients; ZeRO reduce-scatters them itself; the
  // holders of each pipeline stage's tensors sum theirs among themselves.
  std::unique_ptr<GradientReducer> reducer =
      zero || pipe
          ? nullptr
          : std::make_unique<GradientReducer>(*comm, c, grads, bucket_bytes, expert_parallel);
  std::unique_ptr<StageGradReducer> stage_reducer =
      pipe && !o.zero
          ? std::make_unique<StageGradReducer>(*comm, c, *stages, grads, bucket_bytes, &ep_place)
          : nullptr;
  double comm_bytes_per_step = zero            ? zero->bytes_per_step()
                               : reducer       ? reducer->ring_bytes_per_step()
                               : stage_reducer ? stage_reducer->ring_bytes_per_step()
                                               : 0.0;
  int64_t comm_buckets = zero            ? zero->buckets()
                         : reducer       ? reducer->buckets()
                         : stage_reducer ? stage_reducer->buckets()
                                         : 0;
  int64_t stage_zero_floats = 0;  // --pp with --zero 1: the moments' shares this rank holds
  for (const auto& z : trainable->stage_zeros()) {
    comm_bytes_per_step += z->bytes_per_step();
    comm_buckets += z->buckets();
    stage_zero_floats += z->owned_floats();
  }
  if (pipe) {
    std::string stages;
    for (int st = 0; st < pp; ++st) {
      const auto [first, end] = pipe->stage_layers(st);
      stages += (st ? ", " : "") + std::to_string(first) + "-" + std::to_string(end - 1);
    }
    log_info(
        "pipeline parallel: " + std::to_string(dp_ranks) + " pipeline(s) of " + std::to_string(pp) +
        " stages (layers " + stages + "), " + pipe->schedule().name + " over " +
        std::to_string(micro_batches) + " micro-batches of " +
        std::to_string(local_batch / micro_batches) + " window(s); this rank holds " +
        std::to_string(trainable->trained_parameters(c)) + " of " +
        std::to_string(model::count_parameters(c).total + model::count_parameters(c).mtp_total) +
        " parameters");
  }
  double pipe_measured = 0, pipe_simulated = 0;
  if (ranks > 1 && !pipe)
    log_info("data parallel: " + std::to_string(ranks) + " ranks (" + comm->backend() + ") x " +
             std::to_string(local_batch) + " sequences; " +
             std::to_string(int64_t(comm_bytes_per_step / 1e6)) + " MB " +
             (zero ? "reduce-scattered and all-gathered" : "all-reduced") +
             " per step per rank in " + std::to_string(comm_buckets) + " bucket(s)");
  if (zero)
    log_info("ZeRO-1: this rank holds AdamW moments for " + std::to_string(zero->owned_floats()) +
             " of " + std::to_string(zero->gradient_floats()) + " trained values (" +
             std::to_string(int64_t(8.0 * double(zero->owned_floats()) / 1e6)) + " MB)");
  if (!trainable->stage_zeros().empty())
    log_info("ZeRO-1 over the holders of each stage's tensors: this rank holds AdamW moments for " +
             std::to_string(stage_zero_floats) + " of its " +
             std::to_string(trainable->trained_parameters(c)) + " trained values (" +
             std::to_string(int64_t(8.0 * double(stage_zero_floats) / 1e6)) + " MB)");
  std::unique_ptr<Teacher> teacher;
  std::vector<float> teacher_logits;
  // Pipeline parallel: only the ranks running a last stage compute the loss, so only they load
  // the teacher (its logits for their pipeline's batch).
  if (!o.teacher.empty() && (!pipe || pipe->runs_last_stage())) {
    teacher = std::make_unique<Teacher>(o.teacher, c.vocab_size);
    if (c.num_nextn_predict_layers > 0)
      log_warn(
          "logit distillation trains the main model only; the student's MTP modules get no "
          "gradient (only --weight-decay moves them)");
  }
  const ValWindows val =
      o.sft.empty() ? validation_windows(corpora, S, std::max<int64_t>(o.batch, o.eval_windows))
                    : sft_validation(sft, std::max<int64_t>(o.batch, o.eval_windows));
  if (val.n == 0)
    log_warn(std::string(o.sft.empty() ? "the corpora have"
                                       : "no conversation is held out, so there is") +
             " no validation window of " + std::to_string(S) + " tokens; no validation loss");

  std::vector<int32_t> tokens(size_t(o.batch * S)), docs(size_t(o.batch * S));
  const model::grad::LossWeights lw{float(o.mtp_weight), float(o.balance_alpha),
                                    1.0f / float(o.grad_accum)};
  RunMeter meter(o, c);
  const int64_t first_step = step;
  Progress progress("train", o.steps, "steps");  // drawn by the lead only
  if (lead) progress.advance(step);
  TrainSummary sum;
  sum.run_dir = run.dir();
  auto state_json = [&] {
    nlohmann::json j;
    j["step"] = step;
    j["optimizer_steps"] = trainable->optimizer_steps();
    if (o.sft.empty())
      j["data"] = {{"corpora", corpora_manifest(corpora)}, {"sampler", sampler.state()}};
    else
      j["data"] = {{"sft", sft_manifest(sft, sft_order.given())}};
    j["schedule"] = {{"kind", schedule_name(sched.kind)},
                     {"lr", sched.lr},
                     {"lr_min", sched.lr_min},
                     {"warmup", sched.warmup},
                     {"total", sched.total}};
    j["options"] = saved_options(o);
    j["rng"] = {{"generator", "philox4x32-10"}, {"seed", o.seed}};
    return j;
  };
  auto save = [&] {
    if (pipe)  // each position's replicas (the other pipelines) hold the same tensors
      check_replicas_agree(*position_peers, c, params, step, expert_parallel);
    else
      check_replicas_agree(*comm, c, params, step, expert_parallel);
    if (pipe) {
      // The first pipeline's ranks gather their stages to the lead, after the experts of each
      // stage are gathered in the first expert group (pipelines 0 .. E−1); with ZeRO every rank
      // sends its moments' shares first.
      if (dp_rank >= ep && !o.zero) return;
    } else {
      if (!lead && !zero && !expert_parallel) return;
      // Nested expert groups: group 0 (the lead's) gathers and writes; the others hold replicas
      // (and, with ZeRO, their shares of the moments, which every rank sends).
      if (ep_group && comm->rank() / ep != 0) return trainable->join_save();
    }
    // With ZeRO or expert parallelism every rank takes part: moments (and experts) are gathered
    // to rank 0, which writes.
    const std::string path =
        trainable->save(run.dir(), step, c, {config_text, run.tokenizer_dir(), state_json()});
    if (!lead) return;
    sum.last_checkpoint = path;
    prune_checkpoints(run.dir(), o.keep);
  };
  auto validate_now = [&](const model::ModelWeights& weights) -> double {
    if (val.n == 0) return -1;
    double total = 0;
    int64_t batches = 0;
    // net holds local_batch sequences; the windows of whole --batch groups are scored.
    const int64_t whole = val.n / o.batch * o.batch;
    for (int64_t w0 = 0; w0 + local_batch <= whole; w0 += local_batch, ++batches) {
      const model::grad::TrainBatch vb{local_batch, o.seq, val.tokens.data() + w0 * S,
                                       val.docs.data() + w0 * S};
      total += net.evaluate(weights, vb, lw, pool).main;
    }
    return batches ? total / double(batches) : -1;
  };

  double profiled_seconds = 0, exposed_comm_seconds = 0;
  int64_t profiled_steps = 0;
  while (step < o.steps) {
    // --profile times every step after the first (which sizes the activation buffers).
    const bool profiled = o.profile && step > first_step;
    if (profiled && !phase::enabled()) phase::enable();
    const auto t0 = Clock::now();
    {
      const phase::Scope timer(phase::optimizer);
      trainable->zero_grad();
    }
    double loss = 0, main = 0, mtp = 0, bal = 0;
    std::vector<std::vector<int64_t>> counts;
    for (int64_t micro = 0; micro < o.grad_accum; ++micro) {
      for (int64_t b = 0; b < o.batch; ++b) {
        if (o.sft.empty()) {
          sampler.next(tokens.data() + b * S, docs.data() + b * S);
          continue;
        }
        const int64_t w = sft_order.next();
        std::copy_n(sft.train.tokens.begin() + w * S, S, tokens.begin() + b * S);
        std::copy_n(sft.train.docs.begin() + w * S, S, docs.begin() + b * S);
      }
      // Every rank draws the whole global batch and trains on its slice.
      const int64_t first = dp_rank * local_batch * S;
      const model::grad::TrainBatch tb{local_batch, o.seq, tokens.data() + first,
                                       docs.data() + first};
      // Data parallel: the global batch's normaliser, and the balance term's share.
      model::grad::LossWeights step_lw = lw;
      if (ranks > 1) {
        step_lw.targets =
            double(std::max<int64_t>(count_targets(docs.data(), o.batch, S, o.seq), 1));
        step_lw.balance_alpha /= float(pipe ? micro_batches * dp_ranks : ranks);
      }
      // The last micro-batch's backward starts the gradient reduction as groups finish.
      if (ranks > 1 && o.comm_overlap && !pipe)
        net.on_grads_ready(micro + 1 == o.grad_accum
                               ? model::grad::ModelGrad::GradsReady([&](int64_t group) {
                                   if (zero)
                                     zero->grads_ready(group);
                                   else
                                     reducer->grads_ready(group);
                                 })
                               : nullptr);
      const DistillSettings kd{o.kd_temperature, o.kd_hard_weight};
      if (teacher) teacher->logits(tb, S, teacher_logits);
      // Distillation through a pipeline: each micro-batch's rows of the teacher's logits.
      const PipelineRunner::MicroLoss distill_micro = [&](const model::grad::TrainBatch& micro,
                                                          int64_t first_window) {
        const int64_t V = int64_t(teacher_logits.size()) / (local_batch * o.seq);
        return distill_row_loss(teacher_logits.data() + first_window * o.seq * V, V, micro, S,
                                step_lw, kd);
      };
      const model::grad::StepResult r =
          pipe      ? pipe->step(params, grads, tokens.data() + first, docs.data() + first, step_lw,
                                 pool, !o.teacher.empty() ? &distill_micro : nullptr)
          : teacher ? distill_backward(net, teacher_logits, params, grads, tb, S, step_lw, kd, pool)
                    : net.step(params, grads, tb, step_lw, pool);
      loss += r.loss / double(o.grad_accum);
      main += r.main / double(o.grad_accum);
      mtp += r.mtp / double(o.grad_accum);
      bal += r.balance / double(o.grad_accum);
      if (counts.empty())
        counts = r.expert_counts;
      else
        for (size_t l = 0; l < counts.size(); ++l)
          for (size_t e = 0; e < counts[l].size(); ++e) counts[l][e] += r.expert_counts[l][e];
    }
    double comm_seconds = 0;  // communication the backward did not hide
    // ZeRO's shard of the summed gradient exists only after its reduce-scatter, even alone.
    if (zero) comm_seconds = zero->reduce();
    if (!trainable->stage_zeros().empty()) comm_seconds = trainable->reduce_stage_grads();
    if (ranks > 1) {
      if (reducer) comm_seconds = reducer->sum();
      if (stage_reducer) comm_seconds = stage_reducer->sum();
      // Nested expert groups: the replicas of each expert sum their gradients.
      if (ep_peers) comm_seconds += sum_expert_grads(*ep_peers, c, grads);
      std::vector<double> numbers = {loss, main, mtp, bal};
      reduce_step_numbers(*comm, numbers, counts);
      // Each rank's balance value is its slice's mean over sequences: the batch's is their mean.
      loss = numbers[0], main = numbers[1], mtp = numbers[2];
      bal = numbers[3] / double(pipe ? micro_batches * dp_ranks : ranks);
    }
    double norm = 0;
    {
      const phase::Scope timer(phase::optimizer);
      norm = trainable->grad_norm();
    }
    if (!finite(loss) || !finite(norm)) {
      if (lead) progress.finish();
      const std::string last =
          list_checkpoints(run.dir()).empty()
              ? "no checkpoint was saved yet"
              : "the last good checkpoint is " + list_checkpoints(run.dir()).back().second;
      fail(ErrorKind::resource,
           "training diverged at step " + std::to_string(step + 1) + ": loss " +
               std::to_string(loss) + " (main " + std::to_string(main) + ", mtp " +
               std::to_string(mtp) + ", balance " + std::to_string(bal) + "), gradient norm " +
               std::to_string(norm) + "; stopped without updating the weights; " + last +
               " (try a lower --lr or a longer --warmup)");
    }
    const double lr = sched.at(step);
    {
      const phase::Scope timer(phase::optimizer);
      trainable->step(lr, norm, pool, /*zero_grads=*/true);  // the next zero_grad is free
    }
    if (!trainable->is_lora()) update_bias(c, params, counts, o.bias_speed);  // a frozen base
    const BalanceStats bs = balance_stats(c, counts);
    ++step;
    const double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (profiled) profiled_seconds += secs, ++profiled_steps;
    meter.add_step(double(tokens_per_step), secs);
    nlohmann::json line = {{"step", step},         {"loss", loss},
                           {"main_loss", main},    {"lr", lr},
                           {"grad_norm", norm},    {"tokens_per_s", double(tokens_per_step) / secs},
                           {"mtp_loss", mtp},      {"balance_loss", bal},
                           {"maxvio", bs.maxvio},  {"maxvio_global", bs.maxvio_global},
                           {"expert_load", counts}};
    if (pipe) {  // the last micro-batch's pipeline step against its simulation (a collective)
      const PipelineRunner::Check ch = pipe->check_simulation();
      line["pipeline"] = {{"measured_s", ch.measured},
                          {"simulated_s", ch.simulated},
                          {"sends_held", pipe->last_timing().peak_sends_held}};
      if (step > first_step + 1) pipe_measured += ch.measured, pipe_simulated += ch.simulated;
    }
    if (ranks > 1) {
      line["comm_s"] = comm_seconds;
      // (A pipeline's stage sums run after its schedule: none start in the backward.)
      line["buckets_started_in_backward"] = zero      ? zero->started_early()
                                            : reducer ? reducer->started_early()
                                                      : 0;
      exposed_comm_seconds += comm_seconds;
    }
    if (lead) run.append_log(line);
    pause_for_tests(step);
    sum.final_loss = loss;
    char detail[160];
    std::snprintf(detail, sizeof detail, "loss %.4f lr %.2e %.0f tok/s mfu %.1f%%", loss, lr,
                  meter.tokens_per_s(), 100.0 * meter.mfu());
    progress.set_detail(detail);
    if (lead) progress.advance();
    const bool last = step == o.steps;
    // Under expert parallelism every rank takes part in the validation forwards (collectives);
    // under pipeline parallelism the first pipeline's ranks gather the model to the lead, which
    // validates and samples on that transient copy.
    const bool gathers = pipe ? dp_rank < ep : expert_parallel;
    if ((lead || gathers) && ((o.eval_every > 0 && step % o.eval_every == 0) || last)) {
      const phase::Pause not_a_step;  // validation and sampling are not step time
      model::ModelWeights serving =
          pipe ? trainable->gather_serving_weights(c) : model::ModelWeights{};
      const double v = !pipe ? validate_now(params) : lead ? validate_now(serving) : -1;
      if (lead && v >= 0) {
        run.append_log({{"split", "val"}, {"step", step}, {"loss", v}});
        sum.final_val_loss = v;
      }
      // Expert parallel: the experts are gathered to rank 0 for the sample (a collective).
      if (expert_parallel && !pipe) serving = trainable->gather_serving_weights(c);
      if (lead) {
        const std::string text = sample_text(c, gathers ? serving : trainable->serving_weights(c),
                                             tok, val, o.sample_tokens, pool);
        log_info("step " + std::to_string(step) + (v >= 0 ? " val loss " + std::to_string(v) : "") +
                 " sample: " + text);
      }
    }
    if ((o.save_every > 0 && step % o.save_every == 0) || last) save();
  }
  if (lead) progress.finish();
  sum.steps = step;
  sum.tokens = meter.tokens();
  sum.seconds = meter.seconds();
  sum.lead = lead;
  // Each rank's peak resident set (ZeRO's point is to lower it): a collective, before followers
  // leave.
  std::vector<int64_t> peak_rss(static_cast<size_t>(ranks));
  {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const int64_t mine = int64_t(u.ru_maxrss) * 1024;  // kB on Linux
    comm->all_gather(&mine, peak_rss.data(), sizeof mine)->wait();
  }
  // Pipeline parallel: the values each rank holds and trains (its stages'), a collective too.
  std::vector<int64_t> held_params(static_cast<size_t>(ranks));
  if (pipe) {
    const int64_t mine = trainable->trained_parameters(c);
    comm->all_gather(&mine, held_params.data(), sizeof mine)->wait();
  }
  if (!lead) return sum;
  run.write_pictures();
  nlohmann::json ledger = meter.ledger(o);
  if (ranks > 1)
    ledger["data_parallel"] = {{"ranks", ranks},
                               {"backend", comm->backend()},
                               {"zero_stage", o.zero},
                               {"expert_parallel", ep},
                               {"bytes_sent_per_step_per_rank", comm_bytes_per_step},
                               {"collective_calls", comm->stats().calls},
                               {"buckets", comm_buckets},
                               {"comm_overlap", o.comm_overlap},
                               {"exposed_comm_seconds", exposed_comm_seconds},
                               {"peak_resident_bytes_per_rank", peak_rss}};
  if (pipe) {
    ledger["pipeline_parallel"] = {
        {"stages", pp},
        {"pipelines", dp_ranks},
        {"schedule", pipe->schedule().name},
        {"micro_batches", micro_batches},
        {"measured_pipeline_seconds", pipe_measured},
        {"simulated_pipeline_seconds", pipe_simulated},
        {"parameters_per_rank", held_params},
        {"parameters", model::count_parameters(c).total + model::count_parameters(c).mtp_total}};
    if (pipe_simulated > 0)
      log_info("pipeline: " + pipe->schedule().name + " took " +
               std::to_string(pipe_measured / pipe_simulated) +
               "x its simulation from the measured F, B and W (steps after the first)");
  }
  ledger["peak_resident_bytes"] = peak_rss[0];
  // One invocation's account: a resumed run covers the steps after its checkpoint.
  ledger["first_step"] = first_step + 1;
  ledger["last_step"] = step;
  run.write_ledger(ledger);
  if (profiled_steps > 0) {
    const std::string table =
        phase::report(profiled_seconds / double(profiled_steps), profiled_steps);
    std::fprintf(stderr, "time per step over steps %lld..%lld (--profile):\n%s",
                 static_cast<long long>(first_step + 2), static_cast<long long>(step),
                 table.c_str());
  } else if (o.profile) {
    log_warn("--profile needs at least two steps (the first one sizes the buffers)");
  }
  return sum;
}

}  // namespace tern::train
