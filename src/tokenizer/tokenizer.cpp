// Tokenizer loading and the encode pipeline: added tokens -> normalizer -> pre-tokenizer -> BPE
// -> post-processor, the order of the reference library. Everything mutable during encoding is
// thread_local scratch, so one loaded Tokenizer serves all threads.
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace tern::tokenizer {

struct Tokenizer::Impl {
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Bpe model;
  AddedVocab added;
  PostProcessor post;
  TokenizerConfig config;
  bool byte_level_decoder = false;
  std::vector<std::string> id_bytes;  // decoded bytes per id
  std::vector<uint8_t> id_flags;      // bit 0: known, bit 1: special
  int32_t bos = -1, eos = -1;
};

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::io, path + ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

nlohmann::json parse_json(std::string_view text, const std::string& name) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, name + ": invalid JSON: " + e.what());
  }
}

// The decoders these files use: ByteLevel (alone or in a Sequence), or none.
bool parse_decoder(const nlohmann::json& d, const std::string& where) {
  if (d.is_null()) return false;
  std::string type = d.at("type").get<std::string>();
  if (type == "ByteLevel") return true;
  if (type == "Sequence") {
    const auto& list = d.at("decoders");
    if (list.size() == 1) return parse_decoder(list[0], where + ".decoders[0]");
  }
  fail(ErrorKind::format,
       where + ": unsupported decoder \"" + type + "\" (ByteLevel is supported)");
}

// transformers rebuilds the post-processor of these classes from add_bos_token/add_eos_token.
bool llama_style_class(const std::string& cls) {
  return cls == "LlamaTokenizerFast" || cls == "LlamaTokenizer" ||
         cls == "CodeLlamaTokenizerFast" || cls == "CodeLlamaTokenizer" ||
         cls == "GemmaTokenizerFast" || cls == "GemmaTokenizer";
}

}  // namespace

Tokenizer Tokenizer::load(const std::string& dir, const LoadOptions& opts) {
  std::string tok_path = dir + "/tokenizer.json";
  std::string cfg_path = dir + "/tokenizer_config.json";
  std::string tok_text = read_file(tok_path);
  std::string cfg_text;
  if (std::ifstream(cfg_path).good()) cfg_text = read_file(cfg_path);
  return from_json_text(tok_text, cfg_text, opts, tok_path);
}

Tokenizer Tokenizer::from_json_text(std::string_view tokenizer_json, std::string_view config_json,
                                    const LoadOptions& opts, const std::string& name) {
  // A missing key or a value of the wrong JSON type surfaces as nlohmann's exception; report it
  // as a format error that names the file.
  try {
    return build(tokenizer_json, config_json, opts, name);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::format, name + ": unexpected structure: " + e.what());
  }
}

