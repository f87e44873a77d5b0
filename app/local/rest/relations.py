"""Relationships between the exposed relations, derived from foreign keys as PostgREST does.

From every foreign key come a many-to-one (or one-to-one, when the key columns are also a
primary key or unique constraint) and its inverse one-to-many (one-to-one); views inherit the
keys of the base-table columns they expose (`lineage`); a table whose primary key holds
the columns of two foreign keys is a junction, giving a many-to-many between the two tables it
points to. Which one an embed means is chosen in `disambiguation`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from app.local.rest.lineage import TargetColumn

Cardinality = Literal["m2o", "o2m", "o2o", "m2m"]


@dataclass(frozen=True)
class ForeignKey:
    """One FK constraint, columns as (attnum, name) pairs in key order."""

    name: str
    table: int  # pg_class oid of the referencing relation
    foreign_table: int
    columns: tuple[tuple[int, str], ...]
    foreign_columns: tuple[tuple[int, str], ...]
    one_to_one: bool


@dataclass(frozen=True)
class Relation:
    """An exposed table or view as the relationship builder sees it."""

    oid: int
    name: str
    is_view: bool
    primary_key: frozenset[str]


@dataclass(frozen=True)
class Junction:
    table: str
    constraint1: str  # the junction's key to the origin
    constraint2: str  # the junction's key to the target
    source: tuple[tuple[str, str], ...]  # (origin column, junction column)
    target: tuple[tuple[str, str], ...]  # (target column, junction column)


@dataclass(frozen=True)
class Relationship:
    table: str
    foreign_table: str
    cardinality: Cardinality
    constraint: str
    columns: tuple[tuple[str, str], ...]  # (origin column, target column); empty for m2m
    is_self: bool
    table_is_view: bool
    foreign_is_view: bool
    junction: Junction | None = None
    function: tuple[str, str] | None = None  # a computed relationship: (schema, name)

    @property
    def to_one(self) -> bool:
        return self.cardinality in ("m2o", "o2o")

    def described(self) -> dict[str, str]:
        """One entry of PGRST201's `details`, worded like PostgREST's `compressedRel`."""
        if self.function is not None:
            return {}
        cardinality = {
            "m2o": "many-to-one",
            "o2m": "one-to-many",
            "o2o": "one-to-one",
            "m2m": "many-to-many",
        }[self.cardinality]
        if self.junction is not None:
            j = self.junction
            rel = (
                f"{j.table} using {j.constraint1}{_cols(c for _, c in j.source)}"
                f" and {j.constraint2}{_cols(c for _, c in j.target)}"
            )
        else:
            rel = (
                f"{self.constraint} using {self.table}{_cols(c for c, _ in self.columns)}"
                f" and {self.foreign_table}{_cols(c for _, c in self.columns)}"
            )
        return {
            "cardinality": cardinality,
            "embedding": f"{self.table} with {self.foreign_table}",
            "relationship": rel,
        }

    def hint(self) -> str:
        name = self.junction.table if self.junction is not None else self.constraint
        return f"'{self.foreign_table}!{name}'"


def _cols(names: Iterable[str]) -> str:
    return "(" + ", ".join(names) + ")"


def derive(
    relations: dict[int, Relation],
    foreign_keys: list[ForeignKey],
    views: dict[int, list[TargetColumn]],
) -> dict[str, list[Relationship]]:
    """All relationships among `relations` (the exposed schema's), keyed by origin name."""
    lineage = _lineage(views)
    direct: list[Relationship] = []
    for fk in foreign_keys:
        card: Cardinality = "o2o" if fk.one_to_one else "m2o"
        pairs = tuple((c[1], f[1]) for c, f in zip(fk.columns, fk.foreign_columns, strict=True))
        origin, target = relations.get(fk.table), relations.get(fk.foreign_table)
        if origin is not None and target is not None:
            direct.append(
                Relationship(
                    origin.name,
                    target.name,
                    card,
                    fk.name,
                    pairs,
                    fk.table == fk.foreign_table,
                    origin.is_view,
                    target.is_view,
                )
            )
        # Views exposing every column of the key (or of the referenced key).
        from_views = _views_covering(lineage, relations, fk.table, [a for a, _ in fk.columns])
        to_views = _views_covering(
            lineage, relations, fk.foreign_table, [a for a, _ in fk.foreign_columns]
        )
        fcols = [f[1] for f in fk.foreign_columns]
        cols = [c[1] for c in fk.columns]
        for view, vcols in from_views:
            if target is not None:
                direct.append(
                    Relationship(
                        view.name,
                        target.name,
                        card,
                        fk.name,
                        tuple(zip(vcols, fcols, strict=True)),
                        False,
                        True,
                        target.is_view,
                    )
                )
        for view, vcols in to_views:
            if origin is not None:
                direct.append(
                    Relationship(
                        origin.name,
                        view.name,
                        card,
                        fk.name,
                        tuple(zip(cols, vcols, strict=True)),
                        False,
                        origin.is_view,
                        True,
                    )
                )
        for (v1, c1), (v2, c2) in itertools.product(from_views, to_views):
            direct.append(
                Relationship(
                    v1.name,
                    v2.name,
                    card,
                    fk.name,
                    tuple(zip(c1, c2, strict=True)),
                    v1.name == v2.name,
                    True,
                    True,
                )
            )
    by_name = {r.name: r for r in relations.values()}
    m2m = _many_to_many(direct, by_name)
    inverse = [
        Relationship(
            r.foreign_table,
            r.table,
            "o2m" if r.cardinality == "m2o" else "o2o",
            r.constraint,
            tuple((b, a) for a, b in r.columns),
            r.is_self,
            r.foreign_is_view,
            r.table_is_view,
        )
        for r in direct
    ]
    out: dict[str, list[Relationship]] = {}
    for rel in [*direct, *m2m, *inverse]:
        out.setdefault(rel.table, []).append(rel)
    return out


def computed(
    functions: Iterable[tuple[str, str, str, str, bool]], tables: dict[str, bool]
) -> list[Relationship]:
    """Computed relationships: `fn(origin) returns [setof] target` for exposed tables (a set is
    to-many, a single row to-one). `functions`: (schema, name, argument table, result table,
    returns set); `tables`: name → is a view."""
    return [
        Relationship(
            origin,
            target,
            "o2m" if returns_set else "m2o",
            name,
            (),
            origin == target,
            tables[origin],
            tables[target],
            function=(schema, name),
        )
        for schema, name, origin, target, returns_set in functions
        if origin in tables and target in tables
    ]


def _lineage(views: dict[int, list[TargetColumn]]) -> dict[int, list[tuple[str, int, int]]]:
    """view oid → (view column, base table oid, base attnum), following views over views."""
    out: dict[int, list[tuple[str, int, int]]] = {}
    for view, columns in views.items():
        resolved: list[tuple[str, int, int]] = []
        for col in columns:
            table, attnum, seen = col.origin_table, col.origin_column, {view}
            while table in views and table not in seen:
                seen.add(table)
                inner = views[table]
                if not 0 < attnum <= len(inner):
                    table = 0
                    break
                origin = inner[attnum - 1]
                table, attnum = origin.origin_table, origin.origin_column
            if table and attnum and table not in views:
                resolved.append((col.name, table, attnum))
        out[view] = resolved
    return out


def _views_covering(
    lineage: dict[int, list[tuple[str, int, int]]],
    relations: dict[int, Relation],
    table: int,
    attnums: list[int],
) -> list[tuple[Relation, tuple[str, ...]]]:
    """Exposed views with a column for every one of `attnums` of `table` (all combinations
    when a view repeats a column)."""
    found: list[tuple[Relation, tuple[str, ...]]] = []
    for view_oid, cols in lineage.items():
        view = relations.get(view_oid)
        if view is None:
            continue
        options = [
            [name for name, t, a in cols if t == table and a == attnum] for attnum in attnums
        ]
        if all(options):
            found.extend((view, combo) for combo in itertools.product(*options))
    return found


def _many_to_many(direct: list[Relationship], by_name: dict[str, Relation]) -> list[Relationship]:
    out: list[Relationship] = []
    m2o = [r for r in direct if r.cardinality in ("m2o", "o2o") and not r.table_is_view]
    for r1, r2 in itertools.permutations(m2o, 2):
        if r1.table != r2.table or r1.constraint == r2.constraint:
            continue
        junction = by_name.get(r1.table)
        if junction is None:
            continue
        used = {c for c, _ in r1.columns} | {c for c, _ in r2.columns}
        if not used <= junction.primary_key:
            continue
        out.append(
            Relationship(
                r1.foreign_table,
                r2.foreign_table,
                "m2m",
                r1.constraint,
                (),
                r1.foreign_table == r2.foreign_table,
                r1.foreign_is_view,
                r2.foreign_is_view,
                Junction(
                    junction.name,
                    r1.constraint,
                    r2.constraint,
                    tuple((t, j) for j, t in r1.columns),
                    tuple((t, j) for j, t in r2.columns),
                ),
            )
        )
    return out
