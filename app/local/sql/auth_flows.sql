-- PKCE flow state of the Auth stand-in, as GoTrue keeps it (supabase/auth migrations:
-- `auth.flow_state`). Applied on every start after bootstrap.sql; every statement is idempotent
-- so an existing local cluster upgrades in place.

create table if not exists auth.flow_state (
  id uuid primary key,
  user_id uuid,
  auth_code text not null,
  code_challenge_method text not null,
  code_challenge text not null,
  provider_type text not null,
  provider_access_token text,
  provider_refresh_token text,
  created_at timestamptz,
  updated_at timestamptz,
  authentication_method text not null,
  auth_code_issued_at timestamptz
);
create index if not exists idx_auth_code on auth.flow_state (auth_code);
create index if not exists idx_user_id_auth_method on auth.flow_state (user_id, authentication_method);
alter table auth.flow_state owner to supabase_auth_admin;
grant all on auth.flow_state to postgres;
