"""The small AST the PostgREST query-string grammar parses into (`query`).

Names stay names and values stay text: `sql` checks the names against the catalogue and
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


AGGREGATES = ("sum", "avg", "count", "max", "min")


@dataclass(frozen=True)
class SelectField:
    field: Field
    alias: str | None = None
    cast: str | None = None
    aggregate: str | None = None  # one of AGGREGATES; `count()` is Field("*") with "count"
    agg_cast: str | None = None


@dataclass(frozen=True)
class SelectStar:
    pass


@dataclass(frozen=True)
class SelectEmbed:
    """`alias:name!hint!inner(items)` or `...name!hint(items)` (a spread has no alias)."""

    name: str
    alias: str | None = None
    hint: str | None = None
    join: Literal["inner", "left"] | None = None
    spread: bool = False
    items: tuple[SelectItem, ...] = ()

    @property
    def label(self) -> str:
        """The key of the embedded value, and the name filters/orders use for it."""
        return self.alias or self.name


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
    relation: str | None = None  # `order=users(name)`: a column of a to-one embed


EmbedPath = tuple[str, ...]


@dataclass(frozen=True)
class EmbedParams:
    """Filters, logic trees, order and range given for one embedded resource
    (`messages.status=eq.x`, `messages.order=…`, `messages.limit=1`)."""

    where: tuple[Condition, ...] = ()
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int | None = None


@dataclass(frozen=True)
class ApiQuery:
    select: tuple[SelectItem, ...] = (SelectStar(),)
    where: tuple[Condition, ...] = ()
    order: tuple[OrderTerm, ...] = ()
    limit: int | None = None
    offset: int | None = None
    columns: tuple[str, ...] | None = None
    on_conflict: tuple[str, ...] | None = None
    embedded: tuple[tuple[EmbedPath, EmbedParams], ...] = ()
