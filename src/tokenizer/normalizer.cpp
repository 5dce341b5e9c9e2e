// Unicode normalisation through ICU's Normalizer2 (UTF-16 internally). ASCII text is returned
// untouched because every normal form leaves it unchanged — the common case costs one scan.
#include "tokenizer/normalizer.h"

#include <unicode/normalizer2.h>
#include <unicode/unistr.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tern::tokenizer {

namespace {

void parse(const nlohmann::json& spec, const std::string& where, auto& add) {
  if (spec.is_null()) return;
  if (!spec.is_object() || !spec.contains("type"))
    fail(ErrorKind::format, where + ": expected an object with a \"type\"");
  std::string type = spec["type"].get<std::string>();
  if (type == "Sequence") {
    const auto& list = spec.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i)
      parse(list[i], where + ".normalizers[" + std::to_string(i) + "]", add);
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    add(type);
  } else {
    fail(ErrorKind::format, where + ": unsupported normalizer type \"" + type + "\"");
  }
}

}  // namespace

Normalizer Normalizer::from_json(const nlohmann::json& spec, const std::string& where) {
  Normalizer n;
  auto add = [&](const std::string& t) {
    n.forms_.push_back(t == "NFC"    ? Form::nfc
                       : t == "NFD"  ? Form::nfd
                       : t == "NFKC" ? Form::nfkc
                                     : Form::nfkd);
  };
  parse(spec, where, add);
  return n;
}

std::string Normalizer::apply(std::string_view text) const {
  bool ascii = true;
  for (unsigned char c : text) ascii &= c < 0x80;
  if (ascii || forms_.empty()) return std::string(text);
  icu::UnicodeString s =
      icu::UnicodeString::fromUTF8(icu::StringPiece(text.data(), int32_t(text.size())));
  for (Form f : forms_) {
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* n = f == Form::nfc    ? icu::Normalizer2::getNFCInstance(st)
                                : f == Form::nfd  ? icu::Normalizer2::getNFDInstance(st)
                                : f == Form::nfkc ? icu::Normalizer2::getNFKCInstance(st)
                                                  : icu::Normalizer2::getNFKDInstance(st);
    icu::UnicodeString out = n->normalize(s, st);
    if (U_FAILURE(st))
      fail(ErrorKind::internal, std::string("ICU normalization failed: ") + u_errorName(st));
    s = std::move(out);
  }
  std::string result;
  s.toUTF8String(result);
  return result;
}

}  // namespace tern::tokenizer
