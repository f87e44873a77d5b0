"""The Supabase Auth (GoTrue) stand-in served at /auth/v1."""
