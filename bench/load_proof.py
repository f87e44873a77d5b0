"""The load proof: conversations streamed through the full stack with clients that leave and
upstream faults and a worker killed mid-stream, then every usage row reconciled with what the
LLM stand-in billed.

Exit status 0 when nothing unexpected happened: every client saw a complete stream, the error
event its injected fault calls for, its own disconnect, or (a killed worker's turns) a stream
cut after its first token; exactly one usage row per billed upstream request; stored costs equal
the stand-in's billing wherever usage was reported; each killed turn one `abandoned` row, input
estimated and output as the service last reported it, priced at the reserved model's rates.
With `--token-lifetime`, every token expires while its answer streams: still no `abandoned` row
but the killed turns', and no finish left in the outbox.

Example:
    .venv/bin/python -m bench.load_proof --json .local/bench/load_proof.json
    .venv/bin/python -m bench.load_proof --count 100 --seconds 15   # a quick one
    .venv/bin/python -m bench.load_proof --count 200 --seconds 30 --token-lifetime 3
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bench.cli import proof_main


def main(argv: Sequence[str] | None = None) -> int:
    return proof_main(argv, doc=__doc__ or "")


if __name__ == "__main__":
    sys.exit(main())
