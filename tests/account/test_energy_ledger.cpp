// RAPL counters against a fake powercap tree (domain choice, wrap-around), the estimate, and
// the ledger's JSON round trip and accumulation.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "account/energy.h"
#include "account/ledger.h"
#include "core/error.h"

using namespace tern;
using namespace tern::account;
namespace fs = std::filesystem;

namespace {
struct FakePowercap {
  fs::path root;
  FakePowercap() {
    root = fs::temp_directory_path() /
           ("tern_rapl_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root);
    zone("intel-rapl:0", "package-0", 1000000, 10000000);
    zone("intel-rapl:0:0", "core", 500000, 10000000);   // inside package: not summed
    zone("intel-rapl:0:1", "dram", 2000000, 10000000);  // outside package: summed
    zone("intel-rapl:1", "psys", 9000000, 10000000);    // whole platform: not summed
  }
  ~FakePowercap() { fs::remove_all(root); }
  void zone(const std::string& id, const std::string& name, double uj, double range) {
    fs::create_directories(root / id);
    std::ofstream(root / id / "name") << name << "\n";
    std::ofstream(root / id / "max_energy_range_uj") << range << "\n";
    set(id, uj);
  }
  void set(const std::string& id, double uj) { std::ofstream(root / id / "energy_uj") << uj; }
};
}  // namespace

TEST(Energy, RaplPicksPackagesAndDram) {
  FakePowercap fake;
  RaplCounters rapl(fake.root.string());
  ASSERT_TRUE(rapl.available());
  ASSERT_EQ(rapl.domain_names().size(), 2u);
  EXPECT_NE(rapl.domain_names()[0].find("package-0"), std::string::npos);
  EXPECT_NE(rapl.domain_names()[1].find("dram"), std::string::npos);
  const auto a = rapl.sample();
  fake.set("intel-rapl:0", 4000000);    // +3 J
  fake.set("intel-rapl:0:1", 1000000);  // wrapped: 10 J range - 2 J + 1 J = +9 J
  fake.set("intel-rapl:1", 9500000);    // psys ignored
  EXPECT_NEAR(rapl.joules_between(a, rapl.sample()), 12.0, 1e-9);
}

TEST(Energy, MeterFallsBackToLabelledEstimate) {
  EnergyMeter none("/nonexistent/powercap");
  none.start();
  const EnergyReading r = none.stop(700, 8, 1.2);
  EXPECT_EQ(r.source, EnergySource::estimate);
  EXPECT_NEAR(r.joules, 700 * 8 * r.seconds, 1e-6);
  EXPECT_NE(std::string(energy_source_name(r.source)).find("estimate"), std::string::npos);

  FakePowercap fake;
  EnergyMeter meter(fake.root.string());
  meter.start();
  fake.set("intel-rapl:0", 1500000);  // +0.5 J
  const EnergyReading m = meter.stop(700, 8, 1.5);
  EXPECT_EQ(m.source, EnergySource::measured_rapl);
  EXPECT_NEAR(m.joules, 0.5, 1e-9);
  EXPECT_NEAR(m.facility_joules(), 0.75, 1e-9);
}

TEST(Energy, Estimate) {
  const EnergyReading r = estimate_energy(700, 2048, 3600, 1.2);
  EXPECT_DOUBLE_EQ(r.joules, 700.0 * 2048 * 3600);
  EXPECT_NEAR(r.kwh(), 700.0 * 2048 * 1.2 / 1000, 1e-6);  // 1 hour
}

TEST(Ledger, JsonRoundTripAndAdd) {
  Ledger l;
  l.stage = "train";
  l.hardware = "h800";
  l.devices = 2048;
  l.tokens = 1e9;
  l.flops = 2.6e20;
  l.bytes_moved = 1e15;
  l.wall_seconds = 3600;
  l.energy = estimate_energy(700, 2048, 3600, 1.2);
  l.price_per_device_hour = 2;
  EXPECT_DOUBLE_EQ(l.device_hours(), 2048);
  EXPECT_DOUBLE_EQ(l.dollars(), 4096);
  EXPECT_NEAR(l.flops_per_second_per_device(), 2.6e20 / 3600 / 2048, 1);

  const nlohmann::json j = to_json(l);
  EXPECT_DOUBLE_EQ(j["dollars"].get<double>(), 4096);
  const Ledger back = ledger_from_json(j, "mem");
  EXPECT_EQ(back.stage, "train");
  EXPECT_EQ(back.energy.source, EnergySource::estimate);
  EXPECT_DOUBLE_EQ(back.flops, l.flops);
  EXPECT_DOUBLE_EQ(back.dollars(), 4096);

  Ledger measured = l;
  measured.energy.source = EnergySource::measured_rapl;
  measured.add(l);
  EXPECT_DOUBLE_EQ(measured.tokens, 2e9);
  EXPECT_DOUBLE_EQ(measured.dollars(), 8192);
  EXPECT_EQ(measured.energy.source, EnergySource::estimate);  // mixed: no longer "measured"

  nlohmann::json broken = j;
  broken.erase("flops");
  EXPECT_THROW(ledger_from_json(broken, "x"), Error);
  broken = j;
  broken["energy_source"] = "guess";
  EXPECT_THROW(ledger_from_json(broken, "x"), Error);

  const std::string path = (fs::temp_directory_path() / "tern_ledger_test.jsonl").string();
  fs::remove(path);
  append_ledger(path, l);
  append_ledger(path, l);
  std::ifstream in(path);
  std::string line;
  int lines = 0;
  while (std::getline(in, line)) {
    EXPECT_EQ(ledger_from_json(nlohmann::json::parse(line), path).tokens, 1e9);
    ++lines;
  }
  EXPECT_EQ(lines, 2);
  fs::remove(path);
}
