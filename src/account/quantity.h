// Parsing and printing of the quantities users type and read: "14.8T" tokens, "2664K"
// GPU-hours, "$5.328M". Owns the suffix grammar and its errors (ErrorKind::request naming the
// flag), so every subcommand rejects "14.8X" or "-3" the same way.
#pragma once

#include <cstdint>
#include <string>

namespace tern::account {

// Parses a non-negative count with an optional decimal suffix K=1e3, M=1e6, B=G=1e9, T=1e12
// (case-insensitive), e.g. "14.8T", "62.9B", "1e9", "4096". `what` names the flag in errors.
double parse_count(const std::string& text, const std::string& what);
// The grammar of parse_count without its range checks: false only when `text` is not a count at
// all (so a CLI can tell a malformed value from an out-of-range one); negatives are accepted.
bool parse_count_text(const std::string& text, double& value);
// As parse_count, but the value must be a positive whole number that fits in int64.
int64_t parse_positive_int(const std::string& text, const std::string& what);
// Throws ErrorKind::request unless lo <= v <= hi (and v is finite).
void require_range(double v, double lo, double hi, const std::string& what);

// The one engineering form every command prints (docs/cli.md), three significant digits:
// Counts of things (tokens, parameters, GPU-hours) with the suffixes parse_count reads, so
// output can be pasted back as input: 671026419200 -> "671B", 2664000 -> "2.66M", 12 -> "12";
// 1e15 and beyond in scientific form: "1.00e30".
std::string human(double v);
// A quantity in SI prefixes (powers of 1000, k M G T P), beyond P scientific:
// si(70272, "B") -> "70.3 kB", si(2.51e11, "FLOP") -> "251 GFLOP", si(3.3e24, "FLOP") ->
// "3.30e24 FLOP".
std::string si(double v, const std::string& unit);
// si(bytes, "B"): "70.3 kB", "1.34 TB", as Hugging Face and llama.cpp print model sizes.
std::string human_bytes(double bytes);
// "$5.33M", "$2.00".
std::string dollars(double d);
// Thousands separators: 2664000 -> "2,664,000".
std::string grouped(double v);
// "%.*f" without the printf dance.
std::string fixed(double v, int decimals);

}  // namespace tern::account
