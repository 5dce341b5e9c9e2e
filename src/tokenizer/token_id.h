// Token ids read from tokenizer.json (vocab values, post-processor special-token ids).
// Owns the one range rule for them; callers index dense per-id tables with the result, so a
// float, a negative or an absurd id must be a format error, never a wild conversion or a
// multi-gigabyte allocation (found by tests/fuzz/fuzz_tokenizer).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::tokenizer {

// 2M: eight times the largest vocabularies in use (~256K), and small enough that the per-id
// tables sized by the largest id stay at tens of MB.
inline constexpr int32_t kMaxTokenId = (1 << 21) - 1;

// `v` as an id in [0, kMaxTokenId]; ErrorKind::format naming `where` otherwise.
int32_t token_id_from_json(const nlohmann::json& v, const std::string& where);

}  // namespace tern::tokenizer
