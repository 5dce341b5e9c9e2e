#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (release), then the unit tests under
# AddressSanitizer + UndefinedBehaviorSanitizer (the end-to-end CLI tests run in the release
# pass only, to keep a cold CI run near its time budget), then every fuzz target briefly over
# its seed corpus (docs/reliability.md). TERN_SKIP_ASAN=1 / TERN_SKIP_FUZZ=1 leave those passes out;
# TERN_FUZZ_SECONDS sets the time per fuzz target (default 6). The quickstart runs shortened
# (20 training steps); --full runs the long versions: the whole quickstart and 60 s per fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
full=0
[ "${1:-}" = "--full" ] && full=1
scripts/setup.sh --test-tools
scripts/build.sh release
ctest --preset release -j "$(nproc)"
if [ "$full" = "1" ]; then
  scripts/quickstart.sh
  TERN_FUZZ_SECONDS=${TERN_FUZZ_SECONDS:-60}
else
  mkdir -p out
  QUICKSTART_STEPS=20 scripts/quickstart.sh > out/quickstart.log 2>&1 || { cat out/quickstart.log; exit 1; }
  echo "quickstart (20 training steps): ok"
fi
if [ "${TERN_SKIP_ASAN:-0}" != "1" ]; then
  scripts/build.sh asan
  ctest --preset asan -j "$(nproc)"
fi
if [ "${TERN_SKIP_FUZZ:-0}" != "1" ]; then
  scripts/fuzz.sh all "${TERN_FUZZ_SECONDS:-6}"
fi
