#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite (release), then the same suite under
# AddressSanitizer + UndefinedBehaviorSanitizer. TERN_SKIP_ASAN=1 runs the release pass only.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release
ctest --preset release -j "$(nproc)"
if [ "${TERN_SKIP_ASAN:-0}" != "1" ]; then
  scripts/build.sh asan
  ctest --preset asan -j "$(nproc)"
fi
