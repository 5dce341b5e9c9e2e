#!/usr/bin/env bash
# Installs everything tern needs to build and test, from Debian's packages only.
# Idempotent: packages already present are not touched and apt is not contacted at all.
# --test-tools adds the reference tools the serve tests drive tern with (Node.js for the pinned
# openai client, Chromium for the chat page); without them those tests are skipped.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgtest-dev libgmock-dev libbenchmark-dev
  nlohmann-json3-dev libcli11-dev libpcre2-dev libicu-dev
  libcpp-httplib-dev  # tern serve: HTTP server (and the HTTPS client for --upstream)
  clang libclang-rt-14-dev  # libFuzzer and its sanitizer runtimes (scripts/fuzz.sh)
  libopenmpi-dev openmpi-bin  # dist: the MPI backend and mpirun (multi-process training)
  bible-kjv bible-kjv-text  # the quickstart's public-domain training corpus
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#PACKAGES[@]} packages present"
fi

# Reference tools for tests, best effort: a command already on PATH (from any source) counts,
# and a failed install only means those tests skip.
if [ "${1:-}" = "--test-tools" ]; then
  tools=()
  command -v node >/dev/null || tools+=(nodejs)
  command -v npm >/dev/null || tools+=(npm)
  command -v chromium >/dev/null || tools+=(chromium)
  if ((${#tools[@]})); then
    echo "setup: installing test tools ${tools[*]}"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    { $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q \
        --no-install-recommends "${tools[@]}"; } ||
      echo "setup: could not install ${tools[*]}; the tests that need them will be skipped"
  fi
fi
