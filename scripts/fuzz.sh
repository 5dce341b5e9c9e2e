#!/usr/bin/env bash
# Runs the libFuzzer targets (tests/fuzz) over their seed corpora, building the `fuzz` preset
# first (a no-op when up to date). Usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]
# TARGET is safetensors, gguf, gguf_config, config, tokenizer or chat_template. Inputs the fuzzer
# finds go to build/fuzz/corpus/TARGET (outside git), crashes to build/fuzz/findings/TARGET/,
# logs to build/fuzz/logs/. Exits non-zero if any target found a crash, leak or timeout.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 2 ]; then
  echo "usage: scripts/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]" >&2
  exit 2
fi
which="$1"
seconds="$2"
shift 2
extra=("$@")
all_targets=(safetensors gguf gguf_config config tokenizer chat_template openai_request)

if [ "$which" != all ] && [[ ! " ${all_targets[*]} " =~ " $which " ]]; then
  echo "fuzz.sh: unknown target '$which' (one of: ${all_targets[*]}, all)" >&2
  exit 2
fi
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$PWD}" CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-true}"
if [ ! -f build/fuzz/build.ninja ]; then cmake --preset fuzz -G Ninja >/dev/null; fi
# Only the fuzz targets and what they link: the rest of the tree is built by the other passes.
mkdir -p build/fuzz/logs
if ! cmake --build --preset fuzz -j "$(nproc)" --target fuzz_targets >build/fuzz/logs/build.log 2>&1; then
  tail -40 build/fuzz/logs/build.log
  echo "fuzz.sh: building the fuzz targets failed (build/fuzz/logs/build.log)" >&2
  exit 1
fi

# Seeds: the committed corpora (shrunk from the fixtures by tests/fuzz/make_corpus.py), and for
# configs the fixtures themselves. -max_len sits above the largest seed so seeds are not cut.
seed_files() {
  case "$1" in
    config) ls tests/model/configs/*.json tests/golden/*/config.json ;;
    gguf | gguf_config) ls tests/fuzz/corpus/gguf/* ;;
    *) ls tests/fuzz/corpus/"$1"/* ;;
  esac
}
max_len() {
  case "$1" in
    safetensors) echo 32768 ;;
    chat_template | config) echo 8192 ;;
    *) echo 16384 ;;
  esac
}

run_one() {
  local t="$1" bin="build/fuzz/tests/fuzz/fuzz_$1"
  if [ ! -x "$bin" ]; then
    echo "fuzz_$t: not built with this compiler (see tests/fuzz/CMakeLists.txt); skipped"
    return 0
  fi
  local work="build/fuzz/corpus/$t" findings="build/fuzz/findings/$t" log="build/fuzz/logs/$t.log"
  mkdir -p "$work" "$findings" build/fuzz/logs
  # Copy seeds under unique names (several fixtures are all called config.json).
  local f
  for f in $(seed_files "$t"); do cp -n "$f" "$work/seed_$(echo "$f" | tr '/' '_')"; done
  local dict=()
  case "$t" in
    chat_template) dict=(-dict=tests/fuzz/chat_template.dict) ;;
    config | tokenizer | openai_request) dict=(-dict=tests/fuzz/json.dict) ;;
  esac
  local rc=0 start=$SECONDS
  "$bin" "$work" -max_total_time="$seconds" -max_len="$(max_len "$t")" -timeout=20 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$findings/" "${dict[@]}" "${extra[@]}" \
    >"$log" 2>&1 || rc=$?
  local runs
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  echo "fuzz_$t: $runs inputs in $((SECONDS - start))s, corpus $(ls "$work" | wc -l) files, exit $rc (log $log)"
  if [ "$rc" -ne 0 ]; then
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*deadly signal|.*Test unit written)' "$log" | head -8
    echo "  reproduce: $bin FILE (FILE from $findings/)"
  fi
  return "$rc"
}

# Stack traces for UBSan reports too; leaks count as findings (ASan's default).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"

failed=0
if [ "$which" = all ]; then
  for t in "${all_targets[@]}"; do run_one "$t" || failed=1; done
else
  run_one "$which" || failed=1
fi
exit "$failed"
