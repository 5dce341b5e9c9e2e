#include "tokenizer/token_id.h"

#include "core/error.h"

namespace tern::tokenizer {

int32_t token_id_from_json(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_integer())
    fail(ErrorKind::format, where + ": token id " + v.dump() + " is not an integer");
  if (v.is_number_unsigned() ? v.get<uint64_t>() > uint64_t(kMaxTokenId)
                             : (v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxTokenId))
    fail(ErrorKind::format,
         where + ": token id " + v.dump() + " is outside [0, " + std::to_string(kMaxTokenId) + "]");
  return int32_t(v.get<int64_t>());
}

}  // namespace tern::tokenizer
