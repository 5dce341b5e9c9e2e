"""Number formats and file formats for the tern golden-fixture reference (numpy only, no torch).

Owns: BF16 / FP16 / FP8-E4M3FN codecs, FP8 128x128 block quantisation, a safetensors reader/writer
(single file and sharded index), a GGUF v3 reader/writer with F32/F16/BF16/Q8_0/Q4_0.
Does not own: any model math (see deepseek_ref.py).
Written from the formats' specifications (spec §10.1, §12.2 and the brief), independently of the C++ code.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

# =============================================================================================
# Number formats
# =============================================================================================


def bf16_encode(x) -> np.ndarray:
    """float -> bfloat16 bit patterns (uint16): round-to-nearest-even of the float32 bits; NaN -> quiet NaN."""
    f = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    u = f.view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    qnan = ((u >> 16) & 0x8000) | 0x7FC0
    return np.where(np.isnan(f), qnan, rounded).astype(np.uint16)


def bf16_decode(u16) -> np.ndarray:
    """bfloat16 bit patterns -> float64 (exact)."""
    u = np.asarray(u16, dtype=np.uint16).astype(np.uint32) << 16
    with np.errstate(invalid="ignore"):
        return u.view(np.float32).astype(np.float64)


def fp8_e4m3_decode(b) -> np.ndarray:
    """FP8 E4M3FN bytes -> float64 by the formula of spec §10.1 (bias 7, no inf, S.1111.111 = NaN)."""
    b = np.asarray(b, dtype=np.uint8).astype(np.int64)
    s = (b >> 7) & 1
    e = (b >> 3) & 0xF
    m = b & 7
    mag = np.where(e == 0, 2.0 ** -6 * (m / 8.0), 2.0 ** (e - 7).astype(np.float64) * (1.0 + m / 8.0))
    val = np.where(s == 1, -mag, mag)
    return np.where((e == 15) & (m == 7), np.nan, val)


# Positive finite E4M3FN values, codes 0x00..0x7E, strictly increasing with the code.
_FP8_POS = fp8_e4m3_decode(np.arange(0x7F, dtype=np.uint8))
FP8_E4M3_MAX = 448.0


def fp8_e4m3_encode(x) -> np.ndarray:
    """float -> FP8 E4M3FN bytes: round to nearest, ties to even code, saturate to +-448, NaN -> 0x7F|sign."""
    x = np.asarray(x, dtype=np.float64)
    a = np.minimum(np.abs(x), FP8_E4M3_MAX)
    a = np.where(np.isnan(a), 0.0, a)
    lo = np.searchsorted(_FP8_POS, a, side="right") - 1  # largest code with value <= a
    hi = np.minimum(lo + 1, 0x7E)
    d_lo = a - _FP8_POS[lo]
    d_hi = _FP8_POS[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (lo % 2 == 1))  # code LSB = mantissa LSB -> "even"
    code = np.where(pick_hi, hi, lo).astype(np.int64)
    code = np.where(np.isnan(x), 0x7F, code)
    code = code | (np.signbit(x).astype(np.int64) << 7)
    return code.astype(np.uint8)


def fp8_block_quantize(w: np.ndarray, block=(128, 128)):
    """W [M, N] -> (fp8 bytes [M, N], scale_inv float32 [ceil(M/bm), ceil(N/bn)]) per spec §10.1.

    scale_inv = amax(block)/448 over the (possibly partial) edge block; the dequantised weight is
    fp8_decode(q) * scale_inv[m // bm, n // bn]."""
    M, N = w.shape
    bm, bn = block
    nbm, nbn = -(-M // bm), -(-N // bn)
    q = np.zeros((M, N), dtype=np.uint8)
    s = np.zeros((nbm, nbn), dtype=np.float32)
    for i in range(nbm):
        for j in range(nbn):
            blk = w[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn]
            amax = float(np.abs(blk).max())
            sc = np.float32(amax / FP8_E4M3_MAX) if amax > 0 else np.float32(1.0)
            s[i, j] = sc
            q[i * bm:(i + 1) * bm, j * bn:(j + 1) * bn] = fp8_e4m3_encode(blk / float(sc))
    return q, s


def fp8_block_dequantize(q: np.ndarray, scale_inv: np.ndarray, block=(128, 128)) -> np.ndarray:
    """fp8 bytes [M, N] and scale_inv [ceil(M/bm), ceil(N/bn)] -> float64 W[m, n] = fp8[m, n] * s[m//bm, n//bn]."""
    M, N = q.shape
    bm, bn = block
    s = np.asarray(scale_inv, dtype=np.float64)
    assert s.shape == (-(-M // bm), -(-N // bn)), (s.shape, q.shape)
    full = np.repeat(np.repeat(s, bm, axis=0), bn, axis=1)[:M, :N]
    return fp8_e4m3_decode(q) * full


# =============================================================================================
# safetensors
# =============================================================================================

ST_STORAGE = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "F8_E4M3": np.dtype("u1"), "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "U8": np.dtype("u1"),
}


def encode_for_storage(dtype: str, x: np.ndarray) -> np.ndarray:
    """Real values -> storage array of a safetensors dtype (BF16 RNE, F16 RNE via numpy, F32 RNE)."""
    if dtype == "BF16":
        return bf16_encode(x)
    if dtype in ("F32", "F16", "F64"):
        return np.asarray(x).astype(ST_STORAGE[dtype])
    raise ValueError(f"encode_for_storage: unsupported dtype {dtype}")


def decode_storage(dtype: str, raw: np.ndarray) -> np.ndarray:
    """Storage array -> float64 (exact for every dtype here)."""
    if dtype == "BF16":
        return bf16_decode(raw)
    if dtype == "F8_E4M3":
        return fp8_e4m3_decode(raw)
    if dtype in ("F32", "F16", "F64"):
        return raw.astype(np.float64)
    raise ValueError(f"decode_storage: unsupported dtype {dtype}")


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> int:
    """tensors: name -> (dtype string, storage ndarray). Writes tensors in name order, contiguous, header
    padded with spaces to a multiple of 8. Returns the number of tensor-data bytes."""
    header = {"__metadata__": metadata if metadata is not None else {"format": "pt"}}
    blobs, off = [], 0
    for name in sorted(tensors):
        dt, arr = tensors[name]
        arr = np.ascontiguousarray(arr, dtype=ST_STORAGE[dt])
        b = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((-len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    return off


def read_safetensors(path: str) -> dict:
    """-> name -> (dtype string, storage ndarray). Validates that the data offsets tile the data section."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    header.pop("__metadata__", None)
    body = data[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        b, e = info["data_offsets"]
        dt = ST_STORAGE[info["dtype"]]
        count = int(np.prod(info["shape"], dtype=np.int64)) if info["shape"] else 1
        assert e - b == count * dt.itemsize, f"{path}: {name}: size mismatch"
        out[name] = (info["dtype"], np.frombuffer(body[b:e], dtype=dt).reshape(info["shape"]))
        spans.append((b, e))
    spans.sort()
    pos = 0
    for b, e in spans:
        assert b == pos, f"{path}: hole or overlap at {b}"
        pos = e
    assert pos == len(body), f"{path}: trailing bytes"
    return out


def read_checkpoint_dir(d: str) -> dict:
    """All tensors of a HF checkpoint folder (model.safetensors, or the shards of model.safetensors.index.json)."""
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            wm = json.load(f)["weight_map"]
        out = {}
        for fname in sorted(set(wm.values())):
            part = read_safetensors(os.path.join(d, fname))
            for k, v in part.items():
                assert wm.get(k) == fname, f"index says {k} is in {wm.get(k)}, found in {fname}"
                out[k] = v
        assert set(out) == set(wm), "index weight_map and shard contents differ"
        return out
    return read_safetensors(os.path.join(d, "model.safetensors"))


def load_hf_weights(d: str, block=(128, 128)) -> dict:
    """Checkpoint folder -> name -> float64 real weights. FP8 tensors are dequantised with their
    `<name>_scale_inv` sibling (spec §10.1); the scale tensors themselves are dropped."""
    raw = read_checkpoint_dir(d)
    out = {}
    for name, (dt, arr) in raw.items():
        if name.endswith("_scale_inv"):
            continue
        if dt == "F8_E4M3":
            sdt, s = raw[name + "_scale_inv"]
            assert sdt == "F32"
            out[name] = fp8_block_dequantize(arr, s, block)
        else:
            assert name + "_scale_inv" not in raw, f"{name}: scale without FP8 weight"
            out[name] = decode_storage(dt, arr)
    return out


# =============================================================================================
# GGUF v3
# =============================================================================================

GGUF_MAGIC = b"GGUF"
# metadata value types
GV_U8, GV_I8, GV_U16, GV_I16, GV_U32, GV_I32, GV_F32, GV_BOOL, GV_STR, GV_ARR, GV_U64, GV_I64, GV_F64 = range(13)
_GV_FMT = {GV_U8: "<B", GV_I8: "<b", GV_U16: "<H", GV_I16: "<h", GV_U32: "<I", GV_I32: "<i", GV_F32: "<f",
           GV_BOOL: "<?", GV_U64: "<Q", GV_I64: "<q", GV_F64: "<d"}
# ggml tensor types: (block elements, bytes per block)
GGML_F32, GGML_F16, GGML_Q4_0, GGML_Q8_0, GGML_BF16 = 0, 1, 2, 8, 30
GGML_BLOCK = {GGML_F32: (1, 4), GGML_F16: (1, 2), GGML_Q4_0: (32, 18), GGML_Q8_0: (32, 34), GGML_BF16: (1, 2)}
GGML_NAME = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q4_0: "Q4_0", GGML_Q8_0: "Q8_0", GGML_BF16: "BF16"}


def _roundf(x):
    """C roundf: half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_q8_0(x: np.ndarray) -> bytes:
    """Rows of 32 (innermost dim) -> ggml block_q8_0 {f16 d; int8 qs[32]}; d = amax/127, q = roundf(x/d)."""
    b = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(b).max(axis=1)
    d = (amax / np.float32(127.0)).astype(np.float32)
    idn = np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, 1), 0).astype(np.float32)
    q = np.clip(_roundf(b * idn[:, None]), -128, 127).astype(np.int8)
    rec = np.zeros(b.shape[0], dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    rec["d"] = d.astype(np.float16)
    rec["qs"] = q
    return rec.tobytes()


def dequantize_q8_0(buf: bytes, n: int) -> np.ndarray:
    rec = np.frombuffer(buf, dtype=[("d", "<f2"), ("qs", "i1", (32,))], count=n // 32)
    return (rec["d"].astype(np.float64)[:, None] * rec["qs"].astype(np.float64)).reshape(-1)


def quantize_q4_0(x: np.ndarray) -> bytes:
    """Rows of 32 -> ggml block_q4_0 {f16 d; u8 qs[16]}: d = (signed value of max magnitude)/-8,
    q = min(15, trunc(x/d + 8.5)); low nibble of qs[j] = element j, high nibble = element j+16."""
    b = np.asarray(x, dtype=np.float32).reshape(-1, 32)
    j = np.argmax(np.abs(b), axis=1)  # first index of the max magnitude, as ggml's strict '<'
    mx = b[np.arange(b.shape[0]), j]
    d = (mx / np.float32(-8.0)).astype(np.float32)
    idn = np.where(d != 0, np.float32(1.0) / np.where(d != 0, d, 1), 0).astype(np.float32)
    xi = np.minimum(15, np.trunc(b * idn[:, None] + np.float32(8.5))).astype(np.uint8)
    qs = (xi[:, :16] | (xi[:, 16:] << 4)).astype(np.uint8)
    rec = np.zeros(b.shape[0], dtype=[("d", "<f2"), ("qs", "u1", (16,))])
    rec["d"] = d.astype(np.float16)
    rec["qs"] = qs
    return rec.tobytes()


def dequantize_q4_0(buf: bytes, n: int) -> np.ndarray:
    rec = np.frombuffer(buf, dtype=[("d", "<f2"), ("qs", "u1", (16,))], count=n // 32)
    lo = (rec["qs"] & 0x0F).astype(np.float64) - 8.0
    hi = (rec["qs"] >> 4).astype(np.float64) - 8.0
    return (rec["d"].astype(np.float64)[:, None] * np.concatenate([lo, hi], axis=1)).reshape(-1)


def ggml_encode(gtype: int, x: np.ndarray) -> bytes:
    """Real values (torch order, innermost dim last) -> ggml tensor bytes."""
    if gtype == GGML_F32:
        return np.ascontiguousarray(x, dtype="<f4").tobytes()
    if gtype == GGML_F16:
        return np.ascontiguousarray(x, dtype="<f2").tobytes()
    if gtype == GGML_BF16:
        return bf16_encode(x).astype("<u2").tobytes()
    assert x.shape[-1] % 32 == 0, f"quantised rows must be a multiple of 32, got {x.shape}"
    if gtype == GGML_Q8_0:
        return quantize_q8_0(x)
    if gtype == GGML_Q4_0:
        return quantize_q4_0(x)
    raise ValueError(gtype)


def ggml_decode(gtype: int, buf: bytes, ne: list) -> np.ndarray:
    """ggml tensor bytes -> float64 array in torch order (shape = reversed ne)."""
    n = int(np.prod(ne))
    if gtype == GGML_F32:
        v = np.frombuffer(buf, dtype="<f4", count=n).astype(np.float64)
    elif gtype == GGML_F16:
        v = np.frombuffer(buf, dtype="<f2", count=n).astype(np.float64)
    elif gtype == GGML_BF16:
        v = bf16_decode(np.frombuffer(buf, dtype="<u2", count=n))
    elif gtype == GGML_Q8_0:
        v = dequantize_q8_0(buf, n)
    elif gtype == GGML_Q4_0:
        v = dequantize_q4_0(buf, n)
    else:
        raise ValueError(gtype)
    return v.reshape(list(reversed(ne)))


def ggml_nbytes(gtype: int, ne: list) -> int:
    be, bb = GGML_BLOCK[gtype]
    n = int(np.prod(ne))
    assert ne[0] % be == 0
    return n // be * bb


class GGUFWriter:
    """Minimal GGUF v3 writer. Metadata values carry explicit types; tensors are given in torch order
    and written with ne = reversed(shape) (innermost first)."""

    def __init__(self, alignment: int = 32, write_alignment_key: bool = False):
        self.alignment = alignment
        self.kv: list = []
        self.tensors: list = []
        if write_alignment_key:
            self.add("general.alignment", GV_U32, alignment)

    def add(self, key: str, vtype: int, value, elem_type: int | None = None):
        self.kv.append((key, vtype, value, elem_type))

    def add_tensor(self, name: str, gtype: int, x: np.ndarray):
        ne = list(reversed(x.shape))
        data = ggml_encode(gtype, x)
        assert len(data) == ggml_nbytes(gtype, ne)
        self.tensors.append((name, gtype, ne, data))

    @staticmethod
    def _str(s: str) -> bytes:
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b

    def _value(self, vtype, value, elem_type):
        if vtype == GV_STR:
            return self._str(value)
        if vtype == GV_ARR:
            out = struct.pack("<IQ", elem_type, len(value))
            for v in value:
                out += self._value(elem_type, v, None)
            return out
        return struct.pack(_GV_FMT[vtype], value)

    def write(self, path: str):
        with open(path, "wb") as f:
            f.write(self.to_bytes())

    def to_bytes(self) -> bytes:
        out = bytearray()
        out += GGUF_MAGIC + struct.pack("<IQQ", 3, len(self.tensors), len(self.kv))
        for key, vt, val, et in self.kv:
            out += self._str(key) + struct.pack("<I", vt) + self._value(vt, val, et)
        offset = 0
        offsets = []
        for name, gt, ne, data in self.tensors:
            offsets.append(offset)
            out += self._str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
            out += struct.pack("<IQ", gt, offset)
            offset += len(data)
            offset += (-offset) % self.alignment
        out += b"\0" * ((-len(out)) % self.alignment)
        for (name, gt, ne, data), off in zip(self.tensors, offsets):
            out += data
            out += b"\0" * ((-len(data)) % self.alignment)
        return bytes(out)


def read_gguf(path: str):
    """-> (metadata dict key -> python value, tensors dict name -> (ggml type, ne list, float64 torch-order array))."""
    with open(path, "rb") as f:
        data = f.read()
    pos = 0

    def take(fmt):
        nonlocal pos
        vals = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return vals

    def string():
        nonlocal pos
        (n,) = take("<Q")
        s = data[pos:pos + n].decode("utf-8")
        pos += n
        return s

    def value(vt):
        if vt == GV_STR:
            return string()
        if vt == GV_ARR:
            et, n = take("<IQ")
            return [value(et) for _ in range(n)]
        return take(_GV_FMT[vt])[0]

    assert data[:4] == GGUF_MAGIC
    pos = 4
    version, n_t, n_kv = take("<IQQ")
    assert version == 3
    meta = {}
    for _ in range(n_kv):
        k = string()
        (vt,) = take("<I")
        meta[k] = value(vt)
    infos = []
    for _ in range(n_t):
        name = string()
        (nd,) = take("<I")
        ne = list(take(f"<{nd}Q"))
        gt, off = take("<IQ")
        infos.append((name, gt, ne, off))
    align = meta.get("general.alignment", 32)
    base = pos + (-pos) % align
    tensors = {}
    for name, gt, ne, off in infos:
        assert off % align == 0, f"{name}: misaligned offset"
        nb = ggml_nbytes(gt, ne)
        tensors[name] = (gt, ne, ggml_decode(gt, data[base + off:base + off + nb], ne))
    return meta, tensors


def write_npy(path: str, x: np.ndarray):
    """.npy version 1.0, little-endian float32, C order."""
    arr = np.ascontiguousarray(np.asarray(x, dtype="<f4"))
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=(1, 0), allow_pickle=False)


def f32_round(x) -> float:
    return float(np.float32(x))

