#!/usr/bin/python3
"""Fixtures for tern's FP8 training quantisation (src/kernels/fp8_scaling.h), computed with numpy
from the recipe as DeepSeek-V3's report states it, independently of tern's code: E4M3 values
(bias 7, 3 mantissa bits, subnormals down to 2^-9, max 448, round to nearest even, saturate),
one scale per 1x128 tile along each row or per 128x128 block, scale = amax / 448 (or the next
power of two up with pow2), q = e4m3(x / scale).

  /usr/bin/python3 tests/reference/make_fp8_scaling_fixtures.py tests/golden/fp8_scaling

writes x.npy (a [136, 260] f32 matrix whose rows and blocks span magnitudes 1e-6..1e3, with a
zero tile, ties and subnormal-range values) and, for tiles/blocks x plain/pow2, q_<g>_<s>.npy
and scales_<g>_<s>.npy. Deterministic.
"""
import os
import sys

import numpy as np

TILE = 128
E4M3_MAX = 448.0


def e4m3(v):
    """Round f32 values to the E4M3 grid, ties to even, saturating to +-448."""
    v = v.astype(np.float64)
    a = np.abs(v)
    # exponent of each value's binade, clamped at the subnormal floor 2^-6
    e = np.floor(np.log2(np.where(a > 0, a, 1.0)))
    e = np.maximum(e, -6.0)
    step = np.exp2(e - 3.0)  # 3 mantissa bits
    r = np.round(a / step) * step  # numpy rounds half to even
    r = np.minimum(r, E4M3_MAX)
    return (np.sign(v) * r).astype(np.float32)


def scale_of(amax, pow2):
    amax = np.float32(amax)
    if not amax >= np.float32(1e-30) or not np.isfinite(amax):
        return np.float32(1.0)
    s = np.float32(amax / np.float32(E4M3_MAX))
    if pow2:
        s = np.float32(2.0 ** np.ceil(np.log2(np.float64(s))))
    return s


def quantize(x, block_rows, pow2):
    rows, cols = x.shape
    rb, cb = -(-rows // block_rows), -(-cols // TILE)
    q = np.zeros_like(x)
    scales = np.zeros((rb, cb), np.float32)
    for i in range(rb):
        for j in range(cb):
            t = x[i * block_rows:(i + 1) * block_rows, j * TILE:(j + 1) * TILE]
            s = scale_of(np.abs(t).max(), pow2)
            scales[i, j] = s
            q[i * block_rows:(i + 1) * block_rows, j * TILE:(j + 1) * TILE] = \
                e4m3((t / s).astype(np.float32))
    return q, scales


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((136, 260)).astype(np.float32)
    x *= np.float32(10.0) ** rng.uniform(-6, 3, (136, 1)).astype(np.float32)  # row magnitudes
    x[:, 150:170] *= np.float32(1e-4)  # small values inside a tile: subnormal range after scaling
    x[5, 128:256] = 0.0  # a zero tile
    x[7, :8] = np.float32([448, -448, 1.0625, 1.1875, 0.5, 3.0, -7.0, 1e-30])  # ties
    np.save(os.path.join(out, "x.npy"), x)
    for name, block_rows in (("tiles", 1), ("blocks", TILE)):
        for pow2 in (False, True):
            q, s = quantize(x, block_rows, pow2)
            tag = f"{name}_{'pow2' if pow2 else 'plain'}"
            np.save(os.path.join(out, f"q_{tag}.npy"), q)
            np.save(os.path.join(out, f"scales_{tag}.npy"), s)


if __name__ == "__main__":
    main()
