-- A stand-in for Supabase Vault (the supabase_vault extension is not available here): the objects
-- `supabase db push` ([db.vault]) and our migrations use, with the extension's names and
-- signatures, run as a superuser. Unlike Vault it does not encrypt: tests only.
create schema vault;
create table vault.secrets (
  id uuid primary key default gen_random_uuid(),
  name text unique,
  description text not null default '',
  secret text not null,
  key_id uuid,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
create view vault.decrypted_secrets as
  select s.id, s.name, s.description, s.secret, s.secret as decrypted_secret, s.key_id,
         s.created_at, s.updated_at
  from vault.secrets s;
create function vault.create_secret(
  new_secret text, new_name text default null, new_description text default '',
  new_key_id uuid default null
) returns uuid language sql security definer set search_path = '' as $$
  insert into vault.secrets (secret, name, description, key_id)
  values (new_secret, new_name, new_description, new_key_id) returning id
$$;
create function vault.update_secret(
  secret_id uuid, new_secret text default null, new_name text default null,
  new_description text default null, new_key_id uuid default null
) returns void language sql security definer set search_path = '' as $$
  update vault.secrets set
    secret = coalesce(new_secret, secret), name = coalesce(new_name, name),
    description = coalesce(new_description, description), key_id = coalesce(new_key_id, key_id),
    updated_at = now()
  where id = secret_id
$$;
-- As on Supabase: postgres (the CLI's role, and the owner of our definer functions) may use it.
grant usage on schema vault to postgres;
grant select on vault.secrets, vault.decrypted_secrets to postgres;
grant execute on all functions in schema vault to postgres;
revoke all on vault.secrets, vault.decrypted_secrets from public;
