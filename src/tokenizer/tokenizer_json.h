// Building blocks of the tokenizer.json files tern writes (a trained tokenizer) or rebuilds (from
// a GGUF's keys): a byte-level BPE skeleton, added-token entries and a BOS template. Templates
// over the JSON type because the trainer writes ordered_json (readable files) while a 150k-token
// vocabulary rebuilt in memory needs json's map (ordered_json looks keys up linearly).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace tern::tokenizer {

template <typename Json>
Json added_token_json(int64_t id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

// TemplateProcessing that puts `bos` (id `bos_id`) before every sequence.
template <typename Json>
Json bos_template_json(const std::string& bos, int64_t bos_id) {
  const Json b = {{"SpecialToken", {{"id", bos}, {"type_id", 0}}}};
  return {{"type", "TemplateProcessing"},
          {"single", {b, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
          {"pair",
           {b,
            {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
            b,
            {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
          {"special_tokens", {{bos, {{"id", bos}, {"ids", {bos_id}}, {"tokens", {bos}}}}}}};
}

// A byte-level BPE tokenizer.json (ByteLevel decoder, no byte fallback).
template <typename Json>
Json byte_level_bpe_json(Json vocab, Json merges, Json added_tokens, Json normalizer,
                         Json pre_tokenizer, Json post_processor) {
  return {{"version", "1.0"},
          {"truncation", nullptr},
          {"padding", nullptr},
          {"added_tokens", std::move(added_tokens)},
          {"normalizer", std::move(normalizer)},
          {"pre_tokenizer", std::move(pre_tokenizer)},
          {"post_processor", std::move(post_processor)},
          {"decoder",
           {{"type", "ByteLevel"},
            {"add_prefix_space", true},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"continuing_subword_prefix", nullptr},
            {"end_of_word_suffix", nullptr},
            {"fuse_unk", false},
            {"byte_fallback", false},
            {"ignore_merges", false},
            {"vocab", std::move(vocab)},
            {"merges", std::move(merges)}}}};
}

}  // namespace tern::tokenizer
