#!/usr/bin/env python3
"""section.py NAME PERFORMANCE.md SECTION-FILE - put SECTION-FILE (which
starts with <!-- NAME:begin ...> and ends with <!-- NAME:end -->) in
place of that section of PERFORMANCE.md, or append it if it is not there
yet.  Every bench/*.sh writes its figures through this."""
import re
import sys

name, path, section_file = sys.argv[1:4]
section = open(section_file).read().rstrip("\n")
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pat = re.compile(r"<!-- %s:begin.*?<!-- %s:end -->" % (name, name), re.S)
if pat.search(text):
    text = pat.sub(lambda m: section, text)
else:
    if not text.strip():
        text = "# Performance\n\nFigures measured by the benchmarks in bench/ (`make bench`).\n"
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(path, "w").write(text if text.endswith("\n") else text + "\n")
