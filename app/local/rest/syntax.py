"""The small AST the PostgREST query-string grammar parses into (`rest_query`).

Names stay names and values stay text: `rest_sql` checks the names against the catalogue and
binds the values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class JsonStep:
    arrow: Literal["->", "->>"]
    key: str


@dataclass(frozen=True)
class Field:
    name: str
    json_path: tuple[JsonStep, ...] = ()

    @property
    def output_name(self) -> str:
        """The key PostgREST gives the value in the result object."""
        return self.json_path[-1].key if self.json_path else self.name


@dataclass(frozen=True)
class SelectField:
    field: Field
    alias: str | None = None
    cast: str | None = None


@dataclass(frozen=True)
class SelectStar:
    pass


@dataclass(frozen=True)
class SelectEmbed:
    name: str
    alias: str | None = None


SelectItem = SelectField | SelectStar | SelectEmbed


@dataclass(frozen=True)
class Filter:
    field: Field
    op: str
    value: str | tuple[str, ...]
    negate: bool = False
    modifier: str | None = None  # "any"/"all" for comparisons, the language for fts


@dataclass(frozen=True)
class Logic:
    op: Literal["and", "or"]
    children: tuple[Condition, ...]
    negate: bool = False


Condition = Filter | Logic


@dataclass(frozen=True)
class OrderTerm:
    field: Field
    desc: bool = False
    nulls: Literal["first", "last"] | None = None


@dataclass(frozen=True)
class ApiQuery:
    select: tuple[SelectItem, ...] = (SelectStar(),)
    where: tuple[Condition, ...] = ()
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int | None = None
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
