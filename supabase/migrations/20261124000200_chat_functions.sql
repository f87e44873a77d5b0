-- The chat stream's two database round trips, as SQL functions called through PostgREST RPC.
--
-- Both are SECURITY INVOKER: they run as the calling user, so RLS decides exactly as it would for
-- table calls, and one HTTP round trip replaces several. `chat_finish` is idempotent (the outbox may
-- replay it) and takes the user id explicitly so the service role can replay a spooled write after
-- the user's token expired; for a user, RLS still requires user_id = auth.uid().

-- A message id the service generates before the write, so the `done` event can name it even when the
-- write is spooled and replayed later.
alter table public.messages add column request_id uuid;
comment on column public.messages.request_id is 'The chat-stream request that produced this message.';

create function public.chat_begin(
  p_conversation_id uuid,
  p_content text,
  p_client_message_id uuid default null,
  p_history_tokens integer default 6000,
  p_history_messages integer default 50
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

  -- The most recent messages up to and including this one that fit the token budget, oldest
  -- first. The new message is always included, whatever its size.
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
  p_usage jsonb
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

  return jsonb_build_object('message_id', v_message_id,
                            'usage_ids', coalesce(to_jsonb(v_usage_ids), '[]'::jsonb));
end;
$$;

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

revoke all on function public.chat_begin(uuid, text, uuid, integer, integer) from public, anon;
revoke all on function public.chat_finish(uuid, uuid, jsonb, jsonb) from public, anon;
grant execute on function public.chat_begin(uuid, text, uuid, integer, integer)
  to authenticated, service_role;
grant execute on function public.chat_finish(uuid, uuid, jsonb, jsonb)
  to authenticated, service_role;
revoke all on function public.chat_ping() from public;
grant execute on function public.chat_ping() to anon, authenticated, service_role;
