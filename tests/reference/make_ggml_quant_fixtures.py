#!/usr/bin/python3
"""Fixtures for tern's GGUF block decoders: random blocks of every quantisation tern computes
with, and the values gguf-py (llama.cpp's Python package, an implementation independent of
ggml's C code and of tern's) dequantises them to.

  /usr/bin/python3 tests/reference/make_ggml_quant_fixtures.py /path/to/llama.cpp/gguf-py \
      tests/golden/ggml_quants

writes blocks.gguf (one 2-row tensor per type, named after it, the bytes as random as the
format allows: every f16 scale finite, a few of them zero, negative or subnormal) and
<type>.npy (the expected f32 values, row-major). llama.cpp's source ships in npm
node-llama-cpp@3.22.1 (bench/compare_llama.sh shows how to unpack it). Needs numpy; the
output is deterministic.
"""
import os
import sys

sys.path.insert(0, sys.argv[1])
import numpy as np  # noqa: E402
import gguf  # noqa: E402
from gguf import quants  # noqa: E402

out_dir = sys.argv[2]
T = gguf.GGMLQuantizationType

# type -> (byte offsets of the block's f16 scales; None: iq1_m's scale is spread over nibbles)
TYPES = {
    T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.IQ4_NL: [0],
    T.Q2_K: [80, 82], T.Q3_K: [108], T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
    T.IQ4_XS: [0], T.IQ3_XXS: [0], T.IQ3_S: [0], T.IQ2_XXS: [0], T.IQ2_XS: [0], T.IQ2_S: [0],
    T.IQ1_S: [0], T.IQ1_M: None,
}
N_BLOCKS_32, N_BLOCKS_256 = 32, 8


def f16_bits(rng, n):
    """Scales as real files have them (|d| ~ 1e-4..1e-1, both signs), plus the edge cases."""
    v = rng.uniform(1e-4, 0.1, n) * rng.choice([-1.0, 1.0], n)
    v[0] = 0.0                 # an all-zero block
    if n > 2:
        v[1] = 3.0e-6          # an f16 subnormal
        v[2] = -abs(v[2])      # a negative scale
    return v.astype(np.float16).view(np.uint16)


def make_blocks(rng, qtype):
    block_size, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n = N_BLOCKS_32 if block_size == 32 else N_BLOCKS_256
    blocks = rng.integers(0, 256, size=(n, type_size), dtype=np.uint8)
    offsets = TYPES[qtype]
    if offsets is None:  # iq1_m: d's 16 bits are the top nibbles of its 4 scale words (48..55)
        d = f16_bits(rng, n)
        words = blocks[:, 48:56].copy().view(np.uint16)
        for w in range(4):
            nib = (d >> (4 * w)) & 0xF
            words[:, w] = (words[:, w] & 0x0FFF) | (nib << 12)
        blocks[:, 48:56] = words.view(np.uint8)
    else:
        for off in offsets:
            blocks[:, off:off + 2] = f16_bits(rng, n).reshape(n, 1).view(np.uint8).reshape(n, 2)
    return blocks


def main():
    os.makedirs(out_dir, exist_ok=True)
    rng = np.random.default_rng(20261202)
    writer = gguf.GGUFWriter(os.path.join(out_dir, "blocks.gguf"), arch="tern-fixture")
    for qtype in TYPES:
        blocks = make_blocks(rng, qtype)
        values = quants.dequantize(blocks, qtype).astype(np.float32).reshape(-1)
        assert np.isfinite(values).all(), qtype.name
        name = qtype.name.lower()
        # 2 rows of n/2 blocks each: the loader's row arithmetic is part of what is tested.
        writer.add_tensor(name, blocks.reshape(2, -1), raw_dtype=qtype)
        np.save(os.path.join(out_dir, name + ".npy"), values.reshape(2, -1))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


main()
