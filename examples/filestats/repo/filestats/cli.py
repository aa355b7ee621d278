"""Command line: `python -m filestats [-w] [-c] FILE...` prints counts like `wc`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from filestats.stats import count_bytes, count_words

# (option name, counter) in the order the columns are printed.
COUNTERS = (("words", count_words), ("bytes", count_bytes))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="filestats", description="Print counts for each FILE.")
    parser.add_argument("-w", "--words", action="store_true", help="print the word count")
    parser.add_argument("-c", "--bytes", action="store_true", help="print the byte count")
    parser.add_argument("files", nargs="+", metavar="FILE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    selected = [counter for name, counter in COUNTERS if getattr(args, name)]
    if not selected:
        selected = [counter for _, counter in COUNTERS]
    status = 0
    for path in args.files:
        try:
            counts = [counter(path) for counter in selected]
        except OSError as exc:
            print(f"filestats: {path}: {exc.strerror}", file=sys.stderr)
            status = 1
            continue
        print(" ".join(str(count) for count in counts), path)
    return status
