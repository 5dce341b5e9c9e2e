// Quantity grammar and human-readable printing (see quantity.h).
#include "account/quantity.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"

namespace tern::account {

namespace {
[[noreturn]] void bad(const std::string& what, const std::string& text, const char* why) {
  fail(ErrorKind::request, what + ": '" + text + "' " + why +
                               " (expected a number with an optional K, M, B or T suffix, "
                               "e.g. 14.8T)");
}
}  // namespace

double parse_count(const std::string& text, const std::string& what) {
  std::string s;
  for (char c : text)
    if (c != '_' && c != ',') s += c;  // allow 14_800_000 and 14,800,000
  if (s.empty()) bad(what, text, "is empty");
  if (s[0] == '-') bad(what, text, "is negative");
  double scale = 1;
  switch (std::toupper(static_cast<unsigned char>(s.back()))) {
    case 'K':
      scale = 1e3;
      break;
    case 'M':
      scale = 1e6;
      break;
    case 'B':
    case 'G':
      scale = 1e9;
      break;
    case 'T':
      scale = 1e12;
      break;
    default:
      break;
  }
  if (scale != 1) s.pop_back();
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.' || s[0] == '+'))
    bad(what, text, "is not a number");
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception&) {
    bad(what, text, "is not a number");
  }
  if (used != s.size()) bad(what, text, "has an unknown suffix or trailing characters");
  v *= scale;
  if (!std::isfinite(v)) bad(what, text, "is not finite");
  if (v < 0) bad(what, text, "is negative");
  return v;
}

int64_t parse_positive_int(const std::string& text, const std::string& what) {
  const double v = parse_count(text, what);
  if (v < 1 || v != std::floor(v) || v > double(std::numeric_limits<int64_t>::max() / 2))
    fail(ErrorKind::request, what + ": '" + text + "' must be a positive whole number");
  return int64_t(v);
}

void require_range(double v, double lo, double hi, const std::string& what) {
  if (!std::isfinite(v) || v < lo || v > hi)
    fail(ErrorKind::request, what + " must be between " + fixed(lo, lo == std::floor(lo) ? 0 : 3) +
                                 " and " + fixed(hi, hi == std::floor(hi) ? 0 : 3) + ", got " +
                                 fixed(v, 4));
}

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string human(double v) {
  const double a = std::fabs(v);
  const char* unit = "";
  double d = 1;
  if (a >= 1e12)
    unit = "T", d = 1e12;
  else if (a >= 1e9)
    unit = "B", d = 1e9;
  else if (a >= 1e6)
    unit = "M", d = 1e6;
  else if (a >= 1e3)
    unit = "K", d = 1e3;
  if (a >= 1e15) return fixed(v / 1e15, 2) + "e15";
  if (d == 1) return fixed(v, v == std::floor(v) ? 0 : 2);
  return fixed(v / d, 2) + unit;
}

std::string human_bytes(double bytes) {
  const double a = std::fabs(bytes);
  if (a >= 1e12) return fixed(bytes / 1e12, 2) + " TB";
  if (a >= 1e9) return fixed(bytes / 1e9, 2) + " GB";
  if (a >= 1e6) return fixed(bytes / 1e6, 2) + " MB";
  if (a >= 1e3) return fixed(bytes / 1e3, 2) + " KB";
  return fixed(bytes, 0) + " B";
}

std::string grouped(double v) {
  std::string digits = fixed(std::fabs(std::round(v)), 0), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace tern::account
