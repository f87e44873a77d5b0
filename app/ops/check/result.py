"""One check's outcome: a name, ok/fail/skip, and a line that says why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "fail", "skip"]


@dataclass(frozen=True)
class Result:
    name: str
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.status:<4} {self.name}: {self.detail}"
