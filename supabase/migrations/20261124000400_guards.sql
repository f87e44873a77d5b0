-- Spend guards: per-user daily/monthly USD caps, requests per minute and concurrent streams,
-- enforced atomically in PostgreSQL so every worker and replica agrees (DESIGN §3.5, issue 6).
--
-- The state (caps, reservations, rate events) lives in the non-exposed schema `private`, written
-- only by SECURITY DEFINER functions that take the user from the verified JWT (auth.uid()): users
-- can read their caps through a view-free RPC but can never change caps or reservations.
-- The checks ride on chat_begin and the settlement on chat_finish: no extra round trip.

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

-- Spend sums read only the cost column: let them be index-only scans.
create index usage_logs_user_id_created_at_cost_idx
  on public.usage_logs (user_id, created_at) include (cost_usd);
drop index public.usage_logs_user_id_created_at_idx;

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

-- chat_begin and chat_finish gain the guard parameters (all optional: old callers keep working).
drop function public.chat_begin(uuid, text, uuid, integer, integer);
create function public.chat_begin(
  p_conversation_id uuid,
  p_content text,
  p_client_message_id uuid default null,
  p_history_tokens integer default 6000,
  p_history_messages integer default 50,
  p_request_id uuid default null,
  p_reserve_usd numeric default 0,
  p_daily_cap numeric default 0,
  p_monthly_cap numeric default 0,
  p_rate_per_minute integer default 0,
  p_max_streams integer default 0,
  p_reservation_ttl integer default 600
)
  returns jsonb
  language plpgsql
  volatile
  security invoker
  set search_path = ''
as $$
declare
  v_message_id uuid;
  v_created_at timestamptz;
  v_replayed boolean := false;
  v_history jsonb;
  v_answer_id uuid;
  v_answer text;
begin
  -- RLS hides other users' conversations: "missing" and "not yours" are the same answer (404).
  perform 1 from public.conversations c where c.id = p_conversation_id;
  if not found then
    raise exception 'conversation not found' using errcode = 'PT404';
  end if;

  if p_client_message_id is not null then
    select m.id, m.created_at into v_message_id, v_created_at
      from public.messages m
     where m.conversation_id = p_conversation_id and m.client_message_id = p_client_message_id;
    v_replayed := found;
  end if;

  -- A retry of a turn that already has a completed answer gets that answer back: nothing is
  -- generated, reserved or billed again. (A failed or partial turn is generated anew.)
  if v_replayed then
    select m.id, m.content into v_answer_id, v_answer
      from public.messages m
     where m.conversation_id = p_conversation_id
       and m.role = 'assistant'
       and m.status = 'completed'
       and (m.created_at, m.id) > (v_created_at, v_message_id)
       and not exists (
         select 1 from public.messages n
          where n.conversation_id = p_conversation_id
            and n.role = 'user'
            and (n.created_at, n.id) > (v_created_at, v_message_id)
            and (n.created_at, n.id) < (m.created_at, m.id)
       )
     order by m.created_at, m.id
     limit 1;
    if found then
      return jsonb_build_object(
        'user_message_id', v_message_id,
        'replayed', true,
        'history', '[]'::jsonb,
        'answer', jsonb_build_object('id', v_answer_id, 'content', v_answer)
      );
    end if;
  end if;

  if p_request_id is not null then
    perform private.guard_and_reserve(p_request_id, p_reserve_usd, p_daily_cap, p_monthly_cap,
                                      p_rate_per_minute, p_max_streams, p_reservation_ttl);
  end if;

  if v_message_id is null then
    insert into public.messages (conversation_id, user_id, role, content, client_message_id,
                                 token_count)
    values (p_conversation_id, (select auth.uid()), 'user', p_content, p_client_message_id,
            ceil(char_length(p_content) / 4.0)::integer)
    on conflict (conversation_id, client_message_id) where client_message_id is not null
    do nothing
    returning id, created_at into v_message_id, v_created_at;

    if v_message_id is null then  -- a concurrent retry inserted it first
      select m.id, m.created_at into v_message_id, v_created_at
        from public.messages m
       where m.conversation_id = p_conversation_id and m.client_message_id = p_client_message_id;
      v_replayed := true;
    end if;
  end if;

  select coalesce(jsonb_agg(jsonb_build_object('role', w.role, 'content', w.content)
                            order by w.created_at, w.id), '[]'::jsonb)
    into v_history
    from (
      select r.*, sum(r.tokens) over (order by r.created_at desc, r.id desc) as running
        from (
          select m.id, m.role, m.content, m.created_at,
                 coalesce(m.token_count, ceil(char_length(m.content) / 4.0)::integer) as tokens
            from public.messages m
           where m.conversation_id = p_conversation_id
             and m.role in ('user', 'assistant')
             and m.content <> ''
             and (m.created_at, m.id) <= (v_created_at, v_message_id)
           order by m.created_at desc, m.id desc
           limit greatest(p_history_messages, 1)
        ) r
    ) w
   where w.running <= p_history_tokens or w.id = v_message_id;

  return jsonb_build_object(
    'user_message_id', v_message_id,
    'replayed', v_replayed,
    'history', v_history
  );
