-- A daily rollup of usage_logs, kept current in the transaction that stores usage (issue 12).
--
-- public.usage_daily holds one row per (user, UTC day, provider, model, status) with the
-- request count, every kind of token, the estimated-request count and the exact cost (sums of
-- numeric(14,8) stay exact in numeric). Analysts read it instead of scanning every usage row:
-- a month of 10M usage rows is a few hundred thousand rollup rows.
--
-- Kept current by statement-level triggers on public.usage_logs with transition tables, so one
-- INSERT ... SELECT / COPY of a million rows is one grouped upsert, and a single-row insert is a
-- one-row upsert:
-- * AFTER INSERT: add the new rows, grouped, with INSERT ... ON CONFLICT DO UPDATE (concurrent
--   inserts of the same key serialise on the rollup row, increments commute; keys are upserted in
--   key order so two multi-key statements cannot deadlock on each other).
-- * AFTER DELETE (service role, `on delete cascade` from users): subtract, drop emptied rows.
-- * AFTER UPDATE: subtract the old rows, add the new ones (a status change moves the row).
-- * AFTER TRUNCATE: empty the rollup.
-- All of them are ENABLE ALWAYS: they also fire under session_replication_role = replica (the
-- seeder copies in replica mode to skip foreign-key triggers). Whoever inserts (the service's
-- SECURITY DEFINER functions, the service role, postgres), the rollup moves in the same
-- transaction. The trigger functions are SECURITY DEFINER (owner postgres) with an empty
-- search_path: users cannot write the rollup themselves.
--
-- Access: RLS on, "read own" for authenticated (as usage_logs); service_role reads everything;
-- nobody but the trigger functions writes. No CHECK on status: usage_logs owns that rule.
--
-- Analyst functions: usage_per_user, usage_per_day_model and usage_user_days now read the
-- rollup for the whole UTC days inside the window and usage_logs only for the partial days at
-- its edges (a window from 10:00 reads that day's rows raw). They keep their arguments and gain
-- `p_model` (null: every model). New: usage_per_day_status (spend by outcome) and user_by_email.
-- Per-request and per-conversation questions (cost_per_conversation, conversation_cost_summary:
-- percentiles) stay on raw rows; they gain `p_model` as well.

create table public.usage_daily (
  user_id uuid not null,
  day date not null,
  provider text not null,
  model text not null,
  status text not null,
  requests bigint not null,
  tokens_in bigint not null,
  tokens_out bigint not null,
  cache_read_tokens bigint not null,
  cache_write_tokens bigint not null,
  cost_usd numeric not null,
  estimated_requests bigint not null,
  first_at timestamptz not null,
  last_at timestamptz not null,
  constraint usage_daily_pkey primary key (user_id, day, provider, model, status)
);
comment on table public.usage_daily is
  'Daily rollup of usage_logs per user, UTC day, provider, model and status; written only by '
  'the usage_logs triggers (same transaction). Reconcile: scripts/reconcile_usage.py.';
create index usage_daily_day_idx on public.usage_daily (day);

alter table public.usage_daily enable row level security;
create policy "usage_daily: read own" on public.usage_daily
  for select to authenticated
  using ((select auth.uid()) = user_id);
revoke all on public.usage_daily from public, anon, authenticated, service_role;
grant select on public.usage_daily to authenticated, service_role;

-- Trigger functions: the transition tables hold the statement's rows -----------------------
create function private.usage_daily_on_insert()
  returns trigger
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  insert into public.usage_daily as d (
    user_id, day, provider, model, status, requests, tokens_in, tokens_out,
    cache_read_tokens, cache_write_tokens, cost_usd, estimated_requests, first_at, last_at
  )
  select
    n.user_id, (n.created_at at time zone 'UTC')::date, n.provider, n.model, n.status,
    count(*), sum(n.tokens_in), sum(n.tokens_out), sum(n.cache_read_tokens),
    sum(n.cache_write_tokens), sum(n.cost_usd), count(*) filter (where n.estimated),
    min(n.created_at), max(n.created_at)
  from new_rows n
  group by 1, 2, 3, 4, 5
  order by 1, 2, 3, 4, 5
  on conflict (user_id, day, provider, model, status) do update set
    requests = d.requests + excluded.requests,
    tokens_in = d.tokens_in + excluded.tokens_in,
    tokens_out = d.tokens_out + excluded.tokens_out,
    cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
    cost_usd = d.cost_usd + excluded.cost_usd,
    estimated_requests = d.estimated_requests + excluded.estimated_requests,
    first_at = least(d.first_at, excluded.first_at),
    last_at = greatest(d.last_at, excluded.last_at);
  return null;
end;
$$;

-- After a delete or an update the first and last request of a group are looked up again in the
-- raw rows (the (user_id, created_at) index, one UTC day). It runs as a statement of its own,
-- after the counts were adjusted: those row locks make concurrent inserters of the same groups
-- wait, and this statement's fresh snapshot (READ COMMITTED) sees everything they committed.
create function private.usage_daily_refresh_span(p_keys jsonb)
  returns void
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  update public.usage_daily d set
    first_at = span.first_at,
    last_at = span.last_at
  from (
    select k.user_id, k.day, k.provider, k.model, k.status,
      min(l.created_at) as first_at, max(l.created_at) as last_at
    from jsonb_to_recordset(p_keys)
      as k(user_id uuid, day date, provider text, model text, status text)
    join public.usage_logs l
      on l.user_id = k.user_id
      and l.created_at >= (k.day::timestamp at time zone 'UTC')
      and l.created_at < ((k.day + 1)::timestamp at time zone 'UTC')
      and l.provider = k.provider and l.model = k.model and l.status = k.status
    group by 1, 2, 3, 4, 5
  ) span
  where (d.user_id, d.day, d.provider, d.model, d.status)
      = (span.user_id, span.day, span.provider, span.model, span.status)
    and (d.first_at, d.last_at) is distinct from (span.first_at, span.last_at);
end;
$$;

create function private.usage_daily_on_delete()
  returns trigger
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  with gone as (
    select
      o.user_id, (o.created_at at time zone 'UTC')::date as day, o.provider, o.model, o.status,
      count(*) as requests, sum(o.tokens_in) as tokens_in, sum(o.tokens_out) as tokens_out,
      sum(o.cache_read_tokens) as cache_read_tokens,
      sum(o.cache_write_tokens) as cache_write_tokens, sum(o.cost_usd) as cost_usd,
      count(*) filter (where o.estimated) as estimated_requests
    from old_rows o
    group by 1, 2, 3, 4, 5
    order by 1, 2, 3, 4, 5
  )
  update public.usage_daily d set
    requests = d.requests - g.requests,
    tokens_in = d.tokens_in - g.tokens_in,
    tokens_out = d.tokens_out - g.tokens_out,
    cache_read_tokens = d.cache_read_tokens - g.cache_read_tokens,
    cache_write_tokens = d.cache_write_tokens - g.cache_write_tokens,
    cost_usd = d.cost_usd - g.cost_usd,
    estimated_requests = d.estimated_requests - g.estimated_requests
  from gone g
  where (d.user_id, d.day, d.provider, d.model, d.status)
      = (g.user_id, g.day, g.provider, g.model, g.status);
  delete from public.usage_daily d
  where d.requests = 0
    and (d.user_id, d.day) in (
      select o.user_id, (o.created_at at time zone 'UTC')::date from old_rows o
    );
  perform private.usage_daily_refresh_span((
    select jsonb_agg(distinct jsonb_build_object(
      'user_id', o.user_id, 'day', (o.created_at at time zone 'UTC')::date,
      'provider', o.provider, 'model', o.model, 'status', o.status))
    from old_rows o
  ));
  return null;
end;
$$;

-- UPDATE: the old rows leave their group, the new rows join theirs.
create function private.usage_daily_on_update()
  returns trigger
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  with moved as (
    select
      r.user_id, r.day, r.provider, r.model, r.status, sum(r.requests) as requests,
      sum(r.tokens_in) as tokens_in, sum(r.tokens_out) as tokens_out,
      sum(r.cache_read_tokens) as cache_read_tokens,
      sum(r.cache_write_tokens) as cache_write_tokens, sum(r.cost_usd) as cost_usd,
      sum(r.estimated_requests) as estimated_requests, min(r.created_at) as first_at,
      max(r.created_at) as last_at
    from (
      select
        n.user_id, (n.created_at at time zone 'UTC')::date as day, n.provider, n.model,
        n.status, 1 as requests, n.tokens_in, n.tokens_out, n.cache_read_tokens,
        n.cache_write_tokens, n.cost_usd, n.estimated::integer as estimated_requests,
        n.created_at
      from new_rows n
      union all
      select
        o.user_id, (o.created_at at time zone 'UTC')::date, o.provider, o.model, o.status, -1,
        -o.tokens_in, -o.tokens_out, -o.cache_read_tokens, -o.cache_write_tokens, -o.cost_usd,
        -(o.estimated::integer), null::timestamptz
      from old_rows o
    ) r
    group by 1, 2, 3, 4, 5
    order by 1, 2, 3, 4, 5
  )
  insert into public.usage_daily as d (
    user_id, day, provider, model, status, requests, tokens_in, tokens_out,
    cache_read_tokens, cache_write_tokens, cost_usd, estimated_requests, first_at, last_at
  )
  select
    m.user_id, m.day, m.provider, m.model, m.status, m.requests, m.tokens_in, m.tokens_out,
    m.cache_read_tokens, m.cache_write_tokens, m.cost_usd, m.estimated_requests,
    -- a group only left by rows keeps its span until the refresh below
    coalesce(m.first_at, 'infinity'), coalesce(m.last_at, '-infinity')
  from moved m
  order by 1, 2, 3, 4, 5
  on conflict (user_id, day, provider, model, status) do update set
    requests = d.requests + excluded.requests,
    tokens_in = d.tokens_in + excluded.tokens_in,
    tokens_out = d.tokens_out + excluded.tokens_out,
    cache_read_tokens = d.cache_read_tokens + excluded.cache_read_tokens,
    cache_write_tokens = d.cache_write_tokens + excluded.cache_write_tokens,
    cost_usd = d.cost_usd + excluded.cost_usd,
    estimated_requests = d.estimated_requests + excluded.estimated_requests,
    first_at = least(d.first_at, excluded.first_at),
    last_at = greatest(d.last_at, excluded.last_at);
  delete from public.usage_daily d
  where d.requests = 0
    and (d.user_id, d.day) in (
      select o.user_id, (o.created_at at time zone 'UTC')::date from old_rows o
    );
  perform private.usage_daily_refresh_span((
    select jsonb_agg(distinct jsonb_build_object(
      'user_id', r.user_id, 'day', (r.created_at at time zone 'UTC')::date,
      'provider', r.provider, 'model', r.model, 'status', r.status))
    from (select * from old_rows union all select * from new_rows) r
  ));
  return null;
end;
$$;

create function private.usage_daily_on_truncate()
  returns trigger
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  delete from public.usage_daily;
  return null;
end;
$$;

revoke all on function
  private.usage_daily_refresh_span(jsonb),
  private.usage_daily_on_insert(), private.usage_daily_on_delete(),
  private.usage_daily_on_update(), private.usage_daily_on_truncate()
  from public, anon, authenticated, service_role;

create trigger usage_logs_rollup_insert
  after insert on public.usage_logs
  referencing new table as new_rows
  for each statement execute function private.usage_daily_on_insert();
create trigger usage_logs_rollup_delete
  after delete on public.usage_logs
  referencing old table as old_rows
  for each statement execute function private.usage_daily_on_delete();
create trigger usage_logs_rollup_update
  after update on public.usage_logs
  referencing old table as old_rows new table as new_rows
  for each statement execute function private.usage_daily_on_update();
create trigger usage_logs_rollup_truncate
  after truncate on public.usage_logs
  for each statement execute function private.usage_daily_on_truncate();
alter table public.usage_logs enable always trigger usage_logs_rollup_insert;
alter table public.usage_logs enable always trigger usage_logs_rollup_delete;
alter table public.usage_logs enable always trigger usage_logs_rollup_update;
alter table public.usage_logs enable always trigger usage_logs_rollup_truncate;

-- Backfill: the rows stored before this migration (locked so none slips in between) -------------
-- The Supabase CLI runs a file as one implicit transaction, where a top-level LOCK TABLE is refused
-- (25P01): the lock is taken inside a DO block, held to the end of the migration's transaction under
-- both appliers. (The CREATE TRIGGERs above already hold the same lock.) Writers of usage_logs wait;
-- the backfill's snapshot, taken after the lock was granted, sees every row committed before it.
do $$
begin
  lock table public.usage_logs in share row exclusive mode;
end
$$;
insert into public.usage_daily (
  user_id, day, provider, model, status, requests, tokens_in, tokens_out,
  cache_read_tokens, cache_write_tokens, cost_usd, estimated_requests, first_at, last_at
)
select
  l.user_id, (l.created_at at time zone 'UTC')::date, l.provider, l.model, l.status,
  count(*), sum(l.tokens_in), sum(l.tokens_out), sum(l.cache_read_tokens),
  sum(l.cache_write_tokens), sum(l.cost_usd), count(*) filter (where l.estimated),
  min(l.created_at), max(l.created_at)
from public.usage_logs l
group by 1, 2, 3, 4, 5;

-- The window split into whole UTC days (rollup) and the partial days at its edges (raw rows) ----
-- usage_edges: the raw rows of [p_since, p_until) outside its whole UTC days (the cut first and
-- last day; the whole window when it holds no whole day), grouped in the rollup's shape. Each
-- analyst function reads the whole days straight from usage_daily (so the planner can scan and
-- aggregate it in one pass) and adds these edge rows; usage_slices is that union on its own.
create function public.usage_edges(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    user_id uuid,
    day date,
    provider text,
    model text,
    status text,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    cost_usd numeric,
    estimated_requests bigint,
    first_at timestamptz,
    last_at timestamptz
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
declare
  -- The first and last whole UTC days inside [p_since, p_until); null bounds are open.
  v_first date := case when p_since is null then null
    else ((p_since at time zone 'UTC') + interval '1 day' - interval '1 microsecond')::date end;
  v_end date := case when p_until is null then null else (p_until at time zone 'UTC')::date end;
begin
  if v_first is not null and v_end is not null and v_first >= v_end then
    -- No whole day inside: everything is raw (a window of a few hours).
    return query
      select l.user_id, (l.created_at at time zone 'UTC')::date, l.provider, l.model, l.status,
        count(*), sum(l.tokens_in)::bigint, sum(l.tokens_out)::bigint,
        sum(l.cache_read_tokens)::bigint, sum(l.cache_write_tokens)::bigint, sum(l.cost_usd),
        count(*) filter (where l.estimated), min(l.created_at), max(l.created_at)
      from public.usage_logs l
      where l.created_at >= p_since and l.created_at < p_until
        and (p_user_id is null or l.user_id = p_user_id)
        and (p_model is null or l.model = p_model)
      group by 1, 2, 3, 4, 5;
    return;
  end if;
  return query
    select l.user_id, (l.created_at at time zone 'UTC')::date, l.provider, l.model, l.status,
      count(*), sum(l.tokens_in)::bigint, sum(l.tokens_out)::bigint,
      sum(l.cache_read_tokens)::bigint, sum(l.cache_write_tokens)::bigint, sum(l.cost_usd),
      count(*) filter (where l.estimated), min(l.created_at), max(l.created_at)
    from public.usage_logs l
    where (
        (v_first is not null and l.created_at >= p_since
          and l.created_at < (v_first::timestamp at time zone 'UTC'))
        or (v_end is not null and l.created_at >= (v_end::timestamp at time zone 'UTC')
          and l.created_at < p_until)
      )
      and (p_user_id is null or l.user_id = p_user_id)
      and (p_model is null or l.model = p_model)
    group by 1, 2, 3, 4, 5;
end;
$$;
comment on function public.usage_edges(timestamptz, timestamptz, uuid, text) is
  'Raw usage of [p_since, p_until) outside its whole UTC days, in the rollup''s shape; RLS '
  'applies.';

create function public.usage_slices(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    user_id uuid,
    day date,
    provider text,
    model text,
    status text,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    cost_usd numeric,
    estimated_requests bigint,
    first_at timestamptz,
    last_at timestamptz
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
      select d.user_id, d.day, d.provider, d.model, d.status, d.requests, d.tokens_in,
        d.tokens_out, d.cache_read_tokens, d.cache_write_tokens, d.cost_usd,
        d.estimated_requests, d.first_at, d.last_at
      from public.usage_daily d
      where (p_since is null or d.day >= ((p_since at time zone 'UTC') + interval '1 day'
          - interval '1 microsecond')::date)
        and (p_until is null or d.day < (p_until at time zone 'UTC')::date)
        and (p_user_id is null or d.user_id = p_user_id)
        and (p_model is null or d.model = p_model)
      union all
      select * from public.usage_edges(p_since, p_until, p_user_id, p_model);
end;
$$;
comment on function public.usage_slices(timestamptz, timestamptz, uuid, text) is
  'Usage in [p_since, p_until) in the rollup''s shape: whole UTC days from usage_daily, the '
  'partial days at the edges from usage_logs; RLS applies.';

-- The analyst functions, now on the rollup (same arguments, plus p_model) ----------------------
drop function public.usage_per_user(timestamptz, timestamptz, uuid);
create function public.usage_per_user(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    user_id uuid,
    email text,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    cost_usd numeric,
    partial_requests bigint,
    error_requests bigint,
    estimated_requests bigint,
    first_active timestamptz,
    last_active timestamptz
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select
      agg.user_id, u.email, agg.requests, agg.tokens_in, agg.tokens_out, agg.cache_read_tokens,
      agg.cache_write_tokens, agg.cost_usd, agg.partial_requests, agg.error_requests,
      agg.estimated_requests, agg.first_active, agg.last_active
    from (
      select
        s.user_id,
        sum(s.requests)::bigint as requests,
        sum(s.tokens_in)::bigint as tokens_in,
        sum(s.tokens_out)::bigint as tokens_out,
        sum(s.cache_read_tokens)::bigint as cache_read_tokens,
        sum(s.cache_write_tokens)::bigint as cache_write_tokens,
        sum(s.cost_usd) as cost_usd,
        coalesce(sum(s.requests) filter (where s.status = 'partial'), 0)::bigint
          as partial_requests,
        coalesce(sum(s.requests) filter (where s.status = 'error'), 0)::bigint as error_requests,
        sum(s.estimated_requests)::bigint as estimated_requests,
        min(s.first_at) as first_active,
        max(s.last_at) as last_active
      from (
      select d.user_id, d.day, d.provider, d.model, d.status, d.requests, d.tokens_in,
        d.tokens_out, d.cache_read_tokens, d.cache_write_tokens, d.cost_usd,
        d.estimated_requests, d.first_at, d.last_at
      from public.usage_daily d
      where (p_since is null or d.day >= ((p_since at time zone 'UTC') + interval '1 day'
          - interval '1 microsecond')::date)
        and (p_until is null or d.day < (p_until at time zone 'UTC')::date)
        and (p_user_id is null or d.user_id = p_user_id)
        and (p_model is null or d.model = p_model)
      union all
      select * from public.usage_edges(p_since, p_until, p_user_id, p_model)
    ) s
      group by s.user_id
    ) agg
    left join public.users u on u.id = agg.user_id;
end;
$$;

drop function public.usage_per_day_model(timestamptz, timestamptz, uuid);
create function public.usage_per_day_model(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    day date,
    provider text,
    model text,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    cost_usd numeric
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select s.day, s.provider, s.model, sum(s.requests)::bigint, sum(s.tokens_in)::bigint,
      sum(s.tokens_out)::bigint, sum(s.cache_read_tokens)::bigint,
      sum(s.cache_write_tokens)::bigint, sum(s.cost_usd)
    from (
      select d.user_id, d.day, d.provider, d.model, d.status, d.requests, d.tokens_in,
        d.tokens_out, d.cache_read_tokens, d.cache_write_tokens, d.cost_usd,
        d.estimated_requests, d.first_at, d.last_at
      from public.usage_daily d
      where (p_since is null or d.day >= ((p_since at time zone 'UTC') + interval '1 day'
          - interval '1 microsecond')::date)
        and (p_until is null or d.day < (p_until at time zone 'UTC')::date)
        and (p_user_id is null or d.user_id = p_user_id)
        and (p_model is null or d.model = p_model)
      union all
      select * from public.usage_edges(p_since, p_until, p_user_id, p_model)
    ) s
    group by 1, 2, 3;
end;
$$;

drop function public.usage_user_days(timestamptz, timestamptz, uuid);
create function public.usage_user_days(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    user_id uuid,
    day date,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cost_usd numeric
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select s.user_id, s.day, sum(s.requests)::bigint, sum(s.tokens_in)::bigint,
      sum(s.tokens_out)::bigint, sum(s.cost_usd)
    from (
      select d.user_id, d.day, d.provider, d.model, d.status, d.requests, d.tokens_in,
        d.tokens_out, d.cache_read_tokens, d.cache_write_tokens, d.cost_usd,
        d.estimated_requests, d.first_at, d.last_at
      from public.usage_daily d
      where (p_since is null or d.day >= ((p_since at time zone 'UTC') + interval '1 day'
          - interval '1 microsecond')::date)
        and (p_until is null or d.day < (p_until at time zone 'UTC')::date)
        and (p_user_id is null or d.user_id = p_user_id)
        and (p_model is null or d.model = p_model)
      union all
      select * from public.usage_edges(p_since, p_until, p_user_id, p_model)
    ) s
    group by 1, 2;
end;
$$;

-- Spend by outcome per day: completed, partial (client left), error, abandoned, ... -----------
create function public.usage_per_day_status(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    day date,
    status text,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cost_usd numeric,
    estimated_requests bigint
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select s.day, s.status, sum(s.requests)::bigint, sum(s.tokens_in)::bigint,
      sum(s.tokens_out)::bigint, sum(s.cost_usd), sum(s.estimated_requests)::bigint
    from public.usage_slices(p_since, p_until, p_user_id, p_model) s
    group by 1, 2;
end;
$$;

-- Per conversation (raw rows: per-conversation detail), now with p_model too -------------------
drop function public.cost_per_conversation(timestamptz, timestamptz, uuid, integer);
create function public.cost_per_conversation(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_limit integer default null,
  p_model text default null
)
  returns table (
    conversation_id uuid,
    user_id uuid,
    requests bigint,
    tokens_in bigint,
    tokens_out bigint,
    cache_read_tokens bigint,
    cache_write_tokens bigint,
    cost_usd numeric,
    first_at timestamptz,
    last_at timestamptz
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select
      l.conversation_id, l.user_id, count(*) as requests,
      coalesce(sum(l.tokens_in), 0)::bigint as tokens_in,
      coalesce(sum(l.tokens_out), 0)::bigint as tokens_out,
      coalesce(sum(l.cache_read_tokens), 0)::bigint as cache_read_tokens,
      coalesce(sum(l.cache_write_tokens), 0)::bigint as cache_write_tokens,
      coalesce(sum(l.cost_usd), 0) as cost_usd,
      min(l.created_at) as first_at,
      max(l.created_at) as last_at
    from public.usage_logs l
    where l.conversation_id is not null
      and l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
      and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
      and (p_user_id is null or l.user_id = p_user_id)
      and (p_model is null or l.model = p_model)
    group by l.conversation_id, l.user_id
    order by cost_usd desc, l.conversation_id
    limit p_limit;
end;
$$;

drop function public.conversation_cost_summary(timestamptz, timestamptz, uuid);
create function public.conversation_cost_summary(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null
)
  returns table (
    conversations bigint,
    requests bigint,
    cost_usd numeric,
    mean_usd numeric,
    p50_usd numeric,
    p90_usd numeric,
    p99_usd numeric,
    max_usd numeric
  )
  language plpgsql
  stable
  security invoker
  parallel safe
  set search_path = ''
as $$
#variable_conflict use_column
begin
  return query
    select
      count(*) as conversations,
      coalesce(sum(c.requests), 0)::bigint as requests,
      coalesce(sum(c.cost_usd), 0) as cost_usd,
      round(avg(c.cost_usd), 8) as mean_usd,
      percentile_disc(0.5) within group (order by c.cost_usd) as p50_usd,
      percentile_disc(0.9) within group (order by c.cost_usd) as p90_usd,
      percentile_disc(0.99) within group (order by c.cost_usd) as p99_usd,
      max(c.cost_usd) as max_usd
    from (
      select count(*) as requests, sum(l.cost_usd) as cost_usd
      from public.usage_logs l
      where l.conversation_id is not null
        and l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
        and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
        and (p_user_id is null or l.user_id = p_user_id)
        and (p_model is null or l.model = p_model)
      group by l.conversation_id
    ) c;
end;
$$;

-- A user by email (the report's --user takes an email or an id); RLS on users applies --------
create function public.user_by_email(p_email text)
  returns table (user_id uuid, email text)
  language sql
  stable
  security invoker
  set search_path = ''
as $$
  select u.id, u.email from public.users u where lower(u.email) = lower(p_email) order by u.id;
$$;

comment on function public.cost_per_conversation(timestamptz, timestamptz, uuid, integer, text)
  is 'Usage and USD cost per conversation in [p_since, p_until), most expensive first; RLS '
  'applies.';
comment on function public.conversation_cost_summary(timestamptz, timestamptz, uuid, text) is
  'Count, total, mean and percentiles of USD cost per conversation in [p_since, p_until).';
comment on function public.user_by_email(text) is
  'The user (id, email) with this email, case-insensitively; RLS applies.';

comment on function public.usage_per_user(timestamptz, timestamptz, uuid, text) is
  'Usage and USD cost per user in [p_since, p_until) (rollup + edge rows); RLS applies.';
comment on function public.usage_per_day_model(timestamptz, timestamptz, uuid, text) is
  'Usage and USD cost per UTC day, provider and model in [p_since, p_until); RLS applies.';
comment on function public.usage_user_days(timestamptz, timestamptz, uuid, text) is
  'Usage and USD cost per user and UTC day in [p_since, p_until); RLS applies.';
comment on function public.usage_per_day_status(timestamptz, timestamptz, uuid, text) is
  'Usage and USD cost per UTC day and outcome (status) in [p_since, p_until); RLS applies.';

revoke all on function
  public.usage_edges(timestamptz, timestamptz, uuid, text),
  public.cost_per_conversation(timestamptz, timestamptz, uuid, integer, text),
  public.conversation_cost_summary(timestamptz, timestamptz, uuid, text),
  public.user_by_email(text),
  public.usage_slices(timestamptz, timestamptz, uuid, text),
  public.usage_per_user(timestamptz, timestamptz, uuid, text),
  public.usage_per_day_model(timestamptz, timestamptz, uuid, text),
  public.usage_user_days(timestamptz, timestamptz, uuid, text),
  public.usage_per_day_status(timestamptz, timestamptz, uuid, text)
  from public, anon;
grant execute on function
  public.usage_edges(timestamptz, timestamptz, uuid, text),
  public.cost_per_conversation(timestamptz, timestamptz, uuid, integer, text),
  public.conversation_cost_summary(timestamptz, timestamptz, uuid, text),
  public.user_by_email(text),
  public.usage_slices(timestamptz, timestamptz, uuid, text),
  public.usage_per_user(timestamptz, timestamptz, uuid, text),
  public.usage_per_day_model(timestamptz, timestamptz, uuid, text),
  public.usage_user_days(timestamptz, timestamptz, uuid, text),
  public.usage_per_day_status(timestamptz, timestamptz, uuid, text)
  to authenticated, service_role;
