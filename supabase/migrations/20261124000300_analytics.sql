-- Server-side aggregation for cost analytics (DESIGN §9, issue 5).
--
-- Analysts (app.analytics, notebooks, scripts/cost_report.py) call these instead of pulling raw
-- usage rows: PostgreSQL groups millions of rows and returns one row per user, per day and model,
-- per conversation or per user-day. Through Supabase they are `POST /rest/v1/rpc/<name>`.
--
-- Rules:
-- * SECURITY INVOKER: the caller's RLS applies. An `authenticated` user sees only their own
--   usage (policy "usage_logs: read own"); `service_role` and `postgres` (BYPASSRLS) see all.
-- * STABLE, `set search_path = ''`, every name schema-qualified (advisor lint 0011).
-- * Windows are half-open `[p_since, p_until)`; null means unbounded. `p_user_id` narrows to
--   one user (null: everyone the caller may see). Days are UTC calendar days.
-- * Results are aggregates (a row per user, per user-day, per day and model...), small enough to
--   page through PostgREST's `max_rows`; conversations come as a top-N plus a one-row summary.
-- * Money stays `numeric` (sums of numeric(14,8) are exact); token sums are bigint.
-- * EXECUTE for `authenticated` and `service_role` only; `anon` and PUBLIC get nothing.
--
-- Plans: the bodies are PL/pgSQL `return query` so each call is planned with its actual
-- arguments (a custom plan). A SQL-language body with `set search_path` is never inlined and is
-- planned generically: on 1,000,000 rows EXPLAIN showed it estimating 3 rows for a month's
-- window and choosing an index scan plus an on-disk sort; with the arguments known PostgreSQL
-- picks a (parallel) sequential scan and a hash aggregate, ~0.4 s for a month of 1M rows.
-- Indexes: the window uses usage_logs_created_at_idx when it is narrow; `p_user_id` and the RLS
-- filter `(select auth.uid()) = user_id` use the (user_id, created_at) index.
-- No new index is needed (docs/benchmarks.md has the numbers).

-- Per user: requests, tokens, cost, outcome counts, first and last activity -----------------------
create function public.usage_per_user(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null
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
      agg.user_id,
      u.email,
      agg.requests,
      agg.tokens_in,
      agg.tokens_out,
      agg.cache_read_tokens,
      agg.cache_write_tokens,
      agg.cost_usd,
      agg.partial_requests,
      agg.error_requests,
      agg.estimated_requests,
      agg.first_active,
      agg.last_active
    from (
      select
        l.user_id,
        count(*) as requests,
        coalesce(sum(l.tokens_in), 0)::bigint as tokens_in,
        coalesce(sum(l.tokens_out), 0)::bigint as tokens_out,
        coalesce(sum(l.cache_read_tokens), 0)::bigint as cache_read_tokens,
        coalesce(sum(l.cache_write_tokens), 0)::bigint as cache_write_tokens,
        coalesce(sum(l.cost_usd), 0) as cost_usd,
        count(*) filter (where l.status = 'partial') as partial_requests,
        count(*) filter (where l.status = 'error') as error_requests,
        count(*) filter (where l.estimated) as estimated_requests,
        min(l.created_at) as first_active,
        max(l.created_at) as last_active
      from public.usage_logs l
      where l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
        and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
        and (p_user_id is null or l.user_id = p_user_id)
      group by l.user_id
    ) agg
    left join public.users u on u.id = agg.user_id;
end;
$$;
comment on function public.usage_per_user(timestamptz, timestamptz, uuid) is
  'Usage and USD cost per user in [p_since, p_until); RLS applies (users see only themselves).';

-- Per UTC day, provider and model (active users per day come from usage_user_days: a distinct
-- count here would sort every row) ----------------------------------------------------------------
create function public.usage_per_day_model(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null
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
    select
      (l.created_at at time zone 'UTC')::date as day,
      l.provider,
      l.model,
      count(*) as requests,
      coalesce(sum(l.tokens_in), 0)::bigint as tokens_in,
      coalesce(sum(l.tokens_out), 0)::bigint as tokens_out,
      coalesce(sum(l.cache_read_tokens), 0)::bigint as cache_read_tokens,
      coalesce(sum(l.cache_write_tokens), 0)::bigint as cache_write_tokens,
      coalesce(sum(l.cost_usd), 0) as cost_usd
    from public.usage_logs l
    where l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
      and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
      and (p_user_id is null or l.user_id = p_user_id)
    group by 1, 2, 3;
end;
$$;
comment on function public.usage_per_day_model(timestamptz, timestamptz, uuid) is
  'Usage and USD cost per UTC day, provider and model in [p_since, p_until); RLS applies.';

-- Per conversation: the most expensive first, at most p_limit (null: all) ------------------------
create function public.cost_per_conversation(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_limit integer default null
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
      l.conversation_id,
      l.user_id,
      count(*) as requests,
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
    group by l.conversation_id, l.user_id
    order by cost_usd desc, l.conversation_id
    limit p_limit;
end;
$$;
comment on function public.cost_per_conversation(timestamptz, timestamptz, uuid, integer) is
  'Usage and USD cost per conversation in [p_since, p_until), most expensive first; RLS applies.';

-- The distribution of cost per conversation, in one row (exact: percentile_disc keeps numeric) ---
create function public.conversation_cost_summary(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null
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
      group by l.conversation_id
    ) c;
end;
$$;
comment on function public.conversation_cost_summary(timestamptz, timestamptz, uuid) is
  'Count, total, mean and percentiles of USD cost per conversation in [p_since, p_until).';

-- Per user and UTC day: the input of budgets, month-to-date projections and anomalies -------------
create function public.usage_user_days(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null
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
    select
      l.user_id,
      (l.created_at at time zone 'UTC')::date as day,
      count(*) as requests,
      coalesce(sum(l.tokens_in), 0)::bigint as tokens_in,
      coalesce(sum(l.tokens_out), 0)::bigint as tokens_out,
      coalesce(sum(l.cost_usd), 0) as cost_usd
    from public.usage_logs l
    where l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
      and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
      and (p_user_id is null or l.user_id = p_user_id)
    group by 1, 2;
end;
$$;
comment on function public.usage_user_days(timestamptz, timestamptz, uuid) is
  'Usage and USD cost per user and UTC day in [p_since, p_until); RLS applies.';

-- Grants: signed-in users (their own rows, by RLS) and the service role; never anon -------------
revoke all on function
  public.usage_per_user(timestamptz, timestamptz, uuid),
  public.usage_per_day_model(timestamptz, timestamptz, uuid),
  public.cost_per_conversation(timestamptz, timestamptz, uuid, integer),
  public.conversation_cost_summary(timestamptz, timestamptz, uuid),
  public.usage_user_days(timestamptz, timestamptz, uuid)
  from public, anon;
grant execute on function
  public.usage_per_user(timestamptz, timestamptz, uuid),
  public.usage_per_day_model(timestamptz, timestamptz, uuid),
  public.cost_per_conversation(timestamptz, timestamptz, uuid, integer),
  public.conversation_cost_summary(timestamptz, timestamptz, uuid),
  public.usage_user_days(timestamptz, timestamptz, uuid)
  to authenticated, service_role;
