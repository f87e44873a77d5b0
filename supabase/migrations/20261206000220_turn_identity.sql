-- A turn's identity: what a clientMessageId, a conversation and an abandoned turn stand for
-- (docs/design.md §13).
--
-- * Replays count (issue 22, row 7). A retry of an answered clientMessageId is a request: it
--   counts against the per-minute rate limit like a turn (`private.replays`) and answers with
--   the original turn's id. It still reserves and bills nothing.
-- * One clientMessageId, one message (row 8). The same clientMessageId with a different message
--   is PT409 `client_message_id_reused`, and nothing is stored: before, the old answer came back
--   and the new text was dropped.
-- * Conversations are matched by identity, not only by id (row 9). A turn keeps its
--   conversation's `created_at`; a finish (or an abandoned turn) whose conversation was deleted
--   and re-created under the same id stores its usage with conversation_id null and skips the
--   message, exactly as for a deleted one; every lookup filters by the turn's user.
-- * An abandoned turn bills what it streamed (row 6): the input estimate plus the output the
--   service last reported (renewals and checkpoints, 20261206000200), each at its own rate,
--   flagged estimated; `output_unknown` only when no output was ever reported.
-- * The user message's token_count is its UTF-8 byte count, like the history window (row 5).
--
-- Every statement stands alone (the Supabase CLI runs a file statement by statement).

alter table private.turns
  add column if not exists output_usd_per_mtok numeric(14, 6) not null default 0
    check (output_usd_per_mtok >= 0);
alter table private.turns add column if not exists conversation_created_at timestamptz;
comment on column private.turns.conversation_created_at is
  'The conversation''s created_at at begin: a conversation deleted and re-created under the same '
  'id is not this turn''s.';

create table if not exists private.replays (
  id bigint generated always as identity primary key,
  user_id uuid not null references public.users (id) on delete cascade,
  turn_id uuid not null,
  created_at timestamptz not null default now()
);
comment on table private.replays is
  'Retries of answered clientMessageIds (the stored answer sent again): they count against the '
  'per-minute rate limit; rows older than a minute are deleted by the user''s next begin.';
create index if not exists replays_user_created_idx on private.replays (user_id, created_at);
revoke all on private.replays from public, anon, authenticated, service_role;
grant select on private.replays to service_role;

-- The per-minute rate limit alone: turns and replays begun in the last minute -------------------
create or replace function private.check_rate(p_user uuid, p_caps jsonb)
  returns void
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_now timestamptz := now();
  v_rpm integer;
  v_turns integer;
  v_replays integer;
  v_oldest timestamptz;
  v_oldest_replay timestamptz;
  v_wait integer;
begin
  select l.rate_limit_per_minute into v_rpm from public.user_limits l where l.user_id = p_user;
  v_rpm := coalesce(v_rpm, (p_caps ->> 'rate_per_minute')::integer, 0);
  if v_rpm <= 0 then
    return;
  end if;
  select count(*), min(t.created_at) into v_turns, v_oldest from private.turns t
   where t.user_id = p_user and t.created_at > v_now - interval '1 minute';
  select count(*), min(r.created_at) into v_replays, v_oldest_replay from private.replays r
   where r.user_id = p_user and r.created_at > v_now - interval '1 minute';
  if v_turns + v_replays >= v_rpm then
    v_wait := ceil(extract(epoch from (least(v_oldest, v_oldest_replay) + interval '1 minute'
                                       - v_now)));
    raise exception 'rate limit: % requests per minute', v_rpm
      using errcode = 'PT429', detail = format('retry_after=%s', greatest(v_wait, 1)),
            hint = 'rate_limited';
  end if;
end;
$$;

-- Guards: the rate limit (turns and replays), then streams and budgets; 0 disables a guard ------
create or replace function private.check_guards(p_user uuid, p_reserve numeric, p_caps jsonb)
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
  v_streams integer;
  v_count integer;
  v_spent numeric;
  v_reserved numeric;
  v_wait integer;
begin
  perform private.check_rate(p_user, p_caps);

  select * into v_limits from public.user_limits l where l.user_id = p_user;
  v_daily := coalesce(v_limits.daily_budget_usd, (p_caps ->> 'daily_usd')::numeric, 0);
  v_monthly := coalesce(v_limits.monthly_budget_usd, (p_caps ->> 'monthly_usd')::numeric, 0);
  v_streams := coalesce(v_limits.max_concurrent_streams, (p_caps ->> 'max_streams')::integer, 0);

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

-- Expired turns become abandoned usage ------------------------------------------------------------
-- Input is the estimate made at begin (system prompt + history window), output what the service
-- last reported streaming (0 and flagged `output_unknown` when it never did), each priced at the
-- reserved model's rate. The conversation only if it is still the turn's own (same user, same
-- created_at). p_user null: every user (the sweeper).
create or replace function private.abandon_expired(p_user uuid)
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
           (select c.id from public.conversations c
             where c.id = e.conversation_id and c.user_id = e.user_id
               and (e.conversation_created_at is null
                    or c.created_at = e.conversation_created_at)),
           e.provider, e.model, e.input_tokens_estimate, coalesce(e.output_tokens_estimate, 0),
           round(e.input_tokens_estimate * e.input_usd_per_mtok / 1000000
                 + coalesce(e.output_tokens_estimate, 0) * e.output_usd_per_mtok / 1000000, 8),
           'abandoned', true, e.output_tokens_estimate is null, 'estimate:abandoned-turn'
      from expired e
    on conflict (request_id) do nothing
    returning 1
  )
  select count(*) into v_count from inserted;
  return v_count;
