#!/usr/bin/env bash
# "R1-Zero on a laptop" (docs/post-training.md): pretrain a small DeepSeek-V3-style model on
# generated arithmetic worked solutions (`tern train`), measure its held-out accuracy, improve it
# with GRPO and rule rewards only (`tern grpo`, two seeds), measure again, then distil the RL'd
# model into a dense Qwen2-shaped student of half its size (`tern distill`) and measure that.
# Every stage resumes where it stopped when the script is run again; finished stages are kept.
#
#   bash bench/r1_zero/run.sh            # WORK=out/r1_zero; summary in $WORK/summary.md
#
# Knobs (environment): WORK, TERN, THREADS, PRE_STEPS, GRPO_STEPS, SEEDS, EVAL_LIMIT.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TERN=${TERN:-$ROOT/build/release/apps/tern/tern}
WORK=${WORK:-$ROOT/out/r1_zero}
THREADS=${THREADS:-}
THR=()
[ -n "$THREADS" ] && THR=(--threads "$THREADS")
PRE_STEPS=${PRE_STEPS:-3000}
GRPO_STEPS=${GRPO_STEPS:-150}
SEEDS=${SEEDS:-"1 2"}
EVAL_LIMIT=${EVAL_LIMIT:-500}
HELD_OUT_SEED=999  # problems no stage trains on (the task generator's seed)
mkdir -p "$WORK"
[ -x "$TERN" ] || { echo "build tern first: bash scripts/build.sh release" >&2; exit 1; }
start=$(date +%s)
stamp() { echo "[r1-zero $(($(date +%s) - start)) s] $*"; }

# A run directory's stage is done when its last checkpoint exists; a directory holding an
# earlier checkpoint is resumed (to STEPS, which may be more than it was started with); an empty
# or absent one starts over.
run_stage() {  # run_stage DIR STEPS COMMAND... (COMMAND given --out DIR or --resume DIR)
  local dir=$1 steps=$2 cmd=$3
  shift 3
  if [ -d "$dir/checkpoint-$steps" ]; then
    stamp "$dir: done"
  elif ls -d "$dir"/checkpoint-* >/dev/null 2>&1; then
    stamp "$dir: resuming"
    "$TERN" "$cmd" --resume "$dir" --steps "$steps" "${THR[@]}"
  else
    "$TERN" "$cmd" "$@" --out "$dir" --force "${THR[@]}"
  fi
}

evaluate() {  # evaluate MODEL OUT.json: greedy and sampled (temperature 1) held-out accuracy
  local model=$1 out=$2
  [ -s "$out" ] && return 0
  "$TERN" eval "$model" --task arithmetic --task-seed $HELD_OUT_SEED --limit "$EVAL_LIMIT" \
    --temp 0 -n 96 --parallel 32 "${THR[@]}" --json > "$out.greedy.tmp"
  "$TERN" eval "$model" --task arithmetic --task-seed $HELD_OUT_SEED --limit "$EVAL_LIMIT" \
    --temp 1 --seed 7 --samples 4 -n 96 --parallel 32 "${THR[@]}" --json > "$out.sampled.tmp"
  /usr/bin/python3 -c 'import json,sys; json.dump({"greedy": json.load(open(sys.argv[1])), "sampled": json.load(open(sys.argv[2]))}, open(sys.argv[3], "w"), indent=1)' \
    "$out.greedy.tmp" "$out.sampled.tmp" "$out.tmp"
  mv "$out.tmp" "$out"
  rm -f "$out.greedy.tmp" "$out.sampled.tmp"
}

# 1. The corpus: problems drawn by Python's generator (not the task's), 70% answered with a
# worked solution and 30% directly (an empty think block), so the base model sometimes reasons
# and sometimes guesses.
if [ ! -s "$WORK/corpus.txt" ]; then
  stamp "writing the corpus"
  /usr/bin/python3 "$HERE/make_corpus.py" --out "$WORK/corpus.txt.tmp" --problems 80000 --seed 1 \
    --direct-fraction 0.3
  mv "$WORK/corpus.txt.tmp" "$WORK/corpus.txt"
fi

# 2. Pretraining.
stamp "pretraining $PRE_STEPS steps"
run_stage "$WORK/pretrain" "$PRE_STEPS" train --config "$HERE/model.json" \
  --data "$WORK/corpus.txt" --steps "$PRE_STEPS" --batch 16 --seq 128 --lr 3e-3 \
  --save-every 500 --eval-every 500 --seed 1
BASE="$WORK/pretrain/checkpoint-$PRE_STEPS"
evaluate "$BASE" "$WORK/eval_base.json"

# 3. GRPO with rule rewards only, from the same base, two seeds (different problems and samples).
for seed in $SEEDS; do
  stamp "GRPO seed $seed"
  run_stage "$WORK/grpo_s$seed" "$GRPO_STEPS" grpo --model "$BASE" --task arithmetic \
    --task-seed "$seed" --seed "$seed" --steps "$GRPO_STEPS" --group-size 8 \
    --prompts-per-step 16 -n 96 --lr 2e-4 --warmup 10 --kl 0.001 --batch 16 --save-every 25
  evaluate "$WORK/grpo_s$seed/checkpoint-$GRPO_STEPS" "$WORK/eval_grpo_s${seed}_$GRPO_STEPS.json"
done

# 4. Distillation by traces into a dense student of half the size.
first_seed=${SEEDS%% *}
TEACHER="$WORK/grpo_s$first_seed/checkpoint-$GRPO_STEPS"
if [ ! -s "$WORK/distill_prompts.jsonl" ]; then
  /usr/bin/python3 - "$WORK/distill_prompts.jsonl" <<'PY'
import json, random, sys
rng = random.Random(5)
inst = "\nThink step by step inside <think> </think>, then give only the final answer."
with open(sys.argv[1] + ".tmp", "w") as f:
    for _ in range(20000):
        op = rng.choice("+-*")
        hi = 99 if op == "*" else 999
        f.write(json.dumps({"prompt": f"What is {rng.randint(10, hi)} {op} {rng.randint(10, hi)}?{inst}"}) + "\n")
PY
  mv "$WORK/distill_prompts.jsonl.tmp" "$WORK/distill_prompts.jsonl"
fi
stamp "distilling into the dense student"
if ls -d "$WORK/student"/checkpoint-* >/dev/null 2>&1; then
  [ -s "$WORK/eval_student.json" ] || "$TERN" distill --resume "$WORK/student" "${THR[@]}"
else
  "$TERN" distill --teacher "$TEACHER" --student-config "$HERE/student.json" \
    --prompts "$WORK/distill_prompts.jsonl" --out "$WORK/student" --force --epochs 2 \
    --batch 16 --seq 128 --lr 3e-3 --temp 0 -n 96 --parallel 32 --save-every 200 \
    "${THR[@]}"
fi
STUDENT=$(ls -d "$WORK/student"/checkpoint-* | sort -t- -k2 -n | tail -1)
evaluate "$STUDENT" "$WORK/eval_student.json"

# 5. The summary.
/usr/bin/python3 "$HERE/summarize.py" "$WORK" "$SEEDS" "$GRPO_STEPS" > "$WORK/summary.md.tmp"
mv "$WORK/summary.md.tmp" "$WORK/summary.md"
cat "$WORK/summary.md"
stamp "done"
