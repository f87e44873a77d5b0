-- A cache-stable history window (issue 15, prompt caching).
--
-- The window of 20261201000100 dropped the oldest message one at a time, so its first message (and
-- with it the whole prompt prefix a provider caches) changed on every turn once the budget was
-- full: no turn could read the previous turn's cache. This one moves its start in blocks.
--
-- The policy. Number the conversation's messages 1..n up to the new message and give each the
-- tokens before it (T_i, counted from the content, ⌈chars/4⌉, whatever a row claims). E is the
-- conversation's tokens up to and including the new message, B the budget, K = max(⌊B/2⌋, 1)
-- the block. The window starts at the first message with
--     T_i >= S = ceil((E - B) / K) * K       (S <= 0: from the first message)
-- so it holds E - T_start <= E - S <= B tokens, and its start moves only when E crosses a
-- multiple of K: between two such moves every turn's prompt begins with the same bytes. The
-- message cap N (HISTORY_MAX_MESSAGES, at most 1000) works the same way on the message count:
-- messages after ceil((n - N) / M) * M, M = max(⌊N/2⌋, 1). The new message is always in, even
-- when it alone is over the budget.
--
-- Worked example, B = 6000 (K = 3000), each turn a 200-token question and a 400-token answer:
--   turns 1-10: E = 200, 800, ..., 5600 <= B, S <= 0: the whole conversation, start unchanged.
--   turn 11:    E = 6200, S = ceil(200 / 3000) * 3000 = 3000: the window starts at turn 6's
--               question (T = 3000) and holds 3200 tokens. One cache miss.
--   turns 12-15: E = 6800 ... 8600, S stays 3000: the window grows 3800 ... 5600 tokens, every
--               turn's prefix byte-identical to the last turn's prompt (cache reads).
--   turn 16:    E = 9200, S = 6000: the start jumps a block to turn 11, 3200 tokens again.
-- The window of 20261201000100 would have changed its first message on every turn from turn 11.
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
     cross join lateral (select ceil(char_length(m.content) / 4.0)::integer as tokens) t
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
