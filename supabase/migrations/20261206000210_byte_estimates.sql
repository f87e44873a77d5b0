-- Token estimates are upper bounds (docs/design.md §3, §13): the history window counts a message's
-- UTF-8 bytes as its tokens, whatever a row's token_count says.
--
-- The window of 20261201000200 counted ceil(characters / 4). Real tokenizers produce one token or
-- more per code point for emoji, CJK and combining marks, so 8,000 of them counted as ~2,000
-- tokens: the window (and with it the prompt, the turn's input estimate and its abandoned bill)
-- could be several times larger than the budget said. Every byte-level BPE tokenizer (the ones
-- Anthropic and OpenAI use) makes each token of at least one UTF-8 byte, so the byte count of a
-- text is never below its token count: no text can make this estimate smaller than what the
-- provider bills. English text is counted about four times higher than before, so the same
-- HISTORY_TOKEN_BUDGET holds about a quarter of the characters it held.
--
-- Same policy (blocks of B/2), same signature; only the count changed. The service counts the same
-- way (`app.chat.accounting.estimate_tokens`).
create or replace function private.history_window(
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
  with positioned as (
    select m.id, m.role, m.content, m.created_at, t.tokens,
           sum(t.tokens) over w - t.tokens as before,
           row_number() over w as n,
           sum(t.tokens) over () as total,
           count(*) over () as messages
      from public.messages m
     cross join lateral (select octet_length(convert_to(m.content, 'UTF8')) as tokens) t
     where m.conversation_id = p_conversation
       and m.user_id = p_user
       and m.role in ('user', 'assistant')
       and m.content <> ''
       and (m.created_at, m.id) <= (p_until, p_message_id)
    window w as (order by m.created_at, m.id rows between unbounded preceding and current row)
  ), policy as (
    select greatest(p_budget, 0) as budget,
           greatest(greatest(p_budget, 0) / 2, 1) as block,
           greatest(least(p_max_messages, 1000), 1) as cap,
           greatest(greatest(least(p_max_messages, 1000), 1) / 2, 1) as step
  )
  select coalesce(jsonb_agg(jsonb_build_object('role', w.role, 'content', w.content)
                            order by w.created_at, w.id), '[]'::jsonb),
         coalesce(sum(w.tokens), 0)::integer
    from positioned w
   cross join policy p
   where w.id = p_message_id
      or (w.before >= ceil((w.total - p.budget)::numeric / p.block) * p.block
          and w.n > ceil((w.messages - p.cap)::numeric / p.step) * p.step)
$$;

revoke all on function private.history_window(uuid, uuid, timestamptz, uuid, integer, integer)
  from public, anon, authenticated;
