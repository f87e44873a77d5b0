-- The trust boundary for money (docs/design.md, "Trust model"): what the service records about a
-- turn's cost is something only the service can produce.
--
-- * Users keep SELECT on their own usage and messages, but lose INSERT on both tables: assistant
--   and system messages, token counts, statuses, turn ids and usage rows are written only by the
--   SECURITY DEFINER functions below.
-- * Those functions accept a call only with an attestation: an HMAC-SHA256 over the exact JSON
--   text of the call, keyed with a secret that only the service (BILLING_ATTESTATION_KEY) and the
--   unexposed `private.attestation_keys` hold. A user who calls them through the Data API with
--   anything else gets PT403 and changes nothing.
-- * Every turn has a row in `private.turns` from `chat_begin` to `chat_finish`. It is the pending
--   usage: its reservation counts against the guards, and if the worker dies it becomes an
--   `abandoned`, estimated usage row when its lease expires (never silently lost). A late finish
--   (the outbox) replaces that estimate with the real rows.
-- * Guards are decided here, from `user_limits` (service-written) and the attested settings.
-- * Content is capped: user messages at 32,000 characters, any message at 4,000,000 (more than
--   any provider's longest answer).
-- * Usage survives the conversation: a finish for a deleted conversation stores its usage with
--   conversation_id null and skips the message.
-- * One answer per clientMessageId: a second begin while a turn with that id is in flight is
--   PT409 (HTTP 409).
--
-- Replaces chat_begin/chat_finish of 20261124000200 and the reservation functions of
-- 20261124000150 (dropped here; append-only migrations, so the old files stay as shipped).

-- Keys and the MAC --------------------------------------------------------------------------------
create table private.attestation_keys (
  id smallint generated always as identity primary key,
  key bytea not null check (octet_length(key) >= 32),
  created_at timestamptz not null default now()
);
comment on table private.attestation_keys is
  'HMAC keys for attested chat RPCs; one row per active key (two during a rotation).';
revoke all on private.attestation_keys from public, anon, authenticated, service_role;

-- RFC 2104 HMAC-SHA256 over core sha256() (PostgreSQL 11+), for databases without pgcrypto (the
-- pgserver wheel). Checked against the RFC 4231 test vectors in tests/supabase/test_attestation.py.
create function private.hmac_sha256_core(p_data bytea, p_key bytea)
  returns bytea
  language plpgsql
  immutable
  strict
  set search_path = ''
as $$
declare
  v_key bytea := p_key;
  v_ipad bytea;
  v_opad bytea;
begin
  if octet_length(v_key) > 64 then
    v_key := sha256(v_key);
  end if;
  v_key := v_key || decode(repeat('00', 64 - octet_length(v_key)), 'hex');
  v_ipad := v_key;
  v_opad := v_key;
  for i in 0..63 loop
    v_ipad := set_byte(v_ipad, i, get_byte(v_key, i) # 54);  -- 0x36
    v_opad := set_byte(v_opad, i, get_byte(v_key, i) # 92);  -- 0x5c
  end loop;
  return sha256(v_opad || sha256(v_ipad || p_data));
end;
$$;

-- pgcrypto's hmac where the database has it (Supabase: in `extensions`), else the core version.
do $$
begin
  if to_regprocedure('extensions.hmac(bytea,bytea,text)') is not null then
    execute $f$
      create function private.hmac_sha256(p_data bytea, p_key bytea)
        returns bytea language sql immutable strict set search_path = ''
      as 'select extensions.hmac(p_data, p_key, ''sha256'')'
    $f$;
  else
    execute $f$
      create function private.hmac_sha256(p_data bytea, p_key bytea)
        returns bytea language sql immutable strict set search_path = ''
      as 'select private.hmac_sha256_core(p_data, p_key)'
    $f$;
  end if;
end
$$;

-- True when p_mac (64 hex digits) is the HMAC of "<kind>\n<payload>" under any active key. The
-- digests are compared through sha256 so the comparison's timing says nothing about the MAC.
create function private.attested(p_kind text, p_payload text, p_mac text)
  returns boolean
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
begin
  if p_kind is null or p_payload is null or p_mac is null or p_mac !~ '^[0-9a-f]{64}$' then
    return false;
  end if;
  return exists (
    select 1 from private.attestation_keys k
     where sha256(private.hmac_sha256(convert_to(p_kind || E'\n' || p_payload, 'UTF8'), k.key))
           = sha256(decode(p_mac, 'hex'))
  );
end;
$$;

-- The preamble every attested RPC shares: refuse a MAC that is not the service's (PT403), then
-- parse the call and make sure it is the caller's own (the service role may replay any, for the
-- outbox, when `p_service_may`). Returns the parsed call.
create function private.attested_call(
  p_kind text, p_payload text, p_mac text, p_service_may boolean default false
)
  returns jsonb
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_call jsonb;
begin
  if not private.attested(p_kind, p_payload, p_mac) then
    raise exception 'attestation rejected' using errcode = 'PT403', hint = 'attestation';
  end if;
  v_call := p_payload::jsonb;
  if p_service_may and (select auth.role()) = 'service_role' then
    return v_call;
  end if;
  if (select auth.uid()) is null
     or (select auth.uid()) is distinct from (v_call ->> 'user_id')::uuid then
    raise exception 'this turn belongs to another user' using errcode = '42501';
  end if;
  return v_call;
end;
$$;

-- Turns: the pending usage of every turn until it is finished -----------------------------------
create table private.turns (
  turn_id uuid primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  conversation_id uuid not null,  -- no foreign key: the conversation may be deleted mid-turn
  user_message_id uuid,
  client_message_id uuid,
  state text not null default 'streaming'
    check (state in ('streaming', 'finished', 'abandoned')),
  reserve_usd numeric(14, 8) not null default 0 check (reserve_usd >= 0),
  provider text not null,
  model text not null,
  input_tokens_estimate integer not null default 0 check (input_tokens_estimate >= 0),
  input_usd_per_mtok numeric(14, 6) not null default 0 check (input_usd_per_mtok >= 0),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  finished_at timestamptz,
  -- Resumable streams: the tokens so far while no client is attached (checkpoints), who follows
  -- from another worker, and at finish the answer's token boundaries and its final event.
  parts jsonb,
  followed_at timestamptz,
  token_lengths jsonb,
  final jsonb
);
comment on table private.turns is
  'One row per chat turn; streaming rows are reservations, expired ones become abandoned usage.';
create index turns_user_created_idx on private.turns (user_id, created_at);
create index turns_streaming_user_idx on private.turns (user_id, expires_at)
  where state = 'streaming';
create index turns_streaming_expiry_idx on private.turns (expires_at) where state = 'streaming';
-- One answer per clientMessageId: at most one turn in flight for it.
create unique index turns_in_flight_client_message_key
  on private.turns (user_id, conversation_id, client_message_id)
  where state = 'streaming' and client_message_id is not null;
revoke all on private.turns from public, anon, authenticated, service_role;
grant select on private.turns to service_role;

-- The old reservations: their functions are replaced below; in-flight rows of the old version
-- belong to processes that a deploy has drained.
drop function private.guard_and_reserve(uuid, numeric, numeric, numeric, integer, integer, integer);
drop function private.settle_reservation(uuid, uuid);
drop table private.reservations;
revoke usage on schema private from authenticated;

-- Messages: written by the service only; lengths capped in the database -------------------------
drop policy "messages: write into own conversations" on public.messages;
revoke insert on public.messages from authenticated;
-- NOT VALID: rows written before this migration are not rechecked; every new row is.
alter table public.messages
  add constraint messages_content_length_check
    check (char_length(content) <= 4000000) not valid,
  add constraint messages_user_content_length_check
    check (role <> 'user' or char_length(content) <= 32000) not valid;
alter table public.messages rename column request_id to turn_id;
comment on column public.messages.turn_id is 'The chat turn that produced this assistant message.';

-- Usage: no user INSERT; turn and attempt ids; the abandoned status ------------------------------
drop policy "usage_logs: record own" on public.usage_logs;
revoke insert on public.usage_logs from authenticated;
alter table public.usage_logs
  add column turn_id uuid,
  add column attempt_id uuid,
  add column output_unknown boolean not null default false;
update public.usage_logs u
   set attempt_id = u.request_id,
       turn_id = coalesce((select m.turn_id from public.messages m where m.id = u.message_id),
                          u.request_id);
alter table public.usage_logs drop constraint usage_logs_status_check;
alter table public.usage_logs add constraint usage_logs_status_check
  check (status in ('completed', 'partial', 'error', 'abandoned'));
create index usage_logs_turn_id_idx on public.usage_logs (turn_id);
comment on column public.usage_logs.request_id is
  'Unique per row: the attempt id (same value as attempt_id; kept for existing queries).';
comment on column public.usage_logs.turn_id is 'The chat turn (the log line''s turn_id).';
comment on column public.usage_logs.attempt_id is 'One upstream request of the turn.';
comment on column public.usage_logs.output_unknown is
  'True for abandoned turns: the worker died, output tokens were never seen (tokens_out = 0).';

-- Expired turns become abandoned usage ------------------------------------------------------------
-- Input is the estimate made at begin (system prompt + history window), output unknown (0,
-- flagged), priced at the reserved model's input rate. p_user null: every user (the sweeper).
create function private.abandon_expired(p_user uuid)
  returns integer
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_count integer;
begin
  with expired as (
    update private.turns t
       set state = 'abandoned', finished_at = now()
     where t.state = 'streaming'
       and t.expires_at <= now()
       and (p_user is null or t.user_id = p_user)
    returning t.*
  ), inserted as (
    insert into public.usage_logs (request_id, turn_id, attempt_id, user_id, conversation_id,
                                   provider, model, tokens_in, tokens_out, cost_usd, status,
                                   estimated, output_unknown, price_source)
    select e.turn_id, e.turn_id, e.turn_id, e.user_id,
           (select c.id from public.conversations c where c.id = e.conversation_id),
           e.provider, e.model, e.input_tokens_estimate, 0,
           round(e.input_tokens_estimate * e.input_usd_per_mtok / 1000000, 8),
           'abandoned', true, true, 'estimate:abandoned-turn'
      from expired e
    on conflict (request_id) do nothing
    returning 1
  )
  select count(*) into v_count from inserted;
  return v_count;
end;
$$;

-- The history window: the latest messages within the token budget, counted from the content
-- itself (whatever a row's token_count says), oldest first; the user's new message always in.
-- Returns the messages as [{"role","content"}...] and their token count.
create function private.history_window(
  p_conversation uuid,
  p_user uuid,
  p_until timestamptz,
  p_message_id uuid,
  p_budget integer,
  p_max_messages integer
)
  returns table (history jsonb, tokens integer)
  language sql
  stable
  security definer
  set search_path = ''
as $$
  select coalesce(jsonb_agg(jsonb_build_object('role', w.role, 'content', w.content)
                            order by w.created_at, w.id), '[]'::jsonb),
         coalesce(sum(w.tokens), 0)::integer
    from (
      select r.*, sum(r.tokens) over (order by r.created_at desc, r.id desc) as running
        from (
          select m.id, m.role, m.content, m.created_at,
                 ceil(char_length(m.content) / 4.0)::integer as tokens
            from public.messages m
           where m.conversation_id = p_conversation
             and m.user_id = p_user
             and m.role in ('user', 'assistant')
             and m.content <> ''
             and (m.created_at, m.id) <= (p_until, p_message_id)
           order by m.created_at desc, m.id desc
           limit greatest(least(p_max_messages, 1000), 1)
        ) r
    ) w
   where w.running <= greatest(p_budget, 0) or w.id = p_message_id
$$;

-- Guards: caps from user_limits, else the attested settings; 0 disables a guard ------------------
create function private.check_guards(p_user uuid, p_reserve numeric, p_caps jsonb)
  returns void
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
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
  v_oldest timestamptz;
begin
  select * into v_limits from public.user_limits l where l.user_id = p_user;
  v_daily := coalesce(v_limits.daily_budget_usd, (p_caps ->> 'daily_usd')::numeric, 0);
  v_monthly := coalesce(v_limits.monthly_budget_usd, (p_caps ->> 'monthly_usd')::numeric, 0);
  v_rpm := coalesce(v_limits.rate_limit_per_minute, (p_caps ->> 'rate_per_minute')::integer, 0);
  v_streams := coalesce(v_limits.max_concurrent_streams, (p_caps ->> 'max_streams')::integer, 0);

  if v_rpm > 0 then
    select count(*), min(t.created_at) into v_count, v_oldest from private.turns t
     where t.user_id = p_user and t.created_at > v_now - interval '1 minute';
    if v_count >= v_rpm then
      v_wait := ceil(extract(epoch from (v_oldest + interval '1 minute' - v_now)));
      raise exception 'rate limit: % requests per minute', v_rpm
        using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
              hint = 'rate_limited';
    end if;
  end if;

  if v_streams > 0 then
    select count(*) into v_count from private.turns t
     where t.user_id = p_user and t.state = 'streaming' and t.expires_at > v_now;
    if v_count >= v_streams then
      raise exception 'too many concurrent streams: %', v_streams
        using errcode = 'PT429', detail = 'retry_after=1', hint = 'rate_limited';
    end if;
  end if;

  if v_daily > 0 or v_monthly > 0 then
    select coalesce(sum(t.reserve_usd), 0) into v_reserved from private.turns t
     where t.user_id = p_user and t.state = 'streaming' and t.expires_at > v_now;
    if v_daily > 0 then
      select coalesce(sum(u.cost_usd), 0) into v_spent from public.usage_logs u
       where u.user_id = p_user and u.created_at >= v_day;
      if v_spent + v_reserved + p_reserve > v_daily then
        v_wait := ceil(extract(epoch from (v_day + interval '1 day' - v_now)));
        raise exception 'daily budget reached'
          using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
                hint = 'over_budget';
      end if;
    end if;
    if v_monthly > 0 then
      select coalesce(sum(u.cost_usd), 0) into v_spent from public.usage_logs u
       where u.user_id = p_user and u.created_at >= v_month;
      if v_spent + v_reserved + p_reserve > v_monthly then
        v_wait := ceil(extract(epoch from (v_month + interval '1 month' - v_now)));
        raise exception 'monthly budget reached'
          using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
                hint = 'over_budget';
      end if;
    end if;
  end if;
end;
$$;

revoke all on function private.hmac_sha256_core(bytea, bytea) from public, anon, authenticated;
revoke all on function private.hmac_sha256(bytea, bytea) from public, anon, authenticated;
revoke all on function private.attested(text, text, text) from public, anon, authenticated;
revoke all on function private.attested_call(text, text, text, boolean)
  from public, anon, authenticated;
revoke all on function private.abandon_expired(uuid) from public, anon, authenticated;
revoke all on function private.check_guards(uuid, numeric, jsonb)
  from public, anon, authenticated;
revoke all on function private.history_window(uuid, uuid, timestamptz, uuid, integer, integer)
  from public, anon, authenticated;

-- The chat RPCs ------------------------------------------------------------------------------------
drop function public.chat_begin(uuid, text, uuid, integer, integer, uuid, numeric, numeric,
  numeric, integer, integer, integer);
drop function public.chat_finish(uuid, uuid, jsonb, jsonb, uuid);

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "conversation_id", "content", "client_message_id",
--          "history_tokens", "history_messages", "system_tokens", "lease_seconds",
--          "reserve": {"usd", "provider", "model", "input_usd_per_mtok"},
--          "caps": {"daily_usd", "monthly_usd", "rate_per_minute", "max_streams"}}
-- Returns {"user_message_id", "history": [{"role","content"}...]} or, for a retry of a turn
-- already answered, {"user_message_id", "replayed": true, "answer": {"id","content"}}.
create function public.chat_begin(p_turn text, p_attestation text)
  returns jsonb
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_turn jsonb;
  v_turn_id uuid;
  v_conversation uuid;
  v_client uuid;
  v_content text;
  v_message_id uuid;
  v_created_at timestamptz;
  v_answer_id uuid;
  v_answer text;
  v_history jsonb;
  v_history_tokens integer;
  v_existing private.turns%rowtype;
begin
  v_turn := private.attested_call('chat_begin', p_turn, p_attestation);
  if abs(extract(epoch from now()) - (v_turn ->> 'iat')::numeric) > 300 then
    raise exception 'stale turn' using errcode = 'PT403', hint = 'attestation';
  end if;
  v_turn_id := (v_turn ->> 'turn_id')::uuid;
  v_conversation := (v_turn ->> 'conversation_id')::uuid;
  v_client := (v_turn ->> 'client_message_id')::uuid;
  v_content := v_turn ->> 'content';

  -- Missing and not yours are the same answer (404).
  perform 1 from public.conversations c where c.id = v_conversation and c.user_id = v_user;
  if not found then
    raise exception 'conversation not found' using errcode = 'PT404';
  end if;

  -- One user at a time, across every connection, worker and replica, until commit.
  perform pg_advisory_xact_lock(hashtextextended('chat-stream:turns:' || v_user::text, 0));

  select * into v_existing from private.turns t where t.turn_id = v_turn_id;
  if found and v_existing.user_id = v_user then
    -- The same begin, retried after a dropped connection: the turn is already open.
    v_message_id := v_existing.user_message_id;
    select m.created_at into v_created_at from public.messages m where m.id = v_message_id;
  elsif found then
    raise exception 'this turn belongs to another user' using errcode = '42501';
  else
    perform private.abandon_expired(v_user);

    if v_client is not null then
      select m.id, m.created_at into v_message_id, v_created_at
        from public.messages m
       where m.conversation_id = v_conversation and m.client_message_id = v_client
         and m.user_id = v_user and m.role = 'user';
      if found then
        -- A retry of a turn that has a completed answer gets that answer back: nothing is
        -- generated, reserved or billed again. A failed or partial turn is generated anew.
        select m.id, m.content into v_answer_id, v_answer
          from public.messages m
         where m.conversation_id = v_conversation
           and m.role = 'assistant'
           and m.status = 'completed'
           and (m.created_at, m.id) > (v_created_at, v_message_id)
           and not exists (
             select 1 from public.messages n
              where n.conversation_id = v_conversation
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
      -- Whether or not its message is still there (the user may delete it mid-stream).
      perform 1 from private.turns t
       where t.user_id = v_user and t.conversation_id = v_conversation
         and t.client_message_id = v_client and t.state = 'streaming';
      if found then
        raise exception 'a turn with this clientMessageId is in flight'
          using errcode = 'PT409', hint = 'turn_in_flight';
      end if;
    end if;

    perform private.check_guards(v_user, (v_turn -> 'reserve' ->> 'usd')::numeric,
                                 v_turn -> 'caps');

    if v_message_id is null then
      insert into public.messages (conversation_id, user_id, role, content, client_message_id,
                                   token_count)
      values (v_conversation, v_user, 'user', v_content, v_client,
              ceil(char_length(v_content) / 4.0)::integer)
      returning id, created_at into v_message_id, v_created_at;
    end if;

    insert into private.turns (turn_id, user_id, conversation_id, user_message_id,
                               client_message_id, reserve_usd, provider, model,
                               input_usd_per_mtok, expires_at)
    values (v_turn_id, v_user, v_conversation, v_message_id, v_client,
            greatest((v_turn -> 'reserve' ->> 'usd')::numeric, 0),
            coalesce(v_turn -> 'reserve' ->> 'provider', 'unknown'),
            coalesce(v_turn -> 'reserve' ->> 'model', 'unknown'),
            greatest(coalesce((v_turn -> 'reserve' ->> 'input_usd_per_mtok')::numeric, 0), 0),
            now() + make_interval(secs => greatest((v_turn ->> 'lease_seconds')::integer, 1)));
  end if;

  select h.history, h.tokens into v_history, v_history_tokens
    from private.history_window(v_conversation, v_user, v_created_at, v_message_id,
                                (v_turn ->> 'history_tokens')::integer,
                                (v_turn ->> 'history_messages')::integer) h;

  update private.turns t
     set input_tokens_estimate = v_history_tokens
                                 + greatest(coalesce((v_turn ->> 'system_tokens')::integer, 0), 0)
   where t.turn_id = v_turn_id;

  return jsonb_build_object('user_message_id', v_message_id, 'history', v_history);
end;
$$;

-- p_record: {"v":1, "user_id", "turn_id", "conversation_id",
--            "message": null | {"id", "content", "status", "token_count"},
--            "usage": [{"attempt_id", "provider", "model", "tokens_in", "tokens_out",
--                       "cache_read_tokens", "cache_write_tokens", "cost_usd", "status",
--                       "estimated", "ttft_ms", "duration_ms", "price_source"}...]}
-- Idempotent (the outbox may replay it). As a user: only their own turn; as the service role
-- (outbox replay after the user's token expired): any attested turn.
create function public.chat_finish(p_record text, p_attestation text)
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
        status text, estimated boolean, ttft_ms integer, duration_ms integer, price_source text
      )
  ), inserted as (
    insert into public.usage_logs (request_id, turn_id, attempt_id, user_id, conversation_id,
                                   message_id, provider, model, tokens_in, tokens_out,
                                   cache_read_tokens, cache_write_tokens, cost_usd, status,
                                   estimated, ttft_ms, duration_ms, price_source)
    select i.attempt_id, v_turn_id, i.attempt_id, v_user, v_conversation, v_message_id,
           coalesce(i.provider, 'unknown'), coalesce(i.model, 'unknown'),
           coalesce(i.tokens_in, 0), coalesce(i.tokens_out, 0),
           coalesce(i.cache_read_tokens, 0), coalesce(i.cache_write_tokens, 0),
           coalesce(i.cost_usd, 0), coalesce(i.status, 'completed'),
           coalesce(i.estimated, false), i.ttft_ms, i.duration_ms, i.price_source
      from incoming i
     where i.attempt_id is not null
    on conflict (request_id) do nothing
    returning id
  )
  select array_agg(id order by id) into v_usage_ids from inserted;

  update private.turns t
     set state = 'finished', finished_at = now(), parts = null,
         token_lengths = v_record -> 'replay' -> 'token_lengths',
         final = v_record -> 'replay' -> 'final'
   where t.turn_id = v_turn_id and t.state <> 'finished';

  return jsonb_build_object('message_id', v_message_id,
                            'usage_ids', coalesce(to_jsonb(v_usage_ids), '[]'::jsonb));
end;
$$;

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "lease_seconds"}: the stream is alive, extend its
-- lease. Returns whether a streaming turn was extended.
create function public.chat_renew(p_turn text, p_attestation text)
  returns boolean
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
begin
  v_turn := private.attested_call('chat_renew', p_turn, p_attestation);
  update private.turns t
     set expires_at = now() + make_interval(secs => greatest((v_turn ->> 'lease_seconds')::integer, 1))
   where t.turn_id = (v_turn ->> 'turn_id')::uuid
     and t.user_id = (v_turn ->> 'user_id')::uuid
     and t.state = 'streaming';
  return found;
end;
$$;

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "from": n, "parts": [token...]}: the producing
-- worker's client left, so it checkpoints the tokens after the first n for a resume on any worker.
-- Returns whether someone follows the turn from another worker (then the producer keeps going).
create function public.chat_checkpoint(p_turn text, p_attestation text)
  returns boolean
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
  v_followed timestamptz;
