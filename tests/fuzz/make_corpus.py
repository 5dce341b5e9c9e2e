#!/usr/bin/python3
"""Writes the small committed seed corpora in tests/fuzz/corpus/ from the test fixtures.

The fixtures themselves are poor fuzz seeds: the golden checkpoints are 100-900 KB of tensor
data the parsers only bounds-check, the tokenizers are 6-11 MB (about 100 ms per execution),
and chat templates sit inside tokenizer_config.json. So each seed keeps a fixture's structure
(every key, tensor name, dtype, rank, merge rule shape, template) and drops its bulk. Python
standard library only. Run from the repository root: /usr/bin/python3 tests/fuzz/make_corpus.py
"""
import glob
import io
import json
import os
import struct
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "fuzz", "corpus")

# ---------------------------------------------------------------- safetensors


def shrink_safetensors(path):
    """Same names, dtypes, ranks and metadata; every dimension cut to at most 2."""
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    body = data[8 + n :]
    width = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2}
    out_header, out_body = {}, b""
    if "__metadata__" in header:
        out_header["__metadata__"] = header.pop("__metadata__")
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        shape = [min(d, 2) for d in e["shape"]]
        count = 1
        for d in shape:
            count *= d
        nbytes = count * width.get(e["dtype"], 1)
        begin = e["data_offsets"][0]
        chunk = body[begin : begin + nbytes]
        out_header[name] = {
            "dtype": e["dtype"],
            "shape": shape,
            "data_offsets": [len(out_body), len(out_body) + nbytes],
        }
        out_body += chunk
    text = json.dumps(out_header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + out_body


# ---------------------------------------------------------------- GGUF

SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}
# ggml type -> (block elements, block bytes) for the types the fixtures use.
GGML = {0: (1, 4), 1: (1, 2), 2: (32, 18), 8: (32, 34), 30: (1, 2)}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        b = self.data[self.pos : self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        return self.take(self.unpack("<Q"))

    def value(self, t, keep_array=64):
        """Returns the value re-encoded, arrays cut to `keep_array` elements."""
        if t in SCALAR:
            return self.take(struct.calcsize(SCALAR[t]))
        if t == 8:
            s = self.string()
            return struct.pack("<Q", len(s)) + s
        if t == 9:
            et, n = self.unpack("<I"), self.unpack("<Q")
            items = [self.value(et) for _ in range(n)]
            items = items[:keep_array]
            return struct.pack("<IQ", et, len(items)) + b"".join(items)
        raise ValueError(f"GGUF value type {t}")


def shrink_gguf(path):
    """Same header, keys (arrays cut to 64 items) and tensor names/types/ranks; tensors cut
    to one block by 2 rows, laid out at the file's alignment."""
    r = Reader(open(path, "rb").read())
    magic, version = r.take(4), r.unpack("<I")
    n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
    kvs, alignment = [], 32
    for _ in range(n_kv):
        key = r.string()
        t = r.unpack("<I")
        start = r.pos
        encoded = r.value(t)
        if key == b"general.alignment":
            r2 = Reader(r.data[start:])
            alignment = r2.unpack("<I")
        kvs.append(struct.pack("<Q", len(key)) + key + struct.pack("<I", t) + encoded)
    infos, offset = [], 0
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("<I")
        ne = [r.unpack("<Q") for _ in range(n_dims)]
        gt = r.unpack("<I")
        r.unpack("<Q")
        block, bsize = GGML[gt]
        ne = [block] + [min(d, 2) for d in ne[1:]]
        nbytes = bsize
        for d in ne[1:]:
            nbytes *= d
        infos.append((name, ne, gt, offset, nbytes))
        offset += nbytes + (-nbytes % alignment)
    out = magic + struct.pack("<IQQ", version, n_tensors, n_kv) + b"".join(kvs)
    for name, ne, gt, off, _ in infos:
        out += struct.pack("<Q", len(name)) + name + struct.pack("<I", len(ne))
        out += b"".join(struct.pack("<Q", d) for d in ne) + struct.pack("<IQ", gt, off)
    out += b"\0" * (-len(out) % alignment)
    body = bytearray(offset)
    for i in range(len(body)):
        body[i] = (i * 37 + 11) & 0x3F  # small finite values in every float format
    return out + bytes(body)


# ---------------------------------------------------------------- tokenizer.json


def shrink_tokenizer(text, keep=300):
    """The first `keep` vocabulary ids, the merges among them, and every other section."""
    tok = json.loads(text)
    model = tok.get("model", {})
    vocab = model.get("vocab")
    if isinstance(vocab, dict):
        kept = {t: i for t, i in vocab.items() if i < keep}
        model["vocab"] = kept
        merges = []
        for m in model.get("merges", []):
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in kept and b in kept and a + b in kept:
                merges.append(m)
        model["merges"] = merges
    added = (tok.get("added_tokens") or [])[:16]  # DeepSeek-V3 lists ~800 placeholders
    tok["added_tokens"] = added
    for k, t in enumerate(added):
        t["id"] = keep + k  # keep ids dense after the cut
    # Post-processor templates name special tokens with ids: follow the renumbering.
    renum = {t["content"]: t["id"] for t in added}
    pp = tok.get("post_processor") or {}
    for p in [pp] + list(pp.get("processors") or []):
        for name, st in (p.get("special_tokens") or {}).items():
            if name in renum:
                st["ids"] = [renum[name]]
    return json.dumps(tok, ensure_ascii=False, indent=1).encode()


def tokenizer_archives():
    for archive in sorted(glob.glob(os.path.join(ROOT, "tests/tokenizer/data/models/*.tar.xz"))):
        with tarfile.open(archive) as tar:
            files = {}
            for m in tar.getmembers():
                if m.isfile():
                    files[os.path.basename(m.name)] = tar.extractfile(m).read()
            yield os.path.basename(archive).split(".")[0], files


# ---------------------------------------------------------------- main


def write(kind, name, data):
    os.makedirs(os.path.join(OUT, kind), exist_ok=True)
    with open(os.path.join(OUT, kind, name), "wb") as f:
        f.write(data)


def main():
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/golden/*/*.safetensors"))):
        stem = os.path.basename(os.path.dirname(path)) + "_" + os.path.basename(path)
        write("safetensors", stem, shrink_safetensors(path))
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/golden/*/*.gguf"))):
        write("gguf", os.path.basename(os.path.dirname(path)) + ".gguf", shrink_gguf(path))
    trained = os.path.join(ROOT, "tests/tokenizer/golden/trained")
    write("tokenizer", "trained.json", shrink_tokenizer(open(trained + "/tokenizer.json").read()))
    for name, files in tokenizer_archives():
        if "tokenizer.json" in files:
            write("tokenizer", name + ".json", shrink_tokenizer(files["tokenizer.json"]))
        cfg = json.loads(files.get("tokenizer_config.json", b"{}"))
        tpl = cfg.get("chat_template")
        if isinstance(tpl, str):
            write("chat_template", name + ".jinja", tpl.encode())
        elif isinstance(tpl, list):
            for t in tpl:
                write("chat_template", name + "_" + t["name"] + ".jinja", t["template"].encode())


if __name__ == "__main__":
    main()
