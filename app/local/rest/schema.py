"""The REST stand-in's schema cache: per exposed schema, its tables, views, functions, computed
fields and relationships (`relations`, from foreign keys and views' lineage), read from
pg_catalog, plus the `pgrst.*` settings of the authenticator role.

Like PostgREST's schema cache, it is what identifiers in a request are checked against before any
SQL is built. It loads on the first request and reloads when a request names something it does
not know (tests create objects after the stack started), so no `NOTIFY pgrst` is needed. A
reload is six catalogue queries (~20 ms on the project schema); concurrent misses share one.
"""

from __future__ import annotations

import asyncio
import difflib
import time
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from app.local.rest.fuzzy import closest
from app.local.rest.lineage import target_columns
from app.local.rest.relations import ForeignKey, Relation, Relationship, computed, derive

# A column's default as PostgREST's schema cache reads it (a domain's, an identity's nextval).
_TABLES = """
select c.oid::int8, c.relname, c.relkind::text,
  coalesce((select json_agg(json_build_object(
      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod),
      'base', t.typname,
      'default', case
        when t.typbasetype != 0 and ad.adbin is null then pg_get_expr(t.typdefaultbin, 0)
        when a.attidentity = 'd' then (select format('nextval(%%L)', d.objid::regclass)
          from pg_depend d where d.classid = 'pg_class'::regclass and d.deptype = 'i'
            and d.refobjid = a.attrelid and d.refobjsubid = a.attnum limit 1)
        when a.attgenerated = 's' then null
        else pg_get_expr(ad.adbin, ad.adrelid) end) order by a.attnum)
    from pg_attribute a join pg_type t on t.oid = a.atttypid
    left join pg_attrdef ad on ad.adrelid = a.attrelid and ad.adnum = a.attnum
    where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped), '[]'::json)::text,
  coalesce((select array_agg(a.attname::text order by k.ord)
    from pg_constraint con
    cross join lateral unnest(con.conkey) with ordinality as k(attnum, ord)
    join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
    where con.conrelid = c.oid and con.contype = 'p'), '{}')
from pg_class c
where c.relnamespace = %(schema)s::regnamespace and c.relkind in ('r', 'v', 'm', 'f', 'p')
"""

_FUNCTIONS = """
select p.oid::int8, p.proname, p.provolatile::text, p.proretset, p.pronargdefaults,
  p.prorows = 1,
  format_type(p.prorettype, null), rt.typname, rt.typtype::text,
  coalesce((select json_agg(json_build_object(
      'name', coalesce(a.name, ''), 'mode', coalesce(a.mode, 'i'),
      'type', format_type(a.type, null)) order by a.ord)
    from unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                p.proargmodes::text[]) with ordinality as a(type, name, mode, ord)
    where a.type is not null), '[]'::json)::text,
  coalesce((select json_agg(json_build_object(
      'name', a.attname, 'type', format_type(a.atttypid, a.atttypmod), 'base', t.typname)
      order by a.attnum)
    from pg_attribute a join pg_type t on t.oid = a.atttypid
    where a.attrelid = rt.typrelid and a.attnum > 0 and not a.attisdropped), '[]'::json)::text
from pg_proc p join pg_type rt on rt.oid = p.prorettype
where p.pronamespace = %(schema)s::regnamespace and p.prokind = 'f'
"""

# Foreign keys anywhere (a view in the exposed schema may sit on a table outside it), with
# whether the key columns are exactly a primary key or unique constraint (one-to-one).
_FOREIGN_KEYS = """
select con.conname::text, con.conrelid::int8, con.confrelid::int8,
  array_agg(k.col::int order by k.ord), array_agg(a.attname::text order by k.ord),
  array_agg(k.ref::int order by k.ord), array_agg(f.attname::text order by k.ord),
  exists (select 1 from pg_constraint u
    where u.conrelid = con.conrelid and u.contype in ('p', 'u')
      and (select array_agg(x order by x) from unnest(u.conkey) x)
        = (select array_agg(y order by y) from unnest(con.conkey) y))
from pg_constraint con
cross join lateral unnest(con.conkey, con.confkey) with ordinality as k(col, ref, ord)
join pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.col
join pg_attribute f on f.attrelid = con.confrelid and f.attnum = k.ref
where con.contype = 'f' and con.conparentid = 0
group by con.oid, con.conname, con.conrelid, con.confrelid
"""

# The stored query of every user view, for its columns' lineage (`lineage`).
_VIEWS = """
select c.oid::int8, r.ev_action::text
from pg_class c join pg_rewrite r on r.ev_class = c.oid and r.rulename = '_RETURN'
where c.relkind in ('v', 'm')
  and c.relnamespace not in ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)
"""

_ROLE_SETTINGS = """
select r.rolname::text, s.setconfig
from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
order by s.setdatabase
"""

AUTHENTICATOR = "authenticator"
_UNNAMED_CALLABLE = ("bytea", "json", "jsonb", "text", "xml")
_TRUE = ("true", "on", "1")
MAX_ROWS = 1000  # Supabase's [api] max_rows default

