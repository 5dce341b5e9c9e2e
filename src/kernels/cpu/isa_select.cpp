#include <cpuid.h>

#include <cstdlib>
#include <cstring>

#include "core/log.h"
#include "kernels/cpu/isa.h"

namespace tern::kernels {
namespace {

// F16C from CPUID leaf 1 (ECX bit 29): clang's __builtin_cpu_supports does not know "f16c".
bool has_f16c() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}

}  // namespace

bool cpu_has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
}

// AVX-VNNI is CPUID leaf 7 sub-leaf 1, EAX bit 4.
bool cpu_has_avx_vnni() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return cpu_has_avx2() && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 4));
}

std::vector<const IsaKernels*> supported_isas() {
  std::vector<const IsaKernels*> out;
  __builtin_cpu_init();
  if (isa_avx512() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") && has_f16c())
    out.push_back(isa_avx512());
  if (isa_avx2() && cpu_has_avx2()) out.push_back(isa_avx2());
  out.push_back(&isa_scalar());
  return out;
}

const IsaKernels& active_isa() {
  static const IsaKernels* chosen = [] {
    const auto isas = supported_isas();
    if (const char* want = std::getenv("TERN_ISA")) {
      for (const IsaKernels* k : isas)
        if (!std::strcmp(k->name, want)) return k;
      log_warn(std::string("TERN_ISA=") + want + " is not supported here; using " +
               isas.front()->name);
    }
    return isas.front();
  }();
  return *chosen;
}

}  // namespace tern::kernels
