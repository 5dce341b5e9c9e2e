#!/usr/bin/env bash
# Builds llama.cpp tools for side-by-side measurements (never linked into tern): the source comes
# from the bundle npm `node-llama-cpp@3.22.1` ships (llama/gitRelease.bundle), built with explicit
# ISA flags, because its GGML_NATIVE build picks AMX and dies with SIGILL on these machines.
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
cmake -S "$work/llama.cpp" -B "$work/llama.cpp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AVX_VNNI=ON -DLLAMA_CURL=OFF -DGGML_OPENMP=ON >/dev/null
cmake --build "$work/llama.cpp/build" --target "${missing[@]}" -j "$(nproc)" >/dev/null