begin
  v_turn := private.attested_call('chat_checkpoint', p_turn, p_attestation);
  update private.turns t
     set parts = coalesce(t.parts, '[]'::jsonb) || coalesce(v_turn -> 'parts', '[]'::jsonb)
   where t.turn_id = (v_turn ->> 'turn_id')::uuid
     and t.user_id = (v_turn ->> 'user_id')::uuid
     and t.state = 'streaming'
     and coalesce(jsonb_array_length(t.parts), 0) = (v_turn ->> 'from')::integer
  returning t.followed_at into v_followed;
  return v_followed is not null and v_followed > now() - interval '3 seconds';
end;
$$;

-- A resume on a worker that is not producing the turn: the caller's own turn only (anyone else's,
-- or none, is null: the edge answers 404). Marks the turn followed, so its producer keeps it alive
-- past the grace window. Returns {"state", "created_at", "parts": tokens after p_after (while
-- streaming), "token_lengths", "final", "message_id", "content" (once finished)}.
create function public.chat_turn_progress(p_turn_id uuid, p_after integer default 0)
  returns jsonb
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_user uuid := (select auth.uid());
  v_turn private.turns%rowtype;
  v_after integer := greatest(coalesce(p_after, 0), 0);
  v_message record;
begin
  if v_user is null then
    return null;
  end if;
  update private.turns t
     set followed_at = now()
   where t.turn_id = p_turn_id and t.user_id = v_user
  returning t.* into v_turn;
  if not found then
    return null;
  end if;
  select m.id, m.content into v_message
    from public.messages m
   where m.turn_id = p_turn_id and m.user_id = v_user and m.role = 'assistant'
   limit 1;
  return jsonb_build_object(
    'state', v_turn.state,
    'created_at', v_turn.created_at,
    'parts', case when v_turn.state = 'streaming'
                  then coalesce((select jsonb_agg(e.value order by e.ord)
                                   from jsonb_array_elements(v_turn.parts)
                                        with ordinality as e(value, ord)
                                  where e.ord > v_after), '[]'::jsonb)
                  else '[]'::jsonb end,
    'parts_total', coalesce(jsonb_array_length(v_turn.parts), 0),
    'token_lengths', v_turn.token_lengths,
    'final', v_turn.final,
    'message_id', v_message.id,
    'content', v_message.content
  );