end;
$$;

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "conversation_id", "content", "client_message_id",
--          "history_tokens", "history_messages", "system_tokens", "lease_seconds",
--          "reserve": {"usd", "provider", "model", "input_usd_per_mtok", "output_usd_per_mtok"},
--          "caps": {"daily_usd", "monthly_usd", "rate_per_minute", "max_streams"}}
-- Returns {"user_message_id", "history": [{"role","content"}...]} or, for a retry of a turn
-- already answered, {"user_message_id", "replayed": true, "turn_id": <the original turn>,
-- "answer": {"id","content"}}.
create or replace function public.chat_begin(p_turn text, p_attestation text)
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
  v_conversation_created_at timestamptz;
  v_client uuid;
  v_content text;
  v_stored_content text;
  v_message_id uuid;
  v_created_at timestamptz;
  v_answer_id uuid;
  v_answer text;
  v_answer_turn uuid;
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
  select c.created_at into v_conversation_created_at
    from public.conversations c where c.id = v_conversation and c.user_id = v_user;
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
    delete from private.replays r
     where r.user_id = v_user and r.created_at <= now() - interval '1 minute';

    if v_client is not null then
      select m.id, m.created_at, m.content into v_message_id, v_created_at, v_stored_content
        from public.messages m
       where m.conversation_id = v_conversation and m.client_message_id = v_client
         and m.user_id = v_user and m.role = 'user';
      if found and v_stored_content is distinct from v_content then
        -- One clientMessageId, one message: a different text under it is a client bug (or a
        -- guess), not a retry. Nothing is stored.
        raise exception 'this clientMessageId was sent with a different message'
          using errcode = 'PT409', hint = 'client_message_id_reused';
      end if;
      if found then
        -- A retry of a turn that has a completed answer gets that answer back: nothing is
        -- generated, reserved or billed again, but it is a request (the rate limit counts it).
        -- A failed or partial turn is generated anew.
        select m.id, m.content, m.turn_id into v_answer_id, v_answer, v_answer_turn
          from public.messages m
         where m.conversation_id = v_conversation
           and m.user_id = v_user
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
          perform private.check_rate(v_user, v_turn -> 'caps');
          insert into private.replays (user_id, turn_id)
          values (v_user, coalesce(v_answer_turn, v_turn_id));
          return jsonb_build_object(
            'user_message_id', v_message_id,
            'replayed', true,
            'turn_id', v_answer_turn,
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
              octet_length(convert_to(v_content, 'UTF8')))
      returning id, created_at into v_message_id, v_created_at;
    end if;

    insert into private.turns (turn_id, user_id, conversation_id, conversation_created_at,
                               user_message_id, client_message_id, reserve_usd, provider, model,
                               input_usd_per_mtok, output_usd_per_mtok, expires_at)
    values (v_turn_id, v_user, v_conversation, v_conversation_created_at, v_message_id, v_client,
            greatest((v_turn -> 'reserve' ->> 'usd')::numeric, 0),
            coalesce(v_turn -> 'reserve' ->> 'provider', 'unknown'),
            coalesce(v_turn -> 'reserve' ->> 'model', 'unknown'),
            greatest(coalesce((v_turn -> 'reserve' ->> 'input_usd_per_mtok')::numeric, 0), 0),
            greatest(coalesce((v_turn -> 'reserve' ->> 'output_usd_per_mtok')::numeric, 0), 0),
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

-- As before (20261201000100), but the conversation must be the turn's own: same id, same user,
-- same created_at. Idempotent (the outbox may replay it); as the service role, any attested turn.
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
  v_conversation_created_at timestamptz;
  v_message_id uuid;
  v_usage_ids bigint[];
begin
  v_record := private.attested_call('chat_finish', p_record, p_attestation, true);
  v_user := (v_record ->> 'user_id')::uuid;
  v_turn_id := (v_record ->> 'turn_id')::uuid;

  -- Serialises with the sweeper: a turn is either finished here or abandoned there, never both.
  select t.state, t.conversation_created_at into v_state, v_conversation_created_at
    from private.turns t
   where t.turn_id = v_turn_id and t.user_id = v_user
     for update;

  -- The conversation may have been deleted while the answer streamed (and perhaps re-created
  -- under the same id, which makes it another conversation): keep the usage anyway.
  select c.id into v_conversation from public.conversations c
   where c.id = (v_record ->> 'conversation_id')::uuid and c.user_id = v_user
     and (v_conversation_created_at is null or c.created_at = v_conversation_created_at);

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

revoke all on function private.check_rate(uuid, jsonb) from public, anon, authenticated;
revoke all on function private.check_guards(uuid, numeric, jsonb)
  from public, anon, authenticated;
revoke all on function private.abandon_expired(uuid) from public, anon, authenticated;
revoke all on function public.chat_begin(text, text) from public, anon;
revoke all on function public.chat_finish(text, text) from public, anon, authenticated;
grant execute on function public.chat_begin(text, text) to authenticated;
grant execute on function public.chat_finish(text, text) to service_role;
