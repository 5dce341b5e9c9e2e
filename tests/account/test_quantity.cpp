// Quantity grammar: suffixes, separators, and the errors for malformed or negative input.
#include <gtest/gtest.h>

#include "account/quantity.h"
#include "core/error.h"

using namespace tern;
using namespace tern::account;

TEST(Quantity, ParsesSuffixes) {
  EXPECT_DOUBLE_EQ(parse_count("14.8T", "--tokens"), 14.8e12);
  EXPECT_DOUBLE_EQ(parse_count("62.9B", "x"), 62.9e9);
  EXPECT_DOUBLE_EQ(parse_count("62.9g", "x"), 62.9e9);
  EXPECT_DOUBLE_EQ(parse_count("2664K", "x"), 2664e3);
  EXPECT_DOUBLE_EQ(parse_count("5k", "x"), 5e3);
  EXPECT_DOUBLE_EQ(parse_count("1.5M", "x"), 1.5e6);
  EXPECT_DOUBLE_EQ(parse_count("1e9", "x"), 1e9);
  EXPECT_DOUBLE_EQ(parse_count("4096", "x"), 4096);
  EXPECT_DOUBLE_EQ(parse_count("14,800,000", "x"), 14.8e6);
  EXPECT_DOUBLE_EQ(parse_count("14_800", "x"), 14800);
  EXPECT_DOUBLE_EQ(parse_count("0", "x"), 0);
  EXPECT_EQ(parse_positive_int("32K", "--seq"), 32000);
}

TEST(Quantity, RejectsMalformedAndNegative) {
  for (const char* bad :
       {"14.8X", "", "T", "-3", "-1T", "abc", "1.2.3", "nan", "inf", "1e999", "14.8 T", "12TT"}) {
    try {
      parse_count(bad, "--tokens");
      FAIL() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::request) << bad;
      EXPECT_NE(std::string(e.what()).find("--tokens"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(parse_positive_int("0", "--seq"), Error);
  EXPECT_THROW(parse_positive_int("1.5", "--seq"), Error);
  EXPECT_THROW(require_range(1.6, 0, 1.5, "--mfu"), Error);
  EXPECT_NO_THROW(require_range(0.39, 0, 1.5, "--mfu"));
}

TEST(Quantity, Printing) {
  // Three significant digits, the suffixes parse_count reads, SI bytes (docs/cli.md).
  EXPECT_EQ(human(671026419200.0), "671B");
  EXPECT_EQ(human(2664000.0), "2.66M");
  EXPECT_EQ(human(14.8e12), "14.8T");
  EXPECT_EQ(human(12), "12");
  EXPECT_EQ(human(999960), "1.00M");  // rounding carries into the next suffix
  EXPECT_EQ(human(1e30), "1.00e30");
  EXPECT_EQ(human_bytes(70272), "70.3 kB");
  EXPECT_EQ(human_bytes(1.5e12), "1.50 TB");
  EXPECT_EQ(human_bytes(512), "512 B");
  EXPECT_EQ(si(3.3e24, "FLOP"), "3.30e24 FLOP");
  EXPECT_EQ(si(2.51e11, "FLOP"), "251 GFLOP");
  EXPECT_EQ(dollars(5.328e6), "$5.33M");
  EXPECT_EQ(dollars(2), "$2");
  EXPECT_EQ(grouped(2664000), "2,664,000");
  EXPECT_EQ(grouped(999), "999");
  EXPECT_EQ(grouped(-1234), "-1,234");
  EXPECT_EQ(fixed(0.39, 3), "0.390");
}
