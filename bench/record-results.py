#!/usr/bin/env python3
"""Replaces (or appends) one "## TITLE" section of bench/RESULTS.md: record-results.py FILE TITLE BODY."""
import re
import sys

path, title, body = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    text = open(path).read()
except FileNotFoundError:
    text = ("# Benchmark results\n\nEvery table comes with the command that produced it; peers measured side "
            "by side in the same run.\n")
section = "## " + title + "\n\n" + body.strip() + "\n"
# The section runs to the blank line before the next "## " heading (kept) or to the end.
pattern = re.compile(r"## " + re.escape(title) + r"\n.*?(?=\n+## |\Z)", re.S)
text = pattern.sub(lambda m: section.rstrip("\n"), text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
text = re.sub(r"([^\n])\n(## )", r"\1\n\n\2", text)
open(path, "w").write(text if text.endswith("\n") else text + "\n")
