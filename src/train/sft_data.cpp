// Chat fine-tuning data (see sft_data.h).
#include "train/sft_data.h"

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "core/random.h"
#include "formats/atomic_file.h"
#include "train/jsonl.h"

namespace tern::train {

SftExample render_conversation(const nlohmann::ordered_json& messages,
                               const tokenizer::Tokenizer& tok, const tokenizer::ChatTemplate& t) {
  const nlohmann::ordered_json msgs = tokenizer::checked_messages(messages);
  tokenizer::ChatOptions whole_opts;
  whole_opts.add_generation_prompt = false;
  SftExample ex;
  ex.tokens = tok.encode(t.render(msgs, whole_opts), /*add_special_tokens=*/false);
  ex.trained.assign(ex.tokens.size(), 0);
  bool any_turn = false, any_trained = false;
  for (size_t j = 0; j < msgs.size(); ++j) {
    if (msgs[j]["role"] != "assistant") continue;
    any_turn = true;
    nlohmann::ordered_json upto = nlohmann::ordered_json::array();
    for (size_t k = 0; k < j; ++k) upto.push_back(msgs[k]);
    tokenizer::ChatOptions ask;
    ask.add_generation_prompt = true;
    const std::vector<int32_t> before = tok.encode(t.render(upto, ask), false);
    upto.push_back(msgs[j]);
    const std::vector<int32_t> after = tok.encode(t.render(upto, whole_opts), false);
    // The turn ends where the render up to it ends (when that is a prefix of the whole) and
    // starts where the question's render stops agreeing with the whole: R1's generation prompt
    // opens "<think>\n", which its rendered answers do not repeat.
    if (after.size() > ex.tokens.size() ||
        !std::equal(after.begin(), after.end(), ex.tokens.begin()))
      continue;
    const size_t common = std::min(before.size(), after.size());
    const size_t start = size_t(
        std::mismatch(before.begin(), before.begin() + int64_t(common), ex.tokens.begin()).first -
        before.begin());
    if (start >= after.size()) continue;
    std::fill(ex.trained.begin() + int64_t(start), ex.trained.begin() + int64_t(after.size()), 1);
    any_trained = true;
  }
  if (!any_turn) fail(ErrorKind::request, "the conversation has no assistant turn to learn from");
  if (!any_trained)
    fail(ErrorKind::request,
         "no assistant turn renders as a prefix of the whole conversation with this chat "
         "template, so none can be trained");
  return ex;
}

SftExample example_from_ids(const std::vector<int32_t>& prompt,
                            const std::vector<int32_t>& completion, int64_t vocab) {
  if (completion.empty()) fail(ErrorKind::request, "'completion_ids' is empty");
  SftExample ex;
  ex.tokens = prompt;
  ex.tokens.insert(ex.tokens.end(), completion.begin(), completion.end());
  for (int32_t id : ex.tokens)
    if (id < 0 || id >= vocab)
      fail(ErrorKind::request, "token id " + std::to_string(id) + " is outside the vocabulary of " +
                                   std::to_string(vocab));
  ex.trained.assign(prompt.size(), 0);
  ex.trained.resize(ex.tokens.size(), 1);
  return ex;
}

std::vector<SftExample> read_chat_file(const std::string& path, const tokenizer::Tokenizer& tok,
                                       const tokenizer::ChatTemplate& t, int64_t vocab) {
  std::vector<SftExample> out;
  for_each_jsonl_line(path, [&](const nlohmann::ordered_json& j, const std::string& where) {
    if (!j.is_object() || !j.contains("messages") || !j["messages"].is_array())
      fail(ErrorKind::request, where + "expected {\"messages\": [...]}");
    try {
      // Token ids, when a line carries them (tern distill's traces), are what the teacher saw
      // and wrote, reasoning included, whatever the template would render.
      if (j.contains("prompt_ids") || j.contains("completion_ids"))
        out.push_back(example_from_ids(j.at("prompt_ids").get<std::vector<int32_t>>(),
                                       j.at("completion_ids").get<std::vector<int32_t>>(), vocab));
      else
        out.push_back(render_conversation(j["messages"], tok, t));
    } catch (const nlohmann::ordered_json::exception& e) {
      fail(ErrorKind::request,
           where + "'prompt_ids' and 'completion_ids' must be lists of ids (" + e.what() + ")");
    } catch (const Error& e) {
      fail(ErrorKind::request, where + e.message());
    }
  });
  if (out.empty()) fail(ErrorKind::request, "chat file " + path + " holds no conversation");
  return out;
}

PackedWindows pack_examples(const std::vector<SftExample>& examples, int64_t S, int32_t pad) {
  PackedWindows w;
  w.S = S;
  std::vector<int32_t> tokens;
  std::vector<uint8_t> trained;
  // Closes the window being filled: pads it and turns the trained flags into document ids.
  const auto close = [&] {
    if (tokens.empty()) return;
    tokens.resize(size_t(S), pad);
    trained.resize(size_t(S), 0);
    int32_t id = 0;
    for (int64_t i = 0; i < S; ++i) {
      w.tokens.push_back(tokens[size_t(i)]);
      w.docs.push_back(i > 0 && trained[size_t(i)] ? w.docs.back() : id++);
    }
    ++w.n;
    tokens.clear();
    trained.clear();
  };
  for (const SftExample& ex : examples) {
    int64_t len = int64_t(ex.tokens.size());
    if (len > S) len = S, ++w.truncated;
    if (int64_t(tokens.size()) + len > S) close();
    tokens.insert(tokens.end(), ex.tokens.begin(), ex.tokens.begin() + len);
    trained.insert(trained.end(), ex.trained.begin(), ex.trained.begin() + len);
    // A conversation's first token is never a target of the one before it.
    trained[trained.size() - size_t(len)] = 0;
  }
  close();
  return w;
}

void write_windows(const PackedWindows& w, const std::string& prefix) {
  for (const auto& [suffix, data] :
       {std::pair<const char*, const std::vector<int32_t>*>{".tokens", &w.tokens},
        {".docs", &w.docs}}) {
    formats::AtomicFile f(prefix + suffix);
    f.write(data->data(), data->size() * sizeof(int32_t));
    f.commit();
  }
}

PackedWindows read_windows(const std::string& prefix, int64_t n, int64_t S) {
  PackedWindows w;
  w.n = n;
  w.S = S;
  for (auto& [suffix, data] :
       {std::pair<const char*, std::vector<int32_t>*>{".tokens", &w.tokens}, {".docs", &w.docs}}) {
    const std::string path = prefix + suffix;
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) fail(ErrorKind::io, "cannot read " + path);
    const std::streamoff bytes = in.tellg();
    if (bytes != std::streamoff(n * S * int64_t(sizeof(int32_t))))
      fail(ErrorKind::format, path + " holds " + std::to_string(bytes) + " bytes; " +
                                  std::to_string(n) + " windows of " + std::to_string(S) +
                                  " tokens need " + std::to_string(n * S * 4));
    data->resize(size_t(n * S));
    in.seekg(0);
    in.read(reinterpret_cast<char*>(data->data()), bytes);
  }
  return w;
}

