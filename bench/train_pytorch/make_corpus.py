"""Writes a synthetic training corpus for speed runs: documents of Zipf-distributed pseudo-words,
separated by blank lines (what `tern train --data` reads). Deterministic for a given seed; the text
only has to feed the tokenizer and the sampler, its content does not matter for tokens/s.

    /usr/bin/python3 bench/train_pytorch/make_corpus.py OUT.txt [--mb 2] [--seed 0]
"""
import argparse

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=2.0, help="approximate size in MB")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
    lp = 1.0 / np.arange(1, len(letters) + 1)
    lp /= lp.sum()
    words = ["".join(rng.choice(letters, size=int(rng.integers(1, 9)), p=lp)) for _ in range(5000)]
    wp = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    wp /= wp.sum()
    target = int(a.mb * 1e6)
    size = 0
    with open(a.out, "w") as f:
        while size < target:
            sents = []
            for _ in range(int(rng.integers(3, 20))):
                w = rng.choice(len(words), size=int(rng.integers(4, 25)), p=wp)
                s = " ".join(words[i] for i in w)
                sents.append(s[0].upper() + s[1:] + rng.choice([".", ".", ".", "?", "!"]))
            doc = " ".join(sents) + "\n\n"
            f.write(doc)
            size += len(doc)


if __name__ == "__main__":
    main()
