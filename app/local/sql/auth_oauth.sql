-- The OAuth 2.1 server's tables of the Auth stand-in, as GoTrue v2.189 keeps them (supabase/auth
-- migrations 20250731150234 … 20260121000000: `auth.oauth_clients`, `auth.oauth_authorizations`,
-- `auth.oauth_consents`, `auth.sessions.oauth_client_id` and `scopes`). Applied on every start after
-- bootstrap.sql; every statement is idempotent so an existing local cluster upgrades in place.

do $$ begin
  create type auth.oauth_registration_type as enum ('dynamic', 'manual');
exception when duplicate_object then null;
end $$;
do $$ begin
  create type auth.oauth_client_type as enum ('public', 'confidential');
exception when duplicate_object then null;
end $$;
do $$ begin
  create type auth.oauth_authorization_status as enum ('pending', 'approved', 'denied', 'expired');
exception when duplicate_object then null;
end $$;
do $$ begin
  create type auth.oauth_response_type as enum ('code');
exception when duplicate_object then null;
end $$;
do $$ begin
  create type auth.code_challenge_method as enum ('s256', 'plain');
exception when duplicate_object then null;
end $$;

create table if not exists auth.oauth_clients (
  id uuid not null primary key,
  client_secret_hash text null,
  registration_type auth.oauth_registration_type not null,
  redirect_uris text not null,
  grant_types text not null,
  client_name text null check (char_length(client_name) <= 1024),
  client_uri text null check (char_length(client_uri) <= 2048),
  logo_uri text null check (char_length(logo_uri) <= 2048),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  deleted_at timestamptz null,
  client_type auth.oauth_client_type not null default 'confidential',
  token_endpoint_auth_method text not null
    check (token_endpoint_auth_method in ('client_secret_basic', 'client_secret_post', 'none'))
);
create index if not exists oauth_clients_deleted_at_idx on auth.oauth_clients (deleted_at);

create table if not exists auth.oauth_authorizations (
  id uuid not null primary key,
  authorization_id text not null unique,
  client_id uuid not null references auth.oauth_clients (id) on delete cascade,
  user_id uuid null references auth.users (id) on delete cascade,
  redirect_uri text not null check (char_length(redirect_uri) <= 2048),
  scope text not null check (char_length(scope) <= 4096),
  state text null check (char_length(state) <= 4096),
  resource text null check (char_length(resource) <= 2048),
  code_challenge text null check (char_length(code_challenge) <= 128),
  code_challenge_method auth.code_challenge_method null,
  response_type auth.oauth_response_type not null default 'code',
  status auth.oauth_authorization_status not null default 'pending',
  authorization_code text null unique check (char_length(authorization_code) <= 255),
  created_at timestamptz not null default now(),
  expires_at timestamptz not null default (now() + interval '3 minutes'),
  approved_at timestamptz null,
  nonce text null check (char_length(nonce) <= 255),
  check (expires_at > created_at)
);
create index if not exists oauth_auth_pending_exp_idx
  on auth.oauth_authorizations (expires_at) where status = 'pending';

create table if not exists auth.oauth_consents (
  id uuid not null primary key,
  user_id uuid not null references auth.users (id) on delete cascade,
  client_id uuid not null references auth.oauth_clients (id) on delete cascade,
  scopes text not null check (char_length(scopes) <= 2048 and char_length(trim(scopes)) > 0),
  granted_at timestamptz not null default now(),
  revoked_at timestamptz null check (revoked_at is null or revoked_at >= granted_at),
  unique (user_id, client_id)
);
create index if not exists oauth_consents_active_user_client_idx
  on auth.oauth_consents (user_id, client_id) where revoked_at is null;
create index if not exists oauth_consents_user_order_idx
  on auth.oauth_consents (user_id, granted_at desc);

alter table auth.sessions
  add column if not exists oauth_client_id uuid references auth.oauth_clients (id) on delete cascade;
create index if not exists sessions_oauth_client_id_idx on auth.sessions (oauth_client_id);
alter table auth.sessions
  add column if not exists scopes text null check (char_length(scopes) <= 4096);

alter table auth.oauth_clients owner to supabase_auth_admin;
alter table auth.oauth_authorizations owner to supabase_auth_admin;
alter table auth.oauth_consents owner to supabase_auth_admin;
grant all on auth.oauth_clients, auth.oauth_authorizations, auth.oauth_consents to postgres;
