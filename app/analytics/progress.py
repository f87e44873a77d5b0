"""Progress bars for long work (seeding, copying, reports): counts, rate and ETA on stderr.

tqdm draws only on a terminal: `disable=None` turns a bar off when stderr is not a TTY (CI,
pipes, notebooks run by papermill), so logs stay clean; `quiet=True` turns it off everywhere.
"""

from __future__ import annotations

import sys

from tqdm import tqdm


def progress_bar(
    total: int | None, desc: str, *, unit: str = "it", quiet: bool = False
) -> tqdm[None]:
    """A bar on stderr, silent when `quiet` or when stderr is not a terminal."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit == "row",
        file=sys.stderr,
        disable=True if quiet else None,
        dynamic_ncols=True,
        leave=True,
    )
