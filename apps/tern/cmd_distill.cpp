// `tern distill --teacher T --student-config S.json --prompts FILE --out RUN_DIR`: distillation
// by traces, as DeepSeek-R1's dense students were made — the teacher answers every prompt
// (reasoning included) through the serving engine's continuous batching, the answers are kept
// as chats (RUN_DIR/traces.jsonl), and a student with the teacher's tokenizer is trained on them
// by SFT (the loss on the teacher's turns; `tern sft`'s loop, checkpoints, resume and ledger).
// `--mode logits --data CORPUS`: the student learns the teacher's softened next-token
// distribution on plain text (train/distill_loss.h), the teacher running beside it.
#include <filesystem>

#include "account/ledger.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/generation_ledger.h"
#include "apps/tern/model_path.h"
#include "apps/tern/train_command.h"
#include "apps/tern/train_parallel_flags.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "core/random.h"
#include "dist/communicator.h"
#include "formats/text_file.h"
#include "serve/api_error.h"
#include "serve/engine.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/jsonl.h"

namespace tern::app {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

struct DistillArgs {
  TrainArgs train;
  std::string teacher, student_config, student, prompts, mode = "traces";
  std::vector<std::string> data;
  int64_t parallel = 8;
  bool no_mtp = false;
  GenerationFlags gen;
};

// The prompts as chats: {"prompt": "..."} becomes one user message; {"messages": [...]} is used
// as given (it must not end with the assistant's answer). ErrorKind::request naming the line.
std::vector<Json> read_prompts(const std::string& path) {
  std::vector<Json> out;
  train::for_each_jsonl_line(path, [&](const Json& j, const std::string& where) {
    if (j.is_object() && j.contains("prompt") && j["prompt"].is_string()) {
      out.push_back(Json::array({{{"role", "user"}, {"content", j["prompt"]}}}));
    } else if (j.is_object() && j.contains("messages") && j["messages"].is_array() &&
               !j["messages"].empty() && j["messages"].back().value("role", "") != "assistant") {
      out.push_back(j["messages"]);
    } else {
      fail(ErrorKind::request,
           where +
               "expected {\"prompt\": \"...\"} or {\"messages\": [...]} ending with a user turn");
    }
  });
  if (out.empty()) fail(ErrorKind::request, "prompt file " + path + " holds no prompt");
  return out;
}

// The teacher's answers, written as chats to `traces` (atomically).
void write_traces(const DistillArgs& a, const std::string& teacher_path,
                  const std::vector<Json>& chats, const std::string& traces) {
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, teacher_path);
  if (!tok.config().chat_templates.count("default"))
    fail(ErrorKind::request, "--teacher " + a.teacher + ": its tokenizer has no chat template");
  const tokenizer::ChatTemplate tmpl = tokenizer::ChatTemplate::from_tokenizer(tok);
  const std::unique_ptr<Engine> e =
      open_engine(a.gen, teacher_path, std::max(a.gen.chunk, 2 * a.parallel), "tern distill",
                  !a.no_mtp, 2 * a.parallel, a.parallel);
  serve::Engine engine(
      e->model, e->pool, e->state,
      {a.parallel, int64_t(chats.size()), e->context, e->mtp_pool ? &*e->mtp_pool : nullptr});
  const infer::SamplingParams params = sampling_params(a.gen);
  const std::vector<int32_t> stops = stop_ids(tok, e->model.config());
  std::vector<std::shared_ptr<serve::Generation>> gens;
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 0; i < chats.size(); ++i) {
    const std::vector<int32_t> ids =
        tok.encode(tmpl.render(tokenizer::checked_messages(chats[i])), false);
    prompts.push_back(ids);
    check_ids_in_vocab(ids, e->model.config());
    serve::GenerationRequest r;
    r.prompt = ids;
    r.max_tokens = std::min(a.gen.n, e->context - int64_t(ids.size()));
    r.stop_ids = stops;
    r.sampling = params;
    r.stream = rng::stream_id("distill/" + std::to_string(i));
    try {
      gens.push_back(engine.submit(std::move(r)));
    } catch (const serve::ApiError& err) {
      fail(ErrorKind::request, a.prompts + " prompt " + std::to_string(i + 1) + ": " + err.what());
    }
  }
  GenerationMeter meter;
  Progress progress("teacher", int64_t(gens.size()), "prompts");
  std::string out;
  int64_t tokens = 0, cut = 0;
  for (size_t i = 0; i < gens.size(); ++i) {
    std::vector<serve::TokenEvent> events;
    std::optional<serve::GenerationResult> res;
    while (!(res = gens[i]->wait(events, std::chrono::milliseconds(500)))) {
    }
    if (res->reason == serve::FinishReason::error)
      fail(ErrorKind::resource,
           "the teacher failed on prompt " + std::to_string(i + 1) + ": " + res->error);
    std::vector<int32_t> ids;
    for (const auto& ev : events) ids.push_back(ev.token);
    tokens += int64_t(ids.size());
    meter.add(int64_t(prompts[i].size()), int64_t(ids.size()));
    cut += res->reason == serve::FinishReason::length;
    Json chat = chats[i];
    chat.push_back({{"role", "assistant"}, {"content", tok.decode(ids, false)}});
    // The ids are what the student trains on: exactly the teacher's prompt and answer,
    // reasoning included (a template may drop reasoning when it renders an answer), with the
    // end token when the teacher stopped by itself.
    if (res->stop_token >= 0) ids.push_back(res->stop_token);
    out += Json({{"messages", chat}, {"prompt_ids", prompts[i]}, {"completion_ids", ids}})
               .dump(-1, ' ', false, Json::error_handler_t::replace) +
           "\n";
    progress.advance();
  }
  progress.finish();
  if (cut > 0)
    log_warn(std::to_string(cut) + " of " + std::to_string(gens.size()) +
             " teacher answers reached -n " + std::to_string(a.gen.n) + " and end mid-way");
  formats::write_text_file(traces, out);
  // The teacher's share of what the student cost; the student's training has its own ledger.
  formats::write_text_file(
      fs::path(traces).parent_path().string() + "/teacher_ledger.json",
      account::to_json(meter.ledger(e->model.config(), "distill:teacher")).dump(2) + "\n");
  log_info("teacher: " + std::to_string(tokens) + " tokens over " + std::to_string(gens.size()) +
           " prompts written to " + traces);
}

