"""What a check returns, and the three ways to show a list of them: text table, JSON, DataFrame."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd

Level = Literal["ERROR", "WARN", "INFO"]


@dataclass(frozen=True)
class CheckResult:
    """One advisor check: `passed` is False when it found something; `details` say what and where.

    `skipped` marks a check that could not run here (e.g. it needs privileges); it does not fail.
    """

    name: str
    level: Level
    passed: bool
    details: list[str] = field(default_factory=list)
    skipped: bool = False

    @property
    def status(self) -> Literal["PASS", "FAIL", "SKIP"]:
        if self.skipped:
            return "SKIP"
        return "PASS" if self.passed else "FAIL"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "level": self.level,
            "status": self.status,
            "passed": self.passed,
            "skipped": self.skipped,
            "details": list(self.details),
        }


def all_passed(results: Sequence[CheckResult]) -> bool:
    return all(r.passed for r in results)


def format_table(results: Sequence[CheckResult]) -> str:
    """A fixed-width table: one row per check, further detail lines aligned under the first."""
    headers = ("CHECK", "LEVEL", "RESULT", "DETAIL")
    name_w = max([len(headers[0]), *(len(r.name) for r in results)])
    widths = (name_w, 5, 6)
    lines = [_row(widths, headers)]
    lines.append(_row(widths, ("-" * name_w, "-" * 5, "-" * 6, "-" * 6)))
    for r in results:
        details = r.details or [""]
        lines.append(_row(widths, (r.name, r.level, r.status, details[0])))
        lines += [_row(widths, ("", "", "", more)) for more in details[1:]]
    passed = sum(r.passed and not r.skipped for r in results)
    failed = sum(not r.passed for r in results)
    skipped = sum(r.skipped for r in results)
    lines.append("")
    lines.append(f"{passed} passed, {failed} failed, {skipped} skipped")
    return "\n".join(lines)


def _row(widths: tuple[int, int, int], cells: tuple[str, str, str, str]) -> str:
    name, level, status, detail = cells
    prefix = f"{name:<{widths[0]}}  {level:<{widths[1]}}  {status:<{widths[2]}}  "
    # A multi-line detail (e.g. a SQL error with DETAIL/HINT) stays aligned under its column.
    pad = "\n" + " " * len(prefix)
    return (prefix + pad.join(detail.splitlines() or [""])).rstrip()


def to_json(results: Sequence[CheckResult], **extra: Any) -> str:
    doc = {"passed": all_passed(results), **extra, "checks": [r.as_dict() for r in results]}
    return json.dumps(doc, indent=2)


def to_frame(results: Sequence[CheckResult]) -> pd.DataFrame:
    """One row per check for notebooks: details joined by newlines so a cell shows them all."""
    import pandas as pd  # noqa: PLC0415 - only notebooks need pandas here

    return pd.DataFrame(
        [
            {
                "check": r.name,
                "level": r.level,
                "result": r.status,
                "findings": 0 if r.passed else len(r.details),
                "details": "\n".join(r.details),
            }
            for r in results
        ],
        columns=["check", "level", "result", "findings", "details"],
    )
