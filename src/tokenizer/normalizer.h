// Normalizers from tokenizer.json: none, Sequence, NFC, NFD, NFKC, NFKD (ICU does the work).
// Owns parsing the "normalizer" field and applying it to one piece of text; anything else is an
// error naming the field, so a file we cannot honour never mis-tokenizes silently.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace tern::tokenizer {

class Normalizer {
 public:
  // `spec` is the JSON "normalizer" value (null allowed); `where` names it in errors.
  static Normalizer from_json(const nlohmann::json& spec, const std::string& where);

  bool empty() const { return forms_.empty(); }
  // Applies every step in order. Input must be valid UTF-8.
  std::string apply(std::string_view text) const;

 private:
  enum class Form { nfc, nfd, nfkc, nfkd };
  std::vector<Form> forms_;
};

}  // namespace tern::tokenizer
