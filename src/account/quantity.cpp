// Quantity grammar and human-readable printing (see quantity.h).
#include "account/quantity.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "core/error.h"

namespace tern::account {

namespace {
[[noreturn]] void bad(const std::string& what, const std::string& text, const char* why) {
  fail(ErrorKind::request, what + ": '" + text + "' " + why +
                               " (expected a number with an optional K, M, B or T suffix, "
                               "e.g. 14.8T)");
}
}  // namespace

bool parse_count_text(const std::string& text, double& value) {
  std::string s;
  for (char c : text)
    if (c != '_' && c != ',') s += c;  // allow 14_800_000 and 14,800,000
  bool negative = false;
  if (!s.empty() && s[0] == '-') negative = true, s.erase(0, 1);
  if (s.empty()) return false;
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
    return false;
  size_t used = 0;
  try {
    value = std::stod(s, &used);
  } catch (const std::out_of_range&) {
    value = std::numeric_limits<double>::infinity();  // syntactically a number; range says no
    return true;
  } catch (const std::exception&) {
    return false;
  }
  if (used != s.size()) return false;
  value *= negative ? -scale : scale;
  return true;
}

double parse_count(const std::string& text, const std::string& what) {
  double v = 0;
  if (text.empty()) bad(what, text, "is empty");
  if (!parse_count_text(text, v)) bad(what, text, "is not a number");
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

namespace {

// Scientific form a person reads at a glance: "3.30e24" (printf's "3.30e+24", less noise).
std::string scientific(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.2e", v);
  std::string s = buf;
  const size_t e = s.find('e');
  if (e != std::string::npos && e + 1 < s.size() && s[e + 1] == '+') s.erase(e + 1, 1);
  if (e != std::string::npos && e + 2 < s.size() && s[e + 1] == '0') s.erase(e + 1, 1);
  return s;
}

// v scaled by the largest power of 1000 (up to prefixes.size()-1) that leaves it >= 1, printed
// with three significant digits, then `gap`, then the prefix; "" when even the largest prefix
// leaves it at 1000 or more.
std::string engineering(double v, const std::vector<const char*>& prefixes, const char* gap) {
  if (!std::isfinite(v)) return "";  // scientific() prints nan and inf
  const double a = std::fabs(v);
  size_t i = 0;
  double d = 1;
  while (i + 1 < prefixes.size() && a >= d * 1000) d *= 1000, ++i;
  for (;; d *= 1000, ++i) {
    const double m = a / d;
    // Rounding to three digits can carry into the next prefix (999.96K -> 1.00M).
    const int decimals = m >= 99.95 ? 0 : m >= 9.995 ? 1 : 2;
    const std::string digits = fixed(m, (d == 1 && m == std::floor(m)) ? 0 : decimals);
    if (std::stod(digits) < 1000 || i + 1 >= prefixes.size()) {
      if (std::stod(digits) >= 1000) return "";
      return (v < 0 ? "-" : "") + digits + gap + prefixes[i];
    }
  }
}

}  // namespace

std::string human(double v) {
  const std::string s = engineering(v, {"", "K", "M", "B", "T"}, "");
  return s.empty() ? scientific(v) : s;
}

std::string si(double v, const std::string& unit) {
  const std::string s = engineering(v, {"", "k", "M", "G", "T", "P"}, " ");
  return s.empty() ? scientific(v) + " " + unit : s + unit;
}

std::string human_bytes(double bytes) {
  return si(bytes, "B");
}

std::string dollars(double d) {
  std::string s = d < 0 ? "-$" : "$";
  return s.append(human(std::fabs(d)));
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
