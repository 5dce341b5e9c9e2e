// Hardware presets (figures as cited), lookup errors, the JSON form, and the CPU probes.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include <nlohmann/json.hpp>

#include "account/cpu_probe.h"
#include "account/hardware.h"
#include "core/error.h"

using namespace tern;
using namespace tern::account;

TEST(Hardware, PresetsCarryDatasheetFigures) {
  const Hardware h800 = find_hardware("H800");
  EXPECT_DOUBLE_EQ(h800.bf16_tflops, 989.4);  // 1,979 sparse / 2
  EXPECT_DOUBLE_EQ(h800.fp8_tflops, 1978.9);  // 3,958 sparse / 2
  EXPECT_DOUBLE_EQ(h800.bandwidth_gbs, 3350);
  EXPECT_DOUBLE_EQ(h800.memory_gb, 80);
  EXPECT_DOUBLE_EQ(h800.power_w, 700);
  EXPECT_DOUBLE_EQ(find_hardware("h200").bandwidth_gbs, 4800);
  EXPECT_DOUBLE_EQ(find_hardware("h200").memory_gb, 141);
  EXPECT_DOUBLE_EQ(find_hardware("a100").fp8_tflops, 0);
  EXPECT_DOUBLE_EQ(find_hardware("a100").peak_flops("fp8"), 312e12);  // falls back to BF16
  EXPECT_DOUBLE_EQ(find_hardware("b200").peak_flops("fp8"), 4500e12);
  EXPECT_EQ(find_hardware("h100-sxm").name, "h100");
  EXPECT_EQ(hardware_presets().size(), 5u);
  for (const Hardware& h : hardware_presets()) {
    EXPECT_NO_THROW(validate(h)) << h.name;
    EXPECT_FALSE(h.source.empty()) << h.name;
  }
}

TEST(Hardware, UnknownNameListsKnownOnes) {
  try {
    find_hardware("h900");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::request);
    const std::string what = e.what();
    EXPECT_NE(what.find("h900"), std::string::npos);
    EXPECT_NE(what.find("h800"), std::string::npos);
  }
}

TEST(Hardware, JsonRoundTripAndErrors) {
  const Hardware h = find_hardware("h100");
  const Hardware back = hardware_from_json(to_json(h), "mem");
  EXPECT_EQ(back.name, "h100");
  EXPECT_DOUBLE_EQ(back.fp8_tflops, h.fp8_tflops);
  EXPECT_DOUBLE_EQ(back.bandwidth_gbs, h.bandwidth_gbs);

  auto expect_config = [](const char* text, const char* needle) {
    try {
      hardware_from_json(nlohmann::json::parse(text), "hw.json");
      FAIL() << text;
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::config);
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("hw.json"), std::string::npos) << e.what();
    }
  };
  expect_config(R"({"name": "x", "bandwidth_gbs": 1, "memory_gb": 1, "power_w": 1})",
                "bf16_tflops");
  expect_config(R"({"bf16_tflops": 1, "bandwidth_gbs": 1, "memory_gb": 1, "power_w": 1,
                    "colour": "red"})",
                "colour");
  expect_config(R"({"bf16_tflops": "fast", "bandwidth_gbs": 1, "memory_gb": 1, "power_w": 1})",
                "bf16_tflops");
  expect_config(R"({"bf16_tflops": 1, "bandwidth_gbs": -1, "memory_gb": 1, "power_w": 1})",
                "bandwidth");
  EXPECT_THROW(hardware_from_file("/nonexistent/hw.json"), Error);
}

TEST(Hardware, ShippedExampleFileLoads) {
  const Hardware h =
      hardware_from_file(std::string(TERN_TEST_DATA) + "/../data/hardware/mi300x.json");
  EXPECT_EQ(h.name, "mi300x");
  EXPECT_GT(h.fp8_tflops, h.bf16_tflops);
}

TEST(CpuProbe, MeasuresPositiveFigures) {
  // Small arrays keep the test fast; the figure only has to be plausible, not accurate.
  const BandwidthProbe p = measure_bandwidth(int64_t(4) << 20, 2);
  EXPECT_GT(p.gbs, 0.1);
  EXPECT_LT(p.gbs, 1e5);
  EXPECT_GE(p.threads, 1);
  const double gflops = measure_cpu_gflops(0.02);
  EXPECT_GT(gflops, 0.1);
  EXPECT_LT(gflops, 1e6);
  EXPECT_GT(system_memory_bytes(), 1e8);
}

TEST(CpuProbe, OverridesSkipTheProbes) {
  CpuOverrides o;
  o.bandwidth_gbs = 200;
  o.tflops = 3;
  o.memory_gb = 512;
  o.power_w = 350;
  const Hardware h = measure_cpu_hardware(o);
  EXPECT_EQ(h.name, "cpu");
  EXPECT_DOUBLE_EQ(h.bandwidth_gbs, 200);
  EXPECT_DOUBLE_EQ(h.bf16_tflops, 3);
  EXPECT_DOUBLE_EQ(h.memory_gb, 512);
  EXPECT_DOUBLE_EQ(h.power_w, 350);
  EXPECT_NE(h.source.find("given"), std::string::npos);
}