int64_t config_int(const std::string& config_path, const char* key) {
  const nlohmann::json j = nlohmann::json::parse(formats::read_text_file(config_path), nullptr,
                                                 /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer())
    fail(ErrorKind::config, config_path + ": no integer " + key);
  return j[key].get<int64_t>();
}

// Logit distillation: the teacher runs beside the student inside the training loop.
void distill_logits(DistillArgs& a, const std::string& teacher_path, const std::string& tok_dir) {
  train::TrainOptions& o = a.train.o;
  if (a.data.empty()) malformed("--mode logits needs --data CORPUS (plain text)");
  if (!a.prompts.empty()) malformed("--prompts is for --mode traces; --mode logits reads --data");
  // Checked before anything is written: distributions are compared token by token. (A GGUF
  // teacher is checked when it loads.)
  const std::string teacher_config = resolve_model_dir(teacher_path) + "/config.json";
  if (fs::exists(teacher_config)) {
    const int64_t tv = config_int(teacher_config, "vocab_size");
    const int64_t sv = config_int(a.student_config, "vocab_size");
    if (tv != sv)
      fail(ErrorKind::request, "--mode logits: the teacher's vocabulary has " + std::to_string(tv) +
                                   " entries and the student config's " + std::to_string(sv) +
                                   "; they must be the same (the student takes the teacher's "
                                   "tokenizer)");
    if (const int64_t ctx = config_int(teacher_config, "max_position_embeddings"); o.seq > ctx)
      fail(ErrorKind::request, "--seq " + std::to_string(o.seq) +
                                   " exceeds the teacher's context of " + std::to_string(ctx));
  }
  o.config = a.student_config;
  o.data = a.data;
  o.tokenizer = tok_dir;
  o.teacher = teacher_path;
  o.mtp_weight = 0;
  if (o.steps <= 0 && o.tokens <= 0) malformed("--mode logits needs --steps N (or --tokens N)");
  run_train(a.train);
}

void distill(DistillArgs& a) {
  train::TrainOptions& o = a.train.o;
  if (!o.resume.empty()) return run_train(a.train);
  if (a.teacher.empty() || (a.student_config.empty() == a.student.empty()) || o.out.empty())
    malformed(
        "--teacher, --out and one of --student-config (a fresh student) or --student (a "
        "pretrained checkpoint) are required (or --resume)");
  if (!a.student.empty()) {  // fine-tuned from its weights (with --lora: adapters on them)
    const std::string dir = resolve_model_dir(a.student);
    a.student_config = dir + "/config.json";
    o.init = dir;
  } else if (a.train.lora.rank > 0) {
    malformed("--lora adapts a pretrained student: give --student CHECKPOINT");
  }
  if (a.mode == "traces" && a.prompts.empty())
    malformed("--mode traces needs --prompts FILE (JSONL of prompts or chats)");
  // Under mpirun only --mode logits trains data-parallel; the run directory is then rank 0's
  // to check and create (the trainer does), or the ranks would race on it.
  const bool ranks = dist::launcher_world_size() > 1;
  if (ranks && a.mode == "traces")
    malformed("--mode traces runs in one process; under mpirun use --mode logits");
  if (!ranks && fs::exists(o.out) && !fs::is_empty(o.out) && !o.force)
    fail(ErrorKind::request, "--out '" + o.out + "' is not empty; use --resume " + o.out +
                                 " to continue that run, or --force to start over in it");
  const std::string teacher_path = resolve_model_path(a.teacher);
  // The student takes the teacher's tokenizer files: found before the teacher runs.
  const std::string tok_dir =
      a.gen.tokenizer.empty() ? resolve_model_dir(teacher_path) : a.gen.tokenizer;
  if (!fs::exists(tok_dir + "/tokenizer.json"))
    fail(ErrorKind::request, "the student needs the teacher's tokenizer.json, which " + tok_dir +
                                 " does not have; give --tokenizer DIR");
  if (a.mode == "logits") return distill_logits(a, teacher_path, tok_dir);
  const std::vector<Json> chats = read_prompts(a.prompts);
  fs::create_directories(o.out);
  const std::string traces = o.out + "/traces.jsonl";
  apply_threads(a.gen.threads);
  write_traces(a, teacher_path, chats, traces);  // the teacher is freed before training
  o.config = a.student_config;
  o.sft = traces;
  o.tokenizer = tok_dir;
  o.force = true;  // the run's own files only: traces.jsonl stays
  if (o.steps <= 0 && o.epochs <= 0) o.epochs = 1;
  run_train(a.train);
}