std::vector<SftExample> read_sft_chats(const std::string& path, const tokenizer::Tokenizer& tok,
                                       int64_t vocab) {
  if (!tok.config().chat_templates.count("default"))
    fail(ErrorKind::request,
         "the model's tokenizer has no chat template to render " + path + " with");
  return read_chat_file(path, tok, tokenizer::ChatTemplate::from_tokenizer(tok), vocab);
}

SftWindows prepare_sft_windows(std::vector<SftExample> ex, const tokenizer::Tokenizer& tok,
                               int64_t S, double val_fraction, const std::string& data_dir) {
  std::filesystem::create_directories(data_dir);
  SftWindows w;
  w.conversations = int64_t(ex.size());
  int64_t n_val =
      ex.size() >= 2 ? std::max<int64_t>(1, int64_t(double(ex.size()) * val_fraction)) : 0;
  n_val = std::min<int64_t>(n_val, int64_t(ex.size()) - 1);
  const std::vector<SftExample> held(ex.end() - n_val, ex.end());
  ex.resize(ex.size() - size_t(n_val));
  const int32_t pad = tok.eos_id() >= 0 ? tok.eos_id() : 0;
  w.train = pack_examples(ex, S, pad);
  w.val = pack_examples(held, S, pad);
  if (w.train.truncated + w.val.truncated > 0)
    log_warn(std::to_string(w.train.truncated + w.val.truncated) + " of " +
             std::to_string(w.conversations) + " conversations are longer than a window of " +
             std::to_string(S) + " tokens and were cut; raise --seq to keep them whole");
  log_info(std::to_string(w.conversations) + " conversations in " + std::to_string(w.train.n) +
           " training and " + std::to_string(w.val.n) + " held-out windows of " +
           std::to_string(S) + " tokens");
  write_windows(w.train, data_dir + "/sft.train");
  write_windows(w.val, data_dir + "/sft.val");
  return w;
}

nlohmann::json sft_manifest(const SftWindows& w, int64_t given) {
  return {{"conversations", w.conversations},
          {"train_windows", w.train.n},
          {"val_windows", w.val.n},
          {"window_tokens", w.train.S},
          {"given", given}};
}

SftWindows open_sft_windows(const nlohmann::json& m, const std::string& data_dir) {
  SftWindows w;
  try {
    const int64_t S = m.at("window_tokens").get<int64_t>();
    w.conversations = m.at("conversations").get<int64_t>();
    w.train = read_windows(data_dir + "/sft.train", m.at("train_windows").get<int64_t>(), S);
    w.val = read_windows(data_dir + "/sft.val", m.at("val_windows").get<int64_t>(), S);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format,
         std::string("trainer_state.json: bad 'sft' data entry (") + e.what() + ")");
  }
  return w;
}

ValWindows sft_validation(const SftWindows& w, int64_t limit) {
  ValWindows v;
  v.n = std::min(limit, w.val.n);
  v.tokens.assign(w.val.tokens.begin(), w.val.tokens.begin() + v.n * w.val.S);
  v.docs.assign(w.val.docs.begin(), w.val.docs.begin() + v.n * w.val.S);
  return v;
}

WindowOrder::WindowOrder(int64_t n, uint64_t seed) : n_(n), seed_(seed) {
  TERN_CHECK(n > 0);
  shuffle(0);
}

void WindowOrder::shuffle(int64_t epoch) {
  order_.resize(size_t(n_));
  for (int64_t i = 0; i < n_; ++i) order_[size_t(i)] = i;
  const uint64_t stream = rng::stream_id("sft/epoch/" + std::to_string(epoch));
  for (int64_t i = n_ - 1; i > 0; --i) {  // Fisher-Yates from the counter-based generator
    const int64_t j = std::min<int64_t>(
        i, int64_t(rng::uniform_double(seed_, stream, uint64_t(i)) * double(i + 1)));
    std::swap(order_[size_t(i)], order_[size_t(j)]);
  }
}

int64_t WindowOrder::next() {
  const int64_t epoch = given_ / n_, at = given_ % n_;
  if (at == 0 && given_ > 0) shuffle(epoch);
  ++given_;
  return order_[size_t(at)];
}

void WindowOrder::restore(int64_t given) {
  if (given < 0) fail(ErrorKind::format, "the SFT sampler's cursor is negative");
  given_ = given;
  shuffle(given / n_);
}

}  // namespace tern::train
