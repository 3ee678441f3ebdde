#!/usr/bin/env python3
"""Restore the two llama.cpp vocabulary GGUFs in ../shared/testdata/vocab.

Those copies went through a lossy UTF-8 decode/encode: every byte that was not part of a valid
UTF-8 sequence (high bytes of f32 scores, string lengths >= 128, counts such as 50257) became
U+FFFD (EF BF BD), so no GGUF reader can parse them. The originals are llama.cpp's
models/ggml-vocab-{llama-spm,gpt-2}.gguf, whose Git LFS pointers publish size and sha256 (below).

Each damaged field is rebuilt from what the file structure and the vocabulary imply, then the
result is accepted only if (a) re-applying the lossy conversion reproduces the damaged file byte
for byte and (b) size and sha256 equal the published ones. So the output is the original or
nothing: the recipe cannot silently produce a near-copy.

usage: restore_vocab.py SHARED_VOCAB_DIR OUT_DIR
"""
import hashlib
import os
import struct
import sys

FFFD = b"\xef\xbf\xbd"

# From llama.cpp's Git LFS pointers (models/ggml-vocab-*.gguf).
ORIGINALS = {
    "ggml-vocab-llama-spm.gguf": (723869, "16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69"),
    "ggml-vocab-gpt-2.gguf": (1766807, "cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac"),
}


def mangle(data: bytes) -> bytes:
    """The damage: decode as UTF-8 replacing invalid sequences, encode again."""
    return data.decode("utf-8", "replace").encode("utf-8")


def replace_once(data: bytes, damaged: bytes, original: bytes) -> bytes:
    if data.count(damaged) != 1:
        raise ValueError(f"expected exactly one damaged field {damaged[:40]!r}")
    return data.replace(damaged, original, 1)


def fix_f32_eps(data: bytes) -> bytes:
    # layer_norm(_rms)_epsilon = 1e-5 (bytes AC C5 27 37): the first two bytes were lost.
    eps = struct.pack("<f", 1e-5)
    return replace_once(data, b"_epsilon\x06\x00\x00\x00" + FFFD + FFFD + eps[2:], b"_epsilon\x06\x00\x00\x00" + eps)


def fix_u16_prefix(data: bytes, key: bytes, value: int) -> bytes:
    # A little-endian count/id whose second byte (>= 0x80) was lost; its low byte survived.
    lo = struct.pack("<H", value)
    return replace_once(data, key + lo[:1] + FFFD, key + lo)


def safe_prefix(data: bytes) -> bytes:
    """Drop a trailing incomplete UTF-8 sequence that later bytes could still complete."""
    for t in (1, 2, 3):
        if len(data) >= t and 0xC2 <= data[-t] <= 0xF4:
            need = 2 if data[-t] < 0xE0 else 3 if data[-t] < 0xF0 else 4
            if need > t and all(0x80 <= c <= 0xBF for c in data[len(data) - t + 1:]):
                return data[:-t]
    return data


def restore_spm_scores(data: bytes, n_vocab: int) -> bytes:
    """LLaMA's SentencePiece scores: 0 for <unk>, control and the 256 byte tokens, then -(id - 259)
    by merge rank, except whitespace pieces pinned at -1e9. Which tokens carry -1e9 is read off the
    damaged bytes (its encoding 28 6B 6E CE keeps three recognisable bytes)."""
    key = b"tokenizer.ggml.scores\x06\x00\x00\x00" + struct.pack("<Q", n_vocab)  # key, type f32, count
    start = data.index(b"tokenizer.ggml.scores") + len(b"tokenizer.ggml.scores") + 4 + 4 + 8
    if data[start - 16 - len(b"tokenizer.ggml.scores") + len(b"tokenizer.ggml.scores"):start] == b"":
        raise ValueError("scores header not found")
    end = data.index(b"tokenizer.ggml.token_type") - 8  # the next key's u64 length precedes it
    damaged = data[start:end]
    restored = bytearray(struct.pack(f"<{259}f", *([0.0] * 259)))
    for i in range(259, n_vocab):
        for cand in (-(i - 259.0), -1e9):
            trial = bytes(restored) + struct.pack("<f", cand)
            if damaged.startswith(mangle(safe_prefix(trial))):
                restored += struct.pack("<f", cand)
                break
        else:
            raise ValueError(f"score of token {i} matches no candidate")
    if mangle(bytes(restored)) != damaged:
        raise ValueError("restored scores do not reproduce the damaged bytes")
    del key
    return data[:start] + bytes(restored) + data[end:]


