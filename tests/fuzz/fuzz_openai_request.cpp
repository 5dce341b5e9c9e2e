// libFuzzer target: any bytes a client could send as a /v1/chat/completions or /v1/completions
// body (a response_format schema included, whose grammar then reads the body's own bytes), and
// any text a model could generate into the tool-call parser. Refusals are ApiError
// (what the server answers with a 4xx); anything else, or a sanitizer report, is a finding.
#include <cstddef>
#include <cstdint>
#include <string>

#include "infer/json_grammar.h"
#include "serve/api_error.h"
#include "serve/openai_request.h"
#include "serve/tool_calls.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern::serve;
  const std::string body(reinterpret_cast<const char*>(data), size);
  for (Endpoint e : {Endpoint::chat, Endpoint::completions}) {
    try {
      const ApiRequest r = parse_request(body, e);
      if (r.json_schema) {
        tern::infer::JsonGrammar g(r.json_schema);
        for (char ch : body)
          if (!g.advance(uint8_t(ch))) break;
        (void)g.complete();
      }
    } catch (const ApiError&) {
    }
  }
  const ToolCallParse p = parse_tool_calls(body);
  (void)tool_calls_json(p.calls, true);
  return 0;
}
