-- The service's own bookkeeping never depends on the user's token (docs/design.md §13).
--
-- The user's access token is checked once, when a turn begins (`chat_begin`, as the caller). What
-- the service records after that (the lease renewals, the checkpoints for a resume, the finish,
-- and the reads a follower on another worker makes) it records as itself, with the secret
-- (service-role) key, and attested as before. A turn that outlives its user's token (an answer
-- that starts in the last minutes of the token's life) so keeps its lease, its place under the
-- caps and its reservation until it is finished or its worker is really gone, and its usage is
-- stored at once instead of through the outbox.
--
-- * chat_renew and chat_checkpoint accept the service role, like chat_finish; `authenticated` may
--   no longer execute any of the three (nor chat_attestation_check: `chat-stream check` calls it
--   with the secret key). Renewals and checkpoints also carry the output the turn has streamed
--   so far (an upper bound in tokens), which an abandoned turn is billed with
--   (20261206000220_turn_identity).
-- * chat_turn_progress(uuid, integer), a definer function any signed-in user could call without
--   an attestation (splinter 0029), is replaced by an attested, service-only
--   chat_turn_progress(text, text). It reads; it marks the turn followed only when the payload
--   asks to (the follower does once per grace window, not on every poll).
--
-- Every statement stands alone (the Supabase CLI runs a file statement by statement).

alter table private.turns
  add column if not exists output_tokens_estimate integer
    check (output_tokens_estimate >= 0);
comment on column private.turns.output_tokens_estimate is
  'Output streamed so far (an upper bound, tokens), as of the last renewal or checkpoint; null: '
  'never reported.';

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "lease_seconds", "output_tokens"?}: the stream is
-- alive, extend its lease (and record its output so far). As the service role or the turn's own
-- user. Returns whether a streaming turn was extended.
create or replace function public.chat_renew(p_turn text, p_attestation text)
  returns boolean
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
  v_output integer;
begin
  v_turn := private.attested_call('chat_renew', p_turn, p_attestation, true);
  v_output := case when v_turn ->> 'output_tokens' is not null
                   then least(greatest((v_turn ->> 'output_tokens')::numeric, 0), 2147483647)
              end;
  update private.turns t
     set expires_at = now()
                      + make_interval(secs => least(greatest((v_turn ->> 'lease_seconds')::bigint,
                                                             1), 86400)::integer),
         output_tokens_estimate = greatest(t.output_tokens_estimate, v_output)
   where t.turn_id = (v_turn ->> 'turn_id')::uuid
     and t.user_id = (v_turn ->> 'user_id')::uuid
     and t.state = 'streaming';
  return found;
end;
$$;

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "from": n, "parts": [token...], "output_tokens"?}:
-- the producing worker's client left, so it checkpoints the tokens after the first n for a resume
-- on any worker. Returns whether someone follows the turn from another worker.
create or replace function public.chat_checkpoint(p_turn text, p_attestation text)
  returns boolean
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_turn jsonb;
  v_followed timestamptz;
  v_output integer;
begin
  v_turn := private.attested_call('chat_checkpoint', p_turn, p_attestation, true);
  v_output := case when v_turn ->> 'output_tokens' is not null
                   then least(greatest((v_turn ->> 'output_tokens')::numeric, 0), 2147483647)
              end;
  update private.turns t
     set parts = coalesce(t.parts, '[]'::jsonb) || coalesce(v_turn -> 'parts', '[]'::jsonb),
         output_tokens_estimate = greatest(t.output_tokens_estimate, v_output)
   where t.turn_id = (v_turn ->> 'turn_id')::uuid
     and t.user_id = (v_turn ->> 'user_id')::uuid
     and t.state = 'streaming'
     and coalesce(jsonb_array_length(t.parts), 0) = (v_turn ->> 'from')::integer
  returning t.followed_at into v_followed;
  return v_followed is not null and v_followed > now() - interval '3 seconds';
end;
$$;

drop function if exists public.chat_turn_progress(uuid, integer);

-- p_turn: {"v":1, "iat", "user_id", "turn_id", "after": n, "follow": bool}: a resume on a worker
-- that is not producing the turn, for the user the service verified. That user's own turn only
-- (anyone else's, or none, is null: the edge answers 404). With "follow", marks the turn followed
-- so its producer keeps it alive past the grace window; otherwise it only reads. Returns
-- {"state", "created_at", "parts": tokens after n (while streaming), "parts_total",
-- "token_lengths", "final", "message_id", "content" (once finished)}.
create function public.chat_turn_progress(p_turn text, p_attestation text)
  returns jsonb
  language plpgsql
  volatile
  security definer
  set search_path = ''
as $$
declare
  v_call jsonb;
  v_user uuid;
  v_turn_id uuid;
  v_after integer;
  v_turn private.turns%rowtype;
  v_message record;
begin
  v_call := private.attested_call('chat_turn_progress', p_turn, p_attestation, true);
  v_user := (v_call ->> 'user_id')::uuid;
  v_turn_id := (v_call ->> 'turn_id')::uuid;
  v_after := least(greatest(coalesce((v_call ->> 'after')::bigint, 0), 0), 2147483647)::integer;
  if coalesce((v_call ->> 'follow')::boolean, false) then
    update private.turns t
       set followed_at = now()
     where t.turn_id = v_turn_id and t.user_id = v_user
    returning t.* into v_turn;
  else
    select * into v_turn from private.turns t where t.turn_id = v_turn_id and t.user_id = v_user;
  end if;
  if not found then
    return null;
  end if;
  select m.id, m.content into v_message
    from public.messages m
   where m.turn_id = v_turn_id and m.user_id = v_user and m.role = 'assistant'
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

revoke all on function public.chat_renew(text, text) from public, anon, authenticated;
revoke all on function public.chat_checkpoint(text, text) from public, anon, authenticated;
revoke all on function public.chat_finish(text, text) from public, anon, authenticated;
revoke all on function public.chat_turn_progress(text, text) from public, anon, authenticated;
revoke all on function public.chat_attestation_check(text, text) from public, anon, authenticated;
grant execute on function public.chat_renew(text, text) to service_role;
grant execute on function public.chat_checkpoint(text, text) to service_role;
grant execute on function public.chat_finish(text, text) to service_role;
grant execute on function public.chat_turn_progress(text, text) to service_role;
grant execute on function public.chat_attestation_check(text, text) to service_role;
