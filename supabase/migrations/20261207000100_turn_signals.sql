-- Stop polls, batched per worker: while its clients listen, a worker asks about all its turns in
-- one call every STOP_POLL_SECONDS instead of one `chat_checkpoint_signals` call per turn (1,000
-- open streams were 1,000 calls a second through PostgREST). Turns no client listens to still
-- checkpoint one by one: they write their tokens.
--
-- p_turns: {"v":1, "iat", "turns": [{"user_id", "turn_id"}...]}, at most 1,000 turns, attested and
-- sent by the service with the secret key (docs/design.md §13). Reads only. Returns
-- {"<turn_id>": {"followed": a worker elsewhere follows it, "stop": its user asked to stop}} for
-- each listed turn whose user is the one listed with it; other pairs are left out.
create function public.chat_turn_signals(p_turns text, p_attestation text)
  returns jsonb
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_call jsonb;
begin
  v_call := private.attested_call('chat_turn_signals', p_turns, p_attestation, true);
  if jsonb_typeof(v_call -> 'turns') is distinct from 'array' then
    raise exception 'turns must be an array' using errcode = '22023';
  end if;
  if jsonb_array_length(v_call -> 'turns') > 1000 then
    raise exception 'at most 1000 turns a call' using errcode = '22023';
  end if;
  return coalesce(
    (select jsonb_object_agg(
              t.turn_id::text,
              jsonb_build_object(
                'followed', coalesce(t.followed_at > now() - interval '3 seconds', false),
                'stop', t.stop_requested_at is not null))
       from jsonb_to_recordset(v_call -> 'turns') as r(user_id uuid, turn_id uuid)
       join private.turns t on t.turn_id = r.turn_id and t.user_id = r.user_id),
    '{}'::jsonb);
end;
$$;

revoke all on function public.chat_turn_signals(text, text) from public, anon, authenticated;
grant execute on function public.chat_turn_signals(text, text) to service_role;
