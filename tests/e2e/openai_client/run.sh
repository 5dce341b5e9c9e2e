#!/usr/bin/env bash
# Runs the official OpenAI Node client (client_test.mjs, openai pinned by package-lock.json)
# against `tern serve` on two small random chat models: a plain one, and one whose template
# opens a <think> block (so everything it writes is reasoning_content). Installs the client with
# `npm ci` when it is missing; without node or npm access it says so and skips (exit 77, ctest's skip).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
tern=${TERN:-$root/build/release/apps/tern/tern}
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

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A V3-shaped random model with a 300-id tokenizer trained on the spot and chat template $2.
make_model() {
  local dir="$work/$1" template="$2"
  mkdir -p "$dir"
  /usr/bin/python3 - "$root/tests/golden/v3_tiny/config.json" "$dir/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c.update(vocab_size=320, max_position_embeddings=512, bos_token_id=0, eos_token_id=1)
json.dump(c, open(sys.argv[2], "w"))
PY
  for i in $(seq 100); do echo "the quick brown fox jumps over the lazy dog $i"; done > "$dir/corpus.txt"
  "$tern" init --config "$dir/config.json" --out "$dir/model" --seed 3 >/dev/null 2>&1
  "$tern" tokenizer train --corpus "$dir/corpus.txt" --vocab-size 300 --out "$dir/tok" \
    --special '<|user|>' --special '<|assistant|>' --special '<|tool|>' --special '<|end|>' >/dev/null 2>&1
  cp "$dir/tok/tokenizer.json" "$dir/model/"
  /usr/bin/python3 - "$dir/tok/tokenizer_config.json" "$dir/model/tokenizer_config.json" "$template" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["chat_template"] = sys.argv[3]
json.dump(c, open(sys.argv[2], "w"))
PY
}

# Starts `tern serve` for model $1 on a free port, in the background.
start() {
  "$tern" serve "$work/$1/model" --port 0 --quiet --exact 2>"$work/$1.log" >/dev/null &
  pids+=($!)
}

# The port of server $1 once it is ready.
port_of() {
  local log="$work/$1.log"
  for _ in $(seq 300); do
    if grep -q "ready" "$log"; then
      grep -o 'listening on http://127.0.0.1:[0-9]*' "$log" | grep -o '[0-9]*$'
      return 0
    fi
    sleep 0.1
  done
  echo "tern serve did not start:" >&2
  cat "$log" >&2
  return 1
}

turns="{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] if m['content'] else '' }}<|end|>{% endfor %}"
make_model plain "$turns{% if add_generation_prompt %}<|assistant|>{% endif %}"
make_model reasoning "$turns{% if add_generation_prompt %}<|assistant|><think>
{% endif %}"
start plain
start reasoning
plain_port=$(port_of plain)
reasoning_port=$(port_of reasoning)
node "$here/client_test.mjs" "http://127.0.0.1:$plain_port/v1" model "http://127.0.0.1:$reasoning_port/v1"
