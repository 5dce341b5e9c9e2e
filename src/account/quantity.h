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
// As parse_count, but the value must be a positive whole number that fits in int64.
int64_t parse_positive_int(const std::string& text, const std::string& what);
// Throws ErrorKind::request unless lo <= v <= hi (and v is finite).
void require_range(double v, double lo, double hi, const std::string& what);

// 671026419200 -> "671.03B", 2664000 -> "2.66M"; three significant decimals at most.
std::string human(double v);
// Bytes as GB (1e9) with two decimals: "70.27 KB", "1.34 TB".
std::string human_bytes(double bytes);
// Thousands separators: 2664000 -> "2,664,000".
std::string grouped(double v);
// "%.*f" without the printf dance.
std::string fixed(double v, int decimals);

}  // namespace tern::account
