#!/usr/bin/python3
"""Write the pretraining corpus of the R1-Zero experiment (bench/r1_zero/run.sh): arithmetic
problems of the bundled `arithmetic` task's shape (3-digit + and -, 2-digit *) asked exactly as
`tern grpo` and `tern eval --task` ask them (the trained tokenizer's DeepSeek chat template with
R1's instruction), each answered with a worked solution inside <think> </think> and the result.
One document per problem (documents are separated by blank lines).

With --direct-fraction f, that fraction of the answers skip the reasoning (an empty think block,
then the result), as much web text does: the pretrained model then sometimes works a problem out
and sometimes guesses, and reinforcement learning with an accuracy reward can discover that
working it out pays (DeepSeek-R1-Zero's longer reasoning, in miniature).

    /usr/bin/python3 bench/r1_zero/make_corpus.py --out corpus.txt --problems 60000 --seed 1
"""
import argparse
import random

INSTRUCTION = "\nThink step by step inside <think> </think>, then give only the final answer."


def digits(n, width):
    return [int(c) for c in str(n).rjust(width, "0")][::-1]  # units first


def add_steps(a, b):
    w = max(len(str(a)), len(str(b)))
    x, y, carry, out = digits(a, w), digits(b, w), 0, []
    for i in range(w):
        s = x[i] + y[i] + carry
        out.append(f"{x[i]}+{y[i]}+{carry}={s}")
        carry = s // 10
    return out


def sub_steps(a, b):
    """a >= b: units first, borrowing."""
    w = len(str(a))
    x, y, borrow, out = digits(a, w), digits(b, w), 0, []
    for i in range(w):
        d = x[i] - y[i] - borrow
        if d < 0:
            out.append(f"{x[i]}-{y[i]}-{borrow}={d}, borrow: {d + 10}")
            borrow = 1
        else:
            out.append(f"{x[i]}-{y[i]}-{borrow}={d}")
            borrow = 0
    return out


def solution(a, op, b):
    if op == "+":
        lines = add_steps(a, b)
        value = a + b
    elif op == "-":
        if a >= b:
            lines = sub_steps(a, b)
        else:
            lines = [f"{a}<{b}, so -({b}-{a})"] + sub_steps(b, a)
        value = a - b
    else:
        tens, units = divmod(b, 10)
        p1, p2 = a * units, a * tens * 10
        lines = [f"{a}*{units}={p1}", f"{a}*{tens}0={p2}"] + add_steps(p1, p2)
        value = a * b
    return "\n".join(lines) + f"\nso {value}", value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--problems", type=int, default=60000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--direct-fraction", type=float, default=0.0)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    with open(args.out, "w") as f:
        for _ in range(args.problems):
            op = rng.choice("+-*")
            hi = 99 if op == "*" else 999
            a, b = rng.randint(10, hi), rng.randint(10, hi)
            think, value = solution(a, op, b)
            if rng.random() < args.direct_fraction:
                think = ""
            f.write(f"<｜User｜>What is {a} {op} {b}?{INSTRUCTION}<｜Assistant｜>"
                    f"<think>\n{think + chr(10) if think else ''}</think>\n{value}\n\n")


if __name__ == "__main__":
    main()
