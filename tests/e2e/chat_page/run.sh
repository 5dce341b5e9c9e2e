#!/usr/bin/env bash
# The chat page in headless Chromium (chat_page_test.mjs) against `tern serve` on a plain and a
# reasoning chat model, and on one started with --api-key (the page asks for the key). Screenshots go to $ARTIFACTS (default: a folder beside the build's
# tests). Skips (exit 77, ctest's skip) when node or chromium is not installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if ! command -v node >/dev/null || [ -z "$chromium" ]; then
  echo "chat page test: skipped (needs node and Debian's chromium)"
  exit 77
fi
artifacts=${ARTIFACTS:-$root/build/release/test-artifacts}

source "$root/tests/e2e/serve_fixture.sh"
make_model plain "$plain_template"
make_model reasoning "$reasoning_template"
start plain
start reasoning
start keyed plain --api-key sesame
plain_port=$(port_of plain)
reasoning_port=$(port_of reasoning)
keyed_port=$(port_of keyed)
mkdir -p "$work/profile"
# Greedy with a fixed budget, so the page's answers are the same on every run.
query="?temperature=0&max_tokens=200"
CHROMIUM="$chromium" node "$here/chat_page_test.mjs" "http://127.0.0.1:$plain_port/$query" \
  "http://127.0.0.1:$reasoning_port/$query" "http://127.0.0.1:$keyed_port/$query" sesame \
  "$work/profile" "$artifacts"
echo "screenshots: $artifacts/chat_page_plain.png, $artifacts/chat_page_reasoning.png"
