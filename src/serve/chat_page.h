// The chat page served at GET /: one self-contained HTML document (no external scripts, styles
// or fonts, so it works offline and leaks nothing) that talks to /v1/chat/completions with
// streaming, shows reasoning_content in a collapsible block, and keeps the conversation in the
// page. Owns only the page's text.
#pragma once

#include <string_view>

namespace tern::serve {

std::string_view chat_page_html();

}  // namespace tern::serve
