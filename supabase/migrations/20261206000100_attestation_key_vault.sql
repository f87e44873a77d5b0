-- The billing attestation key may be kept in Supabase Vault (issue 21), so `supabase db push` is
-- the whole database set-up: config.toml's [db.vault] names the secret `billing_attestation_key`
-- = env(BILLING_ATTESTATION_KEY), which the CLI upserts into Vault before it applies migrations.
--
-- private.attestation_key_source(kind, payload, mac) says which store holds the key that made
-- the MAC: 'private.attestation_keys' (a row, as `chat-stream migrate` and `chat-stream keys
-- provision` add), 'vault' (the Vault secret named billing_attestation_key, at least 32 bytes),
-- or null. Vault is looked up at call time, only where `vault.decrypted_secrets` exists (every
-- hosted project; not a plain PostgreSQL), through dynamic SQL so the function also compiles
-- there. private.attested keeps its signature and becomes "a source holds it", so every attested
-- RPC accepts either store. public.chat_attestation_source lets `chat-stream check` (service
-- role) name the source; it needs a valid MAC, so it tells nothing to whoever lacks the key.

create function private.attestation_key_source(p_kind text, p_payload text, p_mac text)
  returns text
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
declare
  v_data bytea;
  v_mac bytea;
  v_in_vault boolean := false;
begin
  if p_kind is null or p_payload is null or p_mac is null or p_mac !~ '^[0-9a-f]{64}$' then
    return null;
  end if;
  v_data := convert_to(p_kind || E'\n' || p_payload, 'UTF8');
  v_mac := sha256(decode(p_mac, 'hex'));
  if exists (
    select 1 from private.attestation_keys k
     where sha256(private.hmac_sha256(v_data, k.key)) = v_mac
  ) then
    return 'private.attestation_keys';
  end if;
  if to_regclass('vault.decrypted_secrets') is not null then
    -- The view is named at run time: it exists only where Vault does (so `supabase db lint`'s
    -- plpgsql_check does not resolve it on a database without Vault).
    execute format(
      'select exists (select 1 from %I.%I s where s.name = $1'
      ' and octet_length(convert_to(s.decrypted_secret, ''UTF8'')) >= 32'
      ' and sha256(private.hmac_sha256($2, convert_to(s.decrypted_secret, ''UTF8''))) = $3)',
      'vault', 'decrypted_secrets'
    ) into v_in_vault using 'billing_attestation_key', v_data, v_mac;
  end if;
  return case when v_in_vault then 'vault' end;
end;
$$;
revoke all on function private.attestation_key_source(text, text, text)
  from public, anon, authenticated, service_role;

-- Same signature and grants as in 20261201000100; now either store may hold the key.
create or replace function private.attested(p_kind text, p_payload text, p_mac text)
  returns boolean
  language plpgsql
  stable
  security definer
  set search_path = ''
as $$
begin
  return private.attestation_key_source(p_kind, p_payload, p_mac) is not null;
end;
$$;

-- Pre-flight (`chat-stream check`): which store holds the service's key (null: none).
create function public.chat_attestation_source(p_probe text, p_mac text)
  returns text
  language sql
  stable
  security definer
  set search_path = ''
as $$
  select private.attestation_key_source('check', p_probe, p_mac)
$$;
revoke all on function public.chat_attestation_source(text, text)
  from public, anon, authenticated;
grant execute on function public.chat_attestation_source(text, text) to service_role;
