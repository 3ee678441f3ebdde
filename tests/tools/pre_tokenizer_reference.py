#!/usr/bin/env python3
"""Every pre-tokenizer of the table against a second regex engine: `tandem model pre-tokenizers
--json` gives each entry's regexes; tests/js/split_regexes.mjs splits the texts with them in
JavaScript (ECMAScript, Unicode mode), `tandem model tokenize VOCAB --pre NAME --pieces` with
PCRE2; the pieces must be equal for every entry and text (and concatenate back to the text).

usage: pre_tokenizer_reference.py --tandem BIN --node NODE --js-dir tests/js --vocab BPE.gguf TEXTS.inp...
"""
import argparse
import json
import os
import subprocess
import sys

from tokenizer_conformance import SEPARATOR, read_inp, run


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tandem", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--js-dir", required=True)
    ap.add_argument("--vocab", required=True, help="any BPE vocabulary GGUF (its tokens do not matter)")
    ap.add_argument("texts", nargs="+")
    a = ap.parse_args()

    texts = []
    for path in a.texts:
        for t in read_inp(path):
            if t not in texts:
                texts.append(t)
    table = json.loads(run([a.tandem, "model", "pre-tokenizers", "--json"]))
    specs = [{"name": e["names"][0], "regexes": e["regexes"]} for e in table]
    ref = json.loads(run([a.node, os.path.join(a.js_dir, "split_regexes.mjs")],
                         json.dumps({"specs": specs, "texts": texts}).encode()))
    inp = "".join(t + "\n" + SEPARATOR + "\n" for t in texts).encode()
    failures = 0
    for spec in specs:
        name = spec["name"]
        lines = run([a.tandem, "model", "tokenize", a.vocab, "--pre", name, "--pieces"], inp).decode().split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(texts):
            sys.exit(f"{name}: tandem printed {len(lines)} lines for {len(texts)} texts")
        bad = 0
        for i, t in enumerate(texts):
            got = json.loads(lines[i])
            if "".join(got) != t:
                print(f"{name}: text {i} {t[:60]!r}: the pieces do not concatenate to the text")
                bad += 1
            elif got != ref[name][i]:
                bad += 1
                if bad <= 5:
                    k = next((j for j, (x, y) in enumerate(zip(got, ref[name][i])) if x != y),
                             min(len(got), len(ref[name][i])))
                    print(f"{name}: text {i} {t[:60]!r}: pieces differ from piece {k}:\n"
                          f"  tandem {got[max(0, k - 2):k + 4]}\n  js     {ref[name][i][max(0, k - 2):k + 4]}")
        pieces = sum(len(x) for x in ref[name])
        print(f"{name}: {len(texts)} texts, {pieces} pieces, {bad} differ")
        failures += bad
    if failures:
        print(f"pre-tokenizer reference: {failures} failure(s)")
        return 1
    print(f"pre-tokenizer reference: all {len(specs)} entries equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
