#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (release), then the unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (the end-to-end CLI tests run in the release
# pass only, to keep a cold CI run near its time budget), then every fuzz target briefly over
# its seed corpus (docs/reliability.md). TERN_SKIP_ASAN=1 / TERN_SKIP_FUZZ=1 leave those passes out;
# TERN_FUZZ_SECONDS sets the time per fuzz target (default 6).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
ctest --preset release -j "$(nproc)"
if [ "${TERN_SKIP_ASAN:-0}" != "1" ]; then
  scripts/build.sh asan
  ctest --preset asan -j "$(nproc)"
fi
if [ "${TERN_SKIP_FUZZ:-0}" != "1" ]; then
  scripts/fuzz.sh all "${TERN_FUZZ_SECONDS:-6}"
fi
