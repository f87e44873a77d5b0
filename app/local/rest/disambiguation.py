"""Which relationship an embed means (`rel`, `rel!hint`), with PostgREST's disambiguation rules
(`findRel`) and errors: PGRST200 (none, with a close-name suggestion), PGRST201 (several)."""

from __future__ import annotations

import difflib

from app.local.rest.errors import RestError
from app.local.rest.relations import Relationship


def _single(cols: tuple[tuple[str, str], ...], which: int) -> str | None:
    return cols[0][which] if len(cols) == 1 else None


def _matches(rel: Relationship, target: str, hint: str | None) -> bool:
    """PostgREST's `findRel` filter for one candidate."""
    if rel.function is not None:  # computed: by the function's name, hints do not apply
        return target == rel.function[1]
    origin_col = _single(rel.columns, 0) if rel.junction is None else None
    target_col = _single(rel.columns, 1) if rel.junction is None else None
    is_fk = rel.junction is None
    if rel.is_self:
        if hint is None:
            return (target == rel.foreign_table and rel.cardinality == "o2m") or (
                target == origin_col and rel.cardinality == "m2o"
            )
        return target == rel.foreign_table and rel.cardinality == "o2m" and hint == target_col
    if hint is None:
        return target == rel.foreign_table or (
            not rel.foreign_is_view and is_fk and target in (rel.constraint, origin_col)
        )
    if target != rel.foreign_table:
        return False
    if rel.junction is not None:
        return hint == rel.junction.table
    return hint in (rel.constraint, origin_col, target_col)


def find(
    relationships: dict[str, list[Relationship]],
    schema: str,
    origin: str,
    target: str,
    hint: str | None,
) -> Relationship:
    candidates = [r for r in relationships.get(origin, []) if _matches(r, target, hint)]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise not_found(relationships, schema, origin, target, hint)
    raise _ambiguous(candidates, origin, target)


def _ambiguous(candidates: list[Relationship], origin: str, target: str) -> RestError:
    details = [r.described() for r in candidates]
    return RestError(
        300,
        "PGRST201",
        f"Could not embed because more than one relationship was found for '{origin}' and "
        f"'{target}'",
        details,
        f"Try changing '{target}' to one of the following: "
        + ", ".join(r.hint() for r in candidates)
        + ". Find the desired relationship in the 'details' key.",
    )


def not_found(
    relationships: dict[str, list[Relationship]],
    schema: str,
    origin: str,
    target: str,
    hint: str | None,
) -> RestError:
    using = f"' using the hint '{hint}" if hint else ""
    return RestError(
        400,
        "PGRST200",
        f"Could not find a relationship between '{origin}' and '{target}' in the schema cache",
        f"Searched for a foreign key relationship between '{origin}' and '{target}{using}' "
        f"in the schema '{schema}', but no matches were found.",
        _suggestion(relationships, origin, target),
    )


def _suggestion(
    relationships: dict[str, list[Relationship]], origin: str, target: str
) -> str | None:
    """`noRelBetweenHint`: a close parent name if the parent has no relationships, else a
    close child name (but none when the child is itself a related table)."""
    if origin in relationships:
        children = sorted({r.foreign_table for r in relationships[origin]})
        if target in children:
            return None
        close = difflib.get_close_matches(target, children, n=1, cutoff=0.5)
        return f"Perhaps you meant '{close[0]}' instead of '{target}'." if close else None
    close = difflib.get_close_matches(origin, sorted(relationships), n=1, cutoff=0.5)
    return f"Perhaps you meant '{close[0]}' instead of '{origin}'." if close else None