def restore_string_lengths(data: bytes) -> bytes:
    """Token/merge strings of 128..255 bytes lost the low byte of their u64 length. The length is
    the one after which the next u64 is a short plausible length and the text has no NUL."""
    while (pos := data.find(FFFD)) >= 0:
        if data[pos + 3:pos + 10] != b"\x00" * 7:
            raise ValueError(f"unexpected damaged byte at offset {pos}")
        body = pos + 3 + 7
        for length in range(128, 256):
            text = data[body:body + length]
            nxt = struct.unpack_from("<Q", data, body + length)[0]
            if b"\x00" not in text and 0 < nxt < 128:
                data = data[:pos] + bytes([length]) + data[pos + 3:]
                break
        else:
            raise ValueError(f"no string length fits at offset {pos}")
    return data


def restore(name: str, damaged: bytes) -> bytes:
    if name == "ggml-vocab-llama-spm.gguf":
        data = fix_f32_eps(damaged)
        data = replace_once(data, b"dimension_count\x04\x00\x00\x00" + FFFD + b"\x00\x00\x00",
                            b"dimension_count\x04\x00\x00\x00" + struct.pack("<I", 4096 // 32))
        data = restore_spm_scores(data, 32000)
    elif name == "ggml-vocab-gpt-2.gguf":
        data = fix_f32_eps(damaged)
        data = fix_u16_prefix(data, b"tokenizer.ggml.tokens\t\x00\x00\x00\x08\x00\x00\x00", 50257)
        data = fix_u16_prefix(data, b"tokenizer.ggml.token_type\t\x00\x00\x00\x05\x00\x00\x00", 50257)
        data = fix_u16_prefix(data, b"tokenizer.ggml.merges\t\x00\x00\x00\x08\x00\x00\x00", 50000)
        data = fix_u16_prefix(data, b"bos_token_id\x04\x00\x00\x00", 50256)  # <|endoftext|>, the last token
        data = fix_u16_prefix(data, b"eos_token_id\x04\x00\x00\x00", 50256)
        data = restore_string_lengths(data)
    else:
        raise ValueError(f"no recipe for {name}")
    return data


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src_dir, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    status = 0
    for name, (size, sha) in ORIGINALS.items():
        src = os.path.join(src_dir, name)
        dst = os.path.join(out_dir, name)
        data = open(src, "rb").read()
        if len(data) == size and hashlib.sha256(data).hexdigest() == sha:
            restored = data  # an intact copy: nothing to do
        else:
            try:
                restored = restore(name, data)
            except (ValueError, struct.error) as e:
                print(f"restore_vocab: {src}: cannot restore: {e}", file=sys.stderr)
                status = 1
                continue
            if mangle(restored) != data or len(restored) != size or hashlib.sha256(restored).hexdigest() != sha:
                print(f"restore_vocab: {src}: restored bytes do not match llama.cpp's published sha256", file=sys.stderr)
                status = 1
                continue
        tmp = dst + ".tmp"
        with open(tmp, "wb") as f:
            f.write(restored)
        os.replace(tmp, dst)
        print(f"restore_vocab: {dst} (sha256 {sha[:16]}... verified)")
    return status


if __name__ == "__main__":
    sys.exit(main())
