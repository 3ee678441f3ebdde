#!/usr/bin/env python3
"""Fails when a folder includes a header of a folder above it in the dependency order, or when
decode/ holds SIMD intrinsics (they belong in shard/kernels/). Usage: check_layout.py REPO_ROOT"""
import re
import sys
from pathlib import Path

# Lowest first; a folder may include itself and anything before it. bench/ and tests/ use all.
ORDER = ["shard/util", "shard/kernels", "shard/format", "shard/tokenizer", "shard/model",
         "dist", "decode", "rpc", "launch"]
UTIL = {"shard/log.h", "shard/result.h"}  # the two utilities at shard/'s top
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
INTRINSICS = re.compile(r'#\s*include\s*<[a-z0-9]*intrin\.h>|\b_mm(256|512)?_\w+\(')


def folder_of(path: str) -> str | None:
    if path in UTIL or path in {"shard/log.cpp"}:
        return "shard/util"
    for f in sorted(ORDER, key=len, reverse=True):
        if path.startswith(f + "/"):
            return f
    return None


def main() -> int:
    root = Path(sys.argv[1])
    errors = []
    for src in sorted(root.glob("**/*")):
        if src.suffix not in {".h", ".cpp"} or not src.is_file():
            continue
        rel = src.relative_to(root).as_posix()
        if rel.startswith(("build", ".git")):
            continue
        here = folder_of(rel)
        if here is None:
            continue
        if rel.startswith("shard/") and "/" not in rel[len("shard/"):] and rel not in UTIL | {"shard/log.cpp"}:
            errors.append(f"{rel}: shard/ holds only log and result at its top; put it in a subfolder")
        text = src.read_text(encoding="utf-8", errors="replace")
        for inc in INCLUDE.findall(text):
            there = folder_of(inc)
            if there is not None and ORDER.index(there) > ORDER.index(here):
                errors.append(f"{rel}: includes {inc}, but {here} comes before {there}")
        if here == "decode" and INTRINSICS.search(text):
            errors.append(f"{rel}: SIMD intrinsics in decode/ (move the kernel to shard/kernels/)")
    for e in errors:
        print(e)
    print(f"layout: {len(errors)} problem(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
