-- Seed for `supabase db reset` / `supabase start` (config.toml [db.seed]), run after the migrations.
--
-- Deliberately empty: every row in public belongs to a user in auth.users (RLS ties it to
-- auth.uid()), and the billing tables are written only through the attested RPCs. For demo data
-- use the analysts' seeder, which generates users, conversations, messages and priced usage rows
-- and loads them with COPY as the postgres role:
--   python scripts/seed_usage.py --db-url postgresql://postgres:postgres@127.0.0.1:54322/postgres
select 1;