end;
$$;

-- The sweeper (the service's outbox loop calls it with the service role; pg_cron may too): turns
-- whose worker died become abandoned usage rows. Returns how many.
create function public.chat_sweep()
  returns integer
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
begin
  if (select auth.role()) is distinct from 'service_role' then
    raise exception 'service role only' using errcode = '42501';
  end if;
  return private.abandon_expired(null);
end;
$$;

-- Pre-flight (`chat-stream check`): does the service's key match one the database holds?
create function public.chat_attestation_check(p_probe text, p_mac text)
  returns boolean
  language sql
  stable
  security definer
  set search_path = ''
as $$
  select private.attested('check', p_probe, p_mac)
$$;

revoke all on function public.chat_begin(text, text) from public, anon;
revoke all on function public.chat_finish(text, text) from public, anon;
revoke all on function public.chat_renew(text, text) from public, anon;
revoke all on function public.chat_sweep() from public, anon, authenticated;
revoke all on function public.chat_checkpoint(text, text) from public, anon;
revoke all on function public.chat_turn_progress(uuid, integer) from public, anon;
grant execute on function public.chat_checkpoint(text, text) to authenticated;
grant execute on function public.chat_turn_progress(uuid, integer) to authenticated;
revoke all on function public.chat_attestation_check(text, text) from public, anon;
grant execute on function public.chat_begin(text, text) to authenticated;
grant execute on function public.chat_finish(text, text) to authenticated, service_role;
grant execute on function public.chat_renew(text, text) to authenticated;
grant execute on function public.chat_sweep() to service_role;
grant execute on function public.chat_attestation_check(text, text) to authenticated, service_role;
