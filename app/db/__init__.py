"""Database tooling used in production: the migration runner and SQL splitting."""
