// `tern chat MODEL`: an interactive conversation in the model's own chat template. Owns the
// turn loop, the slash commands, Ctrl-C handling and where text goes (answers on stdout,
// reasoning dimmed on a terminal or on stderr otherwise); generation is infer::generate over
// one KV pool kept for the session, so each turn prefills only what the previous one lacks.
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "account/quantity.h"
#include "apps/tern/command.h"
#include "apps/tern/flags.h"
#include "apps/tern/generation_flags.h"
#include "apps/tern/model_path.h"
#include "core/error.h"
#include "core/random.h"
#include "infer/draft_model.h"
#include "infer/generate.h"
#include "infer/think_splitter.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decoder.h"
#include "tokenizer/tokenizer.h"

namespace tern::app {
namespace {

struct ChatArgs {
  std::string model, system, prompt, draft;
  int64_t draft_max = 4;
  bool verbose = false;
  GenerationFlags gen;
};

// Set by SIGINT, polled by the token callback and the line reader. A lock-free atomic is one
// of the few things a signal handler may touch.
std::atomic<bool> g_interrupted{false};
extern "C" void on_sigint(int) {
  g_interrupted.store(true);
}

void install_sigint_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}

// Lines from fd 0 read with poll, so a Ctrl-C is seen at the prompt whichever thread the
// kernel delivers it to (a blocking read is only interrupted on the thread that takes it).
class LineReader {
 public:
  enum class Got { line, end, interrupted };
  Got next(std::string& line) {
    while (true) {
      if (const size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        return Got::line;
      }
      if (eof_) {
        if (buf_.empty()) return Got::end;
        line = std::move(buf_);
        buf_.clear();
        return Got::line;
      }
      if (g_interrupted.load()) return Got::interrupted;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char chunk[4096];
      const ssize_t n = read(STDIN_FILENO, chunk, sizeof chunk);
      if (n > 0) buf_.append(chunk, size_t(n));
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) eof_ = true;
    }
  }

 private:
  std::string buf_;
  bool eof_ = false;
};

// Shows one reply: answer text on stdout; reasoning prefixed and dimmed there on a terminal,
// else on stderr so a pipe's stdout holds only answers. Collects the answer for the history.
class ReplyPrinter {
 public:
  explicit ReplyPrinter(bool terminal) : terminal_(terminal) {}
  void write(const std::vector<infer::ThinkSegment>& segments) {
    for (const infer::ThinkSegment& s : segments) {
      if (s.reasoning != in_reasoning_) s.reasoning ? open_reasoning() : close_reasoning();
      std::FILE* to = s.reasoning && !terminal_ ? stderr : stdout;
      std::fwrite(s.text.data(), 1, s.text.size(), to);
      std::fflush(to);
      if (s.reasoning)
        reasoning_ends_line_ = s.text.back() == '\n';
      else
        answer_ += s.text;
    }
  }
  // Closes the reply with a newline so each answer ends a line.
  const std::string& end() {
    close_reasoning();
    std::fputc('\n', stdout);
    std::fflush(stdout);
    return answer_;
  }

 private:
  void open_reasoning() {
    in_reasoning_ = true;
    std::fputs(terminal_ ? "\x1b[2mthinking: " : "thinking: ", terminal_ ? stdout : stderr);
  }
  void close_reasoning() {
    if (!in_reasoning_) return;
    in_reasoning_ = false;
    std::FILE* to = terminal_ ? stdout : stderr;
    if (terminal_) std::fputs("\x1b[0m", to);
    if (!reasoning_ends_line_) std::fputc('\n', to);
    std::fflush(to);
  }
  bool terminal_, in_reasoning_ = false, reasoning_ends_line_ = false;
  std::string answer_;
};

// The template's end-of-turn token (<|im_end|>, <|eot_id|>, ...): the special token a rendered
// assistant message puts right after its content. Models stop on it, not only on EOS.
struct Session {
  const ChatArgs& args;
  const tokenizer::Tokenizer& tok;
  const tokenizer::ChatTemplate& tmpl;
  Engine& engine;
  infer::SamplingParams params;
  std::vector<int32_t> stops;
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  uint64_t turn = 0;
  bool terminal_out = false;

  void reset() {
    history = nlohmann::ordered_json::array();
    if (!args.system.empty()) history.push_back({{"role", "system"}, {"content", args.system}});
  }

  void say(const std::string& text) const { std::fprintf(stderr, "tern chat: %s\n", text.c_str()); }

