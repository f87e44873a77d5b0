-- Spend guards: per-user daily/monthly USD caps, requests per minute and concurrent streams,
-- enforced atomically in PostgreSQL so every worker and replica agrees (DESIGN §3.5, issue 6).
--
-- The state (caps, reservations, rate events) lives in the non-exposed schema `private`, written
-- only by SECURITY DEFINER functions that take the user from the verified JWT (auth.uid()): users
-- can read their caps through a view-free RPC but can never change caps or reservations.
-- The checks ride on chat_begin and the settlement on chat_finish (next migration): no extra
-- round trip.

create schema if not exists private;
revoke all on schema private from public, anon;
grant usage on schema private to service_role;

-- Per-user overrides of the service's default caps (null = use the default; 0 = unlimited).
create table public.user_limits (
  user_id uuid primary key references public.users (id) on delete cascade,
  daily_budget_usd numeric(14, 6) check (daily_budget_usd >= 0),
  monthly_budget_usd numeric(14, 6) check (monthly_budget_usd >= 0),
  rate_limit_per_minute integer check (rate_limit_per_minute >= 0),
  max_concurrent_streams integer check (max_concurrent_streams >= 0),
  updated_at timestamptz not null default now()
);
comment on table public.user_limits is 'Per-user caps; written by the service role only.';
alter table public.user_limits enable row level security;
create policy "user_limits: read own" on public.user_limits
  for select to authenticated
  using ((select auth.uid()) = user_id);
revoke all on public.user_limits from anon, authenticated, service_role;
grant select on public.user_limits to authenticated;
grant select, insert, update, delete on public.user_limits to service_role;

-- In-flight worst-case spend, one row per request that may reach a provider.
create table private.reservations (
  request_id uuid primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  amount_usd numeric(14, 8) not null check (amount_usd >= 0),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  settled_at timestamptz
);
create index reservations_user_active_idx on private.reservations (user_id, expires_at)
  where settled_at is null;
create index reservations_user_created_idx on private.reservations (user_id, created_at);

revoke all on all tables in schema private from public, anon, authenticated;
grant select on all tables in schema private to service_role;

-- Check every guard and reserve, atomically per user. Raises PT429 (PostgREST → HTTP 429) with
-- the seconds to wait in DETAIL as `retry_after=<n>` and the guard in HINT.
create function private.guard_and_reserve(
  p_request_id uuid,
  p_reserve_usd numeric,
  p_daily_cap numeric,
  p_monthly_cap numeric,
  p_rate_per_minute integer,
  p_max_streams integer,
  p_ttl_seconds integer
)
  returns void
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_now timestamptz := now();
  v_day timestamptz := date_trunc('day', now() at time zone 'utc') at time zone 'utc';
  v_month timestamptz := date_trunc('month', now() at time zone 'utc') at time zone 'utc';
  v_limits public.user_limits%rowtype;
  v_daily numeric;
  v_monthly numeric;
  v_rpm integer;
  v_streams integer;
  v_count integer;
  v_spent numeric;
  v_reserved numeric;
  v_wait integer;
begin
  if v_user is null then
    raise exception 'no user in the request' using errcode = '42501';
  end if;
  select * into v_limits from public.user_limits l where l.user_id = v_user;
  v_daily := coalesce(v_limits.daily_budget_usd, p_daily_cap, 0);
  v_monthly := coalesce(v_limits.monthly_budget_usd, p_monthly_cap, 0);
  v_rpm := coalesce(v_limits.rate_limit_per_minute, p_rate_per_minute, 0);
  v_streams := coalesce(v_limits.max_concurrent_streams, p_max_streams, 0);
  if v_daily = 0 and v_monthly = 0 and v_rpm = 0 and v_streams = 0 then
    return;  -- no guard applies: no state, no cost
  end if;

  -- One user at a time, across every connection, worker and replica, until commit.
  perform pg_advisory_xact_lock(hashtextextended('chat-stream:guard:' || v_user::text, 0));

  delete from private.reservations r
   where r.user_id = v_user
     and r.created_at < v_now - interval '1 day'
     and (r.settled_at is not null or r.expires_at < v_now);

  if v_rpm > 0 then
    select count(*) into v_count from private.reservations r
     where r.user_id = v_user and r.created_at > v_now - interval '1 minute';
    if v_count >= v_rpm then
      select ceil(extract(epoch from (min(r.created_at) + interval '1 minute' - v_now)))
        into v_wait
        from private.reservations r
       where r.user_id = v_user and r.created_at > v_now - interval '1 minute';
      raise exception 'rate limit: % requests per minute', v_rpm
        using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
              hint = 'rate_limited';
    end if;
  end if;

  if v_streams > 0 then
    select count(*) into v_count from private.reservations r
     where r.user_id = v_user and r.settled_at is null and r.expires_at > v_now;
    if v_count >= v_streams then
      raise exception 'too many concurrent streams: %', v_streams
        using errcode = 'PT429', detail = 'retry_after=1', hint = 'rate_limited';
    end if;
  end if;

  if v_daily > 0 or v_monthly > 0 then
    select coalesce(sum(r.amount_usd), 0) into v_reserved from private.reservations r
     where r.user_id = v_user and r.settled_at is null and r.expires_at > v_now;
    if v_daily > 0 then
      select coalesce(sum(u.cost_usd), 0) into v_spent from public.usage_logs u
       where u.user_id = v_user and u.created_at >= v_day;
      if v_spent + v_reserved + p_reserve_usd > v_daily then
        v_wait := ceil(extract(epoch from (v_day + interval '1 day' - v_now)));
        raise exception 'daily budget reached'
          using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
                hint = 'over_budget';
      end if;
    end if;
    if v_monthly > 0 then
      select coalesce(sum(u.cost_usd), 0) into v_spent from public.usage_logs u
       where u.user_id = v_user and u.created_at >= v_month;
      if v_spent + v_reserved + p_reserve_usd > v_monthly then
        v_wait := ceil(extract(epoch from (v_month + interval '1 month' - v_now)));
        raise exception 'monthly budget reached'
          using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
                hint = 'over_budget';
      end if;
    end if;
  end if;

  insert into private.reservations (request_id, user_id, amount_usd, expires_at)
  values (p_request_id, v_user, greatest(p_reserve_usd, 0),
          v_now + make_interval(secs => greatest(p_ttl_seconds, 1)))
  on conflict (request_id) do nothing;
end;
$$;

-- Settle (or release) a reservation: its spend now lives in usage_logs, in the same transaction.
create function private.settle_reservation(p_request_id uuid, p_user_id uuid)
  returns void
  language sql
  volatile
  security definer
  set search_path = ''
as $$
  update private.reservations r
     set settled_at = now()
   where r.request_id = p_request_id
     and r.user_id = p_user_id
     and r.settled_at is null
     and (p_user_id = (select auth.uid()) or (select auth.role()) = 'service_role');
$$;

revoke all on function private.guard_and_reserve(uuid, numeric, numeric, numeric, integer, integer,
  integer) from public, anon;
revoke all on function private.settle_reservation(uuid, uuid) from public, anon;
grant usage on schema private to authenticated;
grant execute on function private.guard_and_reserve(uuid, numeric, numeric, numeric, integer,
  integer, integer) to authenticated;
grant execute on function private.settle_reservation(uuid, uuid) to authenticated, service_role;
