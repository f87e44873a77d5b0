"""How check results read: the CLI table, JSON for tooling, a DataFrame for notebooks."""

from __future__ import annotations

import json

from app.advisor import CheckResult, format_table, to_frame, to_json

RESULTS = [
    CheckResult("rls_enabled", "ERROR", True),
    CheckResult(
        "auth_rls_initplan",
        "WARN",
        False,
        ["public.a: policy p calls auth.uid()", "public.b: policy q calls auth.jwt()"],
    ),
    CheckResult("cross_user_rls", "ERROR", True, ["skipped: needs privileges"], skipped=True),
    CheckResult("migrations_apply", "ERROR", False, ["x.sql:3: 42601: syntax error\nHINT: h"]),
]


def test_format_table_aligns_every_detail_line_under_the_detail_column() -> None:
    lines = format_table(RESULTS).splitlines()

    column = lines[0].index("DETAIL")
    assert lines[2].split() == ["rls_enabled", "ERROR", "PASS"]
    assert lines[3][column:] == "public.a: policy p calls auth.uid()"
    assert lines[3].split()[:3] == ["auth_rls_initplan", "WARN", "FAIL"]
    assert lines[4][:column].strip() == "" and lines[4][column:].startswith("public.b")
    assert lines[5].split()[2] == "SKIP"
    assert lines[7][:column].strip() == "" and lines[7][column:] == "HINT: h"
    assert lines[-1] == "1 passed, 2 failed, 1 skipped"


def test_to_json_carries_status_details_and_extra_fields() -> None:
    doc = json.loads(to_json(RESULTS, database="db"))

    assert doc["passed"] is False and doc["database"] == "db"
    assert [c["status"] for c in doc["checks"]] == ["PASS", "FAIL", "SKIP", "FAIL"]
    assert doc["checks"][1]["details"][1] == "public.b: policy q calls auth.jwt()"


def test_to_frame_has_one_row_per_check_and_counts_findings_of_failures_only() -> None:
    frame = to_frame(RESULTS)

    assert list(frame.columns) == ["check", "level", "result", "findings", "details"]
    assert frame["findings"].tolist() == [0, 2, 0, 1]
    assert frame.loc[1, "details"].count("\n") == 1
