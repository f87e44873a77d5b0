-- Provider-reported cost (issue 26): what the provider says a request cost, next to ours.
--
-- usage_logs.provider_cost_usd: OpenRouter (and gateways like it) report the charge in the last
-- chunk of the stream (`usage.cost`); the service stores it as reported, null when the provider
-- says nothing. cost_usd stays our table price and stays what the guards and the rollup count:
-- the two are compared, not merged (usage_cost_mismatches, the report's reconciliation table).
--
-- chat_finish is the same function as in 20261201000100_attested_turns with one more usage
-- field, `provider_cost_usd` (a decimal string or null; a negative or absurd value is stored as
-- null). The attested contract is unchanged: the MAC covers the record's exact text, so the new
-- field is attested like every other; records without it (older workers, the outbox) store null.

alter table public.usage_logs
  add column provider_cost_usd numeric(14, 8) check (provider_cost_usd >= 0);
comment on column public.usage_logs.provider_cost_usd is
  'What the provider reported this attempt cost (OpenRouter usage.cost, plus the upstream cost '
  'when BYOK); null: not reported. cost_usd is our table price.';

-- p_record: as in 20261201000100, each usage row may carry "provider_cost_usd".
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

  update private.turns t
     set state = 'finished', finished_at = now(), parts = null,
         token_lengths = v_record -> 'replay' -> 'token_lengths',
         final = v_record -> 'replay' -> 'final'
   where t.turn_id = v_turn_id and t.state <> 'finished';

  return jsonb_build_object('message_id', v_message_id,
                            'usage_ids', coalesce(to_jsonb(v_usage_ids), '[]'::jsonb));
end;
$$;

-- Reconciliation: turns whose provider-reported cost differs from the table price ---------------
-- One row per (turn, user, provider, model) with a reported cost whose |provider - table| is
-- more than p_tolerance USD, largest difference first. Raw rows (a per-turn question), RLS
-- applies (invoker): a user sees only their own, the service role everyone.
create function public.usage_cost_mismatches(
  p_since timestamptz default null,
  p_until timestamptz default null,
  p_user_id uuid default null,
  p_model text default null,
  p_tolerance numeric default 0
)
  returns table (
    turn_id uuid,
    user_id uuid,
    provider text,
    model text,
    requests bigint,
    cost_usd numeric,
    provider_cost_usd numeric,
    difference_usd numeric,
    first_at timestamptz
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
    select t.turn_id, t.user_id, t.provider, t.model, t.requests, t.cost_usd,
           t.provider_cost_usd, t.provider_cost_usd - t.cost_usd as difference_usd, t.first_at
      from (
        select coalesce(l.turn_id, l.request_id) as turn_id, l.user_id, l.provider, l.model,
               count(*) as requests, sum(l.cost_usd) as cost_usd,
               sum(l.provider_cost_usd) as provider_cost_usd, min(l.created_at) as first_at
          from public.usage_logs l
         where l.provider_cost_usd is not null
           and l.created_at >= coalesce(p_since, '-infinity'::timestamptz)
           and l.created_at < coalesce(p_until, 'infinity'::timestamptz)
           and (p_user_id is null or l.user_id = p_user_id)
           and (p_model is null or l.model = p_model)
         group by 1, 2, 3, 4
      ) t
     where abs(t.provider_cost_usd - t.cost_usd) > greatest(coalesce(p_tolerance, 0), 0)
     order by abs(t.provider_cost_usd - t.cost_usd) desc, t.turn_id;
end;
$$;

comment on function public.usage_cost_mismatches(timestamptz, timestamptz, uuid, text, numeric)
  is 'Turns whose provider-reported cost differs from cost_usd by more than p_tolerance USD in '
  '[p_since, p_until); RLS applies.';
revoke all on function public.usage_cost_mismatches(timestamptz, timestamptz, uuid, text, numeric)
  from public, anon;
grant execute on function
  public.usage_cost_mismatches(timestamptz, timestamptz, uuid, text, numeric)
  to authenticated, service_role;