Tokenizer Tokenizer::build(std::string_view tokenizer_json, std::string_view config_json,
                           const LoadOptions& opts, const std::string& name) {
  auto impl = std::make_shared<Impl>();
  nlohmann::json j = parse_json(tokenizer_json, name);
  if (!j.is_object() || !j.contains("model"))
    fail(ErrorKind::format, name + ": no \"model\" field");
  auto field = [&](const char* k) { return j.contains(k) ? j[k] : nlohmann::json(); };
  // Truncation would shorten encodings and fixed padding would lengthen them: refuse both rather
  // than return ids that differ from the reference. Batch-longest padding never changes one
  // sequence.
  if (!field("truncation").is_null())
    fail(ErrorKind::format, name + ": truncation: not supported (set it to null)");
  if (const auto pad = field("padding"); !pad.is_null() && pad.contains("strategy") &&
                                         pad["strategy"].is_object() &&
                                         pad["strategy"].contains("Fixed"))
    fail(ErrorKind::format, name + ": padding: fixed-length padding is not supported");
  impl->normalizer = Normalizer::from_json(field("normalizer"), name + ": normalizer");
  impl->pre_tokenizer = PreTokenizer::from_json(field("pre_tokenizer"), name + ": pre_tokenizer");
  impl->model = Bpe::from_json(j["model"], impl->pre_tokenizer.byte_level(), name + ": model");
  const Bpe& model = impl->model;
  impl->added = AddedVocab::from_json(
      field("added_tokens"), name + ": added_tokens",
      [&](const std::string& s) { return model.lookup_token(s); }, model.vocab_entries());
  impl->post = PostProcessor::from_json(field("post_processor"), name + ": post_processor");
  impl->byte_level_decoder = parse_decoder(field("decoder"), name + ": decoder");
  std::string cfg_name = name.substr(0, name.rfind('/') + 1) + "tokenizer_config.json";
  if (!config_json.empty())
    impl->config = TokenizerConfig::from_json(parse_json(config_json, cfg_name), cfg_name);

  // Per-id decode table: model tokens, then added tokens (which take precedence).
  const auto& vocab = impl->model.id_to_token();
  size_t n = vocab.size();
  for (const auto& t : impl->added.tokens()) n = std::max(n, size_t(t.id) + 1);
  impl->id_bytes.assign(n, std::string());
  impl->id_flags.assign(n, 0);
  auto set = [&](int32_t id, const std::string& token, bool special) {
    auto bytes = impl->byte_level_decoder ? chars_to_bytes(token) : std::nullopt;
    impl->id_bytes[size_t(id)] = bytes ? *bytes : token;
    impl->id_flags[size_t(id)] = uint8_t(1 | (special ? 2 : 0));
  };
  for (size_t id = 0; id < vocab.size(); ++id)
    if (!vocab[id].empty() || impl->model.lookup_token("") == int32_t(id))
      set(int32_t(id), vocab[id], false);
  for (const auto& t : impl->added.tokens()) set(t.id, t.content, t.special);

  Tokenizer tok;
  tok.impl_ = impl;
  auto id_of = [&](const std::string& s) {
    return s.empty() ? -1 : tok.token_to_id(s).value_or(-1);
  };
  impl->bos = id_of(impl->config.bos_token);
  impl->eos = id_of(impl->config.eos_token);
  if (opts.follow_tokenizer_config && llama_style_class(impl->config.tokenizer_class)) {
    bool add_bos = impl->config.add_bos_token.value_or(true);
    bool add_eos = impl->config.add_eos_token.value_or(false);
    if ((add_bos && impl->bos < 0) || (add_eos && impl->eos < 0))
      fail(ErrorKind::config,
           cfg_name + ": add_bos_token/add_eos_token set but bos_token/eos_token is missing");
    impl->post = PostProcessor::bos_eos(add_bos ? impl->bos : -1, add_eos ? impl->eos : -1);
  }
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  std::string repaired;
  if (!utf8_is_valid(text)) {
    repaired = utf8_lossy(text);
    text = repaired;
  }
  thread_local PieceBuffer buf;
  thread_local std::vector<Segment> segments;
  buf.storage.clear();
  segments.clear();
  m.added.split(
      text, [&](std::string_view s) { return m.normalizer.apply(s); }, !m.normalizer.empty(),
      buf.storage, segments);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  for (const Segment& seg : segments) {
    if (seg.id >= 0) {
      ids.push_back(seg.id);
      continue;
    }
    buf.pieces.clear();
    buf.pieces.push_back(seg.text);
    m.pre_tokenizer.apply(buf);
    for (std::string_view piece : buf.pieces) m.model.encode_piece(piece, ids);
  }
  if (add_special_tokens) m.post.apply(ids);
  return ids;
}

std::vector<std::vector<int32_t>> Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                                          bool add_special_tokens) const {
  std::vector<std::vector<int32_t>> out(texts.size());
  ThreadPool::global().parallel_for(int64_t(texts.size()), 1, [&](int64_t b, int64_t e, int) {
    for (int64_t i = b; i < e; ++i) out[size_t(i)] = encode(texts[size_t(i)], add_special_tokens);
  });
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  std::string bytes;
  bool first = true;
  for (int32_t id : ids) {
    if (!is_known(id) || (skip_special_tokens && is_special(id))) continue;
    if (!impl_->byte_level_decoder && !first) bytes.push_back(' ');
    first = false;
    bytes += impl_->id_bytes[size_t(id)];
  }
  return utf8_lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  int32_t a = impl_->added.find_content(token);
  if (a >= 0) return a;
  int32_t m = impl_->model.lookup_token(token);
  if (m >= 0) return m;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  if (const AddedToken* t = impl_->added.find_id(id)) return t->content;
  const auto& v = impl_->model.id_to_token();
  if (id >= 0 && size_t(id) < v.size()) return v[size_t(id)];
  return {};
}

size_t Tokenizer::vocab_size() const {
  return impl_->id_bytes.size();
}
bool Tokenizer::is_known(int32_t id) const {
  return id >= 0 && size_t(id) < impl_->id_flags.size() && (impl_->id_flags[size_t(id)] & 1);
}
bool Tokenizer::is_special(int32_t id) const {
  return is_known(id) && (impl_->id_flags[size_t(id)] & 2);
}
const std::string& Tokenizer::token_bytes(int32_t id) const {
  TERN_CHECK(is_known(id));
  return impl_->id_bytes[size_t(id)];
}
bool Tokenizer::byte_level_decoder() const {
  return impl_->byte_level_decoder;
}
const TokenizerConfig& Tokenizer::config() const {
  return impl_->config;
}
int32_t Tokenizer::bos_id() const {
  return impl_->bos;
}
int32_t Tokenizer::eos_id() const {
  return impl_->eos;
}
const std::vector<int32_t>& Tokenizer::special_prefix() const {
  return impl_->post.prefix();
}
const std::vector<int32_t>& Tokenizer::special_suffix() const {
  return impl_->post.suffix();
}

}  // namespace tern::tokenizer
