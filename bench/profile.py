"""Read py-spy's collapsed stacks (`--format raw`): where the service's time goes.

.venv/bin/python -m bench.profile .local/bench/service.stacks --top 25
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path


def parse(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """`frame;frame;… count` lines → stacks (outermost first) and their sample counts."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if stack and count.isdigit():
            stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def busy(stacks: Counter[tuple[str, ...]]) -> Counter[tuple[str, ...]]:
    """Leave out the samples where the event loop waited for I/O (the loop's `select`)."""
    idle = ("select (selectors.py", "run_once (uvloop", "_run_once (asyncio/base_events.py")
    return Counter({s: n for s, n in stacks.items() if not s[-1].startswith(idle)})


def top(
    stacks: Counter[tuple[str, ...]], n: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The `n` frames with the most samples on top of the stack (self) and anywhere (total)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for stack, count in stacks.items():
        own[stack[-1]] += count
        for frame in set(stack):
            total[frame] += count
    return own.most_common(n), total.most_common(n)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0], epilog=__doc__
    )
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    stacks = busy(parse(args.stacks.read_text().splitlines()))
    samples = sum(stacks.values())
    own, total = top(stacks, args.top)
    for title, rows in (("self", own), ("total", total)):
        sys.stdout.write(f"--- {title} ({samples} busy samples)\n")
        for frame, count in rows:
            sys.stdout.write(f"{count / samples * 100:6.1f}%  {frame}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
