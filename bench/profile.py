"""Read py-spy's collapsed stacks (`--format raw`): where the service's time goes.

.venv/bin/python -m bench.profile .local/bench/service.stacks --top 25
.venv/bin/python -m bench.profile .local/bench/service.stacks --shares

`--shares` puts each busy sample in the first of `SHARES`' rows one of its frames matches (the
rows of the issue-25 profile tables in docs/benchmarks.md, in that order).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

# (row, frame substrings): a sample goes to the first row one of whose substrings is in a frame.
SHARES: list[tuple[str, tuple[str, ...]]] = [
    (
        "checkpoint / stop poll / the lease",
        ("_checkpoint (app/chat", "_poll_once (app/chat", "ChatStore.signals", "renew"),
    ),
    ("finish (storing the turn)", ("ChatStore.finish", "persist_shielded", "build_record")),
    ("begin + token check", ("ChatService.begin", "ChatStore.begin", "app/auth/")),
    (
        "upstream open (connect, request)",
        ("open_event_stream", "handle_async_request", "ClientSession._request", "aiohappyeyeballs"),
    ),
    ("upstream read + parse", ("app/llm/", "aiohttp/streams.py", "aiohttp/client_proto.py")),
    ("event encode (app/api/sse.py)", ("app/api/sse.py",)),
    (
        "client write (emit, writer, ASGI send)",
        ("app/api/stream.py", "RequestResponseCycle.send", "produce.<locals>.deliver"),
    ),
    ("feed / turn glue per token", ("app/chat/",)),
    ("ASGI stack per request", ("starlette", "fastapi", "app/api/", "httptools_impl", "app/ops/")),
    # Only the loop's own frames: uvloop's C code (socket I/O, callbacks) under `Runner.run`.
    ("the event loop itself", ("asyncio/", "uvloop", "uvicorn/")),
]


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


def shares(stacks: Counter[tuple[str, ...]]) -> list[tuple[str, int]]:
    """Samples per `SHARES` row (and "other"), in the rows' order."""
    counts: Counter[str] = Counter()
    for stack, count in stacks.items():
        row = next(
            (name for name, marks in SHARES if any(m in f for f in stack for m in marks)), "other"
        )
        counts[row] += count
    return [(name, counts[name]) for name, _ in SHARES] + [("other", counts["other"])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0], epilog=__doc__
    )
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--shares", action="store_true", help="the issue-25 table's rows")
    args = parser.parse_args(argv)
    stacks = busy(parse(args.stacks.read_text().splitlines()))
    samples = sum(stacks.values())
    if args.shares:
        sys.stdout.write(f"--- shares ({samples} busy samples)\n")
        for name, count in shares(stacks):
            sys.stdout.write(f"{count / samples * 100:6.1f}%  {name}\n")
        return 0
    own, total = top(stacks, args.top)
    for title, rows in (("self", own), ("total", total)):
        sys.stdout.write(f"--- {title} ({samples} busy samples)\n")
        for frame, count in rows:
            sys.stdout.write(f"{count / samples * 100:6.1f}%  {frame}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
