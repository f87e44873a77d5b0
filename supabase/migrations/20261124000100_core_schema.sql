-- Core schema for chat-stream: profiles, conversations, messages and per-request usage.
--
-- Rules (DESIGN §7): RLS on every table; a user sees and writes only their own rows; nobody writes
-- into another user's conversation or in another user's name; usage rows are append-only for users
-- and never negative. Policies use `(select auth.uid())` so it is evaluated once per statement;
-- every policy column and foreign key is indexed; functions pin `search_path`; GRANTs are explicit
-- (new Supabase projects no longer expose new tables automatically).

-- Profiles ---------------------------------------------------------------------------------------
create table public.users (
  id uuid primary key references auth.users (id) on delete cascade,
  email text,
  display_name text check (char_length(display_name) <= 200),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on table public.users is 'One profile row per auth user, created by a trigger on auth.users.';

create function public.handle_new_auth_user()
  returns trigger
  language plpgsql
  security definer
  set search_path = ''
as $$
begin
  insert into public.users (id, email, display_name)
  values (
    new.id,
    new.email,
    nullif(left(coalesce(new.raw_user_meta_data ->> 'display_name', new.raw_user_meta_data ->> 'name', ''), 200), '')
  )
  on conflict (id) do nothing;
  return new;
end;
$$;
revoke all on function public.handle_new_auth_user() from public, anon, authenticated;

create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function public.handle_new_auth_user();

create function public.touch_updated_at()
  returns trigger
  language plpgsql
  set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
revoke all on function public.touch_updated_at() from public, anon, authenticated;

create trigger users_touch_updated_at
  before update on public.users
  for each row execute function public.touch_updated_at();

-- Conversations ----------------------------------------------------------------------------------
create table public.conversations (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid() references public.users (id) on delete cascade,
  title text check (char_length(title) <= 500),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create index conversations_user_id_updated_at_idx on public.conversations (user_id, updated_at desc);

create trigger conversations_touch_updated_at
  before update on public.conversations
  for each row execute function public.touch_updated_at();

-- Messages ---------------------------------------------------------------------------------------
create table public.messages (
  id uuid primary key default gen_random_uuid(),
  conversation_id uuid not null references public.conversations (id) on delete cascade,
  user_id uuid not null default auth.uid() references public.users (id) on delete cascade,
  role text not null check (role in ('user', 'assistant', 'system')),
  content text not null,
  token_count integer check (token_count >= 0),
  status text not null default 'completed' check (status in ('completed', 'partial', 'error')),
  client_message_id uuid,
  request_id uuid,
  created_at timestamptz not null default clock_timestamp()
);
comment on column public.messages.request_id is 'The chat-stream request that produced this message.';
-- Serves "the latest N messages of a conversation" (an ordered index scan, no sort).
create index messages_conversation_id_created_at_idx
  on public.messages (conversation_id, created_at desc, id desc);
-- RLS adds `user_id = (select auth.uid())` to every user's query. With many users the planner
-- takes that as very selective and may start from the user index: ordered by conversation and
-- time after user_id, it still reads only the one conversation, never the user's whole history
-- (tests/supabase/test_schema.py; docs/benchmarks.md). Also covers the user_id foreign key.
create index messages_user_id_conversation_id_created_at_idx
  on public.messages (user_id, conversation_id, created_at desc, id desc);
-- A retried request with the same clientMessageId stores its user message once.
create unique index messages_conversation_client_message_key
  on public.messages (conversation_id, client_message_id)
  where client_message_id is not null;

-- Usage: one row per billed request ---------------------------------------------------------------
create table public.usage_logs (
  id bigint generated always as identity primary key,
  request_id uuid not null default gen_random_uuid(),
  user_id uuid not null default auth.uid() references public.users (id) on delete cascade,
  conversation_id uuid references public.conversations (id) on delete set null,
  message_id uuid references public.messages (id) on delete set null,
  provider text not null default 'unknown',
  model text not null,
  tokens_in integer not null default 0 check (tokens_in >= 0),
  tokens_out integer not null default 0 check (tokens_out >= 0),
  cache_read_tokens integer not null default 0 check (cache_read_tokens >= 0),
  cache_write_tokens integer not null default 0 check (cache_write_tokens >= 0),
  cost_usd numeric(14, 8) not null default 0 check (cost_usd >= 0),
  status text not null default 'completed' check (status in ('completed', 'partial', 'error')),
  estimated boolean not null default false,
  ttft_ms integer check (ttft_ms >= 0),
  duration_ms integer check (duration_ms >= 0),
  price_source text,
  created_at timestamptz not null default now(),
  constraint usage_logs_request_id_key unique (request_id)
);
comment on column public.usage_logs.tokens_in is
  'Uncached input tokens (Anthropic input_tokens; OpenAI prompt_tokens minus cached).';
comment on column public.usage_logs.estimated is
  'True when the provider did not report usage (disconnect, error) and tokens were estimated.';
comment on column public.usage_logs.price_source is
  'Where cost_usd came from: genai-prices@<version>, override:<file>, or fallback (unknown model).';
-- Per-user spend sums read only the cost column: index-only scans for the budget guards.
create index usage_logs_user_id_created_at_idx
  on public.usage_logs (user_id, created_at) include (cost_usd);
create index usage_logs_created_at_idx on public.usage_logs (created_at);
create index usage_logs_conversation_id_idx on public.usage_logs (conversation_id);
create index usage_logs_message_id_idx on public.usage_logs (message_id);

-- Row-level security -----------------------------------------------------------------------------
alter table public.users enable row level security;
alter table public.conversations enable row level security;
alter table public.messages enable row level security;
alter table public.usage_logs enable row level security;

create policy "users: read own profile" on public.users
  for select to authenticated
  using ((select auth.uid()) = id);
create policy "users: update own profile" on public.users
  for update to authenticated
  using ((select auth.uid()) = id)
  with check ((select auth.uid()) = id);

create policy "conversations: read own" on public.conversations
  for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "conversations: create own" on public.conversations
  for insert to authenticated
  with check ((select auth.uid()) = user_id);
create policy "conversations: update own" on public.conversations
  for update to authenticated
  using ((select auth.uid()) = user_id)
  with check ((select auth.uid()) = user_id);
create policy "conversations: delete own" on public.conversations
  for delete to authenticated
  using ((select auth.uid()) = user_id);

create policy "messages: read own" on public.messages
  for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "messages: write into own conversations" on public.messages
  for insert to authenticated
  with check (
    (select auth.uid()) = user_id
    and conversation_id in (
      select c.id from public.conversations c where c.user_id = (select auth.uid())
    )
  );
create policy "messages: delete own" on public.messages
  for delete to authenticated
  using ((select auth.uid()) = user_id);

create policy "usage_logs: read own" on public.usage_logs
  for select to authenticated
  using ((select auth.uid()) = user_id);
create policy "usage_logs: record own" on public.usage_logs
  for insert to authenticated
  with check (
    (select auth.uid()) = user_id
    and (
      conversation_id is null
      or conversation_id in (
        select c.id from public.conversations c where c.user_id = (select auth.uid())
      )
    )
    and (
      message_id is null
      or message_id in (select m.id from public.messages m where m.user_id = (select auth.uid()))
    )
  );

-- Grants: exactly what each API role needs; anon gets nothing --------------------------------------
revoke all on public.users, public.conversations, public.messages, public.usage_logs
  from anon, authenticated, service_role;

grant select, update (display_name) on public.users to authenticated;
grant select, insert, delete on public.conversations to authenticated;
grant update (title) on public.conversations to authenticated;
grant select, insert, delete on public.messages to authenticated;
-- Usage is append-only for users: no UPDATE or DELETE privilege at all.
grant select, insert on public.usage_logs to authenticated;

grant select, insert, update, delete on public.users, public.conversations, public.messages,
  public.usage_logs to service_role;
