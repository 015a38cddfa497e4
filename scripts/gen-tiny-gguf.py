#!/usr/bin/env python3
"""Writes a tiny, deterministic, random-weight LLaMA model as GGUF v3 for the inference tests.

usage: gen-tiny-gguf.py VOCAB.gguf OUT.gguf

VOCAB.gguf is llama.cpp's vocab-only models/ggml-vocab-llama-spm.gguf: its tokenizer.* keys
(32,000 tokens, BOS 1, EOS 2) are copied as they are. The model: n_embd 64, 2 layers, 4 heads,
ffn 256, context 2048, F32 tensors from a fixed-seed integer PRNG, a chatml chat template. The
same inputs give the same bytes on every machine. Only the standard library is used.

Random weights would sometimes sample byte-fallback tokens (<0x80>...), whose invalid UTF-8
makes llama-server fail the request. So residual channel 63 is held at 1.0 by every token's
embedding, no layer reads it (its norm weights are 0) or writes it (its output rows are 0), and
output.weight gives it -10 for the byte tokens, <unk> and <s>, 0 for every other token: those
tokens stay unreachable while the rest of the text is random.
"""

import struct
import sys
from array import array

N_EMBD, N_LAYER, N_HEAD, N_FF, N_CTX = 64, 2, 4, 256, 2048
CONST = N_EMBD - 1  # the constant residual channel
ALIGN = 32
CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
          "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")

T_U32, T_F32, T_STRING, T_ARRAY = 4, 6, 8, 9
SCALAR = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
          11: "<q", 12: "<d"}


class Reader:
    def __init__(self, data):
        self.d, self.o = data, 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.o:self.o + n]
        self.o += n
        return s.decode()

    def value(self, t):
        if t == T_STRING:
            return self.string()
        if t == T_ARRAY:
            et, n = self.take("<I"), self.take("<Q")
            return [self.value(et) for _ in range(n)]
        return self.take(SCALAR[t])


def read_tokenizer(path):
    """The raw bytes of every tokenizer.* key-value pair, and the token types."""
    r = Reader(open(path, "rb").read())
    assert r.d[:4] == b"GGUF", "not a GGUF file"
    r.o = 4
    r.take("<I")
    r.take("<Q")
    nkv = r.take("<Q")
    raw, types = [], None
    for _ in range(nkv):
        start = r.o
        key = r.string()
        t = r.take("<I")
        v = r.value(t)
        if key.startswith("tokenizer.") and key != "tokenizer.chat_template":
            raw.append(r.d[start:r.o])
        if key == "tokenizer.ggml.token_type":
            types = v
    return raw, types


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def kv(key, t, v):
    if t == T_STRING:
        return gstr(key) + struct.pack("<I", t) + gstr(v)
    return gstr(key) + struct.pack("<I", t) + struct.pack(SCALAR[t], v)


class Rng:
    """A 64-bit LCG (Knuth's MMIX constants); uniform floats in [-scale, scale)."""

    def __init__(self, seed):
        self.x = seed

    def fill(self, n, scale):
        x, out = self.x, array("f", bytes(4 * n))
        m = 0xFFFFFFFFFFFFFFFF
        k = 2.0 * scale / float(1 << 24)
        for i in range(n):
            x = (x * 6364136223846793005 + 1442695040888963407) & m
            out[i] = (x >> 40) * k - scale
        self.x = x
        return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    tok_raw, types = read_tokenizer(sys.argv[1])
    n_vocab = len(types)
    rng = Rng(20261128)
    tensors = []  # (name, dims (ne0 first), array of floats)

    def mat(name, n_in, n_out, scale, reads=True, writes=True):
        w = rng.fill(n_in * n_out, scale)
        for o in range(n_out):
            if not reads:
                w[o * n_in + CONST] = 0.0
            if not writes and o == CONST:
                for i in range(n_in):
                    w[o * n_in + i] = 0.0
        tensors.append((name, [n_in, n_out], w))

    def norm(name, const):
        w = array("f", [1.0] * N_EMBD)
        w[CONST] = const
        tensors.append((name, [N_EMBD], w))

    emb = rng.fill(N_EMBD * n_vocab, 0.5)
    for t in range(n_vocab):
        emb[t * N_EMBD + CONST] = 1.0
    tensors.append(("token_embd.weight", [N_EMBD, n_vocab], emb))
    for b in range(N_LAYER):
        p = f"blk.{b}."
        norm(p + "attn_norm.weight", 0.0)
        mat(p + "attn_q.weight", N_EMBD, N_EMBD, 0.3, reads=False)
        mat(p + "attn_k.weight", N_EMBD, N_EMBD, 0.3, reads=False)
        mat(p + "attn_v.weight", N_EMBD, N_EMBD, 0.3, reads=False)
        mat(p + "attn_output.weight", N_EMBD, N_EMBD, 0.2, writes=False)
        norm(p + "ffn_norm.weight", 0.0)
        mat(p + "ffn_gate.weight", N_EMBD, N_FF, 0.3, reads=False)
        mat(p + "ffn_up.weight", N_EMBD, N_FF, 0.3, reads=False)
        mat(p + "ffn_down.weight", N_FF, N_EMBD, 0.1, writes=False)
    norm("output_norm.weight", 1.0)
    out = rng.fill(N_EMBD * n_vocab, 0.5)
    for t in range(n_vocab):
        banned = types[t] == 6 or t in (0, 1)  # byte tokens, <unk>, <s>
        out[t * N_EMBD + CONST] = -10.0 if banned else 0.0
    tensors.append(("output.weight", [N_EMBD, n_vocab], out))

    kvs = [
        kv("general.architecture", T_STRING, "llama"),
        kv("general.name", T_STRING, "lyceumd-tiny"),
        kv("general.alignment", T_U32, ALIGN),
        kv("general.file_type", T_U32, 0),
        kv("llama.context_length", T_U32, N_CTX),
        kv("llama.embedding_length", T_U32, N_EMBD),
        kv("llama.block_count", T_U32, N_LAYER),
        kv("llama.feed_forward_length", T_U32, N_FF),
        kv("llama.attention.head_count", T_U32, N_HEAD),
        kv("llama.attention.head_count_kv", T_U32, N_HEAD),
        kv("llama.rope.dimension_count", T_U32, N_EMBD // N_HEAD),
        kv("llama.attention.layer_norm_rms_epsilon", T_F32, 1e-5),
        *tok_raw,
        kv("tokenizer.chat_template", T_STRING, CHATML),
    ]
    head = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kvs)), *kvs]
    off = 0
    for name, dims, data in tensors:
        head.append(gstr(name) + struct.pack("<I", len(dims)) +
                    b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", 0, off))
        off += len(data) * 4
        off += -off % ALIGN
    with open(sys.argv[2], "wb") as f:
        h = b"".join(head)
        f.write(h + bytes(-len(h) % ALIGN))
        for _, _, data in tensors:
            b = data.tobytes() if sys.byteorder == "little" else None
            if b is None:
                data.byteswap()
                b = data.tobytes()
            f.write(b + bytes(-len(b) % ALIGN))


if __name__ == "__main__":
    main()
