#!/usr/bin/env bash
# Builds llama.cpp tools for side-by-side measurements (never linked into tern): the source comes
# from the bundle npm `node-llama-cpp@3.22.1` ships (llama/gitRelease.bundle), built with explicit
# ISA flags (those the CPU reports), because its GGML_NATIVE build picks AMX and dies with SIGILL
# on these machines.
#   bench/llama_cpp/build.sh WORK_DIR TARGET...   (e.g. llama-bench llama-server)
# Targets already built are left alone.
set -euo pipefail
work=$1
shift
missing=()
for t in "$@"; do [ -x "$work/llama.cpp/build/bin/$t" ] || missing+=("$t"); done
((${#missing[@]})) || exit 0
if [ ! -d "$work/llama.cpp/.git" ]; then
  npm install --prefix "$work/npm" node-llama-cpp@3.22.1 --ignore-scripts --no-audit --no-fund >/dev/null
  git clone -q "$work/npm/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$work/llama.cpp"
fi
# Each ISA switched on only where this CPU reports it (the machines vary: AVX-512 Xeons and EPYCs,
# AVX2-only EPYCs), never AMX.
has() { grep -qw "$1" /proc/cpuinfo; }
on() { has "$1" && echo ON || echo OFF; }
isa=(-DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
  -DGGML_AVX512="$(on avx512f)" -DGGML_AVX512_VBMI="$(on avx512vbmi)"
  -DGGML_AVX512_VNNI="$(on avx512_vnni)" -DGGML_AVX512_BF16="$(on avx512_bf16)"
  -DGGML_AVX_VNNI="$(on avx_vnni)")
cmake -S "$work/llama.cpp" -B "$work/llama.cpp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF "${isa[@]}" -DLLAMA_CURL=OFF -DGGML_OPENMP=ON >/dev/null
cmake --build "$work/llama.cpp/build" --target "${missing[@]}" -j "$(nproc)" >/dev/null
