#!/usr/bin/env bash
# Runs the official OpenAI Node client (client_test.mjs, openai pinned by package-lock.json)
# against `tern serve` on two small random chat models: a plain one, and one whose template
# opens a <think> block (so everything it writes is reasoning_content). Installs the client with
# `npm ci` when it is missing; without node or npm access it says so and skips (exit 77, ctest's skip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
if ! command -v node >/dev/null; then
  echo "openai client test: skipped (node is not installed)"
  exit 77
fi
if [ ! -d "$here/node_modules/openai" ]; then
  if ! (cd "$here" && npm ci --no-audit --no-fund >/dev/null 2>&1); then
    echo "openai client test: skipped (npm could not install the pinned openai client)"
    exit 77
  fi
fi

source "$root/tests/e2e/serve_fixture.sh"
make_model plain "$plain_template"
make_model reasoning "$reasoning_template"
start plain
start reasoning
plain_port=$(port_of plain)
reasoning_port=$(port_of reasoning)
node "$here/client_test.mjs" "http://127.0.0.1:$plain_port/v1" model "http://127.0.0.1:$reasoning_port/v1"
