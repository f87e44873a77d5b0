-- Soft budgets and alerts (issue 26): thresholds crossed, decided once in the database.
--
-- user_limits gains soft_daily_budget_usd and soft_monthly_budget_usd (null: the service's
-- settings, 0: off), below the hard caps. public.alerts holds one row per user, period (day or
-- month, UTC), period start and threshold: `soft` (the soft budget reached), `hard_80` and
-- `hard_100` (80% and 100% of the hard cap). The unique key makes "once" a database fact: every
-- worker and replica inserts with ON CONFLICT DO NOTHING, inside chat_finish, under the user's
-- advisory lock (the guards' lock), so concurrent finishes cannot both miss or both raise one.
--
-- The row is also the webhook's outbox: the service claims undelivered rows with a lease
-- (alerts_claim, service role, FOR UPDATE SKIP LOCKED), posts them, and marks them delivered
-- (alerts_delivered) or due again after a backoff (alerts_retry). A worker that dies mid-delivery
-- leaves a lease that runs out; another worker sends the alert again (the receiver dedupes by
-- the alert id in the X-Chat-Stream-Alert-Id header).
--
-- Access: RLS on; a user reads their own alerts (they are about their own spending); nobody
-- writes through the API; the service role reads all and changes delivery state only through
-- the functions below.
--
-- chat_finish is 20261206000400's with two additions: the user's advisory lock first, and
-- private.raise_budget_alerts(user, record -> 'budgets') after the usage rows. `budgets` is the
-- service's attested settings {"soft_daily_usd","soft_monthly_usd","daily_usd","monthly_usd"};
-- user_limits wins per field; records without it (older workers) raise alerts only from
-- user_limits.

alter table public.user_limits
  add column soft_daily_budget_usd numeric(14, 6) check (soft_daily_budget_usd >= 0),
  add column soft_monthly_budget_usd numeric(14, 6) check (soft_monthly_budget_usd >= 0);
comment on column public.user_limits.soft_daily_budget_usd is
  'Alert (no refusal) when the day''s spend reaches this; null: SOFT_DAILY_BUDGET_USD, 0: off.';
comment on column public.user_limits.soft_monthly_budget_usd is
  'Alert (no refusal) when the month''s spend reaches this; null: SOFT_MONTHLY_BUDGET_USD.';

create table public.alerts (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  period text not null check (period in ('day', 'month')),
  period_start date not null,
  threshold text not null check (threshold in ('soft', 'hard_80', 'hard_100')),
  limit_usd numeric(14, 6) not null,
  spent_usd numeric(14, 8) not null,
  created_at timestamptz not null default now(),
  -- Webhook delivery (the outbox): due from next_attempt_at, claimed until claimed_until.
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  claimed_until timestamptz,
  delivered_at timestamptz,
  last_error text,
  constraint alerts_once_key unique (user_id, period, period_start, threshold)
);
comment on table public.alerts is
  'Budget alerts: one per user, period and threshold (raised by chat_finish); webhook outbox.';
create index alerts_pending_idx on public.alerts (next_attempt_at) where delivered_at is null;
alter table public.alerts enable row level security;
create policy "alerts: read own" on public.alerts
  for select to authenticated
  using ((select auth.uid()) = user_id);
revoke all on public.alerts from public, anon, authenticated, service_role;
grant select on public.alerts to authenticated, service_role;

-- Raise what this user's spend now crosses. p_budgets: the service's settings (may be null).
create function private.raise_budget_alerts(p_user uuid, p_budgets jsonb)
  returns integer
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_day timestamptz := date_trunc('day', now() at time zone 'utc') at time zone 'utc';
  v_month timestamptz := date_trunc('month', now() at time zone 'utc') at time zone 'utc';
  v_limits public.user_limits%rowtype;
  v_count integer := 0;
  v_added integer;
  v_period text;
  v_start timestamptz;
  v_soft numeric;
  v_hard numeric;
  v_spent numeric;
begin
  select * into v_limits from public.user_limits l where l.user_id = p_user;
  foreach v_period in array array['day', 'month'] loop
    if v_period = 'day' then
      v_start := v_day;
      v_soft := coalesce(v_limits.soft_daily_budget_usd,
                         nullif(p_budgets ->> 'soft_daily_usd', '')::numeric, 0);
      v_hard := coalesce(v_limits.daily_budget_usd,
                         nullif(p_budgets ->> 'daily_usd', '')::numeric, 0);
    else
      v_start := v_month;
      v_soft := coalesce(v_limits.soft_monthly_budget_usd,
                         nullif(p_budgets ->> 'soft_monthly_usd', '')::numeric, 0);
      v_hard := coalesce(v_limits.monthly_budget_usd,
                         nullif(p_budgets ->> 'monthly_usd', '')::numeric, 0);
    end if;
    continue when v_soft <= 0 and v_hard <= 0;
    select coalesce(sum(u.cost_usd), 0) into v_spent from public.usage_logs u
     where u.user_id = p_user and u.created_at >= v_start;
    insert into public.alerts (user_id, period, period_start, threshold, limit_usd, spent_usd)
    select p_user, v_period, (v_start at time zone 'utc')::date, t.threshold, t.limit_usd,
           v_spent
      from (values ('soft', v_soft), ('hard_80', v_hard * 0.8), ('hard_100', v_hard))
           as t (threshold, limit_usd)
     where t.limit_usd > 0 and v_spent >= t.limit_usd
    on conflict on constraint alerts_once_key do nothing;
    get diagnostics v_added = row_count;
    v_count := v_count + v_added;
  end loop;
  return v_count;
end;
$$;
revoke all on function private.raise_budget_alerts(uuid, jsonb) from public, anon, authenticated;

-- p_record: as in 20261206000400, plus "budgets" (see above).
create or replace function public.chat_finish(p_record text, p_attestation text)
  returns jsonb
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_record jsonb;
  v_user uuid;
  v_turn_id uuid;
  v_conversation uuid;
  v_state text;
  v_message_id uuid;
  v_usage_ids bigint[];
begin
  v_record := private.attested_call('chat_finish', p_record, p_attestation, true);
  v_user := (v_record ->> 'user_id')::uuid;
  v_turn_id := (v_record ->> 'turn_id')::uuid;

  -- The user's lock, taken first as chat_begin takes it: budget alerts below see every finish
  -- of this user that committed before this one (no crossing is missed between two finishes).
  perform pg_advisory_xact_lock(hashtextextended('chat-stream:turns:' || v_user::text, 0));

  -- Serialises with the sweeper: a turn is either finished here or abandoned there, never both.
  select t.state into v_state from private.turns t
   where t.turn_id = v_turn_id and t.user_id = v_user
     for update;

  -- The conversation may have been deleted while the answer streamed: keep the usage anyway.
  select c.id into v_conversation from public.conversations c
   where c.id = (v_record ->> 'conversation_id')::uuid and c.user_id = v_user;

  v_message_id := nullif(v_record -> 'message' ->> 'id', '')::uuid;
  if v_message_id is not null then
    if v_conversation is null then
      v_message_id := null;
    else
      insert into public.messages (id, conversation_id, user_id, role, content, status,
                                   token_count, turn_id)
      values (v_message_id, v_conversation, v_user, 'assistant',
              left(coalesce(v_record -> 'message' ->> 'content', ''), 4000000),
              coalesce(v_record -> 'message' ->> 'status', 'completed'),
              (v_record -> 'message' ->> 'token_count')::integer, v_turn_id)
      on conflict (id) do nothing;
      perform 1 from public.messages m where m.id = v_message_id and m.user_id = v_user;
      if not found then
        v_message_id := null;
      end if;
    end if;
  end if;

  if v_state = 'abandoned' then
    -- A late finish (the outbox) for a turn already estimated: the real rows replace the estimate.
    delete from public.usage_logs u
     where u.turn_id = v_turn_id and u.status = 'abandoned' and u.user_id = v_user;
  end if;

  with incoming as (
    select *
      from jsonb_to_recordset(coalesce(v_record -> 'usage', '[]'::jsonb)) as u(
        attempt_id uuid, provider text, model text, tokens_in integer, tokens_out integer,
        cache_read_tokens integer, cache_write_tokens integer, cost_usd numeric,
        status text, estimated boolean, ttft_ms integer, duration_ms integer, price_source text,
        provider_cost_usd numeric
      )
  ), inserted as (
    insert into public.usage_logs (request_id, turn_id, attempt_id, user_id, conversation_id,
                                   message_id, provider, model, tokens_in, tokens_out,
                                   cache_read_tokens, cache_write_tokens, cost_usd, status,
                                   estimated, ttft_ms, duration_ms, price_source,
                                   provider_cost_usd)
    select i.attempt_id, v_turn_id, i.attempt_id, v_user, v_conversation, v_message_id,
           coalesce(i.provider, 'unknown'), coalesce(i.model, 'unknown'),
           coalesce(i.tokens_in, 0), coalesce(i.tokens_out, 0),
           coalesce(i.cache_read_tokens, 0), coalesce(i.cache_write_tokens, 0),
           coalesce(i.cost_usd, 0), coalesce(i.status, 'completed'),
           coalesce(i.estimated, false), i.ttft_ms, i.duration_ms, i.price_source,
           case when i.provider_cost_usd >= 0 and i.provider_cost_usd < 1000000
                then round(i.provider_cost_usd, 8) end
      from incoming i
     where i.attempt_id is not null
    on conflict (request_id) do nothing
    returning id
  )
  select array_agg(id order by id) into v_usage_ids from inserted;

  perform private.raise_budget_alerts(v_user, v_record -> 'budgets');

  update private.turns t
     set state = 'finished', finished_at = now(), parts = null,
         token_lengths = v_record -> 'replay' -> 'token_lengths',
         final = v_record -> 'replay' -> 'final'
   where t.turn_id = v_turn_id and t.state <> 'finished';

  return jsonb_build_object('message_id', v_message_id,
                            'usage_ids', coalesce(to_jsonb(v_usage_ids), '[]'::jsonb));
end;
$$;

-- Webhook delivery: the service role only ------------------------------------------------------
-- Claim up to p_limit due alerts for p_lease_seconds (other workers skip them), oldest first.
create function public.alerts_claim(p_limit integer default 20, p_lease_seconds integer default 30)
  returns setof public.alerts
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  if (select auth.role()) is distinct from 'service_role' then
    raise exception 'service role only' using errcode = '42501';
  end if;
  return query
    update public.alerts a
       set claimed_until = now() + make_interval(secs => greatest(least(p_lease_seconds, 600), 1)),
           attempts = a.attempts + 1
     where a.id in (
       select p.id from public.alerts p
        where p.delivered_at is null and p.next_attempt_at <= now()
          and (p.claimed_until is null or p.claimed_until < now())
        order by p.id
        limit greatest(least(p_limit, 500), 1)
        for update skip locked
     )
    returning a.*;
end;
$$;

-- The webhook took these alerts (2xx): never sent again.
create function public.alerts_delivered(p_ids bigint[])
  returns integer
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_count integer;
begin
  if (select auth.role()) is distinct from 'service_role' then
    raise exception 'service role only' using errcode = '42501';
  end if;
  update public.alerts a
     set delivered_at = now(), claimed_until = null, last_error = null
   where a.id = any (p_ids) and a.delivered_at is null;
  get diagnostics v_count = row_count;
  return v_count;
end;
$$;

-- The webhook failed: due again after p_retry_seconds, with the reason kept for operators.
create function public.alerts_retry(p_id bigint, p_retry_seconds numeric, p_error text)
  returns boolean
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  if (select auth.role()) is distinct from 'service_role' then
    raise exception 'service role only' using errcode = '42501';
  end if;
  update public.alerts a
     set claimed_until = null,
         next_attempt_at = now() + make_interval(secs => greatest(least(p_retry_seconds, 86400), 0)),
         last_error = left(p_error, 500)
   where a.id = p_id and a.delivered_at is null;
  return found;
end;
$$;

revoke all on function public.alerts_claim(integer, integer) from public, anon, authenticated;
revoke all on function public.alerts_delivered(bigint[]) from public, anon, authenticated;
revoke all on function public.alerts_retry(bigint, numeric, text) from public, anon, authenticated;
grant execute on function public.alerts_claim(integer, integer) to service_role;
grant execute on function public.alerts_delivered(bigint[]) to service_role;
grant execute on function public.alerts_retry(bigint, numeric, text) to service_role;
