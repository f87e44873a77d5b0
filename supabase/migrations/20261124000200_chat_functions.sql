-- The chat stream's two database round trips, as SQL functions called through PostgREST RPC.
--
-- Both are SECURITY INVOKER: they run as the calling user, so RLS decides exactly as it would for
-- table calls, and one HTTP round trip replaces several. `chat_finish` is idempotent (the outbox may
-- replay it) and takes the user id explicitly so the service role can replay a spooled write after
-- the user's token expired; for a user, RLS still requires user_id = auth.uid(). `chat_begin` checks
-- the spend guards and reserves (`private.guard_and_reserve`, previous migration) and
-- `chat_finish` settles the reservation, so the guards cost no extra round trip.

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

-- /readyz: proves the Data API and the database behind it answer, without touching user data.
create function public.chat_ping()
  returns boolean
  language sql
  stable
  security invoker
  set search_path = ''
as $$
  select true
$$;

revoke all on function public.chat_ping() from public;
grant execute on function public.chat_ping() to anon, authenticated, service_role;
