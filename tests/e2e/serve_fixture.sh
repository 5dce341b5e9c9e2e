# Shared by the Node-driven serve tests (openai_client/, chat_page/): small random chat models and
# `tern serve` processes on free loopback ports, removed on exit. Source it after setting `root`.
tern=${TERN:-$root/build/release/apps/tern/tern}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work" 2>/dev/null || true  # a browser may still be writing its profile
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

# The two templates the tests use: a plain one, and one that opens a <think> block (so
# everything the model writes is reasoning_content).
turns="{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] if m['content'] else '' }}<|end|>{% endfor %}"
plain_template="$turns{% if add_generation_prompt %}<|assistant|>{% endif %}"
reasoning_template="$turns{% if add_generation_prompt %}<|assistant|><think>
{% endif %}"

# Starts `tern serve` named $1 for model $2 (default: $1) on a free port, in the background,
# with any further arguments.
start() {
  local name=$1 model=${2:-$1}
  shift $(($# < 2 ? $# : 2))
  "$tern" serve "$work/$model/model" --port 0 --quiet --exact "$@" 2>"$work/$name.log" >/dev/null &
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
