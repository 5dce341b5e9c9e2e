// Whole small files as strings (configs, JSON state, tokenizer files, corpora): read with an
// io error naming the path, written through AtomicFile so a reader never sees half a file.
#pragma once

#include <string>
#include <string_view>

namespace tern::formats {

// The file's bytes; ErrorKind::io "cannot read 'PATH'" for a missing, unreadable or directory path.
std::string read_text_file(const std::string& path);
// Replaces `path` with `text` atomically (write-then-rename, fsynced).
void write_text_file(const std::string& path, std::string_view text);

}  // namespace tern::formats
