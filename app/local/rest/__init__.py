"""The PostgREST stand-in served at /rest/v1."""
