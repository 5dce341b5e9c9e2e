#!/usr/bin/python3
"""Print the R1-Zero experiment's summary (markdown) from its work directory (bench/r1_zero/run.sh):
held-out accuracy of the base model, each GRPO seed and the distilled student, and the cost of each
stage from its ledger.

    /usr/bin/python3 bench/r1_zero/summarize.py WORK "1 2" GRPO_STEPS
"""
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def row(name, e):
    g, s = e["greedy"], e["sampled"]
    return (f"| {name} | {100 * g['accuracy']:.1f}% | {100 * s['accuracy']:.1f}% | "
            f"{100 * s['majority_accuracy']:.1f}% | {100 * s['pass_at_k']:.1f}% | "
            f"{100 * g['format_rate']:.0f}% | {g['mean_response_tokens']:.1f} | {g['tokens_per_s']:.0f} |")


def main():
    work, seeds, steps = sys.argv[1], sys.argv[2].split(), sys.argv[3]
    base = load(os.path.join(work, "eval_base.json"))
    print(f"Held-out arithmetic ({base['greedy']['problems']} problems, task seed 999): greedy "
          "accuracy, and with 4 samples at temperature 1 the mean accuracy (pass@1), majority vote "
          "and pass@4.\n")
    print("| model | greedy | sampled pass@1 | maj@4 | pass@4 | format | response tokens | tok/s |")
    print("|---|---|---|---|---|---|---|---|")
    print(row("pretrained base", base))
    rises = []
    for s in seeds:
        e = load(os.path.join(work, f"eval_grpo_s{s}_{steps}.json"))
        print(row(f"GRPO seed {s}, {steps} steps", e))
        rises.append((s, e["greedy"]["accuracy"] - base["greedy"]["accuracy"],
                      e["sampled"]["accuracy"] - base["sampled"]["accuracy"]))
    st = os.path.join(work, "eval_student.json")
    if os.path.exists(st):
        print(row("dense student (half size, distilled)", load(st)))
    print()
    for s, g, p in rises:
        print(f"- GRPO seed {s}: greedy {100 * g:+.1f} points, sampled pass@1 {100 * p:+.1f} points")
    print("\n| stage | wall s | FLOPs | energy J | notes |")
    print("|---|---|---|---|---|")
    stages = [("pretrain", "pretrain")] + [(f"GRPO seed {s}", f"grpo_s{s}") for s in seeds] + \
        [("distill (student training)", "student")]
    for name, d in stages:
        p = os.path.join(work, d, "ledger.json")
        if not os.path.exists(p):
            continue
        l = load(p)
        note = ""
        if "rollout_seconds" in l:
            note = (f"rollouts {l['rollout_seconds']:.0f} s at {l['rollout_tokens_per_s']:.0f} tok/s, "
                    f"updates {l['update_seconds']:.0f} s")
        elif "tokens_per_s" in l:
            note = f"{l['tokens_per_s']:.0f} tokens/s, MFU {100 * l.get('mfu', 0):.1f}%"
        energy = l.get("energy_joules", 0)
        print(f"| {name} | {l.get('wall_seconds', 0):.0f} | {l.get('flops', 0):.3g} | {energy:.0f} | {note} |")


if __name__ == "__main__":
    main()
