-- Stopping a turn (`POST /functions/v1/chat-stream/turns/<turn_id>/stop`): the owner's request
-- is a flag on the turn, so it works whichever worker or replica produces the turn; the producer
-- reads the flag with its checkpoints (`chat_checkpoint_signals`) and ends the turn at once: the
-- upstream closed, the partial answer stored and billed for what was generated.

alter table private.turns add column stop_requested_at timestamptz;

-- p_turn: {"v":1, "iat", "user_id", "turn_id"}, attested and sent by the service with the secret
-- key once it verified the user's token (docs/design.md §13: no definer function a signed-in user
-- may execute without an attestation). That user's own turn only. Flags it when it still streams
-- and returns its state: 'streaming' (now asked to stop), 'finished' or 'abandoned' (nothing left
-- to stop); null when it is not a turn of that user's (the edge answers 404). Writes no money: a
-- stopped turn is billed for what it generated, exactly as a client that leaves.
create function public.chat_stop(p_turn text, p_attestation text)
  returns text
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
  v_user uuid;
  v_turn_id uuid;
  v_state text;
begin
  v_turn := private.attested_call('chat_stop', p_turn, p_attestation, true);
  v_user := (v_turn ->> 'user_id')::uuid;
  v_turn_id := (v_turn ->> 'turn_id')::uuid;
  if v_user is null or v_turn_id is null then
    return null;
  end if;
  update private.turns t
     set stop_requested_at = coalesce(t.stop_requested_at, now())
   where t.turn_id = v_turn_id and t.user_id = v_user and t.state = 'streaming'
  returning t.state into v_state;
  if found then
    return v_state;
  end if;
  select t.state into v_state
    from private.turns t
   where t.turn_id = v_turn_id and t.user_id = v_user;
  return v_state;
end;
$$;

-- The producer's checkpoint, and what it must learn back. p_turn as for chat_checkpoint:
-- {"v":1, "iat", "user_id", "turn_id", "from": n, "parts": [token...], "output_tokens"?}, sent
-- as the service (20261206000200); with no parts (a turn whose client still listens) it writes
-- only the output streamed so far, which an abandoned turn is billed with. Returns {"followed": a worker
-- elsewhere follows the turn (keep going past the grace), "stop": its user asked to stop}.
create function public.chat_checkpoint_signals(p_turn text, p_attestation text)
  returns jsonb
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
  v_followed timestamptz;
  v_stop timestamptz;
  v_output integer;
begin
  v_turn := private.attested_call('chat_checkpoint_signals', p_turn, p_attestation, true);
  v_output := case when jsonb_typeof(v_turn -> 'output_tokens') = 'number'
                   then least(greatest((v_turn ->> 'output_tokens')::numeric, 0), 2147483647)
              end;
  if jsonb_typeof(v_turn -> 'parts') = 'array' and jsonb_array_length(v_turn -> 'parts') > 0 then
    update private.turns t
       set parts = coalesce(t.parts, '[]'::jsonb) || (v_turn -> 'parts'),
           output_tokens_estimate = greatest(t.output_tokens_estimate, v_output)
     where t.turn_id = (v_turn ->> 'turn_id')::uuid
       and t.user_id = (v_turn ->> 'user_id')::uuid
       and t.state = 'streaming'
       and coalesce(jsonb_array_length(t.parts), 0) = (v_turn ->> 'from')::integer;
  elsif v_output is not null then
    update private.turns t
       set output_tokens_estimate = greatest(t.output_tokens_estimate, v_output)
     where t.turn_id = (v_turn ->> 'turn_id')::uuid
       and t.user_id = (v_turn ->> 'user_id')::uuid
       and t.state = 'streaming';
  end if;
  select t.followed_at, t.stop_requested_at into v_followed, v_stop
    from private.turns t
   where t.turn_id = (v_turn ->> 'turn_id')::uuid
     and t.user_id = (v_turn ->> 'user_id')::uuid;
  return jsonb_build_object(
    'followed', coalesce(v_followed > now() - interval '3 seconds', false),
    'stop', v_stop is not null
  );
end;
$$;

revoke all on function public.chat_stop(text, text) from public, anon, authenticated;
revoke all on function public.chat_checkpoint_signals(text, text) from public, anon, authenticated;
grant execute on function public.chat_stop(text, text) to service_role;
grant execute on function public.chat_checkpoint_signals(text, text) to service_role;
