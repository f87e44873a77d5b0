"""Database advisor: Supabase-splinter-style checks and a cross-user RLS matrix for migrations."""

from app.advisor.result import CheckResult, all_passed, format_table, to_frame, to_json
from app.advisor.runner import CHECK_NAMES, SetupError, Validation, run_checks, validate

__all__ = [
    "CHECK_NAMES",
    "CheckResult",
    "SetupError",
    "Validation",
    "all_passed",
    "format_table",
    "run_checks",
    "to_frame",
    "to_json",
    "validate",
]