  // One user message in, one streamed answer out; the history keeps both unless the prompt
  // could not be run.
  void reply(const std::string& user) {
    history.push_back({{"role", "user"}, {"content", user}});
    const std::string rendered = tmpl.render(history);
    const std::vector<int32_t> prompt = tok.encode(rendered, /*add_special_tokens=*/false);
    check_ids_in_vocab(prompt, engine.model.config());
    if (int64_t(prompt.size()) >= engine.context) {
      history.erase(history.size() - 1);
      say("the conversation is " + std::to_string(prompt.size()) +
          " tokens but the context holds " + std::to_string(engine.context) +
          "; /reset starts a new one (or send a shorter message)");
      return;
    }
    infer::Sampler sampler(params, int32_t(engine.model.config().vocab_size),
                           rng::stream_id("tern chat") + turn++);
    const infer::GenerateRequest req{prompt, args.gen.n, stops, engine.context};
    infer::ThinkSplitter splitter(infer::prompt_opens_reasoning(rendered));
    tokenizer::StreamDecoder decoder(tok, /*skip_special_tokens=*/true);
    ReplyPrinter printer(terminal_out);
    g_interrupted.store(false);
    const infer::TokenCallback show = [&](int32_t id) {
      printer.write(splitter.push(decoder.push(id)));
      return !g_interrupted.load();
    };
    const infer::GenerateStats st =
        engine.draft
            ? infer::generate_draft(engine.model, engine.pool, engine.state, sampler,
                                    {engine.draft->model, engine.draft->pool, engine.draft->state},
                                    req, args.draft_max, show)
            : infer::generate(engine.model, engine.pool, engine.state, sampler, req, show);
    printer.write(splitter.push(decoder.finish()));
    printer.write(splitter.finish());
    history.push_back({{"role", "assistant"}, {"content", printer.end()}});
    if (st.stop == infer::StopReason::caller) say("stopped; the partial answer stays in the chat");
    if (st.stop == infer::StopReason::context)
      say("the context (" + std::to_string(engine.context) + " tokens) is full; /reset");
    if (args.verbose)
      say(std::to_string(st.prompt_tokens) + " prompt tokens (" + std::to_string(st.reused_tokens) +
          " reused), " + std::to_string(st.generated) + " generated at " +
          account::human(st.decode_seconds > 0 ? double(st.generated) / st.decode_seconds : 0) +
          " tok/s; stopped: " + infer::stop_reason_name(st.stop) +
          (st.drafted > 0 ? "; drafts accepted " + std::to_string(st.accepted) + " of " +
                                std::to_string(st.drafted)
                          : ""));
  }

  // Returns false when the session should end.
  bool command(const std::string& line) {
    if (line == "/exit" || line == "/quit") return false;
    if (line == "/reset") {
      reset();
      say("conversation cleared");
    } else if (line == "/help") {
      std::fputs(
          "  /reset  start a new conversation (the --system message stays)\n"
          "  /exit   end the session (also /quit, Ctrl-D, or Ctrl-C at the prompt)\n"
          "  /help   this list\n"
          "  Ctrl-C while an answer streams stops it; the session goes on\n",
          stderr);
    } else {
      say("unknown command '" + line + "' (/help lists them)");
    }
    return true;
  }
};

void chat(const ChatArgs& a) {
  apply_threads(a.gen.threads);
  const std::string model_path = resolve_model_path(a.model);
  const tokenizer::Tokenizer tok = load_tokenizer(a.gen, model_path);
  const tokenizer::ChatTemplate tmpl = tokenizer::ChatTemplate::from_tokenizer(tok);
  const infer::SamplingParams params = sampling_params(a.gen);
  const std::unique_ptr<Engine> engine = open_engine(a.gen, model_path, a.gen.chunk, "tern chat",
                                                     false, a.draft.empty() ? 1 : a.draft_max + 1);
  if (!a.draft.empty()) open_draft(*engine, a.gen, a.draft, tok, a.gen.chunk);

  Session s{a, tok, tmpl, *engine, params, stop_ids(tok, engine->model.config())};
  for (int32_t id : end_of_turn_ids(tmpl, tok))
    if (id < engine->model.config().vocab_size) s.stops.push_back(id);
  if (a.verbose) {
    std::string names;
    for (int32_t id : s.stops) {
      const std::string name = tok.id_to_token(id);  // empty for ids only the model has
      names += (names.empty() ? "" : ", ") + (name.empty() ? "id " + std::to_string(id) : name);
    }
    s.say("answers end at " + (names.empty() ? std::string("the token budget") : names));
  }
  s.terminal_out = isatty(STDOUT_FILENO);
  s.reset();
  const bool terminal_in = isatty(STDIN_FILENO);
  if (terminal_in)
    s.say("ready (context " + std::to_string(engine->context) +
          " tokens); /help lists commands, Ctrl-C stops an answer");
  install_sigint_handler();

  if (!a.prompt.empty()) s.reply(a.prompt);
  LineReader reader;
  std::string line;
  while (true) {
    if (terminal_in) std::fputs("> ", stderr);
    g_interrupted.store(false);
    const LineReader::Got got = reader.next(line);
    if (got != LineReader::Got::line) {
      if (terminal_in) std::fputc('\n', stderr);
      return;
    }
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (!s.command(line)) return;
      continue;
    }
    s.reply(line);
  }
}

void setup_chat(CLI::App& sub) {
  auto a = std::make_shared<ChatArgs>();
  a->gen.n = 1024;
  sub.add_option("model", a->model, "model directory (or a file in it) or .gguf file")->required();
  sub.add_option("--system", a->system, "a system message that opens every conversation");
  sub.add_option("-p,--prompt", a->prompt, "a first user message, sent before reading stdin");
  sub.add_flag("--verbose", a->verbose, "print each turn's token counts and speed on stderr");
  sub.add_option("--draft", a->draft,
                 "speculative decoding with a smaller model of the same tokenizer");
  add_number(sub, "--draft-max", a->draft_max, "tokens the --draft model proposes per step", 1, 32);
  add_generation_flags(sub, a->gen);
  add_lora_adapter_flag(sub, a->gen);
  example(sub, "tern chat MODEL --system 'You are terse.' --temp 0.6");
  sub.callback([a] { chat(*a); });
}

}  // namespace
}  // namespace tern::app

TERN_REGISTER_COMMAND("chat", "interactive chat in the model's chat template (/help inside)",
                      tern::app::setup_chat);
