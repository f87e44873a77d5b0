"""The stream, directly against the LLM stand-in and through the service, side by side.

Starts the LLM stand-in, the local stack (`chat-stream dev`) and the service (`chat-stream serve`,
one worker then two) as separate processes on 127.0.0.1, streams at several concurrencies, and
prints a table of what the service adds (time to first token, total time, CPU per 1,000 relayed
tokens, memory per open stream). Everything is stopped on exit, Ctrl-C included.

Example:
    .venv/bin/python -m bench.stream --quick
    .venv/bin/python -m bench.stream --json .local/bench/stream.json
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.cli import main as bench_main


def main(argv: Sequence[str] | None = None) -> int:
    return bench_main(argv, doc=__doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