# Role settings PostgREST applies per request (`SET LOCAL`) that a non-superuser may set.
APPLIED_ROLE_SETTINGS = frozenset(
    {"statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout"}
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type() text, e.g. "timestamp with time zone"
    base: str  # pg_type.typname, e.g. "tsvector"
    default: str | None = None  # the SQL of its default, from the catalogue


@dataclass(frozen=True)
class Table:
    name: str
    kind: str
    columns: dict[str, Column]
    primary_key: tuple[str, ...]
    oid: int = 0
    schema: str = "public"

    @property
    def is_view(self) -> bool:
        return self.kind in ("v", "m")

    @property
    def has_ctid(self) -> bool:
        """Only plain and partitioned tables have a ctid to limit a PATCH/DELETE by."""
        return self.kind in ("r", "p")


@dataclass(frozen=True)
class Argument:
    name: str
    type: str
    has_default: bool


@dataclass(frozen=True)
class Function:
    oid: int
    name: str
    volatility: str  # "v", "s" or "i"
    returns_set: bool
    return_type: str
    returns_void: bool
    inputs: tuple[Argument, ...]
    columns: dict[str, Column]  # of a composite/TABLE result; empty for scalars
    schema: str = "public"
    rows_one: bool = False  # `SETOF … ROWS 1`: PostgREST embeds it as one row, like a non-set

    @property
    def read_only(self) -> bool:
        return self.volatility in ("s", "i")

    @property
    def returns_composite(self) -> bool:
        return bool(self.columns)

    @property
    def callable(self) -> bool:
        """PostgREST's schema cache leaves out a function with more than one unnamed argument,
        or one that is not bytea, json, jsonb, text or xml (`funcsSqlQuery`): `/rpc` cannot
        call it (a computed field such as `f(table)` is still selected by name)."""
        unnamed = [a for a in self.inputs if not a.name]
        if not unnamed:
            return True
        return len(unnamed) == 1 and unnamed[0].type in _UNNAMED_CALLABLE

    @property
    def single_unnamed(self) -> Argument | None:
        """The argument of a function of one unnamed argument (called with the whole body)."""
        if len(self.inputs) == 1 and not self.inputs[0].name:
            return self.inputs[0]
        return None

    @property
    def single_unnamed_json(self) -> bool:
        return (
            len(self.inputs) == 1
            and not self.inputs[0].name
            and self.inputs[0].type in ("json", "jsonb")
        )

    def signature(self) -> str:
        args = ", ".join(f"{a.name} => {a.type}" for a in self.inputs)
        return f"{self.schema}.{self.name}({args})"


@dataclass
class Catalogue:
    tables: dict[str, Table] = field(default_factory=dict)
    functions: dict[str, list[Function]] = field(default_factory=dict)
    role_settings: dict[str, dict[str, str]] = field(default_factory=dict)
    relationships: dict[str, list[Relationship]] = field(default_factory=dict)
    schema: str = "public"
    config: dict[str, str] = field(default_factory=dict)  # `pgrst.*` settings of authenticator
    # table → {function: schema} for functions of one argument of the table's row type that
    # return one value (PostgREST's computed fields).
    computed: dict[str, dict[str, str]] = field(default_factory=dict)
    loaded_at: float = 0.0
    max_rows: int = MAX_ROWS  # `[api] max_rows`, which caps every level of a read

    @property
    def aggregates_enabled(self) -> bool:
        """`alter role authenticator set pgrst.db_aggregates_enabled = 'true'` (off by default)."""
        return self.config.get("pgrst.db_aggregates_enabled", "false").lower() in _TRUE

    @property
    def plan_enabled(self) -> bool:
        """`alter role authenticator set pgrst.db_plan_enabled = 'true'`: PostgREST reads its
        in-database config from the role (`db-config`, on in Supabase) as it reads the file."""
        return self.config.get("pgrst.db_plan_enabled", "false").lower() in _TRUE

    def table_hint(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, list(self.tables), n=1)
        return f"Perhaps you meant the table '{self.schema}.{close[0]}'" if close else None

    def function_hint(self, name: str) -> str | None:
        close = closest(name, self.functions)
        return f"Perhaps you meant to call the function {self.schema}.{close}" if close else None


async def load_catalogue(conn: AsyncConnection, schema: str = "public") -> Catalogue:
    """Read one schema's catalogue in one short read-only transaction (an unknown schema
    has no tables or functions)."""
    import orjson  # noqa: PLC0415 - local: only loading needs it

    cat = Catalogue(schema=schema, loaded_at=time.monotonic())
    exists = "select to_regnamespace(%(schema)s) is not null"
    async with conn.transaction():
        found = await (await conn.execute(exists, {"schema": schema})).fetchone()
        if not (found and found[0]):
            return cat
        params = {"schema": schema}
        for oid, name, kind, cols, pk in await (await conn.execute(_TABLES, params)).fetchall():
            columns = {
                c["name"]: Column(c["name"], c["type"], c["base"], c["default"])
                for c in orjson.loads(cols)
            }
            cat.tables[name] = Table(name, kind, columns, tuple(pk), oid, schema)
        fks = [
            ForeignKey(
                name,
                rel,
                frel,
                tuple(zip(cols, names, strict=True)),
                tuple(zip(fcols, fnames, strict=True)),
                o2o,
            )
            for name, rel, frel, cols, names, fcols, fnames, o2o in await (
                await conn.execute(_FOREIGN_KEYS)
            ).fetchall()
        ]
        views = {
            oid: target_columns(action)
            for oid, action in await (await conn.execute(_VIEWS)).fetchall()
        }
        every: list[Function] = []  # computed fields and relationships need no `/rpc` call
        for row in await (await conn.execute(_FUNCTIONS, params)).fetchall():
            oid, name, vol, retset, ndefaults, one_row, rettype, retbase, rettyptype, args, cols = (
                row
            )
            all_args = orjson.loads(args)
            inputs = [a for a in all_args if a["mode"] in ("i", "b", "v")]
            outputs = [a for a in all_args if a["mode"] in ("o", "b", "t")]
            first_default = len(inputs) - ndefaults
            columns = {
                c["name"]: Column(c["name"], c["type"], c["base"]) for c in orjson.loads(cols)
            }
            if outputs and (len(outputs) > 1 or any(a["mode"] == "t" for a in outputs)):
                columns = {a["name"]: Column(a["name"], a["type"], a["type"]) for a in outputs}
            if rettyptype != "c" and not (outputs and columns):
                columns = {}
            every.append(
                Function(
                    oid=oid,
                    name=name,
                    volatility=vol,
                    returns_set=retset,
                    return_type=rettype,
                    returns_void=retbase == "void",
                    inputs=tuple(
                        Argument(a["name"], a["type"], i >= first_default)
                        for i, a in enumerate(inputs)
                    ),
                    columns=columns,
                    schema=schema,
                    rows_one=retset and one_row,
                )
            )
        for role, config in await (await conn.execute(_ROLE_SETTINGS)).fetchall():
            for item in config or []:
                key, _, value = item.partition("=")
                if role == AUTHENTICATOR and key.startswith("pgrst."):
                    cat.config[key] = value
                if key in APPLIED_ROLE_SETTINGS:
                    cat.role_settings.setdefault(role, {})[key] = value
    for fn in every:
        if fn.callable:
            cat.functions.setdefault(fn.name, []).append(fn)
    for fn in every:
        if len(fn.inputs) != 1 or fn.returns_set or fn.returns_void or fn.returns_composite:
            continue
        arg = fn.inputs[0].type.removeprefix(f"{schema}.").strip('"')
        if arg in cat.tables:
            cat.computed.setdefault(arg, {})[fn.name] = fn.schema
    relations = {
        t.oid: Relation(t.oid, t.name, t.is_view, frozenset(t.primary_key))
        for t in cat.tables.values()
    }
    cat.relationships = derive(relations, fks, views)
    tables = {t.name: t.is_view for t in cat.tables.values()}
    for rel in computed(_row_functions(cat, every), tables):
        cat.relationships.setdefault(rel.table, []).append(rel)
    return cat


def _row_functions(
    cat: Catalogue, functions: list[Function]
) -> list[tuple[str, str, str, str, bool]]:
    """Functions of one table's row type that return another table's rows."""
    out = []
    for fn in functions:
        if len(fn.inputs) != 1:
            continue
        arg = fn.inputs[0].type.removeprefix(f"{cat.schema}.").strip('"')
        result = fn.return_type.removeprefix(f"{cat.schema}.").strip('"')
        if arg in cat.tables and result in cat.tables:
            out.append((fn.schema, fn.name, arg, result, fn.returns_set and not fn.rows_one))
    return out


class SchemaCache:
    """One catalogue per exposed schema of one database; concurrent misses share a reload."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._catalogues: dict[str, Catalogue] = {}
        self._stale: set[str] = set()
        self._lock = asyncio.Lock()

    async def get(self, conn: AsyncConnection, schema: str = "public") -> Catalogue:
        cat = self._catalogues.get(schema)
        if cat is None or schema in self._stale:
            since = 0.0 if cat is None else time.monotonic()
            return await self.reload(conn, since=since, schema=schema)
        return cat

    def invalidate(self) -> None:
        """PostgreSQL did not know a name the cache knew: reload before the next request."""
        self._stale.update(self._catalogues)

    async def reload(
        self, conn: AsyncConnection, *, since: float, schema: str = "public"
    ) -> Catalogue:
        """Reload unless another request already did after `since` (a monotonic time)."""
        async with self._lock:
            cat = self._catalogues.get(schema)
            if cat is not None and cat.loaded_at > since:
                return cat
            self._stale.discard(schema)
            cat = await load_catalogue(conn, schema)
            cat.max_rows = self.max_rows
            self._catalogues[schema] = cat
            return cat