end;
$$;

drop function public.chat_finish(uuid, uuid, jsonb, jsonb);
create function public.chat_finish(
  p_user_id uuid,
  p_conversation_id uuid,
  p_message jsonb,
  p_usage jsonb,
  p_request_id uuid default null
)
  returns jsonb
  language plpgsql
  volatile
  security invoker
  set search_path = ''
as $$
-- p_message: null, or {"id", "content", "status", "token_count", "request_id"}.
-- p_usage: an array of usage rows (one per billed upstream attempt), each with the usage_logs
-- columns by name. Idempotent: a replay whose message or usage rows exist changes nothing.
-- p_request_id: the reservation to settle (or release, when nothing was billed).
declare
  v_message_id uuid := nullif(p_message ->> 'id', '')::uuid;
  v_usage_ids bigint[];
begin
  if v_message_id is not null then
    insert into public.messages (id, conversation_id, user_id, role, content, status,
                                 token_count, request_id)
    values (v_message_id, p_conversation_id, p_user_id, 'assistant', p_message ->> 'content',
            coalesce(p_message ->> 'status', 'completed'),
            (p_message ->> 'token_count')::integer, (p_message ->> 'request_id')::uuid)
    on conflict (id) do nothing;
  end if;

  with incoming as (
    select *
      from jsonb_to_recordset(coalesce(p_usage, '[]'::jsonb)) as u(
        request_id uuid, provider text, model text, tokens_in integer, tokens_out integer,
        cache_read_tokens integer, cache_write_tokens integer, cost_usd numeric,
        status text, estimated boolean, ttft_ms integer, duration_ms integer, price_source text
      )
  ), inserted as (
    insert into public.usage_logs (request_id, user_id, conversation_id, message_id, provider,
                                   model, tokens_in, tokens_out, cache_read_tokens,
                                   cache_write_tokens, cost_usd, status, estimated, ttft_ms,
                                   duration_ms, price_source)
    select i.request_id, p_user_id, p_conversation_id, v_message_id,
           coalesce(i.provider, 'unknown'), i.model, coalesce(i.tokens_in, 0),
           coalesce(i.tokens_out, 0), coalesce(i.cache_read_tokens, 0),
           coalesce(i.cache_write_tokens, 0), coalesce(i.cost_usd, 0),
           coalesce(i.status, 'completed'), coalesce(i.estimated, false), i.ttft_ms,
           i.duration_ms, i.price_source
      from incoming i
    on conflict (request_id) do nothing
    returning id
  )
  select array_agg(id order by id) into v_usage_ids from inserted;

  if p_request_id is not null then
    perform private.settle_reservation(p_request_id, p_user_id);
  end if;

  return jsonb_build_object('message_id', v_message_id,
                            'usage_ids', coalesce(to_jsonb(v_usage_ids), '[]'::jsonb));
end;
$$;

revoke all on function public.chat_begin(uuid, text, uuid, integer, integer, uuid, numeric,
  numeric, numeric, integer, integer, integer) from public, anon;
revoke all on function public.chat_finish(uuid, uuid, jsonb, jsonb, uuid) from public, anon;
grant execute on function public.chat_begin(uuid, text, uuid, integer, integer, uuid, numeric,
  numeric, numeric, integer, integer, integer) to authenticated, service_role;
grant execute on function public.chat_finish(uuid, uuid, jsonb, jsonb, uuid)
  to authenticated, service_role;
