"""The query AST → `psycopg.sql.Composed`, checked against the schema cache.

Every identifier is first looked up in the catalogue (unknown → PostgREST's error) and then quoted
with `sql.Identifier`; every value is a bound parameter. The only SQL text that is not a constant
of this package is a type name from `format_type()` in the catalogue (RPC argument types), never
anything from the request. Statements have PostgREST's shape: the rows in a `pgrst_source` CTE,
then one row with the total (when counted), the page size and the JSON body built by PostgreSQL.

`target` (the binder, what names resolve against, and column references), `projection` (select
lists), `filters` (WHERE), `order` (ORDER BY and paging), `statement` (the read over
`pgrst_source`). The grammar itself is parsed elsewhere (`syntax`, `select`, `query`).
"""