void setup_distill(CLI::App& sub) {
  auto a = std::make_shared<DistillArgs>();
  train::TrainOptions& o = a->train.o;
  o.lr = 1e-3;
  o.eval_windows = 8;
  sub.add_option("--teacher", a->teacher,
                 "the teacher checkpoint (its tokenizer is the student's)");
  sub.add_option("--student-config", a->student_config,
                 "the student's config.json (e.g. a dense Qwen2/Llama shape; its vocab_size must "
                 "hold the teacher's tokenizer)");
  sub.add_option("--student", a->student,
                 "a pretrained student checkpoint to fine-tune instead of --student-config (its "
                 "vocabulary must be the teacher's)");
  sub.add_option("--prompts", a->prompts,
                 "JSONL of {\"prompt\": ...} or {\"messages\": [...]} the teacher answers");
  add_choice(sub, "--mode", a->mode,
             "traces: SFT on the teacher's answers to --prompts; logits: KL to the teacher's "
             "softened distribution on --data",
             {"traces", "logits"});
  sub.add_option("--data", a->data, "--mode logits: plain-text corpora, FILE or FILE:WEIGHT");
  add_number(sub, "--kd-temperature", o.kd_temperature,
             "--mode logits: τ, the temperature both distributions are softened by", 1e-3, 100);
  add_number(sub, "--hard-weight", o.kd_hard_weight,
             "--mode logits: α, weight of the ordinary next-token loss beside the KL", 0, 1);
  sub.add_option("--out", o.out, "run directory (traces.jsonl, checkpoints, log, ledger)");
  sub.add_option("--resume", o.resume, "continue the student's training where it stopped");
  add_number(sub, "--parallel", a->parallel, "prompts the teacher answers at once", 1, 256);
  sub.add_flag("--no-mtp", a->no_mtp, "the teacher does not draft with its MTP module");
  add_number(sub, "--epochs", o.epochs, "passes over the traces (or --steps)", 0, 1e6);
  add_number(sub, "--steps", o.steps, "optimizer updates (instead of --epochs)", 0, 1e12);
  add_number(sub, "--batch", o.batch, "windows per micro-batch", 1, 1e6);
  add_number(sub, "--seq", o.seq, "tokens per window", 2, 1e7);
  add_number(sub, "--lr", o.lr, "peak learning rate", 0, 1e9);
  add_number(sub, "--eval-every", o.eval_every, "held-out loss and a sample every N steps", 0,
             1e12);
  add_number(sub, "--save-every", o.save_every, "checkpoint every N steps (and at the end)", 0,
             1e12);
  sub.add_flag("--force", o.force, "start over in a non-empty --out");
  add_parallel_flags(sub, o);
  add_lora_flags(sub, a->train.lora);
  a->gen.n = 512;
  add_generation_flags(sub, a->gen);
  example(sub, "tern distill --teacher r1 --student-config qwen.json --prompts q.jsonl --out st");
  example(sub,
          "tern distill --teacher r1 --student qwen-1.5b --prompts q.jsonl --out st --lora 16");
  sub.callback([a] {
    a->train.threads = a->gen.threads;
    a->train.o.threads = int(a->gen.threads.n);
    // --seed seeds the teacher's sampling and the student's init and data order alike.
    if (a->gen.seed >= 0) a->train.o.seed = uint64_t(a->gen.seed);
    distill(*a);
  });
}

}  // namespace

TERN_REGISTER_COMMAND("distill", "train a student on a teacher's answers (R1-style traces)",
                      setup_distill);

}  // namespace tern::app
